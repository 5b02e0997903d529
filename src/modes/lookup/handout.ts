// Which URI a lookup hands out: round-robin over an endpoint's lookupUris, as the Lookup service
// picked a Channel service (xccos.md §0), skipping URIs that health probing knows to be down.

import type { Endpoint } from '../../endpoints/endpoint.js';
import type { ProbeState } from '../../pool/index.js';
import { getUriParam, parseSipUri } from '../../sip/uri.js';

/** What health probing currently knows (HealthProber.states()); empty when nothing is probed. */
export type ProbeStates = () => readonly Pick<ProbeState, 'target' | 'up'>[];

export interface Handout {
  readonly uri: string;
  /** Every URI probing knows was down: this one is handed out anyway (see pick). */
  readonly allDown: boolean;
}

/**
 * Is a lookup URI known to be down: true when probing knows at least one member the URI names and
 * every such member is down; false when one is up; undefined when probing knows none of them (a URI
 * naming the pool FQDN, say, when the pool's members are found under other names).
 * A member is named by a URI when its host name or address is the URI's host and, where the URI
 * gives them, its port and transport agree.
 */
export function uriDown(
  uri: string,
  states: readonly Pick<ProbeState, 'target' | 'up'>[],
): boolean | undefined {
  if (states.length === 0) return undefined;
  let host: string;
  let port: number | undefined;
  let transport: string | undefined;
  try {
    const u = parseSipUri(uri);
    host = u.host.replace(/^\[|\]$/g, '').toLowerCase();
    port = u.port;
    const t = getUriParam(u, 'transport');
    transport = typeof t === 'string' ? t.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
  let known = false;
  for (const s of states) {
    const t = s.target;
    if (t.host.toLowerCase() !== host && t.address.toLowerCase() !== host) continue;
    if (port !== undefined && t.port !== port) continue;
    if (transport !== undefined && t.transport !== transport) continue;
    if (s.up) return false;
    known = true;
  }
  return known ? true : undefined;
}

export class HandoutPicker {
  /** Next position per endpoint key; one entry per configured lookup endpoint. */
  private readonly positions = new Map<string, number>();

  constructor(private readonly probes: ProbeStates = () => []) {}

  /**
   * The next URI for `endpoint`. When probing knows every URI is down, the next one is handed out
   * anyway: a client left without a URI retries only after 300 s (xccos.md §4), while a probe may be
   * wrong or a member may be back by the time the client gets there.
   */
  pick(endpoint: Endpoint): Handout {
    const uris = endpoint.lookupUris;
    const states = this.probes();
    const live = states.length === 0 ? uris : uris.filter((u) => uriDown(u, states) !== true);
    const from = live.length > 0 ? live : uris;
    const n = this.positions.get(endpoint.key) ?? 0;
    this.positions.set(endpoint.key, (n + 1) % 0x7fffffff);
    return { uri: from[n % from.length]!, allDown: live.length === 0 };
  }
}
