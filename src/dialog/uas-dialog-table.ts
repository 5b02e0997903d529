// The dialogs a UAS holds (RFC 3261 §12, §13.3.1.4), and what keeps them honest: each 2xx to an
// INVITE retransmitted until its ACK and given up on after 64*T1, in-dialog requests matched by
// Call-ID and tags and taken in CSeq order, our own requests sent through the client transactions
// along the route set, and a lifetime timer that ends with BYE a dialog nobody ends. Over UDP a 2xx
// is repeated towards whatever address the INVITE claims: each source gets a budget of them.

import type { Logger } from 'pino';
import type { Clock, TimerHandle, TimerValues } from '../base/clock.js';
import { flatCopy, type SipRequest } from '../sip/message.js';
import { responsePort } from '../sip/response.js';
import { newBranch } from '../transaction/branch.js';
import type { ClientTransactionUser } from '../transaction/client-transaction.js';
import type { ClientTransactionTable } from '../transaction/client-transaction-table.js';
import type { ResponseRoute } from '../transaction/server-transaction.js';
import type { Source } from '../transport/types.js';
import type { TagFactory } from './tags.js';
import {
  inDialogRequest,
  readDialogTargets,
  refreshedTarget,
  sameFlow,
  type DialogRequest,
  type UasDialog,
} from './uas-dialog.js';

/** Counters the table adds to; a mode's stats object may carry more. */
export interface DialogStats {
  /** Dialogs held now. */
  dialogs: number;
  dialogsCreated: number;
  /** Dialogs ended by us: never ACKed, or their lifetime over. */
  expired: number;
  byesSent: number;
  /** In-dialog requests (ACK included) refused because they came on another flow than the dialog. */
  otherFlow: number;
  /** INVITEs refused because their source had maxUnackedPerSource un-ACKed 2xx already. */
  overSourceBudget: number;
}

export interface UasDialogLimits {
  /** Live dialogs at most; admit() refuses a new INVITE beyond that. */
  readonly maxDialogs: number;
  /**
   * Un-ACKed 2xx over UDP one source address may have at once, each retransmitted until its ACK
   * (RFC 3261 §13.3.1.4): a spoofed source cannot turn one INVITE after another into
   * retransmissions towards its victim.
   */
  readonly maxUnackedPerSource: number;
}

export interface UasDialogDeps<C> {
  readonly clientTxns: ClientTransactionTable;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly tags: TagFactory;
  readonly logger: Logger;
  /** User-Agent of the requests we send; empty for none. */
  readonly userAgent: string;
  readonly limits: UasDialogLimits;
  readonly stats: DialogStats;
  /** Told once for each dialog that ends, after it is forgotten. */
  readonly onEnded?: (d: UasDialog<C>, why: string, bye: boolean) => void;
}

/** Why a new INVITE may not create a dialog (see admit). */
export type DialogRefusal =
  | { readonly why: 'other-flow' }
  | { readonly why: 'full' }
  /** `retryAfter` (seconds): by then the source's pending 2xx are ACKed or given up on. */
  | { readonly why: 'source-budget'; readonly retryAfter: number };

/** What an in-dialog request is to the table (see match). */
export type DialogMatch<C> =
  | { readonly kind: 'no-dialog' }
  /** A re-INVITE retransmitted after our 2xx: that 2xx was sent again, nothing else to do. */
  | { readonly kind: 'answered' }
  /** RFC 3261 §12.2.2: lower than the remote CSeq: to be refused with 500. */
  | { readonly kind: 'out-of-order'; readonly dialog: UasDialog<C> }
  | { readonly kind: 'in-order'; readonly dialog: UasDialog<C> };

/** What is retransmitted until its ACK comes (RFC 3261 §13.3.1.4). */
interface Pending2xx {
  readonly cseq: number;
  /** Counted in unackedBySource (sent over UDP, so retransmitted), under the route's address. */
  readonly budgeted: boolean;
  readonly data: Buffer;
  readonly route: ResponseRoute;
  interval: number;
  retransmit: TimerHandle | undefined;
  giveUp: TimerHandle;
}

/** A dialog as the table holds it: the mode's read-only view, writable here, with its timers. */
interface HeldDialog<C> extends UasDialog<C> {
  readonly key: string;
  readonly earlyKey: string;
  remoteTarget: string;
  remoteCseq: number;
  localCseq: number;
  source: Source;
  confirmed: boolean;
  ended: boolean;
  pending: Pending2xx | undefined;
  lifetime: TimerHandle | undefined;
}

export class UasDialogTable<C> {
  private readonly dialogs = new Map<string, HeldDialog<C>>();
  /** Dialogs whose INVITE is not yet ACKed, by Call-ID and the client's tag: INVITE retransmissions. */
  private readonly early = new Map<string, HeldDialog<C>>();
  /** Un-ACKed 2xx retransmitted over UDP, by the address they go to (maxUnackedPerSource). */
  private readonly unackedBySource = new Map<string, number>();
  private readonly stats: DialogStats;

  constructor(private readonly deps: UasDialogDeps<C>) {
    this.stats = deps.stats;
  }

  get size(): number {
    return this.dialogs.size;
  }

  /**
   * RFC 3261 §12.2.2: does this request (To tag = ours, From tag = the client's) belong to a dialog
   * here: 'flow' when it came on the flow the dialog did (the same connection over tcp, tls and
   * ws; the same address and port over UDP), 'other-flow' when it names a dialog here but comes
   * from elsewhere (refused: tags are seen by whoever is on the path, so they are no proof),
   * undefined when it is not ours.
   */
  owns(req: SipRequest, source: Source): 'flow' | 'other-flow' | undefined {
    if (this.dialogs.size === 0) return undefined;
    let d: HeldDialog<C> | undefined;
    try {
      const local = req.toTag;
      if (local === undefined) return undefined;
      d = this.dialogs.get(dialogKey(req.callId ?? '', local, req.fromTag ?? ''));
    } catch {
      return undefined;
    }
    if (d === undefined) return undefined;
    if (sameFlow(d.source, source)) return 'flow';
    this.stats.otherFlow++;
    return 'other-flow';
  }

  /**
   * Before a new INVITE is taken: a refusal when it must not touch anything, because maxDialogs are
   * held or its source has maxUnackedPerSource un-ACKed 2xx retransmitted towards it. A
   * retransmission of an INVITE whose 2xx is pending is admitted from the dialog's own flow (it
   * gets that 2xx again, and makes nothing new), refused from any other: the stored 2xx must not be
   * sent wherever a copy of the INVITE claims to come from.
   */
  admit(req: SipRequest, source: Source): DialogRefusal | undefined {
    const early = this.early.get(earlyKey(req.callId ?? '', req.fromTag ?? ''));
    if (early?.pending !== undefined && early.pending.cseq === req.cseq.seq) {
      if (sameFlow(early.source, source)) return undefined;
      this.stats.otherFlow++;
      return { why: 'other-flow' };
    }
    if (this.dialogs.size >= this.deps.limits.maxDialogs) return { why: 'full' };
    if (
      !source.link.reliable &&
      (this.unackedBySource.get(source.address) ?? 0) >= this.deps.limits.maxUnackedPerSource
    ) {
      this.stats.overSourceBudget++;
      return { why: 'source-budget', retryAfter: Math.ceil((64 * this.deps.timers.t1) / 1000) };
    }
    return undefined;
  }

  /**
   * RFC 3261 §13.3.1.4: an INVITE retransmitted after our 2xx ended its transaction; the 2xx is ours
   * to send again. True when `inb` was such a retransmission and has been answered.
   */
  answerRetransmission(inb: DialogRequest): boolean {
    const { req } = inb;
    const early = this.early.get(earlyKey(req.callId ?? '', req.fromTag ?? ''));
    if (early?.pending === undefined || early.pending.cseq !== req.cseq.seq) return false;
    inb.txn.respond(200, early.pending.data);
    return true;
  }

  /**
   * A dialog for the INVITE `inb` (RFC 3261 §12.1.1), with a fresh To tag of ours; undefined when its
   * Contact or Record-Route does not parse. Its 2xx is the caller's to build and send (send2xx).
   */
  create(inb: DialogRequest, context: C): UasDialog<C> | undefined {
    const { req } = inb;
    const targets = readDialogTargets(req);
    if (targets === undefined) return undefined;
    const localTag = this.deps.tags.next();
    // Flat copies: the dialog outlives the request, whose strings may hold on to its whole buffer.
    const callId = flatCopy(req.callId ?? '');
    const fromTag = flatCopy(req.fromTag ?? '');
    const d: HeldDialog<C> = {
      key: dialogKey(callId, localTag, fromTag),
      earlyKey: earlyKey(callId, fromTag),
      callId,
      localTag,
      remoteTag: fromTag,
      localParty: `${flatCopy(req.header('to') ?? '')};tag=${localTag}`,
      remoteParty: flatCopy(req.header('from') ?? ''),
      remoteTarget: targets.remoteTarget,
      routeSet: targets.routeSet,
      remoteCseq: req.cseq.seq,
      localCseq: 0,
      source: inb.source,
      confirmed: false,
      ended: false,
      pending: undefined,
      lifetime: undefined,
      context,
    };
    this.dialogs.set(d.key, d);
    this.early.set(d.earlyKey, d);
    this.stats.dialogs = this.dialogs.size;
    this.stats.dialogsCreated++;
    return d;
  }

  /**
   * An in-dialog request: which dialog, and whether it comes in CSeq order. An in-order request
   * moves the remote CSeq and the dialog's flow on.
   */
  match(inb: DialogRequest): DialogMatch<C> {
    const { req } = inb;
    const d = this.dialogs.get(dialogKey(req.callId ?? '', req.toTag ?? '', req.fromTag ?? ''));
    if (d === undefined || d.ended) return { kind: 'no-dialog' };
    const seq = req.cseq.seq;
    if (req.method === 'INVITE' && d.pending?.cseq === seq) {
      // A re-INVITE retransmitted after our 2xx (RFC 3261 §13.3.1.4), as for the initial INVITE.
      inb.txn.respond(200, d.pending.data);
      return { kind: 'answered' };
    }
    // RFC 3261 §12.2.2: "If the remote sequence number was not empty, but the sequence number of the
    // request is lower than the remote sequence number, the request is out of order and MUST be
    // rejected with a 500 (Server Internal Error) response."
    if (seq < d.remoteCseq) return { kind: 'out-of-order', dialog: d };
    d.remoteCseq = seq;
    d.source = inb.source;
    return { kind: 'in-order', dialog: d };
  }

  /** RFC 3261 §12.2.2: a target refresh request replaces the remote target with its Contact. */
  refreshTarget(dialog: UasDialog<C>, req: SipRequest): void {
    const target = refreshedTarget(req);
    // A bad Contact on a refresh leaves the old target; the refresh itself still counts.
    if (target !== undefined) this.held(dialog).remoteTarget = target;
  }

  /**
   * Send `data`, the 2xx to the INVITE (initial or re-INVITE) `inb`, and retransmit it until its ACK
   * comes; without one in 64*T1 the dialog is ended with BYE.
   */
  send2xx(dialog: UasDialog<C>, inb: DialogRequest, data: Buffer): void {
    const d = this.held(dialog);
    const { req, source } = inb;
    inb.txn.respond(200, data);
    const route = { link: source.link, address: source.address, port: responsePort(inb.via, source) };
    const t1 = this.deps.timers.t1;
    const p: Pending2xx = {
      cseq: req.cseq.seq,
      // The hop to the client is the only one we see; over a stream it does not lose the 2xx, so
      // only datagrams repeat it, and only those count against the source's budget.
      budgeted: !source.link.reliable,
      data,
      route,
      interval: t1,
      retransmit: undefined,
      // RFC 3261 §13.3.1.4: "If the server retransmits the 2xx response for 64*T1 seconds without
      // receiving an ACK, the dialog is confirmed, but the session SHOULD be terminated. This is
      // accomplished with a BYE as described in Section 15."
      giveUp: this.deps.clock.setTimer(64 * t1, () => {
        if (d.pending !== p) return;
        // The BYE that ends the dialog goes to the same unanswering source, retransmitted in turn:
        // the source's budget slot is held until that BYE's transaction ends too.
        this.clearPending(d, false);
        this.deps.logger.info({ callId: d.callId }, '2xx never ACKed: dialog ended with BYE');
        this.stats.expired++;
        this.end(d, 'no-ack', true, () => this.releaseBudget(p));
      }),
    };
    if (d.pending !== undefined) this.clearPending(d);
    d.pending = p;
    // RFC 3261 §13.3.1.4: "The 2xx response is passed to the transport with an interval that starts
    // at T1 seconds and doubles for each retransmission until it reaches T2 seconds."
    if (p.budgeted) {
      this.unackedBySource.set(route.address, (this.unackedBySource.get(route.address) ?? 0) + 1);
      p.retransmit = this.deps.clock.setTimer(t1, () => this.retransmit2xx(d, p));
    }
  }

  /**
   * An ACK that matched no server transaction: the ACK of one of our 2xx (RFC 3261 §13.3.1.4 stops
   * the retransmissions). True when it was for one of our dialogs.
   */
  ack(req: SipRequest, source: Source): boolean {
    let d: HeldDialog<C> | undefined;
    try {
      const local = req.toTag;
      if (local === undefined || this.dialogs.size === 0) return false;
      d = this.dialogs.get(dialogKey(req.callId ?? '', local, req.fromTag ?? ''));
      if (d === undefined) return false;
      if (!sameFlow(d.source, source)) {
        // Ours, but not from the dialog's flow: dropped, and the 2xx goes on being retransmitted.
        this.stats.otherFlow++;
        this.deps.logger.debug({ callId: d.callId }, 'ACK from another flow than its dialog dropped');
        return true;
      }
      const p = d.pending;
      if (p !== undefined && p.cseq === req.cseq.seq) {
        this.clearPending(d);
        if (!d.confirmed) {
          d.confirmed = true;
          this.early.delete(d.earlyKey);
        }
      }
    } catch {
      return false;
    }
    return true;
  }

  /**
   * (Re)arm the timer that ends a dialog left alone after `ms`, with BYE; `why` says what ran out
   * (idle, a session interval).
   */
  setLifetime(dialog: UasDialog<C>, ms: number, why: string): void {
    const d = this.held(dialog);
    if (d.lifetime !== undefined) this.deps.clock.clearTimer(d.lifetime);
    d.lifetime = this.deps.clock.setTimer(ms, () => {
      d.lifetime = undefined;
      if (d.ended) return;
      this.stats.expired++;
      this.end(d, why, true);
    });
  }

  /**
   * Send a request of ours within the dialog (RFC 3261 §12.2.1.1) back over the client's flow.
   * `done` is called once its transaction has its final answer, timed out or failed. A 481 or 408
   * to anything but a BYE, a timeout or a transport failure ends the dialog without BYE.
   */
  request(
    dialog: UasDialog<C>,
    method: string,
    body?: { readonly type: string; readonly text: string },
    done?: () => void,
  ): void {
    const d = this.held(dialog);
    const source = d.source;
    const link = source.link;
    d.localCseq++;
    const request = inDialogRequest(d, {
      method,
      branch: newBranch(),
      cseq: d.localCseq,
      body,
      userAgent: this.deps.userAgent,
    });
    const txn = this.deps.clientTxns.createNonInvite({
      request,
      send: (data) => link.send(data, source.address, source.port),
      reliable: link.reliable,
      user: this.requestUser(d, method, done),
    });
    txn.start();
  }

  /** What the answer to a request of ours (or its lack) does to the dialog; `done` is told once. */
  private requestUser(d: HeldDialog<C>, method: string, done?: () => void): ClientTransactionUser {
    const callId = d.callId;
    const log = this.deps.logger;
    // A BYE ends the dialog whatever its answer; anything else that fails ends it too.
    const ends = method !== 'BYE';
    let pending = done;
    const finish = (): void => {
      pending?.();
      pending = undefined;
    };
    return {
      onResponse: (res) => {
        if (res.status < 200) return;
        finish();
        if (!ends) return;
        // RFC 3261 §12.2.1.2: "If the response for a request within a dialog is a 481 or a 408, the
        // UAC SHOULD terminate the dialog."
        if (res.status === 481 || res.status === 408) this.end(d, `${method} answered ${res.status}`, false);
        else if (res.status >= 300)
          log.info({ callId, method, status: res.status }, 'in-dialog request refused by the client');
      },
      onTimeout: () => {
        finish();
        log.info({ callId, method }, 'in-dialog request to the client timed out');
        if (ends) this.end(d, `${method} timed out`, false);
      },
      onTransportError: (err) => {
        finish();
        log.info({ callId, method, err: err.message }, 'in-dialog request to the client not sent');
        if (ends) this.end(d, 'transport error', false);
      },
    };
  }

  /**
   * End a dialog: timers cleared, the dialog forgotten, and a BYE to the client when `bye` (when it
   * did not end the dialog itself). `byeDone` is called once that BYE's transaction is over.
   */
  end(dialog: UasDialog<C>, why: string, bye: boolean, byeDone?: () => void): void {
    const d = this.held(dialog);
    if (d.ended) return;
    if (bye) {
      this.stats.byesSent++;
      try {
        this.request(d, 'BYE', undefined, byeDone);
      } catch (err) {
        this.deps.logger.debug({ callId: d.callId, err: String(err) }, 'BYE not sent');
        byeDone?.();
      }
    } else byeDone?.();
    d.ended = true;
    this.clearPending(d);
    if (d.lifetime !== undefined) this.deps.clock.clearTimer(d.lifetime);
    d.lifetime = undefined;
    if (this.dialogs.get(d.key) === d) this.dialogs.delete(d.key);
    if (this.early.get(d.earlyKey) === d) this.early.delete(d.earlyKey);
    this.stats.dialogs = this.dialogs.size;
    this.deps.onEnded?.(d, why, bye);
  }

  /** Forget every dialog without a word to the clients (shutdown). */
  close(): void {
    for (const d of [...this.dialogs.values()]) this.end(d, 'shutdown', false);
  }

  // ---------------------------------------------------------------------------------------------

  /** A dialog handed out by this table, as the table holds it. */
  private held(dialog: UasDialog<C>): HeldDialog<C> {
    return dialog as HeldDialog<C>;
  }

  private retransmit2xx(d: HeldDialog<C>, p: Pending2xx): void {
    if (d.pending !== p) return;
    p.route.link.send(p.data, p.route.address, p.route.port);
    p.interval = Math.min(2 * p.interval, this.deps.timers.t2);
    p.retransmit = this.deps.clock.setTimer(p.interval, () => this.retransmit2xx(d, p));
  }

  /** Stop a pending 2xx's timers; its budget slot is given back too unless `release` is false. */
  private clearPending(d: HeldDialog<C>, release = true): void {
    const p = d.pending;
    if (p === undefined) return;
    if (p.retransmit !== undefined) this.deps.clock.clearTimer(p.retransmit);
    this.deps.clock.clearTimer(p.giveUp);
    d.pending = undefined;
    if (release) this.releaseBudget(p);
  }

  private releaseBudget(p: Pending2xx): void {
    if (!p.budgeted) return;
    const n = (this.unackedBySource.get(p.route.address) ?? 1) - 1;
    if (n > 0) this.unackedBySource.set(p.route.address, n);
    else this.unackedBySource.delete(p.route.address);
  }
}

function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\u0000${localTag}\u0000${remoteTag}`;
}

function earlyKey(callId: string, remoteTag: string): string {
  return `${callId}\u0000${remoteTag}`;
}
