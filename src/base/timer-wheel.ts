// A hashed timing wheel: the system clock behind transaction timers. Tens of thousands of
// transactions a second each arm and cancel two or three timers; here that is a list insert and an
// unlink, with one Node interval ticking while timers fall due soon, and one Node timeout waiting
// for the next when none does for a while (an idle service with health probes, say).

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
 * How long the Node interval keeps ticking with nothing due within LOOKAHEAD ticks before it stops
 * (nothing pending) or sleeps until the next timer. Over TCP a redirect arms and clears its timers
 * within a millisecond, so at many ticks nothing is pending although timers come and go all the
 * time: stopping there and starting again at the next request would cost a Node interval per tick
 * (measured: about 1 % of the service's CPU at 10,000 calls/s). After this long it costs at most
 * ten restarts a second.
 */
const QUIET_MS = 100;
/** Ticks looked at ahead of the cursor to decide whether a timer falls due soon. */
const LOOKAHEAD = 10;

export class TimerWheel implements Clock {
  private readonly slots: (Entry | undefined)[] = new Array<Entry | undefined>(SLOTS).fill(undefined);
  /** Next tick to process. */
  private cursor: number;
  private pending = 0;
  private ticker: NodeJS.Timeout | undefined;
  /** While sleeping: the Node timeout, and the tick it wakes for (the first slot holding a timer). */
  private sleeper: NodeJS.Timeout | undefined;
  private wakeTick = Infinity;
  /** Clock time of the first tick of the current run of ticks that found nothing due soon. */
  private quietSince: number | undefined;

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
    // Stopped (wakeTick is Infinity) or asleep until later than this timer: tick again.
    if (this.ticker === undefined && tick < this.wakeTick) this.start();
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
    // The ticker stops once its ticks have found nothing due soon for QUIET_MS, not here: a
    // redirect arms and clears its timers within a millisecond, and stopping and restarting a Node
    // interval for each one would cost more than the ticks.
    this.pending--;
  }

  private start(): void {
    this.stop();
    // Catch up from now: ticks that passed while the wheel was stopped hold nothing, nor do those
    // before the one it slept until; timers armed since sit at their own time or later.
    this.cursor = Math.max(this.cursor, Math.min(Math.floor(this.clock() / RESOLUTION), this.wakeTick));
    this.wakeTick = Infinity;
    this.ticker = setInterval(() => this.advance(), RESOLUTION);
    this.ticker.unref();
  }

  private stop(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    if (this.sleeper !== undefined) clearTimeout(this.sleeper);
    this.ticker = undefined;
    this.sleeper = undefined;
    this.quietSince = undefined;
  }

  /** Stop ticking and wake for the first occupied slot (there is one: a timer is pending). */
  private sleep(now: number): void {
    let d = LOOKAHEAD;
    while (d < SLOTS && this.slots[(this.cursor + d) & MASK] === undefined) d++;
    this.stop();
    this.wakeTick = this.cursor + d;
    this.sleeper = setTimeout(
      () => {
        this.sleeper = undefined;
        this.start();
        this.advance();
      },
      Math.max(1, this.wakeTick * RESOLUTION - now),
    );
    this.sleeper.unref();
  }

  /** Is the Node interval behind the wheel running (tests). */
  get ticking(): boolean {
    return this.ticker !== undefined;
  }

  /** Is the wheel waiting on one Node timeout for its next timer (tests). */
  get sleeping(): boolean {
    return this.sleeper !== undefined;
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
    if (this.ticker === undefined) return;
    let soon = false;
    if (this.pending > 0)
      for (let i = 0; i < LOOKAHEAD; i++)
        if (this.slots[(this.cursor + i) & MASK] !== undefined) {
          soon = true;
          break;
        }
    if (soon) this.quietSince = undefined;
    else {
      this.quietSince ??= now;
      if (now - this.quietSince >= QUIET_MS) {
        if (this.pending === 0) this.stop();
        else this.sleep(now);
      }
    }
  }

  /** Drop every pending timer (shutdown). */
  clear(): void {
    this.slots.fill(undefined);
    this.pending = 0;
    this.stop();
    this.wakeTick = Infinity;
  }
}
