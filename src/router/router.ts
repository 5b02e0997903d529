// The request router: every message received goes through here. It parses and validates, matches
// server transactions (absorbing retransmissions), looks the Request-URI up in the endpoint table and
// decides: 302 (redirect), 404, 483, 416, 420, 400, 513, 200 to OPTIONS for the service itself;
// hands proxy-mode requests to the proxy and lookup-mode dialogs to the lookup service.

import type { Logger } from 'pino';
import { decisionLogger, type DecisionFields } from '../base/log.js';
import type { EndpointTable } from '../endpoints/table.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { parseMessage, type FramedHead, type ParseOptions } from '../sip/parser.js';
import type { SipParseError } from '../sip/errors.js';
import { flatCopy, type SipRequest } from '../sip/message.js';
import { validateRequest } from '../sip/validate.js';
import { uriScheme, parseSipUri } from '../sip/uri.js';
import { splitHeaderValues } from '../sip/header-values.js';
import { MAGIC_COOKIE, type Via } from '../sip/via.js';
import { HeaderBit } from '../sip/headers.js';
import type { Clock, TimerValues } from '../base/clock.js';
import { ServerTransactionTable, serverTransactionKey } from '../transaction/server-transaction-table.js';
import type { Source } from '../transport/types.js';
import { ServerTransactionState } from '../transaction/server-transaction.js';
import type { Admission } from '../guard/guard.js';
import type { ForwardVerdict } from '../modes/proxy/forwarding-policy.js';
import { LogThrottle } from '../base/log-throttle.js';
import { randomBytes } from 'node:crypto';
import { responsePort, responseText, stampedTopVia } from '../sip/response.js';
import { TagFactory } from '../dialog/tags.js';
import { redirectContact } from '../modes/redirect/redirect.js';
import { Proxy, type ProxyDeps } from '../modes/proxy/proxy.js';
import { LookupService, type LookupDeps } from '../modes/lookup/lookup-service.js';

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
  /** Proxy mode's collaborators; without them proxy-mode endpoints answer 501. */
  readonly proxy?:
    | Omit<ProxyDeps, 'record' | 'tags' | 'serverHeader' | 'logger' | 'clock' | 'secret' | 'onResponseLoop'>
    | undefined;
  /** Called once per decision with what was logged (metrics hang off this). */
  readonly onDecision?: (d: DecisionFields) => void;
  /** Lookup mode's collaborators; without them lookup-mode endpoints answer 501. */
  readonly lookup?:
    Omit<LookupDeps, 'record' | 'tags' | 'serverHeader' | 'logger' | 'clock' | 'timers'> | undefined;
  /** Flood protection (server.yaml `limits`): parser limits and the cap on transactions held. */
  readonly limits?: RouterLimits | undefined;
  /** The per-deployment secret (server.yaml `security.secret`, or random per process). */
  readonly secret?: Buffer | undefined;
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

/** What the router decided for one request: an answer of its own, or a hand-over to the proxy. */
type Decision =
  | {
      readonly status: number;
      readonly outcome: string;
      readonly reason?: string;
      readonly extra?: string;
      readonly endpoint?: Endpoint;
      readonly proxy?: undefined;
      readonly lookup?: undefined;
    }
  | { readonly proxy: 'pool'; readonly endpoint: Endpoint; readonly lookup?: undefined }
  | { readonly proxy: 'dialog'; readonly hop: ForwardVerdict; readonly lookup?: undefined }
  | { readonly lookup: 'invite'; readonly endpoint: Endpoint; readonly proxy?: undefined };

/**
 * The branch of the first value of the first Via line of a message (compact form too): the rule
 * firstLineViaBranch reads quickly, for the layout nearly every message has.
 */
export const ACK_BRANCH = /\n(?:Via|v)[ \t]*:[^\r\n,]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)/i;

/**
 * The branch of a Via written the usual way on the line after the Request-Line
 * ("Via: SIP/2.0/UDP host;…;branch=…", the branch in its first value), found with a few string
 * searches; undefined for anything else, which the full parse then reads.
 */
export function firstLineViaBranch(head: string): string | undefined {
  const line = head.indexOf('\n') + 1;
  if (line === 0 || !head.startsWith('Via: ', line)) return undefined;
  // The line must end in CRLF, with no other CR in it. One cut off where the text ends may go on:
  // not read here.
  const lineEnd = head.indexOf('\n', line) - 1;
  if (lineEnd < line || head.indexOf('\r', line) !== lineEnd) return undefined;
  const at = head.indexOf(';branch=', line);
  if (at < 0 || at > lineEnd) return undefined;
  // A comma before it: the branch is not the first value's.
  const comma = head.indexOf(',', line);
  if (comma >= 0 && comma < at) return undefined;
  // An earlier parameter that may be a branch written otherwise ("; branch", "BRANCH =").
  for (let semi = head.indexOf(';', line); semi < at; semi = head.indexOf(';', semi + 1)) {
    let c = head.charCodeAt(semi + 1);
    for (let k = semi + 2; c === 0x20 || c === 0x09; k++) c = head.charCodeAt(k);
    if ((c | 0x20) === 0x62) return undefined;
  }
  const start = at + 8;
  let end = start;
  // The value ends where ACK_BRANCH's [^;,\s]+ does (latin1: \s is also VT, FF and NBSP).
  for (; end < lineEnd; end++) {
    const c = head.charCodeAt(end);
    if (c === 0x3b || c === 0x2c || c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0) break;
  }
  return end === start ? undefined : head.slice(start, end);
}

/**
 * The INVITE server transaction key (serverTransactionKey) of a message whose top Via is written the
 * usual way on the line after the Request-Line, read off the text: branch (firstLineViaBranch) and
 * sent-by. Undefined whenever the sent-by is not in the one form the parser would give back as
 * written (no white space, a port without leading zeros): the full path then decides.
 */
export function firstLineInviteKey(head: string): string | undefined {
  const branch = firstLineViaBranch(head);
  if (branch === undefined) return undefined;
  // firstLineViaBranch checked the line: "Via: ", CRLF-terminated, the branch in its first value.
  const line = head.indexOf('\n') + 1;
  const semi = head.indexOf(';', line);
  const space = head.indexOf(' ', line + 5);
  if (space < 0 || space > semi) return undefined;
  // sent-protocol (SIP/2.0/UDP) with no white space in it, then one space.
  for (let k = line + 5; k < space; k++) {
    const c = head.charCodeAt(k);
    if (c === 0x09 || c === 0x20) return undefined;
  }
  const start = space + 1;
  let k = start;
  if (head.charCodeAt(k) === 0x5b) {
    // [IPv6 reference]
    k = head.indexOf(']', k);
    if (k < 0 || k > semi) return undefined;
    k++;
  } else {
    for (; k < semi; k++) {
      const c = head.charCodeAt(k) | 0x20;
      if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d)) break;
    }
    if (k === start) return undefined;
  }
  if (k === semi) return `${branch}\u0000${head.slice(start, semi)}:`;
  if (head.charCodeAt(k) !== 0x3a) return undefined;
  const digits = semi - k - 1;
  if (digits < 1 || digits > 5 || (digits > 1 && head.charCodeAt(k + 1) === 0x30)) return undefined;
  let port = 0;
  for (let d = k + 1; d < semi; d++) {
    const c = head.charCodeAt(d);
    if (c < 0x30 || c > 0x39) return undefined;
    port = port * 10 + c - 0x30;
  }
  if (port > 65535) return undefined;
  return `${branch}\u0000${head.slice(start, semi)}`;
}

/**
 * Does the To header of this message text carry a tag starting `needle` (";tag=" and the prefix of
 * our derived tags), on a line of its own ("To:" or "t:", any case). Folded or otherwise unusual
 * lines are not recognised here; the full path reads them.
 */
export function toTagStartsWith(head: string, needle: string): boolean {
  for (let at = head.indexOf(needle); at >= 0; at = head.indexOf(needle, at + 1)) {
    const line = head.lastIndexOf('\n', at) + 1;
    if (line === 0 || (head.charCodeAt(line) | 0x20) !== 0x74) continue;
    let k = line + 1;
    if ((head.charCodeAt(k) | 0x20) === 0x6f) k++;
    while (head.charCodeAt(k) === 0x20 || head.charCodeAt(k) === 0x09) k++;
    if (head.charCodeAt(k) === 0x3a) return true;
  }
  return false;
}

const ALLOW = 'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO, UPDATE, MESSAGE, SUBSCRIBE, NOTIFY, REFER\r\n';

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
  // Transactions handed to the proxy or the lookup service, until their final response: what a drain
  // waits for. Pruned as it grows, so it holds about what is really in flight.
  private readonly handedOver = new Set<{ readonly state: ServerTransactionState }>();
  private pruneAt = 1024;
  private readonly parseDatagram: ParseOptions;
  private readonly parseStream: ParseOptions;
  private readonly shedLog = new LogThrottle(1000);
  // The last Request-URI that named an endpoint, and that endpoint: most requests repeat one of a
  // few well-known addresses, and comparing the text is cheaper than scanning and hashing it again.
  private lastTable: EndpointTable | undefined;
  private lastUri: string | undefined;
  private lastEndpoint: Endpoint | undefined;
  private readonly tags: TagFactory;
  /** ";tag=" and the prefix of our derived tags: what an ACK of a stateless answer carries in To. */
  private readonly statelessTagNeedle: string;
  private readonly log: Logger;
  private readonly logDecision: ReturnType<typeof decisionLogger>;
  readonly proxy: Proxy | undefined;
  readonly lookup: LookupService | undefined;

  constructor(private readonly opts: RouterOptions) {
    this.transactions = new ServerTransactionTable(opts.clock, opts.timers);
    this.tags = new TagFactory(opts.secret);
    this.statelessTagNeedle = ';tag=' + this.tags.statelessPrefix;
    this.log = opts.logger;
    this.logDecision = decisionLogger(opts.logger);
    const limits =
      opts.limits === undefined
        ? {}
        : { maxHeaders: opts.limits.maxHeaders, maxLineLength: opts.limits.maxLineLength };
    this.parseDatagram = { stream: false, ...limits };
    this.parseStream = { stream: true, ...limits };
    this.proxy =
      opts.proxy === undefined
        ? undefined
        : new Proxy({
            ...opts.proxy,
            record: (level, fields) => this.record(level, fields),
            tags: this.tags,
            serverHeader: opts.serverHeader,
            logger: opts.logger,
            clock: opts.clock,
            secret: opts.secret ?? randomBytes(32),
            onResponseLoop: () => {
              this.stats.responseLoops++;
              this.stats.dropped++;
            },
          });
    this.lookup =
      opts.lookup === undefined
        ? undefined
        : new LookupService({
            ...opts.lookup,
            record: (level, fields) => this.record(level, fields),
            tags: this.tags,
            serverHeader: opts.serverHeader,
            logger: opts.logger,
            clock: opts.clock,
            timers: opts.timers,
          });
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
      if (admit !== undefined && !response) {
        const admission = admit(source);
        if (admission !== 'pass') {
          if (admission === 'reject') this.forbid(data, source);
          return;
        }
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
      const clientTxns = this.opts.proxy?.clientTxns;
      // Responses to the lookup service's own INFO and BYE (when it has a table of its own).
      const lookupTxns = this.lookup?.clientTxns;
      const txn = clientTxns?.match(msg) ?? (lookupTxns !== clientTxns ? lookupTxns?.match(msg) : undefined);
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
  private answer(
    req: SipRequest,
    via: Via,
    source: Source,
    decision: {
      readonly status: number;
      readonly outcome: string;
      readonly reason?: string;
      readonly extra?: string;
      readonly endpoint?: Endpoint;
    },
    t0: number,
    level: 'info' | 'warn' = 'info',
  ): void {
    this.sendStateless(req, via, source, decision.status, decision.reason, decision.extra);
    this.record(level, {
      callId: req.callId,
      branch: via.branch,
      method: req.method,
      ruri: req.uri,
      endpoint: decision.endpoint?.sipAddress,
      mode: decision.endpoint?.mode,
      status: decision.status,
      outcome: decision.outcome,
      ...(level === 'warn' ? { peer: `${source.address}:${source.port}` } : {}),
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
    const route = { link: source.link, address: source.address, port: responsePort(via, source) };
    // RFC 3261 §12.2.2: a request in one of our lookup dialogs (Call-ID and tags) is the lookup
    // service's, before any routing by Request-URI (it is our Contact) or by the proxy.
    const owned = this.lookup?.owns(req, source);
    if (owned === 'other-flow') {
      // Only the flow the dialog came on may act in it: our tag is no secret to whoever saw it.
      this.answer(req, via, source, { status: 403, outcome: 'lookup-other-flow' }, t0, 'warn');
      return;
    }
    if (owned === 'flow') {
      // Over the cap a BYE still ends its dialog, and frees what the dialog holds.
      if (req.method !== 'BYE' && this.shed(req, via, source, t0)) return;
      key ??= serverTransactionKey(req);
      const txn =
        req.method === 'INVITE'
          ? this.transactions.createInvite(key, route)
          : this.transactions.createNonInvite(key, route);
      this.handOver(txn);
      this.lookup!.inDialog({ req, source, via, txn, t0 });
      return;
    }
    // Everything else counts against the cap, BYE included: the proxy keeps no dialogs a BYE could
    // be matched with, and a flood of made-up BYEs must not hold transactions beyond it.
    if (this.shed(req, via, source, t0)) return;
    const decision = this.decide(req, source);
    if (decision.lookup !== undefined) {
      const lookup = this.lookup!;
      // Over maxDialogs, or over the source's budget of un-ACKed 200s: one stateless 503, no state.
      const refused = lookup.admit(req, source);
      if (refused !== undefined) {
        this.answer(req, via, source, { ...refused, endpoint: decision.endpoint }, t0, 'warn');
        return;
      }
      // The lookup service answers at once (a 2xx it retransmits itself as the dialog's UAS, or a
      // rejection): no server transaction, as for any answer of ours.
      const port = route.port;
      const responder = {
        respond: (_status: number, data: Buffer | string): void =>
          source.link.send(data, source.address, port),
      };
      lookup.invite({ req, source, via, txn: responder, t0 }, decision.endpoint);
      return;
    }
    const targets = decision.proxy === 'pool' ? this.proxy!.poolTargets(decision.endpoint) : undefined;
    if (
      decision.proxy === 'pool' &&
      targets !== undefined &&
      targets.known.length > 0 &&
      targets.available.length === 0
    ) {
      // No member can take it: one stateless 503, so a spoofed source gets one datagram back, not a
      // transaction's 100 Trying and retransmitted final.
      const extra = `Retry-After: ${this.proxy!.noMemberRetryAfter}\r\n`;
      this.answer(
        req,
        via,
        source,
        { status: 503, outcome: 'no-live-member', extra, endpoint: decision.endpoint },
        t0,
        'warn',
      );
      return;
    }
    if (decision.proxy !== undefined) {
      key ??= serverTransactionKey(req);
      const txn =
        req.method === 'INVITE'
          ? this.transactions.createInvite(key, route)
          : this.transactions.createNonInvite(key, route);
      this.handOver(txn);
      const inb = { req, source, via, txn, t0, raw };
      try {
        if (decision.proxy === 'pool') {
          this.proxy!.forwardToPool(inb, decision.endpoint, key, targets);
          return;
        }
        if (this.proxy!.forwardInDialog(inb, key, decision.hop)) return;
      } catch (err) {
        // The transaction exists now: it must end with an answer, or it would be held for ever.
        this.stats.internalErrors++;
        this.log.error({ err, callId: req.callId }, 'internal error forwarding request');
        this.respondVia(txn, req, via, source, { status: 500, outcome: 'internal-error' }, t0);
        return;
      }
      // Not forwarded after all: the transaction goes, and the answer is stateless like any other.
      txn.dispose();
      // RFC 3261 §12.2.2: an in-dialog request for no dialog we can reach.
      this.answer(req, via, source, { status: 481, outcome: 'no-dialog' }, t0);
      return;
    }
    this.answer(req, via, source, decision, t0);
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

  // --- flood protection and draining (issue 6) -------------------------------------------------

  /** Transactions handed to the proxy or the lookup service still waiting for their final response. */
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
    const retryAfter = limits?.retryAfter ?? 5;
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
          max: limits?.maxTransactions,
          suppressed,
        },
        'overloaded: new requests answered 503',
      );
    return true;
  }

  /** Client transactions held: the proxy's, and the lookup service's when it has a table of its own. */
  private clientTransactions(): number {
    const proxyTxns = this.opts.proxy?.clientTxns;
    const lookupTxns = this.opts.lookup?.clientTxns;
    return (
      (proxyTxns?.size ?? 0) + (lookupTxns !== undefined && lookupTxns !== proxyTxns ? lookupTxns.size : 0)
    );
  }

  /** limits.maxTransactions: server plus client transactions held reach it. */
  private overCap(): boolean {
    const max = this.opts.limits?.maxTransactions ?? 0;
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
  private record(level: 'info' | 'warn', fields: DecisionFields): void {
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
    // The ACK of a 2xx is a transaction of its own (RFC 3261 §13.3.1.4): ours stops the lookup
    // service's retransmissions; a proxy forwards any other end to end (RFC 3261 §16.11).
    if (this.lookup?.ack(req, source) === true) return;
    if (this.proxy?.forwardAck(req, source) === true) return;
    // RFC 3261 §17.2.3: an ACK matching no transaction is not ours to answer.
    this.stats.dropped++;
    this.log.debug({ callId: req.callId, method: 'ACK' }, 'ACK matching no transaction dropped');
  }

  /**
   * RFC 3261 §9.2: CANCEL for a transaction we hold gets 200 (the proxy cancels its branches, or our
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
    const outcome = this.proxy?.cancel(inviteKey) === true ? 'cancel-forwarded' : 'cancel-after-final';
    this.answer(req, via, source, { status: 200, outcome }, t0);
  }

  private decide(req: SipRequest, source: Source): Decision {
    const table = this.opts.table();
    let endpoint: Endpoint | undefined;
    if (req.uri === this.lastUri && table === this.lastTable) endpoint = this.lastEndpoint;
    else {
      const scheme = uriScheme(req.uri);
      // RFC 3261 §8.2.2.1 / RFC 4475 §3.3.2: never route on To for a scheme we do not serve.
      if (scheme !== 'sip' && scheme !== 'sips') return { status: 416, outcome: 'unsupported-scheme' };
      endpoint = table.lookupUri(req.uri);
      if (endpoint !== undefined) {
        this.lastTable = table;
        this.lastUri = flatCopy(req.uri);
        this.lastEndpoint = endpoint;
      }
    }
    if (endpoint === undefined && req.method === 'OPTIONS' && addressesService(req.uri)) {
      // Keep-alive probes from Front Ends and load balancers (RFC 3261 §11.2).
      return { status: 200, outcome: 'options', extra: ALLOW + 'Accept: application/sdp\r\n' };
    }
    // Sent on by the proxy: its own endpoints, and requests for no endpoint (in a dialog it routes).
    const proxying = endpoint?.mode === 'proxy' || endpoint === undefined;
    // RFC 3261 §16.3 item 4: a request carrying our own Via has looped back to us. Only a request
    // the proxy would send on can go round again: a redirect or a lookup answer ends it here.
    if (proxying && this.proxy?.isLoop(req) === true) return { status: 482, outcome: 'loop' };
    const mf = req.header('max-forwards');
    // RFC 3261 §16.3 item 3: a request with Max-Forwards 0 is not sent on, and redirecting is sending on.
    // Validated as 1*DIGIT: only a value starting with "0" can be zero.
    if (mf !== undefined && mf.charCodeAt(0) === 0x30 && Number(mf) === 0)
      return { status: 483, outcome: 'too-many-hops', ...(endpoint ? { endpoint } : {}) };
    // A UAS looks at Require (RFC 3261 §8.2.2.3), a proxy at Proxy-Require (§16.3 item 5).
    const unsupported = requiredExtensions(
      req,
      proxying && this.proxy !== undefined ? 'proxy-require' : 'require',
      // The lookup service is a UAS that supports RFC 4028 session timers.
      endpoint?.mode === 'lookup' && this.lookup !== undefined ? SUPPORTED_BY_LOOKUP : undefined,
    );
    if (unsupported !== undefined) {
      // RFC 3261 §8.2.2.3: no extension is supported, so every Require tag is listed back.
      return {
        status: 420,
        outcome: 'bad-extension',
        extra: `Unsupported: ${unsupported}\r\n`,
        ...(endpoint ? { endpoint } : {}),
      };
    }
    if (endpoint === undefined) {
      // An in-dialog request, or one routed through us by our Record-Route: the forwarding policy
      // decides (src/modes/proxy/forwarding-policy.ts), before anything is sent or connected.
      if (this.proxy !== undefined && (req.toTag !== undefined || req.has(HeaderBit.route))) {
        const hop = this.proxy.judgeInDialog(req, source);
        return hop.forward ? { proxy: 'dialog', hop } : hop;
      }
      // RFC 3261 §12.2.2: an in-dialog request for no dialog we hold (a lookup dialog already over).
      if (this.lookup !== undefined && req.toTag !== undefined) return { status: 481, outcome: 'no-dialog' };
      return { status: 404, outcome: 'unknown' };
    }
    if (!endpoint.enabled) return { status: 404, outcome: 'disabled', endpoint };
    // The clock is read only when a window is set (most endpoints never have one).
    const retryAfter =
      endpoint.maintenanceUntil === undefined && endpoint.pool.maintenanceUntil === undefined
        ? undefined
        : maintenanceRetryAfter(endpoint, (this.opts.wallClock ?? Date.now)());
    if (retryAfter !== undefined) {
      // RFC 3261 §21.5.4: 503 with Retry-After while the endpoint or its pool is in a cutover window.
      return { status: 503, outcome: 'maintenance', extra: `Retry-After: ${retryAfter}\r\n`, endpoint };
    }
    switch (endpoint.mode) {
      case 'redirect':
        return { status: 302, outcome: 'redirect', extra: redirectContact(endpoint), endpoint };
      case 'proxy':
        if (this.proxy !== undefined) return { proxy: 'pool', endpoint };
        return { status: 501, outcome: 'proxy-not-configured', endpoint };
      case 'lookup':
        if (this.lookup === undefined) return { status: 501, outcome: 'lookup-not-configured', endpoint };
        if (req.method === 'INVITE') return { lookup: 'invite', endpoint };
        if (req.method === 'OPTIONS') return { status: 200, outcome: 'options', extra: ALLOW, endpoint };
        // RFC 3261 §12.2.2: a request with a To tag for a dialog we do not hold.
        if (req.toTag !== undefined) return { status: 481, outcome: 'no-dialog', endpoint };
        // RFC 3261 §8.2.1: outside a dialog the Lookup service serves INVITE alone.
        return {
          status: 405,
          reason: 'Method Not Allowed',
          outcome: 'lookup-method',
          extra: 'Allow: INVITE, ACK, BYE, INFO, OPTIONS, UPDATE\r\n',
          endpoint,
        };
    }
  }
}

/**
 * Seconds until the maintenance window of an endpoint (or its pool) ends, at least 1; undefined
 * when none is in force. An open-ended window ("on") asks clients to come back in an hour.
 */
export function maintenanceRetryAfter(endpoint: Endpoint, now: number): number | undefined {
  const until = Math.max(endpoint.maintenanceUntil ?? 0, endpoint.pool.maintenanceUntil ?? 0);
  if (until <= now) return undefined;
  if (until === Infinity) return 3600;
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/** A Request-URI with no user part names the service itself. */
function addressesService(uri: string): boolean {
  try {
    return parseSipUri(uri).user === undefined;
  } catch {
    return false;
  }
}

/** Option tags the lookup service supports in Require (RFC 4028 session timers). */
const SUPPORTED_BY_LOOKUP: ReadonlySet<string> = new Set(['timer']);

/**
 * The Require (or Proxy-Require) option tags of a request that are not in `supported`, joined, or
 * undefined when there are none.
 */
function requiredExtensions(
  req: SipRequest,
  header: 'require' | 'proxy-require',
  supported?: ReadonlySet<string>,
): string | undefined {
  const bit = header === 'require' ? HeaderBit.require : HeaderBit['proxy-require'];
  if (req.method === 'ACK' || req.method === 'CANCEL' || !req.has(bit)) return undefined;
  const lines = req.headerLines(header);
  if (lines.length === 0) return undefined;
  const tags: string[] = [];
  for (const line of lines)
    for (const v of splitHeaderValues(line)) if (supported?.has(v.toLowerCase()) !== true) tags.push(v);
  return tags.length === 0 ? undefined : tags.join(', ');
}
