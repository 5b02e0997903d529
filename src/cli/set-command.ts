// `pchat-endpoint set`: changes an endpoint (Lync has no Set- cmdlet for this; operators need one), or
// puts a pool in or out of a maintenance window.
import { Command, Option } from 'commander';
import { aorKeyFromText } from '../sip/uri.js';
import { ENDPOINT_MODES } from '../endpoints/endpoint.js';
import { domainNameKey } from '../endpoints/domain-name.js';
import {
  EditError,
  findEndpoint,
  findPool,
  poolInUse,
  type CurrentFile,
} from '../config/endpoints-editor.js';
import { poolFqdnProblem } from '../config/schema.js';
import type { YamlEdit } from '../config/yaml-edit.js';
import {
  addConfigDirOption,
  addEditOptions,
  maintenanceUntilArgument,
  plainArgument,
  runEdit,
  type EditFlags,
} from './common.js';
import { usage } from './exit-codes.js';
import type { CliIo } from './io.js';

interface SetFlags extends EditFlags {
  poolFqdn?: string;
  displayName?: string;
  mode?: string;
  enabled?: string;
  maintenance?: 'on' | 'off';
  maintenanceUntil?: string;
}

/** The edits that put the map at `path` in or out of maintenance. */
function maintenanceEdits(path: (string | number)[], flags: SetFlags): YamlEdit[] {
  if (flags.maintenance === 'on') {
    return [
      { kind: 'set', path, key: 'maintenance', value: 'on' },
      { kind: 'delete', path, key: 'maintenanceUntil' },
    ];
  }
  if (flags.maintenance === 'off') {
    return [
      { kind: 'delete', path, key: 'maintenance' },
      { kind: 'delete', path, key: 'maintenanceUntil' },
    ];
  }
  if (flags.maintenanceUntil !== undefined) {
    return [
      { kind: 'set', path, key: 'maintenanceUntil', value: flags.maintenanceUntil },
      { kind: 'delete', path, key: 'maintenance' },
    ];
  }
  return [];
}

function maintenanceSummary(flags: SetFlags): string | undefined {
  if (flags.maintenance !== undefined) return `maintenance ${flags.maintenance}`;
  if (flags.maintenanceUntil !== undefined) return `maintenance until ${flags.maintenanceUntil}`;
  return undefined;
}

export function setCommand(io: CliIo): Command {
  const cmd = new Command('set')
    .description(
      'change an endpoint (identity: its SIP address or display name), or a pool (identity: its FQDN; maintenance flags only)',
    )
    .argument('<identity>', 'SIP address or display name of an endpoint, or a pool FQDN')
    .option('--pool-fqdn <fqdn>', 'lead the endpoint to another pool')
    .option('--display-name <name>', 'a name for people reading the file and the logs')
    .addOption(new Option('--mode <mode>', 'what requests get').choices(ENDPOINT_MODES))
    .addOption(new Option('--enabled <bool>', 'serve the endpoint or not').choices(['true', 'false']))
    .addOption(
      new Option('--maintenance <state>', 'a cutover window until switched off: requests get 503')
        .choices(['on', 'off'])
        .conflicts('maintenanceUntil'),
    )
    .option(
      '--maintenance-until <instant>',
      'a cutover window ending at this ISO 8601 time, e.g. 2026-12-05T06:00Z',
    );
  addConfigDirOption(cmd, io);
  addEditOptions(cmd);
  return cmd.action(async (identityArg: string, flags: SetFlags) => {
    const identity = plainArgument('<identity>', identityArg);
    if (flags.poolFqdn !== undefined) {
      const problem = poolFqdnProblem(plainArgument('--pool-fqdn', flags.poolFqdn));
      if (problem !== undefined) throw usage(`--pool-fqdn: ${problem}`);
    }
    if (flags.displayName !== undefined) plainArgument('--display-name', flags.displayName);
    if (flags.maintenanceUntil !== undefined) maintenanceUntilArgument(flags.maintenanceUntil);
    const endpointChanges: YamlEdit[] = [];
    const changed: string[] = [];
    const field = (key: string, value: string | boolean | undefined): void => {
      if (value === undefined) return;
      endpointChanges.push({ kind: 'set', path: [], key, value });
      changed.push(`${key} ${String(value)}`);
    };
    field('poolFqdn', flags.poolFqdn);
    field('displayName', flags.displayName);
    field('mode', flags.mode);
    field('enabled', flags.enabled === undefined ? undefined : flags.enabled === 'true');
    const maintenance = maintenanceSummary(flags);
    if (maintenance !== undefined) changed.push(maintenance);
    if (changed.length === 0) {
      throw usage(
        'nothing to change: give at least one of --pool-fqdn, --display-name, --mode, --enabled, --maintenance, --maintenance-until',
      );
    }

    let address: string | undefined;
    const plan = (current: CurrentFile) => {
      const isPool =
        !/^sips?:/i.test(identity) &&
        /^[^\s@]+\.[^\s@]+$/.test(identity) &&
        !hasDisplayName(current, identity);
      if (isPool) return poolPlan(current, identity, flags, endpointChanges.length > 0, maintenance ?? '');
      const index = findEndpoint(current.config, identity);
      address = current.config.endpoints[index]?.sipAddress;
      const path = ['endpoints', index];
      return {
        edits: [
          ...endpointChanges.map((e) => (e.kind === 'set' ? { ...e, path } : e)),
          ...maintenanceEdits(path, flags),
        ],
        summary: `set ${changed.join(', ')} on endpoint ${address ?? identity}`,
      };
    };
    await runEdit(io, flags, plan, (result) => {
      if (address === undefined) return undefined;
      const key = aorKeyFromText(address);
      return result.config.endpoints.find((e) => aorKeyFromText(e.sipAddress) === key);
    });
  });
}

function hasDisplayName(current: CurrentFile, name: string): boolean {
  return current.config.endpoints.some((e) => e.displayName?.toLowerCase() === name.toLowerCase());
}

function poolPlan(
  current: CurrentFile,
  fqdn: string,
  flags: SetFlags,
  endpointFields: boolean,
  summary: string,
) {
  if (endpointFields)
    throw usage(`<identity>: ${fqdn} is a pool: only --maintenance and --maintenance-until apply to a pool`);
  if (summary === '') throw usage('nothing to change on a pool: give --maintenance or --maintenance-until');
  const index = findPool(current.config, fqdn);
  const name = domainNameKey(fqdn);
  if (index >= 0) {
    return { edits: maintenanceEdits(['pools', index], flags), summary: `set ${summary} on pool ${name}` };
  }
  if (!poolInUse(current.config, fqdn)) {
    throw new EditError('PCHAT_ERR_EDIT_NOT_FOUND', `no endpoint or pool named ${fqdn}`);
  }
  // A pool found through DNS has no entry yet: one is added to carry the window.
  if (flags.maintenance === 'off') return { edits: [], summary: `pool ${name} has no maintenance window` };
  const entry =
    flags.maintenance === 'on'
      ? { fqdn: name, maintenance: 'on' }
      : { fqdn: name, maintenanceUntil: flags.maintenanceUntil ?? '' };
  return {
    edits: [{ kind: 'append' as const, seqKey: 'pools', entry }],
    summary: `set ${summary} on pool ${name}`,
  };
}
