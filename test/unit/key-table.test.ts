// The transaction tables' hash table, checked against a Map under the same operations.

import { describe, it, expect } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { KeyTable } from '../../src/base/key-table.js';

/** A small deterministic generator, so that a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('KeyTable', () => {
  it('agrees with a Map over random sets, replacements and deletes, through growth and shrinking', () => {
    const rand = rng(7);
    const t = new KeyTable<number>();
    const m = new Map<string, number>();
    // Phases: fill far beyond the first capacity (growth), churn, then empty (shrinking).
    const phases: [ops: number, pSet: number, keySpace: number][] = [
      [20_000, 0.9, 8_000],
      [50_000, 0.5, 8_000],
      [30_000, 0.1, 8_000],
      [50_000, 0.5, 50],
    ];
    for (const [ops, pSet, keySpace] of phases) {
      for (let n = 0; n < ops; n++) {
        const key = `z9hG4bK-${Math.floor(rand() * keySpace)}-1-0`;
        if (rand() < pSet) {
          const v = n;
          t.set(key, v);
          m.set(key, v);
        } else if (rand() < 0.5) {
          expect(t.delete(key)).toBe(m.delete(key));
        } else {
          // Deleted only when it holds this value: the current one, or a value it no longer holds.
          const v = rand() < 0.5 ? m.get(key) : -1;
          const held = m.has(key) && m.get(key) === v;
          expect(t.deleteIf(key, v as number)).toBe(held);
          if (held) m.delete(key);
        }
        if (n % 97 === 0) {
          const probe = `z9hG4bK-${Math.floor(rand() * keySpace)}-1-0`;
          expect(t.get(probe)).toBe(m.get(probe));
          expect(t.has(probe)).toBe(m.has(probe));
        }
      }
      expect(t.size).toBe(m.size);
      for (const [k, v] of m) expect(t.get(k)).toBe(v);
      expect(t.values().sort((a, b) => a - b)).toEqual([...m.values()].sort((a, b) => a - b));
    }
  });

  it('grows for a burst and gives the room back as the burst drains', () => {
    const t = new KeyTable<number>();
    const first = t.capacity;
    for (let n = 0; n < 100_000; n++) t.set(`b${n}`, n);
    expect(t.capacity).toBeGreaterThanOrEqual(200_000);
    for (let n = 0; n < 100_000; n++) expect(t.delete(`b${n}`)).toBe(true);
    expect(t.size).toBe(0);
    expect(t.capacity).toBe(first);
  });

  it('tells keys apart that share a prefix, differ in case, or are empty', () => {
    const t = new KeyTable<string>();
    for (const k of [
      '',
      'a',
      'A',
      'ab',
      'a\u0000b',
      'INVITE z9hG4bK1\u0000h:5060',
      'INVITE z9hG4bK1\u0000h:5061',
    ]) {
      t.set(k, `v:${k}`);
    }
    expect(t.size).toBe(7);
    expect(t.get('a')).toBe('v:a');
    expect(t.get('A')).toBe('v:A');
    expect(t.get('')).toBe('v:');
    expect(t.get('INVITE z9hG4bK1\u0000h:5061')).toBe('v:INVITE z9hG4bK1\u0000h:5061');
    expect(t.get('b')).toBeUndefined();
    t.set('a', 'again');
    expect(t.size).toBe(7);
    expect(t.get('a')).toBe('again');
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get('a')).toBeUndefined();
    expect(t.values()).toEqual([]);
  });

  it('holds nothing of what was deleted, however many times its slots were reused or rebuilt', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const t = new KeyTable<{ n: number }>();
    // Filled in a function of its own: a suspended async frame could still hold the last value.
    const { gone, kept } = churn(t);
    // WeakRef targets stay alive to the end of the job that made them.
    await new Promise((r) => setTimeout(r, 0));
    gc();
    expect(gone.map((w) => w.deref()?.n).filter((n) => n !== undefined)).toEqual([]);
    expect(t.size).toBe(kept.length);
    for (const v of kept) expect(t.get(`k${v.n}`)).toBe(v);
  });
});

function churn(t: KeyTable<{ n: number }>): { gone: WeakRef<{ n: number }>[]; kept: { n: number }[] } {
  const gone: WeakRef<{ n: number }>[] = [];
  const kept: { n: number }[] = [];
  for (let n = 0; n < 30_000; n++) {
    const v = { n };
    const key = `k${n}`;
    t.set(key, v);
    if (n % 1000 === 0) kept.push(v);
    else {
      gone.push(new WeakRef(v));
      t.delete(key);
    }
  }
  return { gone, kept };
}
