// Semantic checks on a parsed message (RFC 3261 §8.2, §16.3 item 1, RFC 4475): the headers this
// service interprets must be present once and well-formed before any decision is taken on them.

import { SipParseError } from './errors.js';
import { HeaderBit } from './headers.js';
import type { SipRequest, SipResponse } from './message.js';
import { parseNameAddr, isWildcardContact } from './name-addr.js';
import { parseVia } from './via.js';
import { fastVia, isPlainNameAddr } from './fast-check.js';
import { splitHeaderValues, parseUint, isGmtDate, isValidCallId, isToken } from './header-values.js';
import { parseSipUri, uriScheme } from './uri.js';

/** Comma-separated headers the router reads: Route sets (name-addr) and option tags (tokens). */
const LIST_HEADERS = [
  ['route', HeaderBit.route, 'Route header'],
  ['record-route', HeaderBit['record-route'], 'Record-Route header'],
  ['require', HeaderBit.require, 'Require header'],
  ['proxy-require', HeaderBit['proxy-require'], 'Proxy-Require header'],
] as const;

/** Headers that RFC 3261 §7.3.1 forbids to repeat and §8.1.1 requires in every request. */
const SINGLE_REQUIRED = [
  ['call-id', HeaderBit['call-id']],
  ['from', HeaderBit.from],
  ['to', HeaderBit.to],
  ['cseq', HeaderBit.cseq],
] as const;
const WIRE_NAME: Record<string, string> = { 'call-id': 'Call-ID', from: 'From', to: 'To', cseq: 'CSeq' };

/** The grammar error's own reason (it already names what was bad), or a generic one. */
function reasonOf(err: unknown, what: string): string {
  return err instanceof SipParseError ? err.reason : `Bad ${what}`;
}

function checkVias(msg: SipRequest | SipResponse): void {
  if (!msg.has(HeaderBit.via)) throw new SipParseError('Missing Via header');
  try {
    void msg.topVia;
    // The usual message has one Via line holding one value, and topVia has just parsed it.
    if (msg.presence(HeaderBit.via) === 1 && (msg.header('via') ?? '').indexOf(',') < 0) return;
    let first = true;
    for (const line of msg.headerLines('via')) {
      // The common case, one value on the first Via line, has been parsed by topVia already.
      if (first && line.indexOf(',') < 0) {
        first = false;
        continue;
      }
      first = false;
      for (const v of splitHeaderValues(line)) if (fastVia(v) === undefined) parseVia(v, 'Via header');
    }
  } catch (err) {
    throw new SipParseError(reasonOf(err, 'Via header'));
  }
}

/** The SINGLE_REQUIRED headers as one mask: most messages have each exactly once. */
const SINGLE_REQUIRED_BITS = HeaderBit['call-id'] | HeaderBit.from | HeaderBit.to | HeaderBit.cseq;

function checkSingles(msg: SipRequest | SipResponse): void {
  if (!msg.hasEachOnce(SINGLE_REQUIRED_BITS)) {
    for (const [name, bit] of SINGLE_REQUIRED) {
      const n = msg.presence(bit);
      if (n === 0) throw new SipParseError(`Missing ${WIRE_NAME[name]} header`);
      if (n > 1) throw new SipParseError(`Multiple ${WIRE_NAME[name]} headers`);
    }
  }
  if (!isValidCallId(msg.callId ?? '')) throw new SipParseError('Bad Call-ID header');
  checkNameAddr(msg.header('from') ?? '', 'From header', false);
  checkNameAddr(msg.header('to') ?? '', 'To header', true);
  try {
    void msg.cseq;
  } catch (err) {
    throw new SipParseError(reasonOf(err, 'CSeq header'));
  }
}

/** A From or To value; `remember` keeps plain ones (untagged To values repeat request after request). */
function checkNameAddr(value: string, what: string, remember: boolean): void {
  // To is usually exactly the well-known address, untagged: seen before, valid before. A From value,
  // or a To value in a dialog, carries a fresh tag each time, so probing for it (and remembering it)
  // would only cost a hash of the value and churn the cache.
  if (remember && value.indexOf('tag=') >= 0) remember = false;
  if (remember && validNameAddrs.has(value)) return;
  if (isPlainNameAddr(value)) {
    if (remember) validNameAddrs.add(value);
    return;
  }
  try {
    parseNameAddr(value, what);
  } catch (err) {
    throw new SipParseError(reasonOf(err, what));
  }
}

/**
 * Returns the error to answer a request with, or undefined when it may be processed. Unknown URI
 * schemes pass: whether they are acceptable (416) is the router's decision (RFC 4475 §3.3.2).
 */
export function validateRequest(req: SipRequest): SipParseError | undefined {
  try {
    checkVias(req);
    checkSingles(req);
    // RFC 3261 §8.2.2 / RFC 4475 §3.1.2.17: the CSeq method must match the request method.
    if (req.cseq.method !== req.method) throw new SipParseError('CSeq method does not match request method');
    const mf = req.presence(HeaderBit['max-forwards']);
    if (mf > 1) throw new SipParseError('Multiple Max-Forwards headers');
    if (mf === 1) {
      try {
        parseUint(req.header('max-forwards') ?? '', 255, 'Max-Forwards');
      } catch (err) {
        throw new SipParseError(reasonOf(err, 'Max-Forwards header'));
      }
    }
    checkRequestUri(req.uri);
    const contact = req.presence(HeaderBit.contact);
    if (contact === 1) checkContact(req.header('contact') ?? '');
    else if (contact === 2) for (const line of req.headerLines('contact')) checkContact(line);
    // Headers the router acts on must read cleanly before any transaction exists for the request.
    if (req.has(LIST_BITS)) checkListHeaders(req);
    const date = req.has(HeaderBit.date) ? req.header('date') : undefined;
    // RFC 3261 §20.17 allows only GMT; RFC 4475 §3.1.2.12 (baddate).
    if (date !== undefined && !isGmtDate(date)) throw new SipParseError('Bad Date header');
    return undefined;
  } catch (err) {
    return err instanceof SipParseError ? err : new SipParseError('Malformed request');
  }
}

function checkContact(line: string): void {
  if (line.indexOf(',') < 0 && isPlainNameAddr(line)) return;
  try {
    if (isWildcardContact(line)) return;
    for (const v of splitHeaderValues(line)) parseNameAddr(v, 'Contact header');
  } catch (err) {
    throw new SipParseError(reasonOf(err, 'Contact header'));
  }
}

/** Any of the LIST_HEADERS: one test spares most requests the loop. */
const LIST_BITS = LIST_HEADERS.reduce((bits, [, bit]) => bits | bit, 0);

function checkListHeaders(req: SipRequest): void {
  for (const [name, bit, what] of LIST_HEADERS) {
    if (!req.has(bit)) continue;
    try {
      for (const line of req.headerLines(name)) {
        for (const v of splitHeaderValues(line)) {
          if (name === 'route' || name === 'record-route') parseNameAddr(v, what);
          else if (!isToken(v)) throw new SipParseError(`Bad ${what}`);
        }
      }
    } catch (err) {
      throw err instanceof SipParseError ? err : new SipParseError(reasonOf(err, what));
    }
  }
}

/**
 * Values already found valid. This service sees the same few Request-URIs and To values (its
 * well-known addresses) over and over: a set probe replaces the grammar scan. Bounded; entries are
 * flat copies, so they do not keep a message's header text alive.
 */
class ValidCache {
  private readonly seen = new Set<string>();
  // The value added last: comparing with it spares hashing the probe, which is a fresh string each time.
  private last: string | undefined;
  constructor(private readonly max: number) {}
  has(value: string): boolean {
    return value === this.last || this.seen.has(value);
  }
  add(value: string): void {
    if (this.seen.size >= this.max) this.seen.clear();
    const copy = (value + ' ').slice(0, -1);
    this.seen.add(copy);
    this.last = copy;
  }
}

const validRequestUris = new ValidCache(1024);
const validNameAddrs = new ValidCache(1024);

function checkRequestUri(uri: string): void {
  if (validRequestUris.has(uri)) return;
  const scheme = uriScheme(uri);
  if (scheme === undefined) throw new SipParseError('Malformed Request-URI');
  if (scheme !== 'sip' && scheme !== 'sips') return;
  let parsed;
  try {
    parsed = parseSipUri(uri, 'Request-URI');
  } catch (err) {
    throw new SipParseError(reasonOf(err, 'Request-URI'));
  }
  // RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11, escruri).
  if (parsed.headers.length > 0) throw new SipParseError('Headers not allowed in Request-URI');
  validRequestUris.add(uri);
}

/** Returns why a response must be discarded, or undefined when it may be processed. */
export function validateResponse(res: SipResponse): SipParseError | undefined {
  try {
    checkVias(res);
    checkSingles(res);
    return undefined;
  } catch (err) {
    return err instanceof SipParseError ? err : new SipParseError('Malformed response');
  }
}
