// `pchat-endpoint remove`: deletes an endpoint, like Remove-CsPersistentChatEndpoint; asks first when a
// person is at a terminal, unless --force.
import { Command } from 'commander';
import { findEndpoint, readEndpointsFile } from '../config/endpoints-editor.js';
import {
  addConfigDirOption,
  addEditOptions,
  asCliError,
  endpointsFile,
  plainArgument,
  refuseShippedExample,
  runEdit,
  type EditFlags,
} from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

interface RemoveFlags extends EditFlags {
  force?: boolean;
}

export function removeCommand(io: CliIo): Command {
  const cmd = new Command('remove')
    .description('remove an endpoint (identity: its SIP address or display name)')
    .argument('<identity>', 'SIP address or display name')
    .option('-f, --force', 'do not ask for confirmation');
  addConfigDirOption(cmd, io);
  addEditOptions(cmd);
  return cmd.action(async (identityArg: string, flags: RemoveFlags) => {
    const identity = plainArgument('<identity>', identityArg);
    // Before the question: a "yes" must not be answered with a refusal.
    refuseShippedExample(flags);
    if (flags.force !== true && flags.whatIf !== true && io.interactive) {
      // Asked before the lock is taken, so a person thinking does not hold up other edits; the entry is
      // looked up again under the lock.
      let address: string;
      try {
        const current = await readEndpointsFile(endpointsFile(flags));
        address = current.config.endpoints[findEndpoint(current.config, identity)]?.sipAddress ?? identity;
      } catch (err) {
        throw asCliError(err) ?? err;
      }
      if (!(await io.confirm(`Remove endpoint ${address} from ${endpointsFile(flags)}?`))) {
        throw new CliError(EXIT.declined, 'not removed: declined');
      }
    }
    await runEdit(
      io,
      flags,
      (current) => {
        const index = findEndpoint(current.config, identity);
        const address = current.config.endpoints[index]?.sipAddress ?? identity;
        return {
          edits: [{ kind: 'removeItem', seqKey: 'endpoints', index }],
          summary: `remove endpoint ${address}`,
        };
      },
      () => undefined,
    );
  });
}
