// Lookup mode: pchat-endpoint plays the legacy Group Chat Lookup service (docs/protocol/xccos.md),
// as a UAS on the dialog layer (src/dialog/): INVITE → 200 OK with an SDP answer, in-dialog INFO,
// UPDATE, re-INVITE and BYE, RFC 4028 session timers, and the XCCOS exchange itself: the client's
// cmd:requri INFO gets 200, then a separate INFO from us carries rpl:requri with a URI handed out
// round-robin. What each request gets is decided in decisions.ts; this file carries it out.

import type { Logger } from 'pino';
import type { Endpoint } from '../../endpoints/endpoint.js';
import type { DecisionFields } from '../../base/log.js';
import type { SipRequest } from '../../sip/message.js';
import type { Clock, TimerValues } from '../../base/clock.js';
import type { ClientTransactionTable } from '../../transaction/client-transaction-table.js';
import { hostPort } from '../../sip/host-port.js';
import type { Source } from '../../transport/types.js';
import { buildResponse, stampedTopVia } from '../../sip/response.js';
import type { TagFactory } from '../../dialog/tags.js';
import {
  localAddress,
  localContact,
  recordRouteLines,
  type DialogRequest,
  type UasDialog,
} from '../../dialog/uas-dialog.js';
import { UasDialogTable, type DialogStats } from '../../dialog/uas-dialog-table.js';
import { HandoutPicker, type ProbeStates } from './handout.js';
import { sdpAnswer } from './sdp.js';
import { sessionTimerHeaders, type SessionTimerAnswer } from './session-timer.js';
import { decideInfo, decideInvite, decideSession, dialogLifetime, type Refusal } from './decisions.js';

export type { Responder } from '../../dialog/uas-dialog.js';

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

/**
 * A request handed over by the router: the message, where it came from, its top Via, what answers
 * it (an initial INVITE comes without a server transaction) and when it arrived (performance.now()).
 */
export interface LookupInbound extends DialogRequest {
  readonly t0: number;
}

/** Why the router answers a lookup INVITE 403 or 503 itself (see LookupService.admit). */
export interface LookupRefusal {
  readonly status: 403 | 503;
  readonly outcome: 'lookup-full' | 'lookup-source-budget' | 'lookup-other-flow';
  readonly extra?: string;
}

export interface LookupStats extends DialogStats {
  handouts: number;
  /** INFO bodies refused (400, 413, 415) and XCCOS commands we do not serve. */
  xccosRefused: number;
}

/** What a lookup keeps with each dialog. */
interface LookupContext {
  readonly endpoint: Endpoint;
  session: SessionTimerAnswer;
  /** Our XCCOS envelope ids: random start, one up per envelope, as clients do (xccos.md §3). */
  envid: number;
}

type LookupDialog = UasDialog<LookupContext>;

/** The methods a lookup dialog serves (the 405 outside one, and every answer in one). */
export const LOOKUP_ALLOW = 'Allow: INVITE, ACK, BYE, INFO, OPTIONS, UPDATE\r\n';

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
  private readonly dialogs: UasDialogTable<LookupContext>;
  private readonly picker: HandoutPicker;

  constructor(private readonly deps: LookupDeps) {
    this.clientTxns = deps.clientTxns;
    this.picker = new HandoutPicker(deps.probes);
    this.dialogs = new UasDialogTable({
      clientTxns: deps.clientTxns,
      clock: deps.clock,
      timers: deps.timers,
      tags: deps.tags,
      logger: deps.logger,
      userAgent: deps.serverHeader,
      limits: deps.settings,
      stats: this.stats,
      onEnded: (d, why, bye) =>
        deps.logger.debug(
          { callId: d.callId, endpoint: d.context.endpoint.sipAddress, why, bye },
          'lookup dialog ended',
        ),
    });
  }

  /** Dialogs held (for tests and metrics). */
  get size(): number {
    return this.dialogs.size;
  }

  /**
   * RFC 3261 §12.2.2: does this request belong to a lookup dialog: 'flow' when it came on the
   * dialog's flow, 'other-flow' when it names one but comes from elsewhere (refused), undefined when
   * it is not ours (see UasDialogTable.owns).
   */
  owns(req: SipRequest, source: Source): 'flow' | 'other-flow' | undefined {
    return this.dialogs.owns(req, source);
  }

  /**
   * Before a new INVITE is handed over: a refusal when it must get a 403 or 503 without touching
   * anything, because lookup.maxDialogs are held, its source has lookup.maxUnackedPerSource un-ACKed
   * 200s retransmitted towards it, or it repeats a pending INVITE from another flow (see
   * UasDialogTable.admit).
   */
  admit(req: SipRequest, source: Source): LookupRefusal | undefined {
    const refused = this.dialogs.admit(req, source);
    switch (refused?.why) {
      case undefined:
        return undefined;
      case 'other-flow':
        return { status: 403, outcome: 'lookup-other-flow' };
      case 'full':
        return { status: 503, outcome: 'lookup-full', extra: 'Retry-After: 30\r\n' };
      case 'source-budget':
        // Back when the pending 200s have been ACKed or given up on (64*T1).
        return {
          status: 503,
          outcome: 'lookup-source-budget',
          extra: `Retry-After: ${refused.retryAfter}\r\n`,
        };
    }
  }

  /** A new INVITE for a lookup endpoint that admit() let through; answered at once, statelessly. */
  invite(inb: LookupInbound, endpoint: Endpoint): void {
    if (this.dialogs.answerRetransmission(inb)) return;
    const decided = decideInvite(inb.req, this.deps.settings.sessionExpires);
    if (decided.kind === 'refuse') {
      this.refuse(inb, decided, endpoint);
      return;
    }
    const d = this.dialogs.create(inb, {
      endpoint,
      session: decided.session,
      envid: Math.floor(Math.random() * 0x7fff_ffff),
    });
    if (d === undefined) {
      this.reply(inb, 400, 'rejected', { reason: 'Bad Contact or Record-Route', endpoint, level: 'warn' });
      return;
    }
    this.answerInvite(d, inb, recordRouteLines(inb.req));
    this.armLifetime(d);
    this.record('info', inb, endpoint, 200, 'lookup-dialog');
  }

  /** An in-dialog request (owns() said 'flow'), with its server transaction. */
  inDialog(inb: LookupInbound): void {
    const m = this.dialogs.match(inb);
    switch (m.kind) {
      case 'answered':
        return;
      case 'no-dialog':
        this.reply(inb, 481, 'no-dialog', {});
        return;
      case 'out-of-order':
        this.reply(inb, 500, 'out-of-order', {
          reason: 'CSeq Out Of Order',
          endpoint: m.dialog.context.endpoint,
          level: 'warn',
        });
        return;
      case 'in-order':
    }
    const d = m.dialog;
    const endpoint = d.context.endpoint;
    this.armLifetime(d);
    switch (inb.req.method) {
      case 'INFO':
        this.info(d, inb);
        return;
      case 'BYE':
        // RFC 3261 §15.1.2: the UAS "MUST generate a 2xx response to the BYE" and end the session.
        this.reply(inb, 200, 'lookup-bye', { endpoint });
        this.dialogs.end(d, 'bye', false);
        return;
      case 'UPDATE':
      case 'INVITE':
        this.refresh(d, inb);
        return;
      case 'OPTIONS':
        this.reply(inb, 200, 'options', { extra: LOOKUP_ALLOW, endpoint });
        return;
      default:
        // RFC 3261 §8.2.1: a method we do not serve in this dialog gets 405 with Allow.
        this.reply(inb, 405, 'lookup-method', {
          reason: 'Method Not Allowed',
          extra: LOOKUP_ALLOW,
          endpoint,
        });
    }
  }

  /**
   * An ACK that matched no server transaction: the ACK of one of our 2xx (RFC 3261 §13.3.1.4 stops
   * the retransmissions). True when it was for one of our dialogs.
   */
  ack(req: SipRequest, source: Source): boolean {
    return this.dialogs.ack(req, source);
  }

  /** Forget every dialog without a word to the clients (shutdown). */
  close(): void {
    this.dialogs.close();
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
    this.dialogs.send2xx(d, inb, data);
  }

  /** Contact, Allow, Supported and Session-Expires of our 2xx to INVITE and UPDATE. */
  private dialogHeaders(d: LookupDialog, source: Source): string {
    return (
      localContact(source) + LOOKUP_ALLOW + 'Supported: timer\r\n' + sessionTimerHeaders(d.context.session)
    );
  }

  /** (Re)arm the timer that ends a dialog left alone: idle, or past its session interval. */
  private armLifetime(d: LookupDialog): void {
    const life = dialogLifetime(d.context.session, this.deps.settings.idleTimeoutMs);
    this.dialogs.setLifetime(d, life.ms, life.why);
  }

  /** A session refresh (RFC 4028 §9 and §10): UPDATE or re-INVITE, answered with the new interval. */
  private refresh(d: LookupDialog, inb: LookupInbound): void {
    const { req } = inb;
    const decided = decideSession(req, this.deps.settings.sessionExpires);
    if (decided.kind === 'refuse') {
      this.refuse(inb, decided, d.context.endpoint);
      return;
    }
    d.context.session = decided.session;
    this.dialogs.refreshTarget(d, req);
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
    this.record('info', inb, d.context.endpoint, 200, 'lookup-refresh');
  }

  /** An INFO: 200 (or why not), then our INFO with the XCCOS reply (xccos.md §3). */
  private info(d: LookupDialog, inb: LookupInbound): void {
    const ctx = d.context;
    const endpoint = ctx.endpoint;
    const decided = decideInfo(
      inb.req,
      this.deps.settings.maxBodyBytes,
      String(ctx.envid % 0x7fff_ffff),
      () => this.picker.pick(endpoint),
    );
    switch (decided.kind) {
      case 'keep-alive':
        // An INFO without a body (a keep-alive) is simply accepted.
        this.reply(inb, 200, 'lookup-info', { endpoint });
        return;
      case 'refuse':
        this.stats.xccosRefused++;
        this.refuse(inb, decided, endpoint);
        return;
      case 'no-command':
        this.reply(inb, 200, 'lookup-info', { endpoint, quiet: true });
        this.record('info', inb, endpoint, 200, 'lookup-info', { reason: 'no XCCOS command' });
        return;
      case 'reply':
    }
    this.reply(inb, 200, 'lookup-info', { endpoint, quiet: true });
    ctx.envid++;
    // xccos.md §3: the reply travels in a separate in-dialog INFO from us, after the 200, in
    // text/plain as real servers send it.
    this.dialogs.request(d, 'INFO', { type: 'text/plain', text: decided.body });
    this.stats.xccosRefused += decided.unsupported.length;
    this.stats.handouts += decided.handedOut.length;
    const { level, outcome, target, reason } = decided.line;
    this.record(level, inb, endpoint, 200, outcome, {
      ...(target === undefined ? {} : { target }),
      ...(reason === undefined ? {} : { reason }),
    });
  }

  /** Answer with a refusal decided in decisions.ts, and log it. */
  private refuse(inb: LookupInbound, r: Refusal, endpoint: Endpoint): void {
    this.reply(inb, r.status, r.outcome, {
      reason: r.reason,
      endpoint,
      level: r.level,
      ...(r.extra === undefined ? {} : { extra: r.extra }),
      ...(r.why === undefined ? {} : { why: r.why }),
    });
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
      pool: endpoint?.homedBy === undefined ? undefined : endpoint.poolFqdn,
      homing: endpoint?.homedBy,
      status,
      outcome,
      ...more,
      ...(level === 'warn' ? { peer: hostPort(source.address, source.port) } : {}),
      latencyUs: Math.round((performance.now() - inb.t0) * 1000),
    });
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
