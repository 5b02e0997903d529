// Proxy mode on drachtio: the pool's members, in the order the decision gave them (health first,
// then RFC 3263 priority and weight), are handed to srf.proxyRequest for serial forking; drachtio-
// server's proxy core (RFC 3261 §16) sends, relays and fails over. What each member answered feeds
// the same health view as the native engine's (a 503 or no answer holds the member down, any other
// answer lifts a hold-down), so the next request's order, the probes and /metrics agree.
//
// drachtio-srf's sharp edges met here:
// - a destination not starting with "sip:" or "tel:" gets "sip:" put in front, so a `sips:` URI
//   would become "sip:sips:..."; members reached over TLS are given as `sip:...;transport=tls`.
// - forking is 'sequential' or 'simultaneous' (any other word is taken as sequential).
// - provisionalTimeout and finalTimeout are strings with a unit ("2000ms").
// - drachtio-server moves on to the next member after any final response of 300 or more, where the
//   native engine moves on after a 503 or no answer only; and when every member failed it relays
//   the best response as it is (a 503 too), where the native engine answers 500 for a pool's 503.
// - the results group responses by member with a faulty test (same address, other port: one group),
//   so final responses are matched to members by their order.

import type { Logger } from 'pino';
import type { Endpoint } from '../endpoints/endpoint.js';
import { failsMember, noMemberAnswer } from '../modes/proxy/failover.js';
import type { ProxyPlan } from '../modes/proxy/index.js';
import type { Target, TargetHealth } from '../pool/index.js';
import { hostPort } from '../sip/host-port.js';
import type { DrachtioEngine, Handed } from './engine.js';
import type { ProxyResults } from './srf.js';

export interface ProxyCarrierOptions {
  readonly targets: {
    resolve(pool: Endpoint['pool']): Promise<readonly Target[]>;
  };
  readonly health: TargetHealth;
  /**
   * Tells the forwarding policy which members requests went to: an in-dialog request without our
   * Route may be sent on to them alone (rule (c), as in the native engine).
   */
  readonly noteMembers: (targets: readonly Target[]) => void;
  /** server.yaml proxy.recordRoute; an endpoint's own recordRoute wins. */
  readonly recordRoute: boolean;
  /** Retry-After (s) of the 503 answered when no member is available. */
  readonly noMemberRetryAfter: number;
  readonly provisionalTimeoutMs: number;
  readonly finalTimeoutMs: number;
  readonly logger: Logger;
}

export class ProxyCarrier {
  constructor(private readonly o: ProxyCarrierOptions) {}

  async carry(h: Handed, plan: ProxyPlan, engine: DrachtioEngine): Promise<void> {
    if (plan.endpoint === undefined) {
      // An in-dialog request the forwarding policy lets through to a party of the dialog: its
      // Request-URI names that party (a pool member's Contact), and is kept as it is.
      await this.forward(h, engine, [plan.hop.target], undefined, false, [h.req.uri]);
      return;
    }
    const endpoint = plan.endpoint;
    const targets = plan.targets?.available ?? (await this.resolve(endpoint));
    this.o.noteMembers(plan.targets?.known ?? targets);
    if (targets.length === 0) {
      const own = noMemberAnswer(this.o.noMemberRetryAfter);
      engine.answer(h, {
        status: own.status,
        outcome: own.outcome,
        extra: `Retry-After: ${own.retryAfter}\r\n`,
        endpoint,
        warn: true,
      });
      return;
    }
    await this.forward(h, engine, targets, endpoint, endpoint.recordRoute ?? this.o.recordRoute);
  }

  /** The pool's members available now, in order; none when the pool cannot be resolved. */
  private async resolve(endpoint: Endpoint): Promise<readonly Target[]> {
    try {
      return this.o.health.order(await this.o.targets.resolve(endpoint.pool));
    } catch (err) {
      this.o.logger.warn(
        { pool: endpoint.poolFqdn, err: err instanceof Error ? err.message : String(err) },
        'pool resolution failed',
      );
      return [];
    }
  }

  private async forward(
    h: Handed,
    engine: DrachtioEngine,
    targets: readonly (Pick<Target, 'transport' | 'address' | 'port'> & Partial<Target>)[],
    endpoint: Endpoint | undefined,
    recordRoute: boolean,
    destinations: string[] = targets.map(destination),
  ): Promise<void> {
    const results = await h.srf.proxyRequest(h.req, destinations, {
      forking: 'sequential',
      recordRoute,
      provisionalTimeout: `${this.o.provisionalTimeoutMs}ms`,
      finalTimeout: `${this.o.finalTimeoutMs}ms`,
    });
    this.o.logger.debug(
      {
        finalStatus: results.finalStatus,
        responses: results.responses.map((r) => ({
          address: r.address,
          port: r.port,
          status: r.msgs.map((m) => m.status),
        })),
      },
      'drachtio proxy results',
    );
    const answered = this.learn(results, targets);
    const status = results.finalStatus ?? 408;
    engine.record(h, status >= 500 ? 'warn' : 'info', {
      status,
      outcome: endpoint === undefined ? 'forwarded-in-dialog' : status < 300 ? 'proxied' : 'pool-answer',
      endpoint: endpoint?.sipAddress,
      mode: 'proxy',
      target:
        answered === undefined
          ? undefined
          : `${answered.transport}:${hostPort(answered.address, answered.port)}`,
    });
  }

  /** What each member answered, into the health view; the member whose answer ended the request. */
  private learn<T extends Pick<Target, 'address' | 'port'> & Partial<Target>>(
    results: ProxyResults,
    targets: readonly T[],
  ): T | undefined {
    const health = this.o.health;
    let last: T | undefined;
    for (const { index, status } of attributeFinals(results, targets)) {
      const t = targets[index]!;
      if (status !== undefined) last = t;
      if (t.id === undefined) continue;
      if (status === undefined || failsMember({ kind: 'response', status }))
        health.markFailed(t as unknown as Target);
      else health.markSucceeded(t as unknown as Target);
    }
    return last;
  }
}

/**
 * Which member each final response came from, in order; `status` undefined for a member passed over
 * without a final of its own (it did not answer in time). drachtio-srf groups the finals by member
 * with a faulty test (see the header note): the first final of a group carries its member's address
 * and port, a later one in the same group only its place in the order. When no member answered and
 * drachtio gave up (408, or no final at all), every member was passed over in turn.
 */
export function attributeFinals(
  results: ProxyResults,
  targets: readonly Pick<Target, 'address' | 'port'>[],
): { index: number; status: number | undefined }[] {
  const out: { index: number; status: number | undefined }[] = [];
  let next = 0;
  for (const group of results.responses) {
    group.msgs.forEach((m, k) => {
      if (m.status < 200 || next >= targets.length) return;
      let at = next;
      if (k === 0) {
        const found = targets.findIndex(
          (t, i) => i >= next && t.address === group.address && t.port === group.port,
        );
        if (found >= 0) at = found;
      }
      for (; next < at; next++) out.push({ index: next, status: undefined });
      out.push({ index: at, status: m.status });
      next = at + 1;
    });
  }
  if (out.length === 0 && (results.finalStatus === undefined || results.finalStatus === 408))
    for (let i = 0; i < targets.length; i++) out.push({ index: i, status: undefined });
  return out;
}

/** A member as drachtio-srf takes a destination (see the header note on `sips:`). */
function destination(t: Pick<Target, 'transport' | 'address' | 'port'>): string {
  return `sip:${hostPort(t.address, t.port)};transport=${t.transport}`;
}
