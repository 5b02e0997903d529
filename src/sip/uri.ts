// SIP and SIPS URIs (RFC 3261 §19.1, §25.1): validate, parse, format, compare, and derive the endpoint-table key.
import { SipParseError } from './errors.js';
import {
  CH_ALPHA,
  CH_DIGIT,
  CH_HEX,
  CH_HNV,
  CH_HOST,
  CH_PARAM,
  CH_PASSWORD,
  CH_RESERVED,
  CH_SCHEME,
  CH_USER,
  HTAB,
  SP,
  charClass,
  codeAt,
} from './header-values.js';

export interface SipUri {
  scheme: 'sip' | 'sips';
  /** As written (still %-escaped); may contain ';' (RFC 4475 semiuri: `user;par=u%40example.net`). */
  user: string | undefined;
  password: string | undefined;
  /** As written; IPv6 references keep their brackets: `[2001:db8::1]`. */
  host: string;
  /** 0..65535, undefined when absent. */
  port: number | undefined;
  /** In order, names and values as written (still %-escaped); a valueless parameter (`;lr`) has value undefined. */
  params: ReadonlyArray<readonly [name: string, value: string | undefined]>;
  /** The `?h=v&...` part, as written (still %-escaped). */
  headers: ReadonlyArray<readonly [name: string, value: string]>;
}

const COLON = 0x3a;
const SEMI = 0x3b;
const QMARK = 0x3f;
const EQUALS = 0x3d;
const AMP = 0x26;
const PERCENT = 0x25;
const DOT = 0x2e;
const HYPHEN = 0x2d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** Where the parts of a valid SIP or SIPS URI are, as scanSipUri found them. */
interface UriScan {
  readonly schemeLen: number;
  /** -1: no userinfo. */
  readonly userStart: number;
  readonly userEnd: number;
  readonly userEscaped: boolean;
  /** An ASCII capital in the user part or host. */
  readonly upper: boolean;
  /** -1: no password. */
  readonly passStart: number;
  readonly hostStart: number;
  readonly hostEnd: number;
  /** -1: no port. */
  readonly port: number;
  readonly portStart: number;
  /** The first ";" of the parameters (== paramsEnd when there are none). */
  readonly paramsStart: number;
  /** Headers run from here ("?") to the end. */
  readonly paramsEnd: number;
}

/**
 * Validates `text` as a SIP or SIPS URI against the RFC 3261 ABNF. Returns where its parts are when
 * valid, else a short reason. Never throws.
 */
function scanSipUri(text: string): UriScan | string {
  const n = text.length;
  // Scheme: "sip:" or "sips:", any case (RFC 3261 §19.1.4: scheme comparison is case-insensitive).
  if (n > 0 && codeAt(text, 0) === 0x3c) return 'URI must not be enclosed in <>';
  if ((codeAt(text, 0) | 0x20) !== 0x73 || (codeAt(text, 1) | 0x20) !== 0x69) return 'not a SIP URI';
  if ((codeAt(text, 2) | 0x20) !== 0x70) return 'not a SIP URI';
  let i: number;
  if (codeAt(text, 3) === COLON) i = 4;
  else if ((codeAt(text, 3) | 0x20) === 0x73 && codeAt(text, 4) === COLON) i = 5;
  else return 'not a SIP URI';
  const schemeLen = i - 1;

  // No character allowed after the userinfo may be "@" (params, headers and host all exclude it), so
  // the first "@" is the only place userinfo can end; this is what makes RFC 4475 semiuri unambiguous.
  const at = text.indexOf('@', i);
  let userStart = -1;
  let userEnd = 0;
  let userEscaped = false;
  let upper = false;
  let passStart = -1;
  if (at >= 0) {
    userStart = i;
    while (i < at) {
      const c = codeAt(text, i);
      if (c === COLON) break;
      if (c === PERCENT) {
        if (!isEscape(text, i)) return 'bad escape in user part';
        userEscaped = true;
        i += 3;
      } else if ((charClass(c) & CH_USER) !== 0) {
        if (c <= 0x5a && c >= 0x41) upper = true;
        i++;
      } else {
        return isWs(c) ? 'whitespace in URI' : 'invalid character in user part';
      }
    }
    if (i === userStart) return 'empty user part';
    userEnd = i;
    if (i < at) {
      i++;
      passStart = i;
      while (i < at) {
        const c = codeAt(text, i);
        if (c === PERCENT) {
          if (!isEscape(text, i)) return 'bad escape in password';
          i += 3;
        } else if ((charClass(c) & CH_PASSWORD) !== 0) {
          i++;
        } else {
          return isWs(c) ? 'whitespace in URI' : 'invalid character in password';
        }
      }
    }
    i = at + 1;
  }

  const hostStart = i;
  if (codeAt(text, i) === LBRACKET) {
    let j = i + 1;
    // Scan over what an IPv6 reference may hold, then insist on the closing bracket.
    while (j < n) {
      const c = codeAt(text, j);
      if (c !== COLON && c !== DOT && (charClass(c) & CH_HEX) === 0) break;
      j++;
    }
    if (codeAt(text, j) !== RBRACKET) {
      return text.indexOf(']', i) < 0 ? 'unterminated IPv6 reference' : 'bad IPv6 reference';
    }
    if (!parseIpv6(text, i + 1, j, undefined)) return 'bad IPv6 reference';
    i = j + 1;
  } else {
    while (i < n) {
      const c = codeAt(text, i);
      if ((charClass(c) & CH_HOST) === 0) break;
      if (c <= 0x5a && c >= 0x41) upper = true;
      i++;
    }
    if (i === hostStart) return emptyReason(text, i, 'empty host');
    const reason = hostnameReason(text, hostStart, i);
    if (reason !== undefined) return reason;
  }
  const hostEnd = i;

  let port = -1;
  let portStart = 0;
  if (codeAt(text, i) === COLON) {
    i++;
    portStart = i;
    let value = 0;
    while (i < n) {
      const d = codeAt(text, i) - 0x30;
      if (d < 0 || d > 9) break;
      value = value * 10 + d;
      if (value > 65535) return 'port out of range';
      i++;
    }
    if (i === portStart) return isWs(codeAt(text, i)) ? 'whitespace in URI' : 'bad port';
    port = value;
  }

  // uri-parameters = *( ";" pname [ "=" pvalue ] ), pname and pvalue 1*paramchar
  const paramsStart = i;
  while (codeAt(text, i) === SEMI) {
    const nameStart = ++i;
    i = scanChars(text, i, CH_PARAM);
    if (i < 0) return 'bad escape in URI parameter';
    if (i === nameStart) return emptyReason(text, i, 'empty URI parameter');
    if (codeAt(text, i) === EQUALS) {
      const valueStart = ++i;
      i = scanChars(text, i, CH_PARAM);
      if (i < 0) return 'bad escape in URI parameter';
      if (i === valueStart) return emptyReason(text, i, 'empty URI parameter value');
    }
  }
  const paramsEnd = i;

  // headers = "?" header *( "&" header ); header = hname "=" hvalue; hname 1*, hvalue *
  if (codeAt(text, i) === QMARK) {
    do {
      const nameStart = ++i;
      i = scanChars(text, i, CH_HNV);
      if (i < 0) return 'bad escape in URI header';
      if (i === nameStart || codeAt(text, i) !== EQUALS) return emptyReason(text, i, 'bad URI header');
      i = scanChars(text, i + 1, CH_HNV);
      if (i < 0) return 'bad escape in URI header';
    } while (codeAt(text, i) === AMP);
  }

  if (i < n) return isWs(codeAt(text, i)) ? 'whitespace in URI' : 'invalid character in URI';
  return {
    schemeLen,
    userStart,
    userEnd,
    userEscaped,
    upper,
    passStart,
    hostStart,
    hostEnd,
    port,
    portStart,
    paramsStart,
    paramsEnd,
  };
}

/** The reason for a component found empty at `i`: the char there explains it better unless it is a delimiter or the end. */
function emptyReason(text: string, i: number, reason: string): string {
  const c = codeAt(text, i);
  if (isWs(c)) return 'whitespace in URI';
  return i < text.length && (charClass(c) & CH_RESERVED) === 0 ? 'invalid character in URI' : reason;
}

function isWs(c: number): boolean {
  return c === SP || c === HTAB;
}

function isEscape(s: string, i: number): boolean {
  return (charClass(codeAt(s, i + 1)) & CH_HEX) !== 0 && (charClass(codeAt(s, i + 2)) & CH_HEX) !== 0;
}

/** Index after the run of `flag` chars and %HH escapes from `i`; -1 on a bad escape. */
function scanChars(s: string, i: number, flag: number): number {
  const n = s.length;
  while (i < n) {
    const c = codeAt(s, i);
    if (c === PERCENT) {
      if (!isEscape(s, i)) return -1;
      i += 3;
    } else if ((charClass(c) & flag) !== 0) {
      i++;
    } else {
      break;
    }
  }
  return i;
}

/**
 * Why `s[start, end)` is not a valid hostname or IPv4address, or undefined when it is one.
 * hostname = *( domainlabel "." ) toplabel [ "." ]; domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum;
 * toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum. Assumes the range holds only alphanum, "-" and ".".
 */
export function hostnameReason(s: string, start: number, end: number): string | undefined {
  if (start === end) return 'empty host';
  if ((charClass(codeAt(s, start)) & CH_DIGIT) !== 0 && isIpv4(s, start, end)) return undefined;
  if (codeAt(s, end - 1) === DOT) end--; // the optional trailing dot of a fully qualified name
  // One pass: no empty label, no label starting or ending with "-", and the last label starts with a letter.
  let prev = DOT;
  let labelFirst = 0;
  for (let i = start; i < end; i++) {
    const c = codeAt(s, i);
    if (c === DOT) {
      if (prev === DOT || prev === HYPHEN) return 'bad host';
    } else if (prev === DOT) {
      if (c === HYPHEN) return 'bad host';
      labelFirst = c;
    }
    prev = c;
  }
  if (prev === DOT || prev === HYPHEN) return 'bad host';
  return (charClass(labelFirst) & CH_ALPHA) !== 0 ? undefined : 'bad host';
}

/** IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255. */
export function isIpv4(s: string, start: number, end: number): boolean {
  let parts = 0;
  let i = start;
  for (;;) {
    let v = 0;
    const partStart = i;
    while (i < end && i - partStart < 3) {
      const d = codeAt(s, i) - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    if (i === partStart || v > 255) return false;
    parts++;
    if (i === end) return parts === 4;
    if (parts === 4 || codeAt(s, i) !== DOT) return false;
    i++;
  }
}

/**
 * Parses an IPv6address (RFC 3261 §25.1 hexpart [ ":" IPv4address ]) in `s[start, end)`; fills `out`
 * with the eight 16-bit groups when given. "::" must stand for at least one group (RFC 4291 §2.2).
 */
export function parseIpv6(s: string, start: number, end: number, out: number[] | undefined): boolean {
  const groups: number[] = out ?? [];
  groups.length = 0;
  let gap = -1;
  let i = start;
  if (i + 1 < end && codeAt(s, i) === COLON) {
    if (codeAt(s, i + 1) !== COLON) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    const partStart = i;
    let v = 0;
    while (i < end && (charClass(codeAt(s, i)) & CH_HEX) !== 0 && i - partStart < 5) {
      v = v * 16 + hexValue(codeAt(s, i));
      i++;
    }
    if (i < end && codeAt(s, i) === DOT) {
      // The trailing IPv4address takes the last two groups.
      if (groups.length > 6 || !isIpv4(s, partStart, end)) return false;
      let a = 0;
      let octets = 0;
      let octet = 0;
      for (let k = partStart; k <= end; k++) {
        if (k === end || codeAt(s, k) === DOT) {
          a = a * 256 + octet;
          octet = 0;
          octets++;
        } else {
          octet = octet * 10 + (codeAt(s, k) - 0x30);
        }
      }
      if (octets !== 4) return false;
      groups.push(Math.floor(a / 65536), a % 65536);
      break;
    }
    if (i === partStart || i - partStart > 4) return false;
    groups.push(v);
    if (i === end) break;
    if (codeAt(s, i) !== COLON) return false;
    i++;
    if (i < end && codeAt(s, i) === COLON) {
      if (gap >= 0) return false;
      gap = groups.length;
      i++;
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) return groups.length === 8;
  if (groups.length > 7) return false;
  const missing = 8 - groups.length;
  groups.splice(gap, 0, ...new Array<number>(missing).fill(0));
  return true;
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}

/** RFC 5952 text of eight groups: lower-case, no leading zeros, the first longest run of 2+ zero groups as "::". */
function formatIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/**
 * Parses a `sip:` or `sips:` URI. Throws {@link SipParseError} with reason `Bad <what>: <why>`;
 * `what` lets the caller name the field (`Request-URI`, `To URI`, ...).
 */
export function parseSipUri(text: string, what = 'SIP URI'): SipUri {
  if (typeof text !== 'string') throw new SipParseError(`Bad ${what}`);
  const scan = scanSipUri(text);
  if (typeof scan === 'string') throw new SipParseError(`Bad ${what}: ${scan}`);
  const { userStart, userEnd, passStart, hostStart, hostEnd, port, paramsStart, paramsEnd } = scan;

  const params: Array<readonly [string, string | undefined]> = [];
  if (paramsStart < paramsEnd) {
    for (const part of text.slice(paramsStart + 1, paramsEnd).split(';')) {
      const eq = part.indexOf('=');
      params.push(eq < 0 ? [part, undefined] : [part.slice(0, eq), part.slice(eq + 1)]);
    }
  }
  const headers: Array<readonly [string, string]> = [];
  if (paramsEnd < text.length) {
    for (const part of text.slice(paramsEnd + 1).split('&')) {
      const eq = part.indexOf('=');
      headers.push([part.slice(0, eq), part.slice(eq + 1)]);
    }
  }
  return {
    scheme: scan.schemeLen === 3 ? 'sip' : 'sips',
    user: userStart >= 0 ? text.slice(userStart, userEnd) : undefined,
    password: passStart >= 0 ? text.slice(passStart, hostStart - 1) : undefined,
    host: text.slice(hostStart, hostEnd),
    port: port >= 0 ? port : undefined,
    params,
    headers,
  };
}

/** Whether `text` starts with `sip:` or `sips:` (any case); a quick look at the scheme, not validation. */
export function isSipScheme(text: string): boolean {
  if (typeof text !== 'string') return false;
  if ((codeAt(text, 0) | 0x20) !== 0x73 || (codeAt(text, 1) | 0x20) !== 0x69) return false;
  if ((codeAt(text, 2) | 0x20) !== 0x70) return false;
  const c = codeAt(text, 3);
  return c === COLON || ((c | 0x20) === 0x73 && codeAt(text, 4) === COLON);
}

/**
 * The lower-cased scheme of an absolute URI (`scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` then ":"),
 * for choosing 416 Unsupported URI Scheme; undefined when `text` does not start with a valid scheme.
 */
export function uriScheme(text: string): string | undefined {
  if (typeof text !== 'string' || (charClass(codeAt(text, 0)) & CH_ALPHA) === 0) return undefined;
  let i = 1;
  while (i < text.length && (charClass(codeAt(text, i)) & CH_SCHEME) !== 0) i++;
  if (codeAt(text, i) !== COLON) return undefined;
  return text.slice(0, i).toLowerCase();
}

/** Formats a SipUri; parse → format → parse gives an equal structure. Does not validate its input. */
export function formatSipUri(uri: SipUri): string {
  let s = uri.scheme + ':';
  if (uri.user !== undefined) {
    s += uri.user;
    if (uri.password !== undefined) s += ':' + uri.password;
    s += '@';
  }
  s += uri.host;
  if (uri.port !== undefined) s += ':' + String(uri.port);
  for (const [name, value] of uri.params) s += value === undefined ? `;${name}` : `;${name}=${value}`;
  for (let i = 0; i < uri.headers.length; i++) {
    const h = uri.headers[i]!;
    s += `${i === 0 ? '?' : '&'}${h[0]}=${h[1]}`;
  }
  return s;
}

/** %HH → the latin1 char; one pass, so never recursive (`value%2541` → `value%41`); bad `%` sequences stay as they are. */
export function unescapeUri(text: string): string {
  let pct = text.indexOf('%');
  if (pct < 0) return text;
  let out = '';
  let from = 0;
  while (pct >= 0) {
    if (isEscape(text, pct)) {
      const code = hexValue(codeAt(text, pct + 1)) * 16 + hexValue(codeAt(text, pct + 2));
      out += text.slice(from, pct) + String.fromCharCode(code);
      from = pct + 3;
      pct = text.indexOf('%', from);
    } else {
      pct = text.indexOf('%', pct + 1);
    }
  }
  return out + text.slice(from);
}

// RFC 3261 §19.1.4: "Characters other than those in the "reserved" set (see RFC 2396 [5]) are
// equivalent to their ""%" HEX HEX" encoding." So decode every escape except those of reserved
// chars and of "%" itself (keeping "%25" escaped is what stops "%253B" from meeting "%3B").
function normalizeEscapes(text: string): string {
  if (text.indexOf('%') < 0) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = codeAt(text, i);
    if (c === PERCENT && isEscape(text, i)) {
      const code = hexValue(codeAt(text, i + 1)) * 16 + hexValue(codeAt(text, i + 2));
      out +=
        code === PERCENT || (charClass(code) & CH_RESERVED) !== 0
          ? text.slice(i, i + 3).toUpperCase()
          : String.fromCharCode(code);
      i += 2;
    } else {
      out += text.charAt(i);
    }
  }
  return out;
}

/** ASCII-only lower-casing: String.prototype.toLowerCase would also fold latin1 letters, altering UTF-8 byte pairs. */
export function lowerAscii(text: string): string {
  for (let i = 0; i < text.length; i++) {
    if (codeAt(text, i) > 0x7f) {
      let out = '';
      for (let k = 0; k < text.length; k++) {
        const c = codeAt(text, k);
        out += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 0x20) : text.charAt(k);
      }
      return out;
    }
  }
  return text.toLowerCase();
}

/** Host for comparison and keys: lower-cased; an IPv6 reference in its RFC 5952 form so `[::1]` meets `[0:0::1]`. */
function hostKey(host: string): string {
  if (codeAt(host, 0) !== LBRACKET) return lowerAscii(host);
  const groups: number[] = [];
  return parseIpv6(host, 1, host.length - 1, groups) ? `[${formatIpv6(groups)}]` : lowerAscii(host);
}

// RFC 3261 §19.1.4: "A user, ttl, or method uri-parameter appearing in only one URI never matches, even
// if it contains the default value." and "A URI that includes an maddr parameter will not match a URI
// that contains no maddr parameter." The transport-parameter falls under "A URI omitting any component
// with a default value will not match a URI explicitly containing that component with its default value."
const MUST_BE_IN_BOTH = new Set(['transport', 'user', 'ttl', 'method', 'maddr']);

function paramMap(params: SipUri['params']): Map<string, string | undefined> {
  const map = new Map<string, string | undefined>();
  for (const [name, value] of params) {
    const key = lowerAscii(normalizeEscapes(name));
    if (!map.has(key)) map.set(key, value === undefined ? undefined : lowerAscii(normalizeEscapes(value)));
  }
  return map;
}

function headerList(headers: SipUri['headers']): string[] {
  return headers
    .map(([name, value]) => `${lowerAscii(normalizeEscapes(name))}=${normalizeEscapes(value)}`)
    .sort();
}

/**
 * URI equivalence by RFC 3261 §19.1.4: sip never equals sips; userinfo is compared case-sensitively
 * and everything else case-insensitively, after decoding escapes of non-reserved characters; port,
 * transport, user, ttl, method and maddr must be present in both or neither; other parameters only
 * count when present in both; headers must all match (names case-insensitive, values exactly, order free).
 */
export function uriEquals(a: SipUri, b: SipUri): boolean {
  // RFC 3261 §19.1.4: "A SIP and SIPS URI are never equivalent."
  if (a.scheme !== b.scheme) return false;
  // RFC 3261 §19.1.4: "Comparison of the userinfo of SIP and SIPS URIs is case-sensitive."
  if ((a.user === undefined) !== (b.user === undefined)) return false;
  if (a.user !== undefined && normalizeEscapes(a.user) !== normalizeEscapes(b.user ?? '')) return false;
  if ((a.password === undefined) !== (b.password === undefined)) return false;
  if (a.password !== undefined && normalizeEscapes(a.password) !== normalizeEscapes(b.password ?? ''))
    return false;
  if (a.port !== b.port) return false;
  if (hostKey(a.host) !== hostKey(b.host)) return false;

  const pa = paramMap(a.params);
  const pb = paramMap(b.params);
  for (const [name, value] of pa) {
    if (pb.has(name)) {
      // RFC 3261 §19.1.4: "Any uri-parameter appearing in both URIs must match."
      if (pb.get(name) !== value) return false;
    } else if (MUST_BE_IN_BOTH.has(name)) {
      return false;
    }
  }
  for (const name of pb.keys()) if (!pa.has(name) && MUST_BE_IN_BOTH.has(name)) return false;

  // RFC 3261 §19.1.4: "Any present header component MUST be present in both URIs and match for the URIs to match."
  if (a.headers.length === 0 && b.headers.length === 0) return true;
  const ha = headerList(a.headers);
  const hb = headerList(b.headers);
  return ha.length === hb.length && ha.every((h, i) => h === hb[i]);
}

/**
 * The endpoint-table key of a URI: the RFC 3261 §10.3 canonical address-of-record — parameters and
 * headers removed, escapes decoded — with the user part lower-cased too (well-known directory
 * addresses match case-insensitively) and the host lower-cased; ":port" only when present; no scheme
 * and no password. `sip:OCSChat@Contoso.COM;transport=tls` → `ocschat@contoso.com`.
 * Only ASCII letters are folded, so UTF-8 byte sequences are left intact.
 */
export function aorKey(uri: SipUri): string {
  let key = uri.user === undefined ? '' : lowerAscii(unescapeUri(uri.user)) + '@';
  key += hostKey(uri.host);
  if (uri.port !== undefined) key += ':' + String(uri.port);
  return key;
}

/**
 * `aorKey(parseSipUri(text))` without building a SipUri, or undefined when `text` is not a valid
 * sip/sips URI. The common case (no escapes, no password, no IPv6, port written without leading
 * zeros) costs one slice and one lower-casing.
 */
export function aorKeyFromText(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  const s = scanSipUri(text);
  if (typeof s === 'string') return undefined;
  const start = s.userStart >= 0 ? s.userStart : s.hostStart;
  // A port written with leading zeros ("05060") has to be reprinted, as aorKey prints the number.
  const plainPort = s.port < 0 || codeAt(text, s.portStart) !== 0x30 || s.paramsStart === s.portStart + 1;
  if (!s.userEscaped && s.passStart < 0 && plainPort && codeAt(text, s.hostStart) !== LBRACKET) {
    const key = text.slice(start, s.port >= 0 ? s.paramsStart : s.hostEnd);
    // Unescaped user and host text is ASCII only, so the native lower-casing is exact here.
    return s.upper ? key.toLowerCase() : key;
  }
  let key = s.userStart >= 0 ? lowerAscii(unescapeUri(text.slice(s.userStart, s.userEnd))) + '@' : '';
  key += hostKey(text.slice(s.hostStart, s.hostEnd));
  if (s.port >= 0) key += ':' + String(s.port);
  return key;
}

/**
 * A URI parameter by case-insensitive name (an escaped name such as `%6C%72` counts as `lr`).
 * Returns undefined when absent, null when present without a value (`;lr`), else the value as written
 * (still %-escaped).
 */
export function getUriParam(uri: SipUri, name: string): string | undefined | null {
  const wanted = lowerAscii(name);
  for (const [pname, value] of uri.params) {
    const key = pname.indexOf('%') < 0 ? pname : unescapeUri(pname);
    if (key.length === wanted.length && lowerAscii(key) === wanted) return value === undefined ? null : value;
  }
  return undefined;
}
