// Fast paths for the header values nearly every request carries in their everyday forms. Each regular
// expression accepts only a strict subset of what the full grammar accepts (a differential test holds
// them to that); anything else falls through to the full parsers in name-addr.ts and via.ts.

import type { Via } from './via.js';

const TOKEN = "[A-Za-z0-9\\-.!%*_+`'~]+";
const QUOTED = '"[^"\\\\\\x00-\\x1f\\x7f]*"';
const DISPLAY = `(?:${QUOTED}[ \\t]*|${TOKEN}(?:[ \\t]+${TOKEN})*[ \\t]*)?`;
const USER = "[A-Za-z0-9\\-_.!~*'()&=+$,]+";
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const TOPLABEL = '[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const HOSTNAME = `(?:${LABEL}\\.)*${TOPLABEL}`;
const HOST = `(?:${IPV4}|${HOSTNAME})`;
const PORT = '(?::[1-9][0-9]{0,3})?';
const PCHAR = "[A-Za-z0-9\\-_.!~*'()]+";
const URI_PARAMS = `(?:;${PCHAR}(?:=${PCHAR})?)*`;
// The tag parameter must carry a token value (RFC 3261 §25.1 tag-param): a tag with none, or with a
// quoted string, is left to the full parser.
const NOT_BAD_TAG = '(?![Tt][Aa][Gg][ \\t]*(?:;|$|=[ \\t]*"))';
const HEADER_PARAMS = `(?:[ \\t]*;[ \\t]*${NOT_BAD_TAG}${TOKEN}(?:[ \\t]*=[ \\t]*(?:${TOKEN}|${QUOTED}))?)*`;

const NAME_ADDR = new RegExp(`^${DISPLAY}<sips?:(?:${USER}@)?${HOST}${PORT}${URI_PARAMS}>${HEADER_PARAMS}$`);

/** True when `value` is a From/To/Contact value in a common, certainly valid form. */
export function isPlainNameAddr(value: string): boolean {
  return NAME_ADDR.test(value);
}

const VIA_PARAM = `(?:=(${TOKEN}))?`;
const VIA = new RegExp(
  `^SIP/2\\.0/(UDP|TCP|TLS|SCTP|WS|WSS) (${HOST})(?::([1-9][0-9]{0,3}))?((?:;${TOKEN}${VIA_PARAM})*)$`,
);

/**
 * The Via structure of a value in the common form `SIP/2.0/UDP host:port;branch=…;rport`, or
 * undefined when the value needs the full parser (IPv6, LWS, quoted values, odd transports).
 */
export function fastVia(value: string): Via | undefined {
  const m = VIA.exec(value);
  if (m === null) return undefined;
  const params: [string, string | undefined][] = [];
  let branch: string | undefined;
  // The parameters, each ";name" or ";name=value" (the expression admits no other ";" or "=").
  const text = m[4]!;
  const n = text.length;
  for (let at = 0; at < n;) {
    let next = text.indexOf(';', at + 1);
    if (next < 0) next = n;
    const eq = text.indexOf('=', at + 1);
    const hasValue = eq >= 0 && eq < next;
    const name = text.slice(at + 1, hasValue ? eq : next);
    const v = hasValue ? text.slice(eq + 1, next) : undefined;
    at = next;
    params.push([name, v]);
    const kind = name.toLowerCase();
    if (kind === 'branch') {
      if (v === undefined) return undefined;
      branch ??= v;
    } else if (kind === 'rport') {
      if (v !== undefined && !(/^[0-9]{1,5}$/.test(v) && Number(v) <= 65535)) return undefined;
    } else if (kind === 'received' || kind === 'ttl' || kind === 'maddr') {
      // Parameters with a grammar of their own are left to the full parser.
      return undefined;
    }
  }
  return {
    protocol: 'SIP/2.0',
    transport: m[1]!,
    host: m[2]!,
    port: m[3] === undefined ? undefined : Number(m[3]),
    params,
    branch,
  };
}
