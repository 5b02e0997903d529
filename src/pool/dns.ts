// The DNS resolver pool resolution uses in production: node:dns with explicit servers, never the
// system's resolv.conf by accident, so a test or a deployment always says which server it asks.

import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PoolOptionError } from './errors.js';
import type { DnsLike } from './types.js';

/** Per-try timeout when none is given; two tries are made per server. */
export const DEFAULT_DNS_TIMEOUT_MS = 2000;

/**
 * A resolver asking only `servers` (`'127.0.0.1'`, `'127.0.0.1:5353'`, `'[::1]:5353'`). Each query
 * gives up after about `timeoutMs` per try, two tries per server, so a dead server costs a bounded wait.
 */
export function createDnsResolver(servers: string[], timeoutMs = DEFAULT_DNS_TIMEOUT_MS): DnsLike {
  if (servers.length === 0)
    throw new PoolOptionError('createDnsResolver: at least one DNS server is required');
  for (const s of servers) {
    const host = isIP(s) !== 0 ? s : (/^\[(.*)\](?::\d+)?$/.exec(s)?.[1] ?? s.replace(/:\d+$/, ''));
    if (isIP(host) === 0) throw new PoolOptionError(`createDnsResolver: "${s}" is not an IP address[:port]`);
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new PoolOptionError(
      `createDnsResolver: timeoutMs must be a positive integer, got ${String(timeoutMs)}`,
    );
  }
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers(servers);
  return resolver;
}
