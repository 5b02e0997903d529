// Parses one SIP message from bytes: start line, header lines (folded, compact, any case), framing by
// Content-Length. Header values are kept as text and interpreted lazily by the message accessors.

import { canonicalName, headerBit } from './headers.js';
import { EMPTY_BODY, SipRequest, SipResponse, type HeaderField, type SipMessage } from './message.js';
import { SipParseError } from './errors.js';
import { digitsValue, isToken, isWsp, trimWs } from './header-values.js';

export interface ParseOptions {
  /** Stream transports (TCP/TLS): a missing Content-Length means an empty body (RFC 3261 §18.3). */
  readonly stream?: boolean;
  /** Longest header line accepted after unfolding, in bytes. */
  readonly maxLineLength?: number;
  /** Most header lines accepted. */
  readonly maxHeaders?: number;
}

export const DEFAULT_MAX_LINE_LENGTH = 8192;
export const DEFAULT_MAX_HEADERS = 256;

export type ParseResult =
  | { readonly ok: true; readonly message: SipMessage }
  | {
      readonly ok: false;
      readonly error: SipParseError;
      /** The request as far as it could be read, when enough of it was read to address a response. */
      readonly request?: SipRequest;
    };

const CR = 13;
const LF = 10;

/** Offset of the first byte after any CRLFs that precede the start line (RFC 3261 §7.5). */
export function skipLeadingCrlf(buf: Buffer, from = 0): number {
  let i = from;
  while (i < buf.length && (buf[i] === CR || buf[i] === LF)) i++;
  return i;
}

/**
 * Locate the blank line ending the header section in a message's bytes decoded as latin1 text (one
 * char per byte, so offsets are byte offsets). Returns [headerEnd, bodyStart] or undefined.
 * Bare-LF line endings are accepted as a courtesy to sloppy peers.
 */
export function findHeaderEndInText(text: string, from: number): [number, number] | undefined {
  const firstLf = text.indexOf('\n', from);
  if (firstLf < 0) return undefined;
  if (firstLf > from && text.charCodeAt(firstLf - 1) === CR) {
    // CRLF line endings, as RFC 3261 §7 prescribes: one search for the blank line.
    const crlf = text.indexOf('\r\n\r\n', firstLf - 1);
    if (crlf >= 0) return [crlf, crlf + 4];
  }
  // "\r\n\n" counts as a blank line too.
  const lf = text.indexOf('\n\n', from);
  return lf >= 0 ? [lf, lf + 2] : undefined;
}

/** Parse the Content-Length values of a header list: undefined when absent, throws when bad. */
export function contentLength(headers: readonly HeaderField[]): number | undefined {
  let length: number | undefined;
  for (const h of headers) {
    if (h.name !== 'content-length') continue;
    // 1 to 10 digits (the value is trimmed), read without a regular expression or Number().
    const n = digitsValue(h.value, 0, h.value.length);
    if (n < 0 || n > 0xffffffff) throw new SipParseError('Bad Content-Length');
    // RFC 4475 §3.3.9: conflicting values are a framing error.
    if (length !== undefined && length !== n) throw new SipParseError('Conflicting Content-Length');
    length = n;
  }
  return length;
}

/** The header lines of a section, as parseHeaderLines reads them. */
export interface HeaderLines {
  readonly headers: HeaderField[];
  /** The first line that is not a header, or the first limit passed; those lines are skipped. */
  readonly defect: SipParseError | undefined;
  /** HeaderBit flags of the headers present, and of those present more than once. */
  readonly seen: number;
  readonly repeated: number;
  /** The longest header line, or unfolded value, in characters. */
  readonly longest: number;
}

/** A message's header section as a stream's framing cut it off the stream. */
export interface FramedHead {
  /** From the start line through the blank line, as latin1 text. */
  readonly text: string;
  /** Where the blank line starts in `text`. */
  readonly end: number;
  /** Its header lines, read with no limits, when the framing has read them (see readFramedHead). */
  readonly lines: HeaderLines | undefined;
}

/**
 * Split the header section text into fields. Folded continuation lines are joined with one SP
 * (RFC 3261 §7.3.1). A line that is not a header is skipped and reported as `defect`, so that the
 * rest of the message can still address the 400 that answers it. Works on offsets into `text` and
 * slices once per name and value: this loop runs for every header of every message.
 */
export function parseHeaderLines(
  text: string,
  firstLineEnd: number,
  opts: ParseOptions,
  /** Where the header section ends in `text` (the text may go on with the body). */
  len = text.length,
): HeaderLines {
  const maxLine = opts.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const maxHeaders = opts.maxHeaders ?? DEFAULT_MAX_HEADERS;
  const out: HeaderField[] = [];
  let wire = '';
  let name = '';
  let value = '';
  let pending = false;
  let defect: SipParseError | undefined;
  let seen = 0;
  let repeated = 0;
  let longest = 0;
  let bit: number;
  let pos = firstLineEnd;
  // Offset of the next CR in the text; only CRs right before LF are legal (RFC 3261 §7.3.1).
  let nextCr = text.indexOf('\r', pos);
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end < 0 || end > len) end = len;
    let lineEnd = end;
    if (lineEnd > pos && text.charCodeAt(lineEnd - 1) === CR) lineEnd--;
    const start = pos;
    pos = end + 1;
    if (nextCr >= 0 && nextCr < lineEnd) {
      // A bare CR inside a line would be header injection.
      defect ??= new SipParseError('Bare CR in header line');
      nextCr = text.indexOf('\r', pos);
      continue;
    }
    if (nextCr >= 0 && nextCr < pos) nextCr = text.indexOf('\r', pos);
    if (lineEnd === start) continue;
    if (isWsp(text.charCodeAt(start))) {
      if (!pending) {
        defect ??= new SipParseError('Continuation line without a header');
        continue;
      }
      // Only SP and HTAB are folding white space; trim() would also eat 0xA0, a byte of UTF-8 text.
      const more = trimWs(text, start, lineEnd);
      if (more.length > 0) value = value.length === 0 ? more : value + ' ' + more;
      if (value.length > longest) longest = value.length;
      if (value.length > maxLine) {
        defect ??= new SipParseError('Header line too long');
        pending = false;
      }
      continue;
    }
    if (pending) out.push({ name, wire, value });
    pending = false;
    if (lineEnd - start > longest) longest = lineEnd - start;
    if (lineEnd - start > maxLine) {
      defect ??= new SipParseError('Header line too long');
      continue;
    }
    const colon = text.indexOf(':', start);
    if (colon < 0 || colon >= lineEnd || colon === start) {
      defect ??= new SipParseError('Malformed header line');
      continue;
    }
    let nameEnd = colon;
    while (nameEnd > start && isWsp(text.charCodeAt(nameEnd - 1))) nameEnd--;
    const known = knownHeader(text, start, nameEnd - start);
    if (known !== undefined) {
      wire = known[0];
      name = known[1];
      bit = known[2];
    } else {
      wire = text.slice(start, nameEnd);
      if (!isToken(wire)) {
        defect ??= new SipParseError('Malformed header name');
        continue;
      }
      name = canonicalName(wire);
      bit = headerBit(name);
    }
    repeated |= seen & bit;
    seen |= bit;
    if (out.length >= maxHeaders) {
      defect ??= new SipParseError('Too many header lines');
      break;
    }
    let vs = colon + 1;
    while (vs < lineEnd && isWsp(text.charCodeAt(vs))) vs++;
    let ve = lineEnd;
    while (ve > vs && isWsp(text.charCodeAt(ve - 1))) ve--;
    value = text.slice(vs, ve);
    pending = true;
  }
  if (pending) out.push({ name, wire, value });
  return { headers: out, defect, seen, repeated, longest };
}

/**
 * [wire spelling, canonical name, bit, first char code] of the headers nearly every message has, in
 * their usual spelling.
 */
type Known = readonly [wire: string, canonical: string, bit: number, first: number];
const KNOWN_BY_LENGTH: ReadonlyArray<ReadonlyArray<Known>> = (() => {
  const table: Known[][] = [];
  const add = (wire: string, canonical: string): void => {
    (table[wire.length] ??= []).push([wire, canonical, headerBit(canonical), wire.charCodeAt(0)]);
  };
  for (const [wire, canonical] of [
    ['Via', 'via'],
    ['From', 'from'],
    ['To', 'to'],
    ['Call-ID', 'call-id'],
    ['CSeq', 'cseq'],
    ['Contact', 'contact'],
    ['Max-Forwards', 'max-forwards'],
    ['Content-Length', 'content-length'],
    ['Content-Type', 'content-type'],
    ['Subject', 'subject'],
    ['User-Agent', 'user-agent'],
    ['Supported', 'supported'],
    ['Allow', 'allow'],
    ['Route', 'route'],
    ['Record-Route', 'record-route'],
    ['Authorization', 'authorization'],
    ['Expires', 'expires'],
    ['Accept', 'accept'],
    ['Call-Id', 'call-id'],
    ['v', 'via'],
    ['f', 'from'],
    ['t', 'to'],
    ['i', 'call-id'],
    ['m', 'contact'],
    ['l', 'content-length'],
    ['c', 'content-type'],
  ] as const) {
    add(wire, canonical);
  }
  return table;
})();

/** Match the name at text[start, start+length) against the usual spellings. */
function knownHeader(text: string, start: number, length: number): Known | undefined {
  const candidates = KNOWN_BY_LENGTH[length];
  if (candidates === undefined) return undefined;
  // Several names share a length (Call-ID, Contact, Subject, Expires): the first char sorts most out.
  const first = text.charCodeAt(start);
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    // A slice compared whole is cheaper than startsWith, which goes through the name char by char.
    if (c[3] === first && text.slice(start, start + length) === c[0]) return c;
  }
  return undefined;
}

/** RFC 3261 §7.1/§25.1: SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, "SIP" case-insensitive. */
function checkVersion(version: string): void {
  if (version === 'SIP/2.0') return;
  if (/^sip\/[0-9]+\.[0-9]+$/i.test(version)) {
    if (version.slice(4) === '2.0') return;
    throw new SipParseError('Version Not Supported', 505);
  }
  throw new SipParseError('Malformed SIP version');
}

function parseRequestLine(line: string): [method: string, uri: string, version: string] {
  // RFC 3261 §25.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF — exactly one SP each
  // (RFC 4475 lwsstart, trws and lwsruri are rejected rather than guessed at).
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0 || line.indexOf('\t') >= 0) {
    throw new SipParseError('Malformed Request-Line');
  }
  const method = line.slice(0, sp1);
  const uri = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!isToken(method)) throw new SipParseError('Malformed method');
  if (uri.length === 0) throw new SipParseError('Malformed Request-URI');
  checkVersion(version);
  return [method, uri, version];
}

function parseStatusLine(line: string): [status: number, reason: string, version: string] {
  const sp1 = line.indexOf(' ');
  if (sp1 < 0) throw new SipParseError('Malformed Status-Line');
  const version = line.slice(0, sp1);
  checkVersion(version);
  const code = line.slice(sp1 + 1, sp1 + 4);
  // RFC 3261 §7.2: Status-Code is exactly 3 digits; RFC 4475 bigcode sends 4294967301.
  if (!/^[1-6][0-9][0-9]$/.test(code)) throw new SipParseError('Bad status code');
  const after = line.charCodeAt(sp1 + 4);
  if (line.length > sp1 + 4 && after !== 32) throw new SipParseError('Bad status code');
  return [Number(code), line.slice(sp1 + 5), version];
}

/**
 * Lines read with no limits, when they keep to these limits: then they are what a reading under the
 * limits gives. Otherwise undefined, and the section must be read again under them, which finds the
 * first limit passed (or any defect before it) in the order of the lines.
 */
function withinLimits(lines: HeaderLines | undefined, opts: ParseOptions): HeaderLines | undefined {
  if (lines === undefined) return undefined;
  if (lines.longest > (opts.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH)) return undefined;
  if (lines.headers.length > (opts.maxHeaders ?? DEFAULT_MAX_HEADERS)) return undefined;
  return lines;
}

/**
 * Parse one message held in `buf` (a whole datagram, or one message framed off a stream).
 * Never throws: every failure comes back as { ok: false, error } with the status to answer.
 * `head`: the message's header section as a stream's framing cut it (see FramedHead); `buf` must then
 * start with the start line.
 */
export function parseMessage(buf: Buffer, opts: ParseOptions = {}, head?: FramedHead): ParseResult {
  const start = head === undefined ? skipLeadingCrlf(buf) : 0;
  if (start >= buf.length) return { ok: false, error: new SipParseError('Empty message') };
  // The message from its start line on as latin1 text (one char per byte), in which the blank line
  // is found by string search; the header section is text[0, headLen). Only the header section is
  // read as text: the body is taken from the bytes.
  let text: string;
  let framed = true;
  let headLen: number;
  let bodyStart: number;
  if (head !== undefined) {
    text = head.text;
    headLen = head.end;
    bodyStart = text.length;
  } else {
    text = buf.toString('latin1', start);
    const ends = findHeaderEndInText(text, 0);
    framed = ends !== undefined;
    headLen = ends === undefined ? text.length : ends[0];
    bodyStart = ends === undefined ? buf.length : start + ends[1];
  }
  const firstLf = text.indexOf('\n');
  const lineEnd = firstLf >= 0 && firstLf < headLen ? firstLf : headLen;
  const startLine = text.charCodeAt(lineEnd - 1) === CR ? text.slice(0, lineEnd - 1) : text.slice(0, lineEnd);
  // A Status-Line starts with the SIP-Version, whose "SIP" is case-insensitive (RFC 3261 §7.1).
  const isResponse =
    (text.charCodeAt(0) | 0x20) === 0x73 &&
    (text.charCodeAt(1) | 0x20) === 0x69 &&
    (text.charCodeAt(2) | 0x20) === 0x70 &&
    text.charCodeAt(3) === 0x2f;

  // Set once the header lines are read: from then on a request is known well enough to address an
  // error response to it.
  let headers: HeaderField[] | undefined;
  let seen = 0;
  let repeated = 0;
  let method = '';
  let uri = '';
  let version = '';
  try {
    if (startLine.indexOf('\r') >= 0) throw new SipParseError('Bare CR in start line');
    let status = 0;
    let reason = '';
    let lineError: SipParseError | undefined;
    if (isResponse) {
      [status, reason, version] = parseStatusLine(startLine);
    } else {
      try {
        [method, uri, version] = parseRequestLine(startLine);
      } catch (err) {
        // A request with a bad Request-Line is still read, so that its 400 or 505 can be addressed.
        lineError = err instanceof SipParseError ? err : new SipParseError('Malformed Request-Line');
        const parts = startLine.split(' ');
        method = parts[0] ?? '';
        uri = parts[1] ?? '';
        version = parts[parts.length - 1] ?? '';
      }
    }
    const lines = withinLimits(head?.lines, opts) ?? parseHeaderLines(text, lineEnd + 1, opts, headLen);
    headers = lines.headers;
    seen = lines.seen;
    repeated = lines.repeated;
    const defect = lines.defect;
    if (lineError !== undefined) throw lineError;
    if (defect !== undefined) throw defect;
    if (!framed) throw new SipParseError('Missing blank line after headers');
    const length = contentLength(headers);
    let body: Buffer;
    if (length === undefined) {
      body = opts.stream === true || bodyStart >= buf.length ? EMPTY_BODY : buf.subarray(bodyStart);
    } else if (length === 0) {
      // No view of an empty tail: it would keep the whole datagram alive with the message.
      body = EMPTY_BODY;
    } else {
      // RFC 4475 §3.1.2.2 (clerr): over UDP, a body shorter than Content-Length is a 400.
      if (length > buf.length - bodyStart) throw new SipParseError('Content-Length exceeds message');
      // RFC 4475 §3.1.1.8 (dblreq): octets past Content-Length are not part of this message.
      body = buf.subarray(bodyStart, bodyStart + length);
    }
    if (isResponse) {
      return { ok: true, message: new SipResponse(status, reason, version, headers, body, seen, repeated) };
    }
    return { ok: true, message: new SipRequest(method, uri, version, headers, body, seen, repeated) };
  } catch (err) {
    const error = err instanceof SipParseError ? err : new SipParseError('Malformed message');
    if (isResponse || headers === undefined) return { ok: false, error };
    // Without its body: what failed may be the framing of that body.
    return {
      ok: false,
      error,
      request: new SipRequest(method, uri, version, headers, EMPTY_BODY, seen, repeated),
    };
  }
}
