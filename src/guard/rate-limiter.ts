// Per-source request rate limit with a ban period, in the spirit of Kamailio's pike module: a sliding
// window counter per source address; a source going over the limit is banned for a while and its
// messages are dropped. Memory is bounded: at most `maxSources` addresses are tracked, the oldest
// unbanned ones evicted first.

export interface RateLimitSettings {
  /** Requests allowed per window per source. */
  readonly requests: number;
  /** Window length, ms. */
  readonly windowMs: number;
  /** How long a source over the limit is dropped, ms. */
  readonly banMs: number;
  /** Most source addresses tracked at once. */
  readonly maxSources: number;
}

/** `ok`: go on; `ban`: this message started a ban (log it); `banned`: dropped during a ban. */
export type RateVerdict = 'ok' | 'ban' | 'banned';

interface Entry {
  /** Start of the current window. */
  start: number;
  current: number;
  previous: number;
  /** 0 when not banned. */
  bannedUntil: number;
}

/** How many entries from the oldest end eviction looks through for one that is not banned. */
const EVICTION_SCAN = 16;

export class RateLimiter {
  // Insertion order is age order: eviction and sweeping start from the oldest source.
  private readonly sources = new Map<string, Entry>();
  evictions = 0;

  constructor(readonly settings: RateLimitSettings) {
    if (!(
      settings.requests >= 1 &&
      settings.windowMs >= 1 &&
      settings.banMs >= 0 &&
      settings.maxSources >= 1
    ))
      throw new RangeError(`bad rate limit settings: ${JSON.stringify(settings)}`);
  }

  get size(): number {
    return this.sources.size;
  }

  /** Counts one request from `address` at `now` (ms) and says what to do with it. */
  hit(address: string, now: number): RateVerdict {
    const { requests, windowMs, banMs } = this.settings;
    let e = this.sources.get(address);
    if (e === undefined) {
      if (this.sources.size >= this.settings.maxSources) this.evict(now);
      e = { start: now, current: 0, previous: 0, bannedUntil: 0 };
      this.sources.set(address, e);
    } else if (e.bannedUntil !== 0) {
      if (now < e.bannedUntil) return 'banned';
      // The ban is over: the source starts afresh.
      e.bannedUntil = 0;
      e.start = now;
      e.current = 0;
      e.previous = 0;
    }
    const elapsed = now - e.start;
    if (elapsed >= 2 * windowMs || elapsed < 0) {
      e.start = now;
      e.current = 0;
      e.previous = 0;
    } else if (elapsed >= windowMs) {
      e.previous = e.current;
      e.current = 0;
      e.start += windowMs;
    }
    e.current++;
    // Sliding window estimate: the previous window weighted by how much of it the sliding window still covers.
    const estimate = e.previous * (1 - (now - e.start) / windowMs) + e.current;
    if (estimate <= requests) return 'ok';
    if (banMs === 0) return 'banned';
    e.bannedUntil = now + banMs;
    return 'ban';
  }

  /** True while `address` is banned. */
  banned(address: string, now: number): boolean {
    const e = this.sources.get(address);
    return e !== undefined && e.bannedUntil > now;
  }

  /** Forgets sources that have been quiet for two windows and are not banned; bounded by `size`. */
  sweep(now: number): void {
    const idle = 2 * this.settings.windowMs;
    for (const [address, e] of this.sources) {
      if (e.bannedUntil > now) continue;
      if (e.bannedUntil !== 0 || now - e.start >= idle) this.sources.delete(address);
    }
  }

  private evict(now: number): void {
    let scanned = 0;
    let oldest: string | undefined;
    for (const [address, e] of this.sources) {
      oldest ??= address;
      // A banned source is kept if possible: evicting it would lift its ban early.
      if (e.bannedUntil <= now) {
        this.sources.delete(address);
        this.evictions++;
        return;
      }
      if (++scanned >= EVICTION_SCAN) break;
    }
    if (oldest !== undefined) {
      this.sources.delete(oldest);
      this.evictions++;
    }
  }
}
