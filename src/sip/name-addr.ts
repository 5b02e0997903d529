// From, To, Contact, Route and Record-Route values (RFC 3261 §20, §25.1): ( name-addr / addr-spec ) *( SEMI param ).
import { SipParseError } from './errors.js';
import {
  CH_HEX,
  CH_TOKEN,
  CH_URIC,
  DQUOTE,
  HTAB,
  QUOTE_UNTERMINATED,
  SP,
  charClass,
  codeAt,
  isToken,
  scanQuotedString,
  skipClass,
  skipWs,
} from './header-values.js';
import { parseIpv6, uriScheme, parseSipUri } from './uri.js';

export interface NameAddr {
  /** As written; quotes (and `\` escapes) kept when it was a quoted-string. */
  displayName: string | undefined;
  /** The URI text, without < >. */
  uri: string;
  /** Whether the URI was written in <...> (name-addr) rather than bare (addr-spec). */
  bracketed: boolean;
  /** Header parameters after the URI (tag, expires, q, epid, ...), in order, names and values as written. */
  params: ReadonlyArray<readonly [string, string | undefined]>;
}

const LAQUOT = 0x3c;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const COLON = 0x3a;
const COMMA = 0x2c;
const QMARK = 0x3f;
const PERCENT = 0x25;
const LBRACKET = 0x5b;

/**
 * Parses one From/To/Contact/Route/Record-Route value. Throws {@link SipParseError} with reason
 * `Bad <what>: <why>`; pass the header name as `what` for a precise 400 reason phrase.
 */
export function parseNameAddr(value: string, what = 'address'): NameAddr {
  if (typeof value !== 'string' || value.length === 0) throw bad(what, 'empty value');
  const n = value.length;
  let displayName: string | undefined;
  let i = 0;
  const first = codeAt(value, 0);

  if (first === DQUOTE) {
    i = scanQuotedString(value, 0);
    if (i < 0) throw bad(what, i === QUOTE_UNTERMINATED ? 'unterminated quoted string' : 'bad quoted string');
    displayName = value.slice(0, i);
    i = skipWs(value, i);
    if (codeAt(value, i) !== LAQUOT) throw bad(what, 'display name not followed by <URI>');
  } else if (first !== LAQUOT) {
    const tokenEnd = skipClass(value, 0, CH_TOKEN);
    if (codeAt(value, tokenEnd) === COLON && uriScheme(value) !== undefined) {
      return parseAddrSpec(value, what);
    }
    // display-name = *(token LWS) / quoted-string. RFC 4475 lwsdisp (`caller<sip:...>`, no LWS
    // before "<") is a known grammar bug that elements should accept, hence the last LWS is optional.
    let end: number;
    for (;;) {
      const start = i;
      i = skipClass(value, i, CH_TOKEN);
      if (i === start) throw bad(what, 'bad display name');
      end = i;
      i = skipWs(value, i);
      if (codeAt(value, i) === LAQUOT) break;
      if (i === end) throw bad(what, i >= n ? 'missing <URI>' : 'bad display name');
    }
    displayName = value.slice(0, end);
  }

  // i is at "<": the URI runs to the first ">", which no URI may contain.
  const close = value.indexOf('>', i + 1);
  if (close < 0) throw bad(what, 'unterminated <');
  if (close === i + 1) throw bad(what, 'empty URI');
  for (let k = i + 1; k < close; k++) {
    const c = codeAt(value, k);
    // RFC 4475 badaspec: LWS inside <> is not allowed by the grammar.
    if (c === SP || c === HTAB) throw bad(what, 'whitespace inside <>');
  }
  const uri = value.slice(i + 1, close);
  checkUri(uri, what);
  const params = parseGenericParams(value, close + 1, what, false);
  checkTag(params, what);
  return { displayName, uri, bracketed: true, params };
}

function parseAddrSpec(value: string, what: string): NameAddr {
  const n = value.length;
  let end = 0;
  while (end < n) {
    const c = codeAt(value, end);
    if (c === SEMI || c === SP || c === HTAB) break;
    // RFC 3261 §20: "if the URI contains a comma, question mark or semicolon, the URI MUST be
    // enclosed in angle brackets (< and >)". A ";" here starts the header parameters instead.
    if (c === COMMA || c === QMARK) throw bad(what, 'URI with , or ? must be enclosed in <>');
    end++;
  }
  const uri = value.slice(0, end);
  checkUri(uri, what);
  const params = parseGenericParams(value, end, what, false);
  checkTag(params, what);
  return { displayName: undefined, uri, bracketed: false, params };
}

// RFC 3261 §25.1: tag-param = "tag" EQUAL token. Read as a generic-param, a valueless or quoted
// tag would slip through and leave From/To tag matching guessing; getTag refuses both too.
function checkTag(params: ReadonlyArray<readonly [string, string | undefined]>, what: string): void {
  for (const [name, value] of params) {
    if (name.length === 3 && name.toLowerCase() === 'tag' && (value === undefined || !isToken(value))) {
      throw bad(what, 'bad tag');
    }
  }
}

/** SIP and SIPS URIs get the full RFC 3261 check; other schemes (tel:, mailto:, http:, urn:, ...) the RFC 2396 absoluteURI one. */
function checkUri(uri: string, what: string): void {
  const scheme = uriScheme(uri);
  if (scheme === 'sip' || scheme === 'sips') {
    parseSipUri(uri, what);
    return;
  }
  if (scheme === undefined) throw bad(what, 'bad URI scheme');
  // absoluteURI = scheme ":" ( hier-part / opaque-part ): at least one uric after the colon.
  let i = scheme.length + 1;
  if (i >= uri.length) throw bad(what, 'empty URI');
  while (i < uri.length) {
    const c = codeAt(uri, i);
    if (c === PERCENT) {
      if ((charClass(codeAt(uri, i + 1)) & CH_HEX) === 0 || (charClass(codeAt(uri, i + 2)) & CH_HEX) === 0) {
        throw bad(what, 'bad escape in URI');
      }
      i += 3;
    } else if ((charClass(c) & CH_URIC) !== 0) {
      i++;
    } else {
      throw bad(what, 'invalid character in URI');
    }
  }
}

/**
 * Parses `*( SEMI generic-param )` from `s[i]` to the end; generic-param = token [ EQUAL gen-value ],
 * gen-value = token / host / quoted-string; SEMI and EQUAL allow LWS either side (RFC 4475 wsinv).
 * Values are kept as written (quoted strings with their quotes). With `bareIpv6`, unquoted values
 * may also hold ":" (Via received=2001:db8::1) and are left for the caller to check.
 */
export function parseGenericParams(
  s: string,
  i: number,
  what: string,
  bareIpv6: boolean,
): Array<readonly [string, string | undefined]> {
  const n = s.length;
  const out: Array<readonly [string, string | undefined]> = [];
  for (;;) {
    i = skipWs(s, i);
    if (i >= n) return out;
    if (codeAt(s, i) !== SEMI) throw bad(what, 'unexpected text after address');
    i = skipWs(s, i + 1);
    const nameStart = i;
    i = skipClass(s, i, CH_TOKEN);
    // RFC 4475 badinv01: `;;` is an empty parameter, not a separator run.
    if (i === nameStart) throw bad(what, 'empty parameter');
    const name = s.slice(nameStart, i);
    const afterName = skipWs(s, i);
    if (codeAt(s, afterName) !== EQUALS) {
      out.push([name, undefined]);
      continue;
    }
    i = skipWs(s, afterName + 1);
    const valueStart = i;
    if (codeAt(s, i) === DQUOTE) {
      i = scanQuotedString(s, i);
      if (i < 0)
        throw bad(what, i === QUOTE_UNTERMINATED ? 'unterminated quoted string' : 'bad quoted string');
    } else {
      while (i < n) {
        const c = codeAt(s, i);
        if ((charClass(c) & CH_TOKEN) === 0 && c !== LBRACKET && c !== 0x5d && c !== COLON) break;
        i++;
      }
      if (i === valueStart) throw bad(what, 'empty parameter value');
      if (!bareIpv6 && !isGenValueUnquoted(s, valueStart, i)) throw bad(what, 'bad parameter value');
    }
    out.push([name, s.slice(valueStart, i)]);
  }
}

/** An unquoted gen-value: a token (which covers hostnames and IPv4 addresses) or an IPv6 reference. */
export function isGenValueUnquoted(s: string, start: number, end: number): boolean {
  if (codeAt(s, start) === LBRACKET) {
    return end - start > 2 && codeAt(s, end - 1) === 0x5d && parseIpv6(s, start + 1, end - 1, undefined);
  }
  return skipClass(s, start, CH_TOKEN) >= end;
}

/**
 * A header parameter by case-insensitive name: undefined when absent, `''` when present without a
 * value (`;lr`; a parsed value is never empty), else the value as written (quoted strings keep their quotes).
 */
export function getParam(params: NameAddr['params'], name: string): string | undefined {
  for (const [pname, value] of params) {
    if (pname.length === name.length && pname.toLowerCase() === name.toLowerCase()) return value ?? '';
  }
  return undefined;
}

/**
 * The `tag` parameter of a From/To value without building a NameAddr: skips a quoted display name
 * and a <...> URI (whose own ";tag=" would be a URI parameter), then scans the header parameters.
 * Checks only the structure it walks through (quotes, brackets, separators, the tag token);
 * use {@link parseNameAddr} to validate a whole value.
 */
export function getTag(value: string): string | undefined {
  if (typeof value !== 'string') throw bad('tag', 'not a string');
  const n = value.length;
  let i = 0;
  // Find where the header parameters start: after ">" for name-addr, at the first ";" for addr-spec.
  while (i < n) {
    const c = codeAt(value, i);
    if (c === DQUOTE) {
      i = scanQuotedString(value, i);
      if (i < 0) throw bad('address', 'unterminated quoted string');
      continue;
    }
    if (c === LAQUOT) {
      const close = value.indexOf('>', i + 1);
      if (close < 0) throw bad('address', 'unterminated <');
      i = close + 1;
      break;
    }
    if (c === SEMI) break;
    i++;
  }
  while (i < n) {
    i = skipWs(value, i);
    if (i >= n) break;
    if (codeAt(value, i) !== SEMI) throw bad('address', 'unexpected text after address');
    i = skipWs(value, i + 1);
    const nameStart = i;
    i = skipClass(value, i, CH_TOKEN);
    if (i === nameStart) throw bad('address', 'empty parameter');
    const isTag =
      i - nameStart === 3 &&
      (codeAt(value, nameStart) | 0x20) === 0x74 &&
      (codeAt(value, nameStart + 1) | 0x20) === 0x61 &&
      (codeAt(value, nameStart + 2) | 0x20) === 0x67;
    const afterName = skipWs(value, i);
    if (codeAt(value, afterName) !== EQUALS) {
      if (isTag) throw bad('address', 'bad tag');
      continue;
    }
    i = skipWs(value, afterName + 1);
    const valueStart = i;
    if (codeAt(value, i) === DQUOTE) {
      if (isTag) throw bad('address', 'bad tag');
      i = scanQuotedString(value, i);
      if (i < 0) throw bad('address', 'unterminated quoted string');
      continue;
    }
    while (i < n) {
      const c = codeAt(value, i);
      if ((charClass(c) & CH_TOKEN) === 0 && c !== LBRACKET && c !== 0x5d && c !== COLON) break;
      i++;
    }
    if (i === valueStart) throw bad('address', 'empty parameter value');
    // RFC 3261 §25.1: tag-param = "tag" EQUAL token
    if (isTag) {
      const tag = value.slice(valueStart, i);
      if (!isToken(tag)) throw bad('address', 'bad tag');
      return tag;
    }
  }
  return undefined;
}

/**
 * The URI of a From/To/Contact/Route/Record-Route value, or undefined when the value does not parse:
 * for callers that fall back on something else rather than refuse the message.
 */
export function uriOf(value: string): string | undefined {
  try {
    return parseNameAddr(value).uri;
  } catch {
    return undefined;
  }
}

/** Contact: * (RFC 3261 §10.2.2, REGISTER removing all bindings); parseNameAddr refuses it. */
export function isWildcardContact(value: string): boolean {
  if (typeof value !== 'string') return false;
  const star = skipWs(value, 0);
  return codeAt(value, star) === 0x2a && skipWs(value, star + 1) === value.length;
}

function bad(what: string, why: string): SipParseError {
  return new SipParseError(`Bad ${what}: ${why}`);
}
