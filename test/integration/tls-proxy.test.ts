// Proxy mode to pool members over TLS: the member's certificate is verified against the name the
// pool lists it under (sip:pc1.contoso.com:PORT;transport=tls), we present our own certificate
// (Lync pools require mutual TLS), and a member whose certificate names someone else is refused as
// a transport error: failover to the next member, or 503 when none is left.

import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import dgram from 'node:dgram';
import type net from 'node:net';
import tls from 'node:tls';
import { parseMessage } from '../../src/sip/parser.js';
import { StreamFramer } from '../../src/sip/framer.js';
import type { DnsLike } from '../../src/pool/index.js';
import { reply } from '../helpers/sip-peer.js';
import { certDir, issue, makeCa, type Issuer, type KeyPair } from '../helpers/certs.js';
import { startTlsService, type TlsTestService } from '../helpers/tls-service.js';

/** Every name resolves to loopback over IPv4 only; nothing has NAPTR or SRV records. */
const LOOPBACK_DNS: DnsLike = {
  resolveNaptr: (name) =>
    Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' })),
  resolveSrv: (name) => Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' })),
  resolve4: () => Promise.resolve([{ address: '127.0.0.1', ttl: 300 }]),
  resolve6: (name) => Promise.reject(Object.assign(new Error(`ENODATA ${name}`), { code: 'ENODATA' })),
};

interface TlsMember {
  readonly port: number;
  readonly methods: string[];
  /** Subjects of the client certificates the service presented. */
  readonly clientSubjects: string[];
  close(): Promise<void>;
}

/** A pool member speaking SIP over mutual TLS that answers every request 200 OK. */
async function startTlsMember(identity: KeyPair, ca: Issuer): Promise<TlsMember> {
  const methods: string[] = [];
  const clientSubjects: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    cert: identity.cert,
    key: identity.key,
    ca: ca.cert,
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    clientSubjects.push(s.getPeerX509Certificate()?.subject.replace(/\n/g, ', ') ?? '');
    const framer = new StreamFramer(65535);
    s.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) {
        if (ev.type !== 'message') continue;
        const r = parseMessage(ev.data, { stream: true });
        if (!r.ok || r.message.kind !== 'request') continue;
        methods.push(r.message.method);
        if (r.message.method !== 'ACK') s.write(reply(r.message, 200, 'OK'));
      }
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    methods,
    clientSubjects,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function endpoints(targets: string[]): string {
  return `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
${targets.map((t, i) => `      - uri: ${t}\n        q: ${1 - i / 10}\n`).join('')}`;
}

async function sendMessage(port: number, callId: string): Promise<string> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const local = sock.address().port;
  const msg =
    `MESSAGE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};rport;branch=z9hG4bK-${callId}\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=9\r\nTo: <sip:ocschat@contoso.com>\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi`;
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no final response')), 5000);
      sock.on('message', (m) => {
        const text = m.toString('latin1');
        if (/^SIP\/2\.0 [2-6]\d\d /.test(text)) {
          clearTimeout(timer);
          resolve(text);
        }
      });
      sock.send(Buffer.from(msg, 'latin1'), port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

let ca: Issuer;
let certs: Awaited<ReturnType<typeof certDir>>;
const members: TlsMember[] = [];
let svc: TlsTestService | undefined;

beforeAll(async () => {
  ca = makeCa();
  const ours = issue(ca, { commonName: 'pchat.contoso.com' });
  certs = await certDir();
  await certs.write('ours.crt', ours.cert);
  await certs.write('ours.key', ours.key);
  await certs.write('ca.crt', ca.cert);
});
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  for (const m of members.splice(0)) await m.close();
});
afterAll(async () => certs.remove());

async function start(targets: string[]): Promise<TlsTestService> {
  svc = await startTlsService({
    listen: ['udp://127.0.0.1:0', 'tls://127.0.0.1:0'],
    tls: `  cert: ${certs.dir}/ours.crt\n  key: ${certs.dir}/ours.key\n  ca: ${certs.dir}/ca.crt\n`,
    endpoints: endpoints(targets),
    extra: 'sip:\n  t1: 100\n',
    proxy: { probe: false, dns: LOOPBACK_DNS, holdDownMs: 0 },
  });
  return svc;
}

describe('proxy mode over TLS', () => {
  it('reaches a member whose certificate carries the name it is listed under, presenting ours', async () => {
    const pc1 = await startTlsMember(issue(ca, { commonName: 'pc1.contoso.com' }), ca);
    members.push(pc1);
    const s = await start([`sip:pc1.contoso.com:${pc1.port};transport=tls`]);
    const r = await sendMessage(s.port('udp'), 'tls-good');
    expect(r).toMatch(/^SIP\/2\.0 200 OK/);
    expect(pc1.methods).toEqual(['MESSAGE']);
    expect(pc1.clientSubjects).toEqual(['O=Contoso, CN=pchat.contoso.com']);
  });

  it('refuses a member whose certificate names another host and fails over to the next', async () => {
    const impostor = await startTlsMember(issue(ca, { commonName: 'evil.contoso.com' }), ca);
    const pc2 = await startTlsMember(issue(ca, { commonName: 'pc2.contoso.com' }), ca);
    members.push(impostor, pc2);
    const s = await start([
      `sip:pc1.contoso.com:${impostor.port};transport=tls`,
      `sip:pc2.contoso.com:${pc2.port};transport=tls`,
    ]);
    const r = await sendMessage(s.port('udp'), 'tls-failover');
    expect(r).toMatch(/^SIP\/2\.0 200 OK/);
    expect(impostor.methods).toEqual([]);
    expect(pc2.methods).toEqual(['MESSAGE']);
    const refused = s.lines.find((l) => l.msg === 'pool member unreachable');
    expect(String(refused?.err)).toMatch(/pc1\.contoso\.com.*(altnames|does not match)/i);
  });

  it('answers 503 when the only member presents a certificate for another name', async () => {
    const impostor = await startTlsMember(issue(ca, { commonName: 'evil.contoso.com' }), ca);
    members.push(impostor);
    const s = await start([`sip:pc1.contoso.com:${impostor.port};transport=tls`]);
    const r = await sendMessage(s.port('udp'), 'tls-503');
    expect(r).toMatch(/^SIP\/2\.0 503 /);
    expect(impostor.methods).toEqual([]);
  });

  it('refuses a member whose certificate no trusted CA issued', async () => {
    const stranger = await startTlsMember(
      issue(makeCa('Stranger CA'), { commonName: 'pc1.contoso.com' }),
      ca,
    );
    members.push(stranger);
    const s = await start([`sip:pc1.contoso.com:${stranger.port};transport=tls`]);
    expect(await sendMessage(s.port('udp'), 'tls-ca')).toMatch(/^SIP\/2\.0 503 /);
    expect(stranger.methods).toEqual([]);
  });
});
