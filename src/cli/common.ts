// What the commands share: where the configuration is, how an endpoint is shown, how an edit is run
// and reported, and which failure maps to which exit code.
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { LockTimeoutError } from '../config/atomic-file.js';
import { ConfigError } from '../config/errors.js';
import {
  editEndpointsFile,
  EditError,
  type CurrentFile,
  type EditPlan,
  type EditResult,
} from '../config/endpoints-editor.js';
import { defaultConfigDir, ENDPOINTS_FILE, isInstalledPackage } from '../config/load.js';
import { parseInstant, type EndpointConfig } from '../config/schema.js';
import { endpointProjection } from '../endpoints/projection.js';
import { EndpointTable } from '../endpoints/table.js';
import { CliError, EXIT, usage } from './exit-codes.js';
import type { CliIo } from './io.js';

export interface ConfigDirOptions {
  configDir: string;
}

/** `-c, --config-dir`, defaulting to PCHAT_CONFIG_DIR, else the shipped config/ folder. */
export function addConfigDirOption(cmd: Command, io: CliIo): Command {
  return cmd.option(
    '-c, --config-dir <dir>',
    'folder with server.yaml and endpoints.yaml (default: $PCHAT_CONFIG_DIR, else the shipped ' +
      'config/, read-only in an installed package: make your own with `init DIR`)',
    io.env['PCHAT_CONFIG_DIR'] ?? defaultConfigDir(),
  );
}

/**
 * Whether `dir` is the example folder inside an installed package. It is served as it is but never
 * edited: an upgrade would replace it, and a global install's folder usually belongs to root.
 */
export function isShippedExample(dir: string, installed = isInstalledPackage()): boolean {
  return installed && resolve(dir) === resolve(defaultConfigDir());
}

/** What to do instead of editing the installed package's example: make a folder of one's own. */
export const MAKE_CONFIG_DIR =
  'make a configuration folder with `pchat-endpoint init DIR`, then name it with --config-dir DIR ' +
  'or PCHAT_CONFIG_DIR=DIR';

/** Refuses an edit of the installed package's own example configuration, saying what to do instead. */
export function refuseShippedExample(flags: ConfigDirOptions): void {
  if (!isShippedExample(flags.configDir)) return;
  throw usage(
    `the example configuration in the installed package is read-only (${flags.configDir}): ${MAKE_CONFIG_DIR}`,
  );
}

export function endpointsFile(opts: ConfigDirOptions): string {
  return join(opts.configDir, ENDPOINTS_FILE);
}

export interface EditFlags extends ConfigDirOptions {
  whatIf?: boolean;
  passThru?: boolean;
  json?: boolean;
  lockTimeout: string;
}

/** The flags every editing command takes. */
export function addEditOptions(cmd: Command): Command {
  return cmd
    .option('--what-if', 'show what would change, write nothing')
    .option('--pass-thru', 'print the entry as it is after the change')
    .option('--json', 'with --pass-thru: print JSON')
    .addOption(
      new Option('--lock-timeout <ms>', 'how long to wait for another edit to finish').default('10000'),
    );
}

function lockTimeoutMs(text: string): number {
  if (!/^\d{1,7}$/.test(text)) throw usage(`--lock-timeout: expected milliseconds, got "${text}"`);
  return Number(text);
}

/** A value from the command line that will be written into YAML: one line, no control characters. */
export function plainArgument(flag: string, value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw usage(`${flag}: must not contain control characters`);
  if (value.trim() === '') throw usage(`${flag}: must not be empty`);
  return value;
}

/** `--maintenance-until`: an ISO 8601 instant with a zone, refused here rather than by the schema. */
export function maintenanceUntilArgument(value: string): string {
  const parsed = parseInstant(value);
  if (typeof parsed === 'string') throw usage(`--maintenance-until: ${parsed}`);
  return value;
}

/** Maps the failures of the configuration layer to the documented exit codes. */
export function asCliError(err: unknown): CliError | undefined {
  if (err instanceof CliError) return err;
  if (err instanceof ConfigError) return new CliError(EXIT.config, `configuration refused:\n${err.message}`);
  if (err instanceof EditError)
    return new CliError(err.code === 'PCHAT_ERR_EDIT_NOT_FOUND' ? EXIT.notFound : EXIT.conflict, err.message);
  if (err instanceof LockTimeoutError) return new CliError(EXIT.lockTimeout, err.message);
  return undefined;
}

/**
 * Runs an edit and reports it: with --what-if the change as a line diff; otherwise one line saying
 * what was done; with --pass-thru the entry as it now is.
 */
export async function runEdit(
  io: CliIo,
  flags: EditFlags,
  plan: (current: CurrentFile) => EditPlan,
  show: (result: EditResult) => EndpointConfig | undefined,
): Promise<void> {
  refuseShippedExample(flags);
  const file = endpointsFile(flags);
  let result: EditResult;
  try {
    result = await editEndpointsFile(
      file,
      {
        whatIf: flags.whatIf === true,
        lockTimeoutMs: lockTimeoutMs(flags.lockTimeout),
        ...(io.env['PCHAT_TEST_CRASH_BEFORE_RENAME'] === '1'
          ? // Lets the tests show that a crash between write and rename leaves the old file whole.
            { hooks: { beforeRename: () => void process.kill(process.pid, 'SIGKILL') } }
          : {}),
      },
      plan,
    );
  } catch (err) {
    const mapped = asCliError(err);
    if (mapped?.exitCode === EXIT.config && err instanceof ConfigError) {
      throw new CliError(EXIT.config, `refused, ${file} left unchanged:\n${err.message}`);
    }
    throw mapped ?? err;
  }
  if (flags.whatIf === true) {
    io.out(`What if: ${result.summary} in ${file}\n`);
    io.out(lineDiff(result.before, result.after));
  } else {
    io.out(`${result.written ? '' : 'unchanged: '}${result.summary} in ${file}\n`);
    if (!result.preservedLayout) {
      io.err('note: the file was rewritten as a whole; its comments are kept, its layout normalised\n');
    }
  }
  const entry = show(result);
  if (flags.passThru === true && entry !== undefined) io.out(formatEndpoints([entry], flags.json === true));
}

/** The lines that differ, unified-diff style, with a line of context either side. */
export function lineDiff(before: string, after: string): string {
  const a = before.split('\n');
  const b = after.split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  if (start === endA && start === endB) return '  (no change)\n';
  const out: string[] = [`@@ line ${start + 1} @@`];
  if (start > 0) out.push(`  ${a[start - 1]}`);
  for (let i = start; i < endA; i++) out.push(`- ${a[i]}`);
  for (let i = start; i < endB; i++) out.push(`+ ${b[i]}`);
  if (endA < a.length && a[endA] !== '') out.push(`  ${a[endA]}`);
  return out.join('\n') + '\n';
}

/** An endpoint as the commands show it: the projection the admin port and the reload show too. */
export type EndpointView = { identity: string } & ReturnType<typeof endpointProjection>;

/**
 * The entries as the service builds them from the file (defaults filled in, the pool's name in
 * canonical form), seen through the one projection of an Endpoint.
 */
export function endpointViews(entries: readonly EndpointConfig[]): EndpointView[] {
  // The entries come from a validated file: no duplicate addresses. The pools are not shown here.
  const table = EndpointTable.fromConfig({ endpoints: [...entries], pools: [] });
  return [...table].map((e) => ({ identity: e.sipAddress, ...endpointProjection(e) }));
}

interface Column {
  readonly header: string;
  readonly cell: (v: EndpointView) => string;
}

/**
 * The table's columns, in order: one for each field of the projection, or null for a field shown in
 * JSON only. Typed against the projection, so a field added to Endpoint needs a decision here too.
 */
const COLUMNS = {
  sipAddress: { header: 'SipAddress', cell: (v) => v.sipAddress },
  poolFqdn: { header: 'PoolFqdn', cell: (v) => v.poolFqdn },
  mode: { header: 'Mode', cell: (v) => v.mode },
  enabled: { header: 'Enabled', cell: (v) => String(v.enabled) },
  maintenanceUntil: {
    header: 'Maintenance',
    cell: (v) =>
      v.maintenanceUntil === null ? '-' : v.maintenanceUntil === 'on' ? 'on' : `until ${v.maintenanceUntil}`,
  },
  // "-": unset, the server's proxy.recordRoute applies.
  recordRoute: { header: 'RecordRoute', cell: (v) => (v.recordRoute === null ? '-' : String(v.recordRoute)) },
  // Last: free text, often with spaces.
  displayName: { header: 'DisplayName', cell: (v) => v.displayName ?? '' },
  // One or more URIs, too wide for a column; in --json.
  lookupUris: null,
  // Rules, one or more; in --json.
  homing: null,
} satisfies Record<keyof ReturnType<typeof endpointProjection>, Column | null>;

/** A readable table, or JSON (an array) for scripts. */
export function formatEndpoints(entries: readonly EndpointConfig[], json: boolean): string {
  const views = endpointViews(entries);
  if (json) return JSON.stringify(views, null, 2) + '\n';
  const columns = Object.values(COLUMNS).filter((c): c is Column => c !== null);
  const header = columns.map((c) => c.header);
  const rows = views.map((v) => columns.map((c) => c.cell(v)));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
