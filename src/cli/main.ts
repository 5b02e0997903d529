#!/usr/bin/env node
// The pchat-endpoint command line: `serve` runs the service (what `npm start` runs).

import { Command, Option } from 'commander';
import { startServer } from '../server.js';
import { defaultConfigDir } from '../config/load.js';
import { ConfigError } from '../config/errors.js';

/** Exit codes, documented in the README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3 } as const;

const program = new Command();
program
  .name('pchat-endpoint')
  .description('Leads legacy Group Chat clients from well-known SIP addresses to a Persistent Chat pool')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

program
  .command('serve')
  .description('run the SIP service')
  .option(
    '-c, --config-dir <dir>',
    'folder with server.yaml and endpoints.yaml',
    process.env.PCHAT_CONFIG_DIR ?? defaultConfigDir(),
  )
  .addOption(
    new Option('--log-level <level>', 'override log.level').choices([
      'trace',
      'debug',
      'info',
      'warn',
      'error',
      'silent',
    ]),
  )
  .action(async (opts: { configDir: string; logLevel?: string }) => {
    let server;
    try {
      server = await startServer({
        configDir: opts.configDir,
        ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
      });
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`pchat-endpoint: configuration refused:\n${err.message}`);
        process.exit(EXIT.config);
      }
      console.error(`pchat-endpoint: cannot start: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(EXIT.failure);
    }
    const running = server;
    const stop = (signal: string): void => {
      running.logger.info({ signal }, 'shutting down');
      void running.close().then(() => process.exit(EXIT.ok));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

await program.parseAsync(process.argv);
