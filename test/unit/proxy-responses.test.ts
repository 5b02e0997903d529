// What the proxy does with responses (RFC 3261 §16.7 as updated by RFC 6026): 2xx retransmissions go
// up through the Accepted transactions until 64*T1 and are dropped after; responses matching nothing
// are dropped and counted; a response whose next Via names us is not relayed and the client still
// gets a final answer. In memory, on a fake clock.

import { describe, it, expect } from 'vitest';
import { proxyRig, RIG_TIMERS } from '../helpers/proxy-rig.js';

const T = RIG_TIMERS;

function rig() {
  const { clock, client, router, clientTxns, toMember } = proxyRig();
  const member = { link: client, address: '10.0.0.9', port: 5060, family: 4 as const };
  /** The client's INVITE; returns the Via we put on the forwarded copy. */
  const invite = (
    callId: string,
    clientVia = 'SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKc-' + callId,
  ): string => {
    router.onMessage(
      Buffer.from(
        `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: ${clientVia}\r\nMax-Forwards: 70\r\n` +
          `From: <sip:a@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
          `Contact: <sip:a@127.0.0.1:40000>\r\nContent-Length: 0\r\n\r\n`,
        'latin1',
      ),
      client.source('127.0.0.1', 40000),
    );
    const fwd = toMember.at(-1)!;
    return /^Via: (SIP\/2\.0\/UDP 127\.0\.0\.1:5060;branch=[^\r]+)\r\n/m.exec(fwd)![1]!;
  };
  const answer = (ours: string, next: string, status: number, callId: string): Buffer =>
    Buffer.from(
      `SIP/2.0 ${status} Answer\r\nVia: ${ours}\r\nVia: ${next}\r\nFrom: <sip:a@contoso.com>;tag=a1\r\n` +
        `To: <sip:ocschat@contoso.com>;tag=m1\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    );
  return { clock, client, router, clientTxns, toMember, member, invite, answer };
}

describe('proxy responses (RFC 6026)', () => {
  it('§7.1: 2xx retransmissions go up through the Accepted transactions until 64*T1, then match nothing and are dropped', () => {
    const r = rig();
    const ours = r.invite('acc-1');
    const ok = r.answer(
      ours,
      'SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKc-acc-1;received=127.0.0.1',
      200,
      'acc-1',
    );
    r.router.onMessage(ok, r.member);
    const first = r.client.take().filter((m) => m.startsWith('SIP/2.0 200'));
    expect(first).toHaveLength(1);
    r.clock.advance(64 * T.t1 - 1);
    r.router.onMessage(ok, r.member);
    expect(r.client.take()).toEqual(first);
    // The client's INVITE retransmission meanwhile is absorbed, not forwarded again.
    const forwarded = r.toMember.length;
    r.router.onMessage(
      Buffer.from(
        `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKc-acc-1\r\nMax-Forwards: 70\r\n` +
          `From: <sip:a@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: acc-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
        'latin1',
      ),
      r.client.source('127.0.0.1', 40000),
    );
    expect(r.toMember).toHaveLength(forwarded);
    expect(r.router.stats.retransmissionsAbsorbed).toBe(1);
    r.clock.advance(1);
    expect(r.clientTxns.size).toBe(0);
    expect(r.router.transactions.size).toBe(0);
    r.router.onMessage(ok, r.member);
    expect(r.client.take()).toEqual([]);
    expect(r.router.stats.strayResponses).toBe(1);
  });

  it('a 2xx whose Vias do not parse once ours is taken off is not relayed, and the client gets 500: no internal error', () => {
    const r = rig();
    const ours = r.invite('bad-via-1');
    r.router.onMessage(
      Buffer.from(
        `SIP/2.0 200 OK\r\nVia: ${ours}, ,\r\nFrom: <sip:a@contoso.com>;tag=a1\r\n` +
          `To: <sip:ocschat@contoso.com>;tag=m1\r\nCall-ID: bad-via-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
        'latin1',
      ),
      r.member,
    );
    const out = r.client.take();
    expect(out.filter((m) => m.startsWith('SIP/2.0 200'))).toEqual([]);
    expect(out.filter((m) => m.startsWith('SIP/2.0 500'))).toHaveLength(1);
    expect(r.router.stats.internalErrors).toBe(0);
  });

  it('a final response whose next Via names us is not relayed: counted as a loop, the client gets 500', () => {
    const r = rig();
    const ours = r.invite('loop-1');
    r.router.onMessage(
      r.answer(ours, 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKforged', 486, 'loop-1'),
      r.member,
    );
    const ports = r.client.sent.map((x) => x.port);
    const out = r.client.take();
    expect(out.filter((m) => m.startsWith('SIP/2.0 486'))).toEqual([]);
    expect(out.filter((m) => m.startsWith('SIP/2.0 500'))).toHaveLength(1);
    expect(r.router.stats.responseLoops).toBe(1);
    // Everything went where the INVITE came from, nothing to the Via naming us.
    expect(ports.every((p) => p === 40000)).toBe(true);
  });
});
