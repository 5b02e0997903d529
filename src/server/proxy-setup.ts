// Wires proxy mode together for the composition root: outbound connections, client transactions,
// pool resolution, failover bookkeeping and OPTIONS health probing of every proxied pool's members.

import { getServers } from 'node:dns';
import type { Logger } from 'pino';
import type { EndpointTable } from '../endpoints/table.js';
import {
  createDnsResolver,
  HealthProber,
  PoolResolver,
  TargetHealth,
  type DnsLike,
  type ProbeResult,
  type Target,
  type TargetTransport,
} from '../pool/index.js';
import type { ProxyDeps, ProxySettings } from '../modes/proxy/proxy.js';
import { EMPTY_BODY, field, SipRequest } from '../sip/message.js';
import { newBranch } from '../transaction/branch.js';
import type { Clock, TimerValues } from '../base/clock.js';
import { ClientTransactionTable } from '../transaction/client-transaction-table.js';
import type { CaptureHook } from '../transport/capture.js';
import { Outbound } from '../transport/outbound.js';
import { hostPort } from '../sip/host-port.js';
import {
  ConnectionRegistry,
  TcpConnector,
  type OutboundTimeouts,
  type TcpListener,
} from '../transport/tcp.js';
import type { FramingErrorHandler, MessageHandler } from '../transport/types.js';
import type { UdpListener } from '../transport/udp.js';

/** Proxy mode's settings (server.yaml `proxy`, through settings.ts), whole: none has a default here. */
export interface ProxyOptions extends ProxySettings {
  /** DNS servers for pool resolution ("127.0.0.1:5353"); empty: the system's configured servers. */
  readonly dnsServers: readonly string[];
  /** A DNS implementation to use instead of dnsServers (tests). */
  readonly dns?: DnsLike;
  /** Transport tried first for pools found by DNS; Lync pools speak TLS. */
  readonly defaultTransport: TargetTransport;
  /** How long a member that failed a request is skipped. */
  readonly holdDownMs: number;
  /** OPTIONS probing of pool members; false when it is switched off. */
  readonly probe: false | ProbeSettings;
}

export interface ProbeSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly upThreshold: number;
  readonly downThreshold: number;
}

export interface ProxySupportContext {
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly logger: Logger;
  readonly maxMessageSize: number;
  /** Connections opened to pool members. */
  readonly outboundTimeouts: OutboundTimeouts;
  /** Filled by the composition root as listeners come up. */
  readonly udp: UdpListener[];
  readonly tcp: TcpListener[];
  readonly onMessage: MessageHandler;
  readonly onFramingError: FramingErrorHandler;
  /** Where copies of the messages sent on connections to pool members are taken (HEP). */
  readonly capture?: CaptureHook;
  /**
   * Told whenever a pool member goes up or down (metrics), once for each pool (FQDN) it was resolved
   * for; a member no refresh resolved (probing off: health learnt from requests) under its host.
   */
  readonly onMemberChange?: (pool: string, t: Target, up: boolean) => void;
  /** Told when a member is no longer probed for a pool (a reload removed it): its series goes (metrics). */
  readonly onMemberGone?: (pool: string, t: Target) => void;
  /** Sends the health probes instead of the native transactions (the drachtio engine's). */
  readonly sendProbe?: (t: Target) => Promise<ProbeResult>;
}

export class ProxySupport {
  readonly connections = new ConnectionRegistry();
  readonly clientTxns: ClientTransactionTable;
  readonly outbound: Outbound;
  readonly resolver: PoolResolver;
  readonly health: TargetHealth;
  readonly prober: HealthProber | undefined;
  private readonly settings: ProxySettings;
  /** The members the last refresh exposed, by pool FQDN and target id. */
  private exposed = new Map<string, { pool: string; target: Target }>();
  /** The pools each exposed member was resolved for, by target id: its health is one for all of them. */
  private poolsOf = new Map<string, string[]>();

  constructor(
    opts: ProxyOptions,
    private readonly ctx: ProxySupportContext,
  ) {
    this.settings = {
      recordRoute: opts.recordRoute,
      timerCMs: opts.timerCMs,
      noTargetRetryAfter: opts.noTargetRetryAfter,
    };
    const connector = new TcpConnector(
      this.connections,
      {
        maxMessageSize: ctx.maxMessageSize,
        ...ctx.outboundTimeouts,
        onError: (err) => ctx.logger.debug({ err: err.message }, 'outbound connection error'),
        ...(ctx.capture === undefined ? {} : { capture: ctx.capture }),
      },
      ctx.onMessage,
      ctx.onFramingError,
    );
    this.clientTxns = new ClientTransactionTable(ctx.clock, ctx.timers);
    this.outbound = new Outbound(ctx.udp, ctx.tcp, connector);
    const servers = opts.dnsServers.length > 0 ? [...opts.dnsServers] : getServers();
    // With no DNS server at all, pools with static targets still work; named ones fail clearly.
    const dns = opts.dns ?? (servers.length > 0 ? createDnsResolver(servers) : unavailableDns());
    this.resolver = new PoolResolver({
      dns,
      clock: ctx.clock,
      logger: ctx.logger,
      defaultTransport: opts.defaultTransport,
    });
    this.health = new TargetHealth({
      clock: ctx.clock,
      logger: ctx.logger,
      holdDownMs: opts.holdDownMs,
      ...(ctx.onMemberChange === undefined ? {} : { onChange: (t, up) => this.memberChanged(t, up) }),
    });
    const probe = opts.probe;
    this.prober =
      probe === false
        ? undefined
        : new HealthProber({
            health: this.health,
            probe: ctx.sendProbe ?? ((t) => this.probe(t)),
            ...probe,
            clock: ctx.clock,
            logger: ctx.logger,
          });
  }

  /** What the router's proxy needs. */
  routerDeps(): Omit<
    ProxyDeps,
    'record' | 'tags' | 'serverHeader' | 'logger' | 'clock' | 'secret' | 'onResponseLoop'
  > {
    return {
      clientTxns: this.clientTxns,
      targets: {
        resolve: (pool) => this.resolver.resolve(pool),
        cached: (pool) => this.resolver.cached(pool),
      },
      health: this.health,
      outbound: this.outbound,
      timersT1: this.ctx.timers.t1,
      settings: this.settings,
    };
  }

  /** Resolve every proxied pool and probe its members (at start and after each reload). */
  async refresh(table: EndpointTable): Promise<void> {
    if (this.prober === undefined) return;
    const pools = new Map<string, (typeof table extends Iterable<infer E> ? E : never)['pool']>();
    for (const e of table) if (e.mode === 'proxy' && e.enabled) pools.set(e.pool.fqdn, e.pool);
    const all: Target[] = [];
    const now = new Map<string, { pool: string; target: Target }>();
    const poolsOf = new Map<string, string[]>();
    for (const pool of pools.values()) {
      try {
        for (const target of await this.resolver.resolve(pool)) {
          all.push(target);
          now.set(`${pool.fqdn} ${target.id}`, { pool: pool.fqdn, target });
          poolsOf.set(target.id, [...(poolsOf.get(target.id) ?? []), pool.fqdn]);
        }
      } catch (err) {
        this.ctx.logger.warn(
          { pool: pool.fqdn, err: err instanceof Error ? err.message : String(err) },
          'pool members not resolved for probing',
        );
      }
    }
    this.prober.setTargets(all);
    // Every member is exposed from the start (assumed up until its first probe says otherwise), and
    // one a reload removed is no longer shown, as up or as down.
    for (const [key, m] of this.exposed) if (!now.has(key)) this.ctx.onMemberGone?.(m.pool, m.target);
    this.exposed = now;
    this.poolsOf = poolsOf;
    for (const m of now.values())
      this.ctx.onMemberChange?.(m.pool, m.target, this.health.isAvailable(m.target));
  }

  /** A member's health changed: told for each pool it serves. */
  private memberChanged(t: Target, up: boolean): void {
    for (const pool of this.poolsOf.get(t.id) ?? [t.host]) this.ctx.onMemberChange?.(pool, t, up);
  }

  /** One OPTIONS to a pool member through our own client transaction (RFC 3261 §11). */
  private async probe(t: Target): Promise<ProbeResult> {
    let sender;
    try {
      sender = await this.outbound.sender(t);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    const target = `sip:${hostPort(t.address, t.port)};transport=${t.transport}`;
    const request = new SipRequest(
      'OPTIONS',
      target,
      'SIP/2.0',
      [
        field('via', `SIP/2.0/${sender.transport.toUpperCase()} ${sender.sentBy};branch=${newBranch()}`),
        field('max-forwards', '70'),
        field('from', `<sip:pchat-endpoint@${sender.sentBy}>;tag=${newBranch().slice(7, 23)}`),
        field('to', `<${target}>`),
        field('call-id', `probe-${newBranch().slice(7)}`),
        field('cseq', '1 OPTIONS'),
      ],
      EMPTY_BODY,
    );
    return new Promise<ProbeResult>((resolve) => {
      const txn = this.clientTxns.createNonInvite({
        request,
        send: sender.send,
        reliable: sender.reliable,
        user: {
          onResponse: (res) => {
            if (res.status >= 200) resolve(res.status);
          },
          onTimeout: () => resolve('timeout'),
          onTransportError: (err) => resolve(err),
        },
      });
      txn.start();
    });
  }

  close(): void {
    this.prober?.stop();
    this.clientTxns.clear();
    this.connections.closeAll();
  }
}

function unavailableDns(): DnsLike {
  const fail = (): Promise<never> =>
    Promise.reject(new Error('no DNS server configured (proxy.dns.servers in server.yaml)'));
  return { resolveNaptr: fail, resolveSrv: fail, resolve4: fail, resolve6: fail };
}
