// Failover bookkeeping: which pool members may be tried now. A member that failed a request is held
// down for a while (or for its Retry-After); one the prober finds dead stays out until it recovers.
// Keyed by Target.id, so the state outlives config reloads and re-resolutions.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../base/clock.js';
import { PoolOptionError } from './errors.js';
import type { Target } from './types.js';

export interface TargetHealthOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long a member that failed a request is skipped when it gave no Retry-After. */
  readonly holdDownMs: number;
  /**
   * The longest hold-down a Retry-After can ask for; a member saying "come back in a year" would
   * otherwise be lost until a restart. Default one hour.
   */
  readonly maxHoldDownMs?: number;
  /** Called whenever a member's availability changes, including when a hold-down runs out. */
  readonly onChange?: (t: Target, up: boolean) => void;
}

interface State {
  target: Target;
  /** Clock time until which the member is held down after a failure; 0 when not held. */
  heldUntil: number;
  timer: TimerHandle | undefined;
  /** The prober's verdict; true when it is not probed at all. */
  probedUp: boolean;
  /** What onChange last reported (or would have: members start available). */
  available: boolean;
}

export class TargetHealth {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly holdDownMs: number;
  private readonly maxHoldDownMs: number;
  private readonly onChange: ((t: Target, up: boolean) => void) | undefined;
  private readonly states = new Map<string, State>();

  constructor(opts: TargetHealthOptions) {
    if (!(opts.holdDownMs >= 0))
      throw new PoolOptionError(`TargetHealth: holdDownMs must be >= 0, got ${String(opts.holdDownMs)}`);
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.holdDownMs = opts.holdDownMs;
    this.maxHoldDownMs = Math.max(opts.maxHoldDownMs ?? 3600_000, this.holdDownMs);
    this.onChange = opts.onChange;
  }

  /** Not held down after a failure and not marked down by probes. */
  isAvailable(t: Target): boolean {
    const s = this.states.get(t.id);
    return s === undefined || (s.probedUp && this.clock.now() >= s.heldUntil);
  }

  /**
   * A request to `t` met 503, 408, a timeout or a transport error.
   * RFC 3261 §21.5.4: "It SHOULD NOT forward any other requests to that server for the duration
   * specified in the Retry-After header field, if present." Without one, the configured hold-down.
   */
  markFailed(t: Target, retryAfterSec?: number): void {
    const valid = retryAfterSec !== undefined && Number.isFinite(retryAfterSec) && retryAfterSec >= 0;
    const ms = valid ? Math.min(retryAfterSec * 1000, this.maxHoldDownMs) : this.holdDownMs;
    const s = this.state(t);
    const now = this.clock.now();
    const until = now + ms;
    // A later, shorter Retry-After does not cut short a hold-down already running.
    if (until > s.heldUntil) {
      // Logged when the member goes down, not for every request that failed on it meanwhile (those
      // already in flight to it when it first failed): one line per outage, at any request rate.
      const wasHeld = s.heldUntil > now;
      s.heldUntil = until;
      if (s.timer !== undefined) this.clock.clearTimer(s.timer);
      s.timer = ms > 0 ? this.clock.setTimer(ms, () => this.holdDownOver(s)) : undefined;
      this.logger[wasHeld ? 'debug' : 'info'](
        { target: t.id, host: t.host, holdDownMs: ms, retryAfter: retryAfterSec },
        wasHeld ? 'pool member hold-down extended' : 'pool member held down',
      );
    }
    this.update(s);
  }

  /** `t` answered: whatever hold-down it was under is lifted. */
  markSucceeded(t: Target): void {
    const s = this.states.get(t.id);
    if (s === undefined || s.heldUntil === 0) return;
    s.heldUntil = 0;
    if (s.timer !== undefined) this.clock.clearTimer(s.timer);
    s.timer = undefined;
    this.update(s);
  }

  /** The available targets, in their given order; the unavailable ones are dropped. */
  order(targets: readonly Target[]): Target[] {
    return targets.filter((t) => this.isAvailable(t));
  }

  /**
   * Milliseconds until the first of `targets` comes back from a hold-down, for a Retry-After when
   * none is available; undefined when some are available or none will come back by time alone.
   */
  retryAfterMs(targets: readonly Target[]): number | undefined {
    const now = this.clock.now();
    let best: number | undefined;
    for (const t of targets) {
      const s = this.states.get(t.id);
      if (s === undefined || (s.probedUp && now >= s.heldUntil)) return undefined;
      if (s.probedUp && (best === undefined || s.heldUntil - now < best)) best = s.heldUntil - now;
    }
    return best;
  }

  /** The prober's verdict on `t`; `undefined` when it is no longer probed (its verdict is forgotten). */
  setProbed(t: Target, up: boolean | undefined): void {
    const s = up === undefined ? this.states.get(t.id) : this.state(t);
    if (s === undefined) return;
    s.probedUp = up ?? true;
    this.update(s);
  }

  private holdDownOver(s: State): void {
    s.timer = undefined;
    this.update(s);
  }

  private state(t: Target): State {
    let s = this.states.get(t.id);
    if (s === undefined) {
      s = { target: t, heldUntil: 0, timer: undefined, probedUp: true, available: true };
      this.states.set(t.id, s);
    } else {
      s.target = t;
    }
    return s;
  }

  private update(s: State): void {
    if (s.heldUntil !== 0 && this.clock.now() >= s.heldUntil) {
      s.heldUntil = 0;
      if (s.timer !== undefined) this.clock.clearTimer(s.timer);
      s.timer = undefined;
    }
    const available = s.probedUp && s.heldUntil === 0;
    // Nothing to remember for a member in the default state: the map stays as small as the trouble.
    if (available && s.heldUntil === 0 && s.timer === undefined) this.states.delete(s.target.id);
    if (available === s.available) return;
    s.available = available;
    this.onChange?.(s.target, available);
  }
}
