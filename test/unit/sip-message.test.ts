// The message model's kept form of a request (RetainedRequest): what a transaction waiting for its
// answer holds instead of the parsed message.

import { describe, it, expect } from 'vitest';
import { parseMessage } from '../../src/sip/parser.js';
import { asRequest, flatCopy, retainedRequest, RetainedRequest, SipRequest } from '../../src/sip/message.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildResponse } from '../../src/sip/response.js';

function request(text: string): SipRequest {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('fixture did not parse');
  return r.message;
}

const INVITE = request(
  'INVITE sip:ocschat@contoso.com SIP/2.0\n' +
    'v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a;rport, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-b\n' +
    'Via: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK-c\n' +
    'Max-Forwards: 70\n' +
    'f: "M\xfcller: Anna" <sip:anna@contoso.com>;tag=1\n' +
    'To: <sip:ocschat@contoso.com>\n' +
    'Route: <sip:fe1.contoso.com;lr>\n' +
    'Route: <sip:fe2.contoso.com;lr>\n' +
    'i: call-1@127.0.0.1\n' +
    'CSeq: 7 INVITE\n' +
    'ms-keep-alive: UAC;hop-hop=yes\n' +
    'Content-Type: application/sdp\n' +
    'Content-Length: 4\n\nv=0\n',
);

describe('RetainedRequest', () => {
  it('keeps the start line, Via, Route, From, To, Call-ID and CSeq, in wire order, and nothing else', () => {
    const kept = retainedRequest(INVITE);
    expect(kept).toBeInstanceOf(RetainedRequest);
    expect([kept.method, kept.uri, kept.version]).toEqual(['INVITE', 'sip:ocschat@contoso.com', 'SIP/2.0']);
    const back = kept.unpack();
    expect(back.headers.map((h) => h.name)).toEqual([
      'via',
      'via',
      'from',
      'to',
      'route',
      'route',
      'call-id',
      'cseq',
    ]);
    // Canonical spellings, values byte for byte (a colon and a latin1 byte inside a value too).
    expect(back.headers[0]).toEqual({ name: 'via', wire: 'Via', value: INVITE.headers[0]!.value });
    expect(back.header('from')).toBe('"M\xfcller: Anna" <sip:anna@contoso.com>;tag=1');
    expect(back.headerLines('route')).toEqual(['<sip:fe1.contoso.com;lr>', '<sip:fe2.contoso.com;lr>']);
    expect(back.cseq).toEqual({ seq: 7, method: 'INVITE' });
    expect(back.topVia.branch).toBe('z9hG4bK-a');
    expect(back.body.length).toBe(0);
    expect(back.header('max-forwards')).toBeUndefined();
  });

  it('answers as the request itself would: the same response bytes', () => {
    const parts = { status: 408, toTag: 't1', topVia: undefined, server: 'pchat-endpoint' };
    expect(buildResponse(retainedRequest(INVITE).unpack(), parts)).toEqual(buildResponse(INVITE, parts));
  });

  it('reads its Call-ID wherever the header stood, and knows when there is none', () => {
    expect(retainedRequest(INVITE).callId).toBe('call-1@127.0.0.1');
    const first = request(
      'OPTIONS sip:a@b SIP/2.0\nCall-ID: first@x\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n',
    );
    expect(retainedRequest(first).callId).toBe('first@x');
    const none = new SipRequest(
      'OPTIONS',
      'sip:a@b',
      'SIP/2.0',
      [{ name: 'cseq', wire: 'CSeq', value: '1 OPTIONS' }],
      Buffer.alloc(0),
    );
    expect(retainedRequest(none).callId).toBeUndefined();
  });

  it('unpacks to a new request each time, so an answer built from one never changes the kept form', () => {
    const kept = retainedRequest(INVITE);
    const a = kept.unpack();
    const b = kept.unpack();
    expect(a).not.toBe(b);
    expect(a.headers).not.toBe(b.headers);
    expect(a.headers).toEqual(b.headers);
  });

  it('asRequest gives a parsed request back as it is and unpacks a kept one', () => {
    expect(asRequest(INVITE)).toBe(INVITE);
    expect(asRequest(retainedRequest(INVITE)).callId).toBe('call-1@127.0.0.1');
  });
});

describe('Content-Length (RFC 3261 §20.14)', () => {
  const withLength = (value: string, body = ''): Buffer =>
    Buffer.from(
      'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\n' +
        `To: <sip:a@b>\r\nCall-ID: cl\r\nCSeq: 1 OPTIONS\r\nContent-Length: ${value}\r\n\r\n${body}`,
      'latin1',
    );
  it.each([
    ['0', '', 0],
    ['007', 'abcdefg', 7],
    ['3', 'abcdef', 3],
  ])('%s reads as a length of %s', (value, body, length) => {
    const r = parseMessage(withLength(value, body));
    expect(r.ok && r.message.body.length).toBe(length);
  });
  it.each(['', '12345678901', '4294967296', '-1', '5a', '+5', '0x5', '1e2'])('%j is a 400', (value) => {
    const r = parseMessage(withLength(value, 'x'.repeat(10)));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toBe('Bad Content-Length');
  });
});

describe('flatCopy', () => {
  it('keeps the copied text, not the message it was sliced from', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    const kept: string[] = [];
    const message = (i: number): string =>
      `INVITE sip:${i}@x SIP/2.0\r\n` + `X-Pad: ${i}`.padEnd(20_000, 'x');
    for (let i = 0; i < 2000; i++) {
      // A 20 kB message of its own each time; what is kept is a 40-character slice of it.
      kept.push(flatCopy(message(i).slice(11, 51)));
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // 2,000 messages are 40 MB; the copies are 2,000 strings of 41 characters.
    expect(grown).toBeLessThan(4_000_000);
    expect(kept[7]).toBe(message(7).slice(11, 51));
  });

  it('copies text of any length, latin1 included', () => {
    const text = 'Via: SIP/2.0/TCP h;branch=z9hG4bK\u00e9\u00ff-'.repeat(200);
    for (const len of [0, 12, 13, 40, 1024, 1025, text.length]) {
      const slice = text.slice(3, 3 + len);
      expect(flatCopy(slice)).toBe(slice);
    }
  });
});
