// TargetHealth: hold-down after a failed request, Retry-After (RFC 3261 §21.5.4), probe verdicts,
// change notifications, on a fake clock.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TargetHealth } from '../../src/pool/target-health.js';
import type { Target } from '../../src/pool/types.js';
import { FakeClock } from '../helpers/fake-clock.js';

const target = (n: number): Target => ({
  transport: 'tls',
  host: `pc${n}.test.example`,
  address: `127.0.0.${n}`,
  port: 5041,
  family: 4,
  id: `tls:127.0.0.${n}:5041`,
  source: 'dns',
});

function setup() {
  const clock = new FakeClock();
  const changes: string[] = [];
  const health = new TargetHealth({
    clock,
    logger: pino({ level: 'silent' }),
    holdDownMs: 30_000,
    onChange: (t, up) => changes.push(`${t.address} ${up ? 'up' : 'down'}`),
  });
  return { clock, health, changes };
}

describe('TargetHealth', () => {
  it('holds a failed target down for holdDownMs, then lets it back', () => {
    const { clock, health, changes } = setup();
    const [a, b] = [target(1), target(2)];
    health.markFailed(a);
    expect(health.isAvailable(a)).toBe(false);
    expect(health.order([a, b])).toEqual([b]);
    clock.advance(29_999);
    expect(health.isAvailable(a)).toBe(false);
    clock.advance(1);
    expect(health.isAvailable(a)).toBe(true);
    expect(health.order([a, b])).toEqual([a, b]);
    expect(changes).toEqual(['127.0.0.1 down', '127.0.0.1 up']);
  });

  it('logs "held down" once per outage: failures while it is held only extend it (at debug)', () => {
    const clock = new FakeClock();
    const lines: { level: number; msg: string }[] = [];
    const logger = pino(
      { level: 'debug' },
      { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) },
    );
    const health = new TargetHealth({ clock, logger, holdDownMs: 30_000 });
    const a = target(1);
    for (let i = 0; i < 5; i++) {
      health.markFailed(a);
      clock.advance(1000);
    }
    clock.advance(30_000);
    health.markFailed(a);
    const info = lines.filter((l) => l.level >= 30).map((l) => l.msg);
    expect(info).toEqual(['pool member held down', 'pool member held down']);
    expect(lines.filter((l) => l.msg === 'pool member hold-down extended')).toHaveLength(4);
  });

  it('RFC 3261 §21.5.4: honours Retry-After instead of the configured hold-down', () => {
    const { clock, health } = setup();
    const a = target(1);
    health.markFailed(a, 120);
    clock.advance(119_999);
    expect(health.isAvailable(a)).toBe(false);
    clock.advance(1);
    expect(health.isAvailable(a)).toBe(true);
    health.markFailed(a, 5);
    clock.advance(5_000);
    expect(health.isAvailable(a)).toBe(true);
  });

  it('lets a later, shorter Retry-After not cut a running hold-down short', () => {
    const { clock, health } = setup();
    const a = target(1);
    health.markFailed(a, 60);
    health.markFailed(a, 1);
    clock.advance(59_000);
    expect(health.isAvailable(a)).toBe(false);
  });

  it('caps an absurd Retry-After at maxHoldDownMs and ignores an invalid one', () => {
    const clock = new FakeClock();
    const health = new TargetHealth({
      clock,
      logger: pino({ level: 'silent' }),
      holdDownMs: 1_000,
      maxHoldDownMs: 600_000,
    });
    const [a, b] = [target(1), target(2)];
    health.markFailed(a, 4_294_967_295);
    health.markFailed(b, Number.NaN);
    clock.advance(1_000);
    expect(health.isAvailable(b)).toBe(true);
    clock.advance(598_999);
    expect(health.isAvailable(a)).toBe(false);
    clock.advance(1);
    expect(health.isAvailable(a)).toBe(true);
  });

  it('lifts the hold-down when the target answers', () => {
    const { health, changes } = setup();
    const a = target(1);
    health.markFailed(a);
    health.markSucceeded(a);
    expect(health.isAvailable(a)).toBe(true);
    expect(changes).toEqual(['127.0.0.1 down', '127.0.0.1 up']);
  });

  it('keeps a probed-down target out until the prober says up, whatever requests say', () => {
    const { clock, health } = setup();
    const a = target(1);
    health.setProbed(a, false);
    health.markSucceeded(a);
    clock.advance(3600_000);
    expect(health.isAvailable(a)).toBe(false);
    health.setProbed(a, true);
    expect(health.isAvailable(a)).toBe(true);
    health.setProbed(a, false);
    health.setProbed(a, undefined); // no longer probed: the verdict goes with it
    expect(health.isAvailable(a)).toBe(true);
  });

  it('tells how long until the first held-down target is back, for a Retry-After', () => {
    const { clock, health } = setup();
    const [a, b, c] = [target(1), target(2), target(3)];
    health.markFailed(a, 40);
    health.markFailed(b, 10);
    health.setProbed(c, false);
    clock.advance(4_000);
    expect(health.retryAfterMs([a, b, c])).toBe(6_000);
    expect(health.retryAfterMs([c])).toBeUndefined();
    clock.advance(6_000);
    expect(health.retryAfterMs([a, b, c])).toBeUndefined();
  });

  it('keys state by id: an equal target from a new resolution is held down too', () => {
    const { health } = setup();
    health.markFailed(target(1));
    expect(health.isAvailable({ ...target(1), host: 'renamed.test.example' })).toBe(false);
  });
});
