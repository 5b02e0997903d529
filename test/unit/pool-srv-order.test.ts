// RFC 2782 SRV ordering: priority first, then weighted random within a priority, with a pinned random source.

import { describe, expect, it } from 'vitest';
import { orderSrv } from '../../src/pool/srv-order.js';

const rec = (name: string, priority: number, weight: number) => ({ name, port: 5061, priority, weight });

/** A random source that returns the given values in turn. */
function seq(...values: number[]): () => number {
  let i = 0;
  return () => {
    const v = values[i++];
    if (v === undefined) throw new Error('random source exhausted');
    return v;
  };
}

describe('orderSrv (RFC 2782)', () => {
  it('tries lower priority values first, whatever the weights', () => {
    const out = orderSrv([rec('c', 20, 100), rec('a', 0, 0), rec('b', 10, 50)], () => 0);
    expect(out.map((r) => r.name)).toEqual(['a', 'b', 'c']);
  });

  it('picks within a priority by running sum: the first whose running sum >= the random number', () => {
    // Weights 10 and 30, sum 40: random integers 0..10 choose "a", 11..40 choose "b".
    const records = [rec('a', 1, 10), rec('b', 1, 30)];
    // floor(0.25 * 41) = 10 -> a
    expect(orderSrv(records, seq(0.25)).map((r) => r.name)).toEqual(['a', 'b']);
    // floor(0.27 * 41) = 11 -> b
    expect(orderSrv(records, seq(0.27)).map((r) => r.name)).toEqual(['b', 'a']);
  });

  it('places weight 0 first in the running sum, so it is chosen only on a random 0', () => {
    const records = [rec('heavy', 5, 100), rec('zero', 5, 0)];
    expect(orderSrv(records, seq(0)).map((r) => r.name)).toEqual(['zero', 'heavy']);
    expect(orderSrv(records, seq(0.5)).map((r) => r.name)).toEqual(['heavy', 'zero']);
  });

  it('spreads load in proportion to weight (RFC 2782: "larger weights SHOULD be given a proportionately higher probability")', () => {
    let state = 12345;
    // A small LCG keeps the run deterministic.
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const firsts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const first = orderSrv([rec('a', 0, 10), rec('b', 0, 30), rec('c', 0, 60)], random)[0]!.name;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    expect((firsts.get('a') ?? 0) / 20_000).toBeCloseTo(0.1, 1);
    expect((firsts.get('b') ?? 0) / 20_000).toBeCloseTo(0.3, 1);
    expect((firsts.get('c') ?? 0) / 20_000).toBeCloseTo(0.6, 1);
  });

  it('returns every record once and leaves the input untouched', () => {
    const input = [rec('a', 2, 1), rec('b', 1, 1), rec('c', 1, 1), rec('d', 2, 0)];
    const copy = input.slice();
    const out = orderSrv(input, () => 0.99);
    expect(input).toEqual(copy);
    expect(out.map((r) => r.name).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(out.slice(0, 2).map((r) => r.priority)).toEqual([1, 1]);
  });
});
