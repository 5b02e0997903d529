// Composition root: reads the configuration, wires router, transactions, transports and the admin
// port, starts and stops the listeners; reloading while running is src/server/reload.ts, the
// listeners src/server/listeners.ts, and server.yaml's values become settings in src/server/settings.ts.

import type { Logger } from 'pino';
import { AdminServer, type AdminAddress } from '../admin/admin-server.js';
import { ServiceMetrics } from '../admin/metrics.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import type { ListenAddress } from '../config/schema.js';
import { EndpointTable } from '../endpoints/table.js';
import { createLogger, flushLogger } from '../base/log.js';
import { Router, type RouterStats } from '../router/router.js';
import { buildModes } from '../modes/registry.js';
import { LookupMode } from '../modes/lookup/index.js';
import { hostPort } from '../sip/host-port.js';
import { ProxySupport, type ProxyOptions } from './proxy-setup.js';
import type { LookupSettings } from '../modes/lookup/lookup-service.js';
import type { Clock } from '../base/clock.js';
import { TimerWheel } from '../base/timer-wheel.js';
import { CertificateStore } from '../transport/certificates.js';
import { ConnectionWatch } from '../transport/connection-watch.js';
import { TlsConnector } from '../transport/tls.js';
import type { BoundAddress } from '../transport/types.js';
import { Guard } from '../guard/guard.js';
import { deploymentSecret } from '../guard/secret.js';
import { endpointProjection, poolProjection } from '../endpoints/projection.js';
import { readDescriptorLimit } from '../guard/descriptor-limit.js';
import { HepCapture, hepSettingsFrom } from './hep-setup.js';
import { Listeners } from './listeners.js';
import { drachtioEngine, probeThrough } from './drachtio-setup.js';
import type { DrachtioEngine } from '../drachtio/engine.js';
import { Reloader, type ReloadResult, type TableDigest } from './reload.js';
import { guardSettingsFrom, serviceSettingsFrom, type ServiceSettings } from './settings.js';

export type { ReloadResult } from './reload.js';

export interface StartOptions {
  /** Folder holding server.yaml and endpoints.yaml. */
  readonly configDir: string;
  /** Logger to use instead of the one server.yaml describes (tests capture lines this way). */
  readonly logger?: Logger;
  /** Overrides server.yaml's log level. */
  readonly logLevel?: string;
  /**
   * SIP listeners in place of server.yaml's `listen` (serve --listen): several instances can share
   * one configuration folder on one host, each on its own address.
   */
  readonly listen?: readonly ListenAddress[];
  readonly clock?: Clock;
  /** Wall-clock time in ms for maintenance windows; Date.now unless a test injects one. */
  readonly wallClock?: () => number;
  /** Proxy mode settings in place of server.yaml's, one by one (tests: an in-memory DNS, no probing). */
  readonly proxy?: Partial<ProxyOptions>;
  /** Lookup mode settings in place of server.yaml's, one by one. */
  readonly lookup?: Partial<LookupSettings>;
  /** Watch the configuration folder and reload on change (default true). */
  readonly watch?: boolean;
  /** Quiet time after the last change seen before reloading, in ms (default 100). */
  readonly reloadDebounceMs?: number;
}

export interface RunningServer {
  /** Where the service listens, with the ports the system chose for port 0. */
  addresses(): BoundAddress[];
  /** The drachtio engine, when server.yaml says `engine: drachtio`. */
  engine(): DrachtioEngine | undefined;
  /** Where the admin HTTP port listens, or undefined when it is off. */
  adminAddress(): AdminAddress | undefined;
  readonly router: Router;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  /** The configuration in effect: the endpoints last loaded, the server settings the service started with. */
  readonly config: LoadedConfig;
  /** The live endpoint table. */
  table(): EndpointTable;
  /** Reads and validates the configuration again and swaps the table in; reloads run one at a time. */
  reload(trigger?: string): Promise<ReloadResult>;
  /** Listeners bound, table loaded, not stopping. */
  ready(): boolean;
  /** Access control and flood protection. */
  readonly guard: Guard;
  /**
   * Stops taking work before a shutdown: new requests get 503 with Retry-After, TCP listeners accept
   * no connection, /readyz answers 503; resolves when no transaction is waiting for its final
   * response, or after `timeoutMs` (server.yaml shutdown.drainTime by default). close() follows.
   */
  drain(timeoutMs?: number): Promise<DrainResult>;
  close(): Promise<void>;
}

export interface DrainResult {
  /** True when every transaction in flight finished within the time allowed. */
  readonly drained: boolean;
  /** Transactions still waiting for a final response when the drain ended. */
  readonly inFlight: number;
  readonly elapsedMs: number;
}

/** Quiet time after the last change a watch saw before it reloads, ms (StartOptions.reloadDebounceMs). */
const RELOAD_DEBOUNCE_MS = 100;

/** What startServer builds, kept for starting, draining and closing. */
interface Service {
  readonly configDir: string;
  readonly settings: ServiceSettings;
  readonly logger: Logger;
  readonly router: Router;
  readonly metrics: ServiceMetrics;
  readonly guard: Guard;
  readonly connectionWatch: ConnectionWatch;
  readonly proxySupport: ProxySupport;
  readonly reloader: Reloader;
  readonly listeners: Listeners;
  /** HEP capture (server.yaml `hep`), native engine only. */
  readonly hep: HepCapture;
  readonly clock: Clock;
  /** performance.now() when startServer was called: /status's uptime. */
  readonly startedAt: number;
  /** The drachtio engine, when server.yaml says `engine: drachtio` (no listener is opened then). */
  engine: DrachtioEngine | undefined;
  certificates: CertificateStore | undefined;
  admin: AdminServer | undefined;
  closed: boolean;
  draining: boolean;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const startedAt = performance.now();
  const initial = await loadConfig(opts.configDir);
  const { server } = initial;
  const settings = serviceSettingsFrom(server);
  const logger =
    opts.logger ?? createLogger({ level: opts.logLevel ?? server.log.level, pretty: server.log.pretty });
  for (const w of initial.warnings) logger.warn({ warning: w }, 'configuration warning');
  const guard = new Guard(settings.guard, { logger, descriptorLimit: readDescriptorLimit() });
  // Every inbound connection is timed from accept: handshake, each message, the quiet between.
  const connectionWatch = new ConnectionWatch(settings.transport.inbound, (socket, phase, limitMs) =>
    logger.debug(
      { peer: socket.remoteAddress ?? null, port: socket.remotePort ?? null, phase, limitMs },
      `connection closed: ${phase} took longer than ${limitMs} ms`,
    ),
  );
  const reloader = new Reloader(initial, {
    configDir: opts.configDir,
    logger,
    fixedLogLevel: opts.logLevel !== undefined || opts.logger !== undefined,
    reloaded: (ok) => metrics.reloaded(ok),
    applied: (next) => {
      void proxySupport.refresh(next.table);
      guard.update(guardSettingsFrom(next.server));
      if (settings.drachtio === undefined) hep.apply(hepSettingsFrom(next.server.hep));
    },
    rereadCertificates: () => void svc.certificates?.reload(),
  });
  // Metrics read the router only when scraped, so they can be made before it.
  const metrics: ServiceMetrics = new ServiceMetrics(
    {
      get stats(): RouterStats {
        return router.stats;
      },
      transactionsInFlight: () => router.transactions.size,
      endpoints: () => reloader.table.size,
      config: () => reloader.digest,
      table: () => reloader.table,
      guard,
      connections: connectionWatch,
      hep: () => hep.stats,
      ready: () => ready(svc),
      // The drachtio engine's lookup dialogs are its own (src/drachtio), not the router's.
      ...(settings.drachtio === undefined
        ? { dialogs: () => lookupDialogs(router) }
        : { drachtio: () => svc.engine?.views() ?? [], dialogs: () => svc.engine?.lookupDialogs() ?? 0 }),
    },
    { processMetrics: settings.admin !== undefined },
  );
  const clock = opts.clock ?? new TimerWheel();
  const listeners = new Listeners();
  const hep = new HepCapture(listeners.udp, logger);
  // Proxy mode: outbound connections, client transactions, pools and their health. Responses and
  // requests arriving on outbound connections go through the router like any other.
  const drachtio = settings.drachtio;
  // Outbound drachtio links give no way to send a request of our own: no probes then.
  const probeOff = drachtio !== undefined && drachtio.servers === undefined ? { probe: false as const } : {};
  const proxySupport = new ProxySupport(
    { ...settings.proxy, ...probeOff, ...opts.proxy },
    {
      clock,
      timers: settings.timers,
      logger,
      maxMessageSize: settings.transport.maxMessageSize,
      outboundTimeouts: settings.transport.outbound,
      udp: listeners.udp,
      tcp: listeners.tcp,
      onMessage: (data, source, head) => router.onMessage(data, source, head),
      onFramingError: (error, head, source) => router.onFramingError(error, head, source),
      capture: hep.hook,
      onMemberChange: (pool, t, up) => metrics.poolMemberUp.set({ pool, target: t.id }, up ? 1 : 0),
      onMemberGone: (pool, t) => metrics.poolMemberUp.remove({ pool, target: t.id }),
      ...(drachtio === undefined ? {} : { sendProbe: probeThrough(() => svc.engine) }),
    },
  );
  const router = routerFor(settings, opts, { logger, clock, reloader, proxySupport, metrics, guard, hep });
  const svc: Service = {
    configDir: opts.configDir,
    settings,
    logger,
    router,
    metrics,
    guard,
    connectionWatch,
    proxySupport,
    reloader,
    listeners,
    hep,
    clock,
    startedAt,
    engine: undefined,
    certificates: undefined,
    admin: undefined,
    closed: false,
    draining: false,
  };
  try {
    await open(svc, server, opts);
  } catch (err) {
    await closeService(svc);
    throw err;
  }
  void proxySupport.refresh(reloader.table);
  logStarted(svc, initial);
  startHep(svc, server);
  return {
    addresses: () => listeners.addresses(),
    engine: () => svc.engine,
    adminAddress: () => svc.admin?.address,
    router,
    logger,
    metrics,
    get config() {
      return reloader.current;
    },
    table: () => reloader.table,
    reload: (trigger) => reloader.reload(trigger),
    ready: () => ready(svc),
    guard,
    drain: (timeoutMs = settings.drainTimeMs) => drainService(svc, timeoutMs),
    async close() {
      if (svc.closed) return;
      await closeService(svc);
      router.close();
      router.transactions.clear();
      logger.info('stopped');
      flushLogger(logger);
    },
  };
}

/** The router, with each mode's collaborators and settings. */
function routerFor(
  s: ServiceSettings,
  opts: StartOptions,
  d: {
    logger: Logger;
    clock: Clock;
    reloader: Reloader;
    proxySupport: ProxySupport;
    metrics: ServiceMetrics;
    guard: Guard;
    hep: HepCapture;
  },
): Router {
  const secret = deploymentSecret(s.secret);
  if (secret.generated)
    d.logger.info(
      'no security.secret configured: a random one is used, so signed routes hold for this process only',
    );
  const { reloader, proxySupport } = d;
  return new Router({
    table: () => reloader.table,
    logger: d.logger,
    clock: d.clock,
    timers: s.timers,
    modes: buildModes({
      proxy: proxySupport.routerDeps(),
      // Lookup mode shares the proxy's client transactions and reads its pool members' probe states.
      lookup: {
        clientTxns: proxySupport.clientTxns,
        probes: () => proxySupport.prober?.states() ?? [],
        settings: { ...s.lookup, ...opts.lookup },
      },
    }),
    maxMessageSize: s.transport.maxMessageSize,
    serverHeader: s.serverHeader,
    ...(opts.wallClock === undefined ? {} : { wallClock: opts.wallClock }),
    onDecision: d.metrics.onDecision,
    secret: secret.key,
    limits: s.router,
    trustsIdentity: (address) => d.guard.trustsIdentity(address),
    capture: d.hep.hook,
  });
}

/** Dialogs the router's lookup mode holds; 0 when lookup mode is not built. */
function lookupDialogs(router: Router): number {
  const mode = router.mode('lookup');
  return mode instanceof LookupMode ? mode.service.size : 0;
}

/** Not closed, not draining, and with the drachtio engine, connected to a drachtio-server. */
function ready(svc: Service): boolean {
  return !svc.closed && !svc.draining && (svc.engine === undefined || svc.engine.ready());
}

/**
 * Loads the certificates, opens the listeners (or connects to drachtio) and the admin port, and
 * starts watching the folder.
 */
async function open(svc: Service, server: LoadedConfig['server'], opts: StartOptions): Promise<void> {
  const { settings, logger, router, proxySupport } = svc;
  if (settings.drachtio !== undefined) {
    svc.engine = drachtioEngine({
      config: settings.drachtio,
      settings,
      lookup: { ...settings.lookup, ...opts.lookup },
      router,
      guard: svc.guard,
      proxySupport,
      clock: svc.clock,
      logger,
    });
    await svc.engine.start();
  } else await openNative(svc, server, opts);
  await openAdmin(svc);
  if (opts.watch !== false) await svc.reloader.watch(opts.reloadDebounceMs ?? RELOAD_DEBOUNCE_MS);
}

/** The native engine: certificates, the proxy's TLS connector and the listeners. */
async function openNative(svc: Service, server: LoadedConfig['server'], opts: StartOptions): Promise<void> {
  const { settings, logger, router, proxySupport } = svc;
  if (server.tls !== undefined) {
    const certificates = await CertificateStore.load({ config: server.tls, baseDir: svc.configDir, logger });
    svc.certificates = certificates;
    if (opts.watch !== false) certificates.watch();
    // Pool members are reached over TLS with our certificate, verified against their names.
    proxySupport.outbound.useTls(
      svc.listeners.tls,
      new TlsConnector(
        proxySupport.connections,
        {
          maxMessageSize: settings.transport.maxMessageSize,
          ...settings.transport.outbound,
          certificates,
          onError: (err) => logger.debug({ err: err.message }, 'outbound connection error'),
          capture: svc.hep.hook,
        },
        router.onMessage,
        router.onFramingError,
      ),
    );
  }
  await svc.listeners.open(opts.listen ?? server.listen, {
    transport: settings.transport,
    logger,
    guard: svc.guard,
    watch: svc.connectionWatch,
    certificates: svc.certificates,
    connections: proxySupport.connections,
    onMessage: router.onMessage,
    onFramingError: router.onFramingError,
    capture: svc.hep.hook,
  });
}

/**
 * HEP capture, once the listeners are open (its datagrams leave by them where it can). The drachtio
 * engine's messages are on drachtio-server's sockets, which has a HEP capture of its own.
 */
function startHep(svc: Service, server: LoadedConfig['server']): void {
  const settings = hepSettingsFrom(server.hep);
  if (svc.settings.drachtio === undefined) svc.hep.apply(settings);
  else if (settings !== undefined)
    svc.logger.warn(
      'hep: not applied with engine: drachtio; drachtio-server captures the SIP it carries with its own HEP (drachtio --homer host:port --homer-id N)',
    );
}

async function openAdmin(svc: Service): Promise<void> {
  const { settings, logger } = svc;
  if (settings.admin !== undefined) {
    svc.admin = await AdminServer.listen(
      settings.admin.listen,
      {
        metrics: svc.metrics,
        ready: () => ready(svc),
        uptimeMs: () => performance.now() - svc.startedAt,
        endpoints: () => endpointsView(svc.reloader.table, svc.reloader.digest),
        reload: () => svc.reloader.reload('http'),
        drachtioRoute: () => {
          const uri = svc.engine?.links.outboundAddress();
          if (uri === undefined) return undefined;
          return svc.draining ? 'draining' : { uri };
        },
        drachtio: () => (svc.engine === undefined ? undefined : { links: svc.engine.views() }),
      },
      (err) => logger.warn({ err }, 'admin port error'),
      { ...settings.admin.access, baseDir: svc.configDir },
    );
  }
}

function logStarted(svc: Service, initial: LoadedConfig): void {
  const { logger, admin } = svc;
  svc.listeners.logListening(logger);
  if (admin !== undefined)
    logger.info(
      { admin: admin.address },
      `admin port on http://${hostPort(admin.address.host, admin.address.port)}/`,
    );
  const size = svc.reloader.table.size;
  logger.info(
    { endpoints: size, files: initial.files },
    `endpoint table loaded: ${size} endpoint${size === 1 ? '' : 's'}`,
  );
}

/**
 * Stops taking work: new requests get 503, stream listeners accept no connection, /readyz answers
 * 503; waits until no transaction is in flight or `timeoutMs` has passed.
 */
async function drainService(svc: Service, timeoutMs: number): Promise<DrainResult> {
  const { router, logger } = svc;
  const t0 = performance.now();
  svc.draining = true;
  router.draining = true;
  svc.listeners.stopAccepting();
  svc.engine?.drain();
  const inFlightNow = (): number => router.inFlight() + (svc.engine?.inFlight() ?? 0);
  logger.info(
    { inFlight: inFlightNow(), drainTimeMs: timeoutMs },
    'draining: new requests answered 503, transactions in flight finishing',
  );
  // Polled rather than signalled: the check is cheap and the wait is bounded by timeoutMs.
  while (!svc.closed && inFlightNow() > 0 && performance.now() - t0 < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, timeoutMs)));
  }
  const inFlight = inFlightNow();
  const elapsedMs = Math.round(performance.now() - t0);
  if (inFlight === 0) logger.info({ elapsedMs }, 'drained: no transaction in flight');
  else logger.warn({ elapsedMs, inFlight }, 'drain time over: transactions still in flight are abandoned');
  return { drained: inFlight === 0, inFlight, elapsedMs };
}

/** Stops the watch, the timers and every socket; also what a failed start undoes. */
async function closeService(svc: Service): Promise<void> {
  svc.closed = true;
  svc.reloader.close();
  svc.guard.close();
  svc.connectionWatch.stop();
  svc.proxySupport.close();
  svc.hep.close();
  svc.engine?.close();
  svc.certificates?.close();
  svc.metrics.close();
  await Promise.all([svc.listeners.close(), svc.admin?.close()]);
}

/** The live table as /endpoints serves it, with the digest pchat_config_info carries. */
export function endpointsView(table: EndpointTable, digest: TableDigest): unknown {
  return {
    config: digest,
    endpoints: [...table].map(endpointProjection),
    pools: [...table.pools()].map(poolProjection),
  };
}
