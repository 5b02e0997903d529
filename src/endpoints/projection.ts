// One projection of an endpoint and its pool: what an operator sees of them. The reload's
// "modified", the admin port's /endpoints and anything else that shows or compares endpoints use it,
// so none can miss a field: the type check below fails when Endpoint gains a field this leaves out.

import type { Endpoint, Pool } from './endpoint.js';

/** Fields of an Endpoint that are derived or shown through the pool, not shown on their own. */
type Derived = 'key' | 'user' | 'pool' | 'homedBy';

/** A maintenance window as shown: "on" (until switched off), an ISO 8601 instant, or null. */
export function windowView(ms: number | undefined): string | null {
  return ms === undefined ? null : ms === Infinity ? 'on' : new Date(ms).toISOString();
}

export function endpointProjection(e: Endpoint) {
  return {
    sipAddress: e.sipAddress,
    poolFqdn: e.poolFqdn,
    displayName: e.displayName ?? null,
    mode: e.mode,
    enabled: e.enabled,
    lookupUris: e.lookupUris,
    // Unset: the server's proxy.recordRoute applies.
    recordRoute: e.recordRoute ?? null,
    maintenanceUntil: windowView(e.maintenanceUntil),
    homing:
      e.homing?.map((r) =>
        r.kind === 'callers' ? { callers: r.pattern, pool: r.pool } : { users: r.file, rows: r.table.size },
      ) ?? null,
  } satisfies Record<Exclude<keyof Endpoint, Derived>, unknown>;
}

export function poolProjection(p: Pool) {
  return {
    fqdn: p.fqdn,
    targets: p.targets,
    maintenanceUntil: windowView(p.maintenanceUntil),
    lookupUris: p.lookupUris ?? null,
  } satisfies Record<keyof Pool, unknown>;
}
