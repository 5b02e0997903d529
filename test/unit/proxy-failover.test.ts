// The failover policy as plain functions (RFC 3261 §16.7, §16.8): which outcome moves on to the next
// member, which member is next, what a member's health learns, and how a request ends. Targets and
// responses here are plain data (strings, { status }), as another SIP stack would hand them in.

import { describe, it, expect } from 'vitest';
import {
  bestResponse,
  conclude,
  decide,
  failsMember,
  failureAnswer,
  movesOn,
  nextTarget,
  noMemberAnswer,
  INTERNAL,
  TIMEOUT,
  TRANSPORT_ERROR,
  UNREACHABLE,
  type Attempts,
  type Final,
  type Outcome,
} from '../../src/modes/proxy/failover.js';

const POOL = ['sip:10.0.0.1:5060', 'sip:10.0.0.2:5060', 'sip:10.0.0.3:5060'];

const response = (status: number, retryAfter?: number): Outcome => ({ kind: 'response', status, retryAfter });

function attempts(over: Partial<Attempts<string, Final>> = {}): Attempts<string, Final> {
  return {
    targets: POOL,
    tried: 0,
    finals: [],
    failure: undefined,
    cancelled: false,
    timerC: false,
    noMemberRetryAfter: 30,
    ...over,
  };
}

describe('movesOn: which outcome fails over to the next member', () => {
  it('503, a timeout, a transport error and an unreachable member move on', () => {
    for (const o of [response(503), response(503, 120), TIMEOUT, TRANSPORT_ERROR, UNREACHABLE])
      expect(movesOn(o), JSON.stringify(o)).toBe(true);
  });
  it('every other final response is the pool answer, and a fault of ours ends the request', () => {
    for (const s of [300, 302, 400, 404, 408, 480, 486, 487, 500, 502, 504, 600, 603])
      expect(movesOn(response(s)), String(s)).toBe(false);
    expect(movesOn(INTERNAL)).toBe(false);
  });
});

describe('failsMember: what a member health learns', () => {
  it('a 503, a timeout or a transport failure count against the member', () => {
    for (const o of [response(503), TIMEOUT, TRANSPORT_ERROR, UNREACHABLE]) expect(failsMember(o)).toBe(true);
  });
  it('any other final response, a 2xx included, says the member is up; a fault of ours says nothing', () => {
    for (const s of [200, 302, 404, 486, 500, 603]) expect(failsMember(response(s)), String(s)).toBe(false);
    expect(failsMember(INTERNAL)).toBe(false);
  });
});

describe('nextTarget: the pool order, walked once', () => {
  it('gives the members in order and nothing past the last', () => {
    expect([0, 1, 2, 3].map((n) => nextTarget(POOL, n))).toEqual([...POOL, undefined]);
    expect(nextTarget([], 0)).toBeUndefined();
  });
});

describe('failureAnswer: our answer when no member sends a final response', () => {
  it('a timeout gives 408, a transport failure 503, the latest of them deciding', () => {
    expect(failureAnswer(undefined, TIMEOUT)).toMatchObject({ status: 408, outcome: 'timeout' });
    expect(failureAnswer(failureAnswer(undefined, TIMEOUT), TRANSPORT_ERROR)).toMatchObject({ status: 503 });
    expect(failureAnswer(failureAnswer(undefined, TRANSPORT_ERROR), TIMEOUT)).toMatchObject({ status: 408 });
  });
  it('a member found unreachable afterwards does not hide an earlier timeout', () => {
    expect(failureAnswer(failureAnswer(undefined, TIMEOUT), UNREACHABLE)).toMatchObject({ status: 408 });
    expect(failureAnswer(undefined, UNREACHABLE)).toMatchObject({ status: 503, outcome: 'unreachable' });
  });
  it('a fault of ours gives 500 only when nothing else happened; a final response changes nothing', () => {
    expect(failureAnswer(undefined, INTERNAL)).toMatchObject({ status: 500 });
    expect(failureAnswer(failureAnswer(undefined, TIMEOUT), INTERNAL)).toMatchObject({ status: 408 });
    expect(failureAnswer(undefined, response(486))).toBeUndefined();
  });
});

describe('decide: the next member or the end', () => {
  it('the first member first', () => {
    expect(decide(attempts(), undefined)).toEqual({ action: 'try', target: POOL[0] });
  });

  it('after a 503, a timeout or a transport error, the next member in the pool order', () => {
    for (const o of [response(503), TIMEOUT, TRANSPORT_ERROR, UNREACHABLE]) {
      expect(decide(attempts({ tried: 1 }), o)).toEqual({ action: 'try', target: POOL[1] });
      expect(decide(attempts({ tried: 2 }), o)).toEqual({ action: 'try', target: POOL[2] });
    }
  });

  it('a final response other than 503 is relayed: no other member is asked', () => {
    const busy = { status: 486 };
    expect(decide(attempts({ tried: 1, finals: [busy] }), response(486))).toEqual({
      action: 'relay',
      response: busy,
    });
  });

  it('§16.7 item 6: every member answered 503: the client gets 500, not 503', () => {
    const finals = POOL.map(() => ({ status: 503 }));
    expect(decide(attempts({ tried: 3, finals }), response(503))).toEqual({
      action: 'answer',
      answer: { status: 500, outcome: 'pool-503' },
    });
  });

  it('the best of the finals ends the request: another member 404 wins over an earlier 503', () => {
    const notFound = { status: 404 };
    const s = attempts({ tried: 3, finals: [{ status: 503 }, notFound, { status: 503 }] });
    expect(decide(s, response(503))).toEqual({ action: 'relay', response: notFound });
  });

  it('every member timed out: 408; the last one unreachable after a timeout: still 408', () => {
    const timedOut = failureAnswer(undefined, TIMEOUT);
    expect(decide(attempts({ tried: 3, failure: timedOut }), TIMEOUT)).toEqual({
      action: 'answer',
      answer: { status: 408, outcome: 'timeout' },
    });
    expect(
      decide(attempts({ tried: 3, failure: failureAnswer(timedOut, UNREACHABLE) }), UNREACHABLE),
    ).toEqual({
      action: 'answer',
      answer: { status: 408, outcome: 'timeout' },
    });
  });

  it('no member to try: our own 503 with Retry-After', () => {
    expect(decide(attempts({ targets: [], noMemberRetryAfter: 45 }), undefined)).toEqual({
      action: 'answer',
      answer: { status: 503, retryAfter: 45, outcome: 'no-live-member' },
    });
    expect(noMemberAnswer(7)).toEqual({ status: 503, retryAfter: 7, outcome: 'no-live-member' });
  });

  it('once cancelled, no other member is tried: 487 without a final, the member final otherwise', () => {
    expect(
      decide(attempts({ tried: 1, cancelled: true, failure: failureAnswer(undefined, TIMEOUT) }), TIMEOUT),
    ).toEqual({
      action: 'answer',
      answer: { status: 487, outcome: 'cancelled' },
    });
    const terminated = { status: 487 };
    expect(decide(attempts({ tried: 1, cancelled: true, finals: [terminated] }), response(487))).toEqual({
      action: 'relay',
      response: terminated,
    });
    expect(decide(attempts({ tried: 1, cancelled: true, finals: [{ status: 503 }] }), response(503))).toEqual(
      {
        action: 'answer',
        answer: { status: 500, outcome: 'pool-503' },
      },
    );
  });

  it('§16.8: after Timer C the cancelled member 487, or no final at all, reaches the client as 408', () => {
    const s = attempts({ tried: 1, cancelled: true, timerC: true });
    expect(decide({ ...s, finals: [{ status: 487 }] }, response(487))).toEqual({
      action: 'answer',
      answer: { status: 408, outcome: 'timer-c' },
    });
    expect(decide(s, TIMEOUT)).toEqual({ action: 'answer', answer: { status: 408, outcome: 'timer-c' } });
    // Another final the member chose to send is its answer.
    const declined = { status: 603 };
    expect(decide({ ...s, finals: [declined] }, response(603))).toEqual({
      action: 'relay',
      response: declined,
    });
  });

  it('a fault of ours ends the request with 500 though members are left', () => {
    expect(decide(attempts({ tried: 1, failure: failureAnswer(undefined, INTERNAL) }), INTERNAL)).toEqual({
      action: 'answer',
      answer: { status: 500, outcome: 'unreachable' },
    });
  });

  it('conclude never tries a member, whatever is left', () => {
    expect(conclude(attempts({ tried: 0 })).action).toBe('answer');
  });
});

describe('bestResponse (RFC 3261 §16.7 item 6)', () => {
  const pick = (...statuses: number[]): number | undefined =>
    bestResponse(statuses.map((status) => ({ status })))?.status;
  it('6xx first, then the lowest status; 503 after every other 5xx', () => {
    expect(pick(486, 603, 404)).toBe(603);
    expect(pick(486, 404, 480)).toBe(404);
    expect(pick(503, 504, 500)).toBe(500);
    expect(pick(503, 599)).toBe(599);
    expect(pick(503, 302)).toBe(302);
    expect(pick()).toBeUndefined();
  });
  it('a 2xx, never held back, comes before a 6xx', () => {
    expect(pick(603, 200)).toBe(200);
  });
  it('keeps the first of equal statuses, the object as handed in', () => {
    const first = { status: 486, from: 'a' };
    expect(bestResponse([first, { status: 486, from: 'b' }])).toBe(first);
  });
});
