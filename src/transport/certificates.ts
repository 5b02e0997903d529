// The certificates of tls:// and wss:// listeners and of TLS connections to pool members: read from
// the PEM files server.yaml names, checked, watched, and swapped in when the files are replaced, so a
// renewed certificate is used for new connections while established ones carry on undisturbed.

import { watch, type FSWatcher } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { basename, dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_READ_TIMEOUT, readRuledBytes } from '../config/config-file.js';
import type { TlsConfig } from '../config/schema.js';
import type { PeerCertificate } from './types.js';
import { ServiceError } from '../base/service-error.js';

export class CertificateError extends ServiceError {
  readonly code = 'PCHAT_ERR_CERTIFICATE_INVALID';
}

/** The files' contents, checked: every key matches its certificate. */
interface Material {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** SNI contexts by lower-case server name (`*.contoso.com` for a wildcard). */
  readonly sni: ReadonlyMap<string, SecureContext>;
  /** What the default certificate says about itself, for logs. */
  readonly summary: CertificateSummary;
}

export interface CertificateSummary {
  readonly subject: string;
  readonly validTo: string;
  readonly fingerprint256: string;
}

export interface CertificateStoreOptions {
  /** server.yaml's tls section. */
  readonly config: TlsConfig;
  /** Relative file names are taken from here (the configuration folder). */
  readonly baseDir: string;
  readonly logger: Logger;
  /** Quiet time after the last change seen before reloading, in ms (default 200). */
  readonly debounceMs?: number;
  /** Wall clock for expiry warnings (tests). */
  readonly now?: () => number;
}

/** A certificate that expires within this long is warned about at every load. */
const EXPIRY_WARNING_MS = 14 * 24 * 3600 * 1000;

export class CertificateStore {
  private material: Material;
  private readonly listeners = new Set<() => void>();
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private reloading: Promise<boolean> | undefined;
  private closed = false;

  private constructor(
    private readonly opts: CertificateStoreOptions,
    material: Material,
  ) {
    this.material = material;
  }

  /** Reads and checks every file; throws CertificateError naming the file and what is wrong. */
  static async load(opts: CertificateStoreOptions): Promise<CertificateStore> {
    const store = new CertificateStore(opts, await readMaterial(opts));
    store.describe('certificate loaded');
    return store;
  }

  get config(): TlsConfig {
    return this.opts.config;
  }

  /** tls:// listeners ask for a client certificate when a CA bundle is configured (MTLS). */
  get requestsClientCert(): boolean {
    return this.opts.config.ca !== undefined;
  }

  /** Clients without a certificate that verifies against the CA bundle are refused. */
  get requiresClientCert(): boolean {
    return this.requestsClientCert && this.opts.config.requireClientCert !== false;
  }

  get summary(): CertificateSummary {
    return this.material.summary;
  }

  /** The default context's options, as a listener's setSecureContext and createServer take them. */
  contextOptions(): SecureContextOptions {
    return this.optionsFor(this.material.cert, this.material.key);
  }

  /**
   * Options for a connection to a pool member: our certificate (Lync pools ask for one: MTLS
   * server to server) and the CA bundle, or the system's CAs when none is configured.
   */
  clientOptions(): SecureContextOptions {
    return this.contextOptions();
  }

  /** For tls.createServer's SNICallback: the context for `servername`, else the default one. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const name = servername.toLowerCase();
    const dot = name.indexOf('.');
    const ctx =
      this.material.sni.get(name) ?? (dot > 0 ? this.material.sni.get(`*${name.slice(dot)}`) : undefined);
    cb(null, ctx);
  };

  /** Be told after each successful reload. Returns a function that cancels the subscription. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reads the files again; on success the new certificates serve every connection from now on.
   * A bad set (unreadable file, key not matching, half-written PEM) is refused and logged, and the
   * last good one keeps serving. Resolves true when the new set was applied.
   */
  reload(): Promise<boolean> {
    // One read at a time; a change seen meanwhile is picked up by the debounced watch.
    this.reloading ??= this.doReload().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  /** Watches the folders holding the files: renewal tools replace files by rename, which a watch on the file itself would miss. */
  watch(): void {
    const byDir = new Map<string, Set<string>>();
    for (const f of this.files()) {
      const names = byDir.get(dirname(f)) ?? new Set<string>();
      names.add(basename(f));
      byDir.set(dirname(f), names);
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          // Kubernetes secrets swap a `..data` symlink: any change in the folder may be ours.
          if (name !== null && !names.has(name) && !name.startsWith('..')) return;
          this.schedule();
        });
        w.on('error', (err) => this.opts.logger.error({ err, dir }, 'certificate folder no longer watched'));
        this.watchers.push(w);
      } catch (err) {
        this.opts.logger.error({ err, dir }, 'certificate folder cannot be watched: reload with SIGHUP');
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.listeners.clear();
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 200);
  }

  private async doReload(): Promise<boolean> {
    let next: Material;
    try {
      next = await readMaterial(this.opts);
    } catch (err) {
      this.opts.logger.error(
        { err: err instanceof Error ? err.message : String(err), still: this.material.summary },
        `certificate reload refused, still serving the last good certificate: ${err instanceof Error ? err.message : String(err)}`,
      );
      return false;
    }
    if (this.closed) return false;
    const changed = next.summary.fingerprint256 !== this.material.summary.fingerprint256;
    this.material = next;
    this.describe(changed ? 'certificate reloaded' : 'certificate files reread');
    for (const l of [...this.listeners]) l();
    return true;
  }

  private describe(msg: string): void {
    const { summary } = this.material;
    const now = this.opts.now?.() ?? Date.now();
    const left = Date.parse(summary.validTo) - now;
    this.opts.logger.info({ ...summary, sni: [...this.material.sni.keys()] }, `${msg}: ${summary.subject}`);
    if (left < 0) this.opts.logger.error({ ...summary }, `certificate has expired: ${summary.subject}`);
    else if (left < EXPIRY_WARNING_MS)
      this.opts.logger.warn({ ...summary }, `certificate expires soon: ${summary.subject}`);
  }

  private files(): string[] {
    const c = this.opts.config;
    const out = [c.cert, c.key, ...(c.ca === undefined ? [] : [c.ca])];
    for (const s of c.sni) out.push(s.cert, s.key);
    return out.map((f) => resolve(this.opts.baseDir, f));
  }

  private optionsFor(cert: Buffer, key: Buffer): SecureContextOptions {
    return commonOptions(this.opts.config, cert, key, this.material.ca);
  }
}

function commonOptions(
  config: TlsConfig,
  cert: Buffer,
  key: Buffer,
  ca: Buffer | undefined,
): SecureContextOptions {
  return {
    cert,
    key,
    // RFC 7525 §3.1.1: implementations "MUST NOT negotiate TLS version 1.1" or earlier where 1.2 is on offer.
    minVersion: config.minVersion,
    ...(ca === undefined ? {} : { ca }),
    ...(config.ciphers === undefined ? {} : { ciphers: config.ciphers }),
  };
}

async function readPem(baseDir: string, file: string, what: string): Promise<Buffer> {
  const path = resolve(baseDir, file);
  try {
    // As the YAML files: a FIFO or device in place of a PEM file is refused without waiting on it.
    // Certificates may link out of the folder (Let's Encrypt's live/ into archive/), so no root.
    return await readRuledBytes(path, {
      maxFileSize: DEFAULT_MAX_FILE_SIZE,
      timeoutMs: DEFAULT_READ_TIMEOUT,
    });
  } catch (err) {
    throw new CertificateError(`tls.${what}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Reads every file and checks that each key belongs to its certificate. */
async function readMaterial(opts: CertificateStoreOptions): Promise<Material> {
  const c = opts.config;
  const [cert, key, ca] = await Promise.all([
    readPem(opts.baseDir, c.cert, 'cert'),
    readPem(opts.baseDir, c.key, 'key'),
    c.ca === undefined ? undefined : readPem(opts.baseDir, c.ca, 'ca'),
  ]);
  const summary = checkPair(c, cert, key, ca, 'tls');
  if (ca !== undefined) {
    try {
      createSecureContext({ ca });
      new X509Certificate(ca);
    } catch (err) {
      throw new CertificateError(`tls.ca: ${resolve(opts.baseDir, c.ca ?? '')}: ${reason(err)}`);
    }
  }
  const sni = new Map<string, SecureContext>();
  for (const [i, s] of c.sni.entries()) {
    const [sCert, sKey] = await Promise.all([
      readPem(opts.baseDir, s.cert, `sni[${i}].cert`),
      readPem(opts.baseDir, s.key, `sni[${i}].key`),
    ]);
    checkPair(c, sCert, sKey, ca, `tls.sni[${i}]`);
    // The CA bundle is part of the context: a client asking for this name is verified against it too.
    sni.set(s.servername, createSecureContext(commonOptions(c, sCert, sKey, ca)));
  }
  return { cert, key, ca, sni, summary };
}

function checkPair(
  config: TlsConfig,
  cert: Buffer,
  key: Buffer,
  ca: Buffer | undefined,
  where: string,
): CertificateSummary {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new CertificateError(`${where}.cert is not a PEM certificate: ${reason(err)}`);
  }
  try {
    // Throws "key values mismatch" when the key is not the certificate's: a renewal caught half-way.
    createSecureContext(commonOptions(config, cert, key, ca));
  } catch (err) {
    throw new CertificateError(`${where}.key does not fit ${where}.cert: ${reason(err)}`);
  }
  return {
    subject: dn(x509.subject),
    validTo: new Date(x509.validTo).toISOString(),
    fingerprint256: x509.fingerprint256,
  };
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** node prints a distinguished name one attribute a line; logs and policies read it on one. */
function dn(text: string): string {
  return text.split('\n').filter(Boolean).join(', ');
}

/** The verified client certificate of a TLS connection as access policies see it, if any. */
export function peerCertificateOf(socket: TLSSocket): PeerCertificate | undefined {
  if (!socket.authorized) return undefined;
  const x509 = socket.getPeerX509Certificate();
  if (x509 === undefined) return undefined;
  const subject = dn(x509.subject);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x509.subject)?.[1];
  return {
    subject,
    ...(cn === undefined ? {} : { commonName: cn }),
    san: splitSan(x509.subjectAltName),
  };
}

/** "DNS:a, URI:sip:b" → ["DNS:a", "URI:sip:b"]; node quotes an entry that itself holds a comma. */
function splitSan(text: string | undefined): string[] {
  if (text === undefined || text === '') return [];
  const out: string[] = [];
  const re = /([A-Za-z ]+):(?:"((?:[^"\\]|\\.)*)"|([^,]*))(?:,\s*|$)/g;
  let m: RegExpExecArray | null;
  // Bounded: each match consumes at least one character, and a failed match ends the loop.
  while ((m = re.exec(text)) !== null && m[0] !== '') {
    out.push(`${m[1]}:${m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '')}`);
  }
  return out;
}

/** Why a TLS client was refused, in words, from OpenSSL's verification code. */
export function describeVerifyError(code: string | undefined, presented: boolean): string {
  if (!presented) return 'no client certificate';
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'client certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'client certificate is not yet valid';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'client certificate is self-signed';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return 'client certificate is not issued by a trusted CA';
    case 'CERT_SIGNATURE_FAILURE':
      return 'client certificate signature is invalid';
    case 'CERT_REVOKED':
      return 'client certificate is revoked';
    case 'INVALID_PURPOSE':
      return 'client certificate is not for client authentication';
    default:
      return `client certificate not verified (${code ?? 'unknown reason'})`;
  }
}
