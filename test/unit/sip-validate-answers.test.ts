// The answer validation gives, reason phrase included, pinned for every RFC 4475 message and for
// everyday requests with one thing changed: the shortcuts taken for the usual message shape must not
// change what any other message is answered with. Each message is checked twice, so that what the
// first pass remembered (well-known URIs and To values) cannot change the second answer.

import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMessage } from '../../src/sip/parser.js';
import { validateRequest, validateResponse } from '../../src/sip/validate.js';
import { FIXTURES } from '../helpers/rfc4475.js';

/** "status reason" of the answer, or null when the message may be processed. */
function answer(data: Buffer): string | null {
  const r = parseMessage(data);
  const e = !r.ok
    ? r.error
    : r.message.kind === 'request'
      ? validateRequest(r.message)
      : validateResponse(r.message);
  return e === undefined ? null : `${e.status} ${e.reason}`;
}

const RFC4475: Record<string, string | null> = {
  badaspec: '400 Bad To header: whitespace inside <>',
  badbranch: null,
  baddate: '400 Bad Date header',
  baddn: '400 Missing blank line after headers',
  badinv01: '400 Bad Via: empty parameter',
  badvers: '505 Version Not Supported',
  bcast: null,
  bext01: null,
  bigcode: '400 Bad status code',
  clerr: '400 Content-Length exceeds message',
  cparam01: null,
  cparam02: null,
  dblreq: null,
  esc01: null,
  esc02: null,
  escnull: null,
  escruri: '400 Headers not allowed in Request-URI',
  insuf: '400 Missing Call-ID header',
  intmeth: null,
  inv2543: null,
  invut: null,
  longreq: null,
  ltgtruri: '400 Malformed Request-URI',
  lwsdisp: null,
  lwsruri: '400 Malformed Request-Line',
  lwsstart: '400 Malformed Request-Line',
  mcl01: '400 Conflicting Content-Length',
  mismatch01: '400 CSeq method does not match request method',
  mismatch02: '400 CSeq method does not match request method',
  mpart01: null,
  multi01: '400 Multiple Call-ID headers',
  ncl: '400 Bad Content-Length',
  noreason: null,
  novelsc: null,
  quotbal: '400 Bad To header: unterminated quoted string',
  regaut01: null,
  regbadct: '400 Bad Contact header: URI with , or ? must be enclosed in <>',
  regescrt: null,
  scalar02: '400 Bad CSeq',
  scalarlg: '400 Bad CSeq',
  sdp01: null,
  semiuri: null,
  transports: null,
  trws: '400 Malformed Request-Line',
  unkscm: null,
  unksm2: null,
  unreason: null,
  wsinv: null,
  zeromf: null,
};

const VIA = 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1';
const FROM = 'From: sipp <sip:sipp@127.0.0.1:5070>;tag=1';
const TO = 'To: <sip:ocschat@contoso.com>';
const CID = 'Call-ID: 1-bench@127.0.0.1';
const CSEQ = 'CSeq: 1 INVITE';
const CONTACT = 'Contact: <sip:sipp@127.0.0.1:5070>';
const BASE = [VIA, FROM, TO, CID, CSEQ, CONTACT, 'Max-Forwards: 70'];

const VARIANTS: Record<string, string[]> = {
  'the everyday INVITE': BASE,
  'two Via lines': [VIA, 'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2', ...BASE.slice(1)],
  'a bad second Via line': [VIA, 'Via: SIP/2.0/UDP 10.0.0.1:99999;branch=z9hG4bK-2', ...BASE.slice(1)],
  'two Via values on one line': [VIA + ', SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2', ...BASE.slice(1)],
  'a bad second Via value': [VIA + ', SIP/2.0/UDP', ...BASE.slice(1)],
  'no From': BASE.filter((l) => l !== FROM),
  'no To': BASE.filter((l) => l !== TO),
  'no CSeq': BASE.filter((l) => l !== CSEQ),
  'two To': [...BASE, TO],
  'two CSeq': [...BASE, CSEQ],
  'two Call-ID and no To': [...BASE.filter((l) => l !== TO), CID],
  'a bad To': [VIA, FROM, 'To: <sip:ocschat@contoso.com', CID, CSEQ],
  'a bad From': [VIA, 'From: sipp <sip:sipp@127.0.0.1:5070>;tag', TO, CID, CSEQ],
  'two Contact lines': [...BASE, 'Contact: <sip:b@10.0.0.1>'],
  'a bad second Contact line': [...BASE, 'Contact: <sip:b@10.0.0.1'],
  'a wildcard Contact': [...BASE.filter((l) => l !== CONTACT), 'Contact: *'],
  'a Route': [...BASE, 'Route: <sip:10.0.0.1;lr>'],
  'a bad Route': [...BASE, 'Route: <sip:10.0.0.1;lr'],
  'a bad Require': [...BASE, 'Require: a b'],
  'a Proxy-Require': [...BASE, 'Proxy-Require: foo, bar'],
  'an empty Record-Route element': [...BASE, 'Record-Route: <sip:a>,'],
  'a non-GMT Date': [...BASE, 'Date: Sat, 13 Nov 2010 23:29:00 EST'],
};

const EXPECTED: Record<string, string | null> = {
  'the everyday INVITE': null,
  'two Via lines': null,
  'a bad second Via line': '400 Bad Via header: port out of range',
  'two Via values on one line': null,
  'a bad second Via value': '400 Bad Via header: missing sent-by',
  'no From': '400 Missing From header',
  'no To': '400 Missing To header',
  'no CSeq': '400 Missing CSeq header',
  'two To': '400 Multiple To headers',
  'two CSeq': '400 Multiple CSeq headers',
  'two Call-ID and no To': '400 Multiple Call-ID headers',
  'a bad To': '400 Bad To header: unterminated <',
  'a bad From': '400 Bad From header: bad tag',
  'two Contact lines': null,
  'a bad second Contact line': '400 Bad header value: unterminated <',
  'a wildcard Contact': null,
  'a Route': null,
  'a bad Route': '400 Bad header value: unterminated <',
  'a bad Require': '400 Bad Require header',
  'a Proxy-Require': null,
  'an empty Record-Route element': '400 Bad header value: empty list element',
  'a non-GMT Date': '400 Bad Date header',
};

describe('validation answers, pinned', () => {
  for (const [name, expected] of Object.entries(RFC4475)) {
    it(`RFC 4475 ${name}: ${expected ?? 'accepted'}`, () => {
      const data = readFileSync(join(FIXTURES, `${name}.dat`));
      expect(answer(data)).toBe(expected);
      expect(answer(data)).toBe(expected);
    });
  }

  for (const [name, lines] of Object.entries(VARIANTS)) {
    it(`${name}: ${EXPECTED[name] ?? 'accepted'}`, () => {
      const data = Buffer.from(
        `INVITE sip:ocschat@contoso.com SIP/2.0\r\n${lines.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`,
        'latin1',
      );
      expect(answer(data)).toBe(EXPECTED[name]);
      expect(answer(data)).toBe(EXPECTED[name]);
    });
  }
});
