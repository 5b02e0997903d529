// `pchat-endpoint check`: validates configuration without starting anything, for CI pipelines and
// pre-commit hooks. Exit 0 valid (warnings printed), 3 refused.
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Command } from 'commander';
import { ConfigError, formatIssue } from '../config/errors.js';
import { checkEndpointsConfig, loadConfig, parseServerConfig, SERVER_FILE } from '../config/load.js';
import { addConfigDirOption, type ConfigDirOptions } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

export function checkCommand(io: CliIo): Command {
  const cmd = new Command('check')
    .description('validate a configuration file, or both files of a folder, without starting anything')
    .argument('[file]', 'endpoints.yaml, server.yaml (by name) or a folder (default: --config-dir)');
  addConfigDirOption(cmd, io);
  return cmd.action(async (file: string | undefined, flags: ConfigDirOptions) => {
    const target = file ?? flags.configDir;
    let isDir: boolean;
    try {
      isDir = (await stat(target)).isDirectory();
    } catch {
      throw new CliError(EXIT.config, `${target}: file not found`);
    }
    try {
      if (isDir) {
        const loaded = await loadConfig(target);
        for (const w of loaded.warnings) io.err(`warning: ${w}\n`);
        io.out(
          `ok: ${loaded.files.server}, ${loaded.files.endpoints} (${loaded.table.size} endpoint${loaded.table.size === 1 ? '' : 's'})\n`,
        );
        return;
      }
      const text = await readFile(target, 'utf8');
      if (basename(target) === SERVER_FILE) {
        parseServerConfig(text, target);
        io.out(`ok: ${target}\n`);
        return;
      }
      const { config, warnings } = checkEndpointsConfig(text, target);
      for (const w of warnings) io.err(`warning: ${formatIssue(w)}\n`);
      io.out(
        `ok: ${target} (${config.endpoints.length} endpoint${config.endpoints.length === 1 ? '' : 's'})\n`,
      );
    } catch (err) {
      if (err instanceof ConfigError)
        throw new CliError(EXIT.config, `configuration refused:\n${err.message}`);
      throw err;
    }
  });
}
