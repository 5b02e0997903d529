// The decision line written by the fast serialiser is the line pino itself writes for the same fields.

import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import fc from 'fast-check';
import { decisionLogger, jsonString, type DecisionFields } from '../../src/base/log.js';

function capture(level = 'info') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = pino({ level, base: { service: 'pchat-endpoint' }, timestamp: () => ',"time":1' }, sink);
  return { logger, lines };
}

const cases: DecisionFields[] = [
  {
    callId: 'a@b',
    branch: 'z9hG4bK1',
    method: 'INVITE',
    ruri: 'sip:ocschat@contoso.com',
    endpoint: 'sip:ocschat@contoso.com',
    mode: 'redirect',
    status: 302,
    outcome: 'redirect',
    latencyUs: 12,
  },
  {
    callId: undefined,
    branch: undefined,
    method: 'OPTIONS',
    ruri: 'sip:x',
    status: 404,
    outcome: 'unknown',
    latencyUs: 0,
  },
  {
    callId: 'q"uote\\back\u0001\u00e9',
    branch: 'b',
    method: '!odd%',
    ruri: 'sip:"x"@y',
    status: 400,
    outcome: 'rejected',
    reason: 'Bad CSeq',
    peer: '127.0.0.1:5',
    latencyUs: 3,
  },
];

describe('decision lines', () => {
  for (const [i, f] of cases.entries()) {
    it(`case ${i}: byte-identical to pino's own line`, async () => {
      const fast = capture();
      decisionLogger(fast.logger)(i === 2 ? 'warn' : 'info', f);
      const slow = capture();
      slow.logger[i === 2 ? 'warn' : 'info']({ ...f }, 'decision');
      await new Promise((r) => setImmediate(r));
      expect(fast.lines).toHaveLength(1);
      expect(fast.lines).toEqual(slow.lines);
    });
  }

  it('respects the level', async () => {
    const c = capture('warn');
    decisionLogger(c.logger)('info', cases[0]!);
    decisionLogger(c.logger)('warn', cases[0]!);
    await new Promise((r) => setImmediate(r));
    expect(c.lines).toHaveLength(1);
    expect(JSON.parse(c.lines[0]!)).toMatchObject({ level: 40, msg: 'decision', status: 302 });
  });
});

describe('jsonString', () => {
  it('writes any string exactly as JSON.stringify does', () => {
    // Every UTF-16 code unit, lone surrogates included, and the characters that need escaping often.
    const unit = fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\ud800', '\udfff', '\u2028', 'é', 'a'),
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 40 }), (s) => jsonString(s) === JSON.stringify(s)),
      { numRuns: 5000 },
    );
    expect(jsonString('sip:ocschat@contoso.com')).toBe('"sip:ocschat@contoso.com"');
    expect(jsonString('a"b')).toBe('"a\\"b"');
    expect(jsonString('\ud83d\ude00')).toBe('"\ud83d\ude00"');
  });
});
