// What the proxy sends on (RFC 3261 §16.6, §16.7): our Via on top, Max-Forwards decremented,
// Record-Route added, our Route popped, our Via removed from responses; everything else unchanged.

import { describe, it, expect } from 'vitest';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import {
  forwardedRequest,
  withoutTopVia,
  firstRoute,
  retryAfterSeconds,
} from '../../src/modes/proxy/forward.js';

function req(text: string): SipRequest {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('not a request');
  return r.message;
}
function res(text: string): SipResponse {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!r.ok || r.message.kind !== 'response') throw new Error('not a response');
  return r.message;
}

const INVITE = `INVITE sip:ocschat@contoso.com SIP/2.0
Via: SIP/2.0/TLS 10.1.1.1:49152;branch=z9hG4bKfe;ms-received-port=49152;ms-received-cid=A00
Max-Forwards: 70
From: <sip:user@contoso.com>;tag=12345678;epid=abcdef
To: <sip:ocschat@contoso.com>
Call-ID: 0123abcd
CSeq: 1 INVITE
Route: <sip:pce.contoso.com:5061;transport=tls;lr>, <sip:fe.contoso.com:5061;transport=tls;lr;ms-route-sig=aaBBccDD>
Record-Route: <sip:fe.contoso.com:5061;transport=tls;opaque=state:T;lr;ms-route-sig=cdLi1cPAH7>
Ms-Conversation-ID: AcnS0y0b1d8B
ms-keep-alive: UAC;hop-hop=yes
Supported: ms-sender
Content-Type: application/sdp
Content-Length: 8

v=0\u00e9\u0000abc`;

describe('forwardedRequest (RFC 3261 §16.6)', () => {
  const original = req(INVITE);
  const copy = forwardedRequest(original, {
    via: 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours',
    recordRoute: '<sip:127.0.0.1:5060;transport=udp;lr>',
    popRoute: true,
  });
  const text = copy.toBuffer().toString('latin1');
  const lines = text.split('\r\n');

  it('puts our Via first and keeps the client Via, parameters and all, after it', () => {
    expect(lines[1]).toBe('Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours');
    expect(lines).toContain(
      'Via: SIP/2.0/TLS 10.1.1.1:49152;branch=z9hG4bKfe;ms-received-port=49152;ms-received-cid=A00',
    );
  });

  it('adds Record-Route above the existing (signed) one', () => {
    const rr = lines.filter((l) => l.startsWith('Record-Route:'));
    expect(rr).toEqual([
      'Record-Route: <sip:127.0.0.1:5060;transport=udp;lr>',
      'Record-Route: <sip:fe.contoso.com:5061;transport=tls;opaque=state:T;lr;ms-route-sig=cdLi1cPAH7>',
    ]);
  });

  it('decrements Max-Forwards and pops our Route, keeping the next one byte for byte', () => {
    expect(lines).toContain('Max-Forwards: 69');
    expect(lines.filter((l) => l.startsWith('Route:'))).toEqual([
      'Route: <sip:fe.contoso.com:5061;transport=tls;lr;ms-route-sig=aaBBccDD>',
    ]);
  });

  it('passes Microsoft extension headers, the Request-URI and the binary body through unchanged', () => {
    expect(lines[0]).toBe('INVITE sip:ocschat@contoso.com SIP/2.0');
    expect(lines).toContain('Ms-Conversation-ID: AcnS0y0b1d8B');
    expect(lines).toContain('ms-keep-alive: UAC;hop-hop=yes');
    expect(lines).toContain('From: <sip:user@contoso.com>;tag=12345678;epid=abcdef');
    expect(Buffer.compare(copy.body, original.body)).toBe(0);
    expect(text.endsWith('\r\n\r\nv=0\u00e9\u0000abc')).toBe(true);
    expect(lines).toContain('Content-Length: 8');
  });

  it('adds Max-Forwards: 70 when the request had none (§16.6 item 3)', () => {
    const bare = req(INVITE.replace('Max-Forwards: 70\n', ''));
    const out = forwardedRequest(bare, { via: 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx' })
      .toBuffer()
      .toString('latin1');
    expect(out).toContain('\r\nMax-Forwards: 70\r\n');
  });
});

describe('responses on the way back (RFC 3261 §16.7 item 3)', () => {
  it('lose our Via and nothing else', () => {
    const r = res(`SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours, SIP/2.0/TLS 10.1.1.1:49152;branch=z9hG4bKfe;received=10.1.1.1
From: <sip:user@contoso.com>;tag=1
To: <sip:ocschat@contoso.com>;tag=2
Call-ID: x
CSeq: 1 INVITE
Retry-After: 120 (maintenance)
Content-Length: 0

`);
    const up = withoutTopVia(r)!;
    expect(up.headerLines('via')).toEqual(['SIP/2.0/TLS 10.1.1.1:49152;branch=z9hG4bKfe;received=10.1.1.1']);
    expect(up.header('to')).toBe('<sip:ocschat@contoso.com>;tag=2');
    expect(retryAfterSeconds(r)).toBe(120);
  });

  it('with only our Via left, there is nowhere to send them', () => {
    const r = res(
      'SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n',
    );
    expect(withoutTopVia(r)).toBeUndefined();
  });

  it('firstRoute reads the first value of the first Route line', () => {
    expect(firstRoute(req(INVITE))).toBe('<sip:pce.contoso.com:5061;transport=tls;lr>');
  });
});
