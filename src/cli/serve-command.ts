// `pchat-endpoint serve`: runs the service (what `npm start` runs) until SIGINT or SIGTERM, which
// drain it first (503 to new requests, transactions in flight finish), then destroy every connection
// and exit; a second signal exits at once. SIGHUP reloads the configuration.
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config/errors.js';
import { LOG_LEVELS, parseListenAddress, type ListenAddress } from '../config/schema.js';
import type { Logger } from 'pino';
import { startServer, type RunningServer } from '../server/server.js';
import { addConfigDirOption, isShippedExample, MAKE_CONFIG_DIR, type ConfigDirOptions } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';
import { withTimeout } from '../base/with-timeout.js';

interface ServeFlags extends ConfigDirOptions {
  logLevel?: string;
  listen?: ListenAddress[];
}

/** One --listen value, added to those before it; a malformed one is refused before anything starts. */
function collectListen(text: string, previous: ListenAddress[] | undefined): ListenAddress[] {
  const a = parseListenAddress(text);
  if (typeof a === 'string') throw new InvalidArgumentError(a);
  return [...(previous ?? []), a];
}

/**
 * After the drain, how long closing (every connection destroyed, listeners and files closed) may
 * take, and then how long anything still open may keep the process alive: past either, it exits.
 */
const CLOSE_GRACE_MS = 2000;

export function serveCommand(io: CliIo): Command {
  const cmd = new Command('serve')
    .description('run the SIP service; reloads its configuration on change and on SIGHUP')
    .addOption(new Option('--log-level <level>', 'override log.level').choices(LOG_LEVELS))
    .addOption(
      new Option(
        '--listen <transport://host:port>',
        "listen here instead of server.yaml's listen (repeatable): instances sharing one folder, each on its own address",
      ).argParser(collectListen),
    );
  addConfigDirOption(cmd, io);
  return cmd.action(async (flags: ServeFlags) => {
    if (isShippedExample(flags.configDir))
      io.err(
        `pchat-endpoint: serving the example configuration, read-only (${flags.configDir}): ${MAKE_CONFIG_DIR}\n`,
      );
    let server: RunningServer;
    try {
      server = await startServer({
        configDir: flags.configDir,
        ...(flags.logLevel === undefined ? {} : { logLevel: flags.logLevel }),
        ...(flags.listen === undefined ? {} : { listen: flags.listen }),
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
          // A second signal: the operator does not want to wait for the drain, nor for anything
          // still open (a connection, a file read) to let go.
          server.logger.warn({ signal }, 'second signal: exiting at once, without waiting for the drain');
          exitNow(server.logger, EXIT.failure);
          return;
        }
        stopping = true;
        server.logger.info({ signal }, 'shutting down');
        // Graceful: new requests get 503 while transactions in flight finish (shutdown.drainTime);
        // then close() destroys every connection, inbound and outbound, finished handshake or not.
        const done = (): void => {
          // Whatever close() could not release must not keep the process: an unref'd timer fires
          // only if something else still holds the event loop.
          setTimeout(() => {
            server.logger.warn('still open after stopping: exiting anyway');
            exitNow(server.logger, EXIT.ok);
          }, CLOSE_GRACE_MS).unref();
          resolve();
        };
        void server
          .drain()
          .then(() =>
            withTimeout(
              server.close().then(() => true),
              CLOSE_GRACE_MS,
              () => false,
            ),
          )
          .then(
            (closed) => {
              if (closed) return done();
              server.logger.warn({ graceMs: CLOSE_GRACE_MS }, 'stopping took too long: exiting anyway');
              exitNow(server.logger, EXIT.ok);
            },
            (err: unknown) => {
              server.logger.error({ err }, 'error while stopping');
              done();
            },
          );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
  });
}

/** Exits once the log lines buffered are written, or after 200 ms whatever holds them. */
function exitNow(logger: Logger, code: number): void {
  setTimeout(() => process.exit(code), 200);
  logger.flush(() => process.exit(code));
}
