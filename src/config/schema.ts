// The configuration schema: the one description of server.yaml and endpoints.yaml, their defaults and
// the types the rest of the service trusts once a file has passed it.
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import * as z from 'zod';
import { domainNameProblem } from '../endpoints/domain-name.js';
import { ENDPOINT_MODES } from '../endpoints/endpoint.js';
import { SipParseError } from '../sip/errors.js';
import { hostPort } from '../sip/host-port.js';
import { isSipScheme, parseSipUri, type SipUri } from '../sip/uri.js';
import {
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_MAX_USER_TABLE_SIZE,
  DEFAULT_READ_TIMEOUT,
  MAX_FILE_SIZE_CEILING,
} from './config-file.js';
// The parser's own limits when called with none (the CLI, re-parses): the schema's defaults are these.
import { DEFAULT_MAX_HEADERS, DEFAULT_MAX_LINE_LENGTH } from '../sip/parser.js';

/**
 * Transports a `listen` entry may name, with the port used when the entry gives none.
 * RFC 3261 §19.1.2: 5060 for sip over UDP and TCP, 5061 over TLS; WebSocket (RFC 7118) uses the
 * HTTP ports, 80 for ws and 443 for wss.
 */
export const LISTEN_TRANSPORTS = {
  udp: { defaultPort: 5060 },
  tcp: { defaultPort: 5060 },
  tls: { defaultPort: 5061 },
  ws: { defaultPort: 80 },
  wss: { defaultPort: 443 },
} as const satisfies Record<string, { defaultPort: number }>;

export type ListenTransport = keyof typeof LISTEN_TRANSPORTS;

/**
 * A server.yaml `listen` entry as parsed: where a listener is to be bound (port 0: any). Once bound,
 * a listener reports a transport/types.ts BoundAddress.
 */
export interface ListenAddress {
  transport: ListenTransport;
  /** An IP address, without brackets. */
  host: string;
  /** 0 asks the system for an ephemeral port. */
  port: number;
  family: 4 | 6;
}

/** Transports a pool target's `transport` parameter may name (RFC 3261 §19.1.1, RFC 7118). */
export const TARGET_TRANSPORTS = ['udp', 'tcp', 'tls', 'ws', 'wss'] as const;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;

/** How an unknown-key issue's message starts; the allowed keys follow, comma-separated. */
export const ALLOWED_KEYS = 'allowed keys: ';

/**
 * A strict object: keys outside `shape` are refused. The message lists the allowed keys so the
 * operator sees the fix next to the mistake.
 */
function strictObject<T extends z.ZodRawShape>(shape: T) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `${ALLOWED_KEYS}${allowed}` : undefined),
  });
}

/** Adds a custom issue when `problem` finds one; keeps the refinements below to one line each. */
function check<T>(problem: (value: T) => string | undefined) {
  return (value: T, ctx: z.RefinementCtx): void => {
    const reason = problem(value);
    if (reason !== undefined) ctx.addIssue({ code: 'custom', message: reason });
  };
}

/**
 * A key left empty (`pools:` with every entry commented out) or left out takes `fallback`, which
 * the schema then checks and fills with defaults like any other value.
 */
function orEmpty<T extends z.ZodType>(fallback: unknown, schema: T) {
  return z.preprocess((value) => (value === null || value === undefined ? fallback : value), schema);
}

function parseUri(text: string): SipUri | string {
  if (!isSipScheme(text)) return 'must be a sip: or sips: URI';
  try {
    return parseSipUri(text);
  } catch (err) {
    // The parser's reason reads "Bad SIP URI: <why>"; the field path already says what was bad.
    if (!(err instanceof SipParseError)) throw err;
    return `is not a valid SIP URI (${err.reason.replace(/^Bad [^:]*: /, '')})`;
  }
}

function transportParam(uri: SipUri): string | undefined {
  for (const [name, value] of uri.params) {
    // RFC 3261 §19.1.4: parameter names are compared case-insensitively.
    if (name.toLowerCase() === 'transport') return value ?? '';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// server.yaml

/** Why `text` is not a `transport://host[:port]` listen address, or the address it names. */
export function parseListenAddress(text: string): ListenAddress | string {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  const supported = Object.keys(LISTEN_TRANSPORTS).join(', ');
  if (match === null) return `expected transport://host:port (e.g. udp://127.0.0.1:5060), got "${text}"`;
  const scheme = (match[1] ?? '').toLowerCase();
  const rest = match[2] ?? '';
  if (!Object.hasOwn(LISTEN_TRANSPORTS, scheme)) {
    return `transport "${scheme}" is not supported (supported: ${supported})`;
  }
  const transport = scheme as ListenTransport;

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return `missing "]" after the IPv6 address in "${text}"`;
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return `unexpected "${after}" after the host in "${text}"`;
    portText = after === '' ? undefined : after.slice(1);
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) return `write an IPv6 address in brackets, e.g. ${transport}://[::1]:5060`;
    const colon = rest.indexOf(':');
    host = colon < 0 ? rest : rest.slice(0, colon);
    portText = colon < 0 ? undefined : rest.slice(colon + 1);
    if (host === '') return `missing host in "${text}" (use 0.0.0.0 or [::] for every interface)`;
    if (isIP(host) !== 4) {
      return `host "${host}" is not an IP address (use 0.0.0.0 or [::] for every interface)`;
    }
  }

  let port: number = LISTEN_TRANSPORTS[transport].defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      return `port "${portText}" is not a number from 0 to 65535`;
    }
    port = Number(portText);
  }
  return { transport, host, port, family: isIP(host) === 6 ? 6 : 4 };
}

const listenAddress = z.string().transform((text, ctx): ListenAddress => {
  const parsed = parseListenAddress(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

// A header value with CR or LF in it would let the configuration write extra header lines.
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Milliseconds; whole numbers, so a value given in seconds (`0.5`) is caught rather than obeyed. */
const millis = (fallback: number) => z.int().min(1).max(3_600_000).default(fallback);

const sipSchema = strictObject({
  maxMessageSize: z
    .int()
    .min(512)
    .max(16 * 1024 * 1024)
    .default(65535),
  // RFC 3261 §17.1.1.1: T1 500 ms, T2 4 s, T4 5 s by default.
  t1: millis(500),
  t2: millis(4000),
  t4: millis(5000),
  serverHeader: z
    .string()
    .default('pchat-endpoint')
    .superRefine(check((v) => (hasControlCharacter(v) ? 'must not contain control characters' : undefined))),
  // UDP sockets: the service's own binding (batched reads, built at install on Linux) or node:dgram;
  // `auto` takes the binding when it loads and says so in the log when it falls back.
  udpEngine: z.enum(['auto', 'native', 'dgram']).default('auto'),
}).superRefine((sip, ctx) => {
  // RFC 3261 §17.1.2.2: T2 caps the retransmission interval, which starts at T1.
  if (sip.t2 < sip.t1) {
    ctx.addIssue({ code: 'custom', path: ['t2'], message: `must not be less than t1 (${sip.t1})` });
  }
});

/** The admin port when `admin: {}` names no address: loopback only, since it can reload the service. */
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9090';

export interface AdminListen {
  /** An IP address, without brackets. */
  host: string;
  port: number;
}

/** Why `text` is not an admin address (`host:port`, `[v6]:port`, or a bare port on loopback), or it. */
export function parseAdminListen(text: string): AdminListen | string {
  const bare = /^\d{1,5}$/.test(text) ? `127.0.0.1:${text}` : text;
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(bare);
  if (match === null) return `expected host:port (e.g. ${DEFAULT_ADMIN_LISTEN}), got "${text}"`;
  const host = match[1] ?? match[2] ?? '';
  if (match[1] !== undefined ? isIP(host) !== 6 : isIP(host) !== 4) {
    return `host "${host}" is not an IP address (IPv6 in brackets, e.g. [::1]:9090)`;
  }
  const port = Number(match[3]);
  if (port > 65535) return `port "${match[3]}" is not a number from 0 to 65535`;
  return { host, port };
}

const adminListen = z.string().transform((text, ctx): AdminListen => {
  const parsed = parseAdminListen(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** A name the admin port answers to besides its listen address: `name`, `name:port`, `[v6]:port`. */
const adminHost = z
  .string()
  .trim()
  .toLowerCase()
  .superRefine(
    check((v: string) =>
      /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::\d{1,5})?$/.test(v)
        ? undefined
        : `"${v}" is not a host name or address with an optional port (e.g. admin.contoso.com:9090)`,
    ),
  );

/** A web origin allowed to call the admin port from a browser: `scheme://host[:port]`, nothing more. */
const adminOrigin = z
  .string()
  .trim()
  .toLowerCase()
  .superRefine(
    check((v: string) => {
      let origin: string | undefined;
      try {
        origin = new URL(v).origin;
      } catch {
        origin = undefined;
      }
      return origin === v && /^https?:/.test(v)
        ? undefined
        : `"${v}" is not an origin (scheme://host[:port], e.g. https://grafana.contoso.com)`;
    }),
  );

// `admin: off` (or false) switches the admin port off; so does leaving the key out, so that a bare
// server.yaml never claims a well-known port nobody asked for. `admin: {}` listens on the default.
const adminSchema = z.preprocess(
  (value) => (value === undefined || value === false || value === 'off' ? { listen: 'off' } : value),
  strictObject({
    listen: z
      .union([z.literal('off'), z.literal(false), adminListen])
      .prefault(DEFAULT_ADMIN_LISTEN)
      .transform((v) => (v === 'off' || v === false ? undefined : v)),
    /**
     * Names a request's Host may carry besides the listen address (and `localhost` on a loopback
     * one): a name without a port matches any port. Anything else gets 421, which stops DNS
     * rebinding (a web page's own name resolved to this address).
     */
    hosts: z.array(adminHost).default([]),
    /** Origins (`https://grafana.contoso.com`) whose pages may call the port; any other Origin: 403. */
    allowOrigins: z.array(adminOrigin).default([]),
    /** Bearer token POST /reload must carry; GETs stay open to scrapers and probes. */
    token: z.string().trim().min(16, 'at least 16 characters').max(1024).optional(),
    /** As `token`, read from a file (relative to the configuration folder), reread on each use. */
    tokenFile: z.string().trim().min(1).optional(),
  }).superRefine((admin, ctx) => {
    if (admin.token !== undefined && admin.tokenFile !== undefined)
      ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'give token or tokenFile, not both' });
  }),
);

/** A DNS server for pool resolution: an IP address with an optional port ("127.0.0.1:5353", "[::1]:53"). */
const dnsServer = z.string().superRefine(
  check((v: string) => {
    const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(v);
    if (m === null || isIP(m[1] ?? '') === 0) return `"${v}" is not an IP address with an optional port`;
    if (m[2] !== undefined && Number(m[2]) > 65535) return `port "${m[2]}" is out of range`;
    return undefined;
  }),
);

/** Proxy mode: forwarding, failover and health probing of pool members (RFC 3261 §16, RFC 3263). */
const proxySchema = strictObject({
  // Off by default: only the dialog's first request passes through us (DESIGN.md, scale-out).
  recordRoute: z.boolean().default(false),
  // RFC 3261 §16.6 item 11: Timer C "MUST be set to be greater than 3 minutes".
  timerC: z.int().min(180_001).max(3_600_000).default(181_000),
  /** A member that failed a request (503, 408, timeout, transport error) is skipped this long. */
  holdDown: z.int().min(0).max(3_600_000).default(30_000),
  /** Retry-After, in seconds, of the 503 answered when a pool has no live member. */
  noMemberRetryAfter: z.int().min(1).max(86_400).default(30),
  /** Transport tried first for pools found through DNS; Lync pools speak TLS. */
  transport: z.enum(['tls', 'tcp', 'udp']).default('tls'),
  /**
   * ms a connection to a pool member (TCP, and its TLS handshake) may take to come up. Once up, it is
   * closed after limits.tcp.idleTimeout with nothing sent either way.
   */
  connectTimeout: z.int().min(100).max(600_000).default(5_000),
  dns: orEmpty(
    {},
    strictObject({
      /** Empty: the system's resolvers. */
      servers: z.array(dnsServer).default([]),
    }),
  ),
  probe: orEmpty(
    {},
    strictObject({
      enabled: z.boolean().default(true),
      interval: z.int().min(100).max(3_600_000).default(10_000),
      timeout: z.int().min(50).max(600_000).default(5_000),
      upThreshold: z.int().min(1).max(100).default(2),
      downThreshold: z.int().min(1).max(100).default(2),
    }),
  ),
});

// --- limits, access control, flood protection, graceful shutdown ---

/** The id a listener is known by in `access.allow[].listen`: `udp://127.0.0.1:5060`, `tcp://[::1]:5060`. */
export function listenerId(a: { transport: string; host: string; port: number }): string {
  return `${a.transport}://${hostPort(a.host, a.port)}`;
}

/** Why `text` is not a source network (CIDR block or one address), or undefined. */
export function networkProblem(text: string): string | undefined {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(host);
  if (family === 0) return `"${text}" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)`;
  const bits = slash < 0 ? undefined : text.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max))
    return `prefix length "${bits}" is not 0 to ${max}`;
  return undefined;
}

const network = z.string().superRefine(check(networkProblem));

/** Flood protection and parser limits: under overload the service sheds work instead of growing. */
const limitsSchema = strictObject({
  /** Most header lines in one message; more is answered 400. */
  maxHeaders: z.int().min(16).max(10_000).default(DEFAULT_MAX_HEADERS),
  /** Longest header line (after unfolding), bytes; longer is answered 400. */
  maxLineLength: z
    .int()
    .min(256)
    .max(1024 * 1024)
    .default(DEFAULT_MAX_LINE_LENGTH),
  /** Server and client transactions held at once (completed ones included); 0: no cap. */
  maxTransactions: z.int().min(0).max(10_000_000).default(200_000),
  /** Retry-After, in seconds, of the 503 answered over the cap and while draining. */
  overloadRetryAfter: z.int().min(1).max(3600).default(5),
  tcp: orEmpty(
    {},
    strictObject({
      /** Connections one source address may hold on one listener; 0: no limit. */
      maxConnectionsPerSource: z.int().min(0).max(1_000_000).default(256),
      /**
       * Inbound connections held at once, every listener and source together; more are closed at
       * accept. Kept below the open-files limit (ulimit -n) whatever is set; 0: no cap but that one.
       */
      maxConnections: z.int().min(0).max(10_000_000).default(10_000),
      /** From accept until the TLS handshake or WebSocket upgrade is done, ms; then the socket is destroyed. */
      handshakeTimeout: z.int().min(100).max(600_000).default(5_000),
      /** From a SIP message's first byte until its last, ms; a trickle of bytes does not extend it. */
      messageTimeout: z.int().min(100).max(3_600_000).default(10_000),
      /**
       * A connection with no message (or keep-alive) for this long is closed, ms; one we opened to a
       * pool member, with nothing sent either way.
       */
      idleTimeout: z.int().min(1000).max(86_400_000).default(600_000),
    }),
  ),
  rate: orEmpty(
    {},
    strictObject({
      /** Requests one source may send per window; 0 switches the rate limit off. */
      requests: z.int().min(0).max(10_000_000).default(0),
      window: z.int().min(10).max(3_600_000).default(1000),
      /** How long a source over the limit is dropped, ms. */
      ban: z.int().min(0).max(86_400_000).default(60_000),
      /** Most source addresses tracked; the oldest unbanned are forgotten first. */
      maxSources: z.int().min(1).max(10_000_000).default(100_000),
      /** Networks never rate limited (Front End servers relaying every client). */
      exempt: z.array(network).default([]),
    }),
  ),
});

const accessRuleSchema = strictObject({
  /** Listeners (as written under `listen`) the rule applies to; left out: every listener. */
  listen: z
    .union([z.string(), z.array(z.string()).min(1)])
    .optional()
    .transform((v) => (v === undefined ? undefined : typeof v === 'string' ? [v] : v)),
  networks: z.array(network).default([]),
  /** Client-certificate subject DN, common name or SAN; "*.contoso.com" for every name under it. */
  certificates: z.array(z.string().trim().min(1)).default([]),
}).superRefine((rule, ctx) => {
  if (rule.networks.length === 0 && rule.certificates.length === 0)
    ctx.addIssue({ code: 'custom', message: 'give networks, certificates or both' });
});

/** Who may send requests: per listener, an allow list; no rule for a listener leaves it open. */
const accessSchema = strictObject({
  /** reject: 403 Forbidden; drop: no answer at all. */
  action: z.enum(['reject', 'drop']).default('reject'),
  /** A refused source is logged at most once per this many ms. */
  logInterval: z.int().min(0).max(86_400_000).default(60_000),
  allow: orEmpty([], z.array(accessRuleSchema)),
  /**
   * Networks whose P-Asserted-Identity is taken as the caller for homing (Front End servers, which
   * assert the user they authenticated); from anywhere else the caller is the From address.
   */
  trustIdentity: z.array(network).default([]),
});

const securitySchema = strictObject({
  /**
   * Key of the signatures on our Record-Route entries and of the To tags of stateless answers
   * (at least 16 characters). Instances behind one dispatcher must share it; left out, each process
   * draws a random one.
   */
  secret: z.string().min(16, 'at least 16 characters').max(1024).optional(),
  /**
   * The secret read from this file instead (relative to the configuration folder, or absolute: a
   * Kubernetes Secret mounted beside the ConfigMap), so it need not sit in server.yaml. Read at
   * start; trailing white space (a final line break) is not part of it.
   */
  secretFile: z.string().trim().min(1).optional(),
}).superRefine((security, ctx) => {
  if (security.secret !== undefined && security.secretFile !== undefined)
    ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'give secret or secretFile, not both' });
});

const shutdownSchema = strictObject({
  /** On SIGTERM, how long transactions in flight may take to finish before the process exits, ms. */
  drainTime: z.int().min(0).max(600_000).default(10_000),
});

/**
 * How server.yaml and endpoints.yaml are read. Applied to endpoints.yaml in the same load;
 * server.yaml itself is read under the last good values (the defaults at start-up). The TLS files
 * are read under the same rules with the default values.
 */
const configFilesSchema = strictObject({
  /** Largest file read, in bytes; a larger one is refused without being read. */
  maxFileSize: z.int().min(4096).max(MAX_FILE_SIZE_CEILING).default(DEFAULT_MAX_FILE_SIZE),
  /** ms one file may take to be opened and read (a hung mount): then it is refused. */
  readTimeout: z.int().min(100).max(600_000).default(DEFAULT_READ_TIMEOUT),
  /** Largest homing user table read (a CSV of a whole directory is large), in bytes. */
  maxUserTableSize: z.int().min(4096).max(MAX_FILE_SIZE_CEILING).default(DEFAULT_MAX_USER_TABLE_SIZE),
});

/** A PEM file; a relative path is taken from the configuration folder. */
const pemFile = z.string().trim().min(1);

/** Why `text` cannot be an OpenSSL cipher list, or undefined. */
function cipherProblem(text: string): string | undefined {
  try {
    createSecureContext({ ciphers: text });
    return undefined;
  } catch {
    return `no cipher matches "${text}" (an OpenSSL cipher list, e.g. ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256)`;
  }
}

/**
 * Certificates for tls:// and wss:// listeners and for TLS connections to pool members. The files
 * are watched: a renewed certificate is used for new connections without a restart.
 */
const tlsSchema = strictObject({
  cert: pemFile,
  key: pemFile,
  /**
   * CA bundle: with it, tls:// listeners ask for and verify client certificates (MTLS), and pool
   * members are verified against it instead of the system's CAs.
   */
  ca: pemFile.optional(),
  /** With `ca`: refuse TLS clients without a valid certificate (default true); false accepts them unverified. */
  requireClientCert: z.boolean().optional(),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  ciphers: z.string().trim().min(1).superRefine(check(cipherProblem)).optional(),
  /** More certificates, chosen by the name a client asks for (SNI); `*.contoso.com` covers one label. */
  sni: orEmpty(
    [],
    z.array(
      strictObject({
        servername: z
          .string()
          .trim()
          .toLowerCase()
          .superRefine(
            check((v: string) => {
              const name = v.startsWith('*.') ? v.slice(2) : v;
              const problem = domainNameProblem(name);
              return problem === undefined ? undefined : `"${v}" ${problem}`;
            }),
          ),
        cert: pemFile,
        key: pemFile,
      }),
    ),
  ),
}).superRefine((t, ctx) => {
  if (t.requireClientCert === true && t.ca === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['requireClientCert'],
      message: 'needs ca: the CA bundle client certificates are verified against',
    });
  }
});

export type TlsConfig = z.output<typeof tlsSchema>;

/** A tls:// or wss:// listener without certificates could accept no connection at all. */
function listenersNeedTls(
  cfg: { listen: ListenAddress[]; tls?: TlsConfig | undefined },
  ctx: z.RefinementCtx,
): void {
  if (cfg.tls !== undefined) return;
  for (const [i, a] of cfg.listen.entries()) {
    if (a.transport === 'tls' || a.transport === 'wss') {
      ctx.addIssue({
        code: 'custom',
        path: ['listen', i],
        message: `${a.transport}:// needs the tls section (cert and key files)`,
      });
    }
  }
}

/** Lookup mode: the short dialogs legacy Group Chat clients hold with the Lookup service. */
const lookupSchema = strictObject({
  /** Session-Expires (s) in every Lookup 200: legacy clients refresh their chat session from it; 0: none. */
  sessionExpires: z.int().min(0).max(86_400).default(1800),
  /** ms a lookup dialog may stay without a request from the client before it is ended with BYE. */
  idleTimeout: z.int().min(1000).max(3_600_000).default(120_000),
  /** Lookup dialogs held at most; an INVITE beyond that gets 503 with Retry-After. */
  maxDialogs: z.int().min(1).max(1_000_000).default(10_000),
  /** Largest XCCOS INFO body read, in bytes (a cmd:requri envelope is about 120). */
  maxBodyBytes: z.int().min(256).max(1_048_576).default(16_384),
  /**
   * Un-ACKed lookup 200s over UDP one source address may have at once (each is retransmitted until
   * its ACK); a new INVITE from an address at this budget gets one stateless 503.
   */
  maxUnackedPerSource: z.int().min(1).max(100_000).default(8),
});

/** A drachtio-server's admin address: `host`, its TCP `port` and the shared `secret`. */
const drachtioServerSchema = strictObject({
  host: z.string().trim().min(1),
  port: z.int().min(1).max(65535).default(9022),
  secret: z.string().min(1),
});

/**
 * `engine: drachtio`: the service runs as a drachtio-srf application. Inbound: it connects to every
 * server under `servers`; outbound: it listens on `listen` and drachtio-servers connect to it per
 * request (their request-handler names it). One of the two, not both.
 */
const drachtioSchema = strictObject({
  servers: z.array(drachtioServerSchema).min(1).optional(),
  listen: strictObject({
    address: z.string().trim().min(1).default('127.0.0.1'),
    port: z.int().min(0).max(65535).default(9023),
    secret: z.string().min(1),
    /**
     * host:port drachtio-servers are told to connect to (GET /drachtio/route); the listen address
     * when left out, which a wildcard address cannot be.
     */
    advertise: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 10.0.0.5:9023')
      .optional(),
  })
    .superRefine((l, ctx) => {
      if (l.advertise === undefined && (l.address === '0.0.0.0' || l.address === '::'))
        ctx.addIssue({
          code: 'custom',
          path: ['advertise'],
          message: `listening on ${l.address}: give advertise (host:port drachtio-servers connect to)`,
        });
    })
    .optional(),
  /**
   * Back-off between attempts to reach an inbound server: drachtio-srf's own, from 255 ms growing by
   * 1.7 each attempt, capped at `max` ms.
   */
  reconnect: orEmpty(
    {},
    strictObject({
      max: z.int().min(100).max(600_000).default(30_000),
    }),
  ),
  /**
   * How long drachtio-server waits for a pool member's first answer before it tries the next one
   * (proxy mode), ms.
   */
  provisionalTimeout: z.int().min(100).max(60_000).default(2000),
  /** How long a pool member may take to send its final answer before the next is tried, ms. */
  finalTimeout: z.int().min(1000).max(600_000).default(32_000),
}).superRefine((d, ctx) => {
  if ((d.servers === undefined) === (d.listen === undefined))
    ctx.addIssue({
      code: 'custom',
      message:
        'give servers (inbound: we connect to drachtio) or listen (outbound: drachtio connects to us), one of them',
    });
});

export type DrachtioConfig = z.output<typeof drachtioSchema>;

// `hep`: a copy of every SIP message, as HEP3 over UDP, to collectors (Homer, sngrep -L); applied
// by a reload. Leaving the section out, or listing no target, turns it off.

/** 9060: the port HEP collectors listen on by convention (Homer's heplify-server, sngrep's examples). */
export const DEFAULT_HEP_PORT = 9060;

/** A HEP collector as server.yaml names it: `udp://host[:port]`, host an IP address. */
export interface HepTargetAddress {
  url: string;
  host: string;
  port: number;
  family: 4 | 6;
}

/** Why `text` is not a `udp://host[:port]` HEP collector, or the collector it names. */
export function parseHepTarget(text: string): HepTargetAddress | string {
  if (!/^udp:\/\//i.test(text)) return `expected udp://host:port (e.g. udp://10.0.0.9:9060), got "${text}"`;
  // Same host and port rules as a listen address; HEP's own port when none is given.
  const rest = text.slice('udp://'.length);
  const explicitPort = rest.startsWith('[')
    ? rest.slice(rest.indexOf(']') + 1).startsWith(':')
    : rest.includes(':');
  const parsed = parseListenAddress(text);
  if (typeof parsed === 'string')
    return parsed.replace('(use 0.0.0.0 or [::] for every interface)', '(a collector is named by address)');
  const port = explicitPort ? parsed.port : DEFAULT_HEP_PORT;
  if (port === 0) return 'port 0 names no collector';
  if (parsed.host === '0.0.0.0' || parsed.host === '::') return `${parsed.host} names no collector`;
  return { url: text, host: parsed.host, port, family: parsed.family };
}

const hepTarget = z.string().transform((text, ctx): HepTargetAddress => {
  const parsed = parseHepTarget(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

const hepSchema = strictObject({
  targets: orEmpty([], z.array(hepTarget).max(16)),
  /** The capture agent id in every datagram: Homer shows it as the node that captured. */
  id: z.int().min(0).max(0xffffffff).default(2001),
  /** The collector's password, sent in each datagram's auth key chunk (HEP carries it in clear). */
  password: z.string().min(1).max(255).optional(),
});

export type HepConfig = z.output<typeof hepSchema>;

export const serverConfigSchema = strictObject({
  listen: orEmpty(
    ['udp://127.0.0.1:5060', 'tcp://127.0.0.1:5060'],
    z.array(listenAddress).min(1),
  ).superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    for (const [i, a] of list.entries()) {
      if (a.port === 0) continue;
      const id = `${a.transport} ${a.host} ${a.port}`;
      const first = seen.get(id);
      if (first === undefined) seen.set(id, i);
      else ctx.addIssue({ code: 'custom', path: [i], message: `same address as listen[${first}]` });
    }
  }),
  log: orEmpty(
    {},
    strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
      pretty: z.union([z.literal('auto'), z.boolean()]).default('auto'),
    }),
  ),
  sip: orEmpty({}, sipSchema),
  admin: adminSchema,
  proxy: orEmpty({}, proxySchema),
  lookup: orEmpty({}, lookupSchema),
  tls: z.preprocess((v) => (v === null ? undefined : v), tlsSchema.optional()),
  limits: orEmpty({}, limitsSchema),
  access: orEmpty({}, accessSchema),
  shutdown: orEmpty({}, shutdownSchema),
  security: orEmpty({}, securitySchema),
  config: orEmpty({}, configFilesSchema),
  /** The SIP stack: `native` (ours) or `drachtio` (a drachtio-srf app on drachtio-server). */
  engine: z.enum(['native', 'drachtio']).default('native'),
  drachtio: z.preprocess((v) => (v === null ? undefined : v), drachtioSchema.optional()),
  hep: z.preprocess((v) => (v === null || v === false || v === 'off' ? undefined : v), hepSchema.optional()),
})
  .superRefine((cfg, ctx) => {
    if (cfg.engine === 'drachtio' && cfg.drachtio === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['engine'],
        message: 'drachtio needs the drachtio section (servers to connect to, or listen)',
      });
  })
  .superRefine((cfg, ctx) => {
    // An access rule naming a listener that does not exist would silently protect nothing.
    const ids = new Set(cfg.listen.map(listenerId));
    for (const [i, rule] of cfg.access.allow.entries()) {
      for (const [j, text] of (rule.listen ?? []).entries()) {
        const a = parseListenAddress(text);
        const problem =
          typeof a === 'string'
            ? a
            : ids.has(listenerId(a))
              ? undefined
              : `"${text}" is not one of the listen entries`;
        if (problem !== undefined)
          ctx.addIssue({ code: 'custom', path: ['access', 'allow', i, 'listen', j], message: problem });
      }
    }
  })
  .superRefine(listenersNeedTls);

export type ServerConfig = z.output<typeof serverConfigSchema>;

// ---------------------------------------------------------------------------------------------------
// endpoints.yaml

/** Why `text` cannot be an endpoint's address, or `undefined`. Mirrors the cmdlet's own rule. */
export function sipAddressProblem(text: string): string | undefined {
  if (/^sips:/i.test(text)) {
    return 'must use the sip: prefix, not sips: (a request for the sips: form is matched by the same entry)';
  }
  if (!/^sip:/i.test(text))
    return 'must use the sip: prefix and a valid domain, e.g. sip:ocschat@contoso.com';
  const uri = parseUri(text);
  if (typeof uri === 'string') return `${uri} (expected sip:user@domain, e.g. sip:ocschat@contoso.com)`;
  if (uri.user === undefined || uri.user === '') {
    return 'has no user part (expected sip:user@domain, e.g. sip:ocschat@contoso.com)';
  }
  if (uri.password !== undefined) return 'must not carry a password';
  const hostProblem = domainNameProblem(uri.host);
  if (hostProblem !== undefined) return `domain "${uri.host}" ${hostProblem}`;
  // Table keys keep a trailing dot, so sip:ocschat@contoso.com. would never meet a request for
  // sip:ocschat@contoso.com.
  if (uri.host.endsWith('.')) return 'must not end the domain with a dot';
  // An endpoint is an address that requests are matched against, not a next hop.
  if (uri.port !== undefined) return 'must not have a port: an endpoint is an address, not a next hop';
  if (uri.params.length > 0) return 'must not have URI parameters (";..."): an endpoint is an address';
  if (uri.headers.length > 0) return 'must not have URI headers ("?..."): an endpoint is an address';
  return undefined;
}

/** Why `text` cannot be a pool FQDN, or `undefined`. */
export function poolFqdnProblem(text: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || /^sips?:/i.test(text)) {
    return 'must be a bare domain name, without a scheme (e.g. pcpool.contoso.com)';
  }
  if (text.split(':').length === 2 && /:\d*$/.test(text)) {
    return 'must not have a port (pool members with ports are listed under pools[].targets)';
  }
  const problem = domainNameProblem(text);
  return problem === undefined ? undefined : `"${text}" ${problem}`;
}

/** Why `text` cannot be a URI handed to a client or used as a next hop, or `undefined`. */
function uriProblem(text: string, checkTransport: boolean): string | undefined {
  const uri = parseUri(text);
  if (typeof uri === 'string') return uri;
  if (uri.headers.length > 0) return 'must not have URI headers ("?...")';
  if (checkTransport) {
    const transport = transportParam(uri);
    if (
      transport !== undefined &&
      !(TARGET_TRANSPORTS as readonly string[]).includes(transport.toLowerCase())
    ) {
      return `transport "${transport}" is not one of ${TARGET_TRANSPORTS.join(', ')}`;
    }
  }
  return undefined;
}

const poolFqdn = z.string().superRefine(check(poolFqdnProblem));

// ISO 8601 with a zone, minutes at least: 2026-12-05T06:00Z, 2026-12-05T07:00:00+01:00. A time without a
// zone is refused, because the service and the operator may not share one.
const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/** Milliseconds since the epoch for an ISO 8601 instant with a zone, or why it is not one. */
export function parseInstant(text: string): number | string {
  const m = INSTANT.exec(text);
  const example = 'e.g. 2026-12-05T06:00Z or 2026-12-05T07:00+01:00';
  if (m === null) {
    return /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)
      ? `has no time zone: add Z for UTC or an offset (${example})`
      : `expected an ISO 8601 date and time with a zone (${example}), got "${text}"`;
  }
  const n = (i: number): number => Number(m[i] ?? 0);
  const [year, month, day, hour, minute, second] = [n(1), n(2), n(3), n(4), n(5), n(6)];
  const millis = Number(`0.${m[7] ?? '0'}`) * 1000;
  const local = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(local);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return `"${text}" is not a date and time that exists`;
  }
  const offset = m[8] !== undefined ? 0 : (m[9] === '-' ? -1 : 1) * (n(10) * 60 + n(11)) * 60_000;
  return local + Math.floor(millis) - offset;
}

const instant = z.string().transform((text, ctx): number => {
  const parsed = parseInstant(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** `maintenance: on|off`; YAML 1.1 readers' true/false are taken for the same. */
const maintenanceSwitch = z.preprocess(
  (v) => (v === true ? 'on' : v === false ? 'off' : v),
  z.enum(['on', 'off']),
);

/**
 * Cutover window fields shared by endpoints and pools: `maintenance: on` (until switched off) or
 * `maintenanceUntil: <instant>`; the two together would contradict each other, so they are refused.
 */
const maintenanceFields = {
  maintenance: maintenanceSwitch.optional(),
  maintenanceUntil: instant.optional(),
};

function maintenanceConflict(
  value: { maintenance?: 'on' | 'off' | undefined; maintenanceUntil?: number | undefined },
  ctx: z.RefinementCtx,
): void {
  if (value.maintenance !== undefined && value.maintenanceUntil !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['maintenanceUntil'],
      message: 'give either maintenance or maintenanceUntil, not both',
    });
  }
}

/** Why a caller pattern (`*@emea.contoso.com`) cannot match a caller's user@domain, or undefined. */
function callerPatternProblem(text: string): string | undefined {
  if (/^sips?:/i.test(text)) return 'write the pattern without a scheme (e.g. *@emea.contoso.com)';
  const at = text.lastIndexOf('@');
  if (at < 0 || at === text.length - 1)
    return 'expected user@domain with * for any text (e.g. *@emea.contoso.com)';
  return undefined;
}

/**
 * Homing: which pool a caller of the endpoint is led to, the rules tried in order, the endpoint's
 * poolFqdn when none matches. `callers`: a pattern on the caller's user@domain; `users`: a CSV user
 * table (SipAddress,PoolFqdn) in the configuration folder.
 */
const homingRuleSchema = z.union([
  strictObject({ callers: z.string().trim().superRefine(check(callerPatternProblem)), pool: poolFqdn }),
  strictObject({
    users: z
      .string()
      .trim()
      .min(1)
      .refine((f) => !f.includes('/') && !f.includes('\\') && f !== '.' && f !== '..', {
        message: 'a file name in the configuration folder (no path)',
      }),
  }),
]);

export const endpointSchema = strictObject({
  sipAddress: z.string().superRefine(check(sipAddressProblem)),
  poolFqdn,
  displayName: z.string().optional(),
  mode: z.enum(ENDPOINT_MODES).default('proxy'),
  enabled: z.boolean().default(true),
  /** Proxy mode: Record-Route this endpoint's dialogs (proxy.recordRoute in server.yaml otherwise). */
  recordRoute: z.boolean().optional(),
  lookupUris: z
    .array(z.string().superRefine(check((v: string) => uriProblem(v, false))))
    .min(1)
    .optional(),
  homing: z.array(homingRuleSchema).min(1).optional(),
  ...maintenanceFields,
}).superRefine(maintenanceConflict);

export const poolTargetSchema = strictObject({
  uri: z.string().superRefine(check((v: string) => uriProblem(v, true))),
  q: z.number().min(0).max(1).optional(),
});

export const poolSchema = strictObject({
  fqdn: poolFqdn,
  targets: orEmpty([], z.array(poolTargetSchema)),
  /** Lookup mode: what callers homed on this pool are handed (`sip:<endpoint user>@<fqdn>` by default). */
  lookupUris: z
    .array(z.string().superRefine(check((v: string) => uriProblem(v, false))))
    .min(1)
    .optional(),
  ...maintenanceFields,
}).superRefine(maintenanceConflict);

export const endpointsConfigSchema = strictObject({
  // Required, so that a misspelt `endpoint:` is reported as missing as well as unknown; left empty, it
  // is an empty table.
  endpoints: z.preprocess((value) => (value === null ? [] : value), z.array(endpointSchema)),
  pools: orEmpty([], z.array(poolSchema)),
});

export type EndpointsConfig = z.output<typeof endpointsConfigSchema>;
export type EndpointConfig = z.output<typeof endpointSchema>;
export type PoolConfig = z.output<typeof poolSchema>;
