// RFC 3261 §12 dialogs, UAS side: what a dialog is (Call-ID, tags, parties, route set, remote target,
// CSeq on each side, the flow the client is on), how it is read from the request that creates it, and
// how a request of ours within it is built. Pure: the table that holds dialogs and runs their timers
// is uas-dialog-table.ts. Nothing here knows what a dialog is for; a mode keeps that in `context`.

import { networkInterfaces } from 'node:os';
import { EMPTY_BODY, field, flatCopy, SipRequest, type HeaderField } from '../sip/message.js';
import { parseNameAddr, uriOf } from '../sip/name-addr.js';
import { splitHeaderValues } from '../sip/header-values.js';
import type { Via } from '../sip/via.js';
import { hostPort } from '../sip/host-port.js';
import type { Source } from '../transport/types.js';

/** Whatever sends our answer to a request: a server transaction, or a stateless send. */
export interface Responder {
  respond(status: number, data: Buffer | string): void;
}

/** A request as the dialog layer takes it: the message, where it came from, and what answers it. */
export interface DialogRequest {
  readonly req: SipRequest;
  readonly source: Source;
  readonly via: Via;
  readonly txn: Responder;
}

/**
 * RFC 3261 §12.1.1: the UAS's dialog state, plus where the client is. Read-only here: the table
 * (UasDialogTable) changes it as requests and ACKs arrive. `context` is the mode's own.
 */
export interface UasDialog<C> {
  /** RFC 3261 §12: the dialog ID is the Call-ID, the local tag (ours, in To) and the remote tag. */
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** Our From in requests we send: the creating request's To value with our tag. */
  readonly localParty: string;
  /** Our To in requests we send: the creating request's From value, tag and parameters included. */
  readonly remoteParty: string;
  readonly remoteTarget: string;
  readonly routeSet: readonly string[];
  readonly remoteCseq: number;
  readonly localCseq: number;
  /** Where the client's latest request came from: our requests go back there. */
  readonly source: Source;
  /** The ACK of the creating INVITE's 2xx has come. */
  readonly confirmed: boolean;
  readonly ended: boolean;
  readonly context: C;
}

/** What a creating request says of the far end (RFC 3261 §12.1.1). */
export interface DialogTargets {
  readonly remoteTarget: string;
  readonly routeSet: string[];
}

/**
 * The remote target and route set of a dialog created by `req`, or undefined when its Contact or a
 * Record-Route value does not parse.
 */
export function readDialogTargets(req: SipRequest): DialogTargets | undefined {
  try {
    // RFC 3261 §12.1.1: "The remote target MUST be set to the URI from the Contact header field of
    // the request" and "The route set MUST be set to the list of URIs in the Record-Route header
    // field from the request, taken in order". Without a Contact, the From URI is the best we have.
    // (Taken in order: it is the UAC that reverses Record-Route, §12.1.2.)
    const contact = req.header('contact');
    const remoteTarget = parseNameAddr(
      contact === undefined ? (req.header('from') ?? '') : (splitHeaderValues(contact)[0] ?? ''),
    ).uri;
    const routeSet: string[] = [];
    for (const line of req.headerLines('record-route'))
      for (const v of splitHeaderValues(line)) routeSet.push(flatCopy(v));
    return { remoteTarget: flatCopy(remoteTarget), routeSet };
  } catch {
    return undefined;
  }
}

/** The remote target a target refresh request names (RFC 3261 §12.2.2), or undefined for none or a bad one. */
export function refreshedTarget(req: SipRequest): string | undefined {
  const contact = req.header('contact');
  if (contact === undefined) return undefined;
  try {
    return flatCopy(parseNameAddr(splitHeaderValues(contact)[0] ?? '').uri);
  } catch {
    return undefined;
  }
}

/**
 * The Record-Route lines of a 2xx that creates a dialog, each ending in CRLF. RFC 3261 §12.1.1: "the
 * UAS MUST copy all Record-Route header field values from the request into the response (including
 * the URIs, URI parameters, and any Record-Route header field parameters, whether they are known or
 * unknown to the UAS) and MUST maintain the order of those values."
 */
export function recordRouteLines(req: SipRequest): string {
  let out = '';
  for (const line of req.headerLines('record-route')) out += `Record-Route: ${line}\r\n`;
  return out;
}

/**
 * The Contact of our 2xx (a CRLF-ended line). RFC 3261 §12.1.1: "the UAS MUST add a Contact header
 * field to the response" naming where we take this dialog's requests: the listener the client reached.
 */
export function localContact(source: Source): string {
  const local = localAddress(source);
  const transport = source.link.transport === 'udp' ? '' : `;transport=${source.link.transport}`;
  return `Contact: <sip:${hostPort(local.address, local.port)}${transport}>\r\n`;
}

/** What a request of ours within a dialog carries beyond the dialog's own state. */
export interface OwnRequest {
  readonly method: string;
  /** The top Via's branch. */
  readonly branch: string;
  readonly cseq: number;
  readonly body?: { readonly type: string; readonly text: string } | undefined;
  /** User-Agent value; empty for none. */
  readonly userAgent: string;
}

/** A request within the dialog (RFC 3261 §12.2.1.1), to go out on `d.source`'s link. */
export function inDialogRequest(d: UasDialog<unknown>, own: OwnRequest): SipRequest {
  const source = d.source;
  const local = localAddress(source);
  const via = `SIP/2.0/${source.link.transport.toUpperCase()} ${hostPort(local.address, local.port)};branch=${own.branch};rport`;
  // RFC 3261 §12.2.1.1: the Request-URI is the remote target, Route the route set; a strict router
  // first in the set (no lr) takes the Request-URI and the remote target goes last.
  let uri = d.remoteTarget;
  let routes = d.routeSet;
  const first = routes[0];
  if (first !== undefined && !isLooseRoute(first)) {
    uri = uriOf(first) ?? uri;
    routes = [...routes.slice(1), `<${d.remoteTarget}>`];
  }
  const headers: HeaderField[] = [
    field('via', via),
    field('max-forwards', '70'),
    field('from', d.localParty),
    field('to', d.remoteParty),
    field('call-id', d.callId),
    field('cseq', `${own.cseq} ${own.method}`),
  ];
  for (const r of routes) headers.push(field('route', r));
  if (own.userAgent.length > 0) headers.push(field('user-agent', own.userAgent));
  if (own.body !== undefined) headers.push(field('content-type', own.body.type));
  return new SipRequest(
    own.method,
    uri,
    'SIP/2.0',
    headers,
    own.body === undefined ? EMPTY_BODY : Buffer.from(own.body.text, 'utf8'),
  );
}

/** A Route value naming a loose router (RFC 3261 §19.1.1 `lr`); one that does not parse counts as loose. */
export function isLooseRoute(route: string): boolean {
  const uri = uriOf(route);
  return uri === undefined || /;\s*lr(?:[;=>\s]|$)/i.test(uri);
}

/** The same flow: one connection (a stream's link is its connection), or one address and port. */
export function sameFlow(a: Source, b: Source): boolean {
  return a.link === b.link && a.address === b.address && a.port === b.port;
}

/**
 * The address and port the client reached us on, as our Via, Contact and SDP name it. A socket bound
 * to the wildcard has no address of its own to give: the first non-internal one of the client's
 * family stands in (as Outbound does for the proxy's Via).
 */
export function localAddress(source: Source): { address: string; port: number } {
  const link = source.link;
  const a = link.localAddress;
  if (a !== '0.0.0.0' && a !== '::' && a !== '')
    return { address: a.replace(/^::ffff:/, ''), port: link.localPort };
  for (const list of Object.values(networkInterfaces())) {
    for (const n of list ?? []) {
      if (!n.internal && (n.family === 'IPv4' ? 4 : 6) === source.family)
        return { address: n.address, port: link.localPort };
    }
  }
  return { address: source.family === 4 ? '127.0.0.1' : '::1', port: link.localPort };
}
