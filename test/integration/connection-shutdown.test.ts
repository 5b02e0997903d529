// A real `serve` process (dist/, built by `npm test`) that open connections cannot keep alive
// (issue 18, findings 3 and 5): with a half-open TLS connection it exits after SIGTERM once
// shutdown.drainTime is over, and at once on a second signal; with a low open-files limit, a
// connection flood leaves descriptors for the admin port and a reload.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issue, makeCa } from '../helpers/certs.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let pem: { cert: string; key: string };
beforeAll(() => {
  pem = issue(makeCa(), { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Serve {
  child: ChildProcess;
  /** Log lines written so far (the service flushes them at least once a second). */
  lines(): Array<Record<string, unknown>>;
  /** The port the service listens on for `transport`, from its "listening" line. */
  port(transport: string): Promise<number>;
  /** Milliseconds from the last signal sent to the exit, and the exit code. */
  exit: Promise<{ code: number | null; afterMs: number }>;
  signal(name: NodeJS.Signals): void;
}

async function serve(
  serverYaml: string,
  endpointsYaml: string,
  opts: { openFiles?: number } = {},
): Promise<Serve> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-conn-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'server.crt'), pem.cert);
  await writeFile(join(dir, 'server.key'), pem.key);
  await writeFile(join(dir, 'server.yaml'), `log:\n  level: debug\n  pretty: false\n${serverYaml}`);
  await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml);
  const child =
    opts.openFiles === undefined
      ? spawn(process.execPath, [CLI, 'serve', '--config-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      : // The shell lowers the limit on open files, then becomes the service.
        spawn(
          '/bin/sh',
          [
            '-c',
            `ulimit -n ${opts.openFiles} && exec "$0" "$1" serve --config-dir "$2"`,
            process.execPath,
            CLI,
            dir,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  let signalledAt = 0;
  const exit = new Promise<{ code: number | null; afterMs: number }>((resolveExit) =>
    child.once('exit', (code) => resolveExit({ code, afterMs: Date.now() - signalledAt })),
  );
  const lines = (): Array<Record<string, unknown>> =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    lines,
    exit,
    signal(name) {
      signalledAt = Date.now();
      child.kill(name);
    },
    async port(transport) {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const l = lines().find((x) => x['msg'] === 'listening' && x['transport'] === transport);
        if (l !== undefined) return Number(l['port']);
        if (child.exitCode !== null) break;
        await sleep(50);
      }
      throw new Error(`no ${transport} listener seen; stderr: ${stderr}`);
    },
  };
}

/** A TCP connection that sends nothing: for a TLS port, a handshake that never starts. */
async function silent(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => undefined);
  cleanups.push(() => void s.destroy());
  await new Promise<void>((r, reject) => {
    s.once('connect', r);
    s.once('error', reject);
  });
  return s;
}

const TLS_SECTION = 'tls:\n  cert: server.crt\n  key: server.key\n';
// The watch would close a half-open handshake by itself after handshakeTimeout: set long here, so
// that it is the shutdown that has to.
const LONG_HANDSHAKE = 'limits:\n  tcp:\n    handshakeTimeout: 600000\n';

describe('shutdown with connections open', () => {
  it.skipIf(!existsSync(CLI))(
    'a process holding a half-open TLS connection exits after SIGTERM once drainTime is over',
    async () => {
      const s = await serve(
        `listen:\n  - tls://127.0.0.1:0\n${TLS_SECTION}${LONG_HANDSHAKE}shutdown:\n  drainTime: 500\n`,
        'endpoints: []\n',
      );
      const stuck = await silent(await s.port('tls'));
      const closed = new Promise<void>((r) => stuck.once('close', () => r()));
      await sleep(200);
      s.signal('SIGTERM');
      const { code, afterMs } = await Promise.race([
        s.exit,
        sleep(6000).then(() => ({ code: -1, afterMs: Infinity })),
      ]);
      expect(afterMs).toBeLessThan(500 + 2500);
      expect(code).toBe(0);
      await closed;
    },
  );

  it.skipIf(!existsSync(CLI))(
    'a second SIGTERM exits at once, with a transaction in flight and a half-open TLS connection',
    async () => {
      // A pool member that takes the INVITE and never answers: the drain would wait 30 s for it.
      const pool = dgram.createSocket('udp4');
      await new Promise<void>((r) => pool.bind(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => pool.close(() => r())));
      let held = false;
      pool.on('message', (m) => (held ||= m.toString('latin1').startsWith('INVITE ')));
      const s = await serve(
        `listen:\n  - udp://127.0.0.1:0\n  - tls://127.0.0.1:0\n${TLS_SECTION}${LONG_HANDSHAKE}` +
          'proxy:\n  probe:\n    enabled: false\nshutdown:\n  drainTime: 30000\n',
        'endpoints:\n  - sipAddress: sip:proxy@contoso.com\n    poolFqdn: pool.test\n    mode: proxy\n' +
          `pools:\n  - fqdn: pool.test\n    targets:\n      - uri: sip:127.0.0.1:${pool.address().port};transport=udp\n`,
      );
      await silent(await s.port('tls'));
      const client = dgram.createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => client.close(() => r())));
      const cport = client.address().port;
      client.send(
        `INVITE sip:proxy@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${cport};branch=z9hG4bK-conn-1;rport\r\n` +
          'Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=1\r\nTo: <sip:proxy@contoso.com>\r\n' +
          `Call-ID: conn-shutdown-1\r\nCSeq: 1 INVITE\r\nContact: <sip:legacy@127.0.0.1:${cport}>\r\nContent-Length: 0\r\n\r\n`,
        await s.port('udp'),
        '127.0.0.1',
      );
      await expect.poll(() => held, { timeout: 5000 }).toBe(true);
      s.signal('SIGTERM');
      await sleep(500);
      // Still draining: the INVITE is in flight.
      expect(s.child.exitCode).toBeNull();
      s.signal('SIGTERM');
      const { afterMs } = await Promise.race([s.exit, sleep(5000).then(() => ({ afterMs: Infinity }))]);
      expect(afterMs).toBeLessThan(1000);
      expect(s.lines().map((l) => l['msg'])).toEqual(
        expect.arrayContaining([
          'shutting down',
          'second signal: exiting at once, without waiting for the drain',
        ]),
      );
    },
  );
});

describe('a low open-files limit', () => {
  it.skipIf(!existsSync(CLI) || process.platform !== 'linux')(
    'a connection flood over ulimit -n 256 leaves descriptors for the admin port and a reload',
    async () => {
      const admin = await freeTcpPort();
      const s = await serve(
        `listen:\n  - tcp://127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:${admin}\n`,
        'endpoints: []\n',
        { openFiles: 256 },
      );
      const port = await s.port('tcp');
      // 300 connections from four addresses: more than the process has descriptors for.
      const flood = await Promise.all(
        Array.from({ length: 300 }, (_, i) => silent(port, `127.0.0.${2 + (i % 4)}`).catch(() => undefined)),
      );
      expect(flood.filter((c) => c !== undefined).length).toBeGreaterThan(0);
      await sleep(300);
      s.signal('SIGHUP');
      // The admin port still accepts and answers, and the reload found the descriptors it needed.
      await expect
        .poll(() => get(admin, '/metrics').catch(() => ''), { timeout: 5000, interval: 200 })
        .toMatch(/^pchat_config_reloads_total\{result="ok"\} 1$/m);
      const metrics = await get(admin, '/metrics');
      expect(
        Number(/^pchat_connections_over_cap_total\{cap="global"\} (\d+)$/m.exec(metrics)?.[1]),
      ).toBeGreaterThan(0);
      await expect
        .poll(() => s.lines().find((l) => String(l['msg']).startsWith('inbound connections capped at')), {
          timeout: 3000,
        })
        .toMatchObject({ openFilesLimit: 256 });
    },
  );
});

function get(port: number, path: string): Promise<string> {
  return new Promise((resolveGet, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 1000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolveGet(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function freeTcpPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
