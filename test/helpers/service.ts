// Starts the real service in-process on loopback port 0 with a config written to a temp folder, and
// captures its pino lines for assertions.

import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { ProxyOptions } from '../../src/server/proxy-setup.js';
import type { DnsLike } from '../../src/pool/index.js';
import { jsonLines } from './log-lines.js';

/** Tests never resolve through the system resolver: any DNS query made by accident fails loudly. */
export const NO_DNS: DnsLike = {
  resolveNaptr: () => Promise.reject(new Error('DNS not expected in this test')),
  resolveSrv: () => Promise.reject(new Error('DNS not expected in this test')),
  resolve4: () => Promise.reject(new Error('DNS not expected in this test')),
  resolve6: () => Promise.reject(new Error('DNS not expected in this test')),
};

export const DEFAULT_ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

export interface TestService {
  server: RunningServer;
  dir: string;
  lines: Record<string, unknown>[];
  port(transport: 'udp' | 'tcp', family?: 4 | 6): number;
  stop(): Promise<void>;
}

export async function startTestService(
  opts: { listen?: string[]; endpoints?: string; sip?: string; proxy?: Partial<ProxyOptions> } = {},
): Promise<TestService> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-test-'));
  const listen = opts.listen ?? ['udp://127.0.0.1:0', 'tcp://127.0.0.1:0'];
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n${listen.map((l) => `  - ${l}\n`).join('')}log:\n  level: debug\n${opts.sip ?? ''}`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), opts.endpoints ?? DEFAULT_ENDPOINTS);
  const lines: Record<string, unknown>[] = [];
  const sink = jsonLines(lines);
  const server = await startServer({
    configDir: dir,
    logger: pino({ level: 'debug' }, sink),
    watch: false,
    proxy: opts.proxy ?? { probe: false, dns: NO_DNS },
  });
  return {
    server,
    dir,
    lines,
    port(transport, family = 4) {
      const a = server.addresses().find((x) => x.transport === transport && x.family === family);
      if (a === undefined) throw new Error(`no ${transport} IPv${family} listener`);
      return a.port;
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
