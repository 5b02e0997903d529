// What the `home` commands share: which user table they work on (the one endpoints.yaml names, or the
// one --file or --endpoint picks) and the configuration it is checked against.
import { join } from 'node:path';
import type { Command } from 'commander';
import { chooseUserTable, readHomingContext, type HomingContext } from '../config/users-editor.js';
import { addConfigDirOption, asCliError, type ConfigDirOptions } from './common.js';
import type { CliIo } from './io.js';

/** Which user table: the one endpoints.yaml names, else the one --file or --endpoint picks. */
export interface TableFlags extends ConfigDirOptions {
  file?: string;
  endpoint?: string;
}

export function addTableOptions(cmd: Command, io: CliIo): Command {
  addConfigDirOption(cmd, io);
  return cmd
    .option('--file <name>', 'the user table, when endpoints.yaml names several (e.g. users-emea.csv)')
    .option('--endpoint <sip-address>', "the user table of this endpoint's homing rule");
}

/** The configuration the table is checked against, and the table's path. */
export async function userTable(flags: TableFlags): Promise<{ ctx: HomingContext; file: string }> {
  try {
    const ctx = await readHomingContext(flags.configDir);
    return { ctx, file: join(flags.configDir, chooseUserTable(ctx.endpoints, flags)) };
  } catch (err) {
    throw asCliError(err) ?? err;
  }
}
