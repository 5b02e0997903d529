// Building what a proxy sends on (RFC 3261 §16.6, §16.7): the forwarded request with our Via (and
// Record-Route) on top and Max-Forwards decremented, and the response with our Via taken off.
// Every other header line and the body pass through unchanged.

import { field, SipRequest, SipResponse, type HeaderField } from '../../sip/message.js';
import { splitFirstElement } from '../../sip/header-values.js';
import { HeaderBit } from '../../sip/headers.js';

export interface ForwardOptions {
  /** Our Via value, branch included: "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK…". */
  readonly via: string;
  /** A Record-Route value to add (RFC 3261 §16.6 item 4), or undefined. */
  readonly recordRoute?: string | undefined;
  /** Drop the first Route value: it named us (loose routing, RFC 3261 §16.4). */
  readonly popRoute?: boolean;
}

/** RFC 3261 §16.6 items 1–8: the copy of the request sent to one target. */
export function forwardedRequest(req: SipRequest, opts: ForwardOptions): SipRequest {
  const headers: HeaderField[] = [field('via', opts.via)];
  if (opts.recordRoute !== undefined) headers.push(field('record-route', opts.recordRoute));
  let sawMaxForwards = false;
  let popRoute = opts.popRoute === true;
  for (const h of req.headers) {
    if (h.name === 'max-forwards' && !sawMaxForwards) {
      sawMaxForwards = true;
      // RFC 3261 §16.6 item 3: decrement Max-Forwards by one (the router refused 0 already).
      const n = Number(h.value);
      headers.push({ name: h.name, wire: h.wire, value: String(Math.max(0, n - 1)) });
      continue;
    }
    if (popRoute && h.name === 'route') {
      popRoute = false;
      const rest = h.value.indexOf(',') < 0 ? undefined : splitFirstElement(h.value)[1];
      if (rest !== undefined) headers.push({ name: h.name, wire: h.wire, value: rest });
      continue;
    }
    headers.push(h);
  }
  // RFC 3261 §16.6 item 3: "If the copy does not contain a Max-Forwards header field, the proxy
  // MUST add one with a field value, which SHOULD be 70."
  if (!sawMaxForwards) headers.push(field('max-forwards', '70'));
  return new SipRequest(req.method, req.uri, req.version, headers, req.body);
}

/**
 * RFC 3261 §16.7 item 3: the response as sent back upstream, with the topmost Via (ours) removed.
 * Returns undefined when no Via would remain: the response was meant for us, not to be forwarded.
 */
export function withoutTopVia(res: SipResponse): SipResponse | undefined {
  const headers: HeaderField[] = [];
  let removed = false;
  let remaining = 0;
  for (const h of res.headers) {
    if (h.name === 'via' && !removed) {
      removed = true;
      const rest = h.value.indexOf(',') < 0 ? undefined : splitFirstElement(h.value)[1];
      if (rest !== undefined) {
        headers.push({ name: h.name, wire: h.wire, value: rest });
        remaining++;
      }
      continue;
    }
    if (h.name === 'via') remaining++;
    headers.push(h);
  }
  if (remaining === 0) return undefined;
  return new SipResponse(res.status, res.reason, res.version, headers, res.body);
}

/** The first Route value of a request, if any. */
export function firstRoute(req: SipRequest): string | undefined {
  if (!req.has(HeaderBit.route)) return undefined;
  const line = req.header('route');
  if (line === undefined) return undefined;
  return line.indexOf(',') < 0 ? line : splitFirstElement(line)[0];
}

/** The Retry-After of a response in seconds, when it has a plain delta-seconds value. */
export function retryAfterSeconds(res: SipResponse): number | undefined {
  const v = res.header('retry-after');
  if (v === undefined) return undefined;
  const m = /^\s*([0-9]{1,9})/.exec(v);
  return m === null ? undefined : Number(m[1]);
}
