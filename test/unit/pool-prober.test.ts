// HealthProber: up/down thresholds, timeouts, accepted codes, state kept across setTargets, and a
// log line per member from the first probe on, with a scripted probe and a fake clock.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HealthProber, acceptCodesFrom, type ProbeResult } from '../../src/pool/health-prober.js';
import { TargetHealth } from '../../src/pool/target-health.js';
import type { Target } from '../../src/pool/types.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { jsonLines } from '../helpers/log-lines.js';

const target = (n: number): Target => ({
  transport: 'tls',
  host: `pc${n}.test.example`,
  address: `127.0.0.${n}`,
  port: 5041,
  family: 4,
  id: `tls:127.0.0.${n}:5041`,
  source: 'dns',
});

/** Lets settled probe promises run their callbacks. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(opts: { acceptCodes?: (code: number) => boolean } = {}) {
  const clock = new FakeClock();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, jsonLines(lines));
  const health = new TargetHealth({ clock, logger, holdDownMs: 30_000 });
  /** What each target answers next; a function result is called per probe. */
  const answers = new Map<string, ProbeResult | 'hang'>();
  const sent: string[] = [];
  const prober = new HealthProber({
    health,
    probe: (t) => {
      sent.push(t.address);
      const a = answers.get(t.id) ?? 200;
      return a === 'hang' ? new Promise<ProbeResult>(() => {}) : Promise.resolve(a);
    },
    intervalMs: 10_000,
    timeoutMs: 2_000,
    upThreshold: 2,
    downThreshold: 3,
    clock,
    logger,
    ...opts,
  });
  /** Advance one interval and let the probes' results land. */
  const tick = async (ms = 10_000) => {
    clock.advance(ms);
    await flush();
  };
  return { clock, health, prober, answers, sent, lines, tick };
}

describe('HealthProber', () => {
  it('logs and exposes every member from its first probe, also one that is down from the start', async () => {
    const { prober, answers, lines, health } = setup();
    answers.set(target(2).id, 503);
    prober.setTargets([target(1), target(2)]);
    expect(prober.states().map((s) => [s.target.address, s.up, s.lastOk])).toEqual([
      ['127.0.0.1', true, undefined],
      ['127.0.0.2', true, undefined],
    ]);
    await flush();
    expect(prober.states().map((s) => [s.target.address, s.up])).toEqual([
      ['127.0.0.1', true],
      ['127.0.0.2', false],
    ]);
    expect(lines.map((l) => [l.msg, l.target])).toEqual([
      ['pool member up', 'tls:127.0.0.1:5041'],
      ['pool member down', 'tls:127.0.0.2:5041'],
    ]);
    expect(health.isAvailable(target(2))).toBe(false);
    prober.stop();
  });

  it('takes a member down after downThreshold failures in a row and back after upThreshold successes', async () => {
    const { prober, answers, health, tick, clock } = setup();
    const t = target(1);
    prober.setTargets([t]);
    await flush();
    answers.set(t.id, 503);
    await tick();
    await tick();
    expect(prober.states()[0]).toMatchObject({ up: true, consecutive: 2, lastOk: false });
    expect(health.isAvailable(t)).toBe(true);
    await tick();
    expect(prober.states()[0]).toMatchObject({ up: false, consecutive: 3, since: clock.now() });
    expect(health.isAvailable(t)).toBe(false);

    answers.set(t.id, 200);
    await tick();
    expect(prober.states()[0]).toMatchObject({ up: false, consecutive: 1, lastOk: true });
    answers.set(t.id, 503); // a failure resets the run of successes
    await tick();
    answers.set(t.id, 200);
    await tick();
    expect(prober.states()[0]?.up).toBe(false);
    await tick();
    expect(prober.states()[0]?.up).toBe(true);
    expect(health.isAvailable(t)).toBe(true);
    prober.stop();
  });

  it('counts a probe with no result within timeoutMs as a failure and ignores its late result', async () => {
    const { prober, answers, tick, sent } = setup();
    const t = target(1);
    answers.set(t.id, 'hang');
    prober.setTargets([t]);
    await tick(1_999);
    expect(prober.states()[0]?.lastOk).toBeUndefined();
    await tick(1);
    expect(prober.states()[0]).toMatchObject({ up: false, lastOk: false });
    // The next probe starts one interval after the previous one started, not after its timeout.
    await tick(7_999);
    expect(sent).toHaveLength(1);
    await tick(1);
    expect(sent).toHaveLength(2);
    prober.stop();
  });

  it('counts transport errors and rejected probes as failures', async () => {
    const { prober, answers, health } = setup();
    answers.set(target(1).id, new Error('ECONNREFUSED'));
    const rejecting = new HealthProber({
      health,
      probe: () => Promise.reject(new Error('socket closed')),
      intervalMs: 10_000,
      timeoutMs: 2_000,
      upThreshold: 1,
      downThreshold: 1,
      clock: new FakeClock(),
      logger: pino({ level: 'silent' }),
    });
    prober.setTargets([target(1)]);
    rejecting.setTargets([target(2)]);
    await flush();
    expect(prober.states()[0]?.up).toBe(false);
    expect(rejecting.states()[0]?.up).toBe(false);
    prober.stop();
    rejecting.stop();
  });

  it('by default takes any final response below 500 but 408 as alive; a configured list replaces that', async () => {
    for (const [code, alive] of [
      [200, true],
      [404, true],
      [405, true],
      [408, false],
      [500, false],
      [503, false],
    ] as const) {
      const { prober, answers } = setup();
      answers.set(target(1).id, code);
      prober.setTargets([target(1)]);
      await flush();
      expect([code, prober.states()[0]?.up]).toEqual([code, alive]);
      prober.stop();
    }
    const { prober, answers } = setup({ acceptCodes: acceptCodesFrom([200]) });
    answers.set(target(1).id, 404);
    prober.setTargets([target(1)]);
    await flush();
    expect(prober.states()[0]?.up).toBe(false);
    prober.stop();
  });

  it('keeps the state of members whose id survives setTargets (a reload), drops the others', async () => {
    const { prober, answers, tick, health, sent, clock } = setup();
    const [a, b] = [target(1), target(2)];
    answers.set(a.id, 503);
    prober.setTargets([a, b]);
    await flush();
    const downSince = clock.now();
    await tick(5_000);
    sent.length = 0;

    // Same ids in new objects, as a reload or a fresh DNS answer produces; b removed, c added.
    const c = target(3);
    prober.setTargets([{ ...a }, c]);
    await flush();
    expect(prober.states().map((s) => [s.target.address, s.up, s.since])).toEqual([
      ['127.0.0.1', false, downSince],
      ['127.0.0.3', true, clock.now()],
    ]);
    expect(sent).toEqual(['127.0.0.3']); // a keeps its schedule; only the new member is probed now
    expect(health.isAvailable(a)).toBe(false);

    // b's verdict is forgotten with it: marked down, then removed, it is available again.
    answers.set(b.id, 503);
    prober.setTargets([a, b, c]);
    await flush();
    expect(health.isAvailable(b)).toBe(false);
    prober.setTargets([a, c]);
    expect(health.isAvailable(b)).toBe(true);
    prober.stop();
  });

  it('stops probing on stop()', async () => {
    const { prober, tick, sent, clock } = setup();
    prober.setTargets([target(1)]);
    await flush();
    prober.stop();
    await tick(60_000);
    expect(sent).toHaveLength(1);
    expect(clock.active).toBe(0);
  });
});
