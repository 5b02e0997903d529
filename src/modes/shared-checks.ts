// The checks every mode shares, as one engine-neutral decision: a request for an endpoint (or for
// none) that one of them stops gets that answer, whichever mode the endpoint names. Plain data in,
// an Answer or nothing out: no socket, no transaction, no timer.

import type { Endpoint } from '../endpoints/endpoint.js';
import { splitHeaderValues } from '../sip/header-values.js';
import { HeaderBit } from '../sip/headers.js';
import type { SipRequest } from '../sip/message.js';
import type { Answer, Mode } from './mode.js';

/** The methods the service accepts, for the Allow header of its answers to OPTIONS (RFC 3261 §11.2). */
export const SERVICE_ALLOW =
  'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO, UPDATE, MESSAGE, SUBSCRIBE, NOTIFY, REFER\r\n';

/** What the shared checks read of a request. */
export type RequestFacts = Pick<SipRequest, 'method' | 'header' | 'headerLines' | 'has'>;

/**
 * Max-Forwards, Require or Proxy-Require, and, for an endpoint, whether it is switched off or in a
 * maintenance window. `mode` is the mode that would take the request (the endpoint's, or the one
 * routing in-dialog requests), undefined when none is configured. `now` is read only when a window
 * is set.
 */
export function sharedChecks(
  req: RequestFacts,
  endpoint: Endpoint | undefined,
  mode: Pick<Mode, 'forwards' | 'supported'> | undefined,
  now: () => number,
): Answer | undefined {
  const mf = req.header('max-forwards');
  // RFC 3261 §16.3 item 3: a request with Max-Forwards 0 is not sent on, and redirecting is sending on.
  // Validated as 1*DIGIT: only a value starting with "0" can be zero.
  if (mf !== undefined && mf.charCodeAt(0) === 0x30 && Number(mf) === 0)
    return { status: 483, outcome: 'too-many-hops', endpoint };
  // A UAS looks at Require (RFC 3261 §8.2.2.3), a proxy at Proxy-Require (§16.3 item 5).
  const unsupported = requiredExtensions(
    req,
    mode?.forwards === true ? 'proxy-require' : 'require',
    mode?.supported,
  );
  if (unsupported !== undefined) {
    // RFC 3261 §8.2.2.3: every Require tag not supported is listed back.
    return { status: 420, outcome: 'bad-extension', extra: `Unsupported: ${unsupported}\r\n`, endpoint };
  }
  if (endpoint === undefined) return undefined;
  if (!endpoint.enabled) return { status: 404, outcome: 'disabled', endpoint };
  // The clock is read only when a window is set (most endpoints never have one).
  const retryAfter =
    endpoint.maintenanceUntil === undefined && endpoint.pool.maintenanceUntil === undefined
      ? undefined
      : maintenanceRetryAfter(endpoint, now());
  if (retryAfter !== undefined) {
    // RFC 3261 §21.5.4: 503 with Retry-After while the endpoint or its pool is in a cutover window.
    return { status: 503, outcome: 'maintenance', extra: `Retry-After: ${retryAfter}\r\n`, endpoint };
  }
  return undefined;
}

/**
 * Seconds until the maintenance window of an endpoint (or its pool) ends, at least 1; undefined
 * when none is in force. An open-ended window ("on") asks clients to come back in an hour.
 */
export function maintenanceRetryAfter(endpoint: Endpoint, now: number): number | undefined {
  const until = Math.max(endpoint.maintenanceUntil ?? 0, endpoint.pool.maintenanceUntil ?? 0);
  if (until <= now) return undefined;
  if (until === Infinity) return 3600;
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/**
 * The Require (or Proxy-Require) option tags of a request that are not in `supported`, joined, or
 * undefined when there are none.
 */
function requiredExtensions(
  req: RequestFacts,
  header: 'require' | 'proxy-require',
  supported: ReadonlySet<string> | undefined,
): string | undefined {
  const bit = header === 'require' ? HeaderBit.require : HeaderBit['proxy-require'];
  if (req.method === 'ACK' || req.method === 'CANCEL' || !req.has(bit)) return undefined;
  const lines = req.headerLines(header);
  if (lines.length === 0) return undefined;
  const tags: string[] = [];
  for (const line of lines)
    for (const v of splitHeaderValues(line)) if (supported?.has(v.toLowerCase()) !== true) tags.push(v);
  return tags.length === 0 ? undefined : tags.join(', ');
}
