// `pchat-endpoint serve`: runs the service (what `npm start` runs) until SIGINT or SIGTERM, which
// drain it first (503 to new requests, transactions in flight finish); SIGHUP reloads the configuration.
import { Command, Option } from 'commander';
import { ConfigError } from '../config/errors.js';
import { LOG_LEVELS } from '../config/schema.js';
import { startServer, type RunningServer } from '../server.js';
import { addConfigDirOption, type ConfigDirOptions } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

interface ServeFlags extends ConfigDirOptions {
  logLevel?: string;
}

export function serveCommand(io: CliIo): Command {
  const cmd = new Command('serve')
    .description('run the SIP service; reloads its configuration on change and on SIGHUP')
    .addOption(new Option('--log-level <level>', 'override log.level').choices(LOG_LEVELS));
  addConfigDirOption(cmd, io);
  return cmd.action(async (flags: ServeFlags) => {
    let server: RunningServer;
    try {
      server = await startServer({
        configDir: flags.configDir,
        ...(flags.logLevel === undefined ? {} : { logLevel: flags.logLevel }),
      });
    } catch (err) {
      if (err instanceof ConfigError)
        throw new CliError(EXIT.config, `configuration refused:\n${err.message}`);
      throw new CliError(EXIT.failure, `cannot start: ${err instanceof Error ? err.message : String(err)}`);
    }
    const onHup = (): void => {
      server.reload('SIGHUP').catch((err: unknown) => server.logger.error({ err }, 'reload failed'));
    };
    process.on('SIGHUP', onHup);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string): void => {
        process.off('SIGHUP', onHup);
        if (stopping) {
          // A second signal: the operator does not want to wait for the drain.
          server.logger.warn({ signal }, 'second signal: stopping without waiting for the drain');
          void server.close().then(resolve);
          return;
        }
        stopping = true;
        server.logger.info({ signal }, 'shutting down');
        // Graceful: new requests get 503 while transactions in flight finish (shutdown.drainTime).
        void server
          .drain()
          .then(() => server.close())
          .then(resolve, (err: unknown) => {
            server.logger.error({ err }, 'error while stopping');
            resolve();
          });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
  });
}
