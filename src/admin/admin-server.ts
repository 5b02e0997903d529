// The admin HTTP port: /healthz (the process answers), /readyz (listeners bound, table loaded),
// /metrics (Prometheus), /endpoints (the live table as JSON), /status (the instance at a glance, for
// `pchat-endpoint status`) and POST /reload.
//
// A browser on the same machine can reach a loopback port too, so every request passes, in order:
// the Host (or absolute-form authority) must name this port, else 421 (DNS rebinding: a page whose
// own name now resolves to 127.0.0.1); an Origin header must be a configured one, else 403 (a page
// POSTing cross-site); the path must be one of ours, else 404; POST /reload must carry the bearer
// token when one is configured, else 401. GETs need no token: orchestrators probe and scrape them.
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join } from 'node:path';
import ipaddr from 'ipaddr.js';
import type { ConfigInfo, ServiceMetrics } from './metrics.js';
import { withTimeout } from '../base/with-timeout.js';
import { DEFAULT_READ_TIMEOUT } from '../config/config-file.js';

export interface AdminHandlers {
  readonly metrics: ServiceMetrics;
  ready(): boolean;
  /** Time since the service started, ms (GET /status). */
  uptimeMs(): number;
  /** The live endpoint table, as served on /endpoints. */
  endpoints(): unknown;
  /** Reloads the configuration; `ok: false` when it was refused. */
  reload(): Promise<{ ok: boolean }>;
  /**
   * The drachtio engine's outbound address ("127.0.0.1:9023"), for drachtio-servers' request-handler
   * (GET /drachtio/route); `draining` once the instance drains (new requests belong elsewhere);
   * undefined when the engine does not listen for them.
   */
  drachtioRoute?(): { uri: string } | 'draining' | undefined;
  /** The drachtio engine's links and their SIP addresses (GET /drachtio); undefined on the native engine. */
  drachtio?(): unknown;
}

/**
 * GET /status: what `pchat-endpoint status` shows of one instance. The values are those /readyz and
 * /metrics give (pchat_config_info, pchat_transactions_in_flight, pchat_pool_member_up), in one
 * answer, so a fleet is read with one request per instance and the numbers agree with a scrape.
 */
export interface AdminStatus {
  /** Always STATUS_SERVICE: tells this port from any other HTTP server answering JSON. */
  readonly service: typeof STATUS_SERVICE;
  readonly ready: boolean;
  readonly uptimeSeconds: number;
  /** The table serving: its digest and endpoint count (null only if the metrics were built without). */
  readonly config: ConfigInfo | null;
  readonly transactionsInFlight: number;
  readonly poolMembers: { readonly up: number; readonly down: number };
}

export const STATUS_SERVICE = 'pchat-endpoint';

export interface AdminAddress {
  readonly host: string;
  readonly port: number;
}

/** Who may call the port (server.yaml `admin`; its schema holds the defaults). */
export interface AdminAccess {
  /** Host names besides the listen address: `name` (any port) or `name:port`, lower case. */
  readonly hosts: readonly string[];
  /** Origins allowed to send requests from a browser, lower case. */
  readonly allowOrigins: readonly string[];
  readonly token?: string | undefined;
  /** Read when the port opens and again on each authenticated request; relative to `baseDir`. */
  readonly tokenFile?: string | undefined;
  readonly baseDir: string;
}

const TEXT = 'text/plain; charset=utf-8';

const OPEN: AdminAccess = { hosts: [], allowOrigins: [], baseDir: '.' };

export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly address: AdminAddress,
  ) {}

  static async listen(
    at: AdminAddress,
    handlers: AdminHandlers,
    onError: (err: Error) => void,
    access: AdminAccess = OPEN,
  ): Promise<AdminServer> {
    const token = await Token.from(access, onError);
    let guard: AdminGuard | undefined;
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
    // request message that lacks a Host header field" (node:http does, with requireHostHeader).
    const server = createServer({ requireHostHeader: true }, (req, res) => {
      // Built on the first request: it needs the bound port.
      guard ??= new AdminGuard(server.address() as AddressInfo, access);
      handle(req, res, handlers, guard, token).catch((err: unknown) => {
        onError(err instanceof Error ? err : new Error(String(err)));
        if (!res.headersSent) send(res, 500, TEXT, 'internal error\n');
        else res.destroy();
      });
    });
    // A scraper that keeps its connection open must not hold the service up when it stops.
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', onError);
    const bound = server.address() as AddressInfo;
    return new AdminServer(server, { host: bound.address, port: bound.port });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n');
}

const ROUTES: Record<string, string> = {
  '/healthz': 'GET',
  '/readyz': 'GET',
  '/metrics': 'GET',
  '/endpoints': 'GET',
  '/status': 'GET',
  '/reload': 'POST',
  '/drachtio': 'GET',
  // drachtio-server asks its request-handler URL with "/?method=..." appended.
  '/drachtio/route': 'GET',
  '/drachtio/route/': 'GET',
};

/** An authority (`host`, `host:port`, `[v6]:port`): host in group 1 (brackets kept), port in 2. */
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]*)(?::(\d{1,5}))?$/;

/** Decides the Host (421) and Origin (403) checks; built once the port is bound. */
export class AdminGuard {
  private readonly port: string;
  /** The listen address, normalised; undefined when it is a wildcard (every address answers). */
  private readonly ip: string | undefined;
  /** `host:port` and bare `host` values allowed as they are. */
  private readonly exact = new Set<string>();
  /** Configured names without a port: any port. */
  private readonly names = new Set<string>();
  private readonly origins: ReadonlySet<string>;

  constructor(bound: AddressInfo, access: AdminAccess) {
    this.port = String(bound.port);
    const addr = ipaddr.parse(bound.address);
    const wildcard = addr.range() === 'unspecified';
    this.ip = wildcard ? undefined : addr.toNormalizedString();
    // localhost is resolved by the client itself, never through DNS a web page controls.
    if (wildcard || addr.range() === 'loopback') {
      this.exact.add('localhost');
      this.exact.add(`localhost:${this.port}`);
    }
    for (const h of access.hosts) (AUTHORITY.exec(h)?.[2] === undefined ? this.names : this.exact).add(h);
    this.origins = new Set(access.allowOrigins);
  }

  /** True when `authority` names this port: the listen address (any IP literal on a wildcard). */
  host(authority: string): boolean {
    const a = authority.toLowerCase();
    if (this.exact.has(a)) return true;
    const m = AUTHORITY.exec(a);
    if (m === null) return false;
    const host = m[1]!;
    if (this.names.has(host)) return true;
    if (m[2] !== undefined && m[2] !== this.port) return false;
    // An IP literal cannot be rebound: the browser connects to the address the page named.
    const ip = host.startsWith('[') ? host.slice(1, -1) : host;
    const valid = host.startsWith('[') ? ipaddr.IPv6.isValid(ip) : ipaddr.IPv4.isValidFourPartDecimal(ip);
    if (!valid) return false;
    return this.ip === undefined || ipaddr.parse(ip).toNormalizedString() === this.ip;
  }

  origin(origin: string): boolean {
    return this.origins.has(origin.toLowerCase());
  }
}

/** The bearer token of POST /reload, if any; a token file is reread so it can be rotated. */
class Token {
  private constructor(
    private value: Buffer | undefined,
    private readonly file: string | undefined,
    private readonly onError: (err: Error) => void,
  ) {}

  static async from(access: AdminAccess, onError: (err: Error) => void): Promise<Token> {
    if (access.tokenFile === undefined) {
      return new Token(access.token === undefined ? undefined : digest(access.token), undefined, onError);
    }
    const file = isAbsolute(access.tokenFile) ? access.tokenFile : join(access.baseDir, access.tokenFile);
    // A token file that cannot be read stops the start: the port must not open unprotected.
    return new Token(digest(await readToken(file)), file, onError);
  }

  private reading: Promise<string> | undefined;

  get required(): boolean {
    return this.value !== undefined;
  }

  /** True when the Authorization header carries the token (compared in constant time). */
  async accepts(authorization: string | undefined): Promise<boolean> {
    const m = /^bearer +([\w.~+/-]+=*) *$/i.exec(authorization ?? '');
    if (m === null) return false;
    if (this.file !== undefined) {
      try {
        // One read at a time, whatever the number of requests, and none waits past the timeout: a
        // file on a hung mount cannot hold the requests, or the thread pool, for ever.
        const file = this.file;
        this.reading ??= withTimeout<string | Error>(
          readToken(file),
          DEFAULT_READ_TIMEOUT,
          () => new Error(`admin.tokenFile ${file} not read within ${DEFAULT_READ_TIMEOUT} ms`),
        )
          .then((read) => {
            if (read instanceof Error) throw read;
            return read;
          })
          .finally(() => (this.reading = undefined));
        this.value = digest(await this.reading);
      } catch (err) {
        // Keep the last token read: a file being replaced must not open the port.
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
    // Both sides hashed first, so neither the comparison nor its length tells anything.
    return this.value !== undefined && timingSafeEqual(digest(m[1]!), this.value);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Largest token file read: a token is a line, not a document. */
const MAX_TOKEN_FILE = 4096;

/** The first line of a regular file of at most 4 KiB (non-blocking open: a FIFO cannot hang it). */
async function readToken(file: string): Promise<string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`admin.tokenFile ${file} is not a regular file`);
    if (st.size > MAX_TOKEN_FILE) {
      throw new Error(`admin.tokenFile ${file} has ${st.size} bytes, more than ${MAX_TOKEN_FILE}`);
    }
    const buf = Buffer.alloc(MAX_TOKEN_FILE);
    const { bytesRead } = await fh.read(buf, 0, MAX_TOKEN_FILE, 0);
    const token = buf.toString('utf8', 0, bytesRead).split(/\r?\n/)[0]!.trim();
    if (token.length < 16) throw new Error(`admin.tokenFile ${file} holds no token of 16 characters or more`);
    return token;
  } finally {
    await fh.close();
  }
}

/**
 * The request target as a path, and the authority of an absolute-form target; undefined when it is
 * neither origin-form nor an http absolute-form (asterisk-form, authority-form, anything malformed).
 * No percent-decoding: our paths have nothing to decode, so an encoded one is simply not ours.
 */
function target(url: string): { path: string; authority: string | undefined } | undefined {
  if (url.startsWith('/')) {
    const q = url.indexOf('?');
    return { path: q < 0 ? url : url.slice(0, q), authority: undefined };
  }
  const m = /^http:\/\/([^/?#]*)(\/[^?#]*)?(?:\?[^#]*)?$/i.exec(url);
  return m === null ? undefined : { path: m[2] ?? '/', authority: m[1]! };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  h: AdminHandlers,
  guard: AdminGuard,
  token: Token,
): Promise<void> {
  const t = target(req.url ?? '');
  // RFC 9112 §3.2.2: "When an origin server receives a request with an absolute-form of
  // request-target, the origin server MUST ignore the received Host header field (if any) and
  // instead use the host information of the request-target."
  const authority = t?.authority ?? req.headers.host;
  // Only an HTTP/1.0 request can come without a Host (node:http refuses it in 1.1), and no browser
  // sends one: nothing to rebind.
  if (authority !== undefined && !guard.host(authority)) {
    return send(res, 421, TEXT, 'misdirected request: not this host\n');
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !guard.origin(origin)) {
    return send(res, 403, TEXT, 'origin not allowed\n');
  }
  const path = t?.path ?? '';
  const allowed = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (allowed === undefined) return send(res, 404, TEXT, 'not found\n');
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (method !== allowed) {
    return send(res, 405, TEXT, `use ${allowed}\n`, { allow: allowed });
  }
  // Nothing here reads a body; draining it lets the connection be reused.
  req.resume();
  if (method === 'POST' && token.required) {
    const given = req.headers.authorization;
    if (!(await token.accepts(given))) {
      // RFC 6750 §3: a request without credentials gets the challenge alone; a wrong token also
      // gets error="invalid_token".
      const challenge = `Bearer realm="pchat-endpoint admin"${given === undefined ? '' : ', error="invalid_token"'}`;
      return send(res, 401, TEXT, 'bearer token required\n', { 'www-authenticate': challenge });
    }
  }
  switch (path) {
    case '/healthz':
      return send(res, 200, TEXT, 'ok\n');
    case '/readyz':
      return h.ready() ? send(res, 200, TEXT, 'ready\n') : send(res, 503, TEXT, 'not ready\n');
    case '/metrics':
      return send(res, 200, h.metrics.contentType, await h.metrics.text());
    case '/endpoints':
      return json(res, 200, h.endpoints());
    case '/status': {
      const m = await h.metrics.snapshot();
      const status: AdminStatus = {
        service: STATUS_SERVICE,
        ready: h.ready(),
        uptimeSeconds: Math.floor(h.uptimeMs() / 1000),
        config: m.config ?? null,
        transactionsInFlight: m.transactionsInFlight,
        poolMembers: m.poolMembers,
      };
      return json(res, 200, status);
    }
    case '/drachtio': {
      const links = h.drachtio?.();
      return links === undefined
        ? send(res, 404, TEXT, 'the service runs on its native engine\n')
        : json(res, 200, links);
    }
    case '/drachtio/route':
    case '/drachtio/route/': {
      // drachtio-server's outbound connections: every new request is routed to this instance.
      const route = h.drachtioRoute?.();
      if (route === undefined)
        return send(res, 404, TEXT, 'the drachtio engine does not listen for drachtio-servers\n');
      // Draining: drachtio-server answers the new request 503 itself, so the caller (or the fleet's
      // front) tries another instance instead of waiting on one that is going away.
      if (route === 'draining')
        return json(res, 200, { action: 'reject', data: { status: 503, reason: 'Service Unavailable' } });
      return json(res, 200, { action: 'route', data: route });
    }
    case '/reload': {
      const result = await h.reload();
      // 409: the request was fine, the configuration it asked to load was not.
      return json(res, result.ok ? 200 : 409, result);
    }
  }
}
