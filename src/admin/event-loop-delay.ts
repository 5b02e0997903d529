// Event-loop delay as a stall shows it: how late a timer due every `periodMs` fires, 0 when on time.
//
// Node 20's perf_hooks.monitorEventLoopDelay records the time between its timer's callbacks, the
// period included: an idle loop sampled every 100 ms reads 100 ms (prom-client exports that figure
// as it is). Its reset() also forgets the last tick, so the first interval after each read is never
// recorded: a stall that begins just after a scrape does not show. Here a timer records its own
// lateness, so an idle loop reads about 0 and a loop blocked for S ms reads between S − period (the
// stall began just after a tick) and S (it began as the timer fell due), whenever it is read.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** The statistics of the delays recorded since the last read, in seconds. */
export interface LoopDelayStats {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  /** Timer ticks recorded. */
  readonly samples: number;
}

const NONE: LoopDelayStats = { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0, samples: 0 };

export class EventLoopDelay {
  private readonly histogram: RecordableHistogram = createHistogram();
  private timer: NodeJS.Timeout | undefined;
  private last = 0;

  constructor(readonly periodMs: number) {}

  start(): this {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), this.periodMs);
    // A sampler must not keep the process alive.
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    const lateUs = Math.round((now - this.last - this.periodMs) * 1000);
    this.last = now;
    // The histogram takes integers from 1: on time (or a hair early) records 1 µs.
    this.histogram.record(Math.max(1, lateUs));
  }

  /** The delays since the last read (or the start), then starts a new window. */
  read(): LoopDelayStats {
    const h = this.histogram;
    // No tick since the last read (two scrapes within one period): nothing was late.
    if (h.count === 0) return NONE;
    const s = (us: number): number => us / 1e6;
    const stats: LoopDelayStats = {
      min: s(h.min),
      max: s(h.max),
      mean: s(h.mean),
      stddev: s(h.stddev),
      p50: s(h.percentile(50)),
      p90: s(h.percentile(90)),
      p99: s(h.percentile(99)),
      samples: h.count,
    };
    h.reset();
    return stats;
  }
}
