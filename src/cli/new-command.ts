// `pchat-endpoint new`: adds an endpoint, like Lync's New-CsPersistentChatEndpoint.
import { Command, Option } from 'commander';
import { aorKeyFromText } from '../sip/uri.js';
import { ENDPOINT_MODES } from '../endpoints/endpoint.js';
import { EditError } from '../config/endpoints-editor.js';
import { poolFqdnProblem, sipAddressProblem } from '../config/schema.js';
import type { EditValue } from '../config/yaml-edit.js';
import { addConfigDirOption, addEditOptions, plainArgument, runEdit, type EditFlags } from './common.js';
import { usage } from './exit-codes.js';
import type { CliIo } from './io.js';

interface NewFlags extends EditFlags {
  sipAddress: string;
  poolFqdn: string;
  displayName?: string;
  mode?: string;
  enabled?: string;
}

export function newCommand(io: CliIo): Command {
  const cmd = new Command('new')
    .description('add an endpoint: a well-known SIP address that leads to a Persistent Chat pool')
    .requiredOption('--sip-address <uri>', 'the well-known address, e.g. sip:ocschat@contoso.com')
    .requiredOption('--pool-fqdn <fqdn>', 'the Persistent Chat pool, e.g. pcpool.contoso.com')
    .option('--display-name <name>', 'a name for people reading the file and the logs')
    .addOption(new Option('--mode <mode>', 'what requests get (default: proxy)').choices(ENDPOINT_MODES))
    .addOption(
      new Option('--enabled <bool>', 'serve the endpoint (default: true)').choices(['true', 'false']),
    );
  addConfigDirOption(cmd, io);
  addEditOptions(cmd);
  return cmd.action(async (flags: NewFlags) => {
    const address = plainArgument('--sip-address', flags.sipAddress);
    const addressProblem = sipAddressProblem(address);
    if (addressProblem !== undefined) throw usage(`--sip-address: ${address} ${addressProblem}`);
    const pool = plainArgument('--pool-fqdn', flags.poolFqdn);
    const poolProblem = poolFqdnProblem(pool);
    if (poolProblem !== undefined) throw usage(`--pool-fqdn: ${poolProblem}`);
    const entry: Record<string, EditValue> = { sipAddress: address, poolFqdn: pool };
    if (flags.displayName !== undefined)
      entry['displayName'] = plainArgument('--display-name', flags.displayName);
    if (flags.mode !== undefined) entry['mode'] = flags.mode;
    if (flags.enabled !== undefined) entry['enabled'] = flags.enabled === 'true';
    const key = aorKeyFromText(address);
    await runEdit(
      io,
      flags,
      (current) => {
        const existing = current.config.endpoints.find((e) => aorKeyFromText(e.sipAddress) === key);
        if (existing !== undefined) {
          throw new EditError(
            'PCHAT_ERR_EDIT_CONFLICT',
            `an endpoint with address ${existing.sipAddress} already exists`,
          );
        }
        return {
          edits: [{ kind: 'append', seqKey: 'endpoints', entry }],
          summary: `add endpoint ${address}`,
        };
      },
      (result) => result.config.endpoints.find((e) => aorKeyFromText(e.sipAddress) === key),
    );
  });
}
