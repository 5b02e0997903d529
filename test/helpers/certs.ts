// Certificates made in the test itself: a private CA, server and client certificates it issues
// (with names, validity and usage chosen by the test), self-signed ones, written as PEM files.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

export interface KeyPair {
  /** PEM. */
  readonly cert: string;
  /** PEM. */
  readonly key: string;
}

export interface Issuer extends KeyPair {
  readonly forgeCert: forge.pki.Certificate;
  readonly forgeKey: forge.pki.rsa.PrivateKey;
}

export interface CertOptions {
  readonly commonName: string;
  /** DNS names; an entry that is an IPv4 address goes in as an IP address. */
  readonly altNames?: readonly string[];
  readonly organization?: string;
  /** Default: valid from an hour ago for a year. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

const HOUR = 3600_000;

function newKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  // Native key generation: the JavaScript one takes seconds per key.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
  };
}

function build(
  opts: CertOptions,
  ca: Issuer | undefined,
  isCa: boolean,
): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  const keys = newKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // A positive serial: the top bit clear.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - HOUR);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * 24 * HOUR);
  const subject = [
    { name: 'organizationName', value: opts.organization ?? 'Contoso' },
    { name: 'commonName', value: opts.commonName },
  ];
  cert.setSubject(subject);
  cert.setIssuer(ca === undefined ? subject : ca.forgeCert.subject.attributes);
  const altNames = (opts.altNames ?? (isCa ? [] : [opts.commonName])).map((n) =>
    /^\d+\.\d+\.\d+\.\d+$/.test(n) ? { type: 7, ip: n } : { type: 2, value: n },
  );
  cert.setExtensions([
    { name: 'basicConstraints', cA: isCa, critical: true },
    isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    ...(isCa ? [] : [{ name: 'extKeyUsage', serverAuth: true, clientAuth: true }]),
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(ca?.forgeKey ?? keys.privateKey, forge.md.sha256.create());
  return { cert, key: keys.privateKey };
}

function pem(c: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }): Issuer {
  return {
    cert: forge.pki.certificateToPem(c.cert),
    key: forge.pki.privateKeyToPem(c.key),
    forgeCert: c.cert,
    forgeKey: c.key,
  };
}

/** A CA that issues the test's certificates. */
export function makeCa(commonName = 'Contoso Test CA'): Issuer {
  return pem(build({ commonName }, undefined, true));
}

/** A certificate issued by `ca`, usable by a server and a client alike. */
export function issue(ca: Issuer, opts: CertOptions): KeyPair {
  const { cert, key } = pem(build(opts, ca, false));
  return { cert, key };
}

/** A certificate signed by its own key. */
export function selfSigned(opts: CertOptions): KeyPair {
  const { cert, key } = pem(build(opts, undefined, false));
  return { cert, key };
}

/** A temp folder for PEM files, removed by `remove`. */
export async function certDir(): Promise<{
  dir: string;
  /** Writes `name` atomically (temp file, rename), as renewal tools do. */
  write(name: string, pemText: string): Promise<string>;
  remove(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-certs-'));
  return {
    dir,
    async write(name, pemText) {
      const path = join(dir, name);
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, pemText);
      await rename(tmp, path);
      return path;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
