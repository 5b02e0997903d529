// The drachtio engine, wired: the router's modes and decision line, the guard as for a listener no
// access rule names, proxy mode's pools and health (probed through drachtio-server), lookup mode's
// settings. startServer takes this path instead of opening listeners when server.yaml says
// `engine: drachtio`.

import type { Logger } from 'pino';
import type { Clock } from '../base/clock.js';
import type { DrachtioConfig } from '../config/schema.js';
import { DrachtioEngine } from '../drachtio/engine.js';
import { LookupCarrier } from '../drachtio/lookup.js';
import { ProxyCarrier } from '../drachtio/proxy.js';
import type { Guard } from '../guard/guard.js';
import type { LookupSettings } from '../modes/lookup/lookup-service.js';
import type { ProxyMode } from '../modes/proxy/index.js';
import type { ProbeResult, Target } from '../pool/index.js';
import type { Router } from '../router/router.js';
import { hostPort } from '../sip/host-port.js';
import type { ProxySupport } from './proxy-setup.js';
import type { ServiceSettings } from './settings.js';

/** How long a probe waits for a drachtio-server link before it counts as failed, ms. */
const CONNECT_WAIT_MS = 3000;

/** The guard's name for requests drachtio-server hands over (access rules naming no listener apply). */
export const DRACHTIO_LISTENER = 'drachtio';

export interface DrachtioSetup {
  readonly config: DrachtioConfig;
  readonly settings: ServiceSettings;
  readonly lookup: LookupSettings;
  readonly router: Router;
  readonly guard: Guard;
  readonly proxySupport: ProxySupport;
  readonly clock: Clock;
  readonly logger: Logger;
}

export function drachtioEngine(d: DrachtioSetup): DrachtioEngine {
  const { settings: s, router, proxySupport } = d;
  const proxyMode = router.mode('proxy') as ProxyMode | undefined;
  const parse = { stream: false, maxHeaders: s.router.maxHeaders, maxLineLength: s.router.maxLineLength };
  return new DrachtioEngine({
    config: d.config,
    logger: d.logger,
    decider: router.decider,
    guard: d.guard.forListener(DRACHTIO_LISTENER),
    record: (level, fields) => router.record(level, fields),
    serverHeader: s.serverHeader,
    parse,
    retryAfter: s.router.retryAfter,
    stats: router.stats,
    proxy:
      proxyMode === undefined
        ? undefined
        : new ProxyCarrier({
            targets: { resolve: (pool) => proxySupport.resolver.resolve(pool) },
            health: proxySupport.health,
            noteMembers: (targets) => proxyMode.proxy.policy.noteMembers(targets),
            recordRoute: s.proxy.recordRoute,
            noMemberRetryAfter: s.proxy.noTargetRetryAfter,
            provisionalTimeoutMs: d.config.provisionalTimeout,
            finalTimeoutMs: d.config.finalTimeout,
            logger: d.logger,
          }),
    lookup: new LookupCarrier({
      settings: d.lookup,
      probes: () => proxySupport.prober?.states() ?? [],
      clock: d.clock,
      t1: s.timers.t1,
      serverHeader: s.serverHeader,
      parse,
      logger: d.logger,
    }),
  });
}

/**
 * A health probe (OPTIONS) sent through the first connected drachtio-server; its final status, or
 * an Error when none is connected. The prober times it out itself.
 */
export function probeThrough(engine: () => DrachtioEngine | undefined) {
  return async (t: Target): Promise<ProbeResult> => {
    // At start (and while drachtio restarts) the link may still be coming up: a member is not
    // taken down for that, unless it lasts.
    let srf = engine()?.links.connectedApps()[0];
    for (let waited = 0; srf === undefined && waited < CONNECT_WAIT_MS; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
      srf = engine()?.links.connectedApps()[0];
    }
    if (srf === undefined) return new Error('no drachtio-server connected');
    const uri = `sip:${hostPort(t.address, t.port)};transport=${t.transport}`;
    return new Promise<ProbeResult>((resolve) => {
      try {
        srf.request(uri, { method: 'OPTIONS', headers: { 'Max-Forwards': '70' } }, (err, req) => {
          if (err !== null && err !== undefined) {
            resolve(err instanceof Error ? err : new Error(JSON.stringify(err)));
            return;
          }
          req.on('response', (res: { status: number }) => {
            if (res.status >= 200) resolve(res.status);
          });
        });
      } catch (err) {
        resolve(err instanceof Error ? err : new Error(String(err)));
      }
    });
  };
}
