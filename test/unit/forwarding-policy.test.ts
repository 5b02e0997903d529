// The forwarding policy as a plain object: which in-dialog requests may be sent on and where, and the
// signed Record-Route it relies on (both forms, both directions, IPv6 parties, tampering).

import { describe, it, expect } from 'vitest';
import { ForwardingPolicy, addressToken } from '../../src/modes/proxy/forwarding-policy.js';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import { parseSipUri } from '../../src/sip/uri.js';
import { RIG_MEMBER } from '../helpers/proxy-rig.js';

const KEY = Buffer.from('a test secret of enough length', 'utf8');
const US = '10.0.0.1:5060';
const policy = (key = KEY): ForwardingPolicy =>
  new ForwardingPolicy(
    key,
    (uri) => `${uri.host}:${uri.port ?? 5060}` === US || uri.host === '[2001:db8::1]',
  );

function req(text: string): SipRequest {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('fixture does not parse');
  return r.message;
}

function res(text: string): SipResponse {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!r.ok || r.message.kind !== 'response') throw new Error('fixture does not parse');
  return r.message;
}

function bye(
  ruri: string,
  route: string | undefined,
  fromTag: string,
  toTag: string | undefined,
  callId = 'c1',
): SipRequest {
  return req(`BYE ${ruri} SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-1
${route === undefined ? '' : `Route: ${route}\n`}Max-Forwards: 70
From: <sip:a@contoso.com>;tag=${fromTag}
To: <sip:b@contoso.com>${toTag === undefined ? '' : `;tag=${toTag}`}
Call-ID: ${callId}
CSeq: 2 BYE
Content-Length: 0

`);
}

// The dialog: caller at 192.0.2.7 (tag "caller"), pool member at 10.0.0.9 (tag "member").
const BASE = 'sip:10.0.0.1:5060;transport=udp;lr';
const UP = '192.0.2.7';
const DOWN = '10.0.0.9';

describe('forwarding policy: signed Record-Route (rule b)', () => {
  it('form 1 verifies in both directions; the Route is popped and the next hop is the other party', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    expect(rr.value).toMatch(
      /^<sip:10\.0\.0\.1:5060;transport=udp;lr;pcu=192\.0\.2\.7;pcd=10\.0\.0\.9;pcsig=1[\w-]{22}>$/,
    );
    const down = p.judge(bye('sip:m@10.0.0.9:5070', rr.value, 'caller', 'member'), UP);
    expect(down).toMatchObject({ forward: true, popRoute: true, target: { address: DOWN, port: 5070 } });
    const up = p.judge(bye('sip:a@192.0.2.7:5062', rr.value, 'member', 'caller'), DOWN);
    expect(up).toMatchObject({ forward: true, target: { address: UP, port: 5062 } });
  });

  it('form 2 (rewritten in the 2xx) verifies, and only with the To tag it was made for', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    const two = p.dialogRoute(rr, 'member');
    expect(two).toContain(';pcsig=2');
    expect(p.judge(bye('sip:m@10.0.0.9', two, 'caller', 'member'), UP).forward).toBe(true);
    expect(p.judge(bye('sip:a@192.0.2.7', two, 'member', 'caller'), DOWN).forward).toBe(true);
    expect(p.judge(bye('sip:m@10.0.0.9', two, 'caller', 'other'), UP)).toMatchObject({
      forward: false,
      status: 403,
      outcome: 'route-signature',
    });
  });

  it('the 2xx relayed upstream carries form 2 in place of the entry we wrote; other entries untouched', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    const ok = res(`SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-1
Record-Route: <sip:proxy2.example;lr>, ${rr.value}
Record-Route: <sip:fe.contoso.com;lr;ms-route-sig=xy>
From: <sip:a@contoso.com>;tag=caller
To: <sip:b@contoso.com>;tag=member
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

`);
    const out = p.rewriteInResponse(ok, rr);
    expect(out.headerLines('record-route')).toEqual([
      `<sip:proxy2.example;lr>, ${p.dialogRoute(rr, 'member')}`,
      '<sip:fe.contoso.com;lr;ms-route-sig=xy>',
    ]);
  });

  it('403 for a missing or forged signature, another Call-ID or tag, another key, or no To tag', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    const refused = (r: SipRequest, q = p): unknown => q.judge(r, UP);
    expect(refused(bye('sip:m@10.0.0.9', `<${BASE}>`, 'caller', 'member'))).toMatchObject({
      status: 403,
      outcome: 'route-unsigned',
    });
    const forged = rr.value.replace(/pcsig=1(.)/, (_a, c: string) => `pcsig=1${c === 'x' ? 'y' : 'x'}`);
    expect(refused(bye('sip:m@10.0.0.9', forged, 'caller', 'member'))).toMatchObject({
      outcome: 'route-signature',
    });
    expect(refused(bye('sip:m@10.0.0.9', rr.value, 'caller', 'member', 'c2'))).toMatchObject({
      outcome: 'route-signature',
    });
    expect(refused(bye('sip:m@10.0.0.9', rr.value, 'intruder', 'member'))).toMatchObject({
      outcome: 'route-signature',
    });
    expect(
      refused(
        bye('sip:m@10.0.0.9', rr.value, 'caller', 'member'),
        policy(Buffer.from('another key, another deployment')),
      ),
    ).toMatchObject({
      outcome: 'route-signature',
    });
    expect(refused(bye('sip:m@10.0.0.9', rr.value, 'caller', undefined))).toMatchObject({
      outcome: 'route-out-of-dialog',
    });
    // Changing a party changes what is signed.
    const moved = rr.value.replace('pcd=10.0.0.9', 'pcd=10.0.0.66');
    expect(p.judge(bye('sip:m@10.0.0.66', moved, 'caller', 'member'), UP)).toMatchObject({
      outcome: 'route-signature',
    });
  });

  it('403 towards a third host, from a third host, or to a next hop named by a host name (no DNS here)', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    expect(p.judge(bye('sip:x@198.51.100.1', rr.value, 'caller', 'member'), UP)).toMatchObject({
      outcome: 'route-not-a-party',
    });
    expect(p.judge(bye('sip:m@10.0.0.9', rr.value, 'caller', 'member'), '198.51.100.1')).toMatchObject({
      outcome: 'route-not-a-party',
    });
    // The next Route decides, not the Request-URI.
    expect(
      p.judge(bye('sip:m@10.0.0.9', `${rr.value}, <sip:198.51.100.1;lr>`, 'caller', 'member'), UP),
    ).toMatchObject({ outcome: 'route-not-a-party' });
    expect(p.judge(bye('sip:m@pool.contoso.com', rr.value, 'caller', 'member'), UP)).toMatchObject({
      outcome: 'route-no-hop',
    });
    // An ACK comes without its sender: the next hop must still be a party.
    expect(p.judge(bye('sip:m@10.0.0.9', rr.value, 'caller', 'member'), undefined).forward).toBe(true);
    expect(p.judge(bye('sip:x@198.51.100.1', rr.value, 'caller', 'member'), undefined).forward).toBe(false);
  });

  it('IPv6 parties are written as tokens and verify; a Route naming someone else is not ours to follow', () => {
    const p = policy();
    expect(addressToken('2001:db8::7')).toBe('2001-db8--7');
    const rr = p.recordRoute(
      'sip:[2001:db8::1]:5060;transport=udp;lr',
      'c1',
      'caller',
      '2001:db8::7',
      '2001:db8::9',
    );
    expect(rr.value).toContain(';pcu=2001-db8--7;pcd=2001-db8--9;');
    // Every parameter survives a URI parser as a plain token.
    expect(() => parseSipUri(rr.value.slice(1, -1))).not.toThrow();
    expect(p.judge(bye('sip:m@[2001:db8::9]', rr.value, 'caller', 'member'), '2001:db8::7')).toMatchObject({
      forward: true,
      target: { address: '2001:db8::9', family: 6 },
    });
    expect(
      p.judge(bye('sip:m@10.0.0.9', '<sip:elsewhere.example;lr>', 'caller', 'member'), UP),
    ).toMatchObject({
      status: 403,
      outcome: 'route-not-ours',
    });
  });
});

describe('forwarding policy: no Route (rule c)', () => {
  const member = RIG_MEMBER;

  it('an in-dialog request goes to a pool member we have sent to, and nowhere else', () => {
    const p = policy();
    expect(p.judge(bye('sip:m@10.0.0.9', undefined, 'caller', 'member'), UP)).toMatchObject({ status: 404 });
    p.noteMembers([member]);
    expect(p.judge(bye('sip:m@10.0.0.9', undefined, 'caller', 'member'), UP)).toMatchObject({
      forward: true,
      popRoute: false,
      target: member,
    });
    expect(p.judge(bye('sip:m@10.0.0.9:5070', undefined, 'caller', 'member'), UP)).toMatchObject({
      status: 404,
    });
    expect(p.judge(bye('sip:m@10.0.0.9', undefined, 'caller', undefined), UP)).toMatchObject({ status: 404 });
  });
});

describe('forwarding policy: bad input', () => {
  it('an unvalidated request (an ACK) with headers that do not parse is refused, never thrown', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    const ack = (to: string, route: string): SipRequest =>
      req(`ACK sip:m@10.0.0.9 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-1
Route: ${route}
From: <sip:a@contoso.com>;tag=caller
To: ${to}
Call-ID: c1
CSeq: 1 ACK
Content-Length: 0

`);
    expect(p.judge(ack('<sip:b@contoso.com;tag=member', rr.value), undefined)).toMatchObject({
      forward: false,
      status: 403,
    });
    expect(p.judge(ack('<sip:b@contoso.com>;tag=member', `${rr.value}, ,`), undefined)).toMatchObject({
      forward: false,
    });
    expect(p.judge(ack('<sip:b@contoso.com>;tag=member', '<sip:10.0.0.1:5060;lr'), UP)).toMatchObject({
      forward: false,
    });
  });
});

describe('forwarding policy: the hop of an in-dialog request', () => {
  it('consecutive requests naming one party get one hop object (Outbound keeps one sender by it), per policy', () => {
    const p = policy();
    const rr = p.recordRoute(BASE, 'c1', 'caller', UP, DOWN);
    const first = p.judge(bye('sip:m@10.0.0.9:5070', rr.value, 'caller', 'member'), UP);
    const again = p.judge(bye('sip:m@10.0.0.9:5070', rr.value, 'caller', 'member'), UP);
    expect(first.forward && again.forward && first.target === again.target).toBe(true);
    // Another member in between, then the first again: a hop equal to the first, read anew.
    const other = p.judge(bye('sip:m@10.0.0.9:5080', rr.value, 'caller', 'member'), UP);
    expect(other).toMatchObject({ forward: true, target: { port: 5080 } });
    const third = p.judge(bye('sip:m@10.0.0.9:5070', rr.value, 'caller', 'member'), UP);
    expect(third).toMatchObject({ forward: true, target: { address: DOWN, port: 5070 } });
    // Nothing is shared between two policies (two services in one process).
    const q = policy();
    const elsewhere = q.judge(
      bye('sip:m@10.0.0.9:5070', q.recordRoute(BASE, 'c1', 'caller', UP, DOWN).value, 'caller', 'member'),
      UP,
    );
    expect(elsewhere.forward && third.forward && elsewhere.target !== third.target).toBe(true);
  });
});
