// `pchat-endpoint init DIR`: writes a starter configuration folder, the commented files of the
// shipped example (server.yaml, endpoints.yaml and the homing user table users.csv its commented
// rule names), for an installed package whose own example is read-only. A folder with anything in
// it is refused unless --force, which replaces only those files.
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { defaultConfigDir, ENDPOINTS_FILE, SERVER_FILE } from '../config/load.js';
import { plainArgument } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

/** The shipped example's files, as init writes them. */
const EXAMPLE_FILES = [SERVER_FILE, ENDPOINTS_FILE, 'users.csv'] as const;

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
    .description(
      'write a starter configuration (commented server.yaml, endpoints.yaml and users.csv) into a new folder',
    )
    .argument('<dir>', 'the folder to write, created if missing; it must be empty')
    .option('-f, --force', 'write into a folder that is not empty, replacing the example files there')
    .action(async (dirArg: string, flags: InitFlags) => {
      const dir = resolve(plainArgument('<dir>', dirArg));
      const entries = await entriesOf(dir);
      if (entries.length > 0 && flags.force !== true) {
        throw new CliError(
          EXIT.conflict,
          `${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}): ` +
            `name a new or empty folder, or add --force to replace ${EXAMPLE_FILES.join(', ')} there`,
        );
      }
      await mkdir(dir, { recursive: true });
      for (const name of EXAMPLE_FILES) await copyFile(join(defaultConfigDir(), name), join(dir, name));
      io.out(
        `wrote ${EXAMPLE_FILES.map((name) => join(dir, name)).join(', ')}\n` +
          `serve them: pchat-endpoint serve --config-dir ${dir}  (or set PCHAT_CONFIG_DIR=${dir})\n`,
      );
    });
}
