// What a proxied request leaves behind once it has its answer: the client transaction waits out
// Timer K (RFC 3261 §17.1.2.2) and the server transaction Timer J (§17.2.2), but neither may keep
// the request, its bytes or its response context alive for those seconds.

import { describe, it, expect } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { proxyRig, RIG_TIMERS } from '../helpers/proxy-rig.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const T = RIG_TIMERS;
const rig = proxyRig;

const BYE =
  'BYE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye1\r\n' +
  'From: <sip:alice@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>;tag=p1\r\nMax-Forwards: 70\r\n' +
  'Call-ID: retained-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n';

/** The request's bytes go to the router from here, so no frame of the test holds them. */
function sendBye(r: ReturnType<typeof rig>): WeakRef<Buffer> {
  const data = Buffer.from(BYE, 'latin1');
  r.router.onMessage(data, r.client.source('127.0.0.1', 40000));
  return new WeakRef(data);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('proxied non-INVITE: nothing of the request is held after its final response', () => {
  it('§17.1.2.2/§17.2.2: during Timer K and Timer J the request bytes are collectable; retransmissions are still answered', async () => {
    const r = rig();
    const bytes = sendBye(r);
    await nextTurn();
    expect(r.toMember).toHaveLength(1);
    const forwarded = r.toMember[0]!;
    const ours = /^Via: (SIP\/2\.0\/UDP 127\.0\.0\.1:5060;branch=[^\r]+)\r\n/m.exec(forwarded)![1]!;
    const ok =
      `SIP/2.0 200 OK\r\nVia: ${ours}\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye1\r\n` +
      'From: <sip:alice@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>;tag=p1\r\n' +
      'Call-ID: retained-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n';
    const member = { link: r.client, address: '10.0.0.9', port: 5060, family: 4 as const };
    r.router.onMessage(Buffer.from(ok, 'latin1'), member);
    const upstream = r.client.take();
    expect(upstream).toHaveLength(1);
    expect(upstream[0]).toMatch(/^SIP\/2\.0 200 OK\r\n/);
    // Timer K holds the client transaction, Timer J the server one.
    expect(r.clientTxns.size).toBe(1);
    expect(r.router.transactions.size).toBe(1);
    await nextTurn();
    gc();
    expect(bytes.deref()).toBeUndefined();
    // The client's retransmission still gets the same 200, and the member's is absorbed.
    r.router.onMessage(Buffer.from(BYE, 'latin1'), r.client.source('127.0.0.1', 40000));
    expect(r.client.take()).toEqual(upstream);
    r.router.onMessage(Buffer.from(ok, 'latin1'), member);
    expect(r.client.take()).toEqual([]);
    expect(r.toMember).toHaveLength(1);
    r.clock.advance(T.t4);
    expect(r.clientTxns.size).toBe(0);
    r.clock.advance(64 * T.t1 - T.t4);
    expect(r.router.transactions.size).toBe(0);
  });
});
