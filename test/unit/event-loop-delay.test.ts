// Event-loop delay, as /metrics exports it: an idle loop reads about 0 (not the sampling period, as
// perf_hooks' histogram does in Node 20), and a loop blocked on purpose reads its stall.

import { describe, it, expect } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopDelay } from '../../src/admin/event-loop-delay.js';
import { ServiceMetrics } from '../../src/admin/metrics.js';
import type { RouterStats } from '../../src/router/router.js';

/** Blocks the event loop for `ms`: nothing else on this thread runs meanwhile. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

function metrics(): ServiceMetrics {
  return new ServiceMetrics({
    stats: new Proxy({} as RouterStats, { get: () => 0 }),
    transactionsInFlight: () => 0,
    endpoints: () => 1,
  });
}

/** The values of the nodejs_eventloop_lag_*_seconds gauges in one scrape, in ms. */
async function lagMs(m: ServiceMetrics): Promise<Record<string, number>> {
  const text = await m.registry.metrics();
  const out: Record<string, number> = {};
  for (const [, key, v] of text.matchAll(/^nodejs_eventloop_lag_(\w+?)_seconds ([^\s]+)$/gm))
    out[key!] = Number(v) * 1000;
  return out;
}

describe('event-loop delay', () => {
  it('reads about 0 on an idle loop, not the 100 ms sampling period', async () => {
    const m = metrics();
    await lagMs(m);
    await sleep(1000);
    const lag = await lagMs(m);
    m.close();
    // perf_hooks counts each 100 ms period whole: every figure read 100 ms or more before.
    expect(lag.p50).toBeLessThan(20);
    expect(lag.mean).toBeLessThan(20);
    expect(lag.max).toBeLessThan(100);
    expect(lag.min).toBeGreaterThanOrEqual(0);
  });

  it('reads a stall of 400 ms as a delay of its length, less at most one period', async () => {
    const m = metrics();
    await sleep(250);
    await lagMs(m);
    block(400);
    // Let the late tick (and one more) be recorded.
    await sleep(250);
    const lag = await lagMs(m);
    expect(lag.max).toBeGreaterThanOrEqual(400 - 100);
    // The raw histogram would read up to 400 + 100: the period is not counted.
    expect(lag.max).toBeLessThan(400 + 60);
    // A window without a stall reads about 0 again.
    await sleep(500);
    expect((await lagMs(m)).max).toBeLessThan(100);
    m.close();
  });

  it('with a short period, reads a stall within that period of its length', async () => {
    const d = new EventLoopDelay(10).start();
    try {
      await sleep(100);
      d.read();
      block(300);
      await sleep(50);
      const s = d.read();
      expect(s.samples).toBeGreaterThan(0);
      expect(s.max * 1000).toBeGreaterThanOrEqual(300 - 10);
      expect(s.max * 1000).toBeLessThan(300 + 60);
      expect(s.p50 * 1000).toBeLessThan(20);
    } finally {
      d.stop();
    }
  });

  it('samples no more once stopped', async () => {
    const d = new EventLoopDelay(10).start();
    await sleep(60);
    expect(d.read().samples).toBeGreaterThan(0);
    d.stop();
    await sleep(60);
    expect(d.read().samples).toBe(0);
  });

  it('reads nothing when no tick fell since the last read', () => {
    const d = new EventLoopDelay(100).start();
    try {
      expect(d.read()).toMatchObject({ max: 0, p99: 0, samples: 0 });
    } finally {
      d.stop();
    }
  });
});
