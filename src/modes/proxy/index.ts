// Proxy mode: the endpoint's pool members are tried in the pool's order (RFC 3261 §16), and
// requests that name no endpoint but travel in a dialog we routed are sent on when the forwarding
// policy allows it. The §16 core is proxy.ts; this is its face towards the router.

import type { Endpoint } from '../../endpoints/endpoint.js';
import type { SipRequest } from '../../sip/message.js';
import type { Source } from '../../transport/types.js';
import type { Inbound, Mode, ModeContext, ModeDecision, ModeFactory, Responder, ServerTxn } from '../mode.js';
import { noMemberAnswer } from './failover.js';
import type { ForwardVerdict } from './forwarding-policy.js';
import { Proxy, type PoolTargets, type ProxyDeps } from './proxy.js';

/** What proxy mode is configured with; the rest is the router's ModeContext. */
export type ProxyModeOptions = Omit<ProxyDeps, keyof ModeContext>;

/** A new request for an endpoint, with the targets found when known at once; or an in-dialog hop. */
export type ProxyPlan =
  | { readonly endpoint: Endpoint; readonly targets: PoolTargets | undefined }
  | { readonly endpoint?: undefined; readonly hop: ForwardVerdict & { readonly forward: true } };

export class ProxyMode implements Mode<ProxyPlan> {
  readonly name = 'proxy';
  readonly forwards = true;
  readonly proxy: Proxy;

  constructor(options: ProxyModeOptions, ctx: ModeContext) {
    this.proxy = new Proxy({ ...options, ...ctx });
  }

  get clientTxns(): ProxyDeps['clientTxns'] {
    return this.proxy.deps.clientTxns;
  }

  decide(_req: SipRequest, endpoint: Endpoint): ModeDecision<ProxyPlan> {
    const targets = this.proxy.poolTargets(endpoint);
    if (targets !== undefined && targets.known.length > 0 && targets.available.length === 0) {
      // No member can take it: one stateless 503, so a spoofed source gets one datagram back, not a
      // transaction's 100 Trying and retransmitted final.
      const own = noMemberAnswer(this.proxy.noMemberRetryAfter);
      const extra = `Retry-After: ${own.retryAfter}\r\n`;
      return { status: own.status, outcome: own.outcome, extra, endpoint, warn: true };
    }
    return { handover: 'transaction', plan: { endpoint, targets }, endpoint };
  }

  /**
   * An in-dialog request, or one routed through us by our Record-Route: the forwarding policy
   * decides (forwarding-policy.ts), before anything is sent or connected.
   */
  route(req: SipRequest, source: Source): ModeDecision<ProxyPlan> {
    const hop = this.proxy.judgeInDialog(req, source);
    return hop.forward ? { handover: 'transaction', plan: { hop } } : hop;
  }

  carry(inb: Inbound<Responder>, plan: ProxyPlan): boolean {
    // Both plans are transaction hand-overs: the router made a server transaction and its key.
    const withTxn = inb as Inbound<ServerTxn> & { readonly key: string };
    if (plan.endpoint !== undefined) {
      this.proxy.forwardToPool(withTxn, plan.endpoint, withTxn.key, plan.targets);
      return true;
    }
    return this.proxy.forwardInDialog(withTxn, withTxn.key, plan.hop);
  }

  isLoop(req: SipRequest): boolean {
    return this.proxy.isLoop(req);
  }

  ack(req: SipRequest, source: Source): boolean {
    return this.proxy.forwardAck(req, source);
  }

  cancel(inviteKey: string): boolean {
    return this.proxy.cancel(inviteKey);
  }
}

export function proxyMode(options: ProxyModeOptions | undefined): ModeFactory | undefined {
  return options === undefined ? undefined : (ctx) => new ProxyMode(options, ctx);
}
