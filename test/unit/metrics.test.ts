// The decision counter and latency histogram keep plain numbers (and remember the row counted last);
// what a scrape shows must still be every decision under its own labels.

import { describe, it, expect } from 'vitest';
import { ServiceMetrics, type MetricsOptions } from '../../src/admin/metrics.js';
import type { RouterStats } from '../../src/router/router.js';
import type { DecisionFields } from '../../src/base/log.js';

function metrics(opts?: MetricsOptions): ServiceMetrics {
  return new ServiceMetrics(
    {
      stats: new Proxy({} as RouterStats, { get: () => 0 }),
      transactionsInFlight: () => 0,
      endpoints: () => 1,
    },
    opts,
  );
}

const decision = (outcome: string, status: number, latencyUs: number, method = 'INVITE'): DecisionFields => ({
  callId: 'c',
  branch: 'z9hG4bK-1',
  method,
  ruri: 'sip:ocschat@contoso.com',
  endpoint: 'sip:ocschat@contoso.com',
  mode: 'redirect',
  status,
  outcome,
  latencyUs,
});

async function scrape(m: ServiceMetrics): Promise<string> {
  return m.registry.metrics();
}

function value(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('decision metrics', () => {
  it('count interleaved label sets each under their own labels', async () => {
    const m = metrics();
    const seq: [string, number][] = [
      ['redirect', 302],
      ['redirect', 302],
      ['not-found', 404],
      ['redirect', 302],
      ['not-found', 404],
      ['not-found', 404],
      ['redirect', 302],
    ];
    for (const [outcome, status] of seq) m.onDecision(decision(outcome, status, 400));
    m.onDecision(decision('options', 200, 100, 'OPTIONS'));
    const text = await scrape(m);
    const labels = (outcome: string, status: number, method = 'INVITE'): string =>
      `pchat_requests_total{method="${method}",endpoint="sip:ocschat@contoso.com",mode="redirect",outcome="${outcome}",status="${status}"}`;
    expect(value(text, labels('redirect', 302))).toBe(4);
    expect(value(text, labels('not-found', 404))).toBe(3);
    expect(value(text, labels('options', 200, 'OPTIONS'))).toBe(1);
    expect(value(text, 'pchat_response_time_seconds_count{method="INVITE",outcome="redirect"}')).toBe(4);
    expect(value(text, 'pchat_response_time_seconds_count{method="INVITE",outcome="not-found"}')).toBe(3);
    expect(value(text, 'pchat_response_time_seconds_sum{method="INVITE",outcome="redirect"}')).toBeCloseTo(
      0.0016,
    );
  });

  it('start again from zero after a reset, for the row counted last too', async () => {
    const m = metrics();
    m.onDecision(decision('redirect', 302, 400));
    m.registry.resetMetrics();
    m.onDecision(decision('redirect', 302, 400));
    const text = await scrape(m);
    expect(
      value(
        text,
        'pchat_requests_total{method="INVITE",endpoint="sip:ocschat@contoso.com",mode="redirect",outcome="redirect",status="302"}',
      ),
    ).toBe(1);
    expect(value(text, 'pchat_response_time_seconds_count{method="INVITE",outcome="redirect"}')).toBe(1);
  });
});

describe('process metrics', () => {
  it('are collected by default and left out when nothing can scrape them', async () => {
    const on = await scrape(metrics());
    expect(on).toMatch(/^process_cpu_user_seconds_total /m);
    expect(on).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
    const off = await scrape(metrics({ processMetrics: false }));
    expect(off).not.toMatch(/^process_/m);
    expect(off).not.toMatch(/^nodejs_/m);
    // The service's own metrics are there either way.
    expect(off).toMatch(/^pchat_endpoints /m);
  });
});
