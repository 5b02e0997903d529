// One Via header value (RFC 3261 §20.42, §25.1, RFC 3581 rport): sent-protocol LWS sent-by *( SEMI via-params ).
import { SipParseError } from './errors.js';
import { CH_DIGIT, CH_HOST, CH_TOKEN, DQUOTE, codeAt, skipClass, skipWs } from './header-values.js';
import { isGenValueUnquoted, parseGenericParams } from './name-addr.js';
import { hostnameReason, isIpv4, parseIpv6 } from './uri.js';

export interface Via {
  /** protocol-name "/" protocol-version as written, without the LWS the grammar allows around "/". */
  protocol: string;
  /** Upper-cased: UDP, TCP, TLS, SCTP, WS, WSS, or any other token (RFC 4475 transports has an unknown one). */
  transport: string;
  /** sent-by host as written (IPv6 with brackets). */
  host: string;
  port: number | undefined;
  /** In order, names and values as written; rport may be valueless. */
  params: ReadonlyArray<readonly [string, string | undefined]>;
  /** The first branch parameter's value. */
  branch: string | undefined;
}

// RFC 3261 §8.1.1.7: "The branch parameter value MUST be unique across space and time for all
// requests sent by the UA. ... the branch ID ... MUST always begin with the characters "z9hG4bK"."
export const MAGIC_COOKIE = 'z9hG4bK';

const SLASH = 0x2f;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/**
 * Parses ONE via-parm (split a Via line with splitHeaderValues first). LWS is accepted wherever the
 * ABNF's SLASH, COLON, SEMI and EQUAL allow it (RFC 4475 wsinv: `SIP  /   2.0  /   UDP`).
 * Throws {@link SipParseError} with reason `Bad <what>: <why>`.
 */
export function parseVia(value: string, what = 'Via'): Via {
  if (typeof value !== 'string') throw bad(what, 'not a string');
  const n = value.length;
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
  let i = skipClass(value, 0, CH_TOKEN);
  if (i === 0) throw bad(what, 'missing protocol name');
  const name = value.slice(0, i);
  i = expectSlash(value, i, what);
  const versionStart = i;
  i = skipClass(value, i, CH_TOKEN);
  if (i === versionStart) throw bad(what, 'missing protocol version');
  const protocol = `${name}/${value.slice(versionStart, i)}`;
  i = expectSlash(value, i, what);
  const transportStart = i;
  i = skipClass(value, i, CH_TOKEN);
  if (i === transportStart) throw bad(what, 'missing transport');
  const transport = value.slice(transportStart, i).toUpperCase();

  // LWS (not SWS) separates sent-protocol from sent-by.
  const hostStart = skipWs(value, i);
  if (hostStart === i || hostStart >= n) throw bad(what, 'missing sent-by');
  i = hostStart;
  if (codeAt(value, i) === LBRACKET) {
    const close = value.indexOf(']', i);
    if (close < 0) throw bad(what, 'unterminated IPv6 reference');
    if (!parseIpv6(value, i + 1, close, undefined)) throw bad(what, 'bad IPv6 reference');
    i = close + 1;
  } else {
    i = skipClass(value, i, CH_HOST);
    const reason = hostnameReason(value, hostStart, i);
    if (reason !== undefined) throw bad(what, reason);
  }
  const host = value.slice(hostStart, i);

  // sent-by = host [ COLON port ], COLON = SWS ":" SWS
  let port: number | undefined;
  const colon = skipWs(value, i);
  if (codeAt(value, colon) === COLON) {
    const portStart = skipWs(value, colon + 1);
    i = skipClass(value, portStart, CH_DIGIT);
    port = parsePort(value, portStart, i, what);
  }

  const params = parseGenericParams(value, i, what, true);
  let branch: string | undefined;
  for (const [pname, pvalue] of params) {
    const kind = pname.toLowerCase();
    checkViaParam(kind, pvalue, what);
    if (kind === 'branch' && branch === undefined) branch = pvalue;
  }
  return { protocol, transport, host, port, params, branch };
}

function expectSlash(s: string, i: number, what: string): number {
  const slash = skipWs(s, i);
  if (codeAt(s, slash) !== SLASH) throw bad(what, 'bad sent-protocol');
  return skipWs(s, slash + 1);
}

function parsePort(s: string, start: number, end: number, what: string): number {
  if (end === start) throw bad(what, 'bad port');
  let v = 0;
  for (let k = start; k < end; k++) {
    v = v * 10 + (codeAt(s, k) - 0x30);
    if (v > 65535) throw bad(what, 'port out of range');
  }
  return v;
}

function checkViaParam(kind: string, value: string | undefined, what: string): void {
  const quoted = value !== undefined && codeAt(value, 0) === DQUOTE;
  switch (kind) {
    case 'branch':
      // via-branch = "branch" EQUAL token
      if (value === undefined || quoted || !isGenValueToken(value)) throw bad(what, 'bad branch');
      return;
    case 'received':
      // via-received = "received" EQUAL (IPv4address / IPv6address); brackets tolerated (RFC 5118 §4.5).
      if (value === undefined || quoted || !isIpAddress(value)) throw bad(what, 'bad received');
      return;
    case 'rport':
      // RFC 3581: response-port = "rport" [EQUAL 1*DIGIT]
      if (value !== undefined && !isUintAtMost(value, 65535)) throw bad(what, 'bad rport');
      return;
    case 'ttl':
      // via-ttl = "ttl" EQUAL ttl; ttl = 1*3DIGIT ; 0 to 255
      if (value === undefined || value.length > 3 || !isUintAtMost(value, 255)) throw bad(what, 'bad ttl');
      return;
    case 'maddr':
      // via-maddr = "maddr" EQUAL host
      if (value === undefined || quoted || !isHost(value)) throw bad(what, 'bad maddr');
      return;
    default:
      if (value !== undefined && !quoted && !isGenValueUnquoted(value, 0, value.length)) {
        throw bad(what, 'bad parameter value');
      }
  }
}

function isGenValueToken(value: string): boolean {
  return skipClass(value, 0, CH_TOKEN) === value.length;
}

function isIpAddress(value: string): boolean {
  const n = value.length;
  if (codeAt(value, 0) === LBRACKET)
    return codeAt(value, n - 1) === RBRACKET && parseIpv6(value, 1, n - 1, undefined);
  return isIpv4(value, 0, n) || parseIpv6(value, 0, n, undefined);
}

function isHost(value: string): boolean {
  if (codeAt(value, 0) === LBRACKET) return isIpAddress(value);
  return (
    skipClass(value, 0, CH_HOST) === value.length && hostnameReason(value, 0, value.length) === undefined
  );
}

function isUintAtMost(value: string, max: number): boolean {
  if (value.length === 0 || skipClass(value, 0, CH_DIGIT) !== value.length) return false;
  let v = 0;
  for (let k = 0; k < value.length; k++) {
    v = v * 10 + (codeAt(value, k) - 0x30);
    if (v > max) return false;
  }
  return true;
}

function bad(what: string, why: string): SipParseError {
  return new SipParseError(`Bad ${what}: ${why}`);
}
