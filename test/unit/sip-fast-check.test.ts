// The fast paths must accept only what the full parsers accept, and build the same Via structure.

import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fastVia, isPlainNameAddr } from '../../src/sip/fast-check.js';
import { parseVia } from '../../src/sip/via.js';
import { parseNameAddr } from '../../src/sip/name-addr.js';
import { parseMessage } from '../../src/sip/parser.js';
import { splitHeaderValues } from '../../src/sip/header-values.js';

const FIX = join(import.meta.dirname, '../fixtures/rfc4475');

/** Header values of every fixture, plus deterministic mutations of them. */
function corpus(names: string[]): string[] {
  const values = new Set<string>([
    'sipp <sip:sipp@127.0.0.1:5070>;tag=1234',
    '<sip:ocschat@contoso.com>',
    '"Alice" <sip:alice@contoso.com>;tag=1928;epid=abc',
    'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport',
    'SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKabc;ms-received-cid=A00',
    'SIP/2.0/UDP host.example.com;branch=z9hG4bK1;received=1.2.3.4',
  ]);
  for (const f of readdirSync(FIX).filter((x) => x.endsWith('.dat'))) {
    const r = parseMessage(readFileSync(join(FIX, f)));
    const m = r.ok ? r.message : r.request;
    if (!m) continue;
    for (const h of m.headers) {
      if (!names.includes(h.name)) continue;
      values.add(h.value);
      try {
        for (const v of splitHeaderValues(h.value)) values.add(v);
      } catch {
        // Unsplittable values are still in the corpus whole.
      }
    }
  }
  const base = [...values];
  const mutations = [
    '',
    ' ',
    ';',
    ';;',
    '<',
    '>',
    '"',
    '\\',
    ':',
    '@',
    '%',
    ',',
    '\t',
    ':99999',
    '=',
    '[::1]',
    '..',
    '-',
  ];
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (const v of base) {
    for (let k = 0; k < 200; k++) {
      const at = rand(v.length + 1);
      const m = mutations[rand(mutations.length)]!;
      values.add(
        k % 3 === 0
          ? v.slice(0, at)
          : k % 3 === 1
            ? v.slice(0, at) + m + v.slice(at)
            : v.slice(0, at) + m + v.slice(at + 1),
      );
    }
  }
  return [...values];
}

describe('fast paths are a strict subset of the full grammar', () => {
  it('isPlainNameAddr accepts only values parseNameAddr accepts', () => {
    let fast = 0;
    for (const v of corpus(['from', 'to', 'contact'])) {
      if (!isPlainNameAddr(v)) continue;
      fast++;
      expect(() => parseNameAddr(v), v).not.toThrow();
    }
    expect(fast).toBeGreaterThan(50);
  });

  it('fastVia accepts only values parseVia accepts, with the same structure', () => {
    let fast = 0;
    for (const v of corpus(['via'])) {
      const f = fastVia(v);
      if (f === undefined) continue;
      fast++;
      expect(f, v).toEqual(parseVia(v));
    }
    expect(fast).toBeGreaterThan(50);
  });

  it('takes the fast path for the everyday forms', () => {
    expect(isPlainNameAddr('sipp <sip:sipp@127.0.0.1:5070>;tag=1234')).toBe(true);
    expect(isPlainNameAddr('"Bell, Alexander" <sip:a.g.bell@example.com>;tag=43')).toBe(true);
    expect(fastVia('SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport')?.branch).toBe('z9hG4bK-1');
    // A tag parameter without a token value is the full parser's to refuse.
    for (const v of ['<sip:a@b>;tag', '<sip:a@b>;TAG ;x=1', '<sip:a@b>;tag= "x"', '<sip:a@b> ; Tag\t']) {
      expect(isPlainNameAddr(v), v).toBe(false);
      expect(() => parseNameAddr(v), v).toThrow();
    }
    expect(isPlainNameAddr('<sip:a@b>;tag=x;tagged;x-tag')).toBe(true);
    // Needs the full parser: received has a grammar of its own.
    expect(fastVia('SIP/2.0/UDP h;branch=z9hG4bK1;received=1.2.3.4')).toBeUndefined();
  });
});
