// server.yaml's tls section and tls/ws/wss listeners; certificate loading errors; the verified
// client certificate on Source (what access policies match); SNI; what counts as SIP on a WebSocket.

import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import tls from 'node:tls';
import { pino } from 'pino';
import { ConfigError } from '../../src/config/errors.js';
import { parseServerConfig } from '../../src/config/load.js';
import { parseListenAddress, type TlsConfig } from '../../src/config/schema.js';
import { CertificateError, CertificateStore } from '../../src/transport/certificates.js';
import { ConnectionWatch } from '../../src/transport/connection-watch.js';
import { TlsListener } from '../../src/transport/tls.js';
import type { Source } from '../../src/transport/types.js';
import { looksLikeSip } from '../../src/transport/ws.js';
import { certDir, issue, makeCa, type Issuer } from '../helpers/certs.js';

const FILE = 'config/server.yaml';

function refusal(text: string): string[] {
  try {
    parseServerConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.split('\n');
  }
  expect.fail('the configuration was accepted');
}

const silent = pino({ level: 'silent' });

describe('server.yaml: TLS and WebSocket', () => {
  it.each([
    ['tls://0.0.0.0', { transport: 'tls', host: '0.0.0.0', port: 5061, family: 4 }],
    ['ws://127.0.0.1', { transport: 'ws', host: '127.0.0.1', port: 80, family: 4 }],
    ['wss://[::]', { transport: 'wss', host: '::', port: 443, family: 6 }],
    ['wss://127.0.0.1:8443', { transport: 'wss', host: '127.0.0.1', port: 8443, family: 4 }],
  ])('listen %s takes the RFC 3261 / RFC 7118 default port', (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected);
  });

  it('the tls section: defaults, relative files kept as written', () => {
    const cfg = parseServerConfig(
      'listen:\n  - tls://127.0.0.1:5061\ntls:\n  cert: c.pem\n  key: k.pem\n',
      FILE,
    );
    expect(cfg.tls).toEqual({ cert: 'c.pem', key: 'k.pem', minVersion: 'TLSv1.2', sni: [] });
    const full = parseServerConfig(
      'tls:\n  cert: c.pem\n  key: k.pem\n  ca: ca.pem\n  requireClientCert: true\n  minVersion: TLSv1.3\n' +
        '  ciphers: ECDHE-RSA-AES128-GCM-SHA256\n  sni:\n    - servername: Chat.Fabrikam.com\n      cert: f.pem\n      key: fk.pem\n',
      FILE,
    );
    expect(full.tls?.sni).toEqual([{ servername: 'chat.fabrikam.com', cert: 'f.pem', key: 'fk.pem' }]);
    expect(full.tls?.minVersion).toBe('TLSv1.3');
  });

  it('refuses tls:// and wss:// listeners without the tls section, at the listen entry', () => {
    expect(
      refusal(
        'listen:\n  - udp://127.0.0.1:5060\n  - tls://127.0.0.1:5061\n  - ws://127.0.0.1:8080\n  - wss://127.0.0.1:8443\n',
      ),
    ).toEqual([
      `${FILE}:3:5: listen[1]: tls:// needs the tls section (cert and key files)`,
      `${FILE}:5:5: listen[3]: wss:// needs the tls section (cert and key files)`,
    ]);
  });

  it.each([
    ['  requireClientCert: true\n', '4:22: tls.requireClientCert: needs ca'],
    ['  minVersion: TLSv1.1\n', '4:15: tls.minVersion: expected one of "TLSv1.2", "TLSv1.3", got "TLSv1.1"'],
    ['  ciphers: NO-SUCH-CIPHER\n', '4:12: tls.ciphers: no cipher matches "NO-SUCH-CIPHER"'],
    [
      '  sni:\n    - servername: "bad name"\n      cert: f.pem\n      key: k.pem\n',
      '5:19: tls.sni[0].servername: "bad name" is not',
    ],
    ['  passphrase: x\n', '4:3: tls.passphrase: unknown key "passphrase"'],
  ])('refuses %j at its line', (line, expected) => {
    const issues = refusal(`tls:\n  cert: c.pem\n  key: k.pem\n${line}`);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(`${FILE}:${expected}`);
  });
});

let ca: Issuer;
let certs: Awaited<ReturnType<typeof certDir>>;
beforeAll(async () => {
  ca = makeCa();
  certs = await certDir();
  const server = issue(ca, { commonName: 'sip.contoso.com', altNames: ['sip.contoso.com', '127.0.0.1'] });
  const other = issue(ca, { commonName: 'chat.fabrikam.com' });
  await certs.write('server.crt', server.cert);
  await certs.write('server.key', server.key);
  await certs.write('other.crt', other.cert);
  await certs.write('other.key', other.key);
  await certs.write('ca.crt', ca.cert);
});
afterAll(async () => certs.remove());

const config = (extra: Partial<TlsConfig> = {}): TlsConfig => ({
  cert: 'server.crt',
  key: 'server.key',
  minVersion: 'TLSv1.2',
  sni: [],
  ...extra,
});

describe('certificate loading', () => {
  it('names a missing file, resolved against the configuration folder', async () => {
    await expect(
      CertificateStore.load({ config: config({ cert: 'nope.crt' }), baseDir: certs.dir, logger: silent }),
    ).rejects.toThrow(new CertificateError(`tls.cert: cannot read ${certs.dir}/nope.crt: file not found`));
  });

  it('refuses a key that is not the certificate’s', async () => {
    await expect(
      CertificateStore.load({ config: config({ key: 'other.key' }), baseDir: certs.dir, logger: silent }),
    ).rejects.toThrow(/^tls.key does not fit tls.cert: .*key values mismatch/);
  });

  it('refuses a file that is not a certificate', async () => {
    await expect(
      CertificateStore.load({ config: config({ cert: 'server.key' }), baseDir: certs.dir, logger: silent }),
    ).rejects.toThrow(/^tls.cert is not a PEM certificate/);
  });
});

describe('TLS listener', () => {
  const received: Source[] = [];
  let listener: TlsListener;
  let store: CertificateStore;
  beforeAll(async () => {
    store = await CertificateStore.load({
      config: config({
        ca: 'ca.crt',
        sni: [{ servername: '*.fabrikam.com', cert: 'other.crt', key: 'other.key' }],
      }),
      baseDir: certs.dir,
      logger: silent,
    });
    listener = await TlsListener.listen(
      {
        host: '127.0.0.1',
        port: 0,
        maxMessageSize: 65535,
        certificates: store,
        logger: silent,
        watch: new ConnectionWatch({ handshakeMs: 5000, messageMs: 10_000, idleMs: 600_000 }),
      },
      (_data, source) => received.push(source),
      () => undefined,
    );
  });
  afterAll(async () => {
    await listener.close();
    store.close();
  });

  const connect = (opts: tls.ConnectionOptions): Promise<tls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: listener.address.port, ca: ca.cert, ...opts });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });

  it('puts the verified client certificate on the Source of every message', async () => {
    const client = issue(ca, {
      commonName: 'fe1.contoso.com',
      altNames: ['fe1.contoso.com', 'pool.contoso.com', '10.0.0.5'],
    });
    const s = await connect({ servername: 'sip.contoso.com', cert: client.cert, key: client.key });
    s.write('OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n');
    const deadline = Date.now() + 3000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(received[0]?.link.transport).toBe('tls');
    expect(received[0]?.link.reliable).toBe(true);
    expect(received[0]?.peerCertificate).toEqual({
      subject: 'O=Contoso, CN=fe1.contoso.com',
      commonName: 'fe1.contoso.com',
      san: ['DNS:fe1.contoso.com', 'DNS:pool.contoso.com', 'IP Address:10.0.0.5'],
    });
    s.destroy();
  });

  it('SNI: a client asking for another name gets that name’s certificate (wildcard entry)', async () => {
    const client = issue(ca, { commonName: 'fe1.contoso.com' });
    const s = await connect({ servername: 'chat.fabrikam.com', cert: client.cert, key: client.key });
    expect(s.getPeerX509Certificate()?.subject).toContain('CN=chat.fabrikam.com');
    s.destroy();
    const d = await connect({ servername: 'sip.contoso.com', cert: client.cert, key: client.key });
    expect(d.getPeerX509Certificate()?.subject).toContain('CN=sip.contoso.com');
    d.destroy();
  });
});

describe('what a WebSocket may carry', () => {
  it.each([
    ['INVITE sip:ocschat@contoso.com SIP/2.0\r\n', true],
    ['SIP/2.0 200 OK\r\n', true],
    ['OPTIONS sip:x SIP/3.0\r\n', true],
    ['GET / HTTP/1.1\r\n', false],
    ['{"json":true}', false],
    ['', false],
    ['INVITE\r\n', false],
  ])('%j → %s', (text, expected) => {
    expect(looksLikeSip(Buffer.from(text, 'latin1'))).toBe(expected);
  });
});
