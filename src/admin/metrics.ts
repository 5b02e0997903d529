// Prometheus metrics of the service: per-decision counters and latencies fed by the router's decision
// hook, gauges and counters read from the router when scraped, and reload outcomes.
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { DecisionFields } from '../base/log.js';
import type { EndpointTable } from '../endpoints/table.js';
import type { RouterStats } from '../router/router.js';
import type { GuardStats } from '../guard/guard.js';
import type { ConnectionWatchStats } from '../transport/connection-watch.js';
import { EventLoopDelay, type LoopDelayStats } from './event-loop-delay.js';

/** What the metrics read from the running service when scraped. */
export interface MetricsSource {
  readonly stats: RouterStats;
  transactionsInFlight(): number;
  endpoints(): number;
  /** Access control and flood protection counts (src/guard). */
  readonly guard?: { readonly stats: GuardStats; readonly trackedSources: number };
  /** Inbound connections open and those closed for overstaying a phase (src/transport). */
  readonly connections?: ConnectionWatchStats;
  /** The digest of the table serving (pchat_config_info): replaced when a reload swaps the table in. */
  readonly config?: () => ConfigInfo;
  /** The drachtio engine's links (src/drachtio), when it runs: what /metrics shows of their state. */
  readonly drachtio?: () => readonly { server: string; direction: string; state: string }[];
  /** HEP export (server.yaml `hep`): datagrams sent to collectors and those the socket refused. */
  readonly hep?: () => { readonly sent: number; readonly sendErrors: number };
  /** Lookup dialogs held (pchat_dialogs_held); left out where the engine holds them elsewhere. */
  readonly dialogs?: () => number;
  /** Whether /readyz answers 200 (pchat_ready): listening, not draining, engine connected. */
  readonly ready?: () => boolean;
  /** The table serving: which endpoints home their callers (pchat_homing_decisions_total's default). */
  readonly table?: () => EndpointTable;
}

/** What pchat_config_info carries: the table's digest and size. */
export interface ConfigInfo {
  /** SHA-256 of endpoints.yaml as loaded, hex. */
  readonly sha256: string;
  readonly endpoints: number;
}

/** What /status reports that the metrics already read: the same values a scrape shows. */
export interface MetricsSnapshot {
  readonly config: ConfigInfo | undefined;
  readonly transactionsInFlight: number;
  /** pchat_pool_member_up's series: members up and down as this instance's probes see them. */
  readonly poolMembers: { readonly up: number; readonly down: number };
}

// Method is a label, and any token is a valid method on the wire: anything outside this set is
// counted as "other" so a scanner cannot grow the label set without bound.
const METHODS = new Set([
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'OPTIONS',
  'REGISTER',
  'SUBSCRIBE',
  'NOTIFY',
  'MESSAGE',
  'INFO',
  'UPDATE',
  'REFER',
  'PRACK',
  'PUBLISH',
]);

export interface MetricsOptions {
  /**
   * Node's process metrics (CPU, memory, GC, event-loop lag). They are read only by a scrape of the
   * admin port, and collecting them costs wake-ups: off when the admin port is. Default on.
   */
  readonly processMetrics?: boolean;
}

/**
 * Event-loop lag is sampled by a timer of this period. prom-client's default, 10 ms, wakes the
 * process 100 times a second, idle or not; at 100 ms the lag percentiles still show a stalled loop.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * prom-client's own event-loop histogram cannot be left out of its default metrics; its figures are
 * replaced (eventLoopMetrics), so it samples rarely.
 */
const UNUSED_SAMPLE_MS = 60_000;

// Decisions take tens of microseconds; a cutover or a slow pool shows in the upper buckets.
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1];

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly contentType: string = this.registry.contentType;
  private readonly requests: DecisionCounter;
  private readonly responseTime: LatencyHistogram;
  private readonly reloads: Counter<'result'>;
  private readonly homing: HomingCounter;
  /**
   * Pool member state for the proxy mode's health probes: 1 up, 0 down, per pool (its FQDN) and target.
   * Each probed member has a series from the start (up until its first probe says otherwise),
   * set again whenever the prober sees it change state.
   */
  readonly poolMemberUp: Gauge<'pool' | 'target'>;
  /** The event-loop delay sampler, when process metrics are on: its timer stops with the service. */
  private readonly loopDelay: EventLoopDelay | undefined;

  constructor(
    private readonly source: MetricsSource,
    opts: MetricsOptions = {},
  ) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: UNUSED_SAMPLE_MS });
      this.loopDelay = new EventLoopDelay(EVENT_LOOP_SAMPLE_MS).start();
      eventLoopMetrics(this.registry, this.loopDelay);
    }
    // Every decision is tallied here, on the hot path, with plain arithmetic; prom-client's own
    // counters re-hash their labels on each update, which cost 10–15 µs a call under load (measured
    // against SIPp at 10,000 calls/s). The registry reads these tallies only when scraped.
    this.requests = new DecisionCounter(
      'pchat_requests_total',
      'Requests decided, by method, endpoint (its SIP address, "" when none matched), mode, outcome and status',
    );
    this.responseTime = new LatencyHistogram(
      'pchat_response_time_seconds',
      'Time from receiving a request to sending its response',
      LATENCY_BUCKETS,
    );
    this.registry.registerMetric(this.requests as unknown as Metric);
    this.registry.registerMetric(this.responseTime as unknown as Metric);
    this.homing = new HomingCounter(source.table);
    this.registry.registerMetric(this.homing as unknown as Metric);
    this.reloads = new Counter({
      name: 'pchat_config_reloads_total',
      help: 'Configuration reloads, by result: ok (applied) or refused (the last good table kept serving)',
      labelNames: ['result'],
      registers,
    });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'refused' }, 0);
    this.poolMemberUp = new Gauge({
      name: 'pchat_pool_member_up',
      help: 'Pool member health from the proxy mode probes: 1 up, 0 down',
      labelNames: ['pool', 'target'],
      registers,
    });
    routerMetrics(registers, source);
    if (source.guard !== undefined) guardMetrics(registers, source.guard);
    if (source.connections !== undefined) connectionMetrics(registers, source.connections);
    if (source.drachtio !== undefined) drachtioMetrics(registers, source.drachtio);
    if (source.config !== undefined) configMetrics(registers, source.config);
    if (source.hep !== undefined) hepMetrics(registers, source.hep);
    if (source.ready !== undefined) readyMetric(registers, source.ready);
    if (source.dialogs !== undefined) dialogsMetric(registers, source.dialogs);
  }

  /** The router's decision hook. */
  readonly onDecision = (d: DecisionFields): void => {
    const method = METHODS.has(d.method) ? d.method : 'other';
    const endpoint = d.endpoint ?? '';
    const mode = d.mode ?? '';
    this.requests.inc(method, endpoint, mode, d.outcome, d.status);
    if (d.endpoint !== undefined) this.homing.count(d.endpoint, d.pool, d.homing);
    this.responseTime.observe(method, d.outcome, d.latencyUs / 1e6);
  };

  /** Stops what samples on a timer (the event-loop delay); a scrape still answers. */
  close(): void {
    this.loopDelay?.stop();
  }

  reloaded(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'refused' });
  }

  /** The values /status shows, read as a scrape reads them. */
  async snapshot(): Promise<MetricsSnapshot> {
    let up = 0;
    let down = 0;
    for (const v of (await this.poolMemberUp.get()).values) {
      if (v.value === 1) up++;
      else down++;
    }
    return {
      config: this.source.config?.(),
      transactionsInFlight: this.source.transactionsInFlight(),
      poolMembers: { up, down },
    };
  }

  /** The exposition text, as served on /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** What the registry reads from a metric when scraped (prom-client's MetricObject shape). */
interface MetricValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

/**
 * A counter per label set, kept as plain numbers and read by the registry when scraped (prom-client's
 * own counters hash the labels object on every inc()).
 */
abstract class RowCounter<R extends { labels: Record<string, string>; count: number }> {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  abstract readonly name: string;
  abstract readonly help: string;
  protected readonly rows = new Map<string, R>();
  /** The row counted last: under load most counts repeat the one before, and skip the key. */
  protected last: R | undefined;

  /** Counts one for the row under `key`, made by `make` the first time. */
  protected countRow(key: string, make: () => R): void {
    let row = this.rows.get(key);
    if (row === undefined) {
      row = make();
      this.rows.set(key, row);
    }
    row.count++;
    this.last = row;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values = [...this.rows.values()].map((r) => ({ value: r.count, labels: r.labels }));
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  reset(): void {
    this.rows.clear();
    this.last = undefined;
  }
}

/** pchat_requests_total{method, endpoint, mode, outcome, status}. */
class DecisionCounter extends RowCounter<{ labels: Record<string, string>; count: number; status: number }> {
  constructor(
    readonly name: string,
    readonly help: string,
  ) {
    super();
  }

  inc(method: string, endpoint: string, mode: string, outcome: string, status: number): void {
    const last = this.last;
    if (
      last !== undefined &&
      last.status === status &&
      last.labels.outcome === outcome &&
      last.labels.method === method &&
      last.labels.endpoint === endpoint &&
      last.labels.mode === mode
    ) {
      last.count++;
      return;
    }
    this.countRow(`${method}\u0000${endpoint}\u0000${mode}\u0000${outcome}\u0000${status}`, () => ({
      labels: { method, endpoint, mode, outcome, status: String(status) },
      count: 0,
      status,
    }));
  }
}

/**
 * pchat_homing_decisions_total{endpoint, pool, rule}: decisions for endpoints with homing rules, by
 * the pool the caller was led to and the rule that chose it (`callers *@emea.contoso.com`,
 * `users users.csv`, or `default` when none did). Every label comes from the configuration, never
 * from a caller's address, so the series are bounded by the rules and pools configured.
 */
class HomingCounter extends RowCounter<{ labels: Record<string, string>; count: number }> {
  readonly name = 'pchat_homing_decisions_total';
  readonly help =
    'Decisions for endpoints with homing rules, by endpoint, the pool chosen and the rule that chose it ("default": none did)';
  /** Endpoints with homing rules and their own pool, for the table `defaultsOf` was made from. */
  private defaults: ReadonlyMap<string, string> = new Map();
  private defaultsOf: EndpointTable | undefined;

  constructor(private readonly table: (() => EndpointTable) | undefined) {
    super();
  }

  /** A decision for `endpoint`; `homing` is the rule that chose `pool`, undefined when none did. */
  count(endpoint: string, pool: string | undefined, homing: string | undefined): void {
    if (homing !== undefined) this.inc(endpoint, pool ?? '', homing);
    else {
      const own = this.defaultPool(endpoint);
      if (own !== undefined) this.inc(endpoint, own, 'default');
    }
  }

  private defaultPool(endpoint: string): string | undefined {
    const table = this.table?.();
    if (table === undefined) return undefined;
    if (table !== this.defaultsOf) {
      const defaults = new Map<string, string>();
      for (const e of table) if (e.homing !== undefined) defaults.set(e.sipAddress, e.poolFqdn);
      this.defaults = defaults;
      this.defaultsOf = table;
    }
    return this.defaults.get(endpoint);
  }

  private inc(endpoint: string, pool: string, rule: string): void {
    const last = this.last;
    if (
      last !== undefined &&
      last.labels.rule === rule &&
      last.labels.pool === pool &&
      last.labels.endpoint === endpoint
    ) {
      last.count++;
      return;
    }
    this.countRow(`${endpoint}\u0000${pool}\u0000${rule}`, () => ({
      labels: { endpoint, pool, rule },
      count: 0,
    }));
  }
}

/** pchat_response_time_seconds: bucket counts per (method, outcome), cumulated when scraped. */
class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly rows = new Map<
    string,
    { method: string; outcome: string; counts: Float64Array; sum: number; count: number }
  >();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {}

  private last:
    { method: string; outcome: string; counts: Float64Array; sum: number; count: number } | undefined;

  observe(method: string, outcome: string, seconds: number): void {
    let row = this.last;
    if (row === undefined || row.outcome !== outcome || row.method !== method) {
      const key = `${method}\u0000${outcome}`;
      row = this.rows.get(key);
      if (row === undefined) {
        row = { method, outcome, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
        this.rows.set(key, row);
      }
      this.last = row;
    }
    let i = 0;
    while (i < this.buckets.length && seconds > this.buckets[i]!) i++;
    row.counts[i]!++;
    row.sum += seconds;
    row.count++;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const r of this.rows.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += r.counts[i]!;
        const le = i < this.buckets.length ? this.buckets[i]! : '+Inf';
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { le, method: r.method, outcome: r.outcome },
          value: cumulative,
        });
      }
      values.push({
        metricName: `${this.name}_sum`,
        labels: { method: r.method, outcome: r.outcome },
        value: r.sum,
      });
      values.push({
        metricName: `${this.name}_count`,
        labels: { method: r.method, outcome: r.outcome },
        value: r.count,
      });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  reset(): void {
    this.rows.clear();
    this.last = undefined;
  }
}

type Registers = Registry[];

/** The router's counts and what it holds. */
function routerMetrics(registers: Registers, source: MetricsSource): void {
  new Gauge({
    name: 'pchat_transactions_in_flight',
    help: 'Server transactions held (including completed ones absorbing retransmissions)',
    registers,
    collect() {
      this.set(source.transactionsInFlight());
    },
  });
  new Gauge({
    name: 'pchat_endpoints',
    help: 'Endpoints in the live table',
    registers,
    collect() {
      this.set(source.endpoints());
    },
  });
  fromStats(
    registers,
    source,
    'pchat_parse_errors_total',
    'Messages refused as malformed (answered 400 or dropped)',
    'parseErrors',
  );
  fromStats(
    registers,
    source,
    'pchat_dropped_messages_total',
    'Messages dropped: no response could be routed, stray or refused responses, unmatched or refused ACKs',
    'dropped',
  );
  fromStats(
    registers,
    source,
    'pchat_stray_responses_total',
    'Responses matching no transaction: dropped, never forwarded',
    'strayResponses',
  );
  fromStats(
    registers,
    source,
    'pchat_responses_refused_total',
    'Responses from a source the access policy or the rate limit refuses (not where the request went): dropped',
    'responsesRefused',
  );
  fromStats(
    registers,
    source,
    'pchat_response_loops_total',
    'Responses whose next Via names the service: dropped as loops',
    'responseLoops',
  );
  fromStats(
    registers,
    source,
    'pchat_retransmissions_absorbed_total',
    'Request retransmissions answered by their transaction',
    'retransmissionsAbsorbed',
  );
  fromStats(
    registers,
    source,
    'pchat_internal_errors_total',
    'Messages whose handling failed inside the service',
    'internalErrors',
  );

  fromStats(
    registers,
    source,
    'pchat_overload_rejected_total',
    'New requests answered 503 because limits.maxTransactions was reached',
    'overloaded',
  );
  fromStats(
    registers,
    source,
    'pchat_drain_rejected_total',
    'New requests answered 503 while draining before shutdown',
    'drainRejected',
  );
}

/** Access control and flood protection (src/guard). */
function guardMetrics(registers: Registers, guard: NonNullable<MetricsSource['guard']>): void {
  fromCount(
    registers,
    'pchat_access_denied_total',
    'Requests (and TCP connections) refused by a listener allow list: 403 or dropped',
    () => guard.stats.accessDenied,
  );
  fromCount(
    registers,
    'pchat_rate_limited_total',
    'Requests dropped because their source exceeded limits.rate or was banned for it',
    () => guard.stats.rateLimited,
  );
  fromCount(
    registers,
    'pchat_source_bans_total',
    'Sources banned for exceeding limits.rate',
    () => guard.stats.bans,
  );
  fromCount(
    registers,
    'pchat_connections_refused_total',
    'TCP connections closed at once: per-source limit, banned source or network not allowed',
    () => guard.stats.connectionsRefused,
  );
  fromCounts(
    registers,
    'pchat_connections_over_cap_total',
    'Connections closed at accept over limits.tcp.maxConnectionsPerSource (source) or maxConnections (global)',
    'cap',
    {
      source: () => guard.stats.connectionsOverSourceCap,
      global: () => guard.stats.connectionsOverGlobalCap,
    },
  );
  new Gauge({
    name: 'pchat_rate_limited_sources',
    help: 'Source addresses tracked by the rate limiter',
    registers,
    collect() {
      this.set(guard.trackedSources);
    },
  });
}

/** Inbound connections (src/transport). */
function connectionMetrics(registers: Registers, connections: ConnectionWatchStats): void {
  new Gauge({
    name: 'pchat_connections_open',
    help: 'Inbound TCP, TLS and WebSocket connections open, those still in their handshake included',
    registers,
    collect() {
      this.set(connections.open);
    },
  });
  fromCounts(
    registers,
    'pchat_connections_timed_out_total',
    'Inbound connections destroyed for taking too long: handshake, one message (messageTimeout) or idle',
    'phase',
    {
      handshake: () => connections.timedOut.handshake,
      message: () => connections.timedOut.message,
      idle: () => connections.timedOut.idle,
    },
  );
}

/** A counter of a router count. */
function fromStats(
  registers: Registers,
  source: MetricsSource,
  name: string,
  help: string,
  key: keyof RouterStats,
): void {
  fromCount(registers, name, help, () => source.stats[key]);
}

/** A counter that catches up, when scraped, with a plain count the service keeps. */
function fromCount(registers: Registers, name: string, help: string, read: () => number): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers,
    collect() {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = now;
    },
  });
}

/** As fromCount, for several counts told apart by one label. */
function fromCounts(
  registers: Registers,
  name: string,
  help: string,
  label: string,
  reads: Record<string, () => number>,
): void {
  const seen = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      for (const [value, read] of Object.entries(reads)) {
        const now = read();
        const before = seen.get(value) ?? 0;
        this.inc({ [label]: value }, Math.max(0, now - before));
        seen.set(value, now);
      }
    },
  });
}

/** The drachtio engine's links: 1 while connected to a drachtio-server (or listening for them). */
function drachtioMetrics(registers: Registers, links: NonNullable<MetricsSource['drachtio']>): void {
  new Gauge({
    name: 'pchat_drachtio_connected',
    help: 'drachtio engine: 1 while connected to the drachtio-server (inbound) or listening for them (outbound), else 0',
    labelNames: ['server', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const l of links())
        this.set(
          { server: l.server, direction: l.direction },
          l.state === 'connected' || l.state === 'listening' ? 1 : 0,
        );
    },
  });
}

/**
 * pchat_config_info{sha256,endpoints} 1: one series, the table serving now, so an alert can compare
 * instances (count by (sha256) (pchat_config_info) > 1 across a fleet). Reset on each scrape: the
 * series of a table replaced by a reload goes, rather than lingering at 1 beside the new one.
 */
function configMetrics(registers: Registers, config: () => ConfigInfo): void {
  new Gauge({
    name: 'pchat_config_info',
    help: 'The endpoint table serving: sha256 of endpoints.yaml as loaded, and its endpoint count; always 1',
    labelNames: ['sha256', 'endpoints'],
    registers,
    collect() {
      const c = config();
      this.reset();
      this.set({ sha256: c.sha256, endpoints: String(c.endpoints) }, 1);
    },
  });
}

/** HEP export: what reached a socket for the collectors, and what did not (a collector down costs only this). */
function hepMetrics(registers: Registers, hep: NonNullable<MetricsSource['hep']>): void {
  fromCount(
    registers,
    'pchat_hep_sent_total',
    'HEP3 datagrams handed to a socket for a collector (one per message captured and collector)',
    () => hep().sent,
  );
  fromCount(
    registers,
    'pchat_hep_send_errors_total',
    'HEP3 datagrams not sent: refused by the socket, or a message too large for HEP3 (64 KiB)',
    () => hep().sendErrors,
  );
}

/** pchat_ready: 1 while /readyz answers 200, so an alert sees an instance that is up but not serving. */
function readyMetric(registers: Registers, ready: () => boolean): void {
  new Gauge({
    name: 'pchat_ready',
    help: 'Whether the instance is ready (GET /readyz answers 200): 1 ready, 0 not (draining, engine not connected)',
    registers,
    collect() {
      this.set(ready() ? 1 : 0);
    },
  });
}

/** pchat_dialogs_held: what the lookup service holds between a client's INVITE and its BYE. */
function dialogsMetric(registers: Registers, dialogs: () => number): void {
  new Gauge({
    name: 'pchat_dialogs_held',
    help: 'Lookup dialogs held: legacy Group Chat clients between their INVITE and BYE (at most lookup.maxDialogs)',
    registers,
    collect() {
      this.set(dialogs());
    },
  });
}

const LOOP_DELAY_GAUGES: readonly [keyof LoopDelayStats, string][] = [
  ['min', 'The shortest'],
  ['max', 'The longest'],
  ['mean', 'The mean'],
  ['stddev', 'The standard deviation of the'],
  ['p50', 'The median'],
  ['p90', 'The 90th percentile of the'],
  ['p99', 'The 99th percentile of the'],
];

/**
 * nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds, under prom-client's names, as the
 * delay beyond the sampling period (src/admin/event-loop-delay.ts): prom-client's own read about
 * 100 ms on an idle loop. The first gauge's collect reads the window the others then show; a scrape
 * collects them in the order they were registered.
 */
function eventLoopMetrics(registry: Registry, delay: EventLoopDelay): void {
  let stats: LoopDelayStats | undefined;
  for (const [key, what] of LOOP_DELAY_GAUGES) {
    const name = `nodejs_eventloop_lag_${key}_seconds`;
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help: `${what} event-loop delay since the last scrape: how late a timer due every ${EVENT_LOOP_SAMPLE_MS} ms fired, in seconds`,
      registers: [registry],
      collect() {
        if (key === 'min' || stats === undefined) stats = delay.read();
        this.set(stats[key]);
      },
    });
  }
}
