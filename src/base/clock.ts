// The clock transactions run on: injected, so timer behaviour is tested without waiting.

export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /**
   * Run `fn` once after `ms` milliseconds, with `arg` when given (so a long-lived object can arm a
   * static handler with itself, needing no closure of its own per timer). Timers never keep the
   * process alive.
   */
  setTimer(ms: number, fn: () => void): TimerHandle;
  setTimer<T>(ms: number, fn: (arg: T) => void, arg: T): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms: number, fn: (arg: unknown) => void, arg?: unknown) {
    const t = setTimeout(fn, ms, arg);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** RFC 3261 §17.1.1.1 / Table 4 base values, configurable per deployment. */
export interface TimerValues {
  readonly t1: number;
  readonly t2: number;
  readonly t4: number;
}
