// SIP over WebSocket (RFC 7118) against a third-party SIP stack: a sip.js UserAgent over ws:// and
// wss:// gets the 302 in redirect mode and reaches a pool member through proxy mode; raw WebSocket
// clients check the subprotocol requirement, binary frames, keep-alive and the 1008 close for
// anything that is not SIP.

import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { WebSocket } from 'ws';
import { Core, Inviter, Messager, UserAgent } from 'sip.js';

type IncomingResponse = Core.IncomingResponseMessage;
import { certDir, issue, makeCa, type Issuer } from '../helpers/certs.js';
import { startTlsService, type TlsTestService } from '../helpers/tls-service.js';
import { startPeer, type SipPeer } from '../helpers/sip-peer.js';
import { NO_DNS } from '../helpers/service.js';

let ca: Issuer;
let certs: Awaited<ReturnType<typeof certDir>>;
const g = globalThis as unknown as { WebSocket?: unknown };
const originalWebSocket = g.WebSocket;

beforeAll(async () => {
  ca = makeCa();
  const server = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
  certs = await certDir();
  await certs.write('server.crt', server.cert);
  await certs.write('server.key', server.key);
  const caPem = ca.cert;
  // sip.js opens `new WebSocket(server, "sip")` as a browser does; Node 20 has no WebSocket of its
  // own, so the ws package's stands in, trusting the test CA for wss://.
  g.WebSocket = class extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { ca: caPem });
    }
  };
});
afterAll(async () => {
  g.WebSocket = originalWebSocket;
  await certs.remove();
});

const uas: UserAgent[] = [];
let svc: TlsTestService | undefined;
let peer: SipPeer | undefined;
afterEach(async () => {
  for (const ua of uas.splice(0)) await ua.stop();
  await svc?.stop();
  svc = undefined;
  await peer?.close();
  peer = undefined;
});

function startService(endpoints?: string): Promise<TlsTestService> {
  return startTlsService({
    listen: ['udp://127.0.0.1:0', 'ws://127.0.0.1:0', 'wss://127.0.0.1:0'],
    tls: `  cert: ${certs.dir}/server.crt\n  key: ${certs.dir}/server.key\n`,
    ...(endpoints === undefined ? {} : { endpoints }),
    extra: 'sip:\n  t1: 100\n',
    proxy: { probe: false, dns: NO_DNS },
  });
}

async function start(endpoints?: string): Promise<TlsTestService> {
  svc = await startService(endpoints);
  return svc;
}

async function userAgent(server: string): Promise<UserAgent> {
  const ua = new UserAgent({
    uri: sipUri('sip:alice@contoso.com'),
    transportOptions: { server, connectionTimeout: 5 },
    logLevel: 'error',
    logBuiltinEnabled: false,
  });
  uas.push(ua);
  await ua.start();
  return ua;
}

function sipUri(text: string): NonNullable<ReturnType<typeof UserAgent.makeURI>> {
  const uri = UserAgent.makeURI(text);
  if (uri === undefined) throw new Error(`bad URI ${text}`);
  return uri;
}

const target = (): ReturnType<typeof sipUri> => sipUri('sip:ocschat@contoso.com');

/** Sends an INVITE with sip.js and resolves with the final response it reports. */
function invite(
  ua: UserAgent,
): Promise<{ kind: 'redirect' | 'reject' | 'accept'; response: IncomingResponse }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no final response to the INVITE')), 5000);
    const done = (kind: 'redirect' | 'reject' | 'accept') => (r: { message: IncomingResponse }) => {
      clearTimeout(timer);
      resolve({ kind, response: r.message });
    };
    const inviter = new Inviter(ua, target(), { inviteWithoutSdp: true });
    inviter
      .invite({
        requestDelegate: { onRedirect: done('redirect'), onReject: done('reject'), onAccept: done('accept') },
      })
      .catch(reject);
  });
}

for (const scheme of ['ws', 'wss'] as const) {
  describe(`sip.js over ${scheme}://`, () => {
    it('gets the 302 in redirect mode, with the pool as Contact', async () => {
      const s = await start();
      const ua = await userAgent(`${scheme}://127.0.0.1:${s.port(scheme)}`);
      const { kind, response } = await invite(ua);
      expect(kind).toBe('redirect');
      expect(response.statusCode).toBe(302);
      expect(response.getHeader('contact')).toBe('<sip:ocschat@pcpool.contoso.com>');
      // The request came over WebSocket: its Via says so (RFC 7118 §5.2).
      expect(response.getHeader('via')).toMatch(new RegExp(`^SIP/2\\.0/${scheme.toUpperCase()} `));
    });

    it('reaches a pool member through proxy mode (MESSAGE 200, INVITE 486)', async () => {
      peer = await startPeer('udp', (req) => [
        { status: req.method === 'INVITE' ? 486 : 200, reason: 'Pool' },
      ]);
      const s = await start(`endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${peer.port};transport=udp
`);
      const ua = await userAgent(`${scheme}://127.0.0.1:${s.port(scheme)}`);
      const status = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer to the MESSAGE')), 5000);
        const settle = (r: { message: IncomingResponse }): void => {
          clearTimeout(timer);
          resolve(r.message.statusCode ?? 0);
        };
        new Messager(ua, target(), 'hello pool', 'text/plain')
          .message({ requestDelegate: { onAccept: settle, onReject: settle } })
          .catch(reject);
      });
      expect(status).toBe(200);
      const rejected = await invite(ua);
      expect(rejected.kind).toBe('reject');
      expect(rejected.response.statusCode).toBe(486);
      // RFC 3261 §17.1.1.3: our client transaction acknowledges the 486 to the member itself.
      const deadline = Date.now() + 3000;
      while (peer.received.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(peer.received.map((r) => r.method)).toEqual(['MESSAGE', 'INVITE', 'ACK']);
      // The pool member sees our Via on top of the browser's WebSocket one.
      const vias = peer.received[0]?.headerLines('via') ?? [];
      expect(vias[0]).toMatch(/^SIP\/2\.0\/UDP 127\.0\.0\.1:/);
      expect(vias[1]).toMatch(new RegExp(`^SIP/2\\.0/${scheme.toUpperCase()} `));
    });
  });
}

describe('WebSocket rules', () => {
  let s: TlsTestService;
  beforeAll(async () => {
    s = await startService();
  });
  afterAll(async () => s.stop());

  const open = async (
    protocols?: string,
  ): Promise<{ ws: WebSocket; inbox: Buffer[]; closed: Promise<number> }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port('ws')}`, protocols);
    const inbox: Buffer[] = [];
    ws.on('message', (d: Buffer) => inbox.push(d));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return { ws, inbox, closed };
  };
  const waitFor = async (inbox: Buffer[], n = 1): Promise<void> => {
    const deadline = Date.now() + 3000;
    while (inbox.length < n) {
      if (Date.now() > deadline) throw new Error('nothing received');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const INVITE = (branch: string): string =>
    `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-${branch}\r\n` +
    'Max-Forwards: 70\r\nFrom: <sip:alice@contoso.com>;tag=1\r\nTo: <sip:ocschat@contoso.com>\r\n' +
    `Call-ID: ws-${branch}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`;

  it('RFC 7118 §4.1: a handshake that does not ask for the "sip" subprotocol is refused', async () => {
    await expect(open()).rejects.toThrow(/400/);
    await expect(open('chat')).rejects.toThrow(/400/);
    const { ws } = await open('sip');
    expect(ws.protocol).toBe('sip');
    ws.close();
  });

  it('a SIP message in a binary frame is answered', async () => {
    const { ws, inbox } = await open('sip');
    ws.send(Buffer.from(INVITE('bin'), 'latin1'), { binary: true });
    await waitFor(inbox);
    expect(inbox[0]?.toString('latin1')).toMatch(/^SIP\/2\.0 302 /);
    ws.close();
  });

  it('a CRLFCRLF keep-alive gets a CRLF pong', async () => {
    const { ws, inbox } = await open('sip');
    ws.send('\r\n\r\n');
    await waitFor(inbox);
    expect(inbox[0]?.toString('latin1')).toBe('\r\n');
    ws.close();
  });

  it('a WebSocket that sends something other than SIP is closed with 1008 policy violation', async () => {
    const { ws, closed } = await open('sip');
    ws.send('{"hello":"this is not SIP"}');
    expect(await closed).toBe(1008);
    await s.waitForLine(/^WebSocket closed: a message that is not SIP/);
    // The listener still serves others.
    const other = await open('sip');
    other.ws.send(INVITE('after-1008'));
    await waitFor(other.inbox);
    expect(other.inbox[0]?.toString('latin1')).toMatch(/^SIP\/2\.0 302 /);
    other.ws.close();
  });

  it('a message over the size limit closes the WebSocket (1009) without harming the service', async () => {
    const { ws, closed } = await open('sip');
    ws.send(INVITE('big') + 'x'.repeat(70_000));
    expect(await closed).toBe(1009);
  });

  it('plain HTTP gets 426 Upgrade Required', async () => {
    const res = await fetch(`http://127.0.0.1:${s.port('ws')}/`);
    expect(res.status).toBe(426);
  });
});
