// The service's admission control: who may send requests to each listener (access policy), how fast
// one source may send requests or open connections (rate limit with bans), and how many connections
// one source, and all sources together, may hold. The router asks it about every request before
// parsing; the TCP, TLS and WebSocket listeners about every connection, before any handshake.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Source } from '../transport/types.js';
import { AccessPolicy, type AccessRules } from './access-policy.js';
import { connectionRoom, reservedDescriptors } from './descriptor-limit.js';
import { LogThrottle } from '../base/log-throttle.js';
import { NetworkList } from './networks.js';
import { RateLimiter, type RateLimitSettings } from './rate-limiter.js';

export type AccessAction = 'reject' | 'drop';

export interface AccessRule extends AccessRules {
  /** Listener ids (`udp://127.0.0.1:5060`) the rule applies to; undefined: every listener. */
  readonly listeners?: readonly string[] | undefined;
}

export interface GuardSettings {
  readonly access: {
    /** What a refused request gets: 403 Forbidden, or nothing. */
    readonly action: AccessAction;
    /** A refused source is logged at most once per this many ms. */
    readonly logIntervalMs: number;
    readonly rules: readonly AccessRule[];
    /** Networks whose P-Asserted-Identity names the caller (homing); none when empty. */
    readonly trustIdentity?: readonly string[] | undefined;
  };
  /** Per-source rate limit; undefined: off. */
  readonly rate?: (RateLimitSettings & { readonly exempt: readonly string[] }) | undefined;
  /** Most TCP connections one source address may hold on one listener; 0: no limit. */
  readonly maxConnectionsPerSource: number;
  /**
   * Most inbound connections (TCP, TLS, WebSocket) held at once, all listeners and sources together;
   * 0: no cap of its own (the descriptor limit's still applies, see GuardDeps).
   */
  readonly maxConnections: number;
}

/** Counts of what the guard refused, read by the metrics when scraped. */
export interface GuardStats {
  /** Requests refused by an access policy (answered 403 or dropped). */
  accessDenied: number;
  /** Requests dropped because their source was banned for flooding. */
  rateLimited: number;
  /** Bans imposed. */
  bans: number;
  /** TCP connections closed at once (per-source limit, global cap, banned source, network not allowed). */
  connectionsRefused: number;
  /** Of those, refused because their source held maxConnectionsPerSource already. */
  connectionsOverSourceCap: number;
  /** Of those, refused because maxConnections (or the descriptor headroom) was reached. */
  connectionsOverGlobalCap: number;
}

/** What to do with one request: go on, answer 403, or drop it. */
export type Admission = 'pass' | 'reject' | 'drop';

/** Verdicts cached per source address, so the CIDR match is not repeated for every message. */
const CACHE_LIMIT = 4096;

export interface GuardDeps {
  readonly logger: Logger;
  /** Monotonic milliseconds; performance.now unless a test injects one. */
  readonly now?: () => number;
  /**
   * How many files the process may open (src/guard/descriptor-limit.ts), when known: the global cap
   * is kept below it, so accepted connections cannot take the descriptors the rest of the service needs.
   */
  readonly descriptorLimit?: number | undefined;
}

/** The guard as seen by one listener: its own access policy, the shared rate limiter. */
export class ListenerGuard {
  policy: AccessPolicy | undefined;
  private readonly verdicts = new Map<string, boolean>();
  private readonly connections = new Map<string, number>();

  constructor(
    private readonly guard: Guard,
    readonly id: string,
  ) {}

  /** Called by the router for every request (and anything that is not visibly a response). */
  readonly admit = (source: Source): Admission => {
    const g = this.guard;
    if (g.overRate(source.address, this.id)) {
      g.stats.rateLimited++;
      return 'drop';
    }
    const policy = this.policy;
    if (policy === undefined || this.allowed(policy, source)) return 'pass';
    g.stats.accessDenied++;
    g.denied(source, this.id);
    return g.settings.access.action;
  };

  /**
   * Called by a TCP, TLS or WebSocket listener for each new connection, before any handshake; false
   * closes it at once. A connection counts as a request for the rate limit, so a flood of
   * connections or TLS handshakes (each needs its own connection) bans its source like a flood of
   * requests; its slots are given back when the socket closes, whatever closed it.
   */
  readonly admitConnection = (socket: Socket): boolean => {
    const g = this.guard;
    const address = socket.remoteAddress ?? '';
    const refuse = (reason: string): boolean => {
      g.stats.connectionsRefused++;
      g.connectionRefused(address, this.id, reason);
      return false;
    };
    if (g.overRate(address, this.id)) return refuse('source banned for flooding');
    const policy = this.policy;
    // Only a drop policy may refuse before a request: a reject policy owes the request its 403, and a
    // certificate-based one can only judge after the TLS handshake.
    if (
      policy !== undefined &&
      g.settings.access.action === 'drop' &&
      !policy.namesCertificates &&
      !policy.allowsNetwork(address)
    ) {
      g.stats.accessDenied++;
      return refuse('network not allowed');
    }
    const cap = g.connectionCap;
    if (g.openConnections >= cap) {
      g.stats.connectionsOverGlobalCap++;
      return refuse(`${cap} connections open in all (limits.tcp.maxConnections)`);
    }
    const max = g.settings.maxConnectionsPerSource;
    if (max > 0) {
      const n = this.connections.get(address) ?? 0;
      if (n >= max) {
        g.stats.connectionsOverSourceCap++;
        return refuse(`more than ${max} connections from one source`);
      }
      this.connections.set(address, n + 1);
      socket.once('close', () => {
        const left = (this.connections.get(address) ?? 1) - 1;
        if (left <= 0) this.connections.delete(address);
        else this.connections.set(address, left);
      });
    }
    g.openConnections++;
    socket.once('close', () => g.openConnections--);
    return true;
  };

  /** Connections held per source address (tests and diagnostics). */
  connectionsFrom(address: string): number {
    return this.connections.get(address) ?? 0;
  }

  forget(): void {
    this.verdicts.clear();
  }

  private allowed(policy: AccessPolicy, source: Source): boolean {
    // A certificate is judged every time (it belongs to the connection, not the address).
    if (source.peerCertificate !== undefined) return policy.allows(source);
    let ok = this.verdicts.get(source.address);
    if (ok === undefined) {
      ok = policy.allows(source);
      if (this.verdicts.size >= CACHE_LIMIT) this.verdicts.clear();
      this.verdicts.set(source.address, ok);
    }
    return ok;
  }
}

export class Guard {
  readonly stats: GuardStats = {
    accessDenied: 0,
    rateLimited: 0,
    bans: 0,
    connectionsRefused: 0,
    connectionsOverSourceCap: 0,
    connectionsOverGlobalCap: 0,
  };
  /** Inbound connections admitted and not yet closed, every listener together. */
  openConnections = 0;
  limiter: RateLimiter | undefined;
  private exemptNetworks: NetworkList | undefined;
  private trusted: NetworkList | undefined;
  private readonly trustedCache = new Map<string, boolean>();
  private readonly exemptCache = new Map<string, boolean>();
  private readonly listeners = new Map<string, ListenerGuard>();
  private readonly throttle: LogThrottle;
  private sweeper: NodeJS.Timeout | undefined;
  private limiterSettings: GuardSettings['rate'];
  readonly now: () => number;
  private readonly log: Logger;
  /** Connections the descriptor limit leaves room for; Infinity when the limit is not known. */
  private readonly room: number;

  constructor(
    public settings: GuardSettings,
    deps: GuardDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.logger;
    this.throttle = new LogThrottle(settings.access.logIntervalMs);
    this.room = deps.descriptorLimit === undefined ? Infinity : connectionRoom(deps.descriptorLimit);
    this.applyRate(settings);
    this.applyTrust(settings);
    const configured = settings.maxConnections === 0 ? Infinity : settings.maxConnections;
    if (this.room < configured && deps.descriptorLimit !== undefined) {
      this.log.warn(
        {
          maxConnections: this.room,
          configured: settings.maxConnections,
          openFilesLimit: deps.descriptorLimit,
          reserved: reservedDescriptors(deps.descriptorLimit),
        },
        `inbound connections capped at ${this.room}: the process may open ${deps.descriptorLimit} files, and some are kept for the admin port, pool connections and reloads (raise ulimit -n for more)`,
      );
    }
  }

  /** Most inbound connections held at once: limits.tcp.maxConnections, within the descriptor room. */
  get connectionCap(): number {
    const configured = this.settings.maxConnections;
    return configured === 0 ? this.room : Math.min(configured, this.room);
  }

  /** The guard of the listener `id` (created on first use, policy from the current settings). */
  forListener(id: string): ListenerGuard {
    let lg = this.listeners.get(id);
    if (lg === undefined) {
      lg = new ListenerGuard(this, id);
      lg.policy = policyFor(this.settings, id);
      this.listeners.set(id, lg);
    }
    return lg;
  }

  /**
   * New access rules (a reload): applied to every listener at once. Rate-limit changes replace the
   * limiter only when its settings differ, so bans in force survive a reload that leaves them alone.
   */
  update(settings: GuardSettings): void {
    this.settings = settings;
    this.applyTrust(settings);
    for (const lg of this.listeners.values()) {
      lg.policy = policyFor(settings, lg.id);
      lg.forget();
    }
    if (JSON.stringify(settings.rate) !== JSON.stringify(this.limiterSettings)) this.applyRate(settings);
  }

  /** Sources tracked by the rate limiter. */
  get trackedSources(): number {
    return this.limiter?.size ?? 0;
  }

  /** One hit of `address` on the rate limit: true when it is over (a ban starting is logged). */
  overRate(address: string, listener: string): boolean {
    if (this.limiter === undefined || this.exempt(address)) return false;
    const v = this.limiter.hit(address, this.now());
    if (v === 'ok') return false;
    if (v === 'ban') this.banned(address, listener);
    return true;
  }

  /** Whether a request from `address` may name its caller in P-Asserted-Identity (access.trustIdentity). */
  trustsIdentity(address: string): boolean {
    return inNetworks(this.trusted, this.trustedCache, address);
  }

  private applyTrust(settings: GuardSettings): void {
    const nets = settings.access.trustIdentity ?? [];
    this.trusted = nets.length > 0 ? new NetworkList(nets) : undefined;
    this.trustedCache.clear();
  }

  exempt(address: string): boolean {
    return inNetworks(this.exemptNetworks, this.exemptCache, address);
  }

  /** A ban started: one line per ban, which is at most one per source per ban period. */
  banned(address: string, listener: string): void {
    this.stats.bans++;
    const r = this.settings.rate;
    this.log.warn(
      { peer: address, listener, limit: r?.requests, windowMs: r?.windowMs, banMs: r?.banMs },
      'source banned for flooding: its messages are dropped until the ban ends',
    );
  }

  denied(source: Source, listener: string): void {
    const suppressed = this.throttle.take(`denied ${listener} ${source.address}`, this.now());
    if (suppressed === undefined) return;
    this.log.warn(
      {
        peer: source.address,
        listener,
        action: this.settings.access.action,
        suppressed,
        ...(source.peerCertificate === undefined ? {} : { certificate: source.peerCertificate.subject }),
      },
      'request from a source not on the allow list refused',
    );
  }

  connectionRefused(address: string, listener: string, reason: string): void {
    const suppressed = this.throttle.take(`conn ${listener} ${address}`, this.now());
    if (suppressed === undefined) return;
    this.log.warn({ peer: address, listener, reason, suppressed }, 'connection refused');
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private applyRate(settings: GuardSettings): void {
    this.limiterSettings = settings.rate;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.exemptCache.clear();
    const r = settings.rate;
    if (r === undefined) {
      this.limiter = undefined;
      this.exemptNetworks = undefined;
      return;
    }
    this.limiter = new RateLimiter(r);
    this.exemptNetworks = r.exempt.length > 0 ? new NetworkList(r.exempt) : undefined;
    const limiter = this.limiter;
    // Quiet sources are forgotten in the background so the map holds the active ones, not history.
    this.sweeper = setInterval(() => limiter.sweep(this.now()), Math.max(5_000, 2 * r.windowMs));
    this.sweeper.unref();
  }
}

/** The access policy of one listener: every rule naming it (or naming none), merged; undefined: open. */
function policyFor(settings: GuardSettings, id: string): AccessPolicy | undefined {
  const rules = settings.access.rules.filter((r) => r.listeners === undefined || r.listeners.includes(id));
  if (rules.length === 0) return undefined;
  return new AccessPolicy({
    networks: rules.flatMap((r) => r.networks),
    certificates: rules.flatMap((r) => r.certificates),
  });
}

/** Whether `address` is in `list` (none: no), the answer kept in `cache` for the next request from it. */
function inNetworks(list: NetworkList | undefined, cache: Map<string, boolean>, address: string): boolean {
  if (list === undefined) return false;
  let ok = cache.get(address);
  if (ok === undefined) {
    ok = list.has(address);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(address, ok);
  }
  return ok;
}
