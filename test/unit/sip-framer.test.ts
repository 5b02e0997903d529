// Stream framing: a byte stream split at every offset yields exactly the same messages.

import { describe, it, expect, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StreamFramer, type FrameEvent } from '../../src/sip/framer.js';

const FIX = join(import.meta.dirname, '../fixtures/rfc4475');

function msg(body: string, extra = ''): string {
  return (
    'INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n' +
    `From: <sip:a@contoso.com>;tag=1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n${extra}` +
    `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`
  );
}

function frameAll(chunks: Buffer[]): FrameEvent[] {
  const f = new StreamFramer(65535);
  return chunks.flatMap((c) => f.push(c));
}

describe('StreamFramer', () => {
  const mpart = readFileSync(join(FIX, 'mpart01.dat'));
  const messages = [
    Buffer.from(msg('v=0\r\n'), 'latin1'),
    Buffer.from('\r\n\r\n'),
    mpart,
    Buffer.from(msg(''), 'latin1'),
    Buffer.from(msg('x'.repeat(300), 'l: 300\r\n'), 'latin1'),
  ];
  const stream = Buffer.concat(messages);
  const expected = [messages[0], messages[2], messages[3], messages[4]].map((b) => b!.toString('latin1'));

  it('frames a whole stream in one chunk', () => {
    const ev = frameAll([stream]);
    expect(
      ev
        .filter((e) => e.type === 'message')
        .map((e) => (e.type === 'message' ? e.data.toString('latin1') : '')),
    ).toEqual(expected);
    expect(ev.filter((e) => e.type === 'ping')).toHaveLength(1);
  });

  it('every split into two chunks gives the same messages', () => {
    for (let at = 0; at <= stream.length; at++) {
      const ev = frameAll([stream.subarray(0, at), stream.subarray(at)]);
      const got = ev
        .filter((e) => e.type === 'message')
        .map((e) => (e.type === 'message' ? e.data.toString('latin1') : ''));
      expect(got, `split at ${at}`).toEqual(expected);
      expect(ev.some((e) => e.type === 'error')).toBe(false);
    }
  });

  it('each message carries its header section, through the blank line, as text', () => {
    for (const at of [0, 7, 200, stream.length - 3]) {
      const heads = frameAll([stream.subarray(0, at), stream.subarray(at)]).flatMap((e) =>
        e.type === 'message' ? [e.head.text] : [],
      );
      expect(heads, `split at ${at}`).toEqual(expected.map((m) => m.slice(0, m.indexOf('\r\n\r\n') + 4)));
    }
  });

  it('a header section arriving in pieces is decoded once it is complete, not on every piece', () => {
    const whole = Buffer.from(msg('x'.repeat(40), 'X-Pad: ' + 'p'.repeat(3000) + '\r\n'), 'latin1');
    const decode = vi.spyOn(Buffer.prototype, 'toString');
    try {
      const f = new StreamFramer(65535);
      const got: FrameEvent[] = [];
      for (let at = 0; at < whole.length; at += 10) got.push(...f.push(whole.subarray(at, at + 10)));
      expect(got.map((e) => (e.type === 'message' ? e.data.toString('latin1') : e.type))).toEqual([
        whole.toString('latin1'),
      ]);
      // About 310 pieces: the first is decoded, then only the one that completes the blank line.
      expect(decode.mock.calls.length).toBeLessThan(20);
    } finally {
      decode.mockRestore();
    }
  });

  it('byte-by-byte delivery gives the same messages', () => {
    const chunks = [...stream].map((b) => Buffer.from([b]));
    const got = frameAll(chunks)
      .filter((e) => e.type === 'message')
      .map((e) => (e.type === 'message' ? e.data.toString('latin1') : ''));
    expect(got).toEqual(expected);
  });

  it('a negative Content-Length loses framing with a 400 and the header for the answer', () => {
    const ev = frameAll([Buffer.from(msg('').replace('Content-Length: 0', 'Content-Length: -5'), 'latin1')]);
    const err = ev.find((e) => e.type === 'error');
    expect(err?.type === 'error' && err.error.status).toBe(400);
    expect(err?.type === 'error' && err.data?.toString('latin1')).toMatch(/^INVITE/);
  });

  it('conflicting Content-Length values lose framing (RFC 4475 mcl01)', () => {
    const ev = frameAll([readFileSync(join(FIX, 'mcl01.dat'))]);
    expect(ev.map((e) => e.type)).toEqual(['error']);
  });

  it('a message larger than the limit is refused with 513 and nothing more is framed', () => {
    const f = new StreamFramer(1000);
    const ev = f.push(Buffer.from(msg('y'.repeat(2000)), 'latin1'));
    expect(ev.map((e) => (e.type === 'error' ? e.error.status : e.type))).toEqual([513]);
    expect(f.push(Buffer.from(msg(''), 'latin1'))).toEqual([]);
  });

  it('endless headers without a blank line are refused once over the limit', () => {
    const f = new StreamFramer(1000);
    let events: FrameEvent[] = [];
    for (let i = 0; i < 100 && events.length === 0; i++)
      events = f.push(Buffer.from('X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n'));
    expect(events.map((e) => (e.type === 'error' ? e.error.status : e.type))).toEqual([513]);
  });
});
