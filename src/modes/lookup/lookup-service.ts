// Lookup mode: pchat-endpoint plays the legacy Group Chat Lookup service (shared/protocol/xccos.md).
// A small UAS dialog layer over the server and client transactions: INVITE → 200 OK with an SDP
// answer, 2xx retransmitted until the ACK (RFC 3261 §13.3.1.4), in-dialog INFO, UPDATE, re-INVITE
// and BYE matched by Call-ID and tags, RFC 4028 session timers, and the XCCOS exchange itself: the
// client's cmd:requri INFO gets 200, then a separate INFO from us carries rpl:requri with a URI
// handed out round-robin. Dialogs nobody ACKs or closes are ended with BYE and freed.

import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Endpoint } from '../../endpoints/endpoint.js';
import type { DecisionFields } from '../../base/log.js';
import { EMPTY_BODY, field, flatCopy, SipRequest, type HeaderField } from '../../sip/message.js';
import { parseNameAddr } from '../../sip/name-addr.js';
import { splitHeaderValues } from '../../sip/header-values.js';
import { newBranch } from '../../transaction/branch.js';
import type { Clock, TimerHandle, TimerValues } from '../../base/clock.js';
import type { ClientTransactionTable } from '../../transaction/client-transaction-table.js';
import type { ResponseRoute } from '../../transaction/server-transaction.js';
import { hostPort } from '../../transport/outbound.js';
import type { Link, Source } from '../../transport/types.js';
import type { Inbound } from '../proxy/proxy.js';
import { buildResponse, responsePort, stampedTopVia } from '../../sip/response.js';
import type { TagFactory } from '../../dialog/tags.js';
import { HandoutPicker, type ProbeStates } from './handout.js';
import { sdpAnswer } from './sdp.js';
import {
  answerSessionTimer,
  MIN_SE,
  readSessionTimer,
  sessionDeadlineMs,
  sessionTimerHeaders,
  SessionTimerSyntaxError,
  type SessionTimerAnswer,
} from './session-timer.js';
import {
  buildXccosReply,
  isRequri,
  parseXccos,
  SUCCESS,
  UNSUPPORTED,
  XccosError,
  type XccosEnvelope,
  type XccosReply,
} from './xccos.js';

export interface LookupSettings {
  /**
   * Session-Expires (seconds) put in every Lookup 200: the channel session's. sipe arms the refresh
   * of its chat dialog only from this value (xccos.md §4); 0 sends none unless the client asks.
   * RFC 4028 §4 recommends 1800.
   */
  readonly sessionExpires: number;
  /** A dialog with no request from the client for this long is ended with BYE. */
  readonly idleTimeoutMs: number;
  /** Live dialogs at most; an INVITE beyond that gets 503 with Retry-After. */
  readonly maxDialogs: number;
  /** Largest INFO body read; a real cmd:requri envelope is about 120 bytes. */
  readonly maxBodyBytes: number;
  /**
   * Un-ACKed 200s over UDP one source address may have at once, each retransmitted until its ACK
   * (RFC 3261 §13.3.1.4). A new INVITE from an address at the budget gets one stateless 503: a
   * spoofed source cannot turn one INVITE after another into retransmissions towards its victim.
   */
  readonly maxUnackedPerSource: number;
}

export interface LookupDeps {
  readonly clientTxns: ClientTransactionTable;
  /** What health probing knows of pool members; URIs it knows to be down are not handed out. */
  readonly probes?: ProbeStates | undefined;
  readonly settings: LookupSettings;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly logger: Logger;
  readonly serverHeader: string;
  readonly tags: TagFactory;
  readonly record: (level: 'info' | 'warn', fields: DecisionFields) => void;
}

/** Whatever sends our answer to a request: a server transaction, or a stateless send. */
export interface Responder {
  respond(status: number, data: Buffer | string): void;
}

/** A request handed over by the router; an initial INVITE comes without a server transaction. */
export type LookupInbound = Omit<Inbound, 'txn'> & { readonly txn: Responder };

/** Why the router answers a lookup INVITE 503 itself (see LookupService.admit). */
export interface LookupRefusal {
  readonly status: 403 | 503;
  readonly outcome: 'lookup-full' | 'lookup-source-budget' | 'lookup-other-flow';
  readonly extra?: string;
}

export interface LookupStats {
  /** Dialogs held now. */
  dialogs: number;
  dialogsCreated: number;
  handouts: number;
  /** INFO bodies refused (400, 413, 415) and XCCOS commands we do not serve. */
  xccosRefused: number;
  /** Dialogs ended by us: never ACKed, idle, or past their session interval. */
  expired: number;
  byesSent: number;
  /** In-dialog requests (ACK included) refused because they came on another flow than the dialog. */
  otherFlow: number;
  /** INVITEs refused because their source had maxUnackedPerSource un-ACKed 200s already. */
  overSourceBudget: number;
}

const ALLOW = 'Allow: INVITE, ACK, BYE, INFO, OPTIONS, UPDATE\r\n';
/** Media types an XCCOS body may come in: clients send text/plain (xccos.md §3). */
const XCCOS_TYPES = new Set(['text/plain', 'application/xml', 'text/xml']);
const ACCEPT_XCCOS = 'Accept: text/plain, application/xml, text/xml\r\n';

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

/** RFC 3261 §12.1.1: the UAS's dialog state, plus where the client is and what we still owe it. */
interface LookupDialog {
  readonly key: string;
  readonly earlyKey: string;
  readonly callId: string;
  readonly localTag: string;
  /** Our From: the INVITE's To value (the lookup URI) with our tag. */
  readonly localParty: string;
  /** Our To: the INVITE's From value, tag and epid included. */
  readonly remoteParty: string;
  readonly endpoint: Endpoint;
  remoteTarget: string;
  readonly routeSet: readonly string[];
  remoteCseq: number;
  localCseq: number;
  /** Where the client's latest request came from: our requests go back there. */
  source: Source;
  confirmed: boolean;
  ended: boolean;
  session: SessionTimerAnswer;
  pending: Pending2xx | undefined;
  lifetime: TimerHandle | undefined;
  /** Our XCCOS envelope ids: random start, one up per envelope, as clients do (xccos.md §3). */
  envid: number;
}

export class LookupService {
  readonly stats: LookupStats = {
    dialogs: 0,
    dialogsCreated: 0,
    handouts: 0,
    xccosRefused: 0,
    expired: 0,
    byesSent: 0,
    otherFlow: 0,
    overSourceBudget: 0,
  };
  readonly clientTxns: ClientTransactionTable;
  private readonly dialogs = new Map<string, LookupDialog>();
  /** Dialogs whose INVITE is not yet ACKed, by Call-ID and the client's tag: INVITE retransmissions. */
  private readonly early = new Map<string, LookupDialog>();
  /** Un-ACKed 200s retransmitted over UDP, by the address they go to (maxUnackedPerSource). */
  private readonly unackedBySource = new Map<string, number>();
  private readonly picker: HandoutPicker;

  constructor(private readonly deps: LookupDeps) {
    this.clientTxns = deps.clientTxns;
    this.picker = new HandoutPicker(deps.probes);
  }

  /** Dialogs held (for tests and metrics). */
  get size(): number {
    return this.dialogs.size;
  }

  /**
   * RFC 3261 §12.2.2: does this request (To tag = ours, From tag = the client's) belong to a dialog
   * of ours: 'flow' when it came on the flow the dialog did (the same connection over tcp, tls and
   * ws; the same address and port over UDP), 'other-flow' when it names a dialog of ours but comes
   * from elsewhere (refused: tags are seen by whoever is on the path, so they are no proof),
   * undefined when it is not ours.
   */
  owns(req: SipRequest, source: Source): 'flow' | 'other-flow' | undefined {
    if (this.dialogs.size === 0) return undefined;
    let d: LookupDialog | undefined;
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
   * Before a new INVITE is handed over: a refusal when it must get a 503 without touching anything,
   * because lookup.maxDialogs are held or its source has lookup.maxUnackedPerSource un-ACKed 200s
   * retransmitted towards it. A retransmission of an INVITE whose 200 is pending is admitted from
   * the dialog's own flow (it gets that 200 again, and makes nothing new), refused from any other:
   * the stored 200 must not be sent wherever a copy of the INVITE claims to come from.
   */
  admit(req: SipRequest, source: Source): LookupRefusal | undefined {
    const early = this.early.get(earlyKey(req.callId ?? '', req.fromTag ?? ''));
    if (early?.pending !== undefined && early.pending.cseq === req.cseq.seq) {
      if (sameFlow(early.source, source)) return undefined;
      this.stats.otherFlow++;
      return { status: 403, outcome: 'lookup-other-flow' };
    }
    if (this.dialogs.size >= this.deps.settings.maxDialogs)
      return { status: 503, outcome: 'lookup-full', extra: 'Retry-After: 30\r\n' };
    if (
      !source.link.reliable &&
      (this.unackedBySource.get(source.address) ?? 0) >= this.deps.settings.maxUnackedPerSource
    ) {
      this.stats.overSourceBudget++;
      // Back when the pending 200s have been ACKed or given up on (64*T1).
      const retryAfter = Math.ceil((64 * this.deps.timers.t1) / 1000);
      return { status: 503, outcome: 'lookup-source-budget', extra: `Retry-After: ${retryAfter}\r\n` };
    }
    return undefined;
  }

  /** A new INVITE for a lookup endpoint that admit() let through; answered at once, statelessly. */
  invite(inb: LookupInbound, endpoint: Endpoint): void {
    const { req } = inb;
    const fromTag = req.fromTag ?? '';
    const early = this.early.get(earlyKey(req.callId ?? '', fromTag));
    if (early?.pending !== undefined && early.pending.cseq === req.cseq.seq) {
      // RFC 3261 §13.3.1.4: the INVITE retransmitted after our 2xx ended its transaction; the 2xx is
      // ours to send again.
      inb.txn.respond(200, early.pending.data);
      return;
    }
    const type = mediaType(req.header('content-type'));
    if (req.body.length > 0 && type !== 'application/sdp') {
      // RFC 3261 §21.4.13: 415 lists the acceptable formats in Accept.
      this.reply(inb, 415, 'lookup-bad-offer', {
        reason: 'Unsupported Media Type',
        extra: 'Accept: application/sdp\r\n',
        endpoint,
        level: 'warn',
      });
      return;
    }
    let session: SessionTimerAnswer;
    try {
      session = answerSessionTimer(readSessionTimer(req), this.deps.settings.sessionExpires);
    } catch (err) {
      if (!(err instanceof SessionTimerSyntaxError)) throw err;
      this.reply(inb, 400, 'lookup-bad-timer', { reason: err.message, endpoint, level: 'warn' });
      return;
    }
    if (session.kind === 'reject') {
      this.reply(inb, 422, 'lookup-interval-too-small', {
        reason: 'Session Interval Too Small',
        extra: `Min-SE: ${session.minSE}\r\n`,
        endpoint,
      });
      return;
    }
    let remoteTarget: string;
    let routeSet: string[];
    try {
      // RFC 3261 §12.1.1: "The remote target MUST be set to the URI from the Contact header field of
      // the request" and "The route set MUST be set to the list of URIs in the Record-Route header
      // field from the request, taken in order". Without a Contact, the From URI is the best we have.
      const contact = req.header('contact');
      remoteTarget = parseNameAddr(
        contact === undefined ? (req.header('from') ?? '') : (splitHeaderValues(contact)[0] ?? ''),
      ).uri;
      routeSet = [];
      for (const line of req.headerLines('record-route'))
        for (const v of splitHeaderValues(line)) routeSet.push(flatCopy(v));
    } catch {
      this.reply(inb, 400, 'rejected', { reason: 'Bad Contact or Record-Route', endpoint, level: 'warn' });
      return;
    }
    const localTag = this.deps.tags.next();
    const callId = flatCopy(req.callId ?? '');
    const d: LookupDialog = {
      key: dialogKey(callId, localTag, fromTag),
      earlyKey: earlyKey(callId, fromTag),
      callId,
      localTag,
      localParty: `${flatCopy(req.header('to') ?? '')};tag=${localTag}`,
      remoteParty: flatCopy(req.header('from') ?? ''),
      endpoint,
      remoteTarget: flatCopy(remoteTarget),
      routeSet,
      remoteCseq: req.cseq.seq,
      localCseq: 0,
      source: inb.source,
      confirmed: false,
      ended: false,
      session,
      pending: undefined,
      lifetime: undefined,
      envid: Math.floor(Math.random() * 0x7fff_ffff),
    };
    this.dialogs.set(d.key, d);
    this.early.set(d.earlyKey, d);
    this.stats.dialogs = this.dialogs.size;
    this.stats.dialogsCreated++;
    // RFC 3261 §12.1.1: "the UAS MUST copy all Record-Route header field values from the request into
    // the response (including the URIs, URI parameters, and any Record-Route header field parameters,
    // whether they are known or unknown to the UAS) and MUST maintain the order of those values."
    let extra = '';
    for (const line of req.headerLines('record-route')) extra += `Record-Route: ${line}\r\n`;
    this.answerInvite(d, inb, extra);
    this.armLifetime(d);
    this.record('info', inb, d.endpoint, 200, 'lookup-dialog');
  }

  /** An in-dialog request (owns() said 'flow'), with its server transaction. */
  inDialog(inb: LookupInbound): void {
    const { req } = inb;
    const d = this.dialogs.get(dialogKey(req.callId ?? '', req.toTag ?? '', req.fromTag ?? ''));
    if (d === undefined || d.ended) {
      this.reply(inb, 481, 'no-dialog', {});
      return;
    }
    const seq = req.cseq.seq;
    if (req.method === 'INVITE' && d.pending?.cseq === seq) {
      // A re-INVITE retransmitted after our 2xx (RFC 3261 §13.3.1.4), as for the initial INVITE.
      inb.txn.respond(200, d.pending.data);
      return;
    }
    // RFC 3261 §12.2.2: "If the remote sequence number was not empty, but the sequence number of the
    // request is lower than the remote sequence number, the request is out of order and MUST be
    // rejected with a 500 (Server Internal Error) response."
    if (seq < d.remoteCseq) {
      this.reply(inb, 500, 'out-of-order', {
        reason: 'CSeq Out Of Order',
        endpoint: d.endpoint,
        level: 'warn',
      });
      return;
    }
    d.remoteCseq = seq;
    d.source = inb.source;
    this.armLifetime(d);
    switch (req.method) {
      case 'INFO':
        this.info(d, inb);
        return;
      case 'BYE':
        // RFC 3261 §15.1.2: the UAS "MUST generate a 2xx response to the BYE" and end the session.
        this.reply(inb, 200, 'lookup-bye', { endpoint: d.endpoint });
        this.end(d, 'bye', false);
        return;
      case 'UPDATE':
      case 'INVITE':
        this.refresh(d, inb);
        return;
      case 'OPTIONS':
        this.reply(inb, 200, 'options', { extra: ALLOW, endpoint: d.endpoint });
        return;
      default:
        // RFC 3261 §8.2.1: a method we do not serve in this dialog gets 405 with Allow.
        this.reply(inb, 405, 'lookup-method', {
          reason: 'Method Not Allowed',
          extra: ALLOW,
          endpoint: d.endpoint,
        });
    }
  }

  /**
   * An ACK that matched no server transaction: the ACK of one of our 2xx (RFC 3261 §13.3.1.4 stops
   * the retransmissions). True when it was for one of our dialogs.
   */
  ack(req: SipRequest, source: Source): boolean {
    let d: LookupDialog | undefined;
    try {
      const local = req.toTag;
      if (local === undefined || this.dialogs.size === 0) return false;
      d = this.dialogs.get(dialogKey(req.callId ?? '', local, req.fromTag ?? ''));
      if (d === undefined) return false;
      if (!sameFlow(d.source, source)) {
        // Ours, but not from the dialog's flow: dropped, and the 200 goes on being retransmitted.
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

  /** Forget every dialog without a word to the clients (shutdown). */
  close(): void {
    for (const d of [...this.dialogs.values()]) this.end(d, 'shutdown', false);
  }

  // ---------------------------------------------------------------------------------------------

  /** The 2xx for an INVITE (initial or re-INVITE): SDP answer, Contact, session timer, retransmitted. */
  private answerInvite(d: LookupDialog, inb: LookupInbound, extra: string): void {
    const { req, source } = inb;
    const local = localAddress(source);
    const offer = req.body.length > 0 ? req.body.toString('latin1') : undefined;
    const sdp = Buffer.from(sdpAnswer(offer, local.address, local.port), 'latin1');
    const data = withBody(
      buildResponse(req, {
        status: 200,
        extra: extra + this.dialogHeaders(d, source),
        toTag: d.localTag,
        topVia: stampedTopVia(inb.via, source),
        server: this.deps.serverHeader,
      }),
      'application/sdp',
      sdp,
    );
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
        this.deps.logger.info(
          { callId: d.callId, endpoint: d.endpoint.sipAddress },
          'lookup 2xx never ACKed',
        );
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

  private retransmit2xx(d: LookupDialog, p: Pending2xx): void {
    if (d.pending !== p) return;
    p.route.link.send(p.data, p.route.address, p.route.port);
    p.interval = Math.min(2 * p.interval, this.deps.timers.t2);
    p.retransmit = this.deps.clock.setTimer(p.interval, () => this.retransmit2xx(d, p));
  }

  /** Stop a pending 2xx's timers; its budget slot is given back too unless `release` is false. */
  private clearPending(d: LookupDialog, release = true): void {
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

  /** Contact, Allow, Supported and Session-Expires of our 2xx to INVITE and UPDATE. */
  private dialogHeaders(d: LookupDialog, source: Source): string {
    const local = localAddress(source);
    const transport = source.link.transport === 'udp' ? '' : `;transport=${source.link.transport}`;
    // RFC 3261 §12.1.1: "the UAS MUST add a Contact header field to the response" naming where we
    // take this dialog's requests: the listener the client reached.
    return (
      `Contact: <sip:${hostPort(local.address, local.port)}${transport}>\r\n` +
      ALLOW +
      'Supported: timer\r\n' +
      sessionTimerHeaders(d.session)
    );
  }

  /** A session refresh (RFC 4028 §9 and §10): UPDATE or re-INVITE, answered with the new interval. */
  private refresh(d: LookupDialog, inb: LookupInbound): void {
    const { req } = inb;
    try {
      d.session = answerSessionTimer(readSessionTimer(req), this.deps.settings.sessionExpires);
    } catch (err) {
      if (!(err instanceof SessionTimerSyntaxError)) throw err;
      this.reply(inb, 400, 'lookup-bad-timer', { reason: err.message, endpoint: d.endpoint, level: 'warn' });
      return;
    }
    if (d.session.kind === 'reject') {
      this.reply(inb, 422, 'lookup-interval-too-small', {
        reason: 'Session Interval Too Small',
        extra: `Min-SE: ${MIN_SE}\r\n`,
        endpoint: d.endpoint,
      });
      return;
    }
    const contact = req.header('contact');
    if (contact !== undefined) {
      // RFC 3261 §12.2.2: a target refresh request replaces the remote target with its Contact.
      try {
        d.remoteTarget = flatCopy(parseNameAddr(splitHeaderValues(contact)[0] ?? '').uri);
      } catch {
        // A bad Contact on a refresh leaves the old target; the refresh itself still counts.
      }
    }
    this.armLifetime(d);
    if (req.method === 'INVITE') this.answerInvite(d, inb, '');
    else {
      inb.txn.respond(
        200,
        buildResponse(req, {
          status: 200,
          extra: this.dialogHeaders(d, inb.source),
          topVia: stampedTopVia(inb.via, inb.source),
          server: this.deps.serverHeader,
        }),
      );
    }
    this.record('info', inb, d.endpoint, 200, 'lookup-refresh');
  }

  /** An INFO: 200 (or why not), then our INFO with the XCCOS reply (xccos.md §3). */
  private info(d: LookupDialog, inb: LookupInbound): void {
    const { req } = inb;
    const endpoint = d.endpoint;
    if (req.body.length === 0) {
      // An INFO without a body (a keep-alive) is simply accepted.
      this.reply(inb, 200, 'lookup-info', { endpoint });
      return;
    }
    const refuse = (status: number, reason: string, why: string, extra?: string): void => {
      this.stats.xccosRefused++;
      this.reply(inb, status, 'xccos-refused', {
        reason,
        why,
        endpoint,
        level: 'warn',
        ...(extra === undefined ? {} : { extra }),
      });
    };
    if (req.body.length > this.deps.settings.maxBodyBytes) {
      // RFC 3261 §21.4.11: 413 Request Entity Too Large.
      refuse(413, 'Request Entity Too Large', `body of ${req.body.length} bytes`);
      return;
    }
    const encoding = req.header('content-encoding')?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      refuse(415, 'Unsupported Media Type', `Content-Encoding ${encoding}`, 'Accept-Encoding: identity\r\n');
      return;
    }
    const typeHeader = req.header('content-type');
    // RFC 3261 §20.15: "The Content-Type header field MUST be present if the body is not empty."
    if (typeHeader === undefined) {
      refuse(400, 'Missing Content-Type', 'body without Content-Type');
      return;
    }
    const type = mediaType(typeHeader);
    if (type === undefined || !XCCOS_TYPES.has(type)) {
      refuse(415, 'Unsupported Media Type', `Content-Type ${typeHeader}`, ACCEPT_XCCOS);
      return;
    }
    let envelope: XccosEnvelope;
    try {
      envelope = parseXccos(req.body);
    } catch (err) {
      if (!(err instanceof XccosError)) throw err;
      refuse(400, `Bad XCCOS: ${err.message}`.slice(0, 120), `${err.code}: ${err.message}`);
      return;
    }
    this.reply(inb, 200, 'lookup-info', { endpoint, quiet: true });
    if (envelope.commands.length === 0) {
      this.record('info', inb, endpoint, 200, 'lookup-info', { reason: 'no XCCOS command' });
      return;
    }
    const replies: XccosReply[] = [];
    const handedOut: string[] = [];
    const unsupported: string[] = [];
    let allDown = false;
    for (const command of envelope.commands) {
      if (isRequri(command)) {
        const h = this.picker.pick(endpoint);
        allDown ||= h.allDown;
        handedOut.push(h.uri);
        replies.push({ command, result: SUCCESS, uri: h.uri });
      } else {
        unsupported.push(command.id);
        replies.push({ command, result: UNSUPPORTED });
      }
    }
    // xccos.md §3: the reply travels in a separate in-dialog INFO from us, after the 200.
    const body = buildXccosReply(String(d.envid++ % 0x7fff_ffff), envelope.envid, replies);
    this.sendRequest(d, 'INFO', body);
    // One decision line for the INFO: the hand-out when there was one, else the refused command.
    const refusedText =
      unsupported.length === 0
        ? undefined
        : `unsupported XCCOS command ${unsupported.join(' ')}`.slice(0, 200);
    this.stats.xccosRefused += unsupported.length;
    if (handedOut.length > 0) {
      this.stats.handouts += handedOut.length;
      const reason = allDown ? 'every lookup URI probed down; handed out anyway' : refusedText;
      this.record(
        allDown || refusedText !== undefined ? 'warn' : 'info',
        inb,
        endpoint,
        200,
        'lookup-handout',
        {
          target: handedOut.join(' '),
          ...(reason === undefined ? {} : { reason }),
        },
      );
    } else {
      this.record('warn', inb, endpoint, 200, 'xccos-unsupported', { reason: refusedText ?? '' });
    }
  }

  /** Send INFO or BYE to the client in the dialog (RFC 3261 §12.2.1.1), over its own connection. */
  /** `done` is called once the request's transaction has its final answer, timed out or failed. */
  private sendRequest(d: LookupDialog, method: 'INFO' | 'BYE', body?: string, done?: () => void): void {
    const source = d.source;
    const link = source.link;
    const local = localAddress(source);
    const via = `SIP/2.0/${link.transport.toUpperCase()} ${hostPort(local.address, local.port)};branch=${newBranch()};rport`;
    // RFC 3261 §12.2.1.1: the Request-URI is the remote target, Route the route set; a strict router
    // first in the set (no lr) takes the Request-URI and the remote target goes last.
    let uri = d.remoteTarget;
    let routes = d.routeSet;
    const first = routes[0];
    if (first !== undefined && !isLooseRoute(first)) {
      uri = uriOf(first) ?? uri;
      routes = [...routes.slice(1), `<${d.remoteTarget}>`];
    }
    d.localCseq++;
    const headers: HeaderField[] = [
      field('via', via),
      field('max-forwards', '70'),
      field('from', d.localParty),
      field('to', d.remoteParty),
      field('call-id', d.callId),
      field('cseq', `${d.localCseq} ${method}`),
    ];
    for (const r of routes) headers.push(field('route', r));
    if (this.deps.serverHeader.length > 0) headers.push(field('user-agent', this.deps.serverHeader));
    // xccos.md §3: text/plain, as real servers send it.
    if (body !== undefined) headers.push(field('content-type', 'text/plain'));
    const request = new SipRequest(
      method,
      uri,
      'SIP/2.0',
      headers,
      body === undefined ? EMPTY_BODY : Buffer.from(body, 'utf8'),
    );
    const callId = d.callId;
    let pending = done;
    const finish = (): void => {
      pending?.();
      pending = undefined;
    };
    const txn = this.deps.clientTxns.createNonInvite({
      request,
      send: (data) => link.send(data, source.address, source.port),
      reliable: link.reliable,
      user: {
        onResponse: (res) => {
          if (res.status < 200) return;
          finish();
          if (method !== 'INFO') return;
          // RFC 3261 §12.2.1.2: "If the response for a request within a dialog is a 481 or a 408, the
          // UAC SHOULD terminate the dialog."
          if (res.status === 481 || res.status === 408) this.end(d, `INFO answered ${res.status}`, false);
          else if (res.status >= 300)
            this.deps.logger.info({ callId, status: res.status }, 'lookup reply INFO refused by the client');
        },
        onTimeout: () => {
          finish();
          this.deps.logger.info({ callId, method }, 'lookup request to the client timed out');
          if (method === 'INFO') this.end(d, 'INFO timed out', false);
        },
        onTransportError: (err) => {
          finish();
          this.deps.logger.info(
            { callId, method, err: err.message },
            'lookup request to the client not sent',
          );
          if (method === 'INFO') this.end(d, 'transport error', false);
        },
      },
    });
    txn.start();
  }

  /** (Re)arm the timer that ends a dialog left alone: idle, or past its session interval. */
  private armLifetime(d: LookupDialog): void {
    if (d.lifetime !== undefined) this.deps.clock.clearTimer(d.lifetime);
    const session = sessionDeadlineMs(d.session);
    const idle = this.deps.settings.idleTimeoutMs;
    const ms = session === undefined ? idle : Math.min(idle, session);
    d.lifetime = this.deps.clock.setTimer(ms, () => {
      d.lifetime = undefined;
      if (d.ended) return;
      this.stats.expired++;
      this.end(d, session !== undefined && session <= idle ? 'session-expired' : 'idle', true);
    });
  }

  /** End a dialog: timers cleared, maps emptied, and a BYE to the client when it did not end it. */
  private end(d: LookupDialog, why: string, bye: boolean, byeDone?: () => void): void {
    if (d.ended) return;
    if (bye) {
      this.stats.byesSent++;
      try {
        this.sendRequest(d, 'BYE', undefined, byeDone);
      } catch (err) {
        this.deps.logger.debug({ callId: d.callId, err: String(err) }, 'lookup BYE not sent');
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
    this.deps.logger.debug(
      { callId: d.callId, endpoint: d.endpoint.sipAddress, why, bye },
      'lookup dialog ended',
    );
  }

  /** Answer a request with a response of our own and log the decision. */
  private reply(
    inb: LookupInbound,
    status: number,
    outcome: string,
    opts: {
      reason?: string;
      extra?: string;
      endpoint?: Endpoint;
      level?: 'info' | 'warn';
      /** Logged as the decision's reason instead of the reason phrase. */
      why?: string;
      /** Answer without logging: a decision line follows. */
      quiet?: boolean;
    },
  ): void {
    inb.txn.respond(
      status,
      buildResponse(inb.req, {
        status,
        ...(opts.reason === undefined ? {} : { reason: opts.reason }),
        ...(opts.extra === undefined ? {} : { extra: opts.extra }),
        // An INVITE refused outside a dialog is answered statelessly: its tag is derived from it,
        // so a retransmission gets the same answer, and its ACK is known by the tag.
        ...(inb.req.toTag === undefined ? { toTag: this.deps.tags.stateless(inb.req) } : {}),
        topVia: stampedTopVia(inb.via, inb.source),
        server: this.deps.serverHeader,
      }),
    );
    if (opts.quiet === true) return;
    const reason = opts.why ?? opts.reason;
    this.record(
      opts.level ?? 'info',
      inb,
      opts.endpoint,
      status,
      outcome,
      reason === undefined ? {} : { reason },
    );
  }

  private record(
    level: 'info' | 'warn',
    inb: LookupInbound,
    endpoint: Endpoint | undefined,
    status: number,
    outcome: string,
    more: { reason?: string; target?: string } = {},
  ): void {
    const { req, source } = inb;
    this.deps.record(level, {
      callId: req.callId,
      branch: inb.via.branch,
      method: req.method,
      ruri: req.uri,
      endpoint: endpoint?.sipAddress,
      mode: 'lookup',
      status,
      outcome,
      ...more,
      ...(level === 'warn' ? { peer: hostPort(source.address, source.port) } : {}),
      latencyUs: Math.round((performance.now() - inb.t0) * 1000),
    });
  }
}

/** The same flow: one connection (a stream's link is its connection), or one address and port. */
function sameFlow(a: Source, b: Source): boolean {
  return a.link === b.link && a.address === b.address && a.port === b.port;
}

function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\u0000${localTag}\u0000${remoteTag}`;
}

function earlyKey(callId: string, remoteTag: string): string {
  return `${callId}\u0000${remoteTag}`;
}

/** The media type of a Content-Type value, lower case, without parameters. */
function mediaType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = (value.split(';')[0] ?? '').trim().toLowerCase();
  return t === '' ? undefined : t;
}

function uriOf(nameAddr: string): string | undefined {
  try {
    return parseNameAddr(nameAddr).uri;
  } catch {
    return undefined;
  }
}

function isLooseRoute(route: string): boolean {
  try {
    return /;\s*lr(?:[;=>\s]|$)/i.test(parseNameAddr(route).uri);
  } catch {
    return true;
  }
}

const EMPTY_BODY_TAIL = Buffer.from('Content-Length: 0\r\n\r\n', 'latin1');

/** Replace the empty body buildResponse writes with `body`. */
function withBody(response: Buffer, type: string, body: Buffer): Buffer {
  const tail = EMPTY_BODY_TAIL;
  if (!response.subarray(response.length - tail.length).equals(tail))
    throw new Error('response does not end with an empty body');
  const head = response.subarray(0, response.length - tail.length);
  return Buffer.concat([
    head,
    Buffer.from(`Content-Type: ${type}\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'),
    body,
  ]);
}

/**
 * The address and port the client reached us on, as our Via, Contact and SDP name it. A socket bound
 * to the wildcard has no address of its own to give: the first non-internal one of the client's
 * family stands in (as Outbound does for the proxy's Via).
 */
function localAddress(source: Source): { address: string; port: number } {
  const link: Link = source.link;
  const a = link.localAddress;
  if (a !== '0.0.0.0' && a !== '::' && a !== '')
    return { address: a.replace(/^::ffff:/, ''), port: link.localPort };
  for (const list of Object.values(networkInterfaces())) {
    for (const n of list ?? []) {
      if (!n.internal && (n.family === 'IPv4' ? 4 : 6) === source.family)
        return { address: n.address, port: link.localPort };
    }
  }
  return { address: source.family === 4 ? '127.0.0.1' : '::1', port: link.localPort };
}
