// pchat_homing_decisions_total on /metrics: each decision for an endpoint with homing rules counted
// by the pool chosen and the rule that chose it (or "default"), one series per rule and pool however
// many callers there are; endpoints without homing rules not counted.
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { NO_DNS } from '../helpers/service.js';

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing:
      - callers: "*@emea.contoso.com"
        pool: pc-emea.contoso.com
      - users: users.csv
  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
pools:
  - fqdn: pc-us.contoso.com
    targets: [{ uri: "sip:10.0.0.1:5061;transport=tls" }]
  - fqdn: pc-emea.contoso.com
    targets: [{ uri: "sip:10.0.0.2:5061;transport=tls" }]
  - fqdn: pc-apac.contoso.com
    targets: [{ uri: "sip:10.0.0.3:5061;transport=tls" }]
`;

let server: RunningServer | undefined;
let dir = '';

afterEach(async () => {
  await server?.close();
  server = undefined;
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Sends an INVITE for `service` from `from` and waits for its final response. */
async function invite(port: number, service: string, from: string): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const local = sock.address().port;
  const id = Math.random().toString(36).slice(2);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer')), 3000);
      sock.on('message', (m) => {
        if (!/^SIP\/2\.0 [2-6]/.test(m.toString('latin1'))) return;
        clearTimeout(timer);
        resolve();
      });
      sock.send(
        `INVITE sip:${service}@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK${id}\r\n` +
          `From: <${from}>;tag=${id}\r\nTo: <sip:${service}@contoso.com>\r\nCall-ID: ${id}@test\r\n` +
          `CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:${local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
        port,
        '127.0.0.1',
      );
    });
  } finally {
    sock.close();
  }
}

/** The pchat_homing_decisions_total lines of a scrape of /metrics, sorted. */
async function homingLines(): Promise<string[]> {
  const admin = server!.adminAddress()!;
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('pchat_homing_decisions_total{'))
    .sort();
}

it('pchat_homing_decisions_total counts decisions by endpoint, pool chosen and rule (default when none chose)', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-homing-metrics-'));
  await writeFile(
    join(dir, 'server.yaml'),
    'listen:\n  - udp://127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\n',
  );
  await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
  await writeFile(join(dir, 'users.csv'), 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n');
  server = await startServer({
    configDir: dir,
    logger: pino({ level: 'warn' }, { write: () => undefined }),
    watch: false,
    proxy: { probe: false, dns: NO_DNS },
  });
  const port = server.addresses().find((a) => a.transport === 'udp')!.port;
  await invite(port, 'ocschat', 'sip:marie@emea.contoso.com');
  await invite(port, 'ocschat', 'sip:jan@emea.contoso.com');
  await invite(port, 'ocschat', 'sip:akira@contoso.com');
  // Many callers on the default: still one series.
  for (let i = 0; i < 12; i++) await invite(port, 'ocschat', `sip:caller${i}@contoso.com`);
  // No homing rules: not counted.
  await invite(port, 'persistentchat', 'sip:akira@contoso.com');
  const e = 'endpoint="sip:ocschat@contoso.com"';
  expect(await homingLines()).toEqual([
    `pchat_homing_decisions_total{${e},pool="pc-apac.contoso.com",rule="users users.csv"} 1`,
    `pchat_homing_decisions_total{${e},pool="pc-emea.contoso.com",rule="callers *@emea.contoso.com"} 2`,
    `pchat_homing_decisions_total{${e},pool="pc-us.contoso.com",rule="default"} 12`,
  ]);

  // A wave moves akira to pc-emea: the reloaded table's choice is counted.
  await writeFile(join(dir, 'users.csv'), 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-emea.contoso.com\n');
  expect((await server.reload('test')).ok).toBe(true);
  await invite(port, 'ocschat', 'sip:akira@contoso.com');
  await invite(port, 'ocschat', 'sip:bob@contoso.com');
  expect(await homingLines()).toEqual([
    `pchat_homing_decisions_total{${e},pool="pc-apac.contoso.com",rule="users users.csv"} 1`,
    `pchat_homing_decisions_total{${e},pool="pc-emea.contoso.com",rule="callers *@emea.contoso.com"} 2`,
    `pchat_homing_decisions_total{${e},pool="pc-emea.contoso.com",rule="users users.csv"} 1`,
    `pchat_homing_decisions_total{${e},pool="pc-us.contoso.com",rule="default"} 13`,
  ]);
});
