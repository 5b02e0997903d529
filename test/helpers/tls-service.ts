// The real service in-process with TLS (and WebSocket) listeners on loopback port 0: certificates
// from test/helpers/certs.ts, server.yaml's tls section written by the test, pino lines captured.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { ProxyOptions } from '../../src/server/proxy-setup.js';
import type { TransportName } from '../../src/transport/types.js';
import { DEFAULT_ENDPOINTS, NO_DNS } from './service.js';
import { jsonLines } from './log-lines.js';

export interface TlsTestService {
  readonly server: RunningServer;
  readonly dir: string;
  readonly lines: Record<string, unknown>[];
  port(transport: TransportName): number;
  /** Resolves with the first log line whose msg matches, or rejects after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startTlsService(opts: {
  listen: string[];
  /** The tls section's body, indented by two spaces. */
  tls: string;
  endpoints?: string;
  proxy?: Partial<ProxyOptions>;
  /** Watch the configuration and certificate files (default false). */
  watch?: boolean;
  extra?: string;
}): Promise<TlsTestService> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-tls-test-'));
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n${opts.listen.map((l) => `  - ${l}\n`).join('')}log:\n  level: debug\ntls:\n${opts.tls}${opts.extra ?? ''}`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), opts.endpoints ?? DEFAULT_ENDPOINTS);
  const lines: Record<string, unknown>[] = [];
  const sink = jsonLines(lines);
  const server = await startServer({
    configDir: dir,
    logger: pino({ level: 'debug' }, sink),
    watch: opts.watch ?? false,
    reloadDebounceMs: 50,
    proxy: opts.proxy ?? { probe: false, dns: NO_DNS },
  });
  return {
    server,
    dir,
    lines,
    port(transport) {
      const a = server.addresses().find((x) => x.transport === transport);
      if (a === undefined) throw new Error(`no ${transport} listener`);
      return a.port;
    },
    async waitForLine(pattern, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.find((l) => typeof l.msg === 'string' && pattern.test(l.msg));
        if (hit !== undefined) return hit;
        if (Date.now() > deadline) throw new Error(`no log line matching ${String(pattern)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A TLS client on loopback that collects what it receives. */
export async function tlsClient(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{
  socket: tls.TLSSocket;
  waitFor(pred: (data: string) => boolean, timeoutMs?: number): Promise<string>;
  readonly data: string;
  readonly closed: boolean;
  waitClosed(timeoutMs?: number): Promise<void>;
  close(): void;
}> {
  const socket = tls.connect({ host: '127.0.0.1', port, ...options });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  let data = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  const poll = async (done: () => boolean, timeoutMs: number, what: () => string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    socket,
    async waitFor(pred, timeoutMs = 3000) {
      await poll(
        () => pred(data),
        timeoutMs,
        () => `received ${JSON.stringify(data)}`,
      );
      return data;
    },
    get data() {
      return data;
    },
    get closed() {
      return closed;
    },
    waitClosed: (timeoutMs = 3000) =>
      poll(
        () => closed,
        timeoutMs,
        () => 'connection still open',
      ),
    close: () => socket.destroy(),
  };
}
