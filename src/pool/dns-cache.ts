// A TTL cache in front of DnsLike: answers live as long as their TTL says, "no such record" answers
// for a short negative TTL, and when the server fails the last answer is served stale (bounded), so a
// DNS outage does not take a pool away from the proxy, nor put a DNS timeout on every request.

import type { Clock } from '../base/clock.js';
import type { AddressRecord, DnsLike, NaptrRecord, SrvRecord } from './types.js';

export type QueryType = 'NAPTR' | 'SRV' | 'A' | 'AAAA';

export interface RecordOf {
  NAPTR: NaptrRecord;
  SRV: SrvRecord;
  A: AddressRecord;
  AAAA: AddressRecord;
}

export interface DnsCacheOptions {
  readonly dns: DnsLike;
  readonly clock: Clock;
  /** How long "no such name / no such record" is believed, and how long to wait before asking a failing server again. */
  readonly negativeTtlMs: number;
  /** How long past its expiry an answer may still be served while the server fails. */
  readonly maxStaleMs: number;
  /** The TTL of records whose resolver reports none (node:dns gives none for NAPTR and SRV). */
  readonly defaultTtlMs: number;
}

/**
 * What a lookup found, and until when (clock time) the same lookup will find the same without asking
 * the server. `stale` when the server failed and an expired answer stood in for it; `error` is then
 * the failure behind it.
 */
export type Lookup<T> =
  | {
      readonly ok: true;
      readonly records: readonly T[];
      readonly until: number;
      readonly stale: boolean;
      readonly error?: unknown;
    }
  | { readonly ok: false; readonly until: number; readonly error: unknown };

interface Entry {
  /** The last answer; undefined when the server has failed and never answered. */
  records: readonly unknown[] | undefined;
  freshUntil: number;
  /** While the server fails, no query is sent before this time. */
  retryAt: number;
  lastError: unknown;
}

/**
 * RFC 1035 §3.2.1: "Zero values are interpreted to mean that the RR can only be used for the
 * transaction in progress, and should not be cached." Asking once per forwarded request would put
 * DNS latency on every call, so TTLs are floored at one second.
 */
export const MIN_TTL_MS = 1000;

// node:dns codes for answers that say "nothing here" (NXDOMAIN, NOERROR with no data), as opposed
// to a failure to get an answer at all.
const NEGATIVE_CODES = new Set(['ENOTFOUND', 'ENODATA']);

export function isNegativeAnswer(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && NEGATIVE_CODES.has(String((err as { code?: unknown }).code))
  );
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Lookup<unknown>>>();

  constructor(private readonly opts: DnsCacheOptions) {}

  lookup<Q extends QueryType>(type: Q, name: string): Promise<Lookup<RecordOf[Q]>> {
    const key = `${type} ${name.toLowerCase()}`;
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      const known = this.answer(entry, this.opts.clock.now());
      if (known !== undefined) return Promise.resolve(known as Lookup<RecordOf[Q]>);
    }
    // Concurrent requests for one pool share one query rather than each asking the server.
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.query(type, name, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending as Promise<Lookup<RecordOf[Q]>>;
  }

  /** What `entry` can answer at `now` without a query, or undefined when the server must be asked. */
  private answer(entry: Entry, now: number): Lookup<unknown> | undefined {
    if (entry.records !== undefined && now < entry.freshUntil) {
      return { ok: true, records: entry.records, until: entry.freshUntil, stale: false };
    }
    if (now >= entry.retryAt) return undefined;
    if (entry.records !== undefined && now - entry.freshUntil <= this.opts.maxStaleMs) {
      return { ok: true, records: entry.records, until: entry.retryAt, stale: true, error: entry.lastError };
    }
    return { ok: false, until: entry.retryAt, error: entry.lastError };
  }

  private async query(type: QueryType, name: string, key: string): Promise<Lookup<unknown>> {
    let records: readonly (NaptrRecord | SrvRecord | AddressRecord)[];
    let ttlMs: number;
    try {
      records = await this.ask(type, name);
      ttlMs = records.length === 0 ? this.opts.negativeTtlMs : this.ttlOf(records);
    } catch (err) {
      if (!isNegativeAnswer(err)) return this.failed(key, err);
      records = [];
      ttlMs = this.opts.negativeTtlMs;
    }
    const freshUntil = this.opts.clock.now() + Math.max(MIN_TTL_MS, ttlMs);
    this.entries.set(key, { records, freshUntil, retryAt: 0, lastError: undefined });
    return { ok: true, records, until: freshUntil, stale: false };
  }

  private failed(key: string, err: unknown): Lookup<unknown> {
    const now = this.opts.clock.now();
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { records: undefined, freshUntil: 0, retryAt: 0, lastError: undefined };
      this.entries.set(key, entry);
    } else if (entry.records !== undefined && now - entry.freshUntil > this.opts.maxStaleMs) {
      entry.records = undefined; // too old to stand in for anything
    }
    // RFC 2308 §7.1 lets a resolver remember a server failure (for at most five minutes); meanwhile
    // the stale answer, or the failure, is given at once instead of every request waiting out the
    // same timeout.
    entry.retryAt = now + Math.max(MIN_TTL_MS, this.opts.negativeTtlMs);
    entry.lastError = err;
    return this.answer(entry, now)!;
  }

  private ask(type: QueryType, name: string): Promise<readonly (NaptrRecord | SrvRecord | AddressRecord)[]> {
    const dns = this.opts.dns;
    switch (type) {
      case 'NAPTR':
        return dns.resolveNaptr(name);
      case 'SRV':
        return dns.resolveSrv(name);
      case 'A':
        return dns.resolve4(name, { ttl: true });
      case 'AAAA':
        return dns.resolve6(name, { ttl: true });
    }
  }

  /** The smallest TTL in an answer set (RFC 2181 §5.2: the TTLs of an RRSet should agree; use the least). */
  private ttlOf(records: readonly { ttl?: number }[]): number {
    let ms = Infinity;
    for (const r of records) {
      const t = r.ttl === undefined ? this.opts.defaultTtlMs : r.ttl * 1000;
      if (t < ms) ms = t;
    }
    return ms;
  }
}
