// Composition root: reads the configuration, wires router, transactions and transports, and starts
// and stops the listeners.

import type { Logger } from 'pino';
import { loadConfig, type LoadedConfig } from './config/load.js';
import type { EndpointTable } from './endpoints/table.js';
import { createLogger, flushLogger } from './log.js';
import { Router } from './router/router.js';
import type { Clock } from './transaction/clock.js';
import { TimerWheel } from './transaction/timer-wheel.js';
import { TcpListener } from './transport/tcp.js';
import type { BoundAddress } from './transport/types.js';
import { UdpListener } from './transport/udp.js';

export interface StartOptions {
  /** Folder holding server.yaml and endpoints.yaml. */
  readonly configDir: string;
  /** Logger to use instead of the one server.yaml describes (tests capture lines this way). */
  readonly logger?: Logger;
  /** Overrides server.yaml's log level. */
  readonly logLevel?: string;
  readonly clock?: Clock;
}

export interface RunningServer {
  /** Where the service listens, with the ports the system chose for port 0. */
  addresses(): BoundAddress[];
  readonly router: Router;
  readonly logger: Logger;
  readonly config: LoadedConfig;
  close(): Promise<void>;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const config = await loadConfig(opts.configDir);
  const { server } = config;
  const logger =
    opts.logger ?? createLogger({ level: opts.logLevel ?? server.log.level, pretty: server.log.pretty });
  for (const w of config.warnings) logger.warn({ warning: w }, 'configuration warning');
  const table: EndpointTable = config.table;
  const router = new Router({
    table: () => table,
    logger,
    clock: opts.clock ?? new TimerWheel(),
    timers: { t1: server.sip.t1, t2: server.sip.t2, t4: server.sip.t4 },
    maxMessageSize: server.sip.maxMessageSize,
    serverHeader: server.sip.serverHeader,
  });

  const udp: UdpListener[] = [];
  const tcp: TcpListener[] = [];
  const onError = (err: Error): void => logger.warn({ err }, 'transport error');
  try {
    for (const l of server.listen) {
      if (l.transport === 'udp') {
        udp.push(await UdpListener.listen({ host: l.host, port: l.port, onError }, router.onMessage));
      } else {
        tcp.push(
          await TcpListener.listen(
            { host: l.host, port: l.port, maxMessageSize: server.sip.maxMessageSize, onError },
            router.onMessage,
            router.onFramingError,
          ),
        );
      }
    }
  } catch (err) {
    await Promise.all([...udp.map((u) => u.close()), ...tcp.map((t) => t.close())]);
    throw err;
  }

  const addresses = (): BoundAddress[] => [...udp.map((u) => u.address), ...tcp.map((t) => t.address)];
  for (const a of addresses())
    logger.info({ transport: a.transport, host: a.host, port: a.port }, 'listening');
  logger.info(
    { endpoints: table.size, files: config.files },
    `endpoint table loaded: ${table.size} endpoint${table.size === 1 ? '' : 's'}`,
  );

  let closed = false;
  return {
    addresses,
    router,
    logger,
    config,
    async close() {
      if (closed) return;
      closed = true;
      router.transactions.clear();
      await Promise.all([...udp.map((u) => u.close()), ...tcp.map((t) => t.close())]);
      logger.info('stopped');
      flushLogger(logger);
    },
  };
}
