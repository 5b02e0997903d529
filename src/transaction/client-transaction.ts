// RFC 3261 §17.1 client transactions: the INVITE one (Figure 5) and the non-INVITE one (Figure 6).
// They retransmit the request over unreliable transports, time out, absorb response retransmissions
// and, for a non-2xx final response to an INVITE, send the ACK themselves.

import {
  EMPTY_BODY,
  SIP_VERSION,
  SipRequest,
  field,
  flatCopy,
  asRequest,
  retainedRequest,
  type RetainedRequest,
  type HeaderField,
  type SipResponse,
} from '../sip/message.js';
import { MAGIC_COOKIE } from '../sip/via.js';
import type { Clock, TimerHandle, TimerValues } from '../base/clock.js';
import { IllegalTransitionError } from './server-transaction.js';
import { ServiceError } from '../base/service-error.js';

export { IllegalTransitionError };

export enum ClientTransactionState {
  Calling = 'calling',
  Trying = 'trying',
  Proceeding = 'proceeding',
  Completed = 'completed',
  /** RFC 6026 §7.2: an INVITE transaction after a 2xx, until Timer M. */
  Accepted = 'accepted',
  Terminated = 'terminated',
}

/** A request a client transaction cannot be built for: refused before anything is sent. */
export class ClientTransactionArgumentError extends ServiceError {
  readonly code = 'PCHAT_ERR_TRANSACTION_BAD_ARGUMENT';
}

/** What a client transaction tells the transaction user (the proxy core, the health prober). */
export interface ClientTransactionUser {
  /**
   * Every response the transaction passes up: provisional, 2xx (an INVITE's: every 2xx until Timer M,
   * retransmissions and other forks' included, RFC 6026), and the first non-2xx final
   * (retransmissions are absorbed).
   */
  onResponse(response: SipResponse): void;
  /** Timer B (INVITE) or Timer F (non-INVITE) fired with no final response. */
  onTimeout(): void;
  /**
   * The transport reported a failure sending the request (RFC 3261 §17.1.4: treat as 503). Only
   * before a final response: a failure to send the ACK of a non-2xx ends the transaction quietly,
   * because the TU already holds that final response and must not see a second outcome.
   */
  onTransportError(err: Error): void;
  /** The transaction is over and forgotten; not called after dispose(), which the TU asked for. */
  onTerminated?(): void;
  /**
   * Who hears the 2xx of an INVITE transaction in Accepted (RFC 6026), asked once on entering it: a
   * TU that needs less than itself for that (a proxy relaying them) lets the rest go. Itself when absent.
   */
  acceptedUser?(): ClientTransactionUser;
}

export interface ClientTransactionOptions {
  /** The request as sent, with our Via on top (its branch is the key). */
  readonly request: SipRequest;
  /**
   * The branch of that Via, when the caller made it (a proxy does): it is then the key as given,
   * with no need to read the Via back. It must be the Via's branch and carry the magic cookie.
   */
  readonly branch?: string | undefined;
  /** Bound to one destination; may throw synchronously on a transport error. */
  readonly send: (data: Buffer) => void;
  /** Stream transports: no retransmissions (Timers A/E), Timers D/K zero. */
  readonly reliable: boolean;
  /**
   * The address the request goes to, when known: a response from there is its answer whatever the
   * listener's access policy (the router checks responses from anywhere else against it).
   */
  readonly peer?: string | undefined;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly user: ClientTransactionUser;
}

/** Called once when a transaction ends by any path, dispose() included (the table forgets it). */
export type ForgetHook = (t: ClientTransaction) => void;

/**
 * Called when an INVITE transaction enters Accepted (RFC 6026): the table then holds that state in a
 * compact form until Timer M, handing each 2xx to `user`, and the transaction object is let go.
 */
export type AcceptedHook = (key: string, peer: string | undefined, user: ClientTransactionUser) => void;

/** The key responses are matched by: CANCEL shares the INVITE's branch, so the method is part of it. */
export function clientTransactionKey(branch: string, method: string): string {
  // A branch is a token, so it never contains the space: the two forms cannot collide.
  return method === 'INVITE' ? branch : method + ' ' + branch;
}

/** RFC 3261 §17.1.1.2: "This timer MUST be set to at least 32 seconds for unreliable transports". */
const TIMER_D_MIN = 32_000;

/** Timer D for unreliable transports: 32 s, or Timer H's 64*T1 when a deployment raises T1. */
export function timerD(timers: TimerValues): number {
  return Math.max(TIMER_D_MIN, 64 * timers.t1);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

abstract class ClientTransactionBase {
  abstract readonly kind: 'invite' | 'non-invite';
  state: ClientTransactionState;
  readonly key: string;
  /** Held until the final response: the INVITE one builds its ACK from it (kept packed once sent). */
  protected request: SipRequest | RetainedRequest | undefined;
  /** The request's bytes, retransmitted by Timers A and E. */
  protected data: Buffer | undefined;
  /** Timer A or E. */
  protected retransmitTimer: TimerHandle | undefined;
  /** Timer B, D, F or K: whichever ends the current state. */
  protected endTimer: TimerHandle | undefined;
  /** The current retransmission interval. */
  protected interval = 0;
  private started = false;
  protected readonly send: (data: Buffer) => void;
  protected readonly reliable: boolean;
  /** See ClientTransactionOptions.peer. */
  readonly peer: string | undefined;
  protected readonly clock: Clock;
  protected readonly timers: TimerValues;
  protected readonly user: ClientTransactionUser;

  constructor(
    opts: ClientTransactionOptions,
    initial: ClientTransactionState,
    private readonly transitions: Readonly<Record<ClientTransactionState, readonly ClientTransactionState[]>>,
    private readonly forget: ForgetHook | undefined,
  ) {
    const { request } = opts;
    let branch = opts.branch;
    if (branch === undefined) {
      try {
        branch = request.topVia.branch;
      } catch (err) {
        throw new ClientTransactionArgumentError(
          `${request.method} has no usable top Via: ${toError(err).message}`,
        );
      }
    }
    // RFC 3261 §8.1.1.7: the branch "MUST always begin with the characters "z9hG4bK"". Responses are
    // matched by it alone (§17.1.3), so a request without one could never be answered.
    if (branch === undefined || branch.length <= MAGIC_COOKIE.length || !branch.startsWith(MAGIC_COOKIE)) {
      throw new ClientTransactionArgumentError(
        `${request.method} top Via needs a branch starting with ${MAGIC_COOKIE}, got ${branch ?? 'none'}`,
      );
    }
    // A branch read from the Via is a slice of its text: copied, so the key holds only itself.
    const key = clientTransactionKey(branch, request.method);
    this.key = opts.branch === undefined ? flatCopy(key) : key;
    this.request = request;
    this.send = opts.send;
    this.reliable = opts.reliable;
    this.peer = opts.peer;
    this.clock = opts.clock;
    this.timers = opts.timers;
    this.user = opts.user;
    this.state = initial;
  }

  /** The request as sent, packed to what an ACK or CANCEL for it needs (INVITE); undefined once ended. */
  get sentRequest(): SipRequest | RetainedRequest | undefined {
    return this.request;
  }

  /** Send the request for the first time and arm the timers of the initial state. */
  start(): void {
    if (this.started || this.state === ClientTransactionState.Terminated) {
      throw new IllegalTransitionError(`${this.kind} client transaction cannot start in state ${this.state}`);
    }
    this.started = true;
    const request = this.request as SipRequest;
    this.data = request.toBuffer();
    // From here on only the bytes are resent; the ACK of a non-2xx needs a few headers, not the
    // message, and an INVITE may wait minutes for its answer.
    if (this.kind === 'invite') this.request = retainedRequest(request);
    if (!this.transmit(this.data)) return;
    this.armInitialTimers();
  }

  /** A response the table matched to this transaction (RFC 3261 §17.1.3). */
  receive(res: SipResponse): void {
    // Network input never throws: a response before start() or after the end is simply dropped.
    if (!this.started || this.state === ClientTransactionState.Terminated) return;
    this.onResponse(res);
  }

  /** The transport reported an asynchronous failure (ICMP error, connection refused or reset). */
  transportError(err: Error): void {
    if (this.state === ClientTransactionState.Terminated) return;
    if (this.state === ClientTransactionState.Completed || this.state === ClientTransactionState.Accepted) {
      // Only the ACK could have failed (or nothing was being sent); the TU already has the final response.
      this.finish();
      return;
    }
    // RFC 3261 §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
    // occurred, and the client transaction SHOULD transition directly to the "Terminated" state."
    this.finish(() => this.user.onTransportError(err));
  }

  /** Stop now, silently: no callbacks, no further sends (Timer C expiry, shutdown). */
  dispose(): void {
    if (this.state === ClientTransactionState.Terminated) return;
    this.release();
  }

  protected abstract armInitialTimers(): void;
  protected abstract onResponse(res: SipResponse): void;

  /** Send; on a synchronous transport failure take the transport error path. */
  protected transmit(data: Buffer): boolean {
    try {
      this.send(data);
      return true;
    } catch (err) {
      this.transportError(toError(err));
      return false;
    }
  }

  protected transition(to: ClientTransactionState): void {
    if (!this.transitions[this.state].includes(to)) {
      throw new IllegalTransitionError(
        `${this.kind} client transaction cannot go from ${this.state} to ${to}`,
      );
    }
    this.state = to;
  }

  protected clearTimers(): void {
    if (this.retransmitTimer !== undefined) this.clock.clearTimer(this.retransmitTimer);
    if (this.endTimer !== undefined) this.clock.clearTimer(this.endTimer);
    this.retransmitTimer = undefined;
    this.endTimer = undefined;
  }

  /**
   * Terminated by the transaction itself: everything is released and the table has forgotten the
   * transaction before the TU hears of it, so whatever the TU does in its callback (dispose, a new
   * transaction on the same branch, an exception) finds nothing half done.
   */
  protected finish(notify?: () => void): void {
    this.release();
    notify?.();
    this.user.onTerminated?.();
  }

  private release(): void {
    this.transition(ClientTransactionState.Terminated);
    this.clearTimers();
    this.request = undefined;
    this.data = undefined;
    this.releaseMore();
    this.forget?.(this as unknown as ClientTransaction);
  }

  protected releaseMore(): void {}
}

const INVITE_TRANSITIONS: Record<ClientTransactionState, readonly ClientTransactionState[]> = {
  [ClientTransactionState.Calling]: [
    ClientTransactionState.Proceeding,
    ClientTransactionState.Completed,
    ClientTransactionState.Accepted,
    ClientTransactionState.Terminated,
  ],
  [ClientTransactionState.Proceeding]: [
    ClientTransactionState.Completed,
    ClientTransactionState.Accepted,
    ClientTransactionState.Terminated,
  ],
  [ClientTransactionState.Completed]: [ClientTransactionState.Terminated],
  [ClientTransactionState.Accepted]: [ClientTransactionState.Terminated],
  [ClientTransactionState.Trying]: [],
  [ClientTransactionState.Terminated]: [],
};

/** RFC 3261 §17.1.1, Figure 5. */
export class InviteClientTransaction extends ClientTransactionBase {
  readonly kind = 'invite' as const;
  /**
   * The ACK for the non-2xx final response, resent for each retransmission of that response: as
   * latin1 text, so the 32 s of Timer D do not pin the 8 KiB Buffer pool slab it was cut from.
   */
  private ack: string | undefined;

  constructor(
    opts: ClientTransactionOptions,
    forget?: ForgetHook,
    private readonly onAccepted?: AcceptedHook,
  ) {
    if (opts.request.method !== 'INVITE') {
      throw new ClientTransactionArgumentError(
        `an INVITE client transaction needs an INVITE, not ${opts.request.method}`,
      );
    }
    checkAckSources(opts.request);
    super(opts, ClientTransactionState.Calling, INVITE_TRANSITIONS, forget);
  }

  protected armInitialTimers(): void {
    // RFC 3261 §17.1.1.2: "For any transport, the client transaction MUST start timer B with a value
    // of 64*T1 seconds."
    this.endTimer = this.clock.setTimer(64 * this.timers.t1, InviteClientTransaction.timerB, this);
    if (!this.reliable) {
      // RFC 3261 §17.1.1.2: "If an unreliable transport is being used, the client transaction MUST
      // start timer A with a value of T1."
      this.interval = this.timers.t1;
      this.retransmitTimer = this.clock.setTimer(this.interval, InviteClientTransaction.timerA, this);
    }
  }

  private static timerA(this: void, t: InviteClientTransaction): void {
    t.retransmitTimer = undefined;
    if (t.state !== ClientTransactionState.Calling || t.data === undefined) return;
    if (!t.transmit(t.data)) return;
    // RFC 3261 §17.1.1.2: "the request is retransmitted with intervals that double after each
    // transmission" (no T2 cap for INVITE: Timer B ends it after six retransmissions).
    t.interval *= 2;
    t.retransmitTimer = t.clock.setTimer(t.interval, InviteClientTransaction.timerA, t);
  }

  private static timerB(this: void, t: InviteClientTransaction): void {
    t.endTimer = undefined;
    // RFC 3261 §17.1.1.2: "If the client transaction is still in the "Calling" state when timer B
    // fires, the client transaction SHOULD inform the TU that a timeout has occurred."
    if (t.state !== ClientTransactionState.Calling) return;
    t.finish(() => t.user.onTimeout());
  }

  protected onResponse(res: SipResponse): void {
    const status = res.status;
    if (this.state === ClientTransactionState.Accepted) {
      // RFC 6026 §8.4: "Any 2xx responses that match this client transaction and that are received
      // while in the "Accepted" state MUST be passed up to the TU." Anything else is absorbed.
      if (status >= 200 && status < 300) this.user.onResponse(res);
      return;
    }
    if (this.state === ClientTransactionState.Completed) {
      // RFC 3261 §17.1.1.2: "Any retransmissions of the final response that are received while in
      // the "Completed" state MUST cause the ACK to be re-passed to the transport layer for
      // retransmission, but the newly received response MUST NOT be passed up to the TU."
      if (status >= 300 && this.ack !== undefined) this.resendAck(Buffer.from(this.ack, 'latin1'));
      return;
    }
    if (status < 200) {
      if (this.state === ClientTransactionState.Calling) {
        // RFC 3261 §17.1.1.2: in Proceeding the request is not retransmitted any more, and Timer B
        // only applies to Calling: from here the TU's Timer C (§16.6) bounds the wait.
        this.transition(ClientTransactionState.Proceeding);
        this.clearTimers();
        // Nothing is resent from here on: an INVITE may now wait minutes without its bytes.
        this.data = undefined;
      }
      // RFC 3261 §17.1.1.2: "the provisional response MUST be passed to the TU."
      this.user.onResponse(res);
      return;
    }
    if (status < 300) {
      // RFC 6026 §8.4 (updating RFC 3261 §17.1.1.2): "When in either the "Calling" or "Proceeding"
      // states, reception of a response with status code from 200-299 MUST cause the transition to
      // the "Accepted" state, and the response MUST be passed up to the TU." and "The client
      // transaction MUST start Timer M ... 64*T1" (for any transport: the UAS retransmits its 2xx
      // end to end until the ACK, which is not ours to send). Nothing is sent any more.
      this.transition(ClientTransactionState.Accepted);
      this.clearTimers();
      this.request = undefined;
      this.data = undefined;
      this.user.onResponse(res);
      // Held by the table from here (AcceptedInvite), unless this transaction has no table.
      if (this.onAccepted !== undefined)
        this.onAccepted(this.key, this.peer, this.user.acceptedUser?.() ?? this.user);
      else this.endTimer = this.clock.setTimer(64 * this.timers.t1, InviteClientTransaction.timerM, this);
      return;
    }
    this.transition(ClientTransactionState.Completed);
    this.clearTimers();
    const ack = buildAck(asRequest(this.request!), res);
    // Nothing is retransmitted any more but the ACK: the request can go.
    this.request = undefined;
    this.data = undefined;
    // RFC 3261 §17.1.1.2: "the client transaction MUST pass the received response up to the TU,
    // and the client transaction MUST generate an ACK request".
    let sent = true;
    try {
      this.send(ack);
    } catch {
      sent = false;
    }
    // RFC 3261 §17.1.1.2: Timer D is "zero seconds for reliable transports". A failed ACK ends the
    // transaction too: the response still goes up, as the one outcome the TU hears of.
    if (this.reliable || !sent) {
      this.finish(() => this.user.onResponse(res));
      return;
    }
    this.ack = ack.toString('latin1');
    this.endTimer = this.clock.setTimer(timerD(this.timers), InviteClientTransaction.timerDFired, this);
    this.user.onResponse(res);
  }

  private resendAck(ack: Buffer): void {
    try {
      this.send(ack);
    } catch {
      this.finish();
    }
  }

  private static timerM(this: void, t: InviteClientTransaction): void {
    t.endTimer = undefined;
    if (t.state === ClientTransactionState.Accepted) t.finish();
  }

  private static timerDFired(this: void, t: InviteClientTransaction): void {
    t.endTimer = undefined;
    if (t.state === ClientTransactionState.Completed) t.finish();
  }

  protected override releaseMore(): void {
    this.ack = undefined;
  }
}

const NON_INVITE_TRANSITIONS: Record<ClientTransactionState, readonly ClientTransactionState[]> = {
  [ClientTransactionState.Trying]: [
    ClientTransactionState.Proceeding,
    ClientTransactionState.Completed,
    ClientTransactionState.Terminated,
  ],
  [ClientTransactionState.Proceeding]: [ClientTransactionState.Completed, ClientTransactionState.Terminated],
  [ClientTransactionState.Completed]: [ClientTransactionState.Terminated],
  [ClientTransactionState.Calling]: [],
  [ClientTransactionState.Accepted]: [],
  [ClientTransactionState.Terminated]: [],
};

/** RFC 3261 §17.1.2, Figure 6. */
export class NonInviteClientTransaction extends ClientTransactionBase {
  readonly kind = 'non-invite' as const;

  constructor(opts: ClientTransactionOptions, forget?: ForgetHook) {
    const method = opts.request.method;
    // RFC 3261 §17.1: an ACK is not a transaction of its own (a 2xx's is end to end; a non-2xx's
    // belongs to the INVITE transaction).
    if (method === 'INVITE' || method === 'ACK') {
      throw new ClientTransactionArgumentError(`a non-INVITE client transaction cannot carry ${method}`);
    }
    super(opts, ClientTransactionState.Trying, NON_INVITE_TRANSITIONS, forget);
  }

  protected armInitialTimers(): void {
    // RFC 3261 §17.1.2.2: "the client transaction MUST set timer F to fire in 64*T1 seconds."
    this.endTimer = this.clock.setTimer(64 * this.timers.t1, NonInviteClientTransaction.timerF, this);
    if (!this.reliable) {
      // RFC 3261 §17.1.2.2: "If an unreliable transport is in use, the client transaction MUST set
      // timer E to fire in T1 seconds."
      this.interval = this.timers.t1;
      this.retransmitTimer = this.clock.setTimer(this.interval, NonInviteClientTransaction.timerE, this);
    }
  }

  private static timerE(this: void, t: NonInviteClientTransaction): void {
    t.retransmitTimer = undefined;
    const state = t.state;
    if (
      (state !== ClientTransactionState.Trying && state !== ClientTransactionState.Proceeding) ||
      t.data === undefined
    ) {
      return;
    }
    if (!t.transmit(t.data)) return;
    // RFC 3261 §17.1.2.2: in Trying, "timer E is reset with a value of MIN(2*T1, T2)" and doubles
    // up to T2; "If Timer E fires while in the "Proceeding" state, ... Timer E MUST be reset with a
    // value of T2 seconds."
    t.interval =
      state === ClientTransactionState.Proceeding ? t.timers.t2 : Math.min(2 * t.interval, t.timers.t2);
    t.retransmitTimer = t.clock.setTimer(t.interval, NonInviteClientTransaction.timerE, t);
  }

  private static timerF(this: void, t: NonInviteClientTransaction): void {
    t.endTimer = undefined;
    // RFC 3261 §17.1.2.2: "If Timer F fires while the client transaction is still in the "Trying"
    // state, the client transaction SHOULD inform the TU about the timeout"; likewise in Proceeding.
    if (t.state !== ClientTransactionState.Trying && t.state !== ClientTransactionState.Proceeding) return;
    t.finish(() => t.user.onTimeout());
  }

  protected onResponse(res: SipResponse): void {
    // RFC 3261 §17.1.2.2: in Completed, "any retransmissions of the final response ... are
    // absorbed" (and so are late provisional responses).
    if (this.state === ClientTransactionState.Completed) return;
    if (res.status < 200) {
      // RFC 3261 §17.1.2.2: a provisional response moves Trying to Proceeding and "MUST be passed
      // to the TU"; Timer E keeps running (at T2 once it next fires).
      if (this.state === ClientTransactionState.Trying) this.transition(ClientTransactionState.Proceeding);
      this.user.onResponse(res);
      return;
    }
    // RFC 3261 §17.1.2.2: "the response MUST be passed to the TU, and the client transaction MUST
    // transition to the "Completed" state" with Timer K: "T4 seconds for unreliable transports, and
    // zero seconds for reliable transports".
    if (this.reliable) {
      this.finish(() => this.user.onResponse(res));
      return;
    }
    this.transition(ClientTransactionState.Completed);
    this.clearTimers();
    this.request = undefined;
    this.data = undefined;
    this.endTimer = this.clock.setTimer(this.timers.t4, NonInviteClientTransaction.timerK, this);
    this.user.onResponse(res);
  }

  private static timerK(this: void, t: NonInviteClientTransaction): void {
    t.endTimer = undefined;
    if (t.state === ClientTransactionState.Completed) t.finish();
  }
}

export type ClientTransaction = InviteClientTransaction | NonInviteClientTransaction;

/** The headers an ACK is built from must be there before the INVITE goes out. */
function checkAckSources(request: SipRequest): void {
  for (const name of ['call-id', 'from', 'to', 'cseq'] as const) {
    if (request.header(name) === undefined) {
      throw new ClientTransactionArgumentError(`INVITE has no ${name} header to build its ACK from`);
    }
  }
  try {
    void request.cseq;
  } catch (err) {
    throw new ClientTransactionArgumentError(`INVITE has a bad CSeq: ${toError(err).message}`);
  }
}

const ACK_MAX_FORWARDS = field('max-forwards', '70');
const ACK_CONTENT_LENGTH = field('content-length', '0');

/**
 * The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): the Request-URI, Call-ID,
 * From and the CSeq number of the INVITE, the INVITE's top Via alone, its Route headers, and the To
 * of the response (with the tag the server added).
 */
export function buildAck(invite: SipRequest, response: SipResponse): Buffer {
  const headers: HeaderField[] = [];
  // RFC 3261 §17.1.1.3: "The ACK MUST contain a single Via header field, and this MUST be equal to
  // the top Via header field of the original request."
  headers.push(field('via', invite.topViaText!));
  // RFC 3261 §17.1.1.3: "If the INVITE request whose response is being acknowledged had Route
  // header fields, those header fields MUST appear in the ACK."
  for (const route of invite.headerLines('route')) headers.push(field('route', route));
  headers.push(ACK_MAX_FORWARDS);
  // RFC 3261 §17.1.1.3: Call-ID, From and Request-URI "equal to the values of those header fields
  // in the request passed to the transport by the client transaction".
  headers.push(field('from', invite.header('from')!));
  // RFC 3261 §17.1.1.3: "The To header field in the ACK MUST equal the To header field in the
  // response being acknowledged". A response without one (malformed) falls back to the INVITE's.
  headers.push(field('to', response.header('to') ?? invite.header('to')!));
  headers.push(field('call-id', invite.callId!));
  // RFC 3261 §17.1.1.3: "the same value for the sequence number as was present in the original
  // request, but the method parameter MUST be equal to "ACK"."
  headers.push(field('cseq', `${invite.cseq.seq} ACK`));
  headers.push(ACK_CONTENT_LENGTH);
  return new SipRequest('ACK', invite.uri, SIP_VERSION, headers, EMPTY_BODY).toBuffer();
}
