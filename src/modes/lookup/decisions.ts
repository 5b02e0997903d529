// What the Lookup mode answers, as data: plain functions of the request's headers and body that hold
// no socket, transaction or timer, so any SIP stack that carries the lookup dialog can ask them.
// Whether an INVITE or a session refresh is taken (RFC 4028), how long a dialog may be left alone,
// and what a client's INFO gets: a refusal, a plain 200, or 200 and our XCCOS reply (xccos.md §3).

import type { Handout } from './handout.js';
import {
  answerSessionTimer,
  readSessionTimer,
  sessionDeadlineMs,
  SessionTimerSyntaxError,
  type HeaderView,
  type SessionTimerAnswer,
} from './session-timer.js';
import {
  buildXccosReply,
  isRequri,
  parseXccos,
  SUCCESS,
  UNSUPPORTED,
  XccosError,
  type XccosEnvelope,
  type XccosReply,
} from './xccos.js';

/** A request as the lookup's decisions read it: its headers (see HeaderView) and its body. */
export interface LookupRequest extends HeaderView {
  readonly body: Buffer;
}

/** A request the lookup answers with an error status, and the decision line that says why. */
export interface Refusal {
  readonly kind: 'refuse';
  readonly status: number;
  /** The reason phrase. */
  readonly reason: string;
  readonly outcome: string;
  /** Header lines of the response, each ending in CRLF. */
  readonly extra?: string;
  /** Logged as the decision's reason instead of the reason phrase. */
  readonly why?: string;
  readonly level: 'info' | 'warn';
}

/** Media types an XCCOS body may come in: clients send text/plain (xccos.md §3). */
const XCCOS_TYPES = new Set(['text/plain', 'application/xml', 'text/xml']);
const ACCEPT_XCCOS = 'Accept: text/plain, application/xml, text/xml\r\n';

/** The media type of a Content-Type value, lower case, without parameters. */
export function mediaType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = (value.split(';')[0] ?? '').trim().toLowerCase();
  return t === '' ? undefined : t;
}

/**
 * A session refresh (UPDATE or re-INVITE, RFC 4028 §9 and §10), or the session part of an INVITE:
 * the Session-Expires our 2xx answers with (`sessionExpires` is the one we prefer, 0 for none), or
 * 400 for a malformed timer header, 422 for an interval under Min-SE from a client that can take it.
 */
export function decideSession(
  req: HeaderView,
  sessionExpires: number,
): Refusal | { readonly kind: 'accept'; readonly session: SessionTimerAnswer } {
  let session: SessionTimerAnswer;
  try {
    session = answerSessionTimer(readSessionTimer(req), sessionExpires);
  } catch (err) {
    if (!(err instanceof SessionTimerSyntaxError)) throw err;
    return { kind: 'refuse', status: 400, reason: err.message, outcome: 'lookup-bad-timer', level: 'warn' };
  }
  if (session.kind === 'reject') {
    return {
      kind: 'refuse',
      status: 422,
      reason: 'Session Interval Too Small',
      outcome: 'lookup-interval-too-small',
      extra: `Min-SE: ${session.minSE}\r\n`,
      level: 'info',
    };
  }
  return { kind: 'accept', session };
}

/** A new INVITE to the lookup URI: its offer must be SDP (or none), then as decideSession. */
export function decideInvite(
  req: LookupRequest,
  sessionExpires: number,
): Refusal | { readonly kind: 'accept'; readonly session: SessionTimerAnswer } {
  if (req.body.length > 0 && mediaType(req.header('content-type')) !== 'application/sdp') {
    // RFC 3261 §21.4.13: 415 lists the acceptable formats in Accept.
    return {
      kind: 'refuse',
      status: 415,
      reason: 'Unsupported Media Type',
      outcome: 'lookup-bad-offer',
      extra: 'Accept: application/sdp\r\n',
      level: 'warn',
    };
  }
  return decideSession(req, sessionExpires);
}

/**
 * How long a dialog is kept with no request from the client: `idleMs`, or less when its session
 * interval runs out first (RFC 4028 §10, see sessionDeadlineMs); `why` names which.
 */
export function dialogLifetime(
  session: SessionTimerAnswer,
  idleMs: number,
): { readonly ms: number; readonly why: 'idle' | 'session-expired' } {
  const deadline = sessionDeadlineMs(session);
  return deadline !== undefined && deadline <= idleMs
    ? { ms: deadline, why: 'session-expired' }
    : { ms: idleMs, why: 'idle' };
}

/** The decision line of an INFO that carried commands: the hand-out when there was one. */
export interface InfoDecisionLine {
  readonly level: 'info' | 'warn';
  readonly outcome: 'lookup-handout' | 'xccos-unsupported';
  /** The URIs handed out, space-separated. */
  readonly target?: string;
  readonly reason?: string;
}

/** What a client's INFO gets. */
export type InfoDecision =
  /** No body (a keep-alive): 200, nothing else. */
  | { readonly kind: 'keep-alive' }
  /** An envelope without commands: 200, nothing else. */
  | { readonly kind: 'no-command' }
  | Refusal
  /** 200, then our INFO with `body` (text/plain, xccos.md §3). */
  | {
      readonly kind: 'reply';
      readonly body: string;
      /** One per cmd:requri, in order. */
      readonly handedOut: readonly string[];
      /** Ids of the commands answered COMMAND_NOT_SUPPORTED. */
      readonly unsupported: readonly string[];
      readonly line: InfoDecisionLine;
    };

/**
 * A client's in-dialog INFO (xccos.md §3). `envid` is the id our reply envelope gets; `pick` gives
 * the hand-out for each cmd:requri (HandoutPicker.pick for the dialog's endpoint).
 */
export function decideInfo(
  req: LookupRequest,
  maxBodyBytes: number,
  envid: string,
  pick: () => Handout,
): InfoDecision {
  if (req.body.length === 0) return { kind: 'keep-alive' };
  const read = readXccosBody(req, maxBodyBytes);
  if (read.kind === 'refuse') return read;
  if (read.envelope.commands.length === 0) return { kind: 'no-command' };
  return answerXccos(read.envelope, envid, pick);
}

/** The envelope of an INFO's body, or why it is refused. */
function readXccosBody(
  req: LookupRequest,
  maxBodyBytes: number,
): Refusal | { readonly kind: 'envelope'; readonly envelope: XccosEnvelope } {
  if (req.body.length > maxBodyBytes) {
    // RFC 3261 §21.4.11: 413 Request Entity Too Large.
    return refuse(413, 'Request Entity Too Large', `body of ${req.body.length} bytes`);
  }
  const encoding = req.header('content-encoding')?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity')
    return refuse(
      415,
      'Unsupported Media Type',
      `Content-Encoding ${encoding}`,
      'Accept-Encoding: identity\r\n',
    );
  const typeHeader = req.header('content-type');
  // RFC 3261 §20.15: "The Content-Type header field MUST be present if the body is not empty."
  if (typeHeader === undefined) return refuse(400, 'Missing Content-Type', 'body without Content-Type');
  const type = mediaType(typeHeader);
  if (type === undefined || !XCCOS_TYPES.has(type))
    return refuse(415, 'Unsupported Media Type', `Content-Type ${typeHeader}`, ACCEPT_XCCOS);
  try {
    return { kind: 'envelope', envelope: parseXccos(req.body) };
  } catch (err) {
    if (!(err instanceof XccosError)) throw err;
    return refuse(400, `Bad XCCOS: ${err.message}`.slice(0, 120), `${err.code}: ${err.message}`);
  }
}

function refuse(status: number, reason: string, why: string, extra?: string): Refusal {
  return {
    kind: 'refuse',
    status,
    reason,
    outcome: 'xccos-refused',
    why,
    level: 'warn',
    ...(extra === undefined ? {} : { extra }),
  };
}

/** One reply per command: cmd:requri gets a hand-out, any other COMMAND_NOT_SUPPORTED. */
function answerXccos(envelope: XccosEnvelope, envid: string, pick: () => Handout): InfoDecision {
  const replies: XccosReply[] = [];
  const handedOut: string[] = [];
  const unsupported: string[] = [];
  let allDown = false;
  for (const command of envelope.commands) {
    if (isRequri(command)) {
      const h = pick();
      allDown ||= h.allDown;
      handedOut.push(h.uri);
      replies.push({ command, result: SUCCESS, uri: h.uri });
    } else {
      unsupported.push(command.id);
      replies.push({ command, result: UNSUPPORTED });
    }
  }
  // One decision line for the INFO: the hand-out when there was one, else the refused command.
  const refusedText =
    unsupported.length === 0 ? undefined : `unsupported XCCOS command ${unsupported.join(' ')}`.slice(0, 200);
  let line: InfoDecisionLine;
  if (handedOut.length > 0) {
    const reason = allDown ? 'every lookup URI probed down; handed out anyway' : refusedText;
    line = {
      level: allDown || refusedText !== undefined ? 'warn' : 'info',
      outcome: 'lookup-handout',
      target: handedOut.join(' '),
      ...(reason === undefined ? {} : { reason }),
    };
  } else line = { level: 'warn', outcome: 'xccos-unsupported', reason: refusedText ?? '' };
  return {
    kind: 'reply',
    body: buildXccosReply(envid, envelope.envid, replies),
    handedOut,
    unsupported,
    line,
  };
}
