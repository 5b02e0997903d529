// Serial failover across a pool's members, as the proxy applies RFC 3261 §16.5–16.8: which outcome of
// an attempt moves on to the next member, which member is next, what a member's health learns from
// it, and what the client gets once no member is left to try. Plain data in, plain data out: no
// socket, transaction or timer, so whichever SIP stack carries the attempts out (ours in proxy.ts, or
// another's proxyRequest) decides with this module alone.
//
// The order of the members is the pool's (health first, then RFC 3263 priority and weight); the
// policy only walks it. A 2xx is no failure: it is relayed at once (§16.7 item 4) whatever else
// happened, so it never needs the policy, and ranks above everything if it is handed in anyway.

/** A final response as the policy sees it: its status (the engine's own response object passes). */
export interface Final {
  readonly status: number;
}

/** What one attempt at one member came to. */
export type Outcome =
  /** A final response; `retryAfter` is its Retry-After in seconds, when it has one. */
  | { readonly kind: 'response'; readonly status: number; readonly retryAfter?: number | undefined }
  /** No final response in time: Timer B or F (§17.1), or Timer C before any provisional (§16.8). */
  | { readonly kind: 'timeout' }
  /** The transport failed while the request was out (a connection closed, a send refused). */
  | { readonly kind: 'transport-error' }
  /** No connection could be had to the member: the request never went out. */
  | { readonly kind: 'unreachable' }
  /** The request could not be sent for a fault of ours, not the member's: it ends the request. */
  | { readonly kind: 'internal' };

export const TIMEOUT: Outcome = { kind: 'timeout' };
export const TRANSPORT_ERROR: Outcome = { kind: 'transport-error' };
export const UNREACHABLE: Outcome = { kind: 'unreachable' };
export const INTERNAL: Outcome = { kind: 'internal' };

/** An answer of our own: its status, Retry-After (seconds) if any, and the outcome logged with it. */
export interface OwnAnswer {
  readonly status: number;
  readonly retryAfter?: number | undefined;
  readonly outcome: string;
}

const TIMED_OUT: OwnAnswer = { status: 408, outcome: 'timeout' };
const NOT_REACHED: OwnAnswer = { status: 503, outcome: 'unreachable' };
const NOT_SENT: OwnAnswer = { status: 500, outcome: 'unreachable' };
const CANCELLED: OwnAnswer = { status: 487, outcome: 'cancelled' };
const TIMER_C: OwnAnswer = { status: 408, outcome: 'timer-c' };
const POOL_503: OwnAnswer = { status: 500, outcome: 'pool-503' };

/**
 * No live member: 503 with Retry-After rather than trying dead ones. Also what a request gets when
 * the pool is known to have no member available before anything is created for it.
 */
export function noMemberAnswer(retryAfter: number): OwnAnswer {
  return { status: 503, retryAfter, outcome: 'no-live-member' };
}

/** What a request's attempts have come to so far: the engine keeps it, the policy reads it. */
export interface Attempts<T, R extends Final> {
  /** The pool's targets, in the pool's order. */
  readonly targets: readonly T[];
  /** How many of them, from the first, have been tried. */
  readonly tried: number;
  /** The members' final responses (3xx–6xx), in the order they came. */
  readonly finals: readonly R[];
  /** Our own answer should no member send a final response (failureAnswer keeps it). */
  readonly failure: OwnAnswer | undefined;
  /** Cancelled, by the client (§16.10) or by Timer C (§16.8): no further member is tried. */
  readonly cancelled: boolean;
  /** Timer C fired (§16.8): the cancelled member's 487 reaches the client as 408. */
  readonly timerC: boolean;
  /** Retry-After (seconds) of the 503 answered when the pool has no member to try. */
  readonly noMemberRetryAfter: number;
}

/** How a request ends: the best final response relayed, or an answer of our own. */
export type Ending<R extends Final> =
  | { readonly action: 'relay'; readonly response: R }
  | { readonly action: 'answer'; readonly answer: OwnAnswer };

/** What to do next: try this member, or end. */
export type Verdict<T, R extends Final> = { readonly action: 'try'; readonly target: T } | Ending<R>;

/**
 * Does this outcome move on to the next member. A 503 means "this member cannot serve now", a
 * timeout or a transport failure that we could not reach it: another member may do better. Every
 * other final response is the pool's answer (a 486 from one member is what any would say).
 */
export function movesOn(o: Outcome): boolean {
  switch (o.kind) {
    case 'response':
      return o.status === 503;
    case 'timeout':
    case 'transport-error':
    case 'unreachable':
      return true;
    case 'internal':
      return false;
  }
}

/**
 * Does this outcome count against the member (held down for a while, its Retry-After if it gave
 * one); false when it says the member is up (any other final response) or says nothing of it.
 */
export function failsMember(o: Outcome): boolean {
  return o.kind === 'response' ? o.status === 503 : o.kind !== 'internal';
}

/** The member to try after `tried` of them, in the pool's order; undefined when none is left. */
export function nextTarget<T>(targets: readonly T[], tried: number): T | undefined {
  return tried < targets.length ? targets[tried] : undefined;
}

/**
 * Our answer for when no member sends a final response, after `o`: the latest timeout or transport
 * failure decides it, but a member found unreachable afterwards does not hide an earlier timeout.
 */
export function failureAnswer(prev: OwnAnswer | undefined, o: Outcome): OwnAnswer | undefined {
  switch (o.kind) {
    case 'timeout':
      return TIMED_OUT;
    case 'transport-error':
      return NOT_REACHED;
    case 'unreachable':
      return prev ?? NOT_REACHED;
    case 'internal':
      return prev ?? NOT_SENT;
    case 'response':
      return prev;
  }
}

/**
 * After `last` (undefined before the first attempt): the next member, when the outcome moves on, the
 * request was not cancelled and a member is left; otherwise the answer that ends the request.
 */
export function decide<T, R extends Final>(s: Attempts<T, R>, last: Outcome | undefined): Verdict<T, R> {
  if (!s.cancelled && (last === undefined || movesOn(last))) {
    const target = nextTarget(s.targets, s.tried);
    if (target !== undefined) return { action: 'try', target };
  }
  return conclude(s);
}

/** The answer that ends the request: the best final response, or one of our own. */
export function conclude<T, R extends Final>(s: Attempts<T, R>): Ending<R> {
  const best = bestResponse(s.finals);
  if (best !== undefined) {
    // RFC 3261 §16.8: Timer C CANCELled the branch; the client learns that it timed out.
    if (s.timerC && best.status === 487) return { action: 'answer', answer: TIMER_C };
    // RFC 3261 §16.7 item 6: a 503 is not passed on as such ("the proxy SHOULD generate a 500"):
    // the client would otherwise take the whole service as unavailable.
    if (best.status === 503) return { action: 'answer', answer: POOL_503 };
    return { action: 'relay', response: best };
  }
  if (s.cancelled) return { action: 'answer', answer: s.timerC ? TIMER_C : CANCELLED };
  if (s.targets.length === 0) return { action: 'answer', answer: noMemberAnswer(s.noMemberRetryAfter) };
  return { action: 'answer', answer: s.failure ?? NOT_REACHED };
}

/**
 * RFC 3261 §16.7 item 6: "The stateful proxy MUST choose the "best" final response among those
 * received": 6xx first, then the lowest status; a 503 counts after every other 5xx (it is answered as
 * 500, see conclude). A 2xx, never held back, comes before all.
 */
export function bestResponse<R extends Final>(finals: readonly R[]): R | undefined {
  let best: R | undefined;
  for (const r of finals) if (best === undefined || rank(r.status) < rank(best.status)) best = r;
  return best;
}

function rank(s: number): number {
  return s < 300 ? -1 : s >= 600 ? 0 : s === 503 ? 1000 : s;
}
