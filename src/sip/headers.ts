// Header names: canonical (lower-case, long) forms, RFC 3261 §7.3.3 compact forms, and wire spelling.

/** RFC 3261 §7.3.3 and RFC 3265/3515/3841/4028 compact forms, mapped to the canonical long name. */
const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  u: 'allow-events',
  r: 'refer-to',
  b: 'referred-by',
  a: 'accept-contact',
  j: 'reject-contact',
  d: 'request-disposition',
  x: 'session-expires',
  y: 'identity',
  n: 'identity-info',
};

/** Spelling used when we write a header ourselves. */
const WIRE: Record<string, string> = {
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  via: 'Via',
  from: 'From',
  to: 'To',
  contact: 'Contact',
  'content-length': 'Content-Length',
  'content-type': 'Content-Type',
  'max-forwards': 'Max-Forwards',
  'www-authenticate': 'WWW-Authenticate',
  'record-route': 'Record-Route',
  'retry-after': 'Retry-After',
};

// Header names repeat message after message; caching the wire spelling → canonical form saves a
// toLowerCase() and a map probe per header on the hot path. Bounded so garbage cannot grow it.
const nameCache = new Map<string, string>();
const NAME_CACHE_MAX = 512;

/** Canonical name for a header name as it appeared on the wire (already known to be a token). */
export function canonicalName(wire: string): string {
  const cached = nameCache.get(wire);
  if (cached !== undefined) return cached;
  const lower = wire.toLowerCase();
  const canonical = COMPACT[lower] ?? lower;
  if (nameCache.size < NAME_CACHE_MAX) nameCache.set(wire, canonical);
  return canonical;
}

/** How we spell a canonical name when serialising a header we add. */
export function wireName(canonical: string): string {
  const known = WIRE[canonical];
  if (known !== undefined) return known;
  return canonical.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
}

/**
 * Bits for the headers the service interprets. The parser records which of them a message has and
 * which appear more than once, so checks for absent or repeated headers cost no scan.
 */
export const HeaderBit = {
  via: 1 << 0,
  from: 1 << 1,
  to: 1 << 2,
  'call-id': 1 << 3,
  cseq: 1 << 4,
  'max-forwards': 1 << 5,
  'content-length': 1 << 6,
  contact: 1 << 7,
  require: 1 << 8,
  date: 1 << 9,
  'proxy-require': 1 << 10,
  route: 1 << 11,
  'record-route': 1 << 12,
} as const;

const BIT_BY_NAME = new Map<string, number>(Object.entries(HeaderBit));

/** The bit of a canonical header name, or 0 for headers without one. */
export function headerBit(canonical: string): number {
  return BIT_BY_NAME.get(canonical) ?? 0;
}
