// The response context of one proxied request (RFC 3261 §16.7): its states, the attempt at each pool
// member in turn (serial failover as failover.ts decides it), CANCEL (§16.10), Timer C (§16.8), the
// final response chosen and sent upstream, and the relay of an answered INVITE's 2xx retransmissions
// (RFC 6026). The Proxy (proxy.ts) creates one per forwarded request and hands it CANCELs.

import type { Endpoint } from '../../endpoints/endpoint.js';
import type { Target } from '../../pool/types.js';
import {
  EMPTY_BODY,
  field,
  flatCopy,
  asRequest,
  retainedRequest,
  RetainedRequest,
  SipRequest,
  type SipResponse,
} from '../../sip/message.js';
import { parseMessage } from '../../sip/parser.js';
import { splitFirstElement } from '../../sip/header-values.js';
import { newBranch } from '../../transaction/branch.js';
import type { TimerHandle } from '../../base/clock.js';
import type { ClientTransaction, ClientTransactionUser } from '../../transaction/client-transaction.js';
import { IllegalTransitionError, type ResponseRoute } from '../../transaction/server-transaction.js';
import { hostPort } from '../../sip/host-port.js';
import type { NextHop, Sender } from '../../transport/outbound.js';
import type { Link } from '../../transport/types.js';
import { forwardedRequest, retryAfterSeconds } from './forward.js';
import type { Hop, SignedRoute } from './forwarding-policy.js';
import {
  conclude,
  decide,
  failsMember,
  failureAnswer,
  INTERNAL,
  TIMEOUT,
  TRANSPORT_ERROR,
  UNREACHABLE,
  type Attempts,
  type Ending,
  type Outcome,
  type OwnAnswer,
} from './failover.js';
import { responseText, stampedTopVia } from '../../sip/response.js';
import type { Inbound, Proxy, ProxyDeps } from './proxy.js';

/**
 * One attempt at one target: its client transaction and what came back. It is the transaction's
 * user, passing what happens to the response context with itself as the attempt it is about.
 */
class Attempt implements ClientTransactionUser {
  txn: ClientTransaction | undefined = undefined;
  /** How the request goes to the member: set once a connection is had (at once over UDP). */
  sender: Sender | undefined = undefined;
  unsubscribe: (() => void) | undefined = undefined;
  /** The INVITE as sent, packed, for its CANCEL; nothing for other methods, which are not cancelled. */
  request: SipRequest | RetainedRequest | undefined = undefined;
  /** Our signed Record-Route in the request sent to this target, when the proxy record-routes. */
  rr: SignedRoute | undefined = undefined;
  /**
   * Set once a 2xx to the INVITE went upstream: the client transaction stays Accepted (RFC 6026) for
   * 64*T1, and each 2xx the member retransmits meanwhile goes up through the server transaction,
   * which is Accepted too.
   */
  accepted: Accepted | undefined = undefined;
  /**
   * Undefined once the attempt is over (released): its transaction may be held seconds longer
   * absorbing retransmissions (Timer K, D) and must not keep the context, the request and
   * everything they point to alive with it.
   */
  private ctx: ResponseContext | undefined;

  constructor(
    ctx: ResponseContext,
    readonly target: Hop,
  ) {
    this.ctx = ctx;
  }

  /** The context has no more use for this attempt: whatever the transaction reports is moot. */
  detach(): void {
    this.ctx = undefined;
  }

  onResponse(res: SipResponse): void {
    if (this.ctx !== undefined) this.ctx.onResponse(this, res);
    else if (this.accepted !== undefined && res.status >= 200 && res.status < 300)
      this.accepted.onResponse(res);
  }

  /** In Accepted the transaction talks to the relay alone: this attempt (and its target) can go. */
  acceptedUser(): ClientTransactionUser {
    const a = this.accepted;
    this.accepted = undefined;
    return a ?? this;
  }

  onTimeout(): void {
    this.ctx?.onFailure(this, TIMEOUT);
  }

  onTransportError(): void {
    this.ctx?.onFailure(this, TRANSPORT_ERROR);
  }
}

/**
 * What relays the 2xx retransmissions of an answered INVITE upstream (RFC 6026 §7.1): the route of
 * the server transaction, which the table holds as Accepted (its key and Timer L) until 64*T1.
 * Nothing of the request is kept, nor our signed Record-Route: a retransmission goes up with the
 * entry as the member echoes it (form 1), which verifies as well as the form-2 entry of the first.
 */
export class Accepted implements ClientTransactionUser {
  // The route's fields, not the route: one object fewer held per answered call for 64*T1.
  private readonly link: Link;
  private readonly address: string;
  private readonly port: number;

  constructor(
    private readonly proxy: Proxy,
    route: ResponseRoute,
  ) {
    this.link = route.link;
    this.address = route.address;
    this.port = route.port;
  }

  /** Does it send where `route` does. */
  sendsTo(route: ResponseRoute): boolean {
    return this.port === route.port && this.address === route.address && this.link === route.link;
  }

  onTimeout(): void {}
  onTransportError(): void {}

  /** RFC 6026 §8.4: every 2xx of the Accepted client transaction comes up to here. */
  onResponse(res: SipResponse): void {
    if (res.status < 200 || res.status >= 300) return;
    const up = this.proxy.upstream(res, undefined);
    if (up === undefined) return;
    // RFC 6026 §8.7: "While in the "Accepted" state, if the TU passes a 2xx response, the server
    // transaction MUST pass the response to the transport layer for transmission."
    this.link.send(up.toBuffer(), this.address, this.port);
  }
}

/**
 * The states of a response context (RFC 3261 §16.7): one proxied request, from its arrival to the
 * final response sent upstream. The pool's members are tried one at a time (serial failover), so at
 * most one attempt is live, and the state is that attempt's as much as the request's.
 */
export enum ResponseContextState {
  /** Created, 100 Trying sent for an INVITE (§16.2); the pool's targets are still being resolved. */
  Trying = 'trying',
  /** The request is out to the current member, or a connection to it is opening; nothing back yet. */
  Calling = 'calling',
  /** The current member sent a provisional response: Timer C runs from it, and it may be CANCELled. */
  Proceeding = 'proceeding',
  /** Cancelled before the current member sent a provisional: the CANCEL goes with the first (§9.1). */
  CancelPending = 'cancel-pending',
  /** A CANCEL went to the current member; its final response, a 2xx too, is still relayed. */
  Cancelling = 'cancelling',
  /**
   * The final response went upstream, and the context is released: nothing it hears is relayed
   * again, but for RFC 3261 §16.7 item 5: "After a final response has been sent on the server
   * transaction, the following responses MUST be forwarded immediately: Any 2xx response to an INVITE
   * request." Those go up through the Accepted transactions (RFC 6026 §7.1), which need no context;
   * so there is no Terminated after this one.
   */
  Completed = 'completed',
}

const S = ResponseContextState;

/** A 2xx, as a member's health sees it: the member is up. */
const ANSWERED: Outcome = { kind: 'response', status: 200 };

/** The states each state may be entered from; anything else is a fault of ours (it throws). */
const ENTERED_FROM: Readonly<Record<ResponseContextState, readonly ResponseContextState[]>> = {
  [S.Trying]: [],
  // Failover comes back here, from the attempt before (a 503 may follow a 180).
  [S.Calling]: [S.Trying, S.Calling, S.Proceeding],
  [S.Proceeding]: [S.Calling],
  [S.CancelPending]: [S.Trying, S.Calling],
  [S.Cancelling]: [S.Proceeding, S.CancelPending],
  [S.Completed]: [S.Trying, S.Calling, S.Proceeding, S.CancelPending, S.Cancelling],
};

/**
 * RFC 3261 §16.7: the response context of one proxied request. It is also the record of its
 * attempts the failover policy (failover.ts) reads: which member is next, and what ends the request.
 */
export class ResponseContext implements Attempts<Hop, SipResponse> {
  state: ResponseContextState = S.Trying;
  /** The INVITE server transaction key it is tracked under for CANCEL (Proxy.track). */
  key: string | undefined;
  // What the failover policy reads (Attempts): written here only, by the transitions below.
  targets: readonly Hop[] = [];
  tried = 0;
  readonly finals: SipResponse[] = [];
  failure: OwnAnswer | undefined;
  timerC = false;
  private current: Attempt | undefined;
  private timerCHandle: TimerHandle | undefined;
  private readonly stampedVia: string | undefined;
  /** Our Record-Route URI without the signature ("sip:host:port;transport=udp;lr"), when wanted. */
  private readonly recordRoute: string | undefined;
  /** Where the request came from: the upstream party our Record-Route signs. */
  private readonly upstream: string;
  readonly method: string;
  /** The request: as parsed until it is first sent on, then its packed copy (see `raw`). */
  private req: SipRequest | RetainedRequest;
  /**
   * The client's bytes: the Buffer received until the request is first sent on, then a latin1 copy
   * (one flat string, no ArrayBuffer around it, and nothing shared with a stream's 64 KiB read chunk).
   */
  private raw: Buffer | string | undefined;
  private readonly reliable: boolean;
  private readonly txn: Inbound['txn'];
  private readonly t0: number;
  private readonly branch: string | undefined;

  constructor(
    private readonly proxy: Proxy,
    inb: Inbound,
    private readonly endpoint: Endpoint | undefined,
    private readonly popRoute: boolean,
  ) {
    // Nothing of `inb` is kept whole: its parsed request and Via point into the message's text.
    this.req = inb.req;
    this.method = inb.req.method;
    this.raw = inb.raw;
    this.reliable = inb.source.link.reliable;
    this.txn = inb.txn;
    this.t0 = inb.t0;
    this.branch = inb.via.branch === undefined ? undefined : flatCopy(inb.via.branch);
    this.upstream = inb.source.address;
    // RFC 6026 §7.1: the 2xx retransmissions of the member go up through the transaction.
    if (inb.txn.kind === 'invite') inb.txn.holdsAccepted = true;
    const stamped = stampedTopVia(inb.via, inb.source);
    this.stampedVia = stamped === undefined ? undefined : flatCopy(stamped);
    const rrWanted = endpoint?.recordRoute ?? proxy.deps.settings.recordRoute;
    const dialogCreating =
      inb.req.method === 'INVITE' || inb.req.method === 'SUBSCRIBE' || inb.req.method === 'REFER';
    if (rrWanted && dialogCreating && endpoint !== undefined) {
      const link = inb.source.link;
      // Signed per target in send(): the downstream party is the member it goes to.
      this.recordRoute = proxy.recordRouteBase(link);
    } else this.recordRoute = undefined;
  }

  private get deps(): ProxyDeps {
    return this.proxy.deps;
  }

  /** Cancelled, by the client (§16.10) or by Timer C (§16.8): no other member is tried. */
  get cancelled(): boolean {
    return this.state === S.CancelPending || this.state === S.Cancelling;
  }

  get noMemberRetryAfter(): number {
    return this.deps.settings.noTargetRetryAfter;
  }

  /** The one way the state changes: from a state ENTERED_FROM allows, else a fault of ours. */
  private enter(next: ResponseContextState): void {
    if (!ENTERED_FROM[next].includes(this.state)) {
      throw new IllegalTransitionError(`proxy response context cannot go from ${this.state} to ${next}`);
    }
    this.state = next;
  }

  /**
   * Only requests to the pool (not in-dialog ones) count towards a member's health: a BYE that goes
   * unanswered for a dialog the member has forgotten says nothing about whether it takes new calls,
   * and holding the member down for it would turn one lost BYE into an outage.
   */
  private judgesHealth(target: Hop): boolean {
    return this.endpoint !== undefined && target.id !== undefined;
  }

  /** What a member's health learns from one outcome (failover.ts says which outcomes count against it). */
  private judge(target: Hop, o: Outcome): void {
    if (!this.judgesHealth(target)) return;
    if (failsMember(o))
      this.deps.health.markFailed(target as Target, o.kind === 'response' ? o.retryAfter : undefined);
    else this.deps.health.markSucceeded(target as Target);
  }

  /** RFC 3261 §16.2: a stateful proxy answers an INVITE with 100 Trying right away. */
  sendTrying(): void {
    if (this.method !== 'INVITE') return;
    this.respondOwn(100);
  }

  /** The pool's targets in the pool's order (health first), or the one hop of an in-dialog request. */
  start(targets: Hop[]): void {
    // Resolved after a CANCEL already ended the request: nothing to start.
    if (this.state !== S.Trying) return;
    this.targets = targets;
    if (this.method === 'INVITE') this.armTimerC();
    this.proceed(undefined);
  }

  /** RFC 3261 §16.10: the client CANCELled the INVITE (the router answers the CANCEL itself, 200). */
  cancel(): void {
    switch (this.state) {
      case S.Trying:
        // No member has the request yet: none will.
        this.enter(S.CancelPending);
        this.end(conclude(this));
        return;
      case S.Calling:
        this.enter(S.CancelPending);
        // A connection to the member still opening: no branch to cancel, and none is started now.
        if (this.current?.txn === undefined) this.end(conclude(this));
        // RFC 3261 §9.1: otherwise the CANCEL waits for a provisional response (onResponse).
        return;
      case S.Proceeding:
        this.enter(S.Cancelling);
        this.sendCancel(this.current!);
        return;
      case S.CancelPending:
      case S.Cancelling:
      case S.Completed:
        return;
    }
  }

  /** After an attempt's outcome (undefined before the first): the failover policy says what is next. */
  private proceed(last: Outcome | undefined): void {
    if (last !== undefined) this.failure = failureAnswer(this.failure, last);
    const v = decide(this, last);
    if (v.action === 'try') this.attempt(v.target);
    else this.end(v);
  }

  private attempt(target: Hop): void {
    this.tried++;
    const a = new Attempt(this, target);
    this.current = a;
    this.enter(S.Calling);
    // A UDP member (the usual pool) is sent to at once; a stream may first have to connect.
    const ready = this.deps.outbound.readySender(target);
    if (ready !== undefined) {
      this.send(a, ready);
      return;
    }
    this.deps.outbound.sender(target).then(
      (sender) => {
        // Meanwhile the request may have been cancelled, or Timer C may have moved on.
        if (this.current === a && this.state === S.Calling) this.send(a, sender);
      },
      (err: unknown) => {
        this.deps.logger.warn(
          { target: describe(target), err: err instanceof Error ? err.message : String(err) },
          'pool member unreachable',
        );
        this.judge(target, UNREACHABLE);
        if (this.current === a && this.state !== S.Completed) this.proceed(UNREACHABLE);
      },
    );
  }

  /** RFC 3261 §16.6: the copy of the request for this attempt's member, sent in a client transaction. */
  private send(a: Attempt, sender: Sender): void {
    a.sender = sender;
    const branch = newBranch();
    const via = `SIP/2.0/${sender.transport.toUpperCase()} ${sender.sentBy};branch=${branch}`;
    const full = this.fullRequest();
    if (full === undefined) {
      this.deps.logger.error({ callId: this.req.callId }, 'proxied request could not be read again');
      this.proceed(INTERNAL);
      return;
    }
    const rr = this.signedRoute(full, a.target);
    const request = forwardedRequest(full, {
      via,
      recordRoute: rr?.value,
      popRoute: this.popRoute,
    });
    const req = this.stampedVia === undefined ? request : withStampedVia(request, this.stampedVia);
    a.rr = rr;
    const opts = {
      request: req,
      branch,
      send: sender.send,
      reliable: sender.reliable,
      peer: a.target.address,
      user: a,
    };
    const txn =
      req.method === 'INVITE'
        ? this.deps.clientTxns.createInvite(opts)
        : this.deps.clientTxns.createNonInvite(opts);
    a.txn = txn;
    if (sender.connection !== undefined) {
      // A pool member closing its connection before answering fails over, not hangs.
      a.unsubscribe = sender.connection.onClose(() => {
        if (this.current === a && this.state !== S.Completed)
          txn.transportError(new Error('connection closed'));
      });
    }
    txn.start();
    // Only an INVITE waits long enough (minutes, ringing) for slimming to matter.
    if (this.method === 'INVITE') this.slim(a, txn.sentRequest ?? retainedRequest(req));
  }

  /**
   * Sent: from now on the attempt (for a CANCEL) and this context (for our own answers) keep slim
   * copies; a failover to the next member parses the bytes again.
   */
  private slim(a: Attempt, sent: SipRequest | RetainedRequest): void {
    a.request = sent;
    if (!(this.req instanceof RetainedRequest) && this.raw !== undefined) {
      this.req = retainedRequest(this.req);
      // Still the Buffer received: this is the first send.
      this.raw = (this.raw as Buffer).toString('latin1');
    }
  }

  /** Our Record-Route for the request to `target`, signed for both parties: one HMAC per target. */
  private signedRoute(full: SipRequest, target: Hop): SignedRoute | undefined {
    if (this.recordRoute === undefined) return undefined;
    return this.proxy.policy.recordRoute(
      this.recordRoute,
      flatCopy(full.callId ?? ''),
      flatCopy(full.fromTag ?? ''),
      this.upstream,
      target.address,
    );
  }

  /** The whole request, to send on: as parsed, or parsed again from its bytes once slimmed. */
  private fullRequest(): SipRequest | undefined {
    if (!(this.req instanceof RetainedRequest)) return this.req;
    if (this.raw === undefined) return undefined;
    // It parsed once under the router's limits; these are only wider.
    const bytes = typeof this.raw === 'string' ? Buffer.from(this.raw, 'latin1') : this.raw;
    const again = parseMessage(bytes, {
      stream: this.reliable,
      maxHeaders: 1 << 20,
      maxLineLength: 1 << 30,
    });
    return again.ok && again.message.kind === 'request' ? again.message : undefined;
  }

  onResponse(a: Attempt, res: SipResponse): void {
    if (a !== this.current || this.state === S.Completed) return;
    const status = res.status;
    if (status < 200) {
      this.onProvisional(a, res);
      return;
    }
    this.release(a);
    if (status < 300) {
      this.judge(a.target, ANSWERED);
      // RFC 3261 §16.7 item 4: a 2xx is forwarded immediately, in every state (a CANCEL may have
      // crossed it: the call is then up, and the caller's UA ends it).
      this.forwardUpstream(res, a);
      // RFC 6026 §7.1: the member retransmits its 2xx until the ACK comes; those go up through the
      // Accepted transactions, not statelessly.
      if (this.method === 'INVITE') a.accepted = this.proxy.relayTo(this.txn.route);
      this.complete(status, 'proxied', a);
      return;
    }
    const outcome: Outcome = {
      kind: 'response',
      status,
      retryAfter: status === 503 ? retryAfterSeconds(res) : undefined,
    };
    this.judge(a.target, outcome);
    this.finals.push(res);
    this.proceed(outcome);
  }

  private onProvisional(a: Attempt, res: SipResponse): void {
    if (this.state === S.Calling) this.enter(S.Proceeding);
    else if (this.state === S.CancelPending) {
      // RFC 3261 §9.1: a CANCEL is sent only once a provisional response has come back.
      this.enter(S.Cancelling);
      this.sendCancel(a);
    }
    // RFC 3261 §16.7 item 2: Timer C is reset on every provisional response.
    if (this.method === 'INVITE') this.armTimerC();
    // RFC 3261 §16.7 item 5: 100 Trying is not forwarded; other provisionals are, at once.
    if (res.status > 100) this.forwardUpstream(res, a);
  }

  /** The attempt's transaction timed out or its transport failed: as failover.ts has it. */
  onFailure(a: Attempt, o: Outcome): void {
    if (a !== this.current || this.state === S.Completed) return;
    this.release(a);
    this.judge(a.target, o);
    this.proceed(o);
  }

  /**
   * RFC 3261 §16.7 item 6: "The stateful proxy MUST choose the "best" final response among those
   * received and stored in the response context" (failover.ts chooses), or answers on its own.
   */
  private end(v: Ending<SipResponse>): void {
    if (v.action === 'relay') {
      this.forwardUpstream(v.response, undefined);
      this.complete(v.response.status, 'proxied', this.current);
      return;
    }
    this.respondOwn(v.answer.status, v.answer.retryAfter);
    this.complete(v.answer.status, v.answer.outcome);
  }

  private sendCancel(a: Attempt): void {
    // RFC 3261 §9.1: if no final response comes within 64*T1 of the CANCEL, the client transaction
    // is destroyed; the client then gets 487 (or 408 after Timer C) from us.
    this.deps.clock.setTimer(64 * this.deps.timersT1, () => {
      if (this.current !== a || this.state !== S.Cancelling) return;
      a.txn?.dispose();
      this.release(a);
      this.end(conclude(this));
    });
    const cancel = cancelFor(asRequest(a.request!));
    const txn = this.deps.clientTxns.createNonInvite({
      request: cancel,
      send: a.sender!.send,
      reliable: a.sender!.reliable,
      user: { onResponse: () => undefined, onTimeout: () => undefined, onTransportError: () => undefined },
    });
    txn.start();
  }

  private armTimerC(): void {
    if (this.timerCHandle !== undefined) this.deps.clock.clearTimer(this.timerCHandle);
    this.timerCHandle = this.deps.clock.setTimer(
      this.deps.settings.timerCMs,
      ResponseContext.timerCExpired,
      this,
    );
  }

  /** RFC 3261 §16.8: Timer C fired. */
  private static timerCExpired(this: void, t: ResponseContext): void {
    t.timerCHandle = undefined;
    const a = t.current;
    switch (t.state) {
      case S.Proceeding:
        t.timerC = true;
        // "If the client transaction has received a provisional response, the proxy MUST generate a
        // CANCEL request matching that transaction."
        t.enter(S.Cancelling);
        t.sendCancel(a!);
        return;
      case S.Calling:
      case S.CancelPending:
        t.timerC = true;
        // "If the client transaction has not received a provisional response, the proxy MUST behave
        // as if the transaction received a 408 (Request Timeout) response."
        a!.txn?.dispose();
        t.onFailure(a!, TIMEOUT);
        return;
      case S.Cancelling:
        // The CANCEL is out already; the 487 it brings becomes our 408.
        t.timerC = true;
        return;
      case S.Trying:
      case S.Completed:
        // Not armed before the targets are known; cleared once the final is sent.
        return;
    }
  }

  /** The attempt has its outcome (or is abandoned): nothing it reports from now on is heard. */
  private release(a: Attempt): void {
    a.unsubscribe?.();
    a.unsubscribe = undefined;
    a.request = undefined;
    a.txn = undefined;
    a.detach();
  }

  private forwardUpstream(res: SipResponse, a: Attempt | undefined): void {
    const up = this.proxy.upstream(res, res.status >= 200 && res.status < 300 ? a?.rr : undefined);
    if (up === undefined) {
      // Not relayed (it would loop): a final response still ends the server transaction, with an
      // answer of our own sent where the request came from, so nothing is held for ever.
      if (res.status >= 200) this.respondOwn(500);
      return;
    }
    this.txn.respond(up.status, up.toBuffer());
  }

  private respondOwn(status: number, retryAfter?: number): void {
    const data = responseText(asRequest(this.req), {
      status,
      ...(retryAfter === undefined ? {} : { extra: `Retry-After: ${retryAfter}\r\n` }),
      ...(status === 100 ? {} : { toTag: this.deps.tags.next() }),
      topVia: this.stampedVia,
      server: this.deps.serverHeader,
    });
    this.txn.respond(status, data);
  }

  /** The final response went upstream: the context lets go of everything and records the decision. */
  private complete(status: number, outcome: string, a?: Attempt): void {
    this.enter(S.Completed);
    if (this.timerCHandle !== undefined) this.deps.clock.clearTimer(this.timerCHandle);
    this.timerCHandle = undefined;
    if (this.current !== undefined) this.release(this.current);
    if (this.key !== undefined) this.proxy.untrack(this.key, this);
    const req = this.req;
    this.deps.record(status >= 500 ? 'warn' : 'info', {
      callId: req.callId,
      branch: this.branch,
      method: req.method,
      ruri: req.uri,
      endpoint: this.endpoint?.sipAddress,
      mode: this.endpoint === undefined ? 'in-dialog' : 'proxy',
      pool: this.endpoint?.homedBy === undefined ? undefined : this.endpoint.poolFqdn,
      homing: this.endpoint?.homedBy,
      status,
      outcome,
      target: a === undefined ? undefined : describe(a.target),
      latencyUs: Math.round((performance.now() - this.t0) * 1000),
    });
  }
}

/** RFC 3261 §9.1: the CANCEL of a request we sent, on the same branch and to the same hop. */
function cancelFor(invite: SipRequest): SipRequest {
  const pick = (name: string): string => invite.header(name) ?? '';
  const topVia = invite.topViaText ?? '';
  const headers = [
    field('via', topVia),
    field('max-forwards', '70'),
    field('from', pick('from')),
    field('to', pick('to')),
    field('call-id', pick('call-id')),
    field('cseq', `${invite.cseq.seq} CANCEL`),
  ];
  for (const r of invite.headerLines('route')) headers.push(field('route', r));
  return new SipRequest('CANCEL', invite.uri, invite.version, headers, EMPTY_BODY);
}

/** Replace the first value of the client's Via (now second in the copy) with its stamped form. */
function withStampedVia(req: SipRequest, stamped: string): SipRequest {
  let seenOurs = false;
  let done = false;
  const headers = req.headers.map((h) => {
    if (h.name !== 'via' || done) return h;
    if (!seenOurs) {
      seenOurs = true;
      return h;
    }
    done = true;
    const rest = h.value.indexOf(',') < 0 ? undefined : splitFirstElement(h.value)[1];
    return { name: h.name, wire: h.wire, value: rest === undefined ? stamped : `${stamped}, ${rest}` };
  });
  return new SipRequest(req.method, req.uri, req.version, headers, req.body);
}

function describe(t: NextHop): string {
  return `${t.transport}:${hostPort(t.address, t.port)}`;
}
