// The admin port as an attacker on the same machine meets it, over raw HTTP on loopback so the test
// controls the request line, Host and Origin: malformed targets get 404 (never 500), a Host that does
// not name the port gets 421 (DNS rebinding), an Origin not configured gets 403 (a web page POSTing
// /reload), and POST /reload needs the bearer token when one is configured. Scrapes, reloads and the
// CLI's own call (trace's live health) keep working.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { liveHealth } from '../../src/cli/trace-command.js';
import { loadConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

let dir: string | undefined;
let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const TOKEN = 'c2VjcmV0LXRva2VuLWZvci10ZXN0cw';

const TABLE = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:9;transport=udp
`;

/** Starts the service with `admin` as the admin section (YAML, indented under `admin:`). */
async function start(admin: string, files: Record<string, string> = {}): Promise<RunningServer> {
  dir = await mkdtemp(join(tmpdir(), 'pchat-admin-sec-'));
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:0\nproxy:\n  probe:\n    enabled: false\nadmin:\n${admin}`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), TABLE);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  server = await startServer({ configDir: dir, logger: pino({ level: 'silent' }), watch: false });
  return server;
}

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Sends `head` (request line and headers, without the blank line) as written; reads until close. */
function raw(s: RunningServer, head: string, body = ''): Promise<RawResponse> {
  const a = s.adminAddress()!;
  return new Promise((resolve, reject) => {
    const sock = connect({ host: a.host, port: a.port });
    const chunks: Buffer[] = [];
    sock.setTimeout(3000, () => sock.destroy(new Error(`no answer to ${head.slice(0, 60)}`)));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [top = '', rest = ''] = text.split('\r\n\r\n', 2);
      const lines = top.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(lines[0] ?? '');
      if (m === null) return reject(new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 80))}`));
      const headers = new Map<string, string>();
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
      }
      resolve({ status: Number(m[1]), headers, body: rest });
    });
    const length = body === '' ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    // Written, not ended: the server closes after its answer (Connection: close).
    sock.write(`${head}\r\nConnection: close\r\n${length}\r\n${body}`);
  });
}

function authority(s: RunningServer): string {
  const a = s.adminAddress()!;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** `method path` with a Host naming the port, plus `extra` header lines. */
function request(s: RunningServer, method: string, path: string, extra: string[] = []): Promise<RawResponse> {
  return raw(s, [`${method} ${path} HTTP/1.1`, `Host: ${authority(s)}`, ...extra].join('\r\n'));
}

async function reloadsDone(s: RunningServer): Promise<number> {
  const m = /^pchat_config_reloads_total\{result="ok"\} (\d+)$/m.exec(await s.metrics.text());
  return Number(m?.[1]);
}

describe('admin port: request targets', () => {
  it('malformed and unknown paths get 404, never 500', async () => {
    const s = await start('  listen: 127.0.0.1:0\n');
    for (const target of [
      '//%zz',
      '//%zz/metrics',
      '/%',
      '/%zz',
      '/metrics%',
      '/%6detrics',
      '//',
      '/healthz/',
      '*',
      `/${'a'.repeat(8000)}`,
      '/__proto__',
      '/constructor',
    ]) {
      const res = await request(s, 'GET', target);
      expect([target.slice(0, 20), res.status]).toEqual([target.slice(0, 20), 404]);
    }
    // Past node's request-line limit, or no target node can parse: its own refusal, not a 500.
    for (const target of [`/${'a'.repeat(20_000)}`, 'metrics', '/a b']) {
      const res = await request(s, 'GET', target);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    expect((await request(s, 'GET', '/healthz')).status).toBe(200);
    expect((await request(s, 'GET', '/metrics?name[]=x')).status).toBe(200);
  });
});

describe('admin port: Host', () => {
  it('a Host that is not the listen address gets 421, so a rebound name cannot reach it', async () => {
    const s = await start('  listen: 127.0.0.1:0\n');
    const { port } = s.adminAddress()!;
    const other = port === 65535 ? port - 1 : port + 1;
    for (const host of [
      'attacker.example',
      `attacker.example:${port}`,
      `127.0.0.1:${other}`,
      `127.0.0.2:${port}`,
      `127.1:${port}`,
      `[::1]:${port}`,
      `localhost.attacker.example:${port}`,
      `user@127.0.0.1:${port}`,
      '',
    ]) {
      const res = await raw(s, `GET /metrics HTTP/1.1\r\nHost: ${host}`);
      expect([host, res.status]).toEqual([host, 421]);
    }
    const before = await reloadsDone(s);
    const rebound = await raw(s, `POST /reload HTTP/1.1\r\nHost: attacker.example:${port}`);
    expect(rebound.status).toBe(421);
    expect(await reloadsDone(s)).toBe(before);
    // RFC 9112 §3.2.2: an absolute-form target's authority stands for the Host.
    expect((await request(s, 'GET', 'http://attacker.example/metrics')).status).toBe(421);
    expect((await request(s, 'GET', 'http://[zz/metrics')).status).toBe(421);
    const absolute = await raw(s, `GET http://127.0.0.1:${port}/healthz HTTP/1.1\r\nHost: attacker.example`);
    expect(absolute.status).toBe(200);
  });

  it('the listen address with or without its port, localhost and configured names are served', async () => {
    const s = await start(
      '  listen: 127.0.0.1:0\n  hosts: [Admin.Contoso.Internal, metrics.contoso.internal:8443]\n',
    );
    const { port } = s.adminAddress()!;
    for (const host of [
      '127.0.0.1',
      `127.0.0.1:${port}`,
      'localhost',
      `LocalHost:${port}`,
      'admin.contoso.internal',
      'admin.contoso.internal:443',
      'metrics.contoso.internal:8443',
    ]) {
      const res = await raw(s, `GET /healthz HTTP/1.1\r\nHost: ${host}`);
      expect([host, res.status]).toEqual([host, 200]);
    }
    expect((await raw(s, 'GET /healthz HTTP/1.1\r\nHost: metrics.contoso.internal')).status).toBe(421);
    // HTTP/1.0 may leave Host out, and no browser does: nothing to rebind.
    expect((await raw(s, 'GET /healthz HTTP/1.0')).status).toBe(200);
    expect((await raw(s, 'GET /healthz HTTP/1.1')).status).toBe(400);
  });

  it('an IPv6 listen address is matched in brackets, with or without the port', async () => {
    const s = await start('  listen: "[::1]:0"\n');
    const { port } = s.adminAddress()!;
    for (const host of [`[::1]:${port}`, '[::1]', `[0:0:0:0:0:0:0:1]:${port}`, `localhost:${port}`]) {
      const res = await raw(s, `GET /healthz HTTP/1.1\r\nHost: ${host}`);
      expect([host, res.status]).toEqual([host, 200]);
    }
    for (const host of ['::1', `127.0.0.1:${port}`, `[::2]:${port}`, `[::1]:${port === 1 ? 2 : port - 1}`]) {
      const res = await raw(s, `GET /healthz HTTP/1.1\r\nHost: ${host}`);
      expect([host, res.status]).toEqual([host, 421]);
    }
  });
});

describe('admin port: Origin', () => {
  it('a request carrying an Origin that is not configured gets 403: a web page cannot POST /reload', async () => {
    const s = await start('  listen: 127.0.0.1:0\n');
    const before = await reloadsDone(s);
    for (const origin of ['http://attacker.example', 'null', `http://${authority(s)}`]) {
      expect((await request(s, 'POST', '/reload', [`Origin: ${origin}`])).status).toBe(403);
      expect((await request(s, 'GET', '/endpoints', [`Origin: ${origin}`])).status).toBe(403);
    }
    expect(await reloadsDone(s)).toBe(before);
    expect((await request(s, 'POST', '/reload')).status).toBe(200);
    expect(await reloadsDone(s)).toBe(before + 1);
  });

  it('a configured origin is served', async () => {
    const s = await start('  listen: 127.0.0.1:0\n  allowOrigins: [https://grafana.contoso.com]\n');
    const ok = await request(s, 'GET', '/metrics', ['Origin: https://Grafana.Contoso.com']);
    expect(ok.status).toBe(200);
    expect((await request(s, 'POST', '/reload', ['Origin: https://grafana.contoso.com'])).status).toBe(200);
    expect((await request(s, 'GET', '/metrics', ['Origin: http://grafana.contoso.com'])).status).toBe(403);
  });
});

describe('admin port: bearer token', () => {
  it('POST /reload without the configured token gets 401 with a Bearer challenge; GETs need none', async () => {
    const s = await start(`  listen: 127.0.0.1:0\n  token: ${TOKEN}\n`);
    const before = await reloadsDone(s);
    const none = await request(s, 'POST', '/reload');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+"$/);
    for (const auth of [
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      `Basic ${TOKEN}`,
      'Bearer',
      `${TOKEN}`,
    ]) {
      const res = await request(s, 'POST', '/reload', [`Authorization: ${auth}`]);
      expect([auth, res.status]).toEqual([auth, 401]);
    }
    expect(
      (await request(s, 'POST', '/reload', [`Authorization: Bearer ${TOKEN}x`])).headers.get(
        'www-authenticate',
      ),
    ).toContain('error="invalid_token"');
    expect(await reloadsDone(s)).toBe(before);
    const ok = await request(s, 'POST', '/reload', [`Authorization: bearer ${TOKEN}`]);
    expect(ok.status).toBe(200);
    // The body comes chunked; the JSON is indented, one key a line.
    expect(ok.body).toContain('"trigger": "http"');
    expect(await reloadsDone(s)).toBe(before + 1);
    for (const path of ['/healthz', '/readyz', '/metrics', '/endpoints', '/status']) {
      expect([path, (await request(s, 'GET', path)).status]).toEqual([path, 200]);
    }
  });

  it('tokenFile is read relative to the config folder and reread, so it can be rotated', async () => {
    const s = await start('  listen: 127.0.0.1:0\n  tokenFile: admin.token\n', {
      'admin.token': `${TOKEN}\n`,
    });
    const auth = (t: string) => [`Authorization: Bearer ${t}`];
    expect((await request(s, 'POST', '/reload')).status).toBe(401);
    expect((await request(s, 'POST', '/reload', auth(TOKEN))).status).toBe(200);
    await writeFile(join(dir!, 'admin.token'), `${TOKEN}-rotated\n`);
    expect((await request(s, 'POST', '/reload', auth(TOKEN))).status).toBe(401);
    expect((await request(s, 'POST', '/reload', auth(`${TOKEN}-rotated`))).status).toBe(200);
  });

  it('a tokenFile that is missing or too large stops the start: the port never opens unprotected', async () => {
    await expect(start('  listen: 127.0.0.1:0\n  tokenFile: missing.token\n')).rejects.toThrow(
      /missing\.token/,
    );
    await rm(dir!, { recursive: true, force: true });
    await expect(
      start('  listen: 127.0.0.1:0\n  tokenFile: big.token\n', { 'big.token': 'x'.repeat(10_000) }),
    ).rejects.toThrow(/big\.token has 10000 bytes/);
  });
});

describe('admin port: the CLI', () => {
  it("trace's live health still reads /metrics with a token, names and origins configured", async () => {
    for (const listen of ['127.0.0.1:0', '"[::1]:0"']) {
      const s = await start(
        `  listen: ${listen}\n  token: ${TOKEN}\n  hosts: [admin.contoso.internal]\n  allowOrigins: [https://grafana.contoso.com]\n`,
      );
      const config = await loadConfig(dir!);
      const bound = {
        ...config,
        server: { ...config.server, admin: { ...config.server.admin, listen: s.adminAddress()! } },
      };
      expect(await liveHealth(bound)).toBeInstanceOf(Map);
      await server?.close();
      server = undefined;
      await rm(dir!, { recursive: true, force: true });
    }
  });
});
