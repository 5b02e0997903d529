// Builds responses to requests this service answers itself (RFC 3261 §8.2.6): Via, From, To,
// Call-ID and CSeq copied from the request, a To tag added, the top Via stamped per RFC 3581.

import type { SipRequest } from './message.js';
import { splitFirstElement } from './header-values.js';
import type { Via } from './via.js';

/** Where a request came from, as far as its response needs: address, port and whether the link is a stream. */
export interface ResponseSource {
  readonly address: string;
  readonly port: number;
  readonly link: { readonly reliable: boolean };
}

/** RFC 3261 §21 reason phrases for the codes this service sends. */
export const REASON: Readonly<Record<number, string>> = {
  100: 'Trying',
  200: 'OK',
  302: 'Moved Temporarily',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'Version Not Supported',
  513: 'Message Too Large',
};

function viaHostMatches(host: string, address: string): boolean {
  if (host === address) return true;
  // IPv6 references carry brackets in Via; compare without them.
  return (
    host.length > 2 && host.charCodeAt(0) === 91 && host.slice(1, -1).toLowerCase() === address.toLowerCase()
  );
}

/**
 * The top Via as it must appear in the response: RFC 3261 §18.2.1 adds `received` when sent-by is
 * not the source address, RFC 3581 §4 fills in an empty `rport`. Returns undefined when the Via can
 * be copied unchanged, which is the common case.
 */
export function stampedTopVia(via: Via, source: ResponseSource): string | undefined {
  const needReceived = !viaHostMatches(via.host, source.address);
  let rportEmpty = false;
  for (const [name, value] of via.params) {
    if (value === undefined && name.toLowerCase() === 'rport') rportEmpty = true;
  }
  if (!needReceived && !rportEmpty) return undefined;
  let out = `${via.protocol}/${via.transport} ${via.host}${via.port === undefined ? '' : ':' + String(via.port)}`;
  for (const [name, value] of via.params) {
    const lower = name.toLowerCase();
    if (lower === 'received') continue;
    if (lower === 'rport' && value === undefined) {
      out += `;rport=${source.port}`;
      if (needReceived) out += `;received=${source.address}`;
      continue;
    }
    out += value === undefined ? `;${name}` : `;${name}=${value}`;
  }
  if (needReceived && !rportEmpty) out += `;received=${source.address}`;
  return out;
}

/**
 * Where a response to this request goes (RFC 3261 §18.2.2, RFC 3581 §4): back on the connection for
 * streams; for datagrams to the source address, at the source port when rport was asked for, else at
 * the sent-by port. A Via maddr is not honoured: responses only ever go back to where the request
 * came from.
 */
export function responsePort(via: Via, source: ResponseSource): number {
  if (source.link.reliable) return source.port;
  for (const [name, value] of via.params) {
    if (value === undefined && name.toLowerCase() === 'rport') return source.port;
  }
  // Port 0 is valid Via syntax but no destination (a send to it throws): answer where it came from.
  if (via.port === 0) return source.port;
  return via.port ?? 5060;
}

export interface ResponseParts {
  readonly status: number;
  readonly reason?: string | undefined;
  /** Extra header lines, each already formatted and ending in CRLF. */
  readonly extra?: string | undefined;
  /** Tag to add to To when the request's To has none (not for 100 Trying). */
  readonly toTag?: string;
  /** The stamped top Via, from stampedTopVia; undefined to copy the request's. */
  readonly topVia?: string | undefined;
  /** Server header value; empty string for none. */
  readonly server: string;
}

/** Serialise a response to `req` as bytes (see `responseText`). */
export function buildResponse(req: SipRequest, parts: ResponseParts): Buffer {
  return Buffer.from(responseText(req, parts), 'latin1');
}

/**
 * A response to `req` as latin1 text, one character per byte; header values are copied as received,
 * so the bytes are exact. A server transaction sends it and keeps the text for retransmissions.
 */
export function responseText(req: SipRequest, parts: ResponseParts): string {
  // The table's phrases are clean; any other passes through sanitizeReason.
  const reason =
    parts.reason === undefined ? (REASON[parts.status] ?? 'Unknown') : sanitizeReason(parts.reason);
  let s = `SIP/2.0 ${parts.status} ${reason}\r\n`;
  let firstVia = true;
  let from = '';
  let to = '';
  let callId = '';
  let cseq = '';
  for (const h of req.headers) {
    switch (h.name) {
      case 'via':
        if (firstVia && parts.topVia !== undefined) {
          const rest = h.value.indexOf(',') < 0 ? undefined : splitFirstElement(h.value)[1];
          s += 'Via: ' + (rest === undefined ? parts.topVia : `${parts.topVia}, ${rest}`) + '\r\n';
        } else s += 'Via: ' + h.value + '\r\n';
        firstVia = false;
        break;
      case 'from':
        from ||= h.value;
        break;
      case 'to':
        to ||= h.value;
        break;
      case 'call-id':
        callId ||= h.value;
        break;
      case 'cseq':
        cseq ||= h.value;
        break;
      default:
    }
  }
  if (parts.toTag !== undefined && to.length > 0 && needsTag(req)) to += ';tag=' + parts.toTag;
  // A header the request lacked is left out rather than sent empty (RFC 4475 §3.3.1, insuf).
  if (from.length > 0) s += 'From: ' + from + '\r\n';
  if (to.length > 0) s += 'To: ' + to + '\r\n';
  if (callId.length > 0) s += 'Call-ID: ' + callId + '\r\n';
  if (cseq.length > 0) s += 'CSeq: ' + cseq + '\r\n';
  if (parts.extra !== undefined) s += parts.extra;
  if (parts.server.length > 0) s += 'Server: ' + parts.server + '\r\n';
  s += 'Content-Length: 0\r\n\r\n';
  return s;
}

/** True when To has no tag; a To too malformed to read is echoed unchanged (its 400 says why). */
function needsTag(req: SipRequest): boolean {
  try {
    return req.toTag === undefined;
  } catch {
    return false;
  }
}

/** A reason phrase never carries CR, LF or other control characters onto the status line. */
function sanitizeReason(reason: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(reason) ? reason.replace(/[\u0000-\u001f\u007f]/g, ' ') : reason;
}
