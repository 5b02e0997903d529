// Pool FQDN → ordered next hops: static targets from config, else RFC 3263 §4 (NAPTR → SRV → A/AAAA),
// through a TTL cache that serves the last answer while DNS fails.

import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Pool, PoolTarget } from '../endpoints/endpoint.js';
import { getUriParam, parseSipUri } from '../sip/uri.js';
import type { Clock } from '../base/clock.js';
import { DnsCache, type Lookup } from './dns-cache.js';
import { PoolOptionError, PoolResolutionError } from './errors.js';
import { orderSrv, type RandomSource } from './srv-order.js';
import {
  defaultPort,
  targetId,
  type AddressRecord,
  type DnsLike,
  type SrvRecord,
  type Target,
  type TargetTransport,
} from './types.js';

/** `any`: no transport preferred; the pool's NAPTR order decides (RFC 3263 §4.1). */
export type TransportChoice = TargetTransport | 'any';

export interface PoolResolverOptions {
  readonly dns: DnsLike;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The transport used when `resolve` is given none (server.yaml proxy.transport). */
  readonly defaultTransport: TransportChoice;
  /** How long NXDOMAIN/NODATA is believed, and the pause before asking a failing server again. Default 30 s. */
  readonly negativeTtlMs?: number;
  /** How long past its TTL an answer is still served while DNS fails. Default 24 h. */
  readonly maxStaleMs?: number;
  /** TTL for records whose resolver reports none (node:dns for NAPTR and SRV). Default 60 s. */
  readonly defaultTtlMs?: number;
  /** For the RFC 2782 weighted choice; Math.random by default. */
  readonly random?: RandomSource;
}

// RFC 3263 §4.1: "SIPS+D2T", "SIP+D2T" and "SIP+D2U" name TLS over TCP, TCP and UDP.
const NAPTR_SERVICES: ReadonlyMap<string, TargetTransport> = new Map([
  ['sips+d2t', 'tls'],
  ['sip+d2t', 'tcp'],
  ['sip+d2u', 'udp'],
]);

// RFC 3263 §4.2: "For a SIP URI, if the client wishes to use TLS, it also uses the service identifier
// "_sips" for that specific transport, otherwise, it uses "_sip"." TLS runs over TCP: _sips._tcp.
const SRV_PREFIX: Readonly<Record<TargetTransport, string>> = {
  tls: '_sips._tcp.',
  tcp: '_sip._tcp.',
  udp: '_sip._udp.',
};

/** The order in which transports are tried when neither the caller nor NAPTR picks one: most secure first. */
const TRANSPORT_PREFERENCE: readonly TargetTransport[] = ['tls', 'tcp', 'udp'];

const TRANSPORTS: ReadonlySet<string> = new Set(TRANSPORT_PREFERENCE);

/** What one resolution learned besides its targets. */
interface Pass {
  stale: boolean;
  staleError: unknown;
  /** The first failure with nothing cached to stand in for it. */
  error: unknown;
  /** Until when (clock time) every answer used stays as it is: how long the plan may be reused. */
  until: number;
}

/**
 * A resolution's outcome before the per-request weighted-random draw: runs of targets in a fixed
 * order, and SRV answer sets whose order is drawn anew on every use (RFC 2782 spreads load that way).
 */
type Segment =
  | { readonly kind: 'fixed'; readonly targets: readonly Target[] }
  | { readonly kind: 'srv'; readonly entries: readonly SrvEntry[] };

interface SrvEntry {
  readonly priority: number;
  readonly weight: number;
  readonly targets: readonly Target[];
}

interface Plan {
  readonly segments: readonly Segment[];
  readonly until: number;
  readonly stale: boolean;
  readonly staleError: unknown;
}

interface ParsedStatic {
  readonly host: string;
  readonly port: number | undefined;
  /** Undefined when the URI names no transport and the scheme implies none. */
  readonly transport: TargetTransport | undefined;
}

export class PoolResolver {
  private readonly cache: DnsCache;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly defaultTransport: TransportChoice;
  private readonly random: RandomSource;
  /** Pools currently served from stale answers, so the outage is logged once, and its end too. */
  private readonly stalePools = new Set<string>();
  /** Parsed static target URIs; keyed by the config object, so a reload's new objects replace them. */
  private readonly parsed = new WeakMap<PoolTarget, ParsedStatic | string>();
  /**
   * Finished resolutions, reused until the first answer in them expires, so a request for a pool with
   * everything cached costs a map lookup and an SRV draw, not a dozen awaited cache lookups. DNS plans
   * are keyed by transport and FQDN; static ones by the Pool object, which a config reload replaces.
   */
  private readonly dnsPlans = new Map<string, Plan>();
  private readonly staticPlans = new WeakMap<Pool, Map<TransportChoice, Plan>>();

  constructor(opts: PoolResolverOptions) {
    const negativeTtlMs = opts.negativeTtlMs ?? 30_000;
    const maxStaleMs = opts.maxStaleMs ?? 24 * 3600_000;
    const defaultTtlMs = opts.defaultTtlMs ?? 60_000;
    for (const [name, v] of [
      ['negativeTtlMs', negativeTtlMs],
      ['maxStaleMs', maxStaleMs],
      ['defaultTtlMs', defaultTtlMs],
    ] as const) {
      if (!(v >= 0))
        throw new PoolOptionError(`PoolResolver: ${name} must be a number >= 0, got ${String(v)}`);
    }
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.defaultTransport = opts.defaultTransport;
    this.random = opts.random ?? Math.random;
    this.cache = new DnsCache({ dns: opts.dns, clock: opts.clock, negativeTtlMs, maxStaleMs, defaultTtlMs });
  }

  /**
   * The targets to try for `pool`, best first. Static targets, when configured, replace DNS. An empty
   * list means DNS has no usable record; a rejection with {@link PoolResolutionError} means DNS failed
   * and nothing, not even an expired answer within maxStaleMs, could stand in.
   */
  resolve(pool: Pool, transport?: TargetTransport): Promise<Target[]> {
    const ready = this.cached(pool, transport);
    if (ready !== undefined) return Promise.resolve(ready);
    return this.plan(pool, transport ?? this.defaultTransport, pool.targets.length > 0);
  }

  /**
   * What `resolve` would give from a plan still within its TTL, without waiting for a promise: the
   * per-request path of a proxy whose pool is known. Undefined when the plan must be (re)made.
   */
  cached(pool: Pool, transport?: TargetTransport): Target[] | undefined {
    const choice = transport ?? this.defaultTransport;
    const plan =
      pool.targets.length > 0
        ? this.staticPlans.get(pool)?.get(choice)
        : this.dnsPlans.get(`${choice} ${pool.fqdn}`);
    if (plan === undefined || !(this.clock.now() < plan.until)) return undefined;
    this.noteStale(pool.fqdn, plan.stale, plan.staleError);
    return this.draw(plan.segments);
  }

  private async plan(pool: Pool, choice: TransportChoice, isStatic: boolean): Promise<Target[]> {
    const pass: Pass = { stale: false, staleError: undefined, error: undefined, until: Infinity };
    const segments = isStatic
      ? [await this.resolveStatic(pool, choice, pass)]
      : await this.resolveName(pool.fqdn, choice, pass);
    this.noteStale(pool.fqdn, pass.stale, pass.staleError);
    const targets = this.draw(segments);
    if (targets.length === 0 && pass.error !== undefined)
      throw new PoolResolutionError(pool.fqdn, pass.error);
    const plan: Plan = { segments, until: pass.until, stale: pass.stale, staleError: pass.staleError };
    if (isStatic) {
      let byChoice = this.staticPlans.get(pool);
      if (byChoice === undefined) this.staticPlans.set(pool, (byChoice = new Map<TransportChoice, Plan>()));
      byChoice.set(choice, plan);
    } else {
      this.dnsPlans.set(`${choice} ${pool.fqdn}`, plan);
    }
    return targets;
  }

  /** The targets of `segments` in the order to try them, each id once (its best place wins). */
  private draw(segments: readonly Segment[]): Target[] {
    const out: Target[] = [];
    const seen = new Set<string>();
    const add = (targets: readonly Target[]) => {
      for (const t of targets) {
        if (seen.has(t.id)) continue;
        seen.add(t.id);
        out.push(t);
      }
    };
    for (const seg of segments) {
      if (seg.kind === 'fixed') add(seg.targets);
      else for (const e of orderSrv(seg.entries, this.random)) add(e.targets);
    }
    return out;
  }

  private noteStale(fqdn: string, stale: boolean, err: unknown): void {
    if (stale) {
      if (!this.stalePools.has(fqdn)) {
        this.stalePools.add(fqdn);
        this.logger.warn(
          { pool: fqdn, err: errorText(err) },
          'pool DNS lookup failed; serving the last answer',
        );
      }
    } else if (this.stalePools.size > 0 && this.stalePools.delete(fqdn)) {
      this.logger.info({ pool: fqdn }, 'pool DNS answers again');
    }
  }

  // ---- static targets -------------------------------------------------------------------------

  private async resolveStatic(pool: Pool, choice: TransportChoice, pass: Pass): Promise<Segment> {
    // A Contact-style q: higher first; the operator's order breaks ties (Array.prototype.sort is stable).
    const ordered = pool.targets.slice().sort((a, b) => (b.q ?? 1) - (a.q ?? 1));
    const lists = await Promise.all(
      ordered.map(async (t) => {
        const parsed = this.parseStatic(pool.fqdn, t);
        if (parsed === undefined) return [];
        // A static URI without a transport parameter takes the pool's transport: operators write
        // `sip:pc1.contoso.com:5041` for a TLS-only Lync pool and mean TLS. With no pool transport,
        // RFC 3263 §4.1 applies: "the client SHOULD use UDP for a SIP URI".
        const tr = parsed.transport ?? (choice === 'any' ? 'udp' : choice);
        return this.addresses(parsed.host, tr, parsed.port ?? defaultPort(tr), 'static', pass);
      }),
    );
    return { kind: 'fixed', targets: lists.flat() };
  }

  private parseStatic(fqdn: string, t: PoolTarget): ParsedStatic | undefined {
    let parsed = this.parsed.get(t);
    if (parsed === undefined) {
      parsed = parseStaticUri(t.uri);
      this.parsed.set(t, parsed);
      // Logged once per configured target, not once per request.
      if (typeof parsed === 'string') {
        this.logger.warn({ pool: fqdn, uri: t.uri, reason: parsed }, 'static pool target skipped');
      }
    }
    return typeof parsed === 'string' ? undefined : parsed;
  }

  // ---- RFC 3263 ---------------------------------------------------------------------------------

  private async resolveName(fqdn: string, choice: TransportChoice, pass: Pass): Promise<Segment[]> {
    // RFC 3263 §4.2: "If TARGET is a numeric IP address, the client uses that address."
    if (isIP(fqdn) !== 0) {
      const tr = choice === 'any' ? 'udp' : choice;
      return [{ kind: 'fixed', targets: await this.addresses(fqdn, tr, defaultPort(tr), 'dns', pass) }];
    }

    const naptr = this.records(await this.cache.lookup('NAPTR', fqdn), pass);
    // RFC 3263 §4.1: "a client MUST discard any service fields that identify a resolution service
    // whose value is not "D2X", for values of X that indicate transport protocols supported by the
    // client." RFC 3403 takes the rest by ascending order, then ascending preference within an order.
    const usable = naptr
      .filter((r) => r.flags.toLowerCase() === 's' && NAPTR_SERVICES.has(r.service.toLowerCase()))
      .filter((r) => r.replacement !== '' && r.replacement !== '.')
      .sort((a, b) => a.order - b.order || a.preference - b.preference);

    if (choice !== 'any') return this.viaSrv(fqdn, choice, srvNamesFor(fqdn, choice, usable), pass);

    // RFC 3263 §4.1: "The NAPTR processing as described in RFC 2915 will result in the discovery of
    // the most preferred transport protocol of the server that is supported by the client"
    const first = usable[0];
    if (first !== undefined) {
      const tr = NAPTR_SERVICES.get(first.service.toLowerCase())!;
      return this.viaSrv(fqdn, tr, srvNamesFor(fqdn, tr, usable), pass);
    }
    // RFC 3263 §4.1: "If no NAPTR records are found, the client constructs SRV queries for those
    // transport protocols it supports, and does a query for each ... A particular transport is
    // supported if the query is successful."
    for (const tr of TRANSPORT_PREFERENCE) {
      const srv = this.records(await this.cache.lookup('SRV', SRV_PREFIX[tr] + fqdn), pass);
      if (srv.length > 0) return [await this.fromSrv(tr, srv, pass)];
    }
    // RFC 3263 §4.1: with no SRV records "the client SHOULD use TCP for a SIPS URI, and UDP for a SIP URI."
    return [{ kind: 'fixed', targets: await this.addresses(fqdn, 'udp', defaultPort('udp'), 'dns', pass) }];
  }

  /** SRV lookups of `names` for one transport; A/AAAA of the pool name when none has records. */
  private async viaSrv(fqdn: string, tr: TargetTransport, names: string[], pass: Pass): Promise<Segment[]> {
    const out: Segment[] = [];
    let failed = false;
    for (const name of names) {
      const lookup = await this.cache.lookup('SRV', name);
      if (!lookup.ok) failed = true;
      const srv = this.records(lookup, pass);
      if (srv.length > 0) out.push(await this.fromSrv(tr, srv, pass));
      // RFC 2782: "A Target of "." means that the service is decidedly not available at this domain."
      else if (lookup.ok && lookup.records.length > 0) return out;
    }
    if (out.length > 0 || failed) return out;
    // RFC 3263 §4.2: "If no SRV records were found, the client performs an A or AAAA record lookup of
    // the domain name." Not when the SRV query failed: the pool name's A records may lead to servers
    // other than the pool's SIP members (a Lync pool FQDN also names its web services).
    return [{ kind: 'fixed', targets: await this.addresses(fqdn, tr, defaultPort(tr), 'dns', pass) }];
  }

  private async fromSrv(tr: TargetTransport, srv: readonly SrvRecord[], pass: Pass): Promise<Segment> {
    const entries = await Promise.all(
      srv.map(async (r) => ({
        priority: r.priority,
        weight: r.weight,
        targets: await this.addresses(r.name, tr, r.port, 'dns', pass),
      })),
    );
    return { kind: 'srv', entries };
  }

  /** The records of a lookup, noting staleness, failure and validity in `pass`; SRV "." targets removed. */
  private records<T>(lookup: Lookup<T>, pass: Pass): readonly T[] {
    if (lookup.until < pass.until) pass.until = lookup.until;
    if (!lookup.ok) {
      pass.error ??= lookup.error;
      return [];
    }
    if (lookup.stale) {
      pass.stale = true;
      pass.staleError ??= lookup.error;
    }
    return lookup.records.filter((r) => !isNoService(r));
  }

  /** Targets for every IPv4 then IPv6 address of `host` (an IP literal needs no query). */
  private async addresses(
    host: string,
    transport: TargetTransport,
    port: number,
    source: Target['source'],
    pass: Pass,
  ): Promise<Target[]> {
    const literal = isIP(host);
    if (literal !== 0) return [makeTarget(transport, host, host, port, literal === 6 ? 6 : 4, source)];
    const [a, aaaa] = await Promise.all([this.cache.lookup('A', host), this.cache.lookup('AAAA', host)]);
    const v4 = this.records<AddressRecord>(a, pass);
    const v6 = this.records<AddressRecord>(aaaa, pass);
    const out: Target[] = [];
    for (const r of v4) out.push(makeTarget(transport, host, r.address, port, 4, source));
    for (const r of v6) out.push(makeTarget(transport, host, r.address, port, 6, source));
    return out;
  }
}

/** The SRV names to ask for `tr`: those the pool's NAPTR records give, else the RFC 3263 default. */
function srvNamesFor(
  fqdn: string,
  tr: TargetTransport,
  usable: readonly { service: string; replacement: string }[],
): string[] {
  const names = usable
    .filter((r) => NAPTR_SERVICES.get(r.service.toLowerCase()) === tr)
    .map((r) => r.replacement);
  // RFC 3263 §4.2: "If it was not [performed], because a transport was specified explicitly, the
  // client performs an SRV query for that specific transport"; the same when NAPTR does not list it.
  return names.length > 0 ? names : [SRV_PREFIX[tr] + fqdn];
}

function isNoService(r: unknown): boolean {
  const name = (r as { name?: unknown }).name;
  return name === '' || name === '.';
}

function makeTarget(
  transport: TargetTransport,
  host: string,
  address: string,
  port: number,
  family: 4 | 6,
  source: Target['source'],
): Target {
  return { transport, host, address, port, family, id: targetId(transport, address, port), source };
}

/** A static target URI's host, port and transport, or why it cannot be used. */
export function parseStaticUri(text: string): ParsedStatic | string {
  let uri;
  try {
    uri = parseSipUri(text, 'pool target URI');
  } catch (err) {
    return errorText(err);
  }
  const param = getUriParam(uri, 'transport');
  let transport: TargetTransport | undefined;
  if (typeof param === 'string') {
    const lower = param.toLowerCase();
    if (!TRANSPORTS.has(lower))
      return `transport "${param}" cannot reach a pool member (use udp, tcp or tls)`;
    transport = lower as TargetTransport;
    // RFC 3261 §26.2.2: a SIPS URI is reached over TLS only.
    if (uri.scheme === 'sips' && transport !== 'tls') return `a sips: URI cannot use transport "${param}"`;
  } else if (uri.scheme === 'sips') {
    transport = 'tls';
  }
  const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
  return { host: host.endsWith('.') ? host.slice(0, -1) : host, port: uri.port, transport };
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
