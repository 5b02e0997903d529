// Composition root: reads the configuration, wires router, transactions, transports and the admin
// port, starts and stops the listeners, and reloads the configuration while running.

import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AdminServer, type AdminAddress } from '../admin/admin-server.js';
import { ServiceMetrics } from '../admin/metrics.js';
import { ConfigError, formatIssue } from '../config/errors.js';
import { loadConfig, loadIfChanged, SERVER_FILE, type LoadedConfig, type SeenFiles } from '../config/load.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { EndpointTable } from '../endpoints/table.js';
import { createLogger, flushLogger } from '../base/log.js';
import { Router, type RouterStats } from '../router/router.js';
import { buildModes } from '../modes/registry.js';
import { ProxySupport, type ProxyOptions } from './proxy-setup.js';
import { DEFAULT_LOOKUP_SETTINGS, type LookupSettings } from '../modes/lookup/lookup-service.js';
import type { Clock } from '../base/clock.js';
import { TimerWheel } from '../base/timer-wheel.js';
import { CertificateStore } from '../transport/certificates.js';
import { ConnectionWatch } from '../transport/connection-watch.js';
import { TcpListener } from '../transport/tcp.js';
import { TlsConnector, TlsListener } from '../transport/tls.js';
import type { FramedHead } from '../sip/parser.js';
import type { BoundAddress, Source } from '../transport/types.js';
import { listenUdp, type UdpListener } from '../transport/udp.js';
import type { WsListener } from '../transport/ws.js';
import { Guard, type GuardSettings } from '../guard/guard.js';
import { deploymentSecret } from '../guard/secret.js';
import { endpointProjection, poolProjection } from '../endpoints/projection.js';
import { readDescriptorLimit } from '../guard/descriptor-limit.js';
import { listenerId, parseListenAddress } from '../config/schema.js';

export interface StartOptions {
  /** Folder holding server.yaml and endpoints.yaml. */
  readonly configDir: string;
  /** Logger to use instead of the one server.yaml describes (tests capture lines this way). */
  readonly logger?: Logger;
  /** Overrides server.yaml's log level. */
  readonly logLevel?: string;
  readonly clock?: Clock;
  /** Wall-clock time in ms for maintenance windows; Date.now unless a test injects one. */
  readonly wallClock?: () => number;
  /** Proxy mode settings (DNS servers, Record-Route, probing, timers). */
  readonly proxy?: ProxyOptions;
  /** Lookup mode settings (session interval handed to clients, dialog idle timeout, limits). */
  readonly lookup?: Partial<LookupSettings>;
  /** Watch the configuration folder and reload on change (default true). */
  readonly watch?: boolean;
  /** Quiet time after the last change seen before reloading, in ms (default 100). */
  readonly reloadDebounceMs?: number;
}

/** How often the watched configuration folder is checked to still be the one watched, ms. */
const WATCH_CHECK_MS = 500;

/** What one reload did. */
export interface ReloadResult {
  /** False when the configuration was refused and the last good table kept serving. */
  readonly ok: boolean;
  /** What asked for it: watch, SIGHUP, http, api. */
  readonly trigger: string;
  /** Neither file had changed since the last look (watch only): nothing was done or logged. */
  readonly unchanged: boolean;
  readonly added: string[];
  readonly removed: string[];
  readonly modified: string[];
  /** server.yaml settings that changed but only take effect on a restart (not applied). */
  readonly restartNeeded: string[];
  /** Why it was refused: `file:line:col: path: reason`, one per problem. */
  readonly issues: string[];
  readonly endpoints: number;
}

export interface RunningServer {
  /** Where the service listens, with the ports the system chose for port 0. */
  addresses(): BoundAddress[];
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

/** What an endpoint is, as far as a reload's "modified" is concerned: all an operator sees of it. */
function fingerprint(e: Endpoint): string {
  return JSON.stringify([endpointProjection(e), poolProjection(e.pool)]);
}

/** What a reload changed, endpoint by endpoint; a slice a turn, as tables of tens of thousands take tens of ms. */
async function diffTablesInSlices(
  before: EndpointTable,
  after: EndpointTable,
): Promise<Pick<ReloadResult, 'added' | 'removed' | 'modified'>> {
  const old = new Map<string, Endpoint>();
  for (const e of before) old.set(e.key, e);
  const added: string[] = [];
  const modified: string[] = [];
  let n = 0;
  for (const e of after) {
    if (++n % EndpointTable.SLICE === 0) await nextTurn();
    const was = old.get(e.key);
    if (was === undefined) added.push(e.sipAddress);
    else if (fingerprint(was) !== fingerprint(e)) modified.push(e.sipAddress);
    old.delete(e.key);
  }
  return { added, removed: [...old.values()].map((e) => e.sipAddress), modified };
}

/** server.yaml sections that only a restart applies, when they differ. */
function restartOnly(before: LoadedConfig['server'], after: LoadedConfig['server']): string[] {
  const out: string[] = [];
  if (JSON.stringify(before.listen) !== JSON.stringify(after.listen)) out.push('listen');
  if (JSON.stringify(before.sip) !== JSON.stringify(after.sip)) out.push('sip');
  if (JSON.stringify(before.admin) !== JSON.stringify(after.admin)) out.push('admin');
  if (JSON.stringify(before.proxy) !== JSON.stringify(after.proxy)) out.push('proxy');
  if (JSON.stringify(before.lookup) !== JSON.stringify(after.lookup)) out.push('lookup');
  // The certificate files themselves are watched and reloaded; which files they are is read once.
  if (JSON.stringify(before.tls) !== JSON.stringify(after.tls)) out.push('tls');
  // access and limits.rate are applied live; the other limits shape listeners and the router.
  const fixedLimits = (l: LoadedConfig['server']['limits']): string => JSON.stringify({ ...l, rate: null });
  if (fixedLimits(before.limits) !== fixedLimits(after.limits)) out.push('limits');
  if (JSON.stringify(before.shutdown) !== JSON.stringify(after.shutdown)) out.push('shutdown');
  if (before.log.pretty !== after.log.pretty) out.push('log.pretty');
  return out;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const initial = await loadConfig(opts.configDir);
  const { server } = initial;
  const logger =
    opts.logger ?? createLogger({ level: opts.logLevel ?? server.log.level, pretty: server.log.pretty });
  for (const w of initial.warnings) logger.warn({ warning: w }, 'configuration warning');
  let current: LoadedConfig = initial;
  // The router reads this once per request: a reload swaps the reference, and a request already
  // being decided finishes with the table it started with.
  let table: EndpointTable = initial.table;
  const guard = new Guard(guardSettingsFrom(server), { logger, descriptorLimit: readDescriptorLimit() });
  // Every inbound connection is timed from accept: handshake, each message, the quiet between.
  const connectionWatch = new ConnectionWatch(
    {
      handshakeMs: server.limits.tcp.handshakeTimeout,
      messageMs: server.limits.tcp.messageTimeout,
      idleMs: server.limits.tcp.idleTimeout,
    },
    (socket, phase, limitMs) =>
      logger.debug(
        { peer: socket.remoteAddress ?? null, port: socket.remotePort ?? null, phase, limitMs },
        `connection closed: ${phase} took longer than ${limitMs} ms`,
      ),
  );
  // Metrics read the router only when scraped, so they can be made before it.
  const serviceMetrics: ServiceMetrics = new ServiceMetrics(
    {
      get stats(): RouterStats {
        return router.stats;
      },
      transactionsInFlight: () => router.transactions.size,
      endpoints: () => table.size,
      guard,
      connections: connectionWatch,
    },
    { processMetrics: server.admin.listen !== undefined },
  );
  const clock = opts.clock ?? new TimerWheel();
  const timers = { t1: server.sip.t1, t2: server.sip.t2, t4: server.sip.t4 };
  const udp: UdpListener[] = [];
  const tcp: TcpListener[] = [];
  const tls: TlsListener[] = [];
  const ws: WsListener[] = [];
  let certificates: CertificateStore | undefined;
  // Proxy mode: outbound connections, client transactions, pools and their health. Responses and
  // requests arriving on outbound connections go through the router like any other.
  const proxySupport = new ProxySupport(
    { ...proxyOptionsFrom(server.proxy), ...opts.proxy },
    {
      clock,
      timers,
      logger,
      maxMessageSize: server.sip.maxMessageSize,
      udp,
      tcp,
      onMessage: (data, source, head) => router.onMessage(data, source, head),
      onFramingError: (error, head, source) => router.onFramingError(error, head, source),
      onMemberChange: (t, up) => serviceMetrics.poolMemberUp.set({ pool: t.host, target: t.id }, up ? 1 : 0),
    },
  );
  const secret = deploymentSecret(server.security.secret);
  if (secret.generated)
    logger.info(
      'no security.secret configured: a random one is used, so signed routes hold for this process only',
    );
  const router: Router = new Router({
    table: () => table,
    logger,
    clock,
    timers,
    modes: buildModes({
      proxy: proxySupport.routerDeps(),
      // Lookup mode shares the proxy's client transactions and reads its pool members' probe states.
      lookup: {
        clientTxns: proxySupport.clientTxns,
        probes: () => proxySupport.prober?.states() ?? [],
        settings: {
          ...DEFAULT_LOOKUP_SETTINGS,
          sessionExpires: server.lookup.sessionExpires,
          idleTimeoutMs: server.lookup.idleTimeout,
          maxDialogs: server.lookup.maxDialogs,
          maxBodyBytes: server.lookup.maxBodyBytes,
          maxUnackedPerSource: server.lookup.maxUnackedPerSource,
          ...opts.lookup,
        },
      },
    }),
    maxMessageSize: server.sip.maxMessageSize,
    serverHeader: server.sip.serverHeader,
    ...(opts.wallClock === undefined ? {} : { wallClock: opts.wallClock }),
    onDecision: serviceMetrics.onDecision,
    secret: secret.key,
    limits: {
      maxHeaders: server.limits.maxHeaders,
      maxLineLength: server.limits.maxLineLength,
      maxTransactions: server.limits.maxTransactions,
      retryAfter: server.limits.overloadRetryAfter,
    },
  });

  let admin: AdminServer | undefined;
  let closed = false;
  let draining = false;
  const onError = (err: Error): void => logger.warn({ err }, 'transport error');

  // Reloads run one after another: each sees the state the previous one left. None can hold the
  // queue: every read has a timeout (config.readTimeout), refuses what is not a regular file without
  // waiting on it, and a large file is checked on a worker thread that is stopped on close.
  let queue: Promise<unknown> = Promise.resolve();
  const t = initial.texts;
  let lastSeen: SeenFiles = [{ text: t.server }, { text: t.endpoints }];
  const stopLoading = new AbortController();

  const doReload = async (trigger: string): Promise<ReloadResult> => {
    const base = { trigger, added: [], removed: [], modified: [], restartNeeded: [], issues: [] };
    // The last good read limits; a new server.yaml's limits apply to endpoints.yaml in this same load.
    const { seen, result } = await loadIfChanged(
      opts.configDir,
      {
        maxFileSize: current.server.config.maxFileSize,
        readTimeoutMs: current.server.config.readTimeout,
        signal: stopLoading.signal,
      },
      // Lock files, temp files and touches raise events too; only a change of content counts.
      trigger === 'watch' ? lastSeen : undefined,
    );
    lastSeen = seen;
    // Stopped meanwhile (the check was abandoned): nothing to apply, and nothing to log after "stopped".
    if (closed) return { ...base, ok: false, unchanged: false, endpoints: table.size };
    if (result === undefined) return { ...base, ok: true, unchanged: true, endpoints: table.size };
    if (result instanceof ConfigError) {
      serviceMetrics.reloaded(false);
      const issues = result.issues.map(formatIssue);
      logger.error(
        { trigger, issues },
        `reload refused, still serving the last good table (${table.size} endpoints): ${issues[0] ?? 'invalid'}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      );
      return { ...base, ok: false, unchanged: false, issues, endpoints: table.size };
    }
    const next = result;
    const diff = await diffTablesInSlices(table, next.table);
    const restartNeeded = restartOnly(current.server, next.server);
    // The log level is the one server.yaml setting applied live (unless the command line fixed it).
    let level = current.server.log.level;
    if (opts.logLevel === undefined && opts.logger === undefined && next.server.log.level !== level) {
      level = next.server.log.level;
      logger.level = level;
    }
    table = next.table;
    void proxySupport.refresh(table);
    // Allow lists and the rate limit apply at once; the rest of server.yaml waits for a restart.
    guard.update(guardSettingsFrom(next.server));
    current = {
      ...next,
      server: {
        ...current.server,
        log: { ...current.server.log, level },
        access: next.server.access,
        limits: { ...current.server.limits, rate: next.server.limits.rate },
        config: next.server.config,
      },
    };
    serviceMetrics.reloaded(true);
    for (const w of next.warnings) logger.warn({ warning: w }, 'configuration warning');
    logger.info(
      { trigger, ...diff, endpoints: table.size },
      `reload applied: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.modified.length} modified; ${table.size} endpoint${table.size === 1 ? '' : 's'}`,
    );
    if (restartNeeded.length > 0) {
      logger.warn(
        { trigger, restartNeeded },
        `${SERVER_FILE}: ${restartNeeded.join(', ')} changed: not applied, restart the service to apply`,
      );
    }
    return { ...base, ...diff, ok: true, unchanged: false, restartNeeded, endpoints: table.size };
  };

  const reload = (trigger = 'api'): Promise<ReloadResult> => {
    // SIGHUP and POST /reload also reread the certificates, for folders a watch cannot see into.
    if (trigger !== 'watch') void certificates?.reload();
    const run = queue.then(() => doReload(trigger));
    queue = run.catch(() => undefined);
    return run;
  };

  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let watchCheck: NodeJS.Timeout | undefined;
  // The folder watched, as device:inode; undefined while it is not watched (lost, not back yet).
  let watchedFolder: string | undefined;
  const folderId = (): Promise<string | undefined> =>
    stat(opts.configDir).then(
      (s) => (s.isDirectory() ? `${s.dev}:${s.ino}` : undefined),
      () => undefined,
    );
  const onWatchEvent = (): void => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      void checkWatch();
      reload('watch').catch((err: unknown) => logger.error({ err }, 'reload failed'));
    }, opts.reloadDebounceMs ?? 100);
  };
  const lose = (why: string, err?: unknown): void => {
    if (watchedFolder === undefined) return;
    watchedFolder = undefined;
    watcher?.close();
    watcher = undefined;
    logger.warn(
      { dir: opts.configDir, why, ...(err === undefined ? {} : { err }) },
      `configuration folder no longer watched (${why}): watching again once it is back`,
    );
  };
  const watchFolder = (id: string): boolean => {
    try {
      // The folder, not the files: an editor's save-by-rename and a ConfigMap's `..data` symlink swap
      // replace the file, and a watch on the old file would see nothing after that.
      watcher = watch(opts.configDir, { persistent: false }, onWatchEvent);
    } catch {
      // Tried again at the next check (e.g. the system's inotify watches are all in use).
      return false;
    }
    watcher.on('error', (err) => lose('watch error', err));
    watchedFolder = id;
    return true;
  };
  // A watch dies without a word when its folder is removed (inotify drops it) or replaced by a new
  // one of the same name; a stat now and then notices, and watches the folder again once it is back.
  let checking = false;
  const checkWatch = async (): Promise<void> => {
    // One check at a time: two at once could both set up a watch, and one would leak.
    if (checking) return;
    checking = true;
    const id = await folderId().finally(() => (checking = false));
    if (closed) return;
    if (watchedFolder !== undefined && id !== watchedFolder) {
      lose(id === undefined ? 'the folder is gone' : 'the folder was replaced');
    }
    if (watchedFolder === undefined && id !== undefined && watchFolder(id)) {
      logger.info({ dir: opts.configDir }, 'configuration folder watched again');
      // What changed while nobody watched.
      reload('watch').catch((err: unknown) => logger.error({ err }, 'reload failed'));
    }
  };
  const startWatching = async (): Promise<void> => {
    const id = await folderId();
    if (id === undefined || !watchFolder(id)) {
      logger.warn(
        { dir: opts.configDir },
        'configuration folder not watched (it cannot be watched now): watching once it can be',
      );
    }
    watchCheck = setInterval(() => void checkWatch(), WATCH_CHECK_MS);
    watchCheck.unref();
  };

  const closeAll = async (): Promise<void> => {
    closed = true;
    clearTimeout(debounce);
    clearInterval(watchCheck);
    watcher?.close();
    stopLoading.abort();
    guard.close();
    connectionWatch.stop();
    proxySupport.close();
    certificates?.close();
    await Promise.all([
      ...udp.map((u) => u.close()),
      ...tcp.map((t) => t.close()),
      ...tls.map((t) => t.close()),
      ...ws.map((w) => w.close()),
      admin?.close(),
    ]);
  };

  try {
    if (server.tls !== undefined) {
      certificates = await CertificateStore.load({ config: server.tls, baseDir: opts.configDir, logger });
      if (opts.watch !== false) certificates.watch();
      // Pool members are reached over TLS with our certificate, verified against their names.
      proxySupport.outbound.useTls(
        tls,
        new TlsConnector(
          proxySupport.connections,
          {
            maxMessageSize: server.sip.maxMessageSize,
            certificates,
            onError: (err) => logger.debug({ err: err.message }, 'outbound connection error'),
          },
          router.onMessage,
          router.onFramingError,
        ),
      );
    }
    for (const l of server.listen) {
      // Each listener's access policy and flood checks ride along with every message it receives.
      const lg = guard.forListener(listenerId(l));
      const onMessage = (data: Buffer, source: Source, head?: FramedHead): void =>
        router.onMessage(data, source, head, lg.admit);
      const maxMessageSize = server.sip.maxMessageSize;
      const watch = connectionWatch;
      switch (l.transport) {
        case 'udp':
          udp.push(
            await listenUdp(
              {
                host: l.host,
                port: l.port,
                engine: server.sip.udpEngine,
                onError,
                onFallback: (why) =>
                  logger.info({ why }, 'UDP: native engine not available, using node:dgram'),
              },
              onMessage,
            ),
          );
          break;
        case 'tcp':
          tcp.push(
            await TcpListener.listen(
              {
                host: l.host,
                port: l.port,
                maxMessageSize,
                watch,
                admit: lg.admitConnection,
                onError,
              },
              onMessage,
              router.onFramingError,
              proxySupport.connections,
            ),
          );
          break;
        case 'tls':
          // The schema refuses a tls:// listener without the tls section.
          if (certificates === undefined) throw new Error('tls:// listener without the tls section');
          tls.push(
            await TlsListener.listen(
              {
                host: l.host,
                port: l.port,
                maxMessageSize,
                watch,
                admit: lg.admitConnection,
                certificates,
                logger,
                onError,
              },
              onMessage,
              router.onFramingError,
              proxySupport.connections,
            ),
          );
          break;
        case 'ws':
        case 'wss': {
          // Loaded only when a WebSocket listener is configured: the ws package and its code weigh
          // about 2 MB of heap in every process that would never use them.
          const { WsListener } = await import('../transport/ws.js');
          ws.push(
            await WsListener.listen(
              {
                transport: l.transport,
                host: l.host,
                port: l.port,
                maxMessageSize,
                watch,
                admit: lg.admitConnection,
                certificates,
                logger,
                onError,
              },
              onMessage,
            ),
          );
          break;
        }
      }
    }
    if (server.admin.listen !== undefined) {
      admin = await AdminServer.listen(
        server.admin.listen,
        {
          metrics: serviceMetrics,
          ready: () => !closed && !draining,
          endpoints: () => endpointsView(table),
          reload: () => reload('http'),
        },
        (err) => logger.warn({ err }, 'admin port error'),
        { ...server.admin, baseDir: opts.configDir },
      );
    }
    if (opts.watch !== false) await startWatching();
  } catch (err) {
    await closeAll();
    throw err;
  }

  void proxySupport.refresh(table);
  const addresses = (): BoundAddress[] => [
    ...udp.map((u) => u.address),
    ...tcp.map((t) => t.address),
    ...tls.map((t) => t.address),
    ...ws.map((w) => w.address),
  ];
  for (const a of addresses()) {
    const engine = a.transport === 'udp' ? udp.find((u) => u.address === a)?.engine : undefined;
    logger.info({ transport: a.transport, host: a.host, port: a.port, engine }, 'listening');
  }
  if (admin !== undefined)
    logger.info({ admin: admin.address }, `admin port on http://${hostPort(admin.address)}/`);
  logger.info(
    { endpoints: table.size, files: initial.files },
    `endpoint table loaded: ${table.size} endpoint${table.size === 1 ? '' : 's'}`,
  );

  return {
    addresses,
    adminAddress: () => admin?.address,
    router,
    logger,
    metrics: serviceMetrics,
    get config() {
      return current;
    },
    table: () => table,
    reload,
    ready: () => !closed && !draining,
    guard,
    async drain(timeoutMs = server.shutdown.drainTime) {
      const t0 = performance.now();
      draining = true;
      router.draining = true;
      for (const t of [...tcp, ...tls, ...ws]) void t.stopAccepting();
      logger.info(
        { inFlight: router.inFlight(), drainTimeMs: timeoutMs },
        'draining: new requests answered 503, transactions in flight finishing',
      );
      // Polled rather than signalled: the check is cheap and the wait is bounded by timeoutMs.
      while (!closed && router.inFlight() > 0 && performance.now() - t0 < timeoutMs) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(50, timeoutMs)));
      }
      const inFlight = router.inFlight();
      const elapsedMs = Math.round(performance.now() - t0);
      if (inFlight === 0) logger.info({ elapsedMs }, 'drained: no transaction in flight');
      else
        logger.warn({ elapsedMs, inFlight }, 'drain time over: transactions still in flight are abandoned');
      return { drained: inFlight === 0, inFlight, elapsedMs };
    },
    async close() {
      if (closed) return;
      await closeAll();
      router.close();
      router.transactions.clear();
      logger.info('stopped');
      flushLogger(logger);
    },
  };
}

/** server.yaml's access and limits sections as the guard takes them. */
function guardSettingsFrom(s: LoadedConfig['server']): GuardSettings {
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

/** server.yaml's proxy section as the proxy layer takes it. */
function proxyOptionsFrom(p: LoadedConfig['server']['proxy']): ProxyOptions {
  return {
    recordRoute: p.recordRoute,
    timerCMs: p.timerC,
    holdDownMs: p.holdDown,
    noTargetRetryAfter: p.noMemberRetryAfter,
    defaultTransport: p.transport,
    ...(p.dns.servers.length > 0 ? { dnsServers: p.dns.servers } : {}),
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

function hostPort(a: AdminAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The live table as /endpoints serves it. */
export function endpointsView(table: EndpointTable): unknown {
  return {
    endpoints: [...table].map(endpointProjection),
    pools: [...table.pools()].map(poolProjection),
  };
}
