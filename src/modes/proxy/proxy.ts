// Proxy mode: RFC 3261 §16 stateful forwarding of requests for an endpoint to a live member of its
// pool, serial failover across the pool's ordered targets, CANCEL (§16.10), Timer C (§16.6 item 11),
// best-response selection (§16.7), loose routing of in-dialog requests (§16.4) and stateless
// forwarding of 2xx ACKs (§16.11). Whether a request that names no endpoint may be sent on, and where,
// is the forwarding policy's to say (forwarding-policy.ts); a response that matches no transaction is
// never forwarded (the router drops it). Each forwarded request lives in a response context
// (response-context.ts, a state machine); which member is tried next and what the client gets in the
// end is the failover policy's (failover.ts), which holds no transaction and no timer.

import type { Logger } from 'pino';
import type { DecisionFields } from '../../base/log.js';
import type { Endpoint, Pool } from '../../endpoints/endpoint.js';
import type { Target } from '../../pool/types.js';
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { parseSipUri, type SipUri } from '../../sip/uri.js';
import { parseNameAddr } from '../../sip/name-addr.js';
import { splitHeaderValues } from '../../sip/header-values.js';
import type { Via } from '../../sip/via.js';
import { newBranch } from '../../transaction/branch.js';
import { KeyTable } from '../../base/key-table.js';
import type { Clock } from '../../base/clock.js';
import type { ClientTransactionTable } from '../../transaction/client-transaction-table.js';
import type {
  InviteServerTransaction,
  NonInviteServerTransaction,
  ResponseRoute,
} from '../../transaction/server-transaction.js';
import { hostPort } from '../../sip/host-port.js';
import type { Outbound, Sender } from '../../transport/outbound.js';
import type { Link, Source } from '../../transport/types.js';
import { firstRoute, forwardedRequest, withoutTopVia } from './forward.js';
import { ForwardingPolicy, type ForwardVerdict, type SignedRoute } from './forwarding-policy.js';
import type { TagFactory } from '../../dialog/tags.js';
import { Accepted, ResponseContext } from './response-context.js';

export interface ProxySettings {
  /** Add Record-Route to dialog-creating requests (per endpoint `recordRoute` overrides). */
  readonly recordRoute: boolean;
  /** RFC 3261 §16.6 item 11: Timer C, "MUST be set to be greater than 3 minutes". */
  readonly timerCMs: number;
  /** Retry-After (seconds) on the 503 answered when no pool member is available. */
  readonly noTargetRetryAfter: number;
}

/** A pool's known targets, and those of them available now (health order). */
export interface PoolTargets {
  readonly known: readonly Target[];
  readonly available: Target[];
}

/** Where pool targets come from (the pool layer: static targets or RFC 3263 resolution). */
export interface TargetSource {
  resolve(pool: Pool): Promise<readonly Target[]>;
  /** The targets at once when they are known and fresh (no promise turn per request), else undefined. */
  cached(pool: Pool): readonly Target[] | undefined;
}

/** Failover bookkeeping and probe results (the pool layer's TargetHealth). */
export interface HealthView {
  order(targets: readonly Target[]): Target[];
  markFailed(target: Target, retryAfterSec?: number): void;
  markSucceeded(target: Target): void;
}

export interface ProxyDeps {
  readonly clientTxns: ClientTransactionTable;
  readonly targets: TargetSource;
  readonly health: HealthView;
  readonly outbound: Outbound;
  readonly clock: Clock;
  /** T1, for the 64*T1 a CANCELled branch is given to answer. */
  readonly timersT1: number;
  readonly settings: ProxySettings;
  readonly logger: Logger;
  readonly serverHeader: string;
  readonly tags: TagFactory;
  readonly record: (level: 'info' | 'warn', fields: DecisionFields) => void;
  /** The per-deployment key our Record-Route entries are signed with (forwarding-policy.ts). */
  readonly secret: Buffer;
  /** A response whose next Via names us was dropped as a loop (counted by the router). */
  readonly onResponseLoop?: (() => void) | undefined;
}

type ServerTxn = InviteServerTransaction | NonInviteServerTransaction;

/** What the router hands over for one new request. */
export interface Inbound {
  readonly req: SipRequest;
  readonly source: Source;
  readonly via: Via;
  readonly txn: ServerTxn;
  readonly t0: number;
  /**
   * The bytes the request was parsed from. With them, a proxied request waiting for its answer
   * keeps only a slim copy (retainedRequest) and is parsed again if it must go to another member.
   */
  readonly raw?: Buffer;
}

/** White space as a regular expression's \\s has it, within latin1 (header text is decoded so). */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0;
}

/**
 * Is the sent-by of a Via value (the text after the protocol and white space, up to ";" or white
 * space) one of `own` (lower-cased), compared without regard to case. Reads the value in place: it
 * runs for every request.
 */
export function namesOwnSentBy(via: string, own: ReadonlySet<string>): boolean {
  const n = via.length;
  let i = 0;
  while (i < n && !isSpace(via.charCodeAt(i))) i++;
  if (i === 0) return false;
  const gap = i;
  while (i < n && isSpace(via.charCodeAt(i))) i++;
  if (i === gap) return false;
  const start = i;
  while (i < n) {
    const c = via.charCodeAt(i);
    if (c === 0x3b || isSpace(c)) break;
    i++;
  }
  const length = i - start;
  if (length === 0) return false;
  for (const o of own) {
    if (o.length !== length) continue;
    let j = 0;
    for (; j < length; j++) {
      const c = via.charCodeAt(start + j);
      const w = o.charCodeAt(j);
      if (c === w) continue;
      // ASCII letters in either case; anything else (rare in a sent-by) as toLowerCase() has it.
      if (c >= 0x41 && c <= 0x5a ? c + 32 !== w : c < 0x80 || via[start + j]!.toLowerCase() !== o[j]) break;
    }
    if (j === length) return true;
  }
  return false;
}

export class Proxy {
  /** Whether and where a request that names no endpoint may be sent on; signs our Record-Route. */
  readonly policy: ForwardingPolicy;
  private readonly rrBases = new WeakMap<Link, string>();
  /** Live response contexts by the INVITE server transaction key, for CANCEL (§16.10). */
  private readonly contexts = new KeyTable<ResponseContext>();
  private ownSentByCache: { count: number; values: Set<string> } | undefined;

  constructor(readonly deps: ProxyDeps) {
    this.policy = new ForwardingPolicy(deps.secret, (uri) => this.namesUs(uri));
  }

  /** Our listeners' sent-by values (listeners come up after the proxy is built, so asked late). */
  private get ownSentBy(): Set<string> {
    const count = this.deps.outbound.listenerCount;
    if (this.ownSentByCache?.count !== count) {
      this.ownSentByCache = {
        count,
        values: new Set(this.deps.outbound.sentByValues().map((s) => s.toLowerCase())),
      };
    }
    return this.ownSentByCache.values;
  }

  /** RFC 3261 §16.3 item 4: a request that already carries our Via has looped. */
  isLoop(req: SipRequest): boolean {
    const own = this.ownSentBy;
    for (const line of req.headerLines('via')) {
      if (line.indexOf(',') < 0) {
        if (namesOwnSentBy(line, own)) return true;
      } else for (const v of splitHeaderValues(line)) if (namesOwnSentBy(v, own)) return true;
    }
    return false;
  }

  /** Does this Route value name us. */
  isOwnRoute(route: string): boolean {
    try {
      return this.namesUs(parseSipUri(parseNameAddr(route).uri));
    } catch {
      return false;
    }
  }

  private namesUs(uri: SipUri): boolean {
    return this.ownSentBy.has(hostPort(uri.host.replace(/^\[|\]$/g, ''), uri.port ?? 5060).toLowerCase());
  }

  /** Our Record-Route URI for a listener, before signing: one string per listener, not per call. */
  recordRouteBase(link: Link): string {
    let base = this.rrBases.get(link);
    if (base === undefined) {
      // RFC 3261 §16.6 item 4: a URI that resolves to this proxy, with lr (loose routing).
      base = `sip:${hostPort(link.localAddress, link.localPort)};transport=${link.transport};lr`;
      this.rrBases.set(link, base);
    }
    return base;
  }

  /** Does a Via value (the next one of a response, after ours) name us: the response would loop. */
  namesUsInVia(via: string): boolean {
    return namesOwnSentBy(via, this.ownSentBy);
  }

  /**
   * A request that names no endpoint, in a dialog or routed through us: the forwarding policy's
   * verdict, a refusal or the hop forwardInDialog is to send it to. Nothing is sent here.
   */
  judgeInDialog(req: SipRequest, source: Source): ForwardVerdict {
    return this.policy.judge(req, source.address);
  }

  /** A new request for a proxy-mode endpoint (RFC 3261 §16.5–16.6 over the pool's targets). */
  forwardToPool(inb: Inbound, endpoint: Endpoint, key: string, targets?: PoolTargets): void {
    // RFC 3261 §16.4: "If the first value in the Route header field indicates this proxy, the proxy
    // MUST remove that value from the request." (a Front End routing the lookup INVITE to us).
    const route = firstRoute(inb.req);
    const ctx = new ResponseContext(this, inb, endpoint, route !== undefined && this.isOwnRoute(route));
    this.track(key, ctx);
    ctx.sendTrying();
    const known = targets ?? this.poolTargets(endpoint);
    if (known !== undefined) {
      this.policy.noteMembers(known.known);
      ctx.start(known.available);
      return;
    }
    this.deps.targets.resolve(endpoint.pool).then(
      (targets) => this.startOn(ctx, targets),
      (err: unknown) => {
        this.deps.logger.warn(
          { pool: endpoint.poolFqdn, err: err instanceof Error ? err.message : String(err) },
          'pool resolution failed',
        );
        ctx.start([]);
      },
    );
  }

  /**
   * The pool's targets when they are known at once (static, or cached DNS), with those available
   * now; undefined while they must still be resolved. The router asks before it creates a
   * transaction, so a request no member can take is answered once, statelessly, and hands what it
   * found to forwardToPool: the targets are drawn and filtered once per INVITE.
   */
  poolTargets(endpoint: Endpoint): PoolTargets | undefined {
    const known = this.deps.targets.cached(endpoint.pool);
    return known === undefined ? undefined : { known, available: this.deps.health.order(known) };
  }

  /** Retry-After (seconds) of the 503 answered when no pool member is available. */
  get noMemberRetryAfter(): number {
    return this.deps.settings.noTargetRetryAfter;
  }

  private startOn(ctx: ResponseContext, targets: readonly Target[]): void {
    this.policy.noteMembers(targets);
    ctx.start(this.deps.health.order(targets));
  }

  /**
   * An in-dialog request (or one carrying our Route) that names no endpoint: forwarded to the next
   * hop when it is one we may reach. Returns false when it is not ours to forward.
   */
  forwardInDialog(inb: Inbound, key: string, hop: ForwardVerdict): boolean {
    if (!hop.forward) return false;
    const ctx = new ResponseContext(this, inb, undefined, hop.popRoute);
    this.track(key, ctx);
    if (inb.req.method === 'INVITE') ctx.sendTrying();
    ctx.start([hop.target]);
    return true;
  }

  /** A CANCEL for an INVITE we are proxying: true when it was ours (the caller answers 200). */
  cancel(inviteKey: string): boolean {
    const ctx = this.contexts.get(inviteKey);
    if (ctx === undefined) return false;
    ctx.cancel();
    return true;
  }

  /**
   * An ACK matching no server transaction: the ACK of a 2xx, forwarded statelessly end to end when
   * the forwarding policy allows it; false (the router drops and counts it) otherwise.
   */
  forwardAck(req: SipRequest, source: Source): boolean {
    const hop = this.policy.judge(req, source.address);
    if (!hop.forward) return false;
    const send = (sender: Sender): void => {
      const copy = forwardedRequest(req, {
        via: `SIP/2.0/${sender.transport.toUpperCase()} ${sender.sentBy};branch=${newBranch()}`,
        popRoute: hop.popRoute,
      });
      sender.send(copy.toBuffer());
    };
    const ready = this.deps.outbound.readySender(hop.target);
    if (ready !== undefined) send(ready);
    else {
      this.deps.outbound
        .sender(hop.target)
        .then(send, (err: unknown) =>
          this.deps.logger.debug({ err: String(err) }, 'ACK could not be forwarded'),
        );
    }
    return true;
  }

  private track(key: string, ctx: ResponseContext): void {
    if (ctx.method !== 'INVITE') return;
    this.contexts.set(key, ctx);
    ctx.key = key;
  }

  /** A tracked context sent its final response: a CANCEL can no longer find it. */
  untrack(key: string, ctx: ResponseContext): void {
    if (this.contexts.get(key) === ctx) this.contexts.delete(key);
  }

  /**
   * The relay of an answered INVITE's 2xx retransmissions to where the request came from (Accepted).
   * It holds nothing of the call, so calls from one upstream flow share one: under load most come
   * from a few, and each call then holds one object fewer for 64*T1.
   */
  relayTo(route: ResponseRoute): Accepted {
    const last = this.lastRelay;
    if (last?.sendsTo(route) === true) return last;
    return (this.lastRelay = new Accepted(this, route));
  }

  private lastRelay: Accepted | undefined;

  /**
   * RFC 3261 §16.7 item 3: a response as sent upstream, our Via removed and, in a 2xx (`rr` given),
   * our Record-Route signed with the To tag too. Undefined when it must not go anywhere: no Via left,
   * or the next Via names us, so sending it on would loop it through us.
   */
  upstream(res: SipResponse, rr: SignedRoute | undefined): SipResponse | undefined {
    let up: SipResponse | undefined;
    let next: string | undefined;
    try {
      up = withoutTopVia(res);
      if (up === undefined) return undefined;
      next = up.topViaText;
      if (rr !== undefined) up = this.policy.rewriteInResponse(up, rr);
    } catch (err) {
      // A Via, To or Record-Route the member sent that does not parse: not relayed.
      this.deps.logger.debug({ status: res.status, err: String(err) }, 'malformed response not relayed');
      return undefined;
    }
    if (next !== undefined && this.namesUsInVia(next)) {
      this.deps.onResponseLoop?.();
      this.deps.logger.debug({ status: res.status, via: next }, 'response whose next Via names us dropped');
      return undefined;
    }
    return up;
  }
}
