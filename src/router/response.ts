// Builds responses to requests this service answers itself (RFC 3261 §8.2.6): Via, From, To,
// Call-ID and CSeq copied from the request, a To tag added, the top Via stamped per RFC 3581.

import { createHmac, randomBytes, randomFillSync } from 'node:crypto';
import type { SipRequest } from '../sip/message.js';
import { splitFirstElement } from '../sip/header-values.js';
import { MAGIC_COOKIE, type Via } from '../sip/via.js';
import type { Source } from '../transport/types.js';

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

/** Random bytes per To tag: 72 bits, above the 64 an off-path guesser would have to beat. */
const TAG_BYTES = 9;
/** Tags drawn per call to the system's random source. */
const TAG_BATCH = 1024;

/** base64url's alphabet as character codes, for derived tags built without intermediate strings. */
const TAG_ALPHABET = Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) =>
  c.charCodeAt(0),
);

/**
 * To tags. `next()` gives a fresh one for a dialog or a transaction: 72 bits from the system's
 * cryptographic random source, drawn in batches so a tag costs one base64url encoding (RFC 3261
 * §19.3 asks for 32 random bits at least; a prefix and a counter, as here before, are guessable).
 *
 * `stateless()` gives the tag of an answer sent without a transaction (RFC 3261 §8.2.7, as
 * Kamailio's `sl` does): derived from the request, so a retransmitted request gets the same tag.
 * Derived tags start with a prefix of their own that holds a "." (never in a random tag, whose
 * alphabet is base64url), so the ACK of such an answer is recognised by its To tag and dropped
 * without further work. The prefix and the hash's starting state come from the deployment secret,
 * so instances sharing it agree and others' tags do not look like ours.
 */
export class TagFactory {
  private readonly pool = Buffer.allocUnsafe(TAG_BYTES * TAG_BATCH);
  private offset = this.pool.length;
  /** The prefix of every derived tag: six characters from the secret, and a dot. */
  readonly statelessPrefix: string;
  /** Starting states of the two 32-bit lanes of the derived tags' hash, from the secret. */
  private readonly seedA: number;
  private readonly seedB: number;
  /** The two lanes while a tag is hashed: no allocation per tag. */
  private readonly lanes = new Int32Array(2);

  constructor(secret: Buffer = randomBytes(32)) {
    const derived = createHmac('sha256', secret).update('stateless-tag').digest();
    this.statelessPrefix = derived.toString('base64url', 0, 6).slice(0, 6) + '.';
    this.seedA = derived.readUInt32LE(8);
    this.seedB = derived.readUInt32LE(12);
  }

  next(): string {
    if (this.offset === this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const tag = this.pool.toString('base64url', this.offset, this.offset + TAG_BYTES);
    this.offset += TAG_BYTES;
    return tag;
  }

  /**
   * The To tag of a stateless answer to `req`: 64 bits hashed from what a retransmission repeats, in
   * two keyed lanes (FNV-1a steps, murmur3's finaliser). With a RFC 3261 branch the top Via says it
   * all: branch and sent-by name the transaction (§17.2.3), and a CANCEL, whose Via is the
   * INVITE's, gets the INVITE's tag as §9.2 would have it. Without one (RFC 2543 clients) Call-ID,
   * From and CSeq are hashed too. Not a MAC, and it need not be one: nothing is granted to whoever
   * knows such a tag (there is no dialog behind it, and its ACK is dropped); it must repeat for a
   * retransmission and differ between requests, at the cost of a few multiplications a character,
   * since it runs for every 302 (an HMAC costs several times the whole rest of the tag). Never
   * throws: a missing or malformed header counts as what it is.
   */
  stateless(req: SipRequest): string {
    const lanes = this.lanes;
    lanes[0] = this.seedA;
    lanes[1] = this.seedB;
    mixIn(lanes, req.header('via'));
    let branch: string | undefined;
    try {
      branch = req.topVia.branch;
    } catch {
      branch = undefined;
    }
    if (branch === undefined || branch.length <= MAGIC_COOKIE.length || !branch.startsWith(MAGIC_COOKIE)) {
      mixIn(lanes, req.header('call-id'));
      mixIn(lanes, req.header('from'));
      mixIn(lanes, req.header('cseq'));
    }
    const a = fmix32(lanes[0] ^ lanes[1]);
    const b = fmix32(lanes[1] + a);
    const t = TAG_ALPHABET;
    return (
      this.statelessPrefix +
      String.fromCharCode(
        t[(a >>> 26) & 63]!,
        t[(a >>> 20) & 63]!,
        t[(a >>> 14) & 63]!,
        t[(a >>> 8) & 63]!,
        t[(a >>> 2) & 63]!,
        t[(b >>> 26) & 63]!,
        t[(b >>> 20) & 63]!,
        t[(b >>> 14) & 63]!,
        t[(b >>> 8) & 63]!,
        t[(b >>> 2) & 63]!,
        t[((a & 3) << 2) | (b & 3)]!,
      )
    );
  }

  /** Is this one of our derived tags (the To tag of a stateless answer). */
  isStateless(tag: string | undefined): boolean {
    return tag !== undefined && tag.startsWith(this.statelessPrefix);
  }
}

/** One header value into both lanes, then a separator no character can be ("ab","c" ≠ "a","bc"). */
function mixIn(lanes: Int32Array, v: string | undefined): void {
  let a = lanes[0]!;
  let b = lanes[1]!;
  if (v !== undefined) {
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
  }
  lanes[0] = Math.imul(a ^ 0x10000, 0x01000193);
  lanes[1] = Math.imul(b ^ 0x10000, 0x5bd1e995);
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

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
export function stampedTopVia(via: Via, source: Source): string | undefined {
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
export function responsePort(via: Via, source: Source): number {
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
