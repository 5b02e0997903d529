// Redirect mode: the Contact header of the 302 that names an endpoint's pool (RFC 3261 §8.3, §21.3.3).

import type { Endpoint } from '../../endpoints/endpoint.js';

// Endpoints are immutable and replaced whole on reload, so the header is built once per endpoint.
const cache = new WeakMap<Endpoint, string>();

/**
 * `Contact:` line(s) for a 302: the pool's static targets with their q-values, or, when none are
 * configured, `sip:<user>@<poolFqdn>` so the client's own resolution (RFC 3263) finds the pool.
 */
export function redirectContact(endpoint: Endpoint): string {
  let line = cache.get(endpoint);
  if (line === undefined) {
    const targets = endpoint.pool.targets;
    const values =
      targets.length === 0
        ? [`<sip:${endpoint.user}@${endpoint.poolFqdn}>`]
        : targets.map((t) => `<${t.uri}>${t.q === undefined ? '' : `;q=${formatQ(t.q)}`}`);
    line = `Contact: ${values.join(', ')}\r\n`;
    cache.set(endpoint, line);
  }
  return line;
}

/** RFC 3261 §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ). */
function formatQ(q: number): string {
  const s = (Math.round(q * 1000) / 1000).toFixed(3).replace(/0+$/, '').replace(/\.$/, '.0');
  return s;
}
