// `pchat-endpoint serve`: runs the service (what `npm start` runs) until SIGINT or SIGTERM; SIGHUP
// reloads the configuration.
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
      const stop = (signal: string): void => {
        server.logger.info({ signal }, 'shutting down');
        process.off('SIGHUP', onHup);
        void server.close().then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  });
}
