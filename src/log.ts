// Logger construction: pino JSON lines, pretty on a terminal, credentials redacted.

import { pino, type Logger, type DestinationStream } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LogOptions {
  readonly level: string;
  /** 'auto' prints pretty lines when stdout is a terminal. */
  readonly pretty: boolean | 'auto';
}

// DESIGN.md: Authorization and Proxy-Authorization never reach the logs.
const REDACT = ['authorization', 'proxyAuthorization', '*.authorization', '*.proxyAuthorization'];

export function createLogger(opts: LogOptions, destination?: DestinationStream): Logger {
  const base = { level: opts.level, base: { service: 'pchat-endpoint' }, redact: REDACT };
  if (destination !== undefined) return pino(base, destination);
  const pretty = opts.pretty === 'auto' ? process.stdout.isTTY : opts.pretty;
  if (pretty)
    return pino(
      base,
      pinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }),
    );
  // Buffered, asynchronous writes keep logging off the hot path; flushed on shutdown.
  return pino(base, pino.destination({ dest: 1, sync: false, minLength: 4096 }));
}

/** Write out anything the logger still buffers (before exit). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // A destination that cannot flush synchronously has nothing left to lose.
  }
}
