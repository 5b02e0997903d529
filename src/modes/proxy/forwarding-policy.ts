// The proxy's forwarding policy: the one place that decides whether a request that names no endpoint
// may be sent on, and where; and the signed Record-Route entries that decision relies on.
//
// A request is forwarded only
//   (a) out of dialog, when its Request-URI is an endpoint in proxy mode, to that endpoint's pool
//       members (the router finds the endpoint, the pool gives the members: nothing to decide here);
//   (b) in dialog, along a Route entry of ours whose signature verifies, and only towards the other
//       party of the dialog it was made for;
//   (c) in dialog without a Route, towards a pool member we have sent to.
// Everything else is refused (403 or 404) before anything is sent or connected, so a closed port and
// an open one get the same answer at the same time.
//
// Signed Record-Route. When the proxy record-routes, its entry carries the two parties of the dialog
// (pcu: the upstream one, where the initial request came from; pcd: the downstream one, the pool
// member it went to) and pcsig, an HMAC (src/guard/secret.ts, the per-deployment key) over them, the
// Call-ID and the tags, as Lync signs its own with ms-rrsig. The To tag is not known when the request
// goes out, so the request carries form 1 (Call-ID, the caller's tag, both parties) and the 2xx sent
// upstream form 2 (the callee's tag too; RFC 3261 §16.7 item 4 lets a proxy rewrite its own
// Record-Route in a response). Either form verifies, whichever party's request carries it. Every
// parameter is a plain token (IPv6 colons written as "-"), so Lync, sip.js and SIPp echo them back as
// they are.
//
// Parties are compared by IP address alone: a TCP or TLS client's source port is not the port of its
// Contact, and a pool member answers from its listening address. The next hop of an in-dialog request
// (the next Route, else the Request-URI) must be one party, and the request must come from the other.

import { timingSafeEqual } from 'node:crypto';
import type { Target } from '../../pool/types.js';
import { SipResponse, flatCopy, type SipRequest } from '../../sip/message.js';
import { parseSipUri, getUriParam, type SipUri } from '../../sip/uri.js';
import { parseNameAddr, uriOf } from '../../sip/name-addr.js';
import { splitHeaderValues } from '../../sip/header-values.js';
import { HeaderBit } from '../../sip/headers.js';
import type { NextHop } from '../../transport/outbound.js';
import { mac } from '../../guard/secret.js';
import { firstRoute } from './forward.js';

/** Where a forwarded request goes: a hop named by a URI, or a pool member. */
export type Hop = NextHop & Partial<Target>;

/** What the policy says about one request. */
export type ForwardVerdict =
  | { readonly forward: true; readonly target: Hop; readonly popRoute: boolean }
  | { readonly forward: false; readonly status: 403 | 404; readonly outcome: string };

/** What a signed Record-Route entry of ours was made from: enough to sign it again with the To tag. */
export interface SignedRoute {
  /** The value as put in the request. */
  readonly value: string;
  readonly base: string;
  readonly callId: string;
  readonly callerTag: string;
  readonly up: string;
  readonly down: string;
}

const UP = 'pcu';
const DOWN = 'pcd';
const SIG = 'pcsig';
/** Form 1: signed without the To tag (the request); form 2: with it (the 2xx). */
const FORM_REQUEST = '1';
const FORM_DIALOG = '2';

/** An address as a URI parameter token: IPv6 colons become "-", a zone's "%" becomes "_". */
export function addressToken(address: string): string {
  return address.indexOf(':') < 0 ? address : address.replace(/:/g, '-').replace(/%/g, '_');
}

function tokenAddress(token: string): string {
  return token.indexOf('-') < 0 ? token : token.replace(/-/g, ':').replace(/_/g, '%');
}

/** An address as compared: lower case, without the brackets a URI host puts around IPv6. */
function normal(address: string): string {
  const a = address.charCodeAt(0) === 0x5b ? address.slice(1, -1) : address;
  return a.toLowerCase();
}

const refused = (status: 403 | 404, outcome: string): ForwardVerdict => ({ forward: false, status, outcome });
const FOREIGN_ROUTE = refused(403, 'route-not-ours');
const UNSIGNED_ROUTE = refused(403, 'route-unsigned');
const BAD_SIGNATURE = refused(403, 'route-signature');
const NOT_A_PARTY = refused(403, 'route-not-a-party');
const ROUTE_NO_HOP = refused(403, 'route-no-hop');
const ROUTE_NO_DIALOG = refused(403, 'route-out-of-dialog');
const NOT_A_MEMBER = refused(404, 'not-a-pool-member');
const MALFORMED = refused(403, 'malformed');

export class ForwardingPolicy {
  /** Pool members we have sent to, by "address|port": rule (c) forwards to them. */
  private readonly members = new Map<string, Target>();
  constructor(
    private readonly key: Buffer,
    /** Does this URI name one of our listeners. */
    private readonly namesUs: (uri: SipUri) => boolean,
  ) {}

  /**
   * The Target objects already in `members`: the resolver hands out the same objects call after
   * call (in a new array each time), so a call to a known pool builds no key string.
   */
  private readonly noted = new WeakSet<Target>();

  /**
   * The last URI hop() read and its hop: the in-dialog requests of a pool's calls (ACK, BYE) mostly
   * name the same few members, one after another. Handing out the same hop object lets Outbound keep
   * one sender for it (its UDP senders are kept by hop object): measured with OUTBOUND=real
   * bench/proxy-hotpath.mjs rr, without it the CPU per call is the same, but every in-dialog request
   * gets a sender of its own, which its transaction holds: 50,000 calls leave 12 % more heap held
   * (41.2 MB, not 36.6).
   */
  private lastHop: { readonly uriText: string; readonly hop: NextHop } | undefined;

  private hop(uriText: string): NextHop | undefined {
    if (this.lastHop?.uriText === uriText) return this.lastHop.hop;
    const hop = hopOf(uriText);
    if (hop !== undefined) this.lastHop = { uriText, hop };
    return hop;
  }

  /** Members of a pool the proxy is about to send to (rule (a) found them). */
  noteMembers(targets: readonly Target[]): void {
    for (const t of targets) {
      if (this.noted.has(t)) continue;
      this.noted.add(t);
      this.members.set(`${t.address}|${t.port}`, t);
    }
  }

  /**
   * Rules (b) and (c) for a request that names no endpoint. `sender` is the address it came from
   * (the router always knows it, ACKs included); undefined checks only that the next hop is a party
   * of the signed dialog, not who sent it.
   */
  judge(req: SipRequest, sender: string | undefined): ForwardVerdict {
    return this.safely(req, sender);
  }

  /** An ACK reaches here unvalidated: a header that does not parse refuses it, never throws. */
  private safely(req: SipRequest, sender: string | undefined): ForwardVerdict {
    try {
      return this.decide(req, sender);
    } catch {
      return MALFORMED;
    }
  }

  private decide(req: SipRequest, sender: string | undefined): ForwardVerdict {
    const toTag = req.toTag;
    const fromTag = req.fromTag;
    const route = firstRoute(req);
    if (route === undefined) {
      // (c) Without Record-Route a client may still send in-dialog requests through us: only to pool
      // members we know.
      if (toTag === undefined) return NOT_A_MEMBER;
      const hop = this.hop(req.uri);
      const known = hop === undefined ? undefined : this.members.get(`${hop.address}|${hop.port}`);
      return known === undefined ? NOT_A_MEMBER : { forward: true, target: known, popRoute: false };
    }
    let uri: SipUri;
    try {
      uri = parseSipUri(parseNameAddr(route).uri);
    } catch {
      return FOREIGN_ROUTE;
    }
    // A first Route naming someone else: the request was not meant for us to route.
    if (!this.namesUs(uri)) return FOREIGN_ROUTE;
    const sig = getUriParam(uri, SIG);
    const upToken = getUriParam(uri, UP);
    const downToken = getUriParam(uri, DOWN);
    if (
      typeof sig !== 'string' ||
      typeof upToken !== 'string' ||
      typeof downToken !== 'string' ||
      sig.length < 2
    )
      return UNSIGNED_ROUTE;
    // (b) is for requests inside the dialog the entry was made for: both tags are known then.
    if (toTag === undefined || fromTag === undefined) return ROUTE_NO_DIALOG;
    // RFC 3261 §16.4: our own Route is removed; the next Route or the Request-URI is the target.
    const next = secondRoute(req) ?? req.uri;
    const hop = this.hop(next);
    if (hop === undefined) return ROUTE_NO_HOP;
    const up = normal(tokenAddress(upToken));
    const down = normal(tokenAddress(downToken));
    const to = normal(hop.address);
    const from = sender === undefined ? undefined : normal(sender);
    // Towards the downstream party, the request comes from upstream and its From tag is the caller's;
    // towards the upstream one, the other way round. When both parties share an address, either.
    const downwards = to === down && (from === undefined || from === up);
    const upwards = to === up && (from === undefined || from === down);
    if (!downwards && !upwards) return NOT_A_PARTY;
    const callId = req.callId ?? '';
    const form = sig.charAt(0);
    const given = sig.slice(1);
    if (downwards && this.verifies(form, given, callId, fromTag, toTag, up, down))
      return { forward: true, target: hop, popRoute: true };
    if (upwards && this.verifies(form, given, callId, toTag, fromTag, up, down))
      return { forward: true, target: hop, popRoute: true };
    return BAD_SIGNATURE;
  }

  private verifies(
    form: string,
    given: string,
    callId: string,
    callerTag: string,
    calleeTag: string,
    up: string,
    down: string,
  ): boolean {
    let want: string;
    if (form === FORM_REQUEST) want = mac(this.key, ['rr1', callId, callerTag, up, down]);
    else if (form === FORM_DIALOG) want = mac(this.key, ['rr2', callId, callerTag, calleeTag, up, down]);
    else return false;
    if (want.length !== given.length) return false;
    return timingSafeEqual(Buffer.from(want, 'latin1'), Buffer.from(given, 'latin1'));
  }

  /**
   * Our Record-Route for a request from `up` sent to the pool member at `down` (form 1): `base` is
   * the URI without its closing bracket's parameters ("sip:10.0.0.1:5060;transport=udp;lr").
   */
  recordRoute(base: string, callId: string, callerTag: string, up: string, down: string): SignedRoute {
    const u = normal(up);
    const d = normal(down);
    const sig = mac(this.key, ['rr1', callId, callerTag, u, d]);
    // Flat: a SignedRoute is held for the 64*T1 of an Accepted INVITE, not as a rope of its parts.
    const value = flatCopy(
      `<${base};${UP}=${addressToken(u)};${DOWN}=${addressToken(d)};${SIG}=${FORM_REQUEST}${sig}>`,
    );
    return { value, base, callId, callerTag, up: u, down: d };
  }

  /** Our Record-Route as rewritten in a 2xx sent upstream (form 2): the callee's tag signed too. */
  dialogRoute(rr: SignedRoute, calleeTag: string): string {
    const sig = mac(this.key, ['rr2', rr.callId, rr.callerTag, calleeTag, rr.up, rr.down]);
    return `<${rr.base};${UP}=${addressToken(rr.up)};${DOWN}=${addressToken(rr.down)};${SIG}=${FORM_DIALOG}${sig}>`;
  }

  /**
   * RFC 3261 §16.7 item 4: "If the selected response contains a Record-Route header field value
   * originally provided by this proxy, the proxy MAY choose to rewrite the value before forwarding
   * the response." The entry we put in the request, found as we wrote it, becomes form 2. A response
   * where it cannot be found (rewritten downstream) is left as it is: form 1 verifies too.
   */
  rewriteInResponse(res: SipResponse, rr: SignedRoute): SipResponse {
    const toTag = res.toTag;
    if (toTag === undefined || !res.has(HeaderBit['record-route'])) return res;
    const headers = res.headers;
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i]!;
      if (h.name !== 'record-route' || h.value.indexOf(rr.value) < 0) continue;
      const values = splitHeaderValues(h.value);
      const at = values.indexOf(rr.value);
      if (at < 0) continue;
      values[at] = this.dialogRoute(rr, toTag);
      const copy = headers.slice();
      copy[i] = { name: h.name, wire: h.wire, value: values.join(', ') };
      return new SipResponse(res.status, res.reason, res.version, copy, res.body);
    }
    return res;
  }
}

/** The URI of the second Route value, if any. */
function secondRoute(req: SipRequest): string | undefined {
  let seen = 0;
  for (const line of req.headerLines('route')) {
    const values = line.indexOf(',') < 0 ? [line] : splitHeaderValues(line);
    for (const v of values) {
      if (seen++ === 0) continue;
      // Present but unreadable: '' names no hop, where undefined would fall back to the Request-URI.
      return uriOf(v) ?? '';
    }
  }
  return undefined;
}

/** A next hop named directly by a SIP URI with an IP host (no DNS on the in-dialog path). */
export function hopOf(uriText: string): NextHop | undefined {
  try {
    const uri = parseSipUri(uriText);
    const host = uri.host.replace(/^\[|\]$/g, '');
    const isV6 = host.includes(':');
    if (!isV6 && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return undefined;
    const t = getUriParam(uri, 'transport');
    const transport = typeof t === 'string' ? t.toLowerCase() : 'udp';
    if (transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') return undefined;
    return {
      transport,
      address: host,
      port: uri.port ?? (transport === 'tls' ? 5061 : 5060),
      family: isV6 ? 6 : 4,
    };
  } catch {
    return undefined;
  }
}
