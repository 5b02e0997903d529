// How many files the process may open, and how many connections that leaves room for. Accepted
// connections that use up every descriptor take the admin port, reloads, certificate renewals and
// connections to pool members down with them; the connection cap keeps some back for those.
import { readFileSync } from 'node:fs';

/**
 * The soft limit on open files (RLIMIT_NOFILE) as Linux reports it in /proc/self/limits; undefined
 * where there is no such file or it says "unlimited". Node raises the soft limit to the hard one at
 * start-up, so this is what the process has.
 */
export function readDescriptorLimit(path = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+)\s/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Descriptors kept back from inbound connections: an eighth of the limit, at least 64 (listeners,
 * the admin port and its clients, pool connections, DNS, configuration and certificate reads, Node's
 * own), at most 4096.
 */
export function reservedDescriptors(limit: number): number {
  return Math.min(4096, Math.max(64, Math.ceil(limit / 8)));
}

/** Most inbound connections the descriptor limit leaves room for (at least 1). */
export function connectionRoom(limit: number): number {
  return Math.max(1, limit - reservedDescriptors(limit));
}
