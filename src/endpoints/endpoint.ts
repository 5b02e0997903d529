// The endpoint table's domain model: a well-known SIP address and the Persistent Chat pool it leads to.

import type { HomingRule } from './homing.js';

/**
 * What the router does with a request for an endpoint: forward it to the pool (`proxy`), answer 302
 * naming the pool (`redirect`), or answer as the legacy Group Chat Lookup service (`lookup`).
 */
export type EndpointMode = 'proxy' | 'redirect' | 'lookup';

/** Every mode, in the order operators see them documented. */
export const ENDPOINT_MODES = ['proxy', 'redirect', 'lookup'] as const satisfies readonly EndpointMode[];

export interface PoolTarget {
  /** A `sip:` or `sips:` URI naming one pool member, e.g. `sip:pc1.contoso.com:5041;transport=tls`. */
  readonly uri: string;
  /** Preference in [0, 1] as in a Contact `q` parameter; `undefined` when the operator gave none. */
  readonly q: number | undefined;
}

export interface Pool {
  /** Lower case, without a trailing dot; the name the pool layer resolves. */
  readonly fqdn: string;
  /**
   * A maintenance window (cutover): until this wall-clock time (ms since the epoch; Infinity for
   * "until switched off") requests for the pool's endpoints get 503 with Retry-After.
   */
  readonly maintenanceUntil?: number | undefined;
  /** Static targets that override DNS; empty when none are configured. */
  readonly targets: readonly PoolTarget[];
  /**
   * Lookup mode, callers homed on this pool: the URIs handed out to them (the pool's own contact,
   * as `lookupUris` on an endpoint is for its default pool); undefined: `sip:<endpoint user>@<fqdn>`.
   */
  readonly lookupUris?: readonly string[] | undefined;
}

export interface Endpoint {
  /** The address as the operator wrote it, e.g. `sip:ocschat@contoso.com`. */
  readonly sipAddress: string;
  /** The canonical address-of-record the table is keyed by, e.g. `ocschat@contoso.com`. */
  readonly key: string;
  /** The user part of the address, as written. */
  readonly user: string;
  /** As Pool.fqdn: lower case, without a trailing dot. */
  readonly poolFqdn: string;
  readonly displayName: string | undefined;
  readonly mode: EndpointMode;
  /** A disabled endpoint stays in the table so the router can tell "switched off" from "unknown". */
  readonly enabled: boolean;
  /**
   * The URIs handed out in `lookup` mode: those configured, else `sip:<user>@<poolFqdn>`. Filled for
   * every mode so a mode switch needs no other change.
   */
  readonly lookupUris: readonly string[];
  /** Shared by every endpoint that names the same pool. */
  readonly pool: Pool;
  /** Proxy mode: add Record-Route so in-dialog requests pass through us (server default when unset). */
  readonly recordRoute?: boolean | undefined;
  /** As Pool.maintenanceUntil, for this endpoint alone. */
  readonly maintenanceUntil?: number | undefined;
  /** Homing rules: the pool each caller is led to (src/endpoints/homing.ts); none: `pool` for all. */
  readonly homing?: readonly HomingRule[] | undefined;
  /**
   * On the endpoint as a homed caller meets it (EndpointTable.homed): the rule that chose its pool,
   * for the decision line. Undefined on the endpoint as configured.
   */
  readonly homedBy?: string | undefined;
}

/** How endpoints.yaml writes a maintenance window: a switch, or an end time. */
export interface MaintenanceInput {
  readonly maintenance?: 'on' | 'off' | undefined;
  readonly maintenanceUntil?: number | undefined;
}

/** When the window of an entry ends: ms since the epoch, Infinity for "on", undefined for none. */
export function maintenanceEnd(value: MaintenanceInput): number | undefined {
  if (value.maintenance === 'on') return Infinity;
  if (value.maintenance === 'off') return undefined;
  return value.maintenanceUntil;
}
