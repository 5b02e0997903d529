// RFC 3261 §17.2 server transactions driven by a fake clock: timers G, H, I and J, retransmissions.

import { describe, it, expect } from 'vitest';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';
import { ServerTransactionTable } from '../../src/transaction/server-transaction-table.js';
import { ServerTransactionState, IllegalTransitionError } from '../../src/transaction/server-transaction.js';
import { defaultSettings } from '../helpers/settings.js';

/** server.yaml's sip.t1, t2, t4 as the schema sets them: RFC 3261's values. */
const DEFAULT_TIMERS = defaultSettings().timers;
const T1 = DEFAULT_TIMERS.t1;
const T2 = DEFAULT_TIMERS.t2;
const T4 = DEFAULT_TIMERS.t4;

function setup(transport: 'udp' | 'tcp' = 'udp') {
  const clock = new FakeClock();
  const link = new MemoryLink(transport);
  const table = new ServerTransactionTable(clock, DEFAULT_TIMERS);
  const route = { link, address: '127.0.0.1', port: 5070 };
  return { clock, link, table, route };
}

const R302 = Buffer.from('SIP/2.0 302 Moved Temporarily\r\n\r\n');

describe('INVITE server transaction (RFC 3261 §17.2.1)', () => {
  it('Timer G retransmits the final response at T1, 2T1, 4T1 … capped at T2 until Timer H (64*T1)', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    expect(link.take()).toHaveLength(1);
    const times: number[] = [];
    for (let ms = 0; ms < 64 * T1; ms += 50) {
      clock.advance(50);
      if (link.take().length > 0) times.push(clock.now());
    }
    // Intervals 500, 1000, 2000, 4000, 4000, …
    expect(times.slice(0, 5)).toEqual([T1, 3 * T1, 7 * T1, 7 * T1 + T2, 7 * T1 + 2 * T2]);
    expect(t.state).toBe(ServerTransactionState.Terminated);
    expect(table.size).toBe(0);
    expect(clock.active).toBe(0);
  });

  it('an INVITE retransmission gets the same response bytes', () => {
    const { link, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    t.retransmission();
    const sent = link.sent.map((s) => s.data);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual(sent[0]);
  });

  it('keeps a copy of the response: every byte survives, and the Buffer it was sent from is not held', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    // A reason phrase in UTF-8 and a byte that is no UTF-8 at all: kept and resent byte for byte.
    const original = Buffer.concat([
      Buffer.from('SIP/2.0 486 Besetzt – später\r\nX: '),
      Buffer.from([0xff, 0x80]),
      Buffer.from('\r\n\r\n'),
    ]);
    const sentFrom = Buffer.from(original);
    t.respond(486, sentFrom);
    // The caller's Buffer (a slice of Node's shared pool in real use) is free to be reused at once.
    sentFrom.fill(0x41);
    clock.advance(T1);
    const [first, again] = link.sent.map((s) => s.data);
    expect(first).toBe(sentFrom);
    expect(again).toEqual(original);
    t.retransmission();
    expect(link.sent.at(-1)!.data).toEqual(original);
    expect(t.response).toEqual(original);
  });

  it('ACK moves to Confirmed: no more retransmissions, Timer I (T4) frees the transaction', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(404, R302);
    link.take();
    // Later than T1/2 after the INVITE: the client may have retransmitted it meanwhile.
    clock.advance(T1 / 2);
    t.ack();
    expect(t.state).toBe(ServerTransactionState.Confirmed);
    t.retransmission();
    clock.advance(T4 - 1);
    expect(link.take()).toEqual([]);
    expect(table.size).toBe(1);
    clock.advance(1);
    expect(table.size).toBe(0);
    expect(clock.active).toBe(0);
  });

  it('an ACK within T1/2 of the INVITE, nothing repeated: Timer I is zero, as over TCP', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    clock.advance(T1 / 2 - 1);
    t.ack();
    expect(t.state).toBe(ServerTransactionState.Terminated);
    expect(table.size).toBe(0);
    expect(table.get('k')).toBeUndefined();
    expect(clock.active).toBe(0);
    expect(link.take()).toHaveLength(1);
  });

  it('an INVITE retransmission before a quick ACK keeps Confirmed for Timer I', () => {
    const { clock, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    t.retransmission();
    t.ack();
    expect(t.state).toBe(ServerTransactionState.Confirmed);
    expect(table.get('k')?.state).toBe(ServerTransactionState.Confirmed);
    clock.advance(T4);
    expect(table.size).toBe(0);
  });

  it('a final resent by Timer G keeps Confirmed for Timer I', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    clock.advance(T1);
    expect(link.take()).toHaveLength(2);
    t.ack();
    expect(table.get('k')?.state).toBe(ServerTransactionState.Confirmed);
  });

  it('over TCP: no Timer G, Timer I is zero', () => {
    const { clock, link, table, route } = setup('tcp');
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    clock.advance(10 * T1);
    expect(link.take()).toHaveLength(1);
    t.ack();
    expect(t.state).toBe(ServerTransactionState.Terminated);
    expect(table.size).toBe(0);
  });

  it('Timer H ends a transaction whose ACK never comes, also over TCP', () => {
    const { clock, table, route } = setup('tcp');
    table.createInvite('k', route).respond(302, R302);
    clock.advance(64 * T1 - 1);
    expect(table.size).toBe(1);
    clock.advance(1);
    expect(table.size).toBe(0);
  });

  it('a second final response is an illegal transition', () => {
    const { table, route } = setup();
    const t = table.createInvite('k', route);
    t.respond(302, R302);
    expect(() => t.respond(404, R302)).toThrow(IllegalTransitionError);
  });
  it('takes a response as latin1 text: sends its bytes and resends the same', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('k', route);
    const text = 'SIP/2.0 302 Moved Temporarily\r\nX: caf\xe9\xff\r\n\r\n';
    t.respond(302, text);
    clock.advance(T1);
    const [first, again] = link.sent.map((s) => s.data);
    expect(first).toEqual(Buffer.from(text, 'latin1'));
    expect(first![first!.length - 5]).toBe(0xff);
    expect(again).toEqual(first);
  });
});

describe('non-INVITE server transaction (RFC 3261 §17.2.2)', () => {
  it('a request retransmission in Completed gets a copy of the final response, byte for byte', () => {
    const { link, table, route } = setup();
    const t = table.createNonInvite('k', route);
    const original = Buffer.concat([
      Buffer.from('SIP/2.0 200 OK\r\nX: '),
      Buffer.from([0xc3, 0xa9, 0xfe]),
      Buffer.from('\r\n\r\n'),
    ]);
    const sentFrom = Buffer.from(original);
    t.respond(200, sentFrom);
    sentFrom.fill(0);
    t.retransmission();
    expect(link.sent.at(-1)!.data).toEqual(original);
  });

  it('keeps the response for Timer J (64*T1) over UDP and resends it on retransmission', () => {
    const { clock, link, table, route } = setup();
    const t = table.createNonInvite('k', route);
    t.respond(200, R302);
    clock.advance(64 * T1 - 1);
    t.retransmission();
    expect(link.take()).toHaveLength(2);
    clock.advance(1);
    expect(table.size).toBe(0);
  });

  it('§17.2.2: Completed over UDP is held by the table alone: a retransmission gets the same bytes until Timer J', () => {
    const { clock, link, table, route } = setup();
    const t = table.createNonInvite('k', route);
    const original = Buffer.from([...Buffer.from('SIP/2.0 200 OK\r\nX: '), 0xe9, 0xff, 13, 10, 13, 10]);
    t.respond(200, original);
    // No timer of the transaction's own: the table's Timer J queue is the only one armed.
    expect(clock.active).toBe(1);
    clock.advance(64 * T1 - 1);
    const held = table.get('k');
    expect(held).not.toBe(t);
    expect(held?.kind).toBe('non-invite');
    expect(held?.state).toBe(ServerTransactionState.Completed);
    held!.retransmission();
    held!.retransmission();
    expect(link.sent.map((s) => [s.data, s.address, s.port])).toEqual([
      [original, '127.0.0.1', 5070],
      [original, '127.0.0.1', 5070],
      [original, '127.0.0.1', 5070],
    ]);
    expect(table.size).toBe(1);
    clock.advance(1);
    expect(table.get('k')).toBeUndefined();
    expect(table.size).toBe(0);
    expect(clock.active).toBe(0);
  });

  it('§17.2.2: Timer J of each Completed transaction counts from its own final response', () => {
    const { clock, table, route } = setup();
    table.createNonInvite('a', route).respond(200, R302);
    clock.advance(1000);
    table.createNonInvite('b', route).respond(404, R302);
    const c = table.createNonInvite('c', route);
    clock.advance(64 * T1 - 1000);
    expect(table.get('a')).toBeUndefined();
    expect(table.get('b')).toBeDefined();
    // Still Trying: no Timer J yet.
    expect(table.get('c')).toBe(c);
    c.respond(200, R302);
    clock.advance(999);
    expect(table.size).toBe(2);
    clock.advance(1);
    expect(table.size).toBe(1);
    clock.advance(64 * T1);
    expect(table.size).toBe(0);
    expect(clock.active).toBe(0);
  });

  it('a key reused after Completed is not dropped by the earlier Timer J, nor by disposing the old transaction', () => {
    const { clock, table, route } = setup();
    const old = table.createNonInvite('k', route);
    old.respond(200, R302);
    const again = table.createNonInvite('k', route);
    old.dispose();
    expect(table.get('k')).toBe(again);
    clock.advance(64 * T1);
    expect(table.get('k')).toBe(again);
    table.clear();
    expect(table.size).toBe(0);
  });

  it('is freed at once over TCP', () => {
    const { table, route } = setup('tcp');
    table.createNonInvite('k', route).respond(200, R302);
    expect(table.size).toBe(0);
  });
});

describe('server transaction table', () => {
  it('counts transactions only, through emptying and clearing, and matches no key it was not given', () => {
    const { table, route } = setup('tcp');
    expect(table.size).toBe(0);
    expect(table.get('')).toBeUndefined();
    table.createNonInvite('a', route).respond(200, R302);
    expect(table.size).toBe(0);
    table.createInvite('b', route);
    expect(table.size).toBe(1);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.get('')).toBeUndefined();
    expect(table.get('b')).toBeUndefined();
  });
});

describe('INVITE server transaction: Accepted (RFC 6026 §7.1)', () => {
  const R200 = Buffer.from('SIP/2.0 200 OK\r\n\r\n');

  it('§8.5/§8.6: a proxied INVITE stays Accepted for Timer L (64*T1): retransmissions and ACKs absorbed, nothing resent', () => {
    const { clock, link, table, route } = setup();
    const t = table.createInvite('acc', route);
    t.holdsAccepted = true;
    t.respond(200, R200);
    expect(t.state).toBe(ServerTransactionState.Accepted);
    expect(link.take()).toHaveLength(1);
    const held = table.get('acc');
    expect(held).toBeDefined();
    held!.retransmission();
    if (held!.kind === 'invite') held!.ack();
    clock.advance(64 * T1 - 1);
    expect(table.get('acc')).toBeDefined();
    expect(link.take()).toHaveLength(0);
    clock.advance(1);
    expect(table.get('acc')).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it('§8.7: a 2xx the TU passes in Accepted goes to the transport; anything else is an illegal transition', () => {
    const { link, table, route } = setup();
    const t = table.createInvite('acc2', route);
    t.holdsAccepted = true;
    t.respond(200, R200);
    t.respond(200, R200);
    expect(link.take()).toHaveLength(2);
    expect(() => t.respond(486, R302)).toThrow(IllegalTransitionError);
  });

  it('without holdsAccepted (a UAS core that retransmits its own 2xx) a 2xx ends the transaction at once', () => {
    const { table, route } = setup();
    const t = table.createInvite('uas', route);
    t.respond(200, R200);
    expect(t.state).toBe(ServerTransactionState.Terminated);
    expect(table.get('uas')).toBeUndefined();
  });
});
