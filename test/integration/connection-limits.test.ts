// Connections that cannot pin the service (issue 18, findings 3 and 5), over real loopback sockets:
// every TCP, TLS and WebSocket connection is timed from accept (handshake, each message from its
// first byte, idle) and destroyed when it overstays, giving its per-source slot back; a global cap
// holds across source addresses; connection and TLS handshake floods ban their source, exempt
// networks excepted. Timeouts are set short so that each test takes a second or two.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { certDir, issue, makeCa, type Issuer } from '../helpers/certs.js';
import { startTlsService, tlsClient, type TlsTestService } from '../helpers/tls-service.js';

const HANDSHAKE_MS = 500;
const MESSAGE_MS = 600;
const IDLE_MS = 1000;
/** What a loaded machine may add to a bound before the close is seen. */
const SLACK_MS = 1500;

let ca: Issuer;
let certs: Awaited<ReturnType<typeof certDir>>;
let svc: TlsTestService | undefined;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  ca = makeCa();
  const server = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
  certs = await certDir();
  await certs.write('server.crt', server.cert);
  await certs.write('server.key', server.key);
});
afterAll(async () => certs.remove());
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await svc?.stop();
  svc = undefined;
});

/** The service on tcp, tls, ws and wss (127.0.0.1, port 0) with `limits` written under limits.tcp and beside it. */
async function start(limits: { tcp?: string; rate?: string; idleMs?: number } = {}): Promise<TlsTestService> {
  const idle = limits.idleMs ?? IDLE_MS;
  const tcp =
    `    handshakeTimeout: ${HANDSHAKE_MS}\n    messageTimeout: ${MESSAGE_MS}\n    idleTimeout: ${idle}\n` +
    (limits.tcp ?? '');
  svc = await startTlsService({
    listen: [
      'udp://127.0.0.1:0',
      'tcp://127.0.0.1:0',
      'tls://127.0.0.1:0',
      'ws://127.0.0.1:0',
      'wss://127.0.0.1:0',
    ],
    tls: `  cert: ${certs.dir}/server.crt\n  key: ${certs.dir}/server.key\n`,
    extra: `limits:\n  tcp:\n${tcp}${limits.rate === undefined ? '' : `  rate:\n${limits.rate}`}`,
  });
  return svc;
}

let seq = 0;
function options(transport: string): string {
  seq++;
  return (
    `OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/${transport} 127.0.0.1:5060;branch=z9hG4bK-conn-${seq}\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=c${seq}\r\nTo: <sip:127.0.0.1>\r\n` +
    `Call-ID: conn-${seq}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`
  );
}

interface Raw {
  readonly socket: net.Socket;
  /** Milliseconds from connect to the service closing the connection, or undefined while open. */
  readonly closedAfter: number | undefined;
  readonly received: string;
  /** Resolves with closedAfter once the service has closed it; rejects after `ms`. */
  waitClosed(ms: number): Promise<number>;
  /** True when still open after `ms`. */
  staysOpen(ms: number): Promise<boolean>;
}

/** A plain TCP connection to `port`, from `localAddress` (any loopback address), that reports its close. */
async function raw(port: number, localAddress = '127.0.0.1'): Promise<Raw> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  cleanups.push(() => socket.destroy());
  let closedAfter: number | undefined;
  let received = '';
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const t0 = performance.now();
  socket.on('close', () => (closedAfter = performance.now() - t0));
  const poll = async (ms: number): Promise<void> => {
    const deadline = performance.now() + ms;
    while (closedAfter === undefined && performance.now() < deadline) await sleep(10);
  };
  return {
    socket,
    get closedAfter() {
      return closedAfter;
    },
    get received() {
      return received;
    },
    async waitClosed(ms) {
      await poll(ms);
      if (closedAfter === undefined) throw new Error(`connection still open after ${ms} ms`);
      return closedAfter;
    },
    async staysOpen(ms) {
      await poll(ms);
      return closedAfter === undefined;
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The first bytes a TLS client sends (its ClientHello), caught by a plain server standing in for ours. */
async function clientHello(): Promise<Buffer> {
  const catcher = net.createServer();
  await new Promise<void>((r) => catcher.listen(0, '127.0.0.1', r));
  const hello = new Promise<Buffer>((resolve) =>
    catcher.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))),
  );
  const c = tls.connect({
    host: '127.0.0.1',
    port: (catcher.address() as net.AddressInfo).port,
    servername: 'sip.contoso.com',
  });
  c.on('error', () => undefined);
  const bytes = await hello;
  c.destroy();
  await new Promise<void>((r) => catcher.close(() => r()));
  return bytes;
}

/** A ws:// connection, upgraded by hand (RFC 6455 §4.1) so that its bytes can be sent at any pace. */
async function upgraded(port: number): Promise<Raw> {
  const c = await raw(port);
  c.socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
  );
  await expect.poll(() => c.received.startsWith('HTTP/1.1 101 '), { timeout: 2000 }).toBe(true);
  return c;
}

/** One masked text frame (RFC 6455 §5.2), as a client sends it. */
function wsFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'latin1');
  const mask = Buffer.from([1, 2, 3, 4]);
  return Buffer.concat([
    Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]),
    mask,
    payload.map((b, i) => b ^ mask[i % 4]!),
  ]);
}

async function metric(s: TlsTestService, pattern: RegExp): Promise<number> {
  const m = pattern.exec(await s.server.metrics.text());
  return m === null ? NaN : Number(m[1]);
}

describe('connections timed from accept', () => {
  it('a tls:// connection that never sends a ClientHello is destroyed at handshakeTimeout, and its per-source slot is freed', async () => {
    const s = await start({ tcp: '    maxConnectionsPerSource: 2\n' });
    const port = s.port('tls');
    const silent = [await raw(port), await raw(port)];
    // Both slots of 127.0.0.1 are held: a third connection is refused at once.
    const third = await raw(port);
    expect(await third.waitClosed(SLACK_MS)).toBeLessThan(HANDSHAKE_MS);
    for (const c of silent) {
      const after = await c.waitClosed(HANDSHAKE_MS + SLACK_MS);
      expect(after).toBeGreaterThanOrEqual(HANDSHAKE_MS - 50);
    }
    // The slots are back: a real TLS client from the same address gets through and is answered.
    const client = await tlsClient(port, { ca: ca.cert, servername: 'sip.contoso.com' });
    cleanups.push(() => client.close());
    client.socket.write(options('TLS'));
    await client.waitFor((d) => d.startsWith('SIP/2.0 200 '));
    expect(await metric(s, /^pchat_connections_timed_out_total\{phase="handshake"\} (\d+)$/m)).toBe(2);
    expect(await metric(s, /^pchat_connections_open (\d+)$/m)).toBe(1);
  });

  it('a tls:// connection that stops mid-handshake (ClientHello, then nothing) is destroyed at handshakeTimeout; its slot is freed', async () => {
    const s = await start({ tcp: '    maxConnectionsPerSource: 1\n' });
    const port = s.port('tls');
    const hello = await clientHello();
    const stuck = await raw(port);
    stuck.socket.write(hello);
    // The service answers with its ServerHello and waits for the client's next flight.
    await expect.poll(() => stuck.received.length, { timeout: 2000 }).toBeGreaterThan(0);
    const after = await stuck.waitClosed(HANDSHAKE_MS + SLACK_MS);
    expect(after).toBeGreaterThanOrEqual(HANDSHAKE_MS - 50);
    const client = await tlsClient(port, { ca: ca.cert, servername: 'sip.contoso.com' });
    cleanups.push(() => client.close());
    client.socket.write(options('TLS'));
    await client.waitFor((d) => d.startsWith('SIP/2.0 200 '));
  });

  it('ws:// and wss:// connections that never upgrade are closed at handshakeTimeout', async () => {
    const s = await start();
    const ws = await raw(s.port('ws'));
    // Half an HTTP request: the upgrade never comes.
    ws.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    const wss = await raw(s.port('wss'));
    for (const c of [ws, wss]) {
      const after = await c.waitClosed(HANDSHAKE_MS + SLACK_MS);
      expect(after).toBeGreaterThanOrEqual(HANDSHAKE_MS - 50);
    }
    expect(await metric(s, /^pchat_connections_timed_out_total\{phase="handshake"\} (\d+)$/m)).toBe(2);
  });

  it('a TCP connection trickling a byte every 100 ms is closed at messageTimeout, though bytes keep coming', async () => {
    const s = await start();
    const c = await raw(s.port('tcp'));
    const text = options('TCP');
    let sent = 0;
    const trickle = setInterval(() => {
      if (c.closedAfter === undefined && sent < text.length) c.socket.write(text[sent++]!);
    }, 100);
    cleanups.push(() => clearInterval(trickle));
    const after = await c.waitClosed(MESSAGE_MS + SLACK_MS);
    clearInterval(trickle);
    expect(after).toBeGreaterThanOrEqual(MESSAGE_MS - 50);
    // Closed mid-message, well before idleTimeout would have passed between two bytes.
    expect(sent).toBeLessThan(text.length);
    expect(await metric(s, /^pchat_connections_timed_out_total\{phase="message"\} (\d+)$/m)).toBe(1);
  });

  it('a ws:// connection trickling a WebSocket frame a byte every 100 ms is closed at messageTimeout', async () => {
    const s = await start();
    const c = await upgraded(s.port('ws'));
    const frame = wsFrame(options('WS'));
    const upgradedAt = performance.now();
    let sent = 0;
    const trickle = setInterval(() => {
      if (c.closedAfter === undefined && sent < frame.length) c.socket.write(frame.subarray(sent, ++sent));
    }, 100);
    cleanups.push(() => clearInterval(trickle));
    await c.waitClosed(MESSAGE_MS + SLACK_MS);
    clearInterval(trickle);
    expect(performance.now() - upgradedAt).toBeGreaterThanOrEqual(MESSAGE_MS - 50);
    expect(sent).toBeLessThan(frame.length);
    expect(await metric(s, /^pchat_connections_timed_out_total\{phase="message"\} (\d+)$/m)).toBe(1);
  });

  it('whole messages further apart than messageTimeout but within idleTimeout keep TCP and ws:// connections open', async () => {
    // Room between messages for a slow answer on a loaded machine: it is the message bound on trial.
    const s = await start({ idleMs: 5000 });
    const tcp = await raw(s.port('tcp'));
    const ws = await upgraded(s.port('ws'));
    const answers = (c: Raw): number => c.received.split('SIP/2.0 200 ').length - 1;
    for (let i = 1; i <= 3; i++) {
      tcp.socket.write(options('TCP'));
      ws.socket.write(wsFrame(options('WS')));
      await expect.poll(() => [answers(tcp), answers(ws)], { timeout: 2000 }).toEqual([i, i]);
      await sleep(MESSAGE_MS + 150);
    }
    expect([tcp.closedAfter, ws.closedAfter]).toEqual([undefined, undefined]);
  });

  it('an idle TCP connection is closed at idleTimeout after its last message', async () => {
    const s = await start();
    const c = await raw(s.port('tcp'));
    c.socket.write(options('TCP'));
    await expect.poll(() => c.received.startsWith('SIP/2.0 200 '), { timeout: 2000 }).toBe(true);
    const answeredAt = performance.now();
    await c.waitClosed(IDLE_MS + SLACK_MS);
    expect(performance.now() - answeredAt).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(await metric(s, /^pchat_connections_timed_out_total\{phase="idle"\} (\d+)$/m)).toBe(1);
  });
});

describe('connection caps and floods', () => {
  it('the global cap holds across source addresses; a closed connection gives its slot back', async () => {
    // Idle connections are closed later than the test takes, even on a loaded machine.
    const s = await start({ tcp: '    maxConnections: 3\n    maxConnectionsPerSource: 2\n', idleMs: 20_000 });
    const port = s.port('tcp');
    const held = [await raw(port, '127.0.0.2'), await raw(port, '127.0.0.2'), await raw(port, '127.0.0.3')];
    const over = [await raw(port, '127.0.0.3'), await raw(port, '127.0.0.4')];
    for (const c of over) expect(await c.waitClosed(SLACK_MS)).toBeLessThan(HANDSHAKE_MS);
    for (const c of held) expect(c.closedAfter).toBeUndefined();
    expect(s.server.guard.stats.connectionsOverGlobalCap).toBe(2);
    expect(await metric(s, /^pchat_connections_over_cap_total\{cap="global"\} (\d+)$/m)).toBe(2);
    // One goes: a new source gets its place, and is served.
    held[0]!.socket.destroy();
    await expect.poll(() => s.server.guard.openConnections, { timeout: 2000 }).toBe(2);
    const next = await raw(port, '127.0.0.4');
    next.socket.write(options('TCP'));
    await expect.poll(() => next.received.startsWith('SIP/2.0 200 '), { timeout: 2000 }).toBe(true);
  });

  it('a TCP connection flood bans its source, refused at accept; an exempt network is not banned', async () => {
    const s = await start({
      tcp: '    maxConnectionsPerSource: 100\n',
      idleMs: 20_000,
      rate: '    requests: 5\n    window: 10000\n    ban: 60000\n    exempt: [127.0.0.3/32]\n',
    });
    const port = s.port('tcp');
    const flood: Raw[] = [];
    for (let i = 0; i < 10; i++) flood.push(await raw(port, '127.0.0.2'));
    await sleep(200);
    expect(flood.filter((c) => c.closedAfter === undefined)).toHaveLength(5);
    expect(s.server.guard.stats.bans).toBe(1);
    expect(s.lines.find((l) => String(l['msg']).startsWith('source banned'))).toMatchObject({
      peer: '127.0.0.2',
    });
    // Banned: a new connection from it is closed at once, however slowly it comes.
    expect(await (await raw(port, '127.0.0.2')).waitClosed(SLACK_MS)).toBeLessThan(HANDSHAKE_MS);
    // The exempt source opens as many and is served on the last.
    const exempt: Raw[] = [];
    for (let i = 0; i < 10; i++) exempt.push(await raw(port, '127.0.0.3'));
    await sleep(200);
    expect(exempt.filter((c) => c.closedAfter === undefined)).toHaveLength(10);
    exempt[9]!.socket.write(options('TCP'));
    await expect.poll(() => exempt[9]!.received.startsWith('SIP/2.0 200 '), { timeout: 2000 }).toBe(true);
    expect(s.server.guard.stats.bans).toBe(1);
  });

  it('a TLS handshake flood bans its source; an exempt network is not banned', async () => {
    const s = await start({
      tcp: '    maxConnectionsPerSource: 100\n',
      idleMs: 20_000,
      rate: '    requests: 5\n    window: 10000\n    ban: 60000\n    exempt: [127.0.0.3/32]\n',
    });
    const port = s.port('tls');
    const handshake = (localAddress: string): Promise<boolean> =>
      new Promise((resolve) => {
        // From `localAddress`: the TCP connection is opened first and TLS started on it.
        const tcp = net.connect({ host: '127.0.0.1', port, localAddress });
        const c = tls.connect({ socket: tcp, ca: ca.cert, servername: 'sip.contoso.com' });
        const done = (ok: boolean): void => {
          c.destroy();
          tcp.destroy();
          resolve(ok);
        };
        c.once('secureConnect', () => done(true));
        c.once('error', () => done(false));
        tcp.once('error', () => done(false));
      });
    const flooded: boolean[] = [];
    for (let i = 0; i < 10; i++) flooded.push(await handshake('127.0.0.2'));
    expect(flooded.filter(Boolean)).toHaveLength(5);
    expect(flooded.slice(5)).toEqual([false, false, false, false, false]);
    expect(s.server.guard.stats.bans).toBe(1);
    const exempt: boolean[] = [];
    for (let i = 0; i < 10; i++) exempt.push(await handshake('127.0.0.3'));
    expect(exempt.every(Boolean)).toBe(true);
  });
});
