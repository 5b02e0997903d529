// Homing on the native engine: one well-known address, each caller led to their own pool by the
// endpoint's rules (a pattern on the caller, a CSV user table), a 302 naming that pool; the user
// table reloaded live, a bad row refused at file:line with the last good table serving.
import dgram from 'node:dgram';
import { mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { jsonLines } from '../helpers/log-lines.js';
import { NO_DNS } from '../helpers/service.js';
import { requireSipp, runSipp } from '../helpers/sipp.js';
import { startSippServer } from '../helpers/sipp-server.js';

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing:
      - callers: "*@emea.contoso.com"
        pool: pc-emea.contoso.com
      - users: users.csv
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
const lines: Record<string, unknown>[] = [];

afterEach(async () => {
  await server?.close();
  server = undefined;
  if (dir !== '') await rm(dir, { recursive: true, force: true });
  lines.length = 0;
});

/** The service on a folder of its own with this users.csv; its UDP port. */
async function start(
  users: string,
  opts: { watch?: boolean; serverYaml?: string; endpoints?: string } = {},
): Promise<number> {
  const watch = opts.watch ?? false;
  dir = await mkdtemp(join(tmpdir(), 'pchat-homing-'));
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:0\nlog:\n  level: info\n${opts.serverYaml ?? ''}`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), opts.endpoints ?? ENDPOINTS);
  await writeFile(join(dir, 'users.csv'), users);
  server = await startServer({
    configDir: dir,
    logger: pino({ level: 'info' }, jsonLines(lines)),
    watch,
    reloadDebounceMs: 50,
    proxy: { probe: false, dns: NO_DNS },
  });
  return server.addresses().find((a) => a.transport === 'udp')!.port;
}

/** An INVITE from `from` (asserting `asserted` when given), its final response's Contact. */
async function contactFor(port: number, from: string, asserted?: string): Promise<string> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const local = sock.address().port;
  const id = Math.random().toString(36).slice(2);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer')), 3000);
      sock.on('message', (m) => {
        const text = m.toString('latin1');
        if (!/^SIP\/2\.0 [2-6]/.test(text)) return;
        clearTimeout(timer);
        resolve(/^Contact: (.*)$/im.exec(text)?.[1] ?? text.split('\r\n')[0]!);
      });
      sock.send(
        `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK${id}\r\n` +
          `From: "Caller" <${from}>;tag=${id}\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${id}@test\r\n` +
          `CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:${local}>\r\nMax-Forwards: 70\r\n` +
          (asserted === undefined ? '' : `P-Asserted-Identity: <${asserted}>\r\n`) +
          'Content-Length: 0\r\n\r\n',
        port,
        '127.0.0.1',
      );
    });
  } finally {
    sock.close();
  }
}

it('each caller is led to their own pool: a caller pattern, the user table, the default', async () => {
  const port = await start('SipAddress,PoolFqdn\n# wave 1\nsip:Akira@contoso.com,pc-apac.contoso.com\n');
  expect(await contactFor(port, 'sip:marie@emea.contoso.com')).toBe('<sip:10.0.0.2:5061;transport=tls>');
  expect(await contactFor(port, 'sip:akira@contoso.com')).toBe('<sip:10.0.0.3:5061;transport=tls>');
  expect(await contactFor(port, 'sip:bob@contoso.com')).toBe('<sip:10.0.0.1:5061;transport=tls>');
  const decisions = lines.filter((l) => l['msg'] === 'decision');
  expect(decisions.map((d) => [d['pool'], d['homing']])).toEqual([
    ['pc-emea.contoso.com', 'callers *@emea.contoso.com'],
    ['pc-apac.contoso.com', 'users users.csv'],
    [undefined, undefined],
  ]);
});

it('a wave moved by editing users.csv applies on reload; a bad row is refused at file:line, the last good table serving', async () => {
  const port = await start('SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n');
  await writeFile(join(dir, 'users.csv'), 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-emea.contoso.com\n');
  expect((await server!.reload('test')).ok).toBe(true);
  expect(await contactFor(port, 'sip:akira@contoso.com')).toBe('<sip:10.0.0.2:5061;transport=tls>');
  await writeFile(
    join(dir, 'users.csv'),
    'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-us.contoso.com\nsip:bob@contoso.com,nowhere.contoso.com\n',
  );
  const refused = await server!.reload('test');
  expect(refused.ok).toBe(false);
  expect(JSON.stringify(refused)).toContain('users.csv:3:');
  expect(JSON.stringify(refused)).toContain(
    'pool \\"nowhere.contoso.com\\" is not a pool any endpoint or pools entry names',
  );
  expect(await contactFor(port, 'sip:akira@contoso.com')).toBe('<sip:10.0.0.2:5061;transport=tls>');
});

it('a users.csv of 2 GB is refused unread, with its size and config.maxUserTableSize; the last good table serves', async () => {
  const port = await start('SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n');
  // 2 GiB without writing them: a sparse file, renamed in as an editor would.
  const fh = await open(join(dir, '.big'), 'w');
  await fh.truncate(2 * 1024 ** 3);
  await fh.close();
  await rename(join(dir, '.big'), join(dir, 'users.csv'));
  const rss0 = process.memoryUsage().rss;
  const refused = await server!.reload('test');
  expect(refused.ok).toBe(false);
  expect(JSON.stringify(refused)).toContain(
    `users.csv: is ${2 * 1024 ** 3} bytes, over the limit of ${256 * 1024 ** 2} bytes (config.maxUserTableSize): not read`,
  );
  expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * 1024 * 1024);
  expect(await contactFor(port, 'sip:akira@contoso.com')).toBe('<sip:10.0.0.3:5061;transport=tls>');
});

it('the folder watch takes an edit of users.csv alone (endpoints.yaml untouched) as a change', async () => {
  const port = await start('SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n', {
    watch: true,
  });
  await writeFile(join(dir, 'users.csv'), 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-emea.contoso.com\n');
  const t0 = Date.now();
  while (!lines.some((l) => String(l['msg']).startsWith('reload applied')) && Date.now() - t0 < 5000)
    await new Promise((r) => setTimeout(r, 20));
  expect(await contactFor(port, 'sip:akira@contoso.com')).toBe('<sip:10.0.0.2:5061;transport=tls>');
});

it('P-Asserted-Identity names the caller only from a network access.trustIdentity lists; otherwise the From does', async () => {
  const users = 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n';
  // A forged From (a user homed elsewhere) from an untrusted source is what decides: the PAI is ignored.
  let port = await start(users, { serverYaml: 'access:\n  trustIdentity: [192.0.2.0/24]\n' });
  expect(await contactFor(port, 'sip:bob@contoso.com', 'sip:akira@contoso.com')).toBe(
    '<sip:10.0.0.1:5061;transport=tls>',
  );
  await server!.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
  // From a trusted network (a Front End on loopback here), the asserted identity decides.
  port = await start(users, { serverYaml: 'access:\n  trustIdentity: [127.0.0.0/8]\n' });
  expect(await contactFor(port, 'sip:bob@contoso.com', 'sip:akira@contoso.com')).toBe(
    '<sip:10.0.0.3:5061;transport=tls>',
  );
});

it("proxy and lookup follow the caller's pool too (SIPp clients legacy1 and legacy2, legacy1 homed elsewhere)", async () => {
  requireSipp();
  const home = await startSippServer({ scenario: 'pool-uas', transport: 'udp', calls: 1, timeoutMs: 20_000 });
  const other = await startSippServer({
    scenario: 'pool-uas',
    transport: 'udp',
    calls: 1,
    timeoutMs: 20_000,
  });
  try {
    const port = await start('SipAddress,PoolFqdn\nsip:legacy1@contoso.com,pc-emea.contoso.com\n', {
      endpoints: `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: proxy
    homing: [{ users: users.csv }]
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: lookup
    homing: [{ users: users.csv }]
pools:
  - fqdn: pc-us.contoso.com
    targets: [{ uri: "sip:127.0.0.1:${other.port};transport=udp" }]
  - fqdn: pc-emea.contoso.com
    targets: [{ uri: "sip:127.0.0.1:${home.port};transport=udp" }]
    lookupUris: ["sip:chat@pc-emea.contoso.com;transport=tls"]
`,
    });
    const proxied = await runSipp({
      scenario: 'proxy-uac',
      target: { host: '127.0.0.1', port },
      transport: 'udp',
      calls: 2,
      rate: 10,
      extraArgs: ['-l', '1'],
      vars: { service: 'ocschat', domain: 'contoso.com' },
      timeoutMs: 20_000,
    });
    expect(proxied.successful, proxied.errors).toBe(2);
    const invites = lines.filter(
      (l) => l['msg'] === 'decision' && l['method'] === 'INVITE' && l['mode'] === 'proxy',
    );
    expect(invites.map((l) => [l['target'], l['pool'] ?? null])).toEqual([
      [`udp:127.0.0.1:${home.port}`, 'pc-emea.contoso.com'],
      [`udp:127.0.0.1:${other.port}`, null],
    ]);
    const looked = await runSipp({
      scenario: 'lookup-uac',
      target: { host: '127.0.0.1', port },
      transport: 'udp',
      calls: 2,
      rate: 10,
      extraArgs: ['-l', '1'],
      vars: { service: 'lookup', domain: 'contoso.com' },
      timeoutMs: 20_000,
    });
    expect(looked.successful, looked.errors).toBe(2);
    const handouts = lines.filter((l) => l['outcome'] === 'lookup-handout').map((l) => l['target']);
    // legacy1 is handed the URI the emea pool's entry gives; legacy2, the default pool's.
    expect(handouts).toEqual(['sip:chat@pc-emea.contoso.com;transport=tls', 'sip:lookup@pc-us.contoso.com']);
  } finally {
    home.stop();
    other.stop();
  }
});

it('proxy: P-Asserted-Identity from a trusted SIPp caller (127.0.0.2) homes it; the same request from an untrusted one (127.0.0.1) follows its From', async () => {
  requireSipp();
  const emea = await startSippServer({ scenario: 'pool-uas', transport: 'udp', calls: 1, timeoutMs: 20_000 });
  const us = await startSippServer({ scenario: 'pool-uas', transport: 'udp', calls: 1, timeoutMs: 20_000 });
  try {
    const port = await start('SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-emea.contoso.com\n', {
      serverYaml: 'access:\n  trustIdentity: [127.0.0.2/32]\n',
      endpoints: `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: proxy
    homing: [{ users: users.csv }]
pools:
  - fqdn: pc-us.contoso.com
    targets: [{ uri: "sip:127.0.0.1:${us.port};transport=udp" }]
  - fqdn: pc-emea.contoso.com
    targets: [{ uri: "sip:127.0.0.1:${emea.port};transport=udp" }]
`,
    });
    // The legacy client's scenario, its INVITE asserting akira (a Front End would, for the user it
    // authenticated); its From stays legacy1, a user the table does not list.
    const scenario = join(dir, 'asserting-uac.xml');
    const xml = await readFile(new URL('../sipp/proxy-uac.xml', import.meta.url), 'utf8');
    await writeFile(
      scenario,
      xml.replace(/(From: [^\n]*\n)/, '$1      P-Asserted-Identity: <sip:akira@[domain]>\n'),
    );
    const call = (from: string) =>
      runSipp({
        scenario,
        target: { host: '127.0.0.1', port },
        transport: 'udp',
        calls: 1,
        extraArgs: ['-i', from],
        vars: { service: 'ocschat', domain: 'contoso.com' },
        timeoutMs: 20_000,
      });
    const trusted = await call('127.0.0.2');
    expect(trusted.successful, trusted.errors).toBe(1);
    const untrusted = await call('127.0.0.1');
    expect(untrusted.successful, untrusted.errors).toBe(1);
    const invites = lines.filter((l) => l['msg'] === 'decision' && l['method'] === 'INVITE');
    expect(invites.map((l) => [l['target'], l['pool'] ?? null])).toEqual([
      [`udp:127.0.0.1:${emea.port}`, 'pc-emea.contoso.com'],
      [`udp:127.0.0.1:${us.port}`, null],
    ]);
  } finally {
    emea.stop();
    us.stop();
  }
});
