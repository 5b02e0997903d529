// The service over real sockets on loopback: UDP and TCP, IPv4 and IPv6, stream framing, rport,
// keep-alive pings, and bad input that must be answered without harming later requests.

import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestService, type TestService } from '../helpers/service.js';
import { readThroughShared } from '../../src/transport/shared-read-buffer.js';
import { ConnectionWatch } from '../../src/transport/connection-watch.js';

const FIX = join(import.meta.dirname, '../fixtures/rfc4475');

function invite(opts: {
  via: string;
  ruri?: string;
  callId?: string;
  extra?: string;
  body?: string;
}): string {
  const body = opts.body ?? '';
  return (
    `INVITE ${opts.ruri ?? 'sip:ocschat@contoso.com'} SIP/2.0\r\nVia: ${opts.via}\r\nMax-Forwards: 70\r\n` +
    `From: <sip:legacy@contoso.com>;tag=77\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${opts.callId ?? 'c-' + Math.random()}\r\n` +
    `CSeq: 1 INVITE\r\n${opts.extra ?? ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

async function udpClient(family: 4 | 6 = 4) {
  const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, family === 6 ? '::1' : '127.0.0.1', r));
  const inbox: string[] = [];
  const waiters: (() => void)[] = [];
  sock.on('message', (m) => {
    inbox.push(m.toString('latin1'));
    waiters.splice(0).forEach((w) => w());
  });
  return {
    port: sock.address().port,
    send(text: string | Buffer, port: number) {
      sock.send(
        typeof text === 'string' ? Buffer.from(text, 'latin1') : text,
        port,
        family === 6 ? '::1' : '127.0.0.1',
      );
    },
    async next(timeoutMs = 2000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (inbox.length === 0) {
        if (Date.now() > deadline) throw new Error('no datagram received');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return inbox.shift()!;
    },
    /** Wait a little and return whatever arrived. */
    async drain(ms = 200): Promise<string[]> {
      await new Promise((r) => setTimeout(r, ms));
      return inbox.splice(0);
    },
    close: () => sock.close(),
  };
}

async function tcpClient(port: number, host = '127.0.0.1') {
  const sock = net.connect({ port, host });
  await new Promise<void>((r) => sock.once('connect', r));
  let data = '';
  let closed = false;
  sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
  sock.on('close', () => (closed = true));
  return {
    sock,
    localPort: sock.localPort!,
    async waitFor(pred: (data: string) => boolean, timeoutMs = 2000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (!pred(data)) {
        if (Date.now() > deadline) throw new Error(`timed out; received: ${JSON.stringify(data)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return data;
    },
    get closed() {
      return closed;
    },
    close: () => sock.destroy(),
  };
}

const statusOf = (msg: string): number => Number(msg.slice(8, 11));

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({
    listen: ['tcp://127.0.0.1:0', 'tcp://[::1]:0'],
    sip: 'sip:\n  maxMessageSize: 4096\n',
  });
});
afterAll(async () => svc.stop());

// Both UDP engines run every UDP test: the service's own binding (batched reads) and node:dgram.
describe.each(['native', 'dgram'] as const)('UDP (%s engine)', (engine) => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({
      listen: ['udp://127.0.0.1:0', 'udp://[::1]:0'],
      sip: `sip:\n  maxMessageSize: 4096\n  udpEngine: ${engine}\n`,
    });
  });
  afterAll(async () => svc.stop());

  it('runs on the engine configured', () => {
    const listening = svc.lines.filter((l) => l.msg === 'listening' && l.transport === 'udp');
    expect(listening.map((l) => l.engine)).toEqual([engine, engine]);
  });

  it('answers an INVITE with 302 from the port it was sent to', async () => {
    const c = await udpClient();
    c.send(invite({ via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-u1` }), svc.port('udp'));
    const r = await c.next();
    expect(statusOf(r)).toBe(302);
    expect(r).toMatch(/\r\nContact: <sip:ocschat@pcpool\.contoso\.com>\r\n/);
    c.close();
  });

  it('a TCP listener given a logger says once per process whether it reads into the shared buffer', async () => {
    const lines: { fields: object; message: string }[] = [];
    const logger = { info: (fields: object, message: string) => void lines.push({ fields, message }) };
    // Fresh copies of the modules: the service this file starts may have reported already.
    vi.resetModules();
    const { TcpListener } = await import('../../src/transport/tcp.js');
    const { sharedReadBuffer } = await import('../../src/transport/shared-read-buffer.js');
    const watch = new ConnectionWatch({ handshakeMs: 5000, messageMs: 10_000, idleMs: 600_000 });
    const opts = { host: '127.0.0.1', port: 0, maxMessageSize: 65535, watch, logger };
    const listeners = [
      await TcpListener.listen(
        opts,
        () => undefined,
        () => undefined,
      ),
      await TcpListener.listen(
        opts,
        () => undefined,
        () => undefined,
      ),
    ];
    for (const l of listeners) await l.close();
    // Node 20 has the fields: the line says the trick is on, and a second listener says nothing more.
    expect(sharedReadBuffer()).toEqual({ active: true });
    expect(lines).toEqual([
      { fields: { readBuffer: 'shared' }, message: 'TCP: connections read into one shared buffer' },
    ]);
  });

  it('over IPv6 too', async () => {
    const c = await udpClient(6);
    c.send(invite({ via: `SIP/2.0/UDP [::1]:${c.port};branch=z9hG4bK-u6` }), svc.port('udp', 6));
    expect(statusOf(await c.next())).toBe(302);
    c.close();
  });

  it('rport (RFC 3581): a client whose Via names another port still gets its response', async () => {
    const c = await udpClient();
    // Sent-by names a port nobody listens on, as a client behind NAT would.
    c.send(invite({ via: 'SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK-nat' }), svc.port('udp'));
    const r = await c.next();
    expect(statusOf(r)).toBe(302);
    expect(r).toContain(`;rport=${c.port}`);
    c.close();
  });

  it('a retransmitted INVITE gets the same 302, byte for byte', async () => {
    const c = await udpClient();
    const msg = invite({ via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-rtx`, callId: 'rtx-1' });
    c.send(msg, svc.port('udp'));
    const a = await c.next();
    c.send(msg, svc.port('udp'));
    const b = await c.next();
    expect(b).toBe(a);
    c.close();
  });

  it('a malformed request gets 400 with a reason, and the next request is answered', async () => {
    const c = await udpClient();
    c.send(
      invite({ via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-bad` }).replace(
        'CSeq: 1 INVITE',
        'CSeq: 1 OPTIONS',
      ),
      svc.port('udp'),
    );
    const r = await c.next();
    expect(r.split('\r\n')[0]).toBe('SIP/2.0 400 CSeq method does not match request method');
    c.send(invite({ via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-good` }), svc.port('udp'));
    expect(statusOf(await c.next())).toBe(302);
    c.close();
  });

  it('an over-size request gets 513', async () => {
    const c = await udpClient();
    c.send(
      invite({
        via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-big`,
        extra: `X-Pad: ${'p'.repeat(5000)}\r\n`,
      }),
      svc.port('udp'),
    );
    expect(statusOf(await c.next())).toBe(513);
    c.close();
  });

  it('header injection (a bare CR inside a value) gets 400', async () => {
    const c = await udpClient();
    c.send(
      invite({
        via: `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-inj`,
        extra: 'Subject: hi\rX-Injected: 1\r\n',
      }),
      svc.port('udp'),
    );
    expect((await c.next()).split('\r\n')[0]).toBe('SIP/2.0 400 Bare CR in header line');
    c.close();
  });

  it('every RFC 4475 message, sent with its top Via rewritten to this client, leaves the service answering', async () => {
    const c = await udpClient();
    const files = readdirSync(FIX).filter((f) => f.endsWith('.dat'));
    for (const f of files) {
      let text = readFileSync(join(FIX, f)).toString('latin1');
      // Fixtures name hosts such as 192.0.2.x: responses are routed by Via, so point it here.
      text = text.replace(
        /^(Via|v)([ \t]*:[ \t]*)[^\r\n]*(\r\n[ \t][^\r\n]*)*/im,
        `Via: SIP/2.0/UDP 127.0.0.1:${c.port};rport;branch=z9hG4bK-fx-${f.slice(0, -4)}`,
      );
      c.send(Buffer.from(text, 'latin1'), svc.port('udp'));
    }
    const answers = await c.drain(500);
    expect(answers.length).toBeGreaterThan(20);
    expect(svc.lines.filter((l) => l.level === 50)).toEqual([]);
    expect(svc.server.router.stats.internalErrors).toBe(0);
    c.send(
      `OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-after\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: after\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
      svc.port('udp'),
    );
    // Unacknowledged fixture INVITEs still see their final responses retransmitted (Timer G).
    let r = await c.next();
    while (!r.includes('Call-ID: after')) r = await c.next();
    expect(statusOf(r)).toBe(200);
    c.close();
  });
});

describe('TCP', () => {
  it('answers on the same connection, whatever the split of the byte stream', async () => {
    const c = await tcpClient(svc.port('tcp'));
    const msg = invite({ via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-t1`, body: 'v=0\r\n' });
    c.sock.write(msg.slice(0, 37));
    await new Promise((r) => setTimeout(r, 20));
    c.sock.write(msg.slice(37));
    const r = await c.waitFor((d) => d.includes('\r\n\r\n'));
    expect(statusOf(r)).toBe(302);
    c.close();
  });

  it('two messages in one segment get two answers; a CRLFCRLF ping gets a CRLF pong', async () => {
    const c = await tcpClient(svc.port('tcp'));
    const a = invite({
      via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-t2a`,
      ruri: 'sip:nobody@contoso.com',
    });
    const b = invite({ via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-t2b` });
    c.sock.write(a + '\r\n\r\n' + b);
    const data = await c.waitFor((d) => (d.match(/SIP\/2\.0 /g) ?? []).length >= 2);
    expect(data).toMatch(/^SIP\/2\.0 404 [^]*\r\n\r\n\r\nSIP\/2\.0 302 /);
    c.close();
  });

  it('messages split across reads on several connections at once are put together per connection', async () => {
    // Every plain TCP connection reads into one shared buffer: what a read leaves unframed must be
    // a copy, or the next connection's read would overwrite it (the Call-IDs would come back wrong).
    const clients = await Promise.all([1, 2, 3, 4].map(() => tcpClient(svc.port('tcp'))));
    const msgs = clients.map((c, i) =>
      invite({
        via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-shared${i}`,
        callId: `shared-${i}-${'abcdefghij'.repeat(3)}`,
        body: `v=0\r\ns=${i}\r\n`,
      }),
    );
    const cut = (m: string): number => m.indexOf('Call-ID: ') + 20;
    for (const [i, c] of clients.entries()) {
      c.sock.write(msgs[i]!.slice(0, cut(msgs[i]!)));
      await new Promise((r) => setTimeout(r, 15));
    }
    for (const [i, c] of [...clients.entries()].reverse()) {
      c.sock.write(msgs[i]!.slice(cut(msgs[i]!)));
      await new Promise((r) => setTimeout(r, 15));
    }
    for (const [i, c] of clients.entries()) {
      const r = await c.waitFor((d) => d.includes('\r\n\r\n'));
      expect(statusOf(r)).toBe(302);
      expect(r).toContain(`\r\nCall-ID: shared-${i}-${'abcdefghij'.repeat(3)}\r\n`);
      c.close();
    }
  });

  it('a connection reads into the shared buffer once it is set up for it, and only once', async () => {
    const accepted = new Promise<net.Socket>((resolve) => {
      const server = net.createServer((s) => {
        server.close();
        resolve(s);
      });
      server.listen(0, '127.0.0.1', () => {
        const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
        c.on('connect', () => c.end('hello'));
      });
    });
    const socket = await accepted;
    const reads: string[] = [];
    expect(readThroughShared(socket, (chunk) => void reads.push(chunk.toString('latin1')))).toBe(true);
    expect(readThroughShared(socket, () => undefined)).toBe(false);
    await new Promise((r) => socket.once('end', r));
    expect(reads.join('')).toBe('hello');
    socket.destroy();
  });

  it('over IPv6 too', async () => {
    const c = await tcpClient(svc.port('tcp', 6), '::1');
    c.sock.write(invite({ via: `SIP/2.0/TCP [::1]:${c.localPort};branch=z9hG4bK-t6` }));
    expect(statusOf(await c.waitFor((d) => d.includes('\r\n\r\n')))).toBe(302);
    c.close();
  });

  it('a negative Content-Length gets 400 and the connection is closed (framing is lost)', async () => {
    const c = await tcpClient(svc.port('tcp'));
    c.sock.write(
      invite({ via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-ncl` }).replace(
        'Content-Length: 0',
        'Content-Length: -1',
      ),
    );
    const r = await c.waitFor((d) => d.includes('\r\n\r\n'));
    expect(r.split('\r\n')[0]).toBe('SIP/2.0 400 Bad Content-Length');
    await c.waitFor(() => c.closed);
    c.close();
  });

  it('a stream message over the size limit gets 513 and the connection is closed', async () => {
    const c = await tcpClient(svc.port('tcp'));
    c.sock.write(
      invite({ via: `SIP/2.0/TCP 127.0.0.1:${c.localPort};branch=z9hG4bK-tbig`, body: 'x'.repeat(6000) }),
    );
    const r = await c.waitFor((d) => d.includes('\r\n\r\n'));
    expect(statusOf(r)).toBe(513);
    await c.waitFor(() => c.closed);
    c.close();
  });

  it('binary garbage on a connection does not stop the service', async () => {
    const c = await tcpClient(svc.port('tcp'));
    const junk = Buffer.alloc(3000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    c.sock.write(junk);
    c.sock.write('\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    const d = await tcpClient(svc.port('tcp'));
    d.sock.write(invite({ via: `SIP/2.0/TCP 127.0.0.1:${d.localPort};branch=z9hG4bK-after-junk` }));
    expect(statusOf(await d.waitFor((x) => x.includes('\r\n\r\n')))).toBe(302);
    d.close();
    expect(svc.lines.filter((l) => l.level === 50)).toEqual([]);
    expect(svc.server.router.stats.internalErrors).toBe(0);
  });
});
