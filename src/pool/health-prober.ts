// Periodic OPTIONS probing of pool members: each member's up/down state, with separate thresholds for
// going down and coming back, fed into TargetHealth and exposed (log line and states()) from the
// first probe on, also for members that are down from the start.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../base/clock.js';
import { PoolOptionError } from './errors.js';
import type { TargetHealth } from './target-health.js';
import type { Target } from './types.js';

/** What a probe learned: the final response's status code, a timeout, or the transport error. */
export type ProbeResult = number | 'timeout' | Error;

export interface HealthProberOptions {
  readonly health: TargetHealth;
  /** Sends one OPTIONS to `t` (the proxy's own transactions do it) and reports how it went. */
  readonly probe: (t: Target) => Promise<ProbeResult>;
  /** From the start of one probe of a member to the start of its next. */
  readonly intervalMs: number;
  /** A probe with no result by then counts as a timeout. */
  readonly timeoutMs: number;
  /** Successes in a row that bring a down member back. */
  readonly upThreshold: number;
  /** Failures in a row that take an up member down. */
  readonly downThreshold: number;
  /** Which response codes mean "alive"; {@link defaultAcceptCodes} when not given. */
  readonly acceptCodes?: (code: number) => boolean;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface ProbeState {
  readonly target: Target;
  /** Before the first probe ends: true (assumed; `lastOk` is undefined). */
  readonly up: boolean;
  /** Clock time of the last change of `up`, or when probing began. */
  readonly since: number;
  /** How many probes in a row had the outcome of the latest one. */
  readonly consecutive: number;
  /** The latest probe's outcome; undefined until the first probe ends. */
  readonly lastOk: boolean | undefined;
}

/**
 * Any final response but a server error or 408 shows the member alive: a 404 or 405 to OPTIONS still
 * comes from a running SIP stack, while RFC 3261 §21.5.4 503 (Service Unavailable) and 408 mean
 * it cannot take requests now.
 */
export function defaultAcceptCodes(code: number): boolean {
  return code >= 200 && code < 500 && code !== 408;
}

/** An acceptCodes function for a configured list, e.g. `[200]`. */
export function acceptCodesFrom(codes: readonly number[]): (code: number) => boolean {
  const set = new Set(codes);
  return (code) => set.has(code);
}

interface Member {
  target: Target;
  up: boolean;
  since: number;
  consecutive: number;
  lastOk: boolean | undefined;
  timer: TimerHandle | undefined;
  /** Bumped per probe sent; a result for an older round (timed out, or member removed) is ignored. */
  round: number;
  active: boolean;
}

export class HealthProber {
  private readonly opts: HealthProberOptions;
  private readonly accept: (code: number) => boolean;
  private readonly members = new Map<string, Member>();
  private stopped = false;

  constructor(opts: HealthProberOptions) {
    for (const name of ['intervalMs', 'timeoutMs', 'upThreshold', 'downThreshold'] as const) {
      const v = opts[name];
      if (!Number.isInteger(v) || v < 1) {
        throw new PoolOptionError(`HealthProber: ${name} must be a positive integer, got ${String(v)}`);
      }
    }
    this.opts = opts;
    this.accept = opts.acceptCodes ?? defaultAcceptCodes;
  }

  /**
   * The members to probe from now on. Members whose id is already probed keep their state and
   * schedule (a config reload that keeps them changes nothing); new ones are probed at once; the
   * others stop being probed and their probe verdict is dropped from TargetHealth.
   */
  setTargets(targets: readonly Target[]): void {
    if (this.stopped) return;
    const wanted = new Map(targets.map((t) => [t.id, t]));
    for (const [id, m] of this.members) {
      if (wanted.has(id)) continue;
      this.retire(m);
      this.members.delete(id);
      this.opts.health.setProbed(m.target, undefined);
      this.opts.logger.info({ target: id, host: m.target.host }, 'pool member no longer probed');
    }
    for (const [id, t] of wanted) {
      const known = this.members.get(id);
      if (known !== undefined) {
        known.target = t;
        continue;
      }
      const m: Member = {
        target: t,
        up: true,
        since: this.opts.clock.now(),
        consecutive: 0,
        lastOk: undefined,
        timer: undefined,
        round: 0,
        active: true,
      };
      this.members.set(id, m);
      this.send(m);
    }
  }

  states(): ProbeState[] {
    return [...this.members.values()].map((m) => ({
      target: m.target,
      up: m.up,
      since: m.since,
      consecutive: m.consecutive,
      lastOk: m.lastOk,
    }));
  }

  /** Stops every probe; results still on their way are ignored. */
  stop(): void {
    this.stopped = true;
    for (const m of this.members.values()) this.retire(m);
  }

  private retire(m: Member): void {
    m.active = false;
    m.round++;
    if (m.timer !== undefined) this.opts.clock.clearTimer(m.timer);
    m.timer = undefined;
  }

  private send(m: Member): void {
    const { clock } = this.opts;
    const round = ++m.round;
    const started = clock.now();
    m.timer = clock.setTimer(this.opts.timeoutMs, () => this.settle(m, round, started, 'timeout'));
    let pending: Promise<ProbeResult>;
    try {
      pending = this.opts.probe(m.target);
    } catch (err) {
      pending = Promise.resolve(toError(err));
    }
    pending.then(
      (r) => this.settle(m, round, started, r),
      (err: unknown) => this.settle(m, round, started, toError(err)),
    );
  }

  private settle(m: Member, round: number, started: number, result: ProbeResult): void {
    if (!m.active || round !== m.round) return;
    m.round++; // whichever of answer and timeout comes second is ignored
    const { clock } = this.opts;
    if (m.timer !== undefined) clock.clearTimer(m.timer);
    const ok = typeof result === 'number' && this.accept(result);
    this.record(m, ok, result);
    const wait = Math.max(0, started + this.opts.intervalMs - clock.now());
    m.timer = clock.setTimer(wait, () => this.send(m));
  }

  private record(m: Member, ok: boolean, result: ProbeResult): void {
    const first = m.lastOk === undefined;
    m.consecutive = m.lastOk === ok ? m.consecutive + 1 : 1;
    m.lastOk = ok;
    // The first result decides a new member's state outright: a member that is dead at startup is
    // reported down (and kept out) at once instead of after downThreshold intervals of failed requests.
    const flip = first
      ? ok !== m.up
      : ok
        ? !m.up && m.consecutive >= this.opts.upThreshold
        : m.up && m.consecutive >= this.opts.downThreshold;
    if (flip) {
      m.up = ok;
      m.since = this.opts.clock.now();
    }
    if (first || flip) {
      const fields = {
        target: m.target.id,
        host: m.target.host,
        up: m.up,
        result: describe(result),
        consecutive: m.consecutive,
      };
      const msg = m.up ? 'pool member up' : 'pool member down';
      if (m.up) this.opts.logger.info(fields, msg);
      else this.opts.logger.warn(fields, msg);
      this.opts.health.setProbed(m.target, m.up);
    }
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function describe(result: ProbeResult): string | number {
  return result instanceof Error ? result.message : result;
}
