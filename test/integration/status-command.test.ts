// `pchat-endpoint status` run in-process against real instances on loopback (admin ports on port 0):
// three of them, one stopped and one loaded from an older endpoints.yaml; then against servers that
// are not a pchat-endpoint admin port: one answering 401, one answering another service's content,
// one that never answers, one that is not HTTP at all.
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { probe } from '../../src/cli/sip-probe.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { NO_DNS, startTestService, type TestService } from '../helpers/service.js';
import { startPeer, type SipPeer } from '../helpers/sip-peer.js';

const ADMIN = 'admin:\n  listen: 127.0.0.1:0\n';

const OLD = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;
const NEW = `${OLD}  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const services: TestService[] = [];
const servers: (Server | TcpServer)[] = [];

/** Sockets the plain TCP servers accepted: destroyed in teardown, as a server's close waits for them. */
const sockets: Socket[] = [];

afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.stop()));
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          if ('closeAllConnections' in s) s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

async function instance(endpoints: string): Promise<{ service: TestService; admin: string }> {
  const service = await startTestService({ endpoints, sip: ADMIN });
  services.push(service);
  const a = service.server.adminAddress()!;
  return { service, admin: `${a.host}:${a.port}` };
}

async function listening(server: Server | TcpServer): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function status(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const io: CliIo = {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    interactive: false,
    confirm: () => Promise.resolve(false),
    env,
  };
  const code = await runCli(['status', ...args], io);
  return { code, out, err };
}

/** The table's row for an instance, split into its cells. */
function row(out: string, admin: string): string[] {
  const line = out.split('\n').find((l) => l.startsWith(`${admin} `));
  if (line === undefined) throw new Error(`no row for ${admin} in:\n${out}`);
  return line.split(/ {2,}/);
}

describe('status against a fleet', () => {
  it('three instances, one stopped, one on an older table: the row of each, the odd digest marked, exit 1', async () => {
    const a = await instance(NEW);
    const b = await instance(OLD);
    const c = await instance(NEW);
    const list = [a.admin, b.admin, c.admin].join(',');

    // All three up, two tables: the older one is marked, the run fails.
    let r = await status(['--admin', list]);
    expect(r.code).toBe(EXIT.failure);
    const fresh = sha256(NEW).slice(0, 12);
    const older = sha256(OLD).slice(0, 12);
    expect(row(r.out, a.admin)).toEqual([
      a.admin,
      'yes',
      'yes',
      expect.stringMatching(/^\d+s$/),
      fresh,
      '2',
      '0',
      '0',
      '0',
    ]);
    expect(row(r.out, b.admin)).toEqual([
      b.admin,
      'yes',
      'yes',
      expect.stringMatching(/^\d+s$/),
      `${older} *`,
      '1',
      '0',
      '0',
      '0',
    ]);
    expect(row(r.out, c.admin)[4]).toBe(fresh);
    expect(r.out).toContain(`* serves another table than the 2 of 3 answering instances on ${fresh}`);
    expect(r.err).toBe('pchat-endpoint: status: the instances do not all serve the same table\n');

    // One stopped: its row says so, and why, on a line of its own.
    await c.service.stop();
    services.splice(services.indexOf(c.service), 1);
    r = await status(['--admin', list]);
    expect(r.code).toBe(EXIT.failure);
    expect(row(r.out, c.admin)).toEqual([c.admin, 'no', '-', '-', '-', '-', '-', '-', '-']);
    expect(r.out).toContain(`${c.admin}: unreachable: connection refused (no service listening there)\n`);
    // Two answering, on two tables: a tie, no majority, both marked.
    expect(row(r.out, a.admin)[4]).toBe(`${fresh} *`);
    expect(row(r.out, b.admin)[4]).toBe(`${older} *`);
    expect(r.err).toBe(
      'pchat-endpoint: status: 1 of 3 instances did not answer as a pchat-endpoint; the instances do not all serve the same table\n',
    );

    // The same as JSON, whole digests.
    r = await status(['--admin', list, '--json']);
    expect(r.code).toBe(EXIT.failure);
    const json = JSON.parse(r.out) as { ok: boolean; majority: null; instances: Record<string, unknown>[] };
    expect(json.ok).toBe(false);
    expect(json.majority).toBeNull();
    expect(json.instances).toEqual([
      expect.objectContaining({
        admin: a.admin,
        state: 'ok',
        differs: true,
        config: { sha256: sha256(NEW), endpoints: 2 },
      }),
      expect.objectContaining({
        admin: b.admin,
        state: 'ok',
        differs: true,
        config: { sha256: sha256(OLD), endpoints: 1 },
      }),
      {
        admin: c.admin,
        state: 'unreachable',
        reachable: false,
        error: expect.stringMatching(/connection refused/) as unknown,
      },
    ]);

    // The older instance takes the new table: one table, exit 0 for the two that run.
    await writeFile(join(b.service.dir, 'endpoints.yaml'), NEW);
    expect((await b.service.server.reload()).ok).toBe(true);
    r = await status(['--admin', `${a.admin},${b.admin}`]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.err).toBe('');
    expect(row(r.out, b.admin)[4]).toBe(fresh);
    expect(r.out).not.toContain('*');
  });

  it('in flight and ready as the instance sees them: a draining instance is not ready', async () => {
    const a = await instance(NEW);
    await a.service.server.drain(0);
    const r = await status(['--admin', a.admin]);
    expect(r.code).toBe(EXIT.ok);
    expect(row(r.out, a.admin)[2]).toBe('no');
  });
});

describe('status: pool members and transactions in flight', () => {
  it('members up and down as the instance probes them (one answering OPTIONS, one silent), an unanswered INVITE in flight', async () => {
    const peers: SipPeer[] = [];
    try {
      const alive = await startPeer('udp', (req) => (req.method === 'OPTIONS' ? [{ status: 200 }] : []));
      peers.push(alive);
      const silent = await startPeer('udp', () => []);
      peers.push(silent);
      const service = await startTestService({
        endpoints: `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${alive.port};transport=udp
      - uri: sip:127.0.0.1:${silent.port};transport=udp
`,
        sip: `sip:\n  t1: 100\n${ADMIN}`,
        proxy: { dns: NO_DNS, probe: { intervalMs: 100, timeoutMs: 150, upThreshold: 1, downThreshold: 1 } },
      });
      services.push(service);
      const a = service.server.adminAddress()!;
      const admin = `${a.host}:${a.port}`;
      // Bounded wait for the silent member's first probe to time out.
      let cells: string[] = [];
      for (let i = 0; i < 100; i++) {
        const r = await status(['--admin', admin]);
        cells = row(r.out, admin);
        if (cells[8] === '1') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(cells.slice(7)).toEqual(['1', '1']);
      expect(silent.received.some((r) => r.method === 'OPTIONS')).toBe(true);
      expect(cells[6]).toBe('0');

      // An INVITE the member never answers is held: in flight until its timers end it.
      const call = probe({
        host: '127.0.0.1',
        port: service.port('udp'),
        method: 'INVITE',
        uri: 'sip:ocschat@contoso.com',
        timeoutMs: 1000,
      });
      for (let i = 0; i < 40 && cells[6] === '0'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        cells = row((await status(['--admin', admin])).out, admin);
      }
      expect(Number(cells[6])).toBeGreaterThanOrEqual(1);
      await call;
    } finally {
      await Promise.all(peers.map((p) => p.close()));
    }
  });
});

describe('status given what is not a pchat-endpoint admin port', () => {
  it('401, another service, no answer, not HTTP, a closed port: a clear line each, no stack trace, exit 1', async () => {
    const seen: (string | undefined)[] = [];
    const auth = await listening(
      createHttpServer((req, res) => {
        seen.push(req.headers.authorization);
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end('no\n');
      }),
    );
    const other = await listening(
      createHttpServer((_req, res) =>
        res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>hello</h1>'),
      ),
    );
    const json = await listening(
      createHttpServer((_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'),
      ),
    );
    const missing = await listening(createHttpServer((_req, res) => res.writeHead(404).end()));
    // A large answer is not read whole.
    const large = await listening(
      createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const more = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', more);
        };
        more();
      }),
    );
    // Accepts and never answers.
    const silent = await listening(createTcpServer((s) => void sockets.push(s)));
    const notHttp = await listening(
      createTcpServer((s) => {
        sockets.push(s);
        s.end('SSH-2.0-OpenSSH_9.2\r\n');
      }),
    );
    const closed = await listening(createTcpServer());
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));

    const list = [auth, other, json, missing, large, silent, notHttp, closed].join(',');
    const t0 = performance.now();
    const r = await status(['--admin', list, '--timeout', '500']);
    // Asked at once: the silent one's timeout is the run's, not the sum.
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.code).toBe(EXIT.failure);
    const lines = r.out.split('\n');
    const note = (admin: string): string | undefined => lines.find((l) => l.startsWith(`${admin}: `));
    expect(note(auth)).toBe(
      `${auth}: answered 401: it wants a bearer token (give --token or set PCHAT_ADMIN_TOKEN)`,
    );
    expect(note(other)).toBe(`${other}: answered 200 with text/html, not a pchat-endpoint status`);
    expect(note(json)).toBe(`${json}: answered 200 with application/json, not a pchat-endpoint status`);
    expect(note(missing)).toBe(
      `${missing}: answered 404 to GET /status: not a pchat-endpoint admin port (or one from before status)`,
    );
    expect(note(large)).toBe(
      `${large}: answered 200 with application/octet-stream, not a pchat-endpoint status`,
    );
    expect(note(silent)).toBe(`${silent}: unreachable: no answer within 500 ms`);
    expect(note(notHttp)).toBe(`${notHttp}: answered something that is not HTTP: not an admin port`);
    expect(row(r.out, notHttp)[1]).toBe('yes');
    expect(note(closed)).toBe(`${closed}: unreachable: connection refused (no service listening there)`);
    expect(row(r.out, auth)[1]).toBe('yes');
    expect(row(r.out, silent)[1]).toBe('no');
    expect(r.err).toBe('pchat-endpoint: status: 8 of 8 instances did not answer as a pchat-endpoint\n');
    expect(`${r.out}${r.err}`).not.toMatch(/\n\s+at /);

    // The token, from the environment or the flag, is sent; refused, it says so.
    const withToken = await status(['--admin', auth], { PCHAT_ADMIN_TOKEN: 'env-token-0123456789' });
    expect(withToken.out).toContain(`${auth}: answered 401: the token was refused`);
    await status(['--admin', auth, '--token', 'flag-token-0123456789'], { PCHAT_ADMIN_TOKEN: 'env' });
    expect(seen).toEqual([undefined, 'Bearer env-token-0123456789', 'Bearer flag-token-0123456789']);
  });

  it('a malformed --admin list or timeout is a usage error naming it; nothing is asked', async () => {
    for (const [args, message] of [
      [['--admin', '127.0.0.1:9090,,127.0.0.2:9090'], /--admin: entry 2 is empty/],
      [['--admin', 'localhost'], /--admin: "localhost" is not HOST:PORT/],
      [['--admin', '127.0.0.1:99999'], /--admin: "127\.0\.0\.1:99999" is not HOST:PORT/],
      [['--admin', '127.0.0.1:9090', '--timeout', 'soon'], /--timeout: expected milliseconds/],
      [[], /required option '--admin/],
    ] as const) {
      const r = await status([...args]);
      expect(r.code).toBe(EXIT.usage);
      expect(r.err).toMatch(message);
      expect(r.out).toBe('');
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });
});
