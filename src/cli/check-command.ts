// `pchat-endpoint check`: validates configuration without starting anything, for CI pipelines and
// pre-commit hooks. Exit 0 valid (warnings printed), 3 refused. Files are read under the service's
// rules (regular files only, symlinks only within their folder, a size limit, a timeout), so a FIFO
// or a device in their place is refused at once rather than hanging the pipeline.
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_READ_TIMEOUT, readConfigFile } from '../config/config-file.js';
import { ConfigError, formatIssue } from '../config/errors.js';
import { checkEndpointsConfig, loadConfig, parseServerConfig, SERVER_FILE } from '../config/load.js';
import { addConfigDirOption, type ConfigDirOptions } from './common.js';
import { CliError, EXIT, usage } from './exit-codes.js';
import type { CliIo } from './io.js';

interface CheckFlags extends ConfigDirOptions {
  maxFileSize: string;
}

export function checkCommand(io: CliIo): Command {
  const cmd = new Command('check')
    .description('validate a configuration file, or both files of a folder, without starting anything')
    .argument('[file]', 'endpoints.yaml, server.yaml (by name) or a folder (default: --config-dir)')
    .addOption(
      new Option(
        '--max-file-size <bytes>',
        "largest file read (a folder's endpoints.yaml: its server.yaml's config.maxFileSize)",
      ).default(String(DEFAULT_MAX_FILE_SIZE)),
    );
  addConfigDirOption(cmd, io);
  return cmd.action(async (file: string | undefined, flags: CheckFlags) => {
    const target = file ?? flags.configDir;
    if (!/^\d{1,10}$/.test(flags.maxFileSize) || Number(flags.maxFileSize) < 1)
      throw usage(`--max-file-size: expected a number of bytes, got "${flags.maxFileSize}"`);
    const maxFileSize = Number(flags.maxFileSize);
    let isDir: boolean;
    try {
      // A stat opens nothing, so even a FIFO answers at once; readConfigFile judges what it is.
      isDir = (await stat(target)).isDirectory();
    } catch {
      throw new CliError(EXIT.config, `${target}: file not found`);
    }
    try {
      if (isDir) {
        const loaded = await loadConfig(target, { maxFileSize });
        for (const w of loaded.warnings) io.err(`warning: ${w}\n`);
        io.out(
          `ok: ${loaded.files.server}, ${loaded.files.endpoints} (${loaded.table.size} endpoint${loaded.table.size === 1 ? '' : 's'})\n`,
        );
        return;
      }
      const text = await readConfigFile(target, {
        maxFileSize,
        timeoutMs: DEFAULT_READ_TIMEOUT,
        root: dirname(target),
      });
      if (typeof text !== 'string') throw new ConfigError([text]);
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
