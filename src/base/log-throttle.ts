// Logs an event at most once per key (a source address) per interval, so that a flood of refused
// messages makes a handful of log lines, not one per message. The next line says how many were not logged.

/** Most keys remembered; past that the oldest are forgotten (and may log again early). */
const MAX_KEYS = 10_000;

export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly intervalMs: number) {}

  /**
   * Returns the number of events suppressed since the last line for `key` (0 or more) when this one
   * should be logged, or undefined when it should not.
   */
  take(key: string, now: number): number | undefined {
    const e = this.last.get(key);
    if (e !== undefined && now - e.at < this.intervalMs) {
      e.suppressed++;
      return undefined;
    }
    const suppressed = e?.suppressed ?? 0;
    if (e !== undefined) this.last.delete(key);
    else if (this.last.size >= MAX_KEYS) {
      const oldest = this.last.keys().next();
      if (oldest.done !== true) this.last.delete(oldest.value);
    }
    // Re-inserted so the map stays in order of last logging: the oldest entry is the first one.
    this.last.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }

  get size(): number {
    return this.last.size;
  }
}
