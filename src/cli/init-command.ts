// `pchat-endpoint init DIR`: writes a starter configuration folder, the two commented files of the
// shipped example (server.yaml, endpoints.yaml), for an installed package whose own example is
// read-only. A folder with anything in it is refused unless --force, which replaces only those two.
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { defaultConfigDir, ENDPOINTS_FILE, SERVER_FILE } from '../config/load.js';
import { plainArgument } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

interface InitFlags {
  force?: boolean;
}

/** The folder's entries, or none when it does not exist yet; refuses a path that is not a folder. */
async function entriesOf(dir: string): Promise<string[]> {
  let isFolder: boolean;
  try {
    isFolder = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  if (!isFolder) throw new CliError(EXIT.failure, `${dir} exists and is not a folder`);
  return readdir(dir);
}

export function initCommand(io: CliIo): Command {
  return new Command('init')
    .description('write a starter configuration (commented server.yaml and endpoints.yaml) into a new folder')
    .argument('<dir>', 'the folder to write, created if missing; it must be empty')
    .option('-f, --force', 'write into a folder that is not empty, replacing server.yaml and endpoints.yaml')
    .action(async (dirArg: string, flags: InitFlags) => {
      const dir = resolve(plainArgument('<dir>', dirArg));
      const entries = await entriesOf(dir);
      if (entries.length > 0 && flags.force !== true) {
        throw new CliError(
          EXIT.conflict,
          `${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}): ` +
            'name a new or empty folder, or add --force to replace server.yaml and endpoints.yaml there',
        );
      }
      await mkdir(dir, { recursive: true });
      for (const name of [SERVER_FILE, ENDPOINTS_FILE])
        await copyFile(join(defaultConfigDir(), name), join(dir, name));
      io.out(
        `wrote ${join(dir, SERVER_FILE)} and ${join(dir, ENDPOINTS_FILE)}\n` +
          `serve them: pchat-endpoint serve --config-dir ${dir}  (or set PCHAT_CONFIG_DIR=${dir})\n`,
      );
    });
}
