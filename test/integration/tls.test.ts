// The service over TLS on loopback: 302 over a TLS connection, CRLF keep-alive, mutual TLS refusing
// clients without a certificate or with a bad or expired one (and logging why), and a renewed
// certificate file picked up by new connections while an established one keeps working.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { certDir, issue, makeCa, selfSigned, type Issuer, type KeyPair } from '../helpers/certs.js';
import { startTlsService, tlsClient, type TlsTestService } from '../helpers/tls-service.js';

function invite(branch: string, callId = `c-${branch}`): string {
  return (
    `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/TLS fe1.contoso.com:5061;branch=z9hG4bK-${branch}\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=77\r\nTo: <sip:ocschat@contoso.com>\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`
  );
}

const has302 = (n: number) => (d: string) => (d.match(/^SIP\/2\.0 302 /gm) ?? []).length >= n;

let ca: Issuer;
let server: KeyPair;
let certs: Awaited<ReturnType<typeof certDir>>;

beforeAll(async () => {
  ca = makeCa();
  server = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
  certs = await certDir();
  await certs.write('server.crt', server.cert);
  await certs.write('server.key', server.key);
  await certs.write('ca.crt', ca.cert);
});
afterAll(async () => certs.remove());

describe('TLS listener', () => {
  let svc: TlsTestService;
  beforeAll(async () => {
    svc = await startTlsService({
      listen: ['udp://127.0.0.1:0', 'tls://127.0.0.1:0'],
      tls: `  cert: ${certs.dir}/server.crt\n  key: ${certs.dir}/server.key\n`,
    });
  });
  afterAll(async () => svc.stop());

  it('answers an INVITE with 302 over TLS, verified as the name in its certificate', async () => {
    const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    expect(c.socket.authorized).toBe(true);
    expect(c.socket.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    c.socket.write(invite('t1'));
    const r = await c.waitFor(has302(1));
    expect(r).toMatch(/\r\nContact: <sip:ocschat@pcpool\.contoso\.com>\r\n/);
    c.close();
  });

  it('reuses the connection: a second request on it is answered on it', async () => {
    const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    c.socket.write(invite('r1'));
    await c.waitFor(has302(1));
    c.socket.write(invite('r2'));
    await c.waitFor(has302(2));
    expect(c.closed).toBe(false);
    c.close();
  });

  it('RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong', async () => {
    const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    c.socket.write('\r\n\r\n');
    expect(await c.waitFor((d) => d === '\r\n')).toBe('\r\n');
    // The connection stays usable after the keep-alive.
    c.socket.write(invite('after-ping'));
    await c.waitFor(has302(1));
    c.close();
  });

  it('refuses TLS 1.1, below the configured minimum of TLS 1.2', async () => {
    await expect(
      tlsClient(svc.port('tls'), {
        ca: ca.cert,
        servername: 'sip.contoso.com',
        maxVersion: 'TLSv1.1',
        minVersion: 'TLSv1',
      }),
    ).rejects.toThrow();
    await svc.waitForLine(/^TLS handshake failed/);
  });

  it('a client sending plain text to the TLS port harms no one', async () => {
    const net = await import('node:net');
    const s = net.connect({ host: '127.0.0.1', port: svc.port('tls') });
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.once('connect', r));
    s.write(invite('plain'));
    await new Promise<void>((r) => s.once('close', () => r()));
    const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    c.socket.write(invite('after-plain'));
    await c.waitFor(has302(1));
    c.close();
  });
});

describe('mutual TLS', () => {
  let svc: TlsTestService;
  const clients: Record<string, KeyPair> = {};
  beforeAll(async () => {
    clients.good = issue(ca, { commonName: 'fe1.contoso.com', altNames: ['fe1.contoso.com'] });
    clients.expired = issue(ca, {
      commonName: 'old.contoso.com',
      notBefore: new Date(Date.now() - 400 * 24 * 3600_000),
      notAfter: new Date(Date.now() - 24 * 3600_000),
    });
    clients.selfSigned = selfSigned({ commonName: 'mallory.example' });
    clients.otherCa = issue(makeCa('Other CA'), { commonName: 'fe1.contoso.com' });
    svc = await startTlsService({
      listen: ['tls://127.0.0.1:0'],
      tls: `  cert: ${certs.dir}/server.crt\n  key: ${certs.dir}/server.key\n  ca: ${certs.dir}/ca.crt\n`,
    });
  });
  afterAll(async () => svc.stop());

  const connect = (client?: KeyPair) =>
    tlsClient(svc.port('tls'), {
      ca: ca.cert,
      servername: 'sip.contoso.com',
      ...(client === undefined ? {} : { cert: client.cert, key: client.key }),
    });

  it('accepts a client certificate issued by the CA, and its subject is seen', async () => {
    const c = await connect(clients.good);
    c.socket.write(invite('m-good'));
    await c.waitFor(has302(1));
    const accepted = await svc.waitForLine(/^TLS connection accepted/);
    expect(accepted.subject).toBe('O=Contoso, CN=fe1.contoso.com');
    c.close();
  });

  for (const [name, reason] of [
    ['none', 'no client certificate'],
    ['expired', 'client certificate has expired'],
    ['selfSigned', 'client certificate is self-signed'],
    ['otherCa', 'client certificate is not issued by a trusted CA'],
  ] as const) {
    it(`refuses a client with ${name === 'none' ? 'no certificate' : `a certificate that is ${name}`}, logging why`, async () => {
      const before = svc.lines.length;
      const c = await connect(name === 'none' ? undefined : clients[name]).catch(() => undefined);
      // TLS 1.3 clients finish their side of the handshake before the server judges their certificate.
      if (c !== undefined) {
        c.socket.write(invite(`m-${name}`));
        await c.waitClosed();
        expect(c.data).not.toMatch(/^SIP\/2\.0/);
      }
      const deadline = Date.now() + 3000;
      let refused: Record<string, unknown> | undefined;
      while (refused === undefined && Date.now() < deadline) {
        refused = svc.lines.slice(before).find((l) => l.msg === `TLS client refused: ${reason}`);
        if (refused === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      expect(refused).toMatchObject({ level: 40, reason, address: '127.0.0.1' });
    });
  }
});

describe('certificate renewal', () => {
  let svc: TlsTestService;
  let renewed: Awaited<ReturnType<typeof certDir>>;
  beforeAll(async () => {
    renewed = await certDir();
    await renewed.write('server.crt', server.cert);
    await renewed.write('server.key', server.key);
    svc = await startTlsService({
      listen: ['tls://127.0.0.1:0'],
      tls: `  cert: ${renewed.dir}/server.crt\n  key: ${renewed.dir}/server.key\n`,
      watch: true,
    });
  });
  afterAll(async () => {
    await svc.stop();
    await renewed.remove();
  });

  const serialOf = (s: tls.TLSSocket): string => s.getPeerX509Certificate()?.serialNumber ?? '';

  it('new connections get the replaced certificate while an established one keeps working', async () => {
    const old = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    const oldSerial = serialOf(old.socket);
    expect(oldSerial).toBe(new X509Certificate(server.cert).serialNumber);

    const next = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com'] });
    // A renewal tool's order: the key first (the pair does not fit for a moment), then the certificate.
    await renewed.write('server.key', next.key);
    await renewed.write('server.crt', next.cert);
    const nextSerial = new X509Certificate(next.cert).serialNumber;

    const deadline = Date.now() + 5000;
    let seen = '';
    while (seen !== nextSerial && Date.now() < deadline) {
      const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
      seen = serialOf(c.socket);
      c.close();
      if (seen !== nextSerial) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe(nextSerial);
    expect(svc.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('certificate reloaded'))).toBe(
      true,
    );

    // The connection made before the renewal still carries requests and responses.
    old.socket.write(invite('old-conn'));
    await old.waitFor(has302(1));
    expect(old.closed).toBe(false);
    old.close();
  });

  it('a broken replacement is refused and logged; the last good certificate keeps serving', async () => {
    const current = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    const serial = serialOf(current.socket);
    current.close();
    await renewed.write('server.crt', '-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n');
    await svc.waitForLine(/^certificate reload refused/, 5000);
    const c = await tlsClient(svc.port('tls'), { ca: ca.cert, servername: 'sip.contoso.com' });
    expect(serialOf(c.socket)).toBe(serial);
    c.socket.write(invite('after-broken'));
    await c.waitFor(has302(1));
    c.close();
  });
});
