// Small SIP header-value grammar pieces (RFC 3261 §25.1): character classes, list splitting, CSeq, scalars, Call-ID, SIP-date.
import { SipParseError } from './errors.js';

// Character classes as bit flags over latin1 code points; anything above 0x7f is in no class, so
// UTF-8 bytes never pass for grammar characters outside quoted strings.
export const CH_ALPHA = 1 << 0;
export const CH_DIGIT = 1 << 1;
export const CH_HEX = 1 << 2;
/** unreserved = alphanum / mark */
export const CH_UNRESERVED = 1 << 3;
/** unreserved / user-unreserved ("&" / "=" / "+" / "$" / "," / ";" / "?" / "/") */
export const CH_USER = 1 << 4;
/** unreserved / "&" / "=" / "+" / "$" / "," */
export const CH_PASSWORD = 1 << 5;
/** unreserved / param-unreserved ("[" / "]" / "/" / ":" / "&" / "+" / "$") */
export const CH_PARAM = 1 << 6;
/** unreserved / hnv-unreserved ("[" / "]" / "/" / "?" / ":" / "+" / "$") */
export const CH_HNV = 1 << 7;
/** token characters */
export const CH_TOKEN = 1 << 8;
/** word characters (Call-ID) */
export const CH_WORD = 1 << 9;
/** RFC 2396 uric without "%" (escapes are checked separately), plus "[" "]" of RFC 2732 */
export const CH_URIC = 1 << 10;
/** scheme characters after the first: ALPHA / DIGIT / "+" / "-" / "." */
export const CH_SCHEME = 1 << 11;
/** hostname / IPv4 characters: alphanum / "-" / "." */
export const CH_HOST = 1 << 12;
/** RFC 2396 reserved: ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / "," */
export const CH_RESERVED = 1 << 13;

const CLASS = new Uint16Array(256);
function addClass(chars: string, flag: number): void {
  for (let i = 0; i < chars.length; i++) CLASS[chars.charCodeAt(i)]! |= flag;
}
{
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const digit = '0123456789';
  const alnum = alpha + digit;
  const unreserved = alnum + "-_.!~*'()";
  addClass(alpha, CH_ALPHA);
  addClass(digit, CH_DIGIT);
  addClass(digit + 'abcdefABCDEF', CH_HEX);
  addClass(unreserved, CH_UNRESERVED);
  addClass(unreserved + '&=+$,;?/', CH_USER);
  addClass(unreserved + '&=+$,', CH_PASSWORD);
  addClass(unreserved + '[]/:&+$', CH_PARAM);
  addClass(unreserved + '[]/?:+$', CH_HNV);
  addClass(alnum + "-.!%*_+`'~", CH_TOKEN);
  addClass(alnum + '-.!%*_+`\'~()<>:\\"/[]?{}', CH_WORD);
  addClass(unreserved + ';/?:@&=+$,[]', CH_URIC);
  addClass(alnum + '+-.', CH_SCHEME);
  addClass(alnum + '-.', CH_HOST);
  addClass(';/?:@&=+$,', CH_RESERVED);
}

/** The class flags of a char code (0 for anything outside the table). */
export function charClass(code: number): number {
  // The bounds test keeps NaN (charCodeAt past the end) and wide chars off the typed array, whose
  // out-of-range reads are a slow path in V8.
  return code >= 0 && code < 256 ? CLASS[code]! : 0;
}

/**
 * `codeAt(s, i)`, or -1 past the end. Scanners look one char ahead all the time; reading past the
 * end through charCodeAt yields NaN and costs an optimised-code bailout in V8 each time.
 */
export function codeAt(s: string, i: number): number {
  return i < s.length ? s.charCodeAt(i) : -1;
}

export const SP = 0x20;
export const HTAB = 0x09;
export const DQUOTE = 0x22;
export const BACKSLASH = 0x5c;

/** Index of the first char at or after `i` that is not SP or HTAB (header values are already unfolded). */
export function skipWs(s: string, i: number): number {
  const n = s.length;
  while (i < n) {
    const c = codeAt(s, i);
    if (c !== SP && c !== HTAB) break;
    i++;
  }
  return i;
}

/** Index after the run of `flag` chars starting at `i`. */
export function skipClass(s: string, i: number, flag: number): number {
  const n = s.length;
  while (i < n && (charClass(codeAt(s, i)) & flag) !== 0) i++;
  return i;
}

/** Scan results of {@link scanQuotedString} below zero. */
export const QUOTE_UNTERMINATED = -1;
export const QUOTE_BAD_CHAR = -2;

/**
 * Scans the quoted-string whose opening DQUOTE is at `i`; returns the index after the closing DQUOTE,
 * or {@link QUOTE_UNTERMINATED} / {@link QUOTE_BAD_CHAR}.
 * quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE; qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII;
 * quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F).
 */
export function scanQuotedString(s: string, i: number): number {
  const n = s.length;
  for (i++; i < n; i++) {
    const c = codeAt(s, i);
    if (c === DQUOTE) return i + 1;
    if (c === BACKSLASH) {
      i++;
      if (i >= n) return QUOTE_UNTERMINATED;
      const e = codeAt(s, i);
      if (e === 0x0a || e === 0x0d || e > 0x7f) return QUOTE_BAD_CHAR;
    } else if (c < 0x20 ? c !== HTAB : c === 0x7f || c > 0xff) {
      return QUOTE_BAD_CHAR;
    }
  }
  return QUOTE_UNTERMINATED;
}

/** SP/HTAB-only trim: String.prototype.trim would also eat 0xA0, a legal UTF-8 continuation byte in latin1 text. */
export function trimWs(s: string, start = 0, end = s.length): string {
  while (start < end && isWs(codeAt(s, start))) start++;
  while (end > start && isWs(codeAt(s, end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function isWs(c: number): boolean {
  return c === SP || c === HTAB;
}

/** RFC 3261 token: 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"). */
export function isToken(s: string): boolean {
  return s.length > 0 && skipClass(s, 0, CH_TOKEN) === s.length;
}

/** RFC 3261 callid = word [ "@" word ]. */
export function isValidCallId(s: string): boolean {
  const first = skipClass(s, 0, CH_WORD);
  if (first === 0) return false;
  if (first === s.length) return true;
  if (codeAt(s, first) !== 0x40) return false;
  const second = skipClass(s, first + 1, CH_WORD);
  return second > first + 1 && second === s.length;
}

/**
 * Splits a list-valued header line on its top-level commas: commas inside quoted strings (with `\`
 * escapes) and inside `<...>` do not split. Each element is trimmed of SP/HTAB.
 * An empty line gives `[]` (e.g. an empty Accept); an empty element (`a,,b`, `a,`) is an error.
 * Only for headers whose grammar is a comma-separated list: Date, WWW-Authenticate and the like
 * contain commas that are not separators.
 */
export function splitHeaderValues(value: string): string[] {
  if (typeof value !== 'string') throw new SipParseError('Bad header value');
  const n = value.length;
  const out: string[] = [];
  if (skipWs(value, 0) === n) return out;
  for (let start = 0; ;) {
    const end = elementEnd(value, start);
    pushElement(out, value, start, end);
    if (end === n) return out;
    start = end + 1;
  }
}

/**
 * The first element of a list-valued header line, and the text of the rest (undefined when there
 * is none), by the rules of splitHeaderValues but without splitting the rest: a proxy reads and
 * takes off the top Via of every response, and the rest passes on as it came.
 */
export function splitFirstElement(value: string): [first: string, rest: string | undefined] {
  const n = value.length;
  const end = elementEnd(value, 0);
  const first = trimWs(value, 0, end);
  const rest = end < n ? trimWs(value, end + 1, n) : undefined;
  if (first.length === 0 || rest?.length === 0)
    throw new SipParseError('Bad header value: empty list element');
  return [first, rest];
}

/** Where the list element starting at `from` ends: its top-level comma, or the end of the line. */
function elementEnd(value: string, from: number): number {
  const n = value.length;
  let i = from;
  while (i < n) {
    const c = codeAt(value, i);
    if (c === DQUOTE) {
      i = skipQuotedLoose(value, i);
      if (i < 0) throw new SipParseError('Bad header value: unterminated quoted string');
      continue;
    }
    if (c === 0x3c) {
      const close = value.indexOf('>', i + 1);
      if (close < 0) throw new SipParseError('Bad header value: unterminated <');
      i = close + 1;
      continue;
    }
    if (c === 0x2c) return i;
    i++;
  }
  return n;
}

function pushElement(out: string[], value: string, start: number, end: number): void {
  const element = trimWs(value, start, end);
  if (element.length === 0) throw new SipParseError('Bad header value: empty list element');
  out.push(element);
}

// Splitting is not validation: it only has to know where a quoted string ends, so any char is accepted inside.
function skipQuotedLoose(s: string, i: number): number {
  const n = s.length;
  for (i++; i < n; i++) {
    const c = codeAt(s, i);
    if (c === DQUOTE) return i + 1;
    if (c === BACKSLASH) i++;
  }
  return -1;
}

/**
 * An unsigned decimal: digits only (leading zeros allowed, as RFC 4475 wsinv has `0068`), at most `max`.
 * Throws `SipParseError('Bad <what>')` otherwise. Stops at the first digit that overflows, so a
 * 100-digit value costs no more than a short one.
 */
export function parseUint(value: string, max: number, what: string): number {
  const n = typeof value === 'string' ? value.length : 0;
  if (n === 0) throw new SipParseError(`Bad ${what}`);
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = codeAt(value, i) - 0x30;
    if (d < 0 || d > 9) throw new SipParseError(`Bad ${what}`);
    v = v * 10 + d;
    if (v > max) throw new SipParseError(`Bad ${what}`);
  }
  return v;
}

/** CSeq sequence numbers are 32-bit: RFC 3261 §8.1.1.5 "The sequence number MUST be expressible as a 32-bit unsigned integer". */
export const MAX_CSEQ = 0xffffffff;

/** CSeq = 1*DIGIT LWS Method; seq 0..2^32-1 (RFC 4475 scalar02 has a larger one, which must be refused). */
export function parseCSeq(value: string): { seq: number; method: string } {
  if (typeof value !== 'string') throw new SipParseError('Bad CSeq');
  const digitsEnd = skipClass(value, 0, CH_DIGIT);
  const methodStart = skipWs(value, digitsEnd);
  if (digitsEnd === 0 || methodStart === digitsEnd) throw new SipParseError('Bad CSeq');
  const seq = parseUint(value.slice(0, digitsEnd), MAX_CSEQ, 'CSeq');
  const method = value.slice(methodStart);
  if (!isToken(method)) throw new SipParseError('Bad CSeq');
  return { seq, method };
}

const WKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * SIP-date = rfc1123-date = wkday "," SP date1 SP time SP "GMT", e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
 * RFC 3261 §20.17: "the time zone must be GMT" is encoded in the grammar itself, so any other zone
 * (RFC 4475 baddate: `EST`) gives false. Names are case-sensitive, as in RFC 2616 §3.3.1.
 */
export function isGmtDate(value: string): boolean {
  if (typeof value !== 'string' || value.length !== 29) return false;
  if (!WKDAYS.includes(value.slice(0, 3)) || value.slice(3, 5) !== ', ') return false;
  const day = twoDigits(value, 5);
  const month = MONTHS.indexOf(value.slice(8, 11));
  const year = fourDigits(value, 12);
  const hour = twoDigits(value, 17);
  const minute = twoDigits(value, 20);
  const second = twoDigits(value, 23);
  if (month < 0 || year < 0 || hour < 0 || minute < 0 || second < 0) return false;
  if (codeAt(value, 7) !== SP || codeAt(value, 11) !== SP || codeAt(value, 16) !== SP) return false;
  if (codeAt(value, 19) !== 0x3a || codeAt(value, 22) !== 0x3a || value.slice(25) !== ' GMT') return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 1 && !leap ? 28 : (MONTH_DAYS[month] ?? 0);
  return day >= 1 && day <= monthDays && hour <= 23 && minute <= 59 && second <= 59;
}

function twoDigits(s: string, i: number): number {
  const a = codeAt(s, i) - 0x30;
  const b = codeAt(s, i + 1) - 0x30;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function fourDigits(s: string, i: number): number {
  const hi = twoDigits(s, i);
  const lo = twoDigits(s, i + 2);
  return hi < 0 || lo < 0 ? -1 : hi * 100 + lo;
}

/** Is the char code SP or HTAB (WSP, RFC 5234). */
export function isWsp(c: number): boolean {
  return c === 32 || c === 9;
}

/** 1 to 10 digits, then only SP or HTAB, in text[from, to): their value; else -1. */
export function digitsValue(text: string, from: number, to: number): number {
  let i = from;
  let value = 0;
  while (i < to) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    value = value * 10 + d;
    i++;
  }
  const digits = i - from;
  if (digits === 0 || digits > 10) return -1;
  while (i < to && isWsp(text.charCodeAt(i))) i++;
  return i === to ? value : -1;
}
