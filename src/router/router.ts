// The request router: every message received goes through here. It parses and validates, matches
// server transactions (absorbing retransmissions), looks the Request-URI up in the endpoint table,
// runs the checks every mode shares (src/modes/shared-checks.ts) and answers what it can itself
// (404, 483, 416, 420, 400, 513, 200 to OPTIONS for the service itself); the rest goes to the mode
// the endpoint names, through src/modes/mode.ts. It names no mode.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decisionLogger, type DecisionFields } from '../base/log.js';
import { LogThrottle } from '../base/log-throttle.js';
import type { Clock, TimerValues } from '../base/clock.js';
import { TagFactory } from '../dialog/tags.js';
import type { EndpointTable } from '../endpoints/table.js';
import type { Admission } from '../guard/guard.js';
import type { Answer, Handover, Mode, ModeFactory, Responder, ServerTxn } from '../modes/mode.js';
import { buildModes } from '../modes/registry.js';
import { Decider } from '../modes/decider.js';
import type { SipParseError } from '../sip/errors.js';
import type { SipRequest } from '../sip/message.js';
import { parseMessage, type FramedHead, type ParseOptions } from '../sip/parser.js';
import { responsePort, responseText, stampedTopVia } from '../sip/response.js';
import { validateRequest } from '../sip/validate.js';
import { MAGIC_COOKIE, type Via } from '../sip/via.js';
import type { ClientTransactionTable } from '../transaction/client-transaction-table.js';
import { ServerTransactionTable, serverTransactionKey } from '../transaction/server-transaction-table.js';
import { ServerTransactionState } from '../transaction/server-transaction.js';
import { NO_CAPTURE, type CaptureHook } from '../transport/capture.js';
import type { Source } from '../transport/types.js';
import { firstLineInviteKey, toTagStartsWith } from './fast-path.js';

export interface RouterOptions {
  /** The live endpoint table; read once per request so a reload never changes a request midway. */
  readonly table: () => EndpointTable;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly maxMessageSize: number;
  readonly serverHeader: string;
  /** Wall-clock time in ms, for maintenance windows; Date.now unless a test injects one. */
  readonly wallClock?: () => number;
  /**
   * The modes endpoints may name (src/modes/registry.ts buildModes); redirect alone when unset. An
   * endpoint whose mode is not among them gets 501.
   */
  readonly modes?: readonly ModeFactory[] | undefined;
  /** Called once per decision with what was logged (metrics hang off this). */
  readonly onDecision?: (d: DecisionFields) => void;
  /** Flood protection (server.yaml `limits`): parser limits and the cap on transactions held. */
  readonly limits: RouterLimits;
  /** The per-deployment secret (server.yaml `security.secret`, or random per process). */
  readonly secret?: Buffer | undefined;
  /** Whether a source may name its caller in P-Asserted-Identity (homing). */
  readonly trustsIdentity?: (address: string) => boolean;
  /** Told of every message received (HEP), when capture is on. */
  readonly capture?: CaptureHook;
}

export interface RouterLimits {
  readonly maxHeaders: number;
  readonly maxLineLength: number;
  /** Server plus client transactions held at once; a new request over it gets 503. 0: no cap. */
  readonly maxTransactions: number;
  /** Retry-After (s) of the 503 sent over the cap and while draining. */
  readonly retryAfter: number;
}

/** Asked about every message that is not visibly a response, before it is parsed (src/guard). */
export type Admit = (source: Source) => Admission;

/** Counters of what happened to inbound traffic. */
export interface RouterStats {
  requests: number;
  responsesSent: number;
  retransmissionsAbsorbed: number;
  acksAbsorbed: number;
  parseErrors: number;
  dropped: number;
  internalErrors: number;
  /** New requests answered 503 because the transaction cap was reached. */
  overloaded: number;
  /** New requests answered 503 while draining before shutdown. */
  drainRejected: number;
  /** Responses matching no client transaction: dropped, never forwarded (also in `dropped`). */
  strayResponses: number;
  /** Responses from a source the access policy or the rate limit refuses: dropped (also in `dropped`). */
  responsesRefused: number;
  /** Responses whose next Via names the service: dropped as loops (also in `dropped`). */
  responseLoops: number;
}

export class Router {
  readonly transactions: ServerTransactionTable;
  readonly stats: RouterStats = {
    requests: 0,
    responsesSent: 0,
    retransmissionsAbsorbed: 0,
    acksAbsorbed: 0,
    parseErrors: 0,
    dropped: 0,
    internalErrors: 0,
    overloaded: 0,
    drainRejected: 0,
    strayResponses: 0,
    responsesRefused: 0,
    responseLoops: 0,
  };
  /** Set when the service stops: new requests get 503, transactions in flight go on (drain). */
  draining = false;
  // Transactions handed to a mode, until their final response: what a drain
  // waits for. Pruned as it grows, so it holds about what is really in flight.
  private readonly handedOver = new Set<{ readonly state: ServerTransactionState }>();
  private pruneAt = 1024;
  private readonly parseDatagram: ParseOptions;
  private readonly parseStream: ParseOptions;
  private readonly shedLog = new LogThrottle(1000);
  private readonly tags: TagFactory;
  /** ";tag=" and the prefix of our derived tags: what an ACK of a stateless answer carries in To. */
  private readonly statelessTagNeedle: string;
  private readonly log: Logger;
  private readonly logDecision: ReturnType<typeof decisionLogger>;
  /** The modes, in the registry's order (the order their hooks are asked). */
  private readonly modes: readonly Mode[];
  /** The modes that hold dialogs a request may belong to (those with a `claim` hook). */
  private readonly claimers: readonly Mode[];
  /** The distinct client transaction tables of the modes, for responses. */
  private readonly clientTables: readonly ClientTransactionTable[];
  /** What a request gets (src/modes/decider.ts): the same on every engine. */
  readonly decider: Decider;
  private readonly capture: CaptureHook;

  constructor(private readonly opts: RouterOptions) {
    this.capture = opts.capture ?? NO_CAPTURE;
    this.transactions = new ServerTransactionTable(opts.clock, opts.timers);
    this.tags = new TagFactory(opts.secret);
    this.statelessTagNeedle = ';tag=' + this.tags.statelessPrefix;
    this.log = opts.logger;
    this.logDecision = decisionLogger(opts.logger);
    const limits = { maxHeaders: opts.limits.maxHeaders, maxLineLength: opts.limits.maxLineLength };
    this.parseDatagram = { stream: false, ...limits };
    this.parseStream = { stream: true, ...limits };
    const context = {
      logger: opts.logger,
      clock: opts.clock,
      timers: opts.timers,
      serverHeader: opts.serverHeader,
      tags: this.tags,
      secret: opts.secret ?? randomBytes(32),
      record: (level: 'info' | 'warn', fields: DecisionFields) => this.record(level, fields),
      onResponseLoop: () => {
        this.stats.responseLoops++;
        this.stats.dropped++;
      },
    };
    this.modes = (opts.modes ?? buildModes()).map((make) => make(context));
    this.claimers = this.modes.filter((m) => m.claim !== undefined);
    this.decider = new Decider(this.modes, opts.table, opts.wallClock, opts.trustsIdentity);
    const tables = new Set<ClientTransactionTable>();
    for (const m of this.modes) if (m.clientTxns !== undefined) tables.add(m.clientTxns);
    this.clientTables = [...tables];
  }

  /** The mode endpoints name by `name`, when it is configured. */
  mode(name: string): Mode | undefined {
    return this.decider.mode(name);
  }

  /** The service stops: every mode forgets what it holds. */
  close(): void {
    for (const m of this.modes) m.close?.();
  }

  /**
   * Entry point for every message a transport receives. Never throws. `head` is the header section
   * when a stream transport's framing has read it (see MessageHandler). `admit` is the
   * listener's access and flood check; messages on our own outbound connections come without one.
   */
  readonly onMessage = (data: Buffer, source: Source, head?: FramedHead, admit?: Admit): void => {
    try {
      // A response (starting "SIP/") is checked once matched: see the response branch of receive().
      const response = data[0] === 0x53 && data[1] === 0x49 && data[2] === 0x50 && data[3] === 0x2f;
      const admission = admit !== undefined && !response ? admit(source) : 'pass';
      // Captured: a request that arrives, what the access policy then answers 403 included (an
      // operator looking at a capture needs to see it), but not what is dropped unanswered, nor a
      // response before it matched a transaction of ours (receive()): a stranger's flood must not
      // become a larger one to the collector.
      const tap = this.capture.tap;
      if (tap !== undefined && admission !== 'drop' && !response) tap.received(data, source);
      if (admission !== 'pass') {
        if (admission === 'reject') this.forbid(data, source);
        return;
      }
      this.receive(data, source, head, response ? admit : undefined);
    } catch (err) {
      this.stats.internalErrors++;
      this.log.error({ err, peer: `${source.address}:${source.port}` }, 'internal error handling message');
    }
  };

  /** A stream lost its framing: answer what can be answered; the transport closes the connection. */
  readonly onFramingError = (error: SipParseError, head: Buffer | undefined, source: Source): void => {
    try {
      this.stats.parseErrors++;
      const parsed = head === undefined ? undefined : parseMessage(head, this.parseStream);
      const req =
        parsed === undefined
          ? undefined
          : parsed.ok
            ? parsed.message.kind === 'request'
              ? parsed.message
              : undefined
            : parsed.request;
      this.reject(error, req, source, performance.now());
    } catch (err) {
      this.stats.internalErrors++;
      this.log.error({ err }, 'internal error handling framing error');
    }
  };

  private receive(data: Buffer, source: Source, head: FramedHead | undefined, admit?: Admit): void {
    // Half of all requests under load are ACKs for our final responses: absorb those without a full parse.
    if (data[0] === 0x41 && this.absorbAck(data, head?.text)) return;
    const t0 = performance.now();
    const result = parseMessage(data, source.link.reliable ? this.parseStream : this.parseDatagram, head);
    if (!result.ok) {
      this.stats.parseErrors++;
      this.reject(result.error, result.request, source, t0);
      return;
    }
    const msg = result.message;
    if (msg.kind === 'response') {
      let txn;
      for (const table of this.clientTables) if ((txn = table.match(msg)) !== undefined) break;
      if (txn === undefined) {
        // RFC 6026 §7.3: "The proxy MUST NOT forward the response if there is no matching transaction
        // state machine." Counted against its source's rate like a request, so a flood bans it.
        if (admit !== undefined) admit(source);
        this.stats.strayResponses++;
        this.stats.dropped++;
        this.log.debug(
          { peer: `${source.address}:${source.port}`, status: msg.status },
          'stray response dropped',
        );
        return;
      }
      // The answer from where the request went is taken whatever the listener's access policy: a pool
      // member need not be on a client allow list, and its answers are never rate limited away. From
      // anywhere else a response faces the policy and the rate limit as a request does.
      if (admit !== undefined && txn.peer !== source.address && admit(source) !== 'pass') {
        this.stats.responsesRefused++;
        this.stats.dropped++;
        return;
      }
      this.capture.tap?.received(data, source);
      txn.receive(msg);
      return;
    }
    this.stats.requests++;
    if (data.length > this.opts.maxMessageSize) {
      // RFC 3261 §21.5.14: 513 Message Too Large.
      this.reject({ status: 513, reason: 'Message Too Large' }, msg, source, t0);
      return;
    }
    this.request(msg, source, t0, data);
  }

  /** Answer a request that cannot be processed, when a response can be routed; else drop it. */
  private reject(
    error: Pick<SipParseError, 'status' | 'reason'>,
    req: SipRequest | undefined,
    source: Source,
    t0: number,
  ): void {
    let via: Via | undefined;
    try {
      via = req?.topVia;
    } catch {
      via = undefined;
    }
    const peer = `${source.address}:${source.port}`;
    if (req === undefined || via === undefined || req.method === 'ACK') {
      // RFC 3261 §17.2.3 and §18.2.1: without a usable Via (or for an ACK) no response can be sent.
      this.stats.dropped++;
      this.log.warn({ peer, reason: error.reason }, 'malformed message dropped');
      return;
    }
    this.sendStateless(req, via, source, error.status, error.reason);
    this.record('warn', {
      callId: req.callId,
      branch: via.branch,
      method: req.method,
      ruri: req.uri,
      status: error.status,
      outcome: 'rejected',
      reason: error.reason,
      peer,
      latencyUs: Math.round((performance.now() - t0) * 1000),
    });
  }

  /**
   * Answer a request without a transaction (RFC 3261 §8.2.7, Kamailio's `sl`): one datagram out for
   * one in, nothing kept, no Timer G. The To tag is derived from the request, so a retransmission
   * gets the same answer, and the ACK of a non-2xx sent so is known by its tag and dropped.
   */
  private sendStateless(
    req: SipRequest,
    via: Via,
    source: Source,
    status: number,
    reason?: string,
    extra?: string,
  ): void {
    const data = responseText(req, {
      status,
      reason,
      extra,
      toTag: this.tags.stateless(req),
      topVia: stampedTopVia(via, source),
      server: this.opts.serverHeader,
    });
    source.link.send(data, source.address, responsePort(via, source));
    this.stats.responsesSent++;
  }

  /** A decision of our own, answered statelessly, and its log line. */
  private answer(req: SipRequest, via: Via, source: Source, decision: Answer, t0: number): void {
    this.sendStateless(req, via, source, decision.status, decision.reason, decision.extra);
    const warn = decision.warn === true;
    this.record(warn ? 'warn' : 'info', {
      callId: req.callId,
      branch: via.branch,
      method: req.method,
      ruri: req.uri,
      endpoint: decision.endpoint?.sipAddress,
      mode: decision.endpoint?.mode,
      // A homed caller's pool and the rule that chose it (undefined fields are left out of the line).
      pool: decision.endpoint?.homedBy === undefined ? undefined : decision.endpoint.poolFqdn,
      homing: decision.endpoint?.homedBy,
      status: decision.status,
      outcome: decision.outcome,
      ...(warn ? { peer: `${source.address}:${source.port}` } : {}),
      latencyUs: Math.round((performance.now() - t0) * 1000),
    });
  }

  private request(req: SipRequest, source: Source, t0: number, raw: Buffer): void {
    if (req.method === 'ACK') {
      // An ACK is never answered, so it is not validated beyond what matching it needs: one that
      // matches no transaction, malformed or not, is dropped (RFC 3261 §17.2.3).
      this.ack(req, source, raw);
      return;
    }
    const invalid = validateRequest(req);
    if (invalid !== undefined) {
      this.stats.parseErrors++;
      this.reject(invalid, req, source, t0);
      return;
    }
    const via = req.topVia;
    // With no transaction held (a service that only redirects holds none) there is nothing to
    // match, and the key is built only if a transaction is made.
    let key: string | undefined;
    if (this.transactions.size > 0) {
      key = serverTransactionKey(req);
      const existing = this.transactions.get(key);
      if (existing !== undefined) {
        // RFC 3261 §17.2.1/§17.2.2: a retransmission is answered by the transaction, not the TU.
        this.stats.retransmissionsAbsorbed++;
        existing.retransmission();
        return;
      }
    }
    // CANCEL goes on whatever the load when it matches an INVITE (it ends work, RFC 3261 §9.2); it
    // is answered statelessly and keeps no transaction of its own.
    if (req.method === 'CANCEL') {
      this.cancel(req, via, source, t0);
      return;
    }
    if (this.claimers.length > 0 && this.claimed(req, via, source, t0, key)) return;
    // Everything else counts against the cap, BYE included: a BYE no mode claimed has no dialog it
    // could be matched with, and a flood of made-up BYEs must not hold transactions beyond it.
    if (this.shed(req, via, source, t0)) return;
    const decision = this.decider.decide(req, source);
    if (decision.handover === undefined) this.answer(req, via, source, decision, t0);
    else this.carryOut(this.decider.decidedBy!, decision, req, via, source, t0, raw, key);
  }

  /**
   * RFC 3261 §12.2.2: a request in one of a mode's dialogs (Call-ID and tags) is that mode's, before
   * any routing by Request-URI (it is our Contact) or by another mode. True when a mode claimed it.
   */
  private claimed(req: SipRequest, via: Via, source: Source, t0: number, key: string | undefined): boolean {
    for (const mode of this.claimers) {
      const claim = mode.claim!(req, source);
      if (claim === undefined) continue;
      if (claim === 'other-flow') {
        // Only the flow the dialog came on may act in it: our tag is no secret to whoever saw it.
        this.answer(req, via, source, { status: 403, outcome: `${mode.name}-other-flow`, warn: true }, t0);
        return true;
      }
      // Over the cap a BYE still ends its dialog, and frees what the dialog holds.
      if (req.method !== 'BYE' && this.shed(req, via, source, t0)) return true;
      key ??= serverTransactionKey(req);
      mode.inDialog!({ req, source, via, txn: this.newTransaction(req, via, source, key), t0, key });
      return true;
    }
    return false;
  }

  /** A mode takes the request on: with a server transaction made here, or answering at once itself. */
  private carryOut(
    mode: Mode,
    decision: Handover,
    req: SipRequest,
    via: Via,
    source: Source,
    t0: number,
    raw: Buffer,
    key: string | undefined,
  ): void {
    if (decision.handover === 'direct') {
      const port = responsePort(via, source);
      const responder: Responder = {
        respond: (_status, data) => source.link.send(data, source.address, port),
      };
      mode.carry({ req, source, via, txn: responder, t0, raw }, decision.plan);
      return;
    }
    key ??= serverTransactionKey(req);
    const txn = this.newTransaction(req, via, source, key);
    try {
      if (mode.carry({ req, source, via, txn, t0, raw, key }, decision.plan)) return;
    } catch (err) {
      // The transaction exists now: it must end with an answer, or it would be held for ever.
      this.stats.internalErrors++;
      this.log.error({ err, callId: req.callId }, 'internal error handing a request over');
      this.respondVia(txn, req, via, source, { status: 500, outcome: 'internal-error' }, t0);
      return;
    }
    // Not taken after all: the transaction goes, and the answer is stateless like any other.
    txn.dispose();
    // RFC 3261 §12.2.2: an in-dialog request for no dialog we can reach.
    this.answer(req, via, source, { status: 481, outcome: 'no-dialog' }, t0);
  }

  /** A server transaction for a request handed to a mode; a drain waits for it. */
  private newTransaction(req: SipRequest, via: Via, source: Source, key: string): ServerTxn {
    const route = { link: source.link, address: source.address, port: responsePort(via, source) };
    const txn =
      req.method === 'INVITE'
        ? this.transactions.createInvite(key, route)
        : this.transactions.createNonInvite(key, route);
    this.handOver(txn);
    return txn;
  }

  /** Send our own answer through a transaction already created, and log the decision. */
  private respondVia(
    txn: { respond(status: number, data: Buffer | string): void },
    req: SipRequest,
    via: Via,
    source: Source,
    decision: { status: number; outcome: string },
    t0: number,
  ): void {
    txn.respond(
      decision.status,
      responseText(req, {
        status: decision.status,
        toTag: this.tags.next(),
        topVia: stampedTopVia(via, source),
        server: this.opts.serverHeader,
      }),
    );
    this.stats.responsesSent++;
    this.record('info', {
      callId: req.callId,
      branch: via.branch,
      method: req.method,
      ruri: req.uri,
      status: decision.status,
      outcome: decision.outcome,
      latencyUs: Math.round((performance.now() - t0) * 1000),
    });
  }

  // --- flood protection and draining --------------------------------------------------------

  /** Transactions handed to a mode still waiting for their final response. */
  inFlight(): number {
    this.prune();
    return this.handedOver.size;
  }

  private handOver(txn: { readonly state: ServerTransactionState }): void {
    this.handedOver.add(txn);
    if (this.handedOver.size >= this.pruneAt) {
      this.prune();
      // Amortised: the next prune waits until the set has doubled, so each add costs O(1).
      this.pruneAt = Math.max(1024, 2 * this.handedOver.size);
    }
  }

  private prune(): void {
    for (const t of this.handedOver)
      if (t.state !== ServerTransactionState.Trying && t.state !== ServerTransactionState.Proceeding)
        this.handedOver.delete(t);
  }

  /**
   * A new request the service will not take on: while draining (requests outside a dialog), or over
   * the transaction cap. Answered 503 with Retry-After, statelessly, so shedding adds no state.
   */
  private shed(req: SipRequest, via: Via, source: Source, t0: number): boolean {
    const limits = this.opts.limits;
    let outcome: string;
    if (this.draining && req.toTag === undefined) {
      this.stats.drainRejected++;
      outcome = 'draining';
    } else if (this.overCap()) {
      this.stats.overloaded++;
      outcome = 'overload';
    } else return false;
    const retryAfter = limits.retryAfter;
    // RFC 3261 §21.5.4: 503 Service Unavailable; Retry-After says when to come back.
    this.sendStateless(req, via, source, 503, undefined, `Retry-After: ${retryAfter}\r\n`);
    const fields: DecisionFields = {
      callId: req.callId,
      branch: via.branch,
      method: req.method,
      ruri: req.uri,
      status: 503,
      outcome,
      latencyUs: Math.round((performance.now() - t0) * 1000),
    };
    if (outcome === 'draining') {
      this.record('info', fields);
      return true;
    }
    // Overload: counted for every request, logged at most once a second, since logging is work too.
    this.opts.onDecision?.(fields);
    const suppressed = this.shedLog.take('overload', performance.now());
    if (suppressed !== undefined)
      this.log.warn(
        {
          transactions: this.transactions.size,
          clientTransactions: this.clientTransactions(),
          max: limits.maxTransactions,
          suppressed,
        },
        'overloaded: new requests answered 503',
      );
    return true;
  }

  /** Client transactions held by the modes. */
  private clientTransactions(): number {
    let n = 0;
    for (const table of this.clientTables) n += table.size;
    return n;
  }

  /** limits.maxTransactions: server plus client transactions held reach it. */
  private overCap(): boolean {
    const max = this.opts.limits.maxTransactions;
    return max > 0 && this.transactions.size + this.clientTransactions() >= max;
  }

  /** A request refused by the listener's access policy: 403 when a response can be routed, else dropped. */
  private forbid(data: Buffer, source: Source): void {
    const result = parseMessage(data, source.link.reliable ? this.parseStream : this.parseDatagram);
    const req = result.ok ? (result.message.kind === 'request' ? result.message : undefined) : result.request;
    if (req === undefined || req.method === 'ACK') return;
    let via: Via;
    try {
      via = req.topVia;
    } catch {
      return;
    }
    // The guard logs refusals (at most once per source per interval); each one is not a decision line.
    this.sendStateless(req, via, source, 403, 'Forbidden');
  }

  /** One decision: its log line, and whoever observes decisions. */
  /** One decision's log line and metrics (also the drachtio engine's, which decides with this router's modes). */
  record(level: 'info' | 'warn', fields: DecisionFields): void {
    this.logDecision(level, fields);
    this.opts.onDecision?.(fields);
  }

  /**
   * Fast path for the ACK of one of our non-2xx finals. A stateless one is known by the prefix of its
   * To tag and dropped; for one sent by a transaction, the branch and sent-by of the first Via name
   * the INVITE transaction (RFC 3261 §17.2.3). True when it was absorbed; anything else takes the
   * full path.
   */
  private absorbAck(data: Buffer, decoded: string | undefined): boolean {
    // The top Via is nearly always the line after the Request-Line, and To a few lines below: the
    // first 320 bytes hold them, most of the time. A stream's framing has decoded the whole header
    // section already.
    this.ackMissed = undefined;
    const head = decoded ?? data.toString('latin1', 0, Math.min(data.length, 320));
    if (!head.startsWith('ACK ')) return false;
    if (toTagStartsWith(head, this.statelessTagNeedle)) {
      // The ACK of a stateless answer of ours: nothing waits for it (RFC 3261 §17.2.1 absorbs the
      // ACK of a non-2xx; there is no transaction to absorb it in).
      this.stats.requests++;
      this.stats.acksAbsorbed++;
      return true;
    }
    const key = firstLineInviteKey(head);
    if (key === undefined || !key.startsWith(MAGIC_COOKIE) || key.charCodeAt(MAGIC_COOKIE.length) === 0)
      return false;
    const txn = this.transactions.get(key);
    if (txn?.kind !== 'invite') {
      this.ackMissed = data;
      return false;
    }
    this.stats.requests++;
    this.stats.acksAbsorbed++;
    txn.ack();
    return true;
  }

  /**
   * The message whose ACK absorbAck looked up by its INVITE key and found nothing for, in this same
   * turn: ack() does not build that key and probe the table again (the ACK of a 2xx, every call).
   */
  private ackMissed: Buffer | undefined;

  /** An ACK: absorbed by the INVITE transaction whose non-2xx it acknowledges, else dropped. */
  private ack(req: SipRequest, source: Source, raw: Buffer): void {
    const missed = this.ackMissed === raw;
    this.ackMissed = undefined;
    let key: string | undefined;
    let stateless: boolean;
    try {
      stateless = this.tags.isStateless(req.toTag);
      key = missed ? undefined : serverTransactionKey(req, 'INVITE');
    } catch {
      this.stats.dropped++;
      this.log.debug({ method: 'ACK' }, 'malformed ACK dropped');
      return;
    }
    if (stateless) {
      // The ACK of a stateless answer of ours (the fast path did not read this one's text).
      this.stats.acksAbsorbed++;
      return;
    }
    const txn = key === undefined ? undefined : this.transactions.get(key);
    if (txn?.kind === 'invite') {
      this.stats.acksAbsorbed++;
      txn.ack();
      return;
    }
    // The ACK of a 2xx is a transaction of its own (RFC 3261 §13.3.1.4): a mode holding the dialog
    // stops its retransmissions; a forwarding mode sends any other end to end (RFC 3261 §16.11).
    for (const mode of this.modes) if (mode.ack?.(req, source) === true) return;
    // RFC 3261 §17.2.3: an ACK matching no transaction is not ours to answer.
    this.stats.dropped++;
    this.log.debug({ callId: req.callId, method: 'ACK' }, 'ACK matching no transaction dropped');
  }

  /**
   * RFC 3261 §9.2: CANCEL for a transaction we hold gets 200 (a forwarding mode cancels its branches, or our
   * final is already sent); else 481. It matches the INVITE on branch and sent-by both (RFC 3261
   * §17.2.3), so another sender with the victim's branch cancels nothing. Answered statelessly: a
   * retransmitted CANCEL is matched again and gets the same answer.
   */
  private cancel(req: SipRequest, via: Via, source: Source, t0: number): void {
    const inviteKey = serverTransactionKey(req, 'INVITE');
    const invite = this.transactions.get(inviteKey);
    if (invite === undefined) {
      // Over the cap (or draining) a CANCEL that matches nothing gets the 503 everything else gets.
      if (this.shed(req, via, source, t0)) return;
      this.answer(req, via, source, { status: 481, outcome: 'cancel-unknown' }, t0);
      return;
    }
    // RFC 3261 §16.10: the CANCEL is answered 200 here and the pending branches are cancelled.
    let forwarded = false;
    for (const mode of this.modes) if (mode.cancel?.(inviteKey) === true) forwarded = true;
    const outcome = forwarded ? 'cancel-forwarded' : 'cancel-after-final';
    this.answer(req, via, source, { status: 200, outcome }, t0);
  }
}
