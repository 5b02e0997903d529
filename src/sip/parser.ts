// Parses one SIP message from bytes: start line, header lines (folded, compact, any case), framing by
// Content-Length. Header values are kept as text and interpreted lazily by the message accessors.

import { canonicalName } from './headers.js';
import { SipRequest, SipResponse, type HeaderField, type SipMessage } from './message.js';
import { SipParseError } from './errors.js';

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

const EMPTY = Buffer.alloc(0);
const CR = 13;
const LF = 10;

// RFC 3261 §25.1 token characters, as a lookup table indexed by char code.
const TOKEN = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') {
  TOKEN[c.charCodeAt(0)] = 1;
}

export function isTokenText(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** Offset of the first byte after any CRLFs that precede the start line (RFC 3261 §7.5). */
export function skipLeadingCrlf(buf: Buffer, from = 0): number {
  let i = from;
  while (i < buf.length && (buf[i] === CR || buf[i] === LF)) i++;
  return i;
}

/**
 * Locate the blank line ending the header section. Returns [headerEnd, bodyStart] or undefined.
 * Bare-LF line endings are accepted as a courtesy to sloppy peers.
 */
export function findHeaderEnd(buf: Buffer, from: number): [number, number] | undefined {
  const crlf = buf.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buf.indexOf('\n\n', from, 'latin1');
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) return [crlf, crlf + 4];
  if (lf >= 0) {
    // "\r\n\n" counts as a blank line too.
    return [lf, lf + 2];
  }
  return undefined;
}

/** Parse the Content-Length values of a header list: undefined when absent, throws when bad. */
export function contentLength(headers: readonly HeaderField[]): number | undefined {
  let length: number | undefined;
  for (const h of headers) {
    if (h.name !== 'content-length') continue;
    const v = h.value;
    if (!/^[0-9]{1,10}$/.test(v)) throw new SipParseError('Bad Content-Length');
    const n = Number(v);
    if (n > 0xffffffff) throw new SipParseError('Bad Content-Length');
    // RFC 4475 §3.3.9: conflicting values are a framing error.
    if (length !== undefined && length !== n) throw new SipParseError('Conflicting Content-Length');
    length = n;
  }
  return length;
}

/**
 * Split the header section text into fields. Folded continuation lines are joined with one SP
 * (RFC 3261 §7.3.1). A line that is not a header is skipped and reported as `defect`, so that the
 * rest of the message can still address the 400 that answers it.
 */
export function parseHeaderLines(
  text: string,
  firstLineEnd: number,
  opts: ParseOptions,
): { headers: HeaderField[]; defect: SipParseError | undefined } {
  const maxLine = opts.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const maxHeaders = opts.maxHeaders ?? DEFAULT_MAX_HEADERS;
  const out: HeaderField[] = [];
  let wire = '';
  let name = '';
  let value = '';
  let pending = false;
  let defect: SipParseError | undefined;
  const fail = (reason: string): void => {
    defect ??= new SipParseError(reason);
  };
  let pos = firstLineEnd;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    let lineEnd = end;
    if (lineEnd > pos && text.charCodeAt(lineEnd - 1) === CR) lineEnd--;
    const line = text.slice(pos, lineEnd);
    pos = end + 1;
    // RFC 3261 §7.3.1 forbids a bare CR or LF in a value; one here would be header injection.
    if (line.indexOf('\r') >= 0) {
      fail('Bare CR in header line');
      continue;
    }
    if (line.length === 0) continue;
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) {
      if (!pending) {
        fail('Continuation line without a header');
        continue;
      }
      const more = line.trim();
      if (more.length > 0) value = value.length === 0 ? more : value + ' ' + more;
      if (value.length > maxLine) {
        fail('Header line too long');
        pending = false;
      }
      continue;
    }
    if (pending) out.push({ name, wire, value });
    pending = false;
    if (line.length > maxLine) {
      fail('Header line too long');
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      fail('Malformed header line');
      continue;
    }
    let nameEnd = colon;
    while (nameEnd > 0 && (line.charCodeAt(nameEnd - 1) === 32 || line.charCodeAt(nameEnd - 1) === 9)) nameEnd--;
    wire = line.slice(0, nameEnd);
    if (!isTokenText(wire)) {
      fail('Malformed header name');
      continue;
    }
    if (out.length >= maxHeaders) {
      fail('Too many header lines');
      break;
    }
    name = canonicalName(wire);
    value = line.slice(colon + 1).trim();
    pending = true;
  }
  if (pending) out.push({ name, wire, value });
  return { headers: out, defect };
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
  if (!isTokenText(method)) throw new SipParseError('Malformed method');
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
 * Parse one message held in `buf` (a whole datagram, or one message framed off a stream).
 * Never throws: every failure comes back as { ok: false, error } with the status to answer.
 */
export function parseMessage(buf: Buffer, opts: ParseOptions = {}): ParseResult {
  const start = skipLeadingCrlf(buf);
  if (start >= buf.length) return { ok: false, error: new SipParseError('Empty message') };
  const ends = findHeaderEnd(buf, start);
  const headEnd = ends === undefined ? buf.length : ends[0];
  const bodyStart = ends === undefined ? buf.length : ends[1];
  const text = buf.toString('latin1', start, headEnd);
  let lineEnd = text.indexOf('\n');
  if (lineEnd < 0) lineEnd = text.length;
  const startLine = text.charCodeAt(lineEnd - 1) === CR ? text.slice(0, lineEnd - 1) : text.slice(0, lineEnd);
  const isResponse = startLine.startsWith('SIP/') || /^sip\//i.test(startLine);

  let request: SipRequest | undefined;
  try {
    if (startLine.indexOf('\r') >= 0) throw new SipParseError('Bare CR in start line');
    let method = '';
    let uri = '';
    let status = 0;
    let reason = '';
    let version: string;
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
    const { headers, defect } = parseHeaderLines(text, lineEnd + 1, opts);
    // From here on a request is known well enough to address an error response to it.
    if (!isResponse) request = new SipRequest(method, uri, version, headers, EMPTY);
    if (lineError !== undefined) throw lineError;
    if (defect !== undefined) throw defect;
    if (ends === undefined) throw new SipParseError('Missing blank line after headers');
    const length = contentLength(headers);
    let body: Buffer;
    if (length === undefined) {
      body = opts.stream === true ? EMPTY : buf.subarray(bodyStart);
    } else {
      // RFC 4475 §3.1.2.2 (clerr): over UDP, a body shorter than Content-Length is a 400.
      if (length > buf.length - bodyStart) throw new SipParseError('Content-Length exceeds message');
      // RFC 4475 §3.1.1.8 (dblreq): octets past Content-Length are not part of this message.
      body = buf.subarray(bodyStart, bodyStart + length);
    }
    if (isResponse) return { ok: true, message: new SipResponse(status, reason, version, headers, body) };
    if (body.length > 0) request = new SipRequest(method, uri, version, headers, body);
    return { ok: true, message: request! };
  } catch (err) {
    const error = err instanceof SipParseError ? err : new SipParseError('Malformed message');
    return request === undefined ? { ok: false, error } : { ok: false, error, request };
  }
}
