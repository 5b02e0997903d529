// A hashed timing wheel: the system clock behind transaction timers. Tens of thousands of
// transactions a second each arm and cancel two or three timers; here that is a list insert and an
// unlink, with one Node timer ticking while any timer is pending.

import type { Clock, TimerHandle } from './clock.js';

interface Entry {
  at: number;
  fn: ((arg: unknown) => void) | undefined;
  arg: unknown;
  prev: Entry | undefined;
  next: Entry | undefined;
  slot: number;
}

/** Tick length in ms: SIP timers start at T1 = 500 ms, so 10 ms of lateness is immaterial. */
const RESOLUTION = 10;
/** 4096 slots of 10 ms: one turn of the wheel covers 64*T1 (Timer B, F, H, J) with room to spare. */
const SLOTS = 4096;
const MASK = SLOTS - 1;
/**
 * How long the Node interval keeps ticking with nothing pending before it stops. Over TCP a redirect
 * arms and clears its timers within a millisecond, so at many ticks nothing is pending although
 * timers come and go all the time: stopping there and starting again at the next request would cost
 * a Node interval per tick (measured: about 1 % of the service's CPU at 10,000 calls/s).
 */
const IDLE_STOP_MS = 1000;

export class TimerWheel implements Clock {
  private readonly slots: (Entry | undefined)[] = new Array<Entry | undefined>(SLOTS).fill(undefined);
  /** Next tick to process. */
  private cursor: number;
  private pending = 0;
  private ticker: NodeJS.Timeout | undefined;
  /** Clock time of the first tick of the current run of ticks that found nothing pending. */
  private idleSince: number | undefined;

  constructor(private readonly clock: () => number = () => performance.now()) {
    this.cursor = Math.floor(this.clock() / RESOLUTION);
  }

  now(): number {
    return this.clock();
  }

  /** Timers armed and not yet fired or cleared. */
  get size(): number {
    return this.pending;
  }

  setTimer(ms: number, fn: () => void): TimerHandle;
  setTimer<T>(ms: number, fn: (arg: T) => void, arg: T): TimerHandle;
  setTimer(ms: number, fn: (arg: unknown) => void, arg?: unknown): TimerHandle {
    const at = this.clock() + ms;
    const tick = Math.max(Math.ceil(at / RESOLUTION), this.cursor);
    const slot = tick & MASK;
    const head = this.slots[slot];
    const e: Entry = { at, fn, arg, prev: undefined, next: head, slot };
    if (head !== undefined) head.prev = e;
    this.slots[slot] = e;
    this.pending++;
    if (this.ticker === undefined) this.start();
    return e;
  }

  clearTimer(handle: TimerHandle): void {
    const e = handle as Entry;
    if (e.fn === undefined) return;
    this.unlink(e);
  }

  private unlink(e: Entry): void {
    if (e.prev === undefined) this.slots[e.slot] = e.next;
    else e.prev.next = e.next;
    if (e.next !== undefined) e.next.prev = e.prev;
    e.prev = undefined;
    e.next = undefined;
    e.fn = undefined;
    e.arg = undefined;
    // The ticker stops once its ticks have found nothing pending for IDLE_STOP_MS, not here: a
    // redirect arms and clears its timers within a millisecond, and stopping and restarting a Node
    // interval for each one would cost more than the ticks.
    this.pending--;
  }

  private start(): void {
    // Catch up from now: ticks that passed while the wheel was idle hold nothing.
    this.cursor = Math.max(this.cursor, Math.floor(this.clock() / RESOLUTION));
    this.ticker = setInterval(() => this.advance(), RESOLUTION);
    this.ticker.unref();
  }

  private stop(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    this.idleSince = undefined;
  }

  /** Is the Node interval behind the wheel running (tests). */
  get ticking(): boolean {
    return this.ticker !== undefined;
  }

  /** Fire every timer that is due. */
  advance(): void {
    const now = this.clock();
    const last = Math.floor(now / RESOLUTION);
    // After a long stall (debugger, suspended VM) one turn visits every slot once.
    const from = Math.max(this.cursor, last - MASK);
    for (let tick = from; tick <= last && this.pending > 0; tick++) {
      this.cursor = tick + 1;
      const slot = tick & MASK;
      let e = this.slots[slot];
      while (e !== undefined) {
        if (e.at > now) {
          // Due on a later turn of the wheel.
          e = e.next;
          continue;
        }
        const fn = e.fn!;
        const arg = e.arg;
        this.unlink(e);
        fn(arg);
        // The callback may have cleared or added timers: walk the slot again from its head.
        e = this.slots[slot];
      }
    }
    this.cursor = Math.max(this.cursor, last + 1);
    if (this.pending > 0) this.idleSince = undefined;
    else {
      this.idleSince ??= now;
      if (now - this.idleSince >= IDLE_STOP_MS) this.stop();
    }
  }

  /** Drop every pending timer (shutdown). */
  clear(): void {
    this.slots.fill(undefined);
    this.pending = 0;
    this.stop();
  }
}
