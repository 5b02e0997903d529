// The proxy's response context as a state machine (RFC 3261 §16.7, §16.8, §16.10): Trying (targets
// being resolved), Calling (the request out to a member), Proceeding (a provisional back), CancelPending
// (cancelled before one), Cancelling (CANCEL sent), Completed (final sent upstream). Each test drives
// one transition through the Router, in memory, on a fake clock, and checks what the client and the
// members get.

import { describe, it, expect } from 'vitest';
import { proxyRig, RIG_MEMBER, RIG_TIMERS, type ProxyRigOptions } from '../helpers/proxy-rig.js';
import type { Target } from '../../src/pool/index.js';

const T = RIG_TIMERS;
const M1 = RIG_MEMBER.address;
const SECOND: Target = { ...RIG_MEMBER, host: '10.0.0.10', address: '10.0.0.10', id: 'udp:10.0.0.10:5060' };
const M2 = SECOND.address;
const TWO = [RIG_MEMBER, SECOND];
/** Timer C shorter than Timer B (64*T1), so it can fire before a silent member times out. */
const TIMER_C = 10_000;

const HEAD =
  'Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKctx1\r\nMax-Forwards: 70\r\n' +
  'From: <sip:a@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ctx-1\r\n';
const INVITE = `INVITE sip:ocschat@contoso.com SIP/2.0\r\n${HEAD}CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:40000>\r\nContent-Length: 0\r\n\r\n`;
const CANCEL = `CANCEL sip:ocschat@contoso.com SIP/2.0\r\n${HEAD}CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n`;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function call(opts: ProxyRigOptions = {}) {
  const r = proxyRig(opts);
  const fromClient = (text: string): void =>
    r.router.onMessage(Buffer.from(text, 'latin1'), r.client.source('127.0.0.1', 40000));
  /** The distinct requests of `method` a member was sent (a retransmission counts once). */
  const sentTo = (address: string, method: string): string[] => [
    ...new Set(r.sent.filter((s) => s.to === address && s.text.startsWith(`${method} `)).map((s) => s.text)),
  ];
  return {
    ...r,
    invite: () => fromClient(INVITE),
    cancel: () => fromClient(CANCEL),
    sentTo,
    /** The member at `address` answers the INVITE it was sent. */
    answer(address: string, status: number): void {
      const invite = sentTo(address, 'INVITE').at(-1);
      if (invite === undefined) throw new Error(`${address} has no INVITE to answer`);
      const vias = invite.match(/^Via: .*$/gm)!.join('\r\n');
      const toTag = status === 100 ? '' : ';tag=m1';
      r.router.onMessage(
        Buffer.from(
          `SIP/2.0 ${status} Answer\r\n${vias}\r\nFrom: <sip:a@contoso.com>;tag=a1\r\n` +
            `To: <sip:ocschat@contoso.com>${toTag}\r\nCall-ID: ctx-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
          'latin1',
        ),
        { link: r.client, address, port: 5060, family: 4 },
      );
    },
    /** What the client got since last asked, as "status method". */
    got: (): string[] => r.client.take().map((m) => `${m.slice(8, 11)} ${/^CSeq: \d+ (\w+)/m.exec(m)![1]!}`),
    /** The outcome the INVITE's decision was logged with. */
    outcome: (): unknown =>
      r.lines.filter((l) => l.msg === 'decision' && l.method === 'INVITE').at(-1)?.outcome,
  };
}

describe('Calling and Proceeding', () => {
  it('§16.7: 100 is not relayed, other provisionals are at once; the 2xx ends the request', () => {
    const c = call();
    c.invite();
    expect(c.got()).toEqual(['100 INVITE']);
    c.answer(M1, 100);
    c.answer(M1, 180);
    expect(c.got()).toEqual(['180 INVITE']);
    c.answer(M1, 200);
    expect(c.got()).toEqual(['200 INVITE']);
    expect(c.outcome()).toBe('proxied');
  });

  it('a 503 moves on to the next member, whose answer is relayed; the 503 is not', () => {
    const c = call({ members: TWO });
    c.invite();
    c.answer(M1, 503);
    expect(c.sentTo(M2, 'INVITE')).toHaveLength(1);
    c.answer(M2, 486);
    expect(c.got()).toEqual(['100 INVITE', '486 INVITE']);
  });

  it('Proceeding back to Calling: a 503 after a 180 moves on too, the ringing relayed meanwhile', () => {
    const c = call({ members: TWO });
    c.invite();
    c.answer(M1, 180);
    c.answer(M1, 503);
    expect(c.sentTo(M2, 'INVITE')).toHaveLength(1);
    c.answer(M2, 200);
    expect(c.got()).toEqual(['100 INVITE', '180 INVITE', '200 INVITE']);
  });

  it('a refused connection moves on to the next member', async () => {
    const c = call({ members: TWO, connecting: [M1] });
    c.invite();
    c.refuse(M1);
    await nextTurn();
    expect(c.sentTo(M2, 'INVITE')).toHaveLength(1);
    expect(c.sentTo(M1, 'INVITE')).toHaveLength(0);
  });
});

describe('CANCEL (§16.10) in each state', () => {
  it('Trying: the client gets 487 at once, and the targets resolved afterwards start nothing', async () => {
    let resolve: (t: readonly Target[]) => void = () => undefined;
    const c = call({ resolve: () => new Promise((r) => (resolve = r)) });
    c.invite();
    c.cancel();
    expect(c.got()).toEqual(['100 INVITE', '487 INVITE', '200 CANCEL']);
    resolve([RIG_MEMBER]);
    await nextTurn();
    expect(c.sent).toEqual([]);
    expect(c.outcome()).toBe('cancelled');
  });

  it('Calling, connection opening: 487 at once, and the member gets nothing once it is open', async () => {
    const c = call({ connecting: [M1] });
    c.invite();
    c.cancel();
    expect(c.got()).toEqual(['100 INVITE', '487 INVITE', '200 CANCEL']);
    c.connect(M1);
    await nextTurn();
    expect(c.sent).toEqual([]);
  });

  it('Calling, the next member connecting after a 503: no new branch; the 503 answered as 500', async () => {
    const c = call({ members: TWO, connecting: [M2] });
    c.invite();
    c.answer(M1, 503);
    c.cancel();
    c.connect(M2);
    await nextTurn();
    expect(c.sentTo(M2, 'INVITE')).toEqual([]);
    // RFC 3261 §16.7 item 6: the best response is the first member's 503, which goes up as 500.
    expect(c.got()).toEqual(['100 INVITE', '500 INVITE', '200 CANCEL']);
  });

  it('CancelPending: §9.1 the CANCEL waits for the first provisional, then goes; the 487 is relayed', () => {
    const c = call();
    c.invite();
    c.cancel();
    expect(c.got()).toEqual(['100 INVITE', '200 CANCEL']);
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
    c.answer(M1, 180);
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
    expect(c.got()).toEqual(['180 INVITE']);
    c.answer(M1, 487);
    expect(c.got()).toEqual(['487 INVITE']);
  });

  it('CancelPending: a 503 from the cancelled member tries no other member', () => {
    const c = call({ members: TWO });
    c.invite();
    c.cancel();
    c.answer(M1, 503);
    expect(c.sentTo(M2, 'INVITE')).toEqual([]);
    expect(c.got()).toEqual(['100 INVITE', '200 CANCEL', '500 INVITE']);
  });

  it('Proceeding: the CANCEL goes at once; a 2xx that crossed it is still relayed, and the 487 after it is not', () => {
    const c = call();
    c.invite();
    c.answer(M1, 180);
    c.cancel();
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
    c.answer(M1, 200);
    expect(c.got()).toEqual(['100 INVITE', '180 INVITE', '200 CANCEL', '200 INVITE']);
    c.answer(M1, 487);
    expect(c.got()).toEqual([]);
  });

  it('Cancelling: no final from the member within 64*T1 of the CANCEL: the client gets 487', () => {
    const c = call();
    c.invite();
    c.answer(M1, 180);
    c.cancel();
    c.got();
    c.clock.advance(64 * T.t1 - 1);
    expect(c.got()).toEqual([]);
    c.clock.advance(1);
    expect(c.got()).toEqual(['487 INVITE']);
    expect(c.outcome()).toBe('cancelled');
    // The member's late answer reaches nobody.
    c.answer(M1, 487);
    expect(c.got()).toEqual([]);
  });

  it('Cancelling: a second CANCEL from the client sends the member none', () => {
    const c = call();
    c.invite();
    c.answer(M1, 180);
    c.cancel();
    c.cancel();
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
  });
});

describe('Completed', () => {
  it('a final response is relayed once; the member retransmitting it reaches nobody', () => {
    const c = call();
    c.invite();
    c.answer(M1, 486);
    expect(c.got()).toEqual(['100 INVITE', '486 INVITE']);
    c.answer(M1, 486);
    c.answer(M1, 200);
    expect(c.got()).toEqual([]);
  });

  it('except the 2xx of an INVITE: its retransmissions go up each time (RFC 6026 §7.1)', () => {
    const c = call();
    c.invite();
    c.answer(M1, 200);
    expect(c.got()).toEqual(['100 INVITE', '200 INVITE']);
    c.answer(M1, 200);
    expect(c.got()).toEqual(['200 INVITE']);
    c.answer(M1, 486);
    expect(c.got()).toEqual([]);
  });

  it('a CANCEL after the final finds no context: the member is sent none', () => {
    const c = call();
    c.invite();
    c.answer(M1, 180);
    c.answer(M1, 486);
    c.cancel();
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
  });
});

describe('Timer C (§16.6 item 11, §16.8) in each state', () => {
  const settings = { timerCMs: TIMER_C };

  it('Trying: not armed while the pool is resolved', () => {
    const c = call({ settings, resolve: () => new Promise(() => undefined) });
    c.invite();
    c.clock.advance(10 * TIMER_C);
    expect(c.got()).toEqual(['100 INVITE']);
  });

  it('Calling: as if 408 came back: the next member is tried, the first gets no CANCEL', () => {
    const c = call({ settings, members: TWO });
    c.invite();
    c.clock.advance(TIMER_C);
    expect(c.sentTo(M2, 'INVITE')).toHaveLength(1);
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
    c.answer(M2, 200);
    expect(c.got()).toEqual(['100 INVITE', '200 INVITE']);
  });

  it('Calling, the only member: the client gets 408', () => {
    const c = call({ settings });
    c.invite();
    c.clock.advance(TIMER_C);
    expect(c.got()).toEqual(['100 INVITE', '408 INVITE']);
    expect(c.outcome()).toBe('timeout');
  });

  it('Calling, a connection still opening: the next member is tried, the first gets nothing once open', async () => {
    const c = call({ settings, members: TWO, connecting: [M1] });
    c.invite();
    c.clock.advance(TIMER_C);
    expect(c.sentTo(M2, 'INVITE')).toHaveLength(1);
    c.connect(M1);
    await nextTurn();
    expect(c.sentTo(M1, 'INVITE')).toEqual([]);
  });

  it('Proceeding: the member is CANCELled and its 487 reaches the client as 408', () => {
    const c = call({ settings });
    c.invite();
    c.answer(M1, 180);
    c.clock.advance(TIMER_C);
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
    c.answer(M1, 487);
    expect(c.got()).toEqual(['100 INVITE', '180 INVITE', '408 INVITE']);
    expect(c.outcome()).toBe('timer-c');
  });

  it('Proceeding: §16.7 item 2 every provisional restarts it', () => {
    const c = call({ settings });
    c.invite();
    c.answer(M1, 180);
    c.clock.advance(TIMER_C - 1);
    c.answer(M1, 183);
    c.clock.advance(TIMER_C - 1);
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
    c.clock.advance(1);
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
  });

  it('CancelPending: the member never sent a provisional: no CANCEL, the client gets 408', () => {
    const c = call({ settings });
    c.invite();
    c.cancel();
    c.clock.advance(TIMER_C);
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
    expect(c.got()).toEqual(['100 INVITE', '200 CANCEL', '408 INVITE']);
    expect(c.outcome()).toBe('timer-c');
  });

  it('Cancelling: the CANCEL is not sent again; the 487 that follows reaches the client as 408', () => {
    const c = call({ settings });
    c.invite();
    c.answer(M1, 180);
    c.cancel();
    c.clock.advance(TIMER_C);
    expect(c.sentTo(M1, 'CANCEL')).toHaveLength(1);
    c.answer(M1, 487);
    expect(c.got()).toEqual(['100 INVITE', '180 INVITE', '200 CANCEL', '408 INVITE']);
  });

  it('Completed: cleared with the final, it fires no CANCEL', () => {
    const c = call({ settings });
    c.invite();
    c.answer(M1, 180);
    c.answer(M1, 486);
    c.clock.advance(10 * TIMER_C);
    expect(c.sentTo(M1, 'CANCEL')).toEqual([]);
    // Timer G resends the 486 (the client never ACKs here): nothing else goes up.
    expect(new Set(c.got())).toEqual(new Set(['100 INVITE', '180 INVITE', '486 INVITE']));
  });
});
