// RFC 4028 session timers for the lookup dialog, UAS side: what the client asked for, what our 2xx
// answers, and when a dialog nobody refreshes must end.

import { splitHeaderValues } from '../../sip/header-values.js';
import { ServiceError } from '../../base/service-error.js';

/**
 * The headers a decision reads, by lower-case long name: the first value, and every line in order.
 * Our SipRequest is one; a request of another SIP stack is one after a few lines of adapter.
 */
export interface HeaderView {
  header(name: string): string | undefined;
  headerLines(name: string): readonly string[];
}

/** RFC 4028 §4: "the minimum value for the Session-Expires header field is 90 seconds". */
export const MIN_SE = 90;

export type Refresher = 'uac' | 'uas';

/** What a request says about session timers. */
export interface SessionTimerRequest {
  /** Session-Expires in seconds, when present. */
  readonly seconds: number | undefined;
  readonly refresher: Refresher | undefined;
  /** Min-SE in seconds, when present. */
  readonly minSE: number | undefined;
  /** `timer` in Supported: the client can take 422 and `refresher=uac`. */
  readonly supported: boolean;
}

/** What we answer: a 422, or the Session-Expires (if any) of our 2xx. */
export type SessionTimerAnswer =
  | { readonly kind: 'reject'; readonly minSE: number }
  | { readonly kind: 'none' }
  | { readonly kind: 'timer'; readonly seconds: number; readonly refresher: Refresher };

export class SessionTimerSyntaxError extends ServiceError {
  readonly code = 'PCHAT_ERR_SESSION_TIMER_SYNTAX';
}

const DELTA = /^\d{1,10}$/;

function delta(text: string, what: string): number {
  const value = text.trim();
  if (!DELTA.test(value)) throw new SessionTimerSyntaxError(`Bad ${what} header`);
  return Math.min(Number(value), 0xffffffff);
}

/** Read Session-Expires, Min-SE and Supported; throws SessionTimerSyntaxError for a malformed value. */
export function readSessionTimer(req: HeaderView): SessionTimerRequest {
  let supported = false;
  for (const line of req.headerLines('supported')) {
    for (const tag of splitHeaderValues(line)) if (tag.toLowerCase() === 'timer') supported = true;
  }
  const se = req.header('session-expires');
  let seconds: number | undefined;
  let refresher: Refresher | undefined;
  if (se !== undefined) {
    const [value = '', ...params] = se.split(';');
    seconds = delta(value, 'Session-Expires');
    for (const p of params) {
      const [name = '', v = ''] = p.split('=');
      if (name.trim().toLowerCase() !== 'refresher') continue;
      const r = v.trim().toLowerCase();
      if (r !== 'uac' && r !== 'uas') throw new SessionTimerSyntaxError('Bad Session-Expires refresher');
      refresher = r;
    }
  }
  const min = req.header('min-se');
  const minSE = min === undefined ? undefined : delta(min.split(';')[0] ?? '', 'Min-SE');
  return { seconds, refresher, minSE, supported };
}

/**
 * Our answer. `preferred` is the interval we put in every 2xx (0 for none): the channel session's,
 * because sipe arms its refresh of the channel dialog only from the Lookup 200 (xccos.md §4).
 */
export function answerSessionTimer(asked: SessionTimerRequest, preferred: number): SessionTimerAnswer {
  const floor = Math.max(MIN_SE, asked.minSE ?? 0);
  if (asked.seconds !== undefined) {
    if (asked.seconds < MIN_SE) {
      // RFC 4028 §9: a UAS "MAY reject the INVITE request with a 422 ... When sending the 422
      // response, the UAS MUST include a Min-SE header field". Only a client that supports the
      // extension can act on a 422; for any other the value is raised to the minimum instead.
      if (asked.supported) return { kind: 'reject', minSE: MIN_SE };
    }
    // RFC 4028 §9: the UAS "MAY reduce its value but MUST NOT set it to a duration lower than the
    // value in the Min-SE header field ... The UAS MUST NOT increase the value" (except past the floor).
    const wanted = preferred > 0 ? Math.min(asked.seconds, preferred) : asked.seconds;
    return { kind: 'timer', seconds: Math.max(wanted, floor), refresher: refresherFor(asked) };
  }
  if (preferred <= 0) return { kind: 'none' };
  // RFC 4028 §9 lets a UAS ask for a timer only when the client supports one; a legacy client does not,
  // yet reads the number (xccos.md §4), so it gets one with us as refresher, which binds only us.
  return { kind: 'timer', seconds: Math.max(preferred, floor), refresher: refresherFor(asked) };
}

function refresherFor(asked: SessionTimerRequest): Refresher {
  // RFC 4028 §9: the UAS copies the request's refresher; a client without the extension cannot
  // refresh, so the refresher is then `uas`; otherwise the client refreshes (we never send refreshes).
  if (!asked.supported) return 'uas';
  return asked.refresher ?? 'uac';
}

/** Header lines for the 2xx (each ending in CRLF). */
export function sessionTimerHeaders(answer: SessionTimerAnswer): string {
  if (answer.kind !== 'timer') return '';
  let out = `Session-Expires: ${answer.seconds};refresher=${answer.refresher}\r\n`;
  // RFC 4028 §9: "If the refresher parameter in the Session-Expires header field in the 2xx response
  // has a value of 'uac', the UAS MUST place a Require header field into the response with the value 'timer'."
  if (answer.refresher === 'uac') out += 'Require: timer\r\n';
  return out;
}

/**
 * How long after the 2xx (or the last refresh) the dialog is ended with BYE, in ms. RFC 4028 §10:
 * the side not refreshing "SHOULD send a BYE ... slightly before the session expiration. The minimum
 * of 32 seconds and one third of the session interval is RECOMMENDED." When we are the refresher we
 * do not refresh (a lookup dialog has no reason to last), so the same deadline applies.
 */
export function sessionDeadlineMs(answer: SessionTimerAnswer): number | undefined {
  if (answer.kind !== 'timer') return undefined;
  const s = answer.seconds;
  return (s - Math.min(32, s / 3)) * 1000;
}
