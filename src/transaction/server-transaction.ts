// RFC 3261 §17.2 server transactions: the INVITE one (Figure 7) and the non-INVITE one (Figure 8).
// They keep the last response so request retransmissions are answered with the same bytes.

import type { Clock, TimerHandle, TimerValues } from '../base/clock.js';
import type { Link } from '../transport/types.js';
import { ServiceError } from '../base/service-error.js';

export enum ServerTransactionState {
  Trying = 'trying',
  Proceeding = 'proceeding',
  Completed = 'completed',
  Confirmed = 'confirmed',
  /** RFC 6026 §7.1: an INVITE transaction after its 2xx, until Timer L. */
  Accepted = 'accepted',
  Terminated = 'terminated',
}

export class IllegalTransitionError extends ServiceError {
  readonly code = 'PCHAT_ERR_TRANSACTION_ILLEGAL_TRANSITION';
}

/** Where responses of a transaction go: the link it arrived on and, for datagrams, the peer. */
export interface ResponseRoute {
  readonly link: Link;
  readonly address: string;
  readonly port: number;
}

/** What a transaction tells the table that holds it. */
export interface TransactionHooks {
  /** The transaction is over: forget it (unless the table holds something else under its key now). */
  terminated(t: ServerTransactionBase): void;
  /**
   * An INVITE transaction entered Confirmed over an unreliable transport. Until Timer I (T4) fires,
   * the only thing left to do is absorb ACKs and INVITE retransmissions, which the table does with
   * the key alone, so the transaction object itself can go.
   */
  confirmed(key: string): void;
  /**
   * An INVITE transaction entered Accepted (RFC 6026 §7.1). Until Timer L (64*T1) fires, all it does
   * is absorb INVITE retransmissions and ACKs, which the table does with the key alone; 2xx
   * retransmissions from the TU go out on the transaction's route, which the TU keeps.
   */
  accepted(key: string): void;
  /**
   * A non-INVITE transaction entered Completed over an unreliable transport. Until Timer J (64*T1)
   * fires, the only thing left to do is answer request retransmissions with the final response, which
   * the table does from the response and its destination alone, so the transaction object can go.
   */
  completed(t: NonInviteServerTransaction): void;
}

/**
 * A response kept for retransmission, as latin1 text (one byte per character, so every byte
 * survives). Not the Buffer it was sent from: a small Buffer is a slice of an 8 KiB pool shared with
 * whatever else was allocated around it, and a transaction holding it for seconds or minutes (Timer
 * J, a ringing INVITE's 100 Trying) would keep that whole slab alive.
 */
function retained(data: Buffer | string): string {
  return typeof data === 'string' ? data : data.toString('latin1');
}

export abstract class ServerTransactionBase {
  state: ServerTransactionState;
  protected lastResponse: string | undefined;
  protected timer: TimerHandle | undefined;

  constructor(
    readonly key: string,
    readonly route: ResponseRoute,
    protected readonly clock: Clock,
    protected readonly timers: TimerValues,
    protected readonly hooks: TransactionHooks,
    initial: ServerTransactionState,
  ) {
    this.state = initial;
  }

  /** The final or last provisional response sent, if any. */
  get response(): Buffer | undefined {
    return this.lastResponse === undefined ? undefined : Buffer.from(this.lastResponse, 'latin1');
  }

  /** Links take latin1 text as well as bytes: the kept text goes out without a Buffer made for it. */
  protected transmit(data: Buffer | string): void {
    this.route.link.send(data, this.route.address, this.route.port);
  }

  /** Send the kept response again. */
  protected retransmit(): void {
    if (this.lastResponse !== undefined) this.transmit(this.lastResponse);
  }

  protected arm(ms: number, fn: (t: this) => void): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = this.clock.setTimer(ms, fn, this);
  }

  /** Timer H or J fired, or a timer that ends the transaction. */
  protected static end(this: void, t: ServerTransactionBase): void {
    t.terminate();
  }

  protected terminate(): void {
    if (this.state === ServerTransactionState.Terminated) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.lastResponse = undefined;
    this.state = ServerTransactionState.Terminated;
    this.hooks.terminated(this);
  }

  /** Stop now (shutdown); no further retransmissions. */
  dispose(): void {
    this.terminate();
  }
}

/** RFC 3261 §17.2.1, Figure 7. */
export class InviteServerTransaction extends ServerTransactionBase {
  readonly kind = 'invite' as const;
  private interval = 0;
  private timerH: TimerHandle | undefined;
  /** When the INVITE arrived (clock ms). */
  private readonly startedAt: number;
  /** An INVITE retransmission arrived, or Timer G resent the final response. */
  private repeated = false;
  /**
   * After a 2xx, stay Accepted for Timer L (RFC 6026 §7.1) instead of ending: set by a proxy, which
   * relays the 2xx retransmissions of the UAS downstream through the transaction. A UAS core that
   * retransmits its own 2xx and answers INVITE retransmissions itself (the lookup service) leaves it
   * off and keeps RFC 3261's Terminated.
   */
  holdsAccepted = false;

  constructor(key: string, route: ResponseRoute, clock: Clock, timers: TimerValues, hooks: TransactionHooks) {
    super(key, route, clock, timers, hooks, ServerTransactionState.Proceeding);
    this.startedAt = clock.now();
  }

  /** The TU passes a response down (status decides the transition), as bytes or latin1 text. */
  respond(status: number, data: Buffer | string): void {
    if (this.state === ServerTransactionState.Accepted && status >= 200 && status < 300) {
      // RFC 6026 §8.7: "While in the "Accepted" state, if the TU passes a 2xx response, the server
      // transaction MUST pass the response to the transport layer for transmission."
      this.transmit(data);
      return;
    }
    if (this.state !== ServerTransactionState.Proceeding) {
      throw new IllegalTransitionError(
        `INVITE server transaction cannot send ${status} in state ${this.state}`,
      );
    }
    this.transmit(data);
    if (status < 200) {
      this.lastResponse = retained(data);
      return;
    }
    if (status < 300) {
      if (this.holdsAccepted) {
        // RFC 6026 §8.5: the server transaction "MUST then transition to the "Accepted" state", and
        // §8.6: "Timer L MUST be set to fire in 64*T1". Retransmissions of the INVITE meanwhile are
        // absorbed (nothing kept to resend: the 2xx is the TU's to retransmit). The table holds that
        // state as the key and its deadline, so a busy proxy keeps no object per call for 32 s.
        this.state = ServerTransactionState.Accepted;
        this.lastResponse = undefined;
        if (this.timer !== undefined) this.clock.clearTimer(this.timer);
        this.timer = undefined;
        this.hooks.accepted(this.key);
        return;
      }
      // RFC 3261 §17.2.1: a 2xx moves the transaction to Terminated; the TU retransmits the 2xx.
      this.terminate();
      return;
    }
    this.lastResponse = retained(data);
    this.state = ServerTransactionState.Completed;
    // RFC 3261 §17.2.1: "Timer H MUST be set to fire in 64*T1 seconds for all transports."
    this.timerH = this.clock.setTimer(64 * this.timers.t1, ServerTransactionBase.end, this);
    if (!this.route.link.reliable) {
      // RFC 3261 §17.2.1: for unreliable transports, Timer G is set to fire in T1 seconds.
      this.interval = this.timers.t1;
      this.arm(this.interval, InviteServerTransaction.timerG);
    }
  }

  private static timerG(this: void, t: InviteServerTransaction): void {
    if (t.state !== ServerTransactionState.Completed || t.lastResponse === undefined) return;
    t.repeated = true;
    t.retransmit();
    // RFC 3261 §17.2.1: the interval doubles each time, capped at T2.
    t.interval = Math.min(2 * t.interval, t.timers.t2);
    t.arm(t.interval, InviteServerTransaction.timerG);
  }

  /** A retransmission of the INVITE arrived. */
  retransmission(): void {
    this.repeated = true;
    // RFC 3261 §17.2.1: in Proceeding and Completed the most recent response is passed to the transport again.
    if (
      (this.state === ServerTransactionState.Proceeding || this.state === ServerTransactionState.Completed) &&
      this.lastResponse !== undefined
    ) {
      this.retransmit();
    }
  }

  /** An ACK for the non-2xx final response arrived. */
  ack(): void {
    if (this.state !== ServerTransactionState.Completed) return; // absorbed in Confirmed
    this.state = ServerTransactionState.Confirmed;
    if (this.timerH !== undefined) this.clock.clearTimer(this.timerH);
    this.timerH = undefined;
    // Nothing is ever retransmitted again: only the key needs to stay to absorb ACKs.
    this.lastResponse = undefined;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    // RFC 3261 §17.2.1: Timer I is T4 for unreliable transports and zero for reliable ones. Confirmed
    // exists to absorb the ACKs of retransmitted finals and INVITE retransmissions still in flight.
    // When the ACK came within T1/2 of the INVITE and nothing was repeated, there are none: the
    // client had its answer before its own Timer A (T1) could fire, and we resent nothing. Such a
    // transaction ends at once, as over a reliable transport, so a busy server keeps no state for
    // the seconds of Timer I; an ACK arriving after that is dropped as unmatched, which is what
    // happens to any ACK after Timer I.
    if (
      this.route.link.reliable ||
      (!this.repeated && this.clock.now() - this.startedAt < this.timers.t1 / 2)
    ) {
      this.terminate();
    } else this.hooks.confirmed(this.key);
  }

  override dispose(): void {
    if (this.timerH !== undefined) this.clock.clearTimer(this.timerH);
    this.timerH = undefined;
    super.dispose();
  }

  protected override terminate(): void {
    if (this.timerH !== undefined) this.clock.clearTimer(this.timerH);
    this.timerH = undefined;
    super.terminate();
  }
}

/** RFC 3261 §17.2.2, Figure 8. */
export class NonInviteServerTransaction extends ServerTransactionBase {
  readonly kind = 'non-invite' as const;
  constructor(key: string, route: ResponseRoute, clock: Clock, timers: TimerValues, hooks: TransactionHooks) {
    super(key, route, clock, timers, hooks, ServerTransactionState.Trying);
  }

  respond(status: number, data: Buffer | string): void {
    if (this.state !== ServerTransactionState.Trying && this.state !== ServerTransactionState.Proceeding) {
      throw new IllegalTransitionError(
        `non-INVITE server transaction cannot send ${status} in state ${this.state}`,
      );
    }
    this.transmit(data);
    this.lastResponse = retained(data);
    if (status < 200) {
      this.state = ServerTransactionState.Proceeding;
      return;
    }
    this.state = ServerTransactionState.Completed;
    // RFC 3261 §17.2.2: Timer J is 64*T1 for unreliable transports and zero for reliable ones. The
    // table runs Timer J on a compact copy (CompletedNonInvite); this object stays Completed.
    if (this.route.link.reliable) this.terminate();
    else this.hooks.completed(this);
  }

  /** The final response sent, as kept for retransmission (latin1 text). */
  get finalResponse(): string | undefined {
    return this.state === ServerTransactionState.Completed ? this.lastResponse : undefined;
  }

  retransmission(): void {
    // RFC 3261 §17.2.2: in Trying, retransmissions are discarded; afterwards the last response is resent.
    if (this.state === ServerTransactionState.Trying) return;
    this.retransmit();
  }
}

/**
 * An INVITE transaction in Confirmed over UDP, kept by the table as its key and Timer I deadline:
 * it absorbs ACKs and INVITE retransmissions (RFC 3261 §17.2.1) and holds nothing else.
 */
export const CONFIRMED_INVITE = {
  kind: 'invite',
  state: ServerTransactionState.Confirmed,
  retransmission(): void {},
  ack(): void {},
} as const;

/**
 * A non-INVITE transaction in Completed over UDP, kept by the table until Timer J: what a request
 * retransmission needs (RFC 3261 §17.2.2: "any retransmissions of the request received while in the
 * Completed state MUST cause the server transaction to pass the final response to the transport
 * layer for retransmission"), in one object instead of the transaction, its route and a timer.
 */
export class CompletedNonInvite {
  private readonly link: Link;
  private readonly address: string;
  private readonly port: number;

  constructor(
    /** The final response as sent (latin1 text). */
    readonly response: string,
    route: ResponseRoute,
    /** When Timer J fires (clock ms). */
    readonly expiresAt: number,
  ) {
    this.link = route.link;
    this.address = route.address;
    this.port = route.port;
  }

  // Getters, not fields: tens of thousands of these are held at once, each as small as it can be.
  get kind(): 'non-invite' {
    return 'non-invite';
  }

  get state(): ServerTransactionState.Completed {
    return ServerTransactionState.Completed;
  }

  retransmission(): void {
    this.link.send(this.response, this.address, this.port);
  }
}

export type ServerTransaction =
  InviteServerTransaction | NonInviteServerTransaction | CompletedNonInvite | typeof CONFIRMED_INVITE;
