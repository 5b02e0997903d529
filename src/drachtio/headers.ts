// The header lines of an answer (Answer.extra: "Name: value\r\n" lines, as the native engine writes
// them) as drachtio-srf takes them: an object of name to value, with our Server header.

const cache = new Map<string, Record<string, string>>();
/** Distinct extras are few (a Contact per endpoint, a few Retry-After values); bounded all the same. */
const CACHE_MAX = 4096;

/** The headers for res.send; the same object for the same lines (drachtio-srf only reads it). */
export function answerHeaders(extra: string | undefined, server: string): Record<string, string> {
  const key = `${server}\n${extra ?? ''}`;
  let headers = cache.get(key);
  if (headers === undefined) {
    headers = server === '' ? {} : { Server: server };
    for (const line of (extra ?? '').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      // Two lines of one header are one header with both values (RFC 3261 §7.3.1).
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, headers);
  }
  return headers;
}
