// `pchat-endpoint get`: lists endpoints, like Get-CsPersistentChatEndpoint; a table for people, JSON
// for scripts.
import { Command } from 'commander';
import { domainNameKey } from '../endpoints/domain-name.js';
import { findEndpoint, readEndpointsFile } from '../config/endpoints-editor.js';
import type { EndpointConfig } from '../config/schema.js';
import {
  addConfigDirOption,
  asCliError,
  endpointsFile,
  formatEndpoints,
  type ConfigDirOptions,
} from './common.js';
import type { CliIo } from './io.js';

interface GetFlags extends ConfigDirOptions {
  filter?: string;
  poolFqdn?: string;
  json?: boolean;
}

/** A wildcard pattern as Get-CsPersistentChatEndpoint -Filter takes it: `*` any run, `?` one character. */
export function wildcard(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

export function getCommand(io: CliIo): Command {
  const cmd = new Command('get')
    .description('list endpoints; identity (SIP address or display name) shows one')
    .argument('[identity]', 'SIP address or display name')
    .option('--filter <pattern>', 'SIP address or display name matching a wildcard, e.g. "*@contoso.com"')
    .option('--pool-fqdn <fqdn>', 'endpoints leading to this pool')
    .option('--json', 'JSON for scripts');
  addConfigDirOption(cmd, io);
  return cmd.action(async (identity: string | undefined, flags: GetFlags) => {
    let entries: EndpointConfig[];
    try {
      const { config } = await readEndpointsFile(endpointsFile(flags));
      entries =
        identity === undefined ? config.endpoints : [config.endpoints[findEndpoint(config, identity)]!];
    } catch (err) {
      throw asCliError(err) ?? err;
    }
    if (flags.filter !== undefined) {
      const re = wildcard(flags.filter);
      entries = entries.filter(
        (e) => re.test(e.sipAddress) || (e.displayName !== undefined && re.test(e.displayName)),
      );
    }
    if (flags.poolFqdn !== undefined) {
      const pool = domainNameKey(flags.poolFqdn);
      entries = entries.filter((e) => domainNameKey(e.poolFqdn) === pool);
    }
    io.out(formatEndpoints(entries, flags.json === true));
  });
}
