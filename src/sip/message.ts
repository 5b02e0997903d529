// The SIP message model: start line, header fields in wire order, body. Values are parsed on demand.

import { canonicalName, headerBit, wireName } from './headers.js';
import { splitHeaderValues, splitFirstElement, parseCSeq } from './header-values.js';
import { parseVia, type Via } from './via.js';
import { fastVia } from './fast-check.js';
import { getTag } from './name-addr.js';

/**
 * One header field line. `value` is the unfolded, trimmed value as latin1 text, so every byte of the
 * original survives a round trip (UTF-8 sequences included).
 */
export interface HeaderField {
  /** Canonical name: lower-case long form (`v` → `via`). */
  readonly name: string;
  /** The name exactly as it appeared on the wire, for byte-faithful forwarding. */
  readonly wire: string;
  readonly value: string;
}

export const SIP_VERSION = 'SIP/2.0';

/** The body of a message without one (shared: bodies are never written to). */
export const EMPTY_BODY: Buffer = Buffer.alloc(0);

abstract class SipMessageBase {
  private viaCache: Via | undefined;
  private cseqCache: { seq: number; method: string } | undefined;
  /** The From and To tags, read once (null: not read yet): the router and the proxy each ask. */
  private fromTagCache: string | undefined | null = null;
  private toTagCache: string | undefined | null = null;

  /** HeaderBit flags of the headers present, and of those present more than once. */
  private readonly seen: number;
  private readonly repeated: number;

  constructor(
    readonly headers: HeaderField[],
    readonly body: Buffer,
    seen?: number,
    repeated?: number,
  ) {
    if (seen === undefined || repeated === undefined) {
      let s = 0;
      let r = 0;
      for (const h of headers) {
        const bit = headerBit(h.name);
        r |= s & bit;
        s |= bit;
      }
      seen = s;
      repeated = r;
    }
    this.seen = seen;
    this.repeated = repeated;
  }

  /** Is a header with this bit (HeaderBit) present. */
  has(bit: number): boolean {
    return (this.seen & bit) !== 0;
  }

  /** Is every header of these bits (HeaderBit, or-ed) present, none of them more than once. */
  hasEachOnce(bits: number): boolean {
    return (this.seen & bits) === bits && (this.repeated & bits) === 0;
  }

  /** 0, 1, or 2 for "more than once", for a header with a HeaderBit. */
  presence(bit: number): 0 | 1 | 2 {
    return (this.seen & bit) === 0 ? 0 : (this.repeated & bit) === 0 ? 1 : 2;
  }

  /** First value of a header (canonical name), or undefined. */
  header(name: string): string | undefined {
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      const h = hs[i]!;
      if (h.name === name) return h.value;
    }
    return undefined;
  }

  /** Every header line with this name, in order. */
  headerLines(name: string): string[] {
    const out: string[] = [];
    for (const h of this.headers) if (h.name === name) out.push(h.value);
    return out;
  }

  /** How many header lines carry this name. */
  count(name: string): number {
    let n = 0;
    for (const h of this.headers) if (h.name === name) n++;
    return n;
  }

  /** All comma-separated values of a header across its lines (RFC 3261 §7.3.1). Throws on bad syntax. */
  values(name: string): string[] {
    const out: string[] = [];
    for (const h of this.headers)
      if (h.name === name) for (const v of splitHeaderValues(h.value)) out.push(v);
    return out;
  }

  get callId(): string | undefined {
    return this.header('call-id');
  }

  /** The CSeq, parsed once. Throws SipParseError if malformed. */
  get cseq(): { seq: number; method: string } {
    if (this.cseqCache === undefined) this.cseqCache = parseCSeq(this.header('cseq') ?? '');
    return this.cseqCache;
  }

  /** The top Via value as text (first value of the first Via line). */
  get topViaText(): string | undefined {
    const first = this.header('via');
    if (first === undefined) return undefined;
    // Most Via lines hold one value; only split when a comma may separate several.
    return first.indexOf(',') < 0 ? first : splitFirstElement(first)[0];
  }

  /** The top Via, parsed once. Throws SipParseError if malformed or absent. */
  get topVia(): Via {
    if (this.viaCache === undefined) {
      const text = this.topViaText ?? '';
      this.viaCache = fastVia(text) ?? parseVia(text);
    }
    return this.viaCache;
  }

  get fromTag(): string | undefined {
    if (this.fromTagCache === null) {
      const v = this.header('from');
      this.fromTagCache = v === undefined ? undefined : getTag(v);
    }
    return this.fromTagCache;
  }

  get toTag(): string | undefined {
    if (this.toTagCache === null) {
      const v = this.header('to');
      this.toTagCache = v === undefined ? undefined : getTag(v);
    }
    return this.toTagCache;
  }

  /** Header section serialised in wire order, each line ending in CRLF. */
  protected headerText(): string {
    let s = '';
    for (const h of this.headers) s += h.wire + ': ' + h.value + '\r\n';
    return s;
  }

  abstract startLine(): string;

  /** Serialise with Content-Length matching the body (RFC 3261 §20.14). */
  toBuffer(): Buffer {
    let head = this.startLine() + '\r\n';
    let sawLength = false;
    for (const h of this.headers) {
      if (h.name === 'content-length') {
        if (sawLength) continue;
        sawLength = true;
        head += h.wire + ': ' + String(this.body.length) + '\r\n';
      } else head += h.wire + ': ' + h.value + '\r\n';
    }
    if (!sawLength) head += 'Content-Length: ' + String(this.body.length) + '\r\n';
    head += '\r\n';
    if (this.body.length === 0) return Buffer.from(head, 'latin1');
    const headBuf = Buffer.from(head, 'latin1');
    return Buffer.concat([headBuf, this.body], headBuf.length + this.body.length);
  }
}

export class SipRequest extends SipMessageBase {
  readonly kind = 'request' as const;
  constructor(
    readonly method: string,
    readonly uri: string,
    readonly version: string,
    headers: HeaderField[],
    body: Buffer,
    seen?: number,
    repeated?: number,
  ) {
    super(headers, body, seen, repeated);
  }
  startLine(): string {
    return `${this.method} ${this.uri} ${this.version}`;
  }
}

export class SipResponse extends SipMessageBase {
  readonly kind = 'response' as const;
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly version: string,
    headers: HeaderField[],
    body: Buffer,
    seen?: number,
    repeated?: number,
  ) {
    super(headers, body, seen, repeated);
  }
  startLine(): string {
    return `${this.version} ${this.status} ${this.reason}`;
  }
}

export type SipMessage = SipRequest | SipResponse;

/** Build a header field for a header we add ourselves. */
export function field(name: string, value: string): HeaderField {
  const canonical = canonicalName(name);
  return { name: canonical, wire: wireName(canonical), value };
}

/** A copy of latin1 text (as message text is decoded) that shares no memory with the text it was cut from. */
export function flatCopy(s: string): string {
  // V8 copies strings this short when slicing; longer slices point into the whole message text and
  // would keep it alive. Decoding fresh bytes gives one flat string. (Slicing a concatenation is
  // three to four times faster but keeps two objects, the flattened text and the slice: about
  // 0.2 kB more live heap per held INVITE in the held-calls benchmark.) The bytes go through one
  // scratch buffer: no Buffer to allocate per copy.
  if (s.length < 13) return s;
  if (s.length > COPY_SCRATCH.length) return Buffer.from(s, 'latin1').toString('latin1');
  const n = COPY_SCRATCH.write(s, 0, 'latin1');
  return COPY_SCRATCH.toString('latin1', 0, n);
}

const COPY_SCRATCH = Buffer.allocUnsafe(1024);

/** The headers a request kept while it waits for answers still needs (see `retainedRequest`). */
const RETAINED = new Set(['via', 'route', 'from', 'to', 'call-id', 'cseq']);

/**
 * A request reduced to what answering it (RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq),
 * cancelling it (§9.1) or acknowledging a non-2xx to it (§17.1.1.3: also Route) needs, packed into
 * one flat string of header lines. A transaction waiting minutes for a final response keeps this
 * instead of the parsed message: one string instead of a message object, its header list, a field
 * object and a string per header. `unpack()` gives the request back when one of those answers is
 * due, which is rare next to the waiting.
 */
export class RetainedRequest {
  constructor(
    readonly method: string,
    readonly uri: string,
    readonly version: string,
    /** "Wire-Name: value\r\n" per header, in wire order (values never hold CR or LF). */
    private readonly lines: string,
  ) {}

  /** The Call-ID (for logging), without unpacking the rest. */
  get callId(): string | undefined {
    const text = this.lines;
    const at = text.startsWith('Call-ID: ') ? 0 : text.indexOf('\r\nCall-ID: ') + 2;
    if (at === 1) return undefined;
    const from = at + 'Call-ID: '.length;
    return text.slice(from, text.indexOf('\r\n', from));
  }

  /** The kept headers as a request with no body (a new object each call). */
  unpack(): SipRequest {
    const headers: HeaderField[] = [];
    const text = this.lines;
    let at = 0;
    while (at < text.length) {
      const end = text.indexOf('\r\n', at);
      const colon = text.indexOf(': ', at);
      const wire = text.slice(at, colon);
      headers.push({ name: canonicalName(wire), wire, value: text.slice(colon + 2, end) });
      at = end + 2;
    }
    return new SipRequest(this.method, this.uri, this.version, headers, EMPTY_BODY);
  }
}

/** A request's RetainedRequest: its kept headers under their canonical spelling, copied flat. */
export function retainedRequest(req: SipRequest): RetainedRequest {
  let lines = '';
  for (const h of req.headers) {
    // The canonical spelling: a kept copy only feeds messages we build, and it is a constant.
    if (RETAINED.has(h.name)) lines += wireName(h.name) + ': ' + h.value + '\r\n';
  }
  return new RetainedRequest(flatCopy(req.method), flatCopy(req.uri), flatCopy(req.version), flatCopy(lines));
}

/** The request itself, or a kept one unpacked. */
export function asRequest(req: SipRequest | RetainedRequest): SipRequest {
  return req instanceof RetainedRequest ? req.unpack() : req;
}
