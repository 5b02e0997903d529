// The service on the drachtio engine, in-process, connected to real drachtio-servers started by
// test/helpers/drachtio.ts, with a config written to a temp folder and its pino lines captured.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { ProxyOptions } from '../../src/server/proxy-setup.js';
import type { LookupSettings } from '../../src/modes/lookup/lookup-service.js';
import type { DrachtioHandle } from './drachtio.js';
import { jsonLines } from './log-lines.js';
import { NO_DNS } from './service.js';

export interface DrachtioService {
  readonly server: RunningServer;
  readonly dir: string;
  readonly lines: Record<string, unknown>[];
  /** Decision lines logged so far. */
  decisions(): Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface DrachtioServiceOptions {
  /** Inbound: the drachtio-servers to connect to. */
  readonly servers?: readonly Pick<DrachtioHandle, 'adminPort' | 'secret'>[];
  /** Outbound: listen here for drachtio-servers instead. */
  readonly listen?: { readonly port: number; readonly secret: string };
  readonly endpoints: string;
  /** More server.yaml text (top-level sections). */
  readonly serverYaml?: string;
  readonly proxy?: Partial<ProxyOptions>;
  readonly lookup?: Partial<LookupSettings>;
  readonly watch?: boolean;
  /** Wait until connected to a drachtio-server (default true for inbound). */
  readonly waitReady?: boolean;
}

export function drachtioServerYaml(
  o: Pick<DrachtioServiceOptions, 'servers' | 'listen' | 'serverYaml'>,
): string {
  const servers =
    o.servers === undefined
      ? ''
      : `  servers:\n${o.servers.map((s) => `    - { host: 127.0.0.1, port: ${s.adminPort}, secret: ${s.secret} }\n`).join('')}`;
  const listen =
    o.listen === undefined
      ? ''
      : `  listen: { address: 127.0.0.1, port: ${o.listen.port}, secret: ${o.listen.secret} }\n`;
  return (
    `engine: drachtio\ndrachtio:\n${servers}${listen}  reconnect: { max: 500 }\n` +
    `log:\n  level: debug\n${o.serverYaml ?? ''}`
  );
}

export async function startDrachtioService(o: DrachtioServiceOptions): Promise<DrachtioService> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-drachtio-'));
  await writeFile(join(dir, 'server.yaml'), drachtioServerYaml(o));
  await writeFile(join(dir, 'endpoints.yaml'), o.endpoints);
  const lines: Record<string, unknown>[] = [];
  const server = await startServer({
    configDir: dir,
    logger: pino({ level: 'debug' }, jsonLines(lines)),
    watch: o.watch ?? false,
    reloadDebounceMs: 50,
    proxy: o.proxy ?? { probe: false, dns: NO_DNS },
    ...(o.lookup === undefined ? {} : { lookup: o.lookup }),
  });
  const svc: DrachtioService = {
    server,
    dir,
    lines,
    decisions: () => lines.filter((l) => l['msg'] === 'decision'),
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (o.waitReady ?? o.servers !== undefined)
    await waitFor(() => server.ready(), 10_000, 'connected to drachtio');
  return svc;
}

/** Polls `cond` every 20 ms until it holds; throws after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
