// Graceful shutdown of a real `serve` process (dist/, built by `npm test`): on SIGTERM it stops
// accepting TCP connections, answers new requests 503 + Retry-After, lets a proxied INVITE already in
// flight be answered by the pool member, then exits 0; and it does not wait past shutdown.drainTime.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Udp {
  port: number;
  inbox: Array<{ text: string; port: number }>;
  send(text: string, port: number): void;
  next(match: RegExp, ms?: number): Promise<{ text: string; port: number }>;
}

async function udp(): Promise<Udp> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  const inbox: Array<{ text: string; port: number }> = [];
  sock.on('message', (m, rinfo) => inbox.push({ text: m.toString('latin1'), port: rinfo.port }));
  let read = 0;
  return {
    port: sock.address().port,
    inbox,
    send: (text, port) => sock.send(Buffer.from(text, 'latin1'), port, '127.0.0.1'),
    async next(match, ms = 5000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        for (; read < inbox.length; read++) {
          const m = inbox[read]!;
          if (match.test(m.text)) {
            read++;
            return m;
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`nothing matching ${match} within ${ms} ms`);
    },
  };
}

function invite(n: number, port: number): string {
  return (
    `INVITE sip:proxy@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-shut-${n};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=s${n}\r\nTo: <sip:proxy@contoso.com>\r\n` +
    `Call-ID: shutdown-${n}\r\nCSeq: 1 INVITE\r\nContact: <sip:legacy@127.0.0.1:${port}>\r\nContent-Length: 0\r\n\r\n`
  );
}

/** A 200 for a request the pool member received, its Via list and tags kept. */
function ok(req: string): string {
  const lines = req.split('\r\n').filter((l) => /^(via|from|call-id|cseq):/i.test(l));
  const to = req.split('\r\n').find((l) => /^to:/i.test(l)) ?? '';
  return `SIP/2.0 200 OK\r\n${lines.join('\r\n')}\r\n${to};tag=pool\r\nContact: <sip:pool@127.0.0.1>\r\nContent-Length: 0\r\n\r\n`;
}

function options(n: number, port: number): string {
  return (
    `OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-probe-${n};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p${n}\r\nTo: <sip:127.0.0.1>\r\n` +
    `Call-ID: probe-${n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`
  );
}

/** A port free on 127.0.0.1 for both UDP and TCP at the time of the call. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const sock = dgram.createSocket('udp4');
    const port = await new Promise<number>((r) => sock.bind(0, '127.0.0.1', () => r(sock.address().port)));
    const tcpFree = await new Promise<boolean>((r) => {
      const srv = net.createServer();
      srv.once('error', () => r(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => r(true)));
    });
    await new Promise<void>((r) => sock.close(() => r()));
    if (tcpFree) return port;
  }
  throw new Error('no free port');
}

interface Serve {
  child: ChildProcess;
  port: number;
  /** Log lines, read once the process has exited (the logger buffers them until then). */
  lines(): Array<Record<string, unknown>>;
  /** Sends OPTIONS every 50 ms until one is answered with `status`. */
  until(client: Udp, status: number, ms?: number): Promise<void>;
  exit: Promise<{ code: number | null; afterMs: number }>;
}

async function serve(poolPort: number, drainTime: number): Promise<Serve> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-shutdown-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\n  - tcp://127.0.0.1:${port}\nlog:\n  level: info\n  pretty: false\n` +
      'proxy:\n  probe:\n    enabled: false\n' +
      `limits:\n  overloadRetryAfter: 9\nshutdown:\n  drainTime: ${drainTime}\n`,
  );
  await writeFile(
    join(dir, 'endpoints.yaml'),
    'endpoints:\n  - sipAddress: sip:proxy@contoso.com\n    poolFqdn: pool.test\n    mode: proxy\n' +
      `pools:\n  - fqdn: pool.test\n    targets:\n      - uri: sip:127.0.0.1:${poolPort};transport=udp\n`,
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  const origKill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number) => {
    signalledAt = Date.now();
    return origKill(signal);
  };
  let probes = 0;
  const until = async (client: Udp, status: number, ms = 10_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && child.exitCode === null) {
      const n = ++probes;
      client.send(options(n, client.port), port);
      await new Promise((r) => setTimeout(r, 50));
      const tag = `Call-ID: probe-${n}\r\n`;
      if (client.inbox.some((m) => m.text.includes(tag) && m.text.startsWith(`SIP/2.0 ${status} `))) return;
    }
    throw new Error(`no ${status} to OPTIONS within ${ms} ms; stderr: ${stderr}`);
  };
  return {
    child,
    port,
    until,
    exit,
    lines: () =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('graceful shutdown of `serve` on SIGTERM', () => {
  it.skipIf(!existsSync(CLI))(
    'stops accepting, answers new requests 503, relays the answer to an INVITE in flight, exits 0',
    async () => {
      const pool = await udp();
      const client = await udp();
      const s = await serve(pool.port, 10_000);
      await s.until(client, 200);
      client.send(invite(1, client.port), s.port);
      // The pool member holds the forwarded INVITE: a transaction in flight.
      const held = await pool.next(/^INVITE /);
      await client.next(/^SIP\/2\.0 100 /);

      s.child.kill('SIGTERM');
      await s.until(client, 503);

      // New work is refused: 503 with Retry-After over UDP, and the TCP listener takes no connection.
      client.send(invite(2, client.port), s.port);
      const refused = await client.next(/^SIP\/2\.0 503 [^]*Call-ID: shutdown-2\r\n/);
      expect(refused.text).toMatch(/\r\nRetry-After: 9\r\n/);
      const tcp = net.connect(s.port, '127.0.0.1');
      const tcpOutcome = await new Promise<string>((resolveTcp) => {
        tcp.once('error', (err: NodeJS.ErrnoException) => resolveTcp(err.code ?? 'error'));
        tcp.once('connect', () => resolveTcp('connected'));
      });
      tcp.destroy();
      expect(tcpOutcome).toBe('ECONNREFUSED');

      // The pool member answers after SIGTERM: the 200 still reaches the client.
      pool.send(ok(held.text), held.port);
      await client.next(/^SIP\/2\.0 200 [^]*Call-ID: shutdown-1\r\n/);

      const { code, afterMs } = await s.exit;
      expect(code).toBe(0);
      expect(afterMs).toBeLessThan(5000);
      const lines = s.lines();
      expect(lines.map((l) => l['msg'])).toEqual(
        expect.arrayContaining(['shutting down', 'drained: no transaction in flight', 'stopped']),
      );
      expect(lines.find((l) => String(l['msg']).startsWith('draining'))).toMatchObject({ inFlight: 1 });
      expect(lines.find((l) => l['callId'] === 'shutdown-2')).toMatchObject({
        status: 503,
        outcome: 'draining',
      });
    },
  );

  it.skipIf(!existsSync(CLI))(
    'does not wait for an unanswered transaction past shutdown.drainTime',
    async () => {
      const pool = await udp();
      const client = await udp();
      const s = await serve(pool.port, 600);
      await s.until(client, 200);
      client.send(invite(3, client.port), s.port);
      await pool.next(/^INVITE /);
      s.child.kill('SIGTERM');
      const { code, afterMs } = await s.exit;
      expect(code).toBe(0);
      expect(afterMs).toBeGreaterThanOrEqual(550);
      expect(afterMs).toBeLessThan(4000);
      const over = s.lines().find((l) => String(l['msg']).startsWith('drain time over'));
      expect(over).toMatchObject({ inFlight: 1 });
    },
  );
});
