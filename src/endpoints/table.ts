// The endpoint table: well-known addresses keyed by canonical address-of-record, looked up once per
// request on the hot path.
import { aorKey, aorKeyFromText, parseSipUri } from '../sip/uri.js';
import { domainNameKey } from './domain-name.js';
import { callersRule, homePoolOf, ruleName, type HomingRule } from './homing.js';
import { UserTable } from './user-table.js';
import {
  maintenanceEnd,
  type Endpoint,
  type EndpointMode,
  type MaintenanceInput,
  type Pool,
} from './endpoint.js';

/**
 * What the table is built from: endpoints.yaml as the schema gives it back (src/config/schema.ts
 * EndpointsConfig has this shape), checked by the config layer's rules before it gets here.
 */
export interface EndpointsInput {
  readonly pools: readonly (MaintenanceInput & {
    readonly fqdn: string;
    readonly targets: readonly { readonly uri: string; readonly q?: number | undefined }[];
    readonly lookupUris?: readonly string[] | undefined;
  })[];
  readonly endpoints: readonly (MaintenanceInput & {
    readonly sipAddress: string;
    readonly poolFqdn: string;
    readonly displayName?: string | undefined;
    readonly mode: EndpointMode;
    readonly enabled: boolean;
    readonly recordRoute?: boolean | undefined;
    readonly lookupUris?: readonly string[] | undefined;
    readonly homing?:
      | readonly ({ readonly callers: string; readonly pool: string } | { readonly users: string })[]
      | undefined;
  })[];
}

export class EndpointTable {
  private readonly byKey: ReadonlyMap<string, Endpoint>;
  private readonly usedPools: readonly Pool[];
  /** Pools by name: those configured and those endpoints name. */
  private readonly poolsByName: ReadonlyMap<string, Pool>;
  /** The endpoint as each homed pool's callers meet it, made on first use. */
  private readonly homedCache = new WeakMap<Endpoint, Map<string, Endpoint>>();
  /**
   * The same endpoints by the rule that chose them (a rule belongs to one endpoint) and pool: found
   * on every homed request with no text put together, as homed()'s key and the rule's name would be.
   */
  private readonly byRule = new WeakMap<HomingRule, Map<string, Endpoint>>();

  private constructor(
    byKey: ReadonlyMap<string, Endpoint>,
    usedPools: readonly Pool[],
    poolsByName: ReadonlyMap<string, Pool>,
  ) {
    this.byKey = byKey;
    this.usedPools = usedPools;
    this.poolsByName = poolsByName;
  }

  /**
   * `endpoint` as `caller` (a From or P-Asserted-Identity value) meets it: the pool the first
   * matching homing rule names, or the endpoint as configured when none does.
   */
  homeFor(endpoint: Endpoint, caller: string | undefined): Endpoint {
    if (endpoint.homing === undefined) return endpoint;
    const choice = homePoolOf(endpoint.homing, caller);
    if (choice === undefined) return endpoint;
    let byPool = this.byRule.get(choice.rule);
    if (byPool === undefined) {
      byPool = new Map();
      this.byRule.set(choice.rule, byPool);
    }
    let e = byPool.get(choice.pool);
    if (e === undefined) {
      e = this.homed(endpoint, choice.pool, ruleName(choice.rule));
      byPool.set(choice.pool, e);
    }
    return e;
  }

  /**
   * `endpoint` as a caller homed on `poolFqdn` by `rule` meets it: the same address and mode, that
   * pool's targets, maintenance window and hand-out URI. One object per endpoint and pool, so what a
   * mode keeps per endpoint (a 302's Contact) is kept per pool.
   */
  homed(endpoint: Endpoint, poolFqdn: string, rule: string): Endpoint {
    let byPool = this.homedCache.get(endpoint);
    if (byPool === undefined) {
      byPool = new Map();
      this.homedCache.set(endpoint, byPool);
    }
    const key = `${poolFqdn}\n${rule}`;
    let e = byPool.get(key);
    if (e === undefined) {
      const pool =
        this.poolsByName.get(poolFqdn) ?? Object.freeze({ fqdn: poolFqdn, targets: Object.freeze([]) });
      e = Object.freeze({
        ...endpoint,
        poolFqdn,
        pool,
        lookupUris: this.handOut(endpoint, pool),
        homedBy: rule,
      });
      byPool.set(key, e);
    }
    return e;
  }

  /**
   * Lookup mode: the URIs a caller homed on `pool` is handed. The endpoint's own `lookupUris` when
   * the rule names its default pool anyway (they were written for that pool), else the pool entry's,
   * else the endpoint's user at the pool's name.
   */
  private handOut(endpoint: Endpoint, pool: Pool): readonly string[] {
    if (pool.fqdn === endpoint.poolFqdn) return endpoint.lookupUris;
    return pool.lookupUris ?? Object.freeze([`sip:${endpoint.user}@${pool.fqdn}`]);
  }

  /**
   * Builds the table from a configuration that has passed the schema and its rules. A duplicate address
   * still throws: silently letting one entry shadow another would route requests to the wrong pool.
   */
  static fromConfig(cfg: EndpointsInput, userTables?: ReadonlyMap<string, UserTable>): EndpointTable {
    const steps = EndpointTable.building(cfg, userTables);
    for (;;) {
      const step = steps.next();
      if (step.done === true) return step.value;
    }
  }

  /** Endpoints built between two pauses of `building`: a few milliseconds of work. */
  static readonly SLICE = 1024;

  /**
   * As fromConfig, pausing after every SLICE endpoints, so a caller holding an event loop can let other
   * work in between (a table of tens of thousands of endpoints takes tens of milliseconds to build).
   */
  static *building(
    cfg: EndpointsInput,
    userTables: ReadonlyMap<string, UserTable> = new Map(),
  ): Generator<void, EndpointTable, void> {
    const configured = new Map<string, Pool>();
    for (const p of cfg.pools) {
      const fqdn = domainNameKey(p.fqdn);
      const targets = p.targets.map((t) => Object.freeze({ uri: t.uri, q: t.q }));
      const maintenanceUntil = maintenanceEnd(p);
      configured.set(
        fqdn,
        Object.freeze({
          fqdn,
          targets: Object.freeze(targets),
          ...(maintenanceUntil === undefined ? {} : { maintenanceUntil }),
          ...(p.lookupUris === undefined ? {} : { lookupUris: Object.freeze([...p.lookupUris]) }),
        }),
      );
    }

    const byKey = new Map<string, Endpoint>();
    const used = new Map<string, Pool>();
    let n = 0;
    for (const e of cfg.endpoints) {
      if (++n % EndpointTable.SLICE === 0) yield;
      const uri = parseSipUri(e.sipAddress);
      const key = aorKey(uri);
      if (byKey.has(key)) throw new Error(`endpoint table: duplicate address ${e.sipAddress}`);
      const fqdn = domainNameKey(e.poolFqdn);
      // A pool with no entry under pools is resolved by DNS; it is still one object per name.
      const pool =
        used.get(fqdn) ?? configured.get(fqdn) ?? Object.freeze({ fqdn, targets: Object.freeze([]) });
      used.set(fqdn, pool);
      const user = uri.user ?? '';
      const maintenanceUntil = maintenanceEnd(e);
      const homing = e.homing?.map((r) =>
        'callers' in r
          ? callersRule(r.callers, r.pool)
          : ({ kind: 'users', file: r.users, table: userTables.get(r.users) ?? UserTable.EMPTY } as const),
      );
      byKey.set(
        key,
        Object.freeze({
          sipAddress: e.sipAddress,
          key,
          user,
          poolFqdn: fqdn,
          displayName: e.displayName,
          mode: e.mode,
          enabled: e.enabled,
          lookupUris: Object.freeze(e.lookupUris ?? [`sip:${user}@${fqdn}`]),
          ...(e.recordRoute === undefined ? {} : { recordRoute: e.recordRoute }),
          pool,
          ...(maintenanceUntil === undefined ? {} : { maintenanceUntil }),
          ...(homing === undefined ? {} : { homing: Object.freeze(homing) }),
        }),
      );
    }
    const byName = new Map([...configured, ...used]);
    return new EndpointTable(byKey, [...used.values()], byName);
  }

  /** The endpoint for a canonical address-of-record as made by aorKey, e.g. `ocschat@contoso.com`. */
  lookupKey(key: string): Endpoint | undefined {
    return this.byKey.get(key);
  }

  /**
   * The endpoint a Request-URI addresses, whatever its case or URI parameters. Disabled endpoints are
   * returned too: what to answer for them is the router's decision.
   */
  lookupUri(requestUri: string): Endpoint | undefined {
    const key = aorKeyFromText(requestUri);
    if (key === undefined) return undefined;
    const found = this.byKey.get(key);
    if (found !== undefined) return found;
    // Endpoint addresses carry no port; a Front End relaying to `sip:ocschat@contoso.com:5061`
    // still means the same address.
    const at = key.lastIndexOf('@');
    const colon = key.lastIndexOf(':');
    return colon > at && at >= 0 && !key.endsWith(']') ? this.byKey.get(key.slice(0, colon)) : undefined;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Endpoints in the order of the configuration file. */
  [Symbol.iterator](): Iterator<Endpoint> {
    return this.byKey.values();
  }

  /**
   * Each pool some endpoint (enabled or not) points at, once, in order of first use. Pools listed in
   * the configuration that no endpoint uses are left out: nothing is routed to them.
   */
  pools(): Iterable<Pool> {
    return this.usedPools;
  }
}
