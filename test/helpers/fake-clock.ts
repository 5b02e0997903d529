// A deterministic clock for timer tests: time moves only when the test advances it.

import type { Clock, TimerHandle } from '../../src/base/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: (arg: unknown) => void;
  arg: unknown;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private time = 0;
  private seq = 0;
  private pending: Pending[] = [];

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): TimerHandle;
  setTimer<T>(ms: number, fn: (arg: T) => void, arg: T): TimerHandle;
  setTimer(ms: number, fn: (arg: unknown) => void, arg?: unknown): TimerHandle {
    const p: Pending = { at: this.time + ms, seq: this.seq++, fn, arg, cancelled: false };
    this.pending.push(p);
    return p;
  }

  clearTimer(handle: TimerHandle): void {
    (handle as Pending).cancelled = true;
  }

  /** Timers not yet fired or cancelled. */
  get active(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }

  /** Move time forward, firing due timers in order (timers set by timers fire too if due). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      let next: Pending | undefined;
      for (const p of this.pending)
        if (p.at <= end && (next === undefined || p.at < next.at || (p.at === next.at && p.seq < next.seq)))
          next = p;
      if (next === undefined) break;
      this.time = next.at;
      next.cancelled = true;
      next.fn(next.arg);
    }
    this.time = end;
  }
}
