// server.yaml, once the schema has parsed it, as the settings each layer takes. This is the one place
// a configuration key becomes a setting; every value comes from the parsed config, so the schema's
// defaults are the only defaults (inner layers take their settings whole and supply none).

import type { AdminAccess } from '../admin/admin-server.js';
import type { TimerValues } from '../base/clock.js';
import type { AdminListen, DrachtioConfig, ServerConfig } from '../config/schema.js';
import { listenerId, parseListenAddress } from '../config/schema.js';
import type { GuardSettings } from '../guard/guard.js';
import type { LookupSettings } from '../modes/lookup/lookup-service.js';
import type { RouterLimits } from '../router/router.js';
import type { ConnectionTimeouts } from '../transport/connection-watch.js';
import type { OutboundTimeouts } from '../transport/tcp.js';
import type { UdpEngineChoice } from '../transport/udp.js';
import type { ProxyOptions } from './proxy-setup.js';

/** What the transports take from server.yaml (listen addresses aside). */
export interface TransportSettings {
  readonly maxMessageSize: number;
  readonly udpEngine: UdpEngineChoice;
  /** Inbound connections, timed from accept by the ConnectionWatch. */
  readonly inbound: ConnectionTimeouts;
  /** Connections we open to pool members. */
  readonly outbound: OutboundTimeouts;
}

/** The admin port: where it listens and who may call it (the folder a tokenFile is read from aside). */
export interface AdminSettings {
  readonly listen: AdminListen;
  readonly access: Omit<AdminAccess, 'baseDir'>;
}

/** Every setting the composition root hands out, section by section. */
export interface ServiceSettings {
  /** RFC 3261 §17.1.1.1 T1, T2, T4. */
  readonly timers: TimerValues;
  readonly serverHeader: string;
  readonly router: RouterLimits;
  readonly proxy: ProxyOptions;
  readonly lookup: LookupSettings;
  readonly guard: GuardSettings;
  readonly transport: TransportSettings;
  /** Undefined when the admin port is off. */
  readonly admin: AdminSettings | undefined;
  /** How long a drain before shutdown waits for transactions in flight, ms. */
  readonly drainTimeMs: number;
  /** Key of our Record-Route signatures and stateless To tags; undefined: a random one per process. */
  readonly secret: string | undefined;
  /** `drachtio` when drachtio-server carries SIP: its section (the schema requires it then). */
  readonly drachtio: DrachtioConfig | undefined;
}

export function serviceSettingsFrom(s: ServerConfig): ServiceSettings {
  return {
    timers: { t1: s.sip.t1, t2: s.sip.t2, t4: s.sip.t4 },
    serverHeader: s.sip.serverHeader,
    router: routerLimitsFrom(s),
    proxy: proxyOptionsFrom(s),
    lookup: lookupSettingsFrom(s),
    guard: guardSettingsFrom(s),
    transport: transportSettingsFrom(s),
    admin: adminSettingsFrom(s),
    drainTimeMs: s.shutdown.drainTime,
    secret: s.security.secret,
    drachtio: s.engine === 'drachtio' ? s.drachtio : undefined,
  };
}

/** server.yaml's limits as the router takes them: parser limits and the cap on transactions. */
export function routerLimitsFrom(s: ServerConfig): RouterLimits {
  return {
    maxHeaders: s.limits.maxHeaders,
    maxLineLength: s.limits.maxLineLength,
    maxTransactions: s.limits.maxTransactions,
    retryAfter: s.limits.overloadRetryAfter,
  };
}

/** server.yaml's proxy section as the proxy layer takes it. */
export function proxyOptionsFrom(s: ServerConfig): ProxyOptions {
  const p = s.proxy;
  return {
    recordRoute: p.recordRoute,
    timerCMs: p.timerC,
    holdDownMs: p.holdDown,
    noTargetRetryAfter: p.noMemberRetryAfter,
    defaultTransport: p.transport,
    dnsServers: p.dns.servers,
    probe: p.probe.enabled
      ? {
          intervalMs: p.probe.interval,
          timeoutMs: p.probe.timeout,
          upThreshold: p.probe.upThreshold,
          downThreshold: p.probe.downThreshold,
        }
      : false,
  };
}

/** server.yaml's lookup section as the lookup service takes it. */
export function lookupSettingsFrom(s: ServerConfig): LookupSettings {
  return {
    sessionExpires: s.lookup.sessionExpires,
    idleTimeoutMs: s.lookup.idleTimeout,
    maxDialogs: s.lookup.maxDialogs,
    maxBodyBytes: s.lookup.maxBodyBytes,
    maxUnackedPerSource: s.lookup.maxUnackedPerSource,
  };
}

/** server.yaml's access and limits sections as the guard takes them. */
export function guardSettingsFrom(s: ServerConfig): GuardSettings {
  const r = s.limits.rate;
  return {
    access: {
      action: s.access.action,
      logIntervalMs: s.access.logInterval,
      rules: s.access.allow.map((rule) => ({
        listeners: rule.listen?.map((text) => {
          const a = parseListenAddress(text);
          // The schema has checked every name against the listen entries.
          return typeof a === 'string' ? text : listenerId(a);
        }),
        networks: rule.networks,
        certificates: rule.certificates,
      })),
      trustIdentity: s.access.trustIdentity,
    },
    rate:
      r.requests === 0
        ? undefined
        : {
            requests: r.requests,
            windowMs: r.window,
            banMs: r.ban,
            maxSources: r.maxSources,
            exempt: r.exempt,
          },
    maxConnectionsPerSource: s.limits.tcp.maxConnectionsPerSource,
    maxConnections: s.limits.tcp.maxConnections,
  };
}

/** server.yaml's sip and limits.tcp sections, and proxy.connectTimeout, as the transports take them. */
export function transportSettingsFrom(s: ServerConfig): TransportSettings {
  const tcp = s.limits.tcp;
  return {
    maxMessageSize: s.sip.maxMessageSize,
    udpEngine: s.sip.udpEngine,
    inbound: { handshakeMs: tcp.handshakeTimeout, messageMs: tcp.messageTimeout, idleMs: tcp.idleTimeout },
    outbound: { connectTimeoutMs: s.proxy.connectTimeout, idleTimeoutMs: tcp.idleTimeout },
  };
}

/** server.yaml's admin section as the admin port takes it, or undefined when the port is off. */
export function adminSettingsFrom(s: ServerConfig): AdminSettings | undefined {
  const a = s.admin;
  if (a.listen === undefined) return undefined;
  return {
    listen: a.listen,
    access: { hosts: a.hosts, allowOrigins: a.allowOrigins, token: a.token, tokenFile: a.tokenFile },
  };
}
