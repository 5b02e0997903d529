// RFC 3261 §17.1 client transactions driven by a fake clock: timers A, B, D, E, F and K, the ACK of a
// non-2xx final, transport errors, response matching by the table, and nothing left behind.

import { describe, it, expect } from 'vitest';
import { FakeClock } from '../helpers/fake-clock.js';
import { parseMessage } from '../../src/sip/parser.js';
import { SipRequest, SipResponse } from '../../src/sip/message.js';
import { parseVia } from '../../src/sip/via.js';
import type { TimerValues } from '../../src/base/clock.js';
import { defaultSettings } from '../helpers/settings.js';
import {
  ClientTransactionArgumentError,
  ClientTransactionState,
  IllegalTransitionError,
  InviteClientTransaction,
  type ClientTransactionUser,
} from '../../src/transaction/client-transaction.js';
import {
  ClientTransactionTable,
  DuplicateTransactionError,
} from '../../src/transaction/client-transaction-table.js';
import { newBranch } from '../../src/transaction/branch.js';

/** server.yaml's sip.t1, t2, t4 as the schema sets them: RFC 3261's values. */
const DEFAULT_TIMERS = defaultSettings().timers;
const T1 = DEFAULT_TIMERS.t1;
const T2 = DEFAULT_TIMERS.t2;
const T4 = DEFAULT_TIMERS.t4;
const BRANCH = 'z9hG4bKpchat.1';

function crlf(text: string): Buffer {
  return Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1');
}

function parseRequest(text: string): SipRequest {
  const r = parseMessage(crlf(text));
  if (!r.ok || r.message.kind !== 'request') throw new Error(`fixture does not parse: ${text}`);
  return r.message;
}

function parseResponse(text: string): SipResponse {
  const r = parseMessage(crlf(text));
  if (!r.ok || r.message.kind !== 'response') throw new Error(`fixture does not parse: ${text}`);
  return r.message;
}

/** A request as the proxy sends it: our Via on top of the client's, Route headers, a body. */
function request(method: string, branch = BRANCH, firstVia?: string): SipRequest {
  const via =
    firstVia ??
    `Via: SIP/2.0/UDP 10.0.0.5:5060;branch=${branch};rport\nVia: SIP/2.0/TLS client.contoso.com:5061;branch=z9hG4bKclient.7;received=192.0.2.7`;
  return parseRequest(`${method} sip:ocschat@pool.contoso.com;transport=udp SIP/2.0
${via}
Route: <sip:fe1.contoso.com;lr>
Route: <sip:fe2.contoso.com;lr>, <sip:pool.contoso.com;lr>
Max-Forwards: 69
From: "Alice" <sip:alice@contoso.com>;tag=a1
To: <sip:ocschat@contoso.com>
Call-ID: call-1@client.contoso.com
CSeq: 314 ${method}
Contact: <sip:alice@192.0.2.7:5061;transport=tls>
Content-Type: application/sdp
Content-Length: 5

v=0
`);
}

function response(status: number, method = 'INVITE', branch = BRANCH, toTag = 'srv9'): SipResponse {
  return parseResponse(`SIP/2.0 ${status} Reason
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=${branch};rport
Via: SIP/2.0/TLS client.contoso.com:5061;branch=z9hG4bKclient.7;received=192.0.2.7
From: "Alice" <sip:alice@contoso.com>;tag=a1
To: <sip:ocschat@contoso.com>;tag=${toTag}
Call-ID: call-1@client.contoso.com
CSeq: 314 ${method}
Content-Length: 0

`);
}

/** A table on a fake clock, a send recorder that can be made to fail, and a TU that logs events. */
function rig(reliable = false, timers: TimerValues = DEFAULT_TIMERS) {
  const clock = new FakeClock();
  const table = new ClientTransactionTable(clock, timers);
  const wire: { at: number; text: string }[] = [];
  const events: string[] = [];
  const state = { failure: undefined as Error | undefined };
  const send = (data: Buffer): void => {
    if (state.failure !== undefined) throw state.failure;
    wire.push({ at: clock.now(), text: data.toString('latin1') });
  };
  const user: ClientTransactionUser = {
    onResponse: (r) => events.push(`response ${r.status}@${clock.now()}`),
    onTimeout: () => events.push(`timeout@${clock.now()}`),
    onTransportError: (e) => events.push(`transport-error ${e.message}@${clock.now()}`),
    onTerminated: () => events.push(`terminated@${clock.now()}`),
  };
  const invite = (branch = BRANCH) => {
    const t = table.createInvite({ request: request('INVITE', branch), send, reliable, user });
    t.start();
    return t;
  };
  const nonInvite = (method = 'OPTIONS', branch = BRANCH) => {
    const t = table.createNonInvite({ request: request(method, branch), send, reliable, user });
    t.start();
    return t;
  };
  /** Instants at which something was sent, and forget it. */
  const sentAt = (): number[] => wire.splice(0).map((w) => w.at);
  const methods = (): string[] => wire.splice(0).map((w) => w.text.slice(0, w.text.indexOf(' ')));
  return { clock, table, wire, events, state, send, user, invite, nonInvite, sentAt, methods };
}

/** Everything gone: no transaction in the table and no timer armed. */
function expectReleased(r: ReturnType<typeof rig>): void {
  expect(r.table.size).toBe(0);
  expect(r.clock.active).toBe(0);
}

const EXPECTED_ACK =
  'ACK sip:ocschat@pool.contoso.com;transport=udp SIP/2.0\r\n' +
  `Via: SIP/2.0/UDP 10.0.0.5:5060;branch=${BRANCH};rport\r\n` +
  'Route: <sip:fe1.contoso.com;lr>\r\n' +
  'Route: <sip:fe2.contoso.com;lr>, <sip:pool.contoso.com;lr>\r\n' +
  'Max-Forwards: 70\r\n' +
  'From: "Alice" <sip:alice@contoso.com>;tag=a1\r\n' +
  'To: <sip:ocschat@contoso.com>;tag=srv9\r\n' +
  'Call-ID: call-1@client.contoso.com\r\n' +
  'CSeq: 314 ACK\r\n' +
  'Content-Length: 0\r\n' +
  '\r\n';

describe('INVITE client transaction: timers A and B (RFC 3261 §17.1.1.2)', () => {
  it('§17.1.1.2: over UDP the INVITE is retransmitted at T1, 3T1, 7T1, 15T1, 31T1, 63T1; Timer B times out once at 64*T1', () => {
    const r = rig();
    const t = r.invite();
    expect(t.state).toBe(ClientTransactionState.Calling);
    r.clock.advance(64 * T1 - 1);
    expect(r.events).toEqual([]);
    r.clock.advance(1);
    r.clock.advance(200 * T1);
    expect(r.sentAt()).toEqual([0, T1, 3 * T1, 7 * T1, 15 * T1, 31 * T1, 63 * T1]);
    expect(r.events).toEqual([`timeout@${64 * T1}`, `terminated@${64 * T1}`]);
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expectReleased(r);
  });

  it('§17.1.1.2: the retransmissions carry the same bytes as the first INVITE', () => {
    const r = rig();
    r.invite();
    r.clock.advance(3 * T1);
    const texts = r.wire.map((w) => w.text);
    expect(texts).toHaveLength(3);
    expect(new Set(texts).size).toBe(1);
    expect(texts[0]).toBe(request('INVITE').toBuffer().toString('latin1'));
  });

  it('§17.1.1.2: over a reliable transport there is no Timer A, but Timer B still fires at 64*T1', () => {
    const r = rig(true);
    r.invite();
    r.clock.advance(64 * T1 - 1);
    expect(r.events).toEqual([]);
    r.clock.advance(1);
    expect(r.sentAt()).toEqual([0]);
    expect(r.events).toEqual([`timeout@${64 * T1}`, `terminated@${64 * T1}`]);
    expectReleased(r);
  });

  it('§17.1.1.2: a provisional response stops Timers A and B; further provisionals go up too', () => {
    const r = rig();
    const t = r.invite();
    r.clock.advance(T1 + 10);
    expect(r.table.dispatch(response(100))).toBe(true);
    expect(t.state).toBe(ClientTransactionState.Proceeding);
    // Waiting on the TU's Timer C now: nothing armed here.
    expect(r.clock.active).toBe(0);
    r.clock.advance(200 * T1);
    expect(r.table.dispatch(response(180))).toBe(true);
    expect(r.sentAt()).toEqual([0, T1]);
    expect(r.events).toEqual([`response 100@${T1 + 10}`, `response 180@${201 * T1 + 10}`]);
    expect(r.table.size).toBe(1);
  });
});

describe('INVITE client transaction: 2xx (RFC 3261 §17.1.1.2 as updated by RFC 6026)', () => {
  it('RFC 6026 §8.4: a 2xx in Calling goes up and moves to Accepted; no ACK is sent by it, Timer M (64*T1) ends it', () => {
    const r = rig();
    const t = r.invite();
    r.clock.advance(T1);
    expect(r.table.dispatch(response(200))).toBe(true);
    expect(t.state).toBe(ClientTransactionState.Accepted);
    expect(r.events).toEqual([`response 200@${T1}`]);
    r.clock.advance(64 * T1 - 1);
    // Held by the table in a compact form (the transaction object itself is let go).
    expect(r.table.size).toBe(1);
    expect(r.table.match(response(200))?.state).toBe(ClientTransactionState.Accepted);
    r.clock.advance(1);
    expect(r.table.size).toBe(0);
    expect(r.events).toEqual([`response 200@${T1}`, `terminated@${65 * T1}`]);
    // Nothing but the INVITE and its one retransmission before the 2xx: no ACK, no resend in Accepted.
    expect(r.methods()).toEqual(['INVITE', 'INVITE']);
    expectReleased(r);
  });

  it('RFC 6026 §8.4: in Accepted every 2xx goes up (retransmissions, other forks); anything else is absorbed', () => {
    const r = rig();
    r.invite();
    r.table.dispatch(response(180));
    r.table.dispatch(response(200));
    expect(r.table.dispatch(response(200))).toBe(true);
    expect(r.table.dispatch(response(200, 'INVITE', BRANCH, 'fork2'))).toBe(true);
    expect(r.table.dispatch(response(486))).toBe(true);
    expect(r.table.dispatch(response(183))).toBe(true);
    expect(r.events).toEqual(['response 180@0', 'response 200@0', 'response 200@0', 'response 200@0']);
    expect(r.methods()).toEqual(['INVITE']);
    r.clock.advance(64 * T1);
    // RFC 6026 §7.3: after Timer M it matches nothing, and a proxy drops it.
    expect(r.table.dispatch(response(200))).toBe(false);
    expectReleased(r);
  });
});

describe('INVITE client transaction: non-2xx final and its ACK (RFC 3261 §17.1.1.2, §17.1.1.3)', () => {
  it('§17.1.1.3: the ACK has the Request-URI, Call-ID, From and CSeq number of the INVITE, its top Via alone, its Routes and the To of the response', () => {
    const r = rig();
    r.invite();
    r.wire.splice(0);
    r.table.dispatch(response(486));
    expect(r.wire.map((w) => w.text)).toEqual([EXPECTED_ACK]);
  });

  it('§17.1.1.3: when the INVITE has several Vias on its first line, the ACK carries only the top one', () => {
    const r = rig();
    const req = request(
      'INVITE',
      BRANCH,
      `Via: SIP/2.0/UDP 10.0.0.5:5060;branch=${BRANCH};rport, SIP/2.0/TLS client.contoso.com:5061;branch=z9hG4bKclient.7`,
    );
    r.table.createInvite({ request: req, send: r.send, reliable: false, user: r.user }).start();
    r.wire.splice(0);
    r.table.dispatch(response(404));
    expect(r.wire.map((w) => w.text)).toEqual([EXPECTED_ACK]);
  });

  it('§17.1.1.3: an INVITE without Route headers gets an ACK without them', () => {
    const r = rig();
    const text = request('INVITE')
      .toBuffer()
      .toString('latin1')
      .replace(/^Route: .*\r\n/gm, '');
    const req = parseRequest(text.replace(/\r\n/g, '\n'));
    r.table.createInvite({ request: req, send: r.send, reliable: false, user: r.user }).start();
    r.wire.splice(0);
    r.table.dispatch(response(404));
    expect(r.wire.map((w) => w.text)).toEqual([EXPECTED_ACK.replace(/^Route: .*\r\n/gm, '')]);
  });

  it('§17.1.1.2: the final goes up once; each retransmission of it in Completed resends the same ACK and is absorbed', () => {
    const r = rig();
    const t = r.invite();
    r.clock.advance(2 * T1);
    r.table.dispatch(response(183));
    r.table.dispatch(response(486));
    expect(t.state).toBe(ClientTransactionState.Completed);
    r.clock.advance(T1);
    expect(r.table.dispatch(response(486))).toBe(true);
    r.clock.advance(T1);
    expect(r.table.dispatch(response(486))).toBe(true);
    // A late provisional and a stray 2xx are absorbed without an ACK.
    expect(r.table.dispatch(response(180))).toBe(true);
    expect(r.table.dispatch(response(200))).toBe(true);
    const sent = r.wire.splice(0);
    expect(sent.map((w) => w.text.slice(0, 6))).toEqual(['INVITE', 'INVITE', 'ACK si', 'ACK si', 'ACK si']);
    expect(sent.map((w) => w.at)).toEqual([0, T1, 2 * T1, 3 * T1, 4 * T1]);
    expect(sent[3]!.text).toBe(sent[2]!.text);
    expect(sent[4]!.text).toBe(EXPECTED_ACK);
    expect(r.events).toEqual([`response 183@${2 * T1}`, `response 486@${2 * T1}`]);
  });

  it('§17.1.1.2: Timer D (32 s over UDP) ends Completed; no INVITE is retransmitted meanwhile', () => {
    const r = rig();
    const t = r.invite();
    r.table.dispatch(response(404));
    r.clock.advance(32_000 - 1);
    expect(t.state).toBe(ClientTransactionState.Completed);
    expect(r.table.size).toBe(1);
    r.clock.advance(1);
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(r.methods()).toEqual(['INVITE', 'ACK']);
    expect(r.events).toEqual(['response 404@0', 'terminated@32000']);
    expect(r.table.dispatch(response(404))).toBe(false);
    expectReleased(r);
  });

  it('§17.1.1.2: Timer D is at least 32 s and never shorter than 64*T1 (Timer H of the server)', () => {
    const slow = rig(false, { t1: 1000, t2: 4000, t4: 5000 });
    slow.invite();
    slow.table.dispatch(response(404));
    slow.clock.advance(64_000 - 1);
    expect(slow.table.size).toBe(1);
    slow.clock.advance(1);
    expectReleased(slow);

    const fast = rig(false, { t1: 100, t2: 4000, t4: 5000 });
    fast.invite();
    fast.table.dispatch(response(404));
    fast.clock.advance(32_000 - 1);
    expect(fast.table.size).toBe(1);
    fast.clock.advance(1);
    expectReleased(fast);
  });

  it('§17.1.1.2: over a reliable transport Timer D is zero: the ACK goes once and the transaction ends at once', () => {
    const r = rig(true);
    const t = r.invite();
    r.table.dispatch(response(503));
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(r.wire.map((w) => w.text)).toEqual([
      request('INVITE').toBuffer().toString('latin1'),
      EXPECTED_ACK,
    ]);
    expect(r.events).toEqual(['response 503@0', 'terminated@0']);
    expect(r.table.dispatch(response(503))).toBe(false);
    expectReleased(r);
  });
});

describe('non-INVITE client transaction: timers E and F (RFC 3261 §17.1.2.2)', () => {
  it('§17.1.2.2: over UDP, Timer E retransmits at T1 then doubling intervals capped at T2; Timer F times out once at 64*T1', () => {
    const r = rig();
    const t = r.nonInvite();
    expect(t.state).toBe(ClientTransactionState.Trying);
    r.clock.advance(64 * T1 - 1);
    expect(r.events).toEqual([]);
    r.clock.advance(1);
    r.clock.advance(100 * T1);
    // Intervals T1, 2T1, 4T1, then T2 (4 s) each time.
    expect(r.sentAt()).toEqual([
      0,
      T1,
      3 * T1,
      7 * T1,
      7 * T1 + T2,
      7 * T1 + 2 * T2,
      7 * T1 + 3 * T2,
      7 * T1 + 4 * T2,
      7 * T1 + 5 * T2,
      7 * T1 + 6 * T2,
      7 * T1 + 7 * T2,
    ]);
    expect(r.events).toEqual([`timeout@${64 * T1}`, `terminated@${64 * T1}`]);
    expectReleased(r);
  });

  it('§17.1.2.2: Timer E firing in Proceeding resends and is reset to T2, not doubled', () => {
    // T1 = 100 makes Trying's doubling (100, 200, 400, 800, 1600, 3200) visibly differ from T2.
    const timers = { t1: 100, t2: 4000, t4: 5000 };
    const trying = rig(false, timers);
    trying.nonInvite();
    trying.clock.advance(6400);
    expect(trying.sentAt()).toEqual([0, 100, 300, 700, 1500, 3100, 6300]);

    const r = rig(false, timers);
    const t = r.nonInvite();
    r.clock.advance(400);
    r.table.dispatch(response(100, 'OPTIONS'));
    expect(t.state).toBe(ClientTransactionState.Proceeding);
    r.clock.advance(6000);
    // Timer E armed in Trying (400 ms) still fires at 700; from then on every T2.
    expect(r.sentAt()).toEqual([0, 100, 300, 700, 4700]);
    expect(r.events).toEqual(['response 100@400', 'timeout@6400', 'terminated@6400']);
    expectReleased(r);
  });

  it('§17.1.2.2: over a reliable transport there is no Timer E; Timer F still fires, also from Proceeding', () => {
    const r = rig(true);
    r.nonInvite();
    r.clock.advance(T1);
    r.table.dispatch(response(100, 'OPTIONS'));
    r.clock.advance(63 * T1 - 1);
    expect(r.events).toEqual([`response 100@${T1}`]);
    r.clock.advance(1);
    expect(r.sentAt()).toEqual([0]);
    expect(r.events).toEqual([`response 100@${T1}`, `timeout@${64 * T1}`, `terminated@${64 * T1}`]);
    expectReleased(r);
  });
});

describe('non-INVITE client transaction: final response and Timer K (RFC 3261 §17.1.2.2)', () => {
  it('§17.1.2.2: the final goes up once; retransmissions are absorbed in Completed until Timer K (T4)', () => {
    const r = rig();
    const t = r.nonInvite();
    r.clock.advance(T1);
    r.table.dispatch(response(200, 'OPTIONS'));
    expect(t.state).toBe(ClientTransactionState.Completed);
    r.clock.advance(T4 - 1);
    expect(r.table.dispatch(response(200, 'OPTIONS'))).toBe(true);
    expect(r.table.dispatch(response(100, 'OPTIONS'))).toBe(true);
    expect(r.table.size).toBe(1);
    r.clock.advance(1);
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(r.table.dispatch(response(200, 'OPTIONS'))).toBe(false);
    // Nothing is retransmitted in Completed, and nothing is acknowledged.
    expect(r.sentAt()).toEqual([0, T1]);
    expect(r.events).toEqual([`response 200@${T1}`, `terminated@${T1 + T4}`]);
    expectReleased(r);
  });

  it('§17.1.2.2: Timer K follows the configured T4', () => {
    const r = rig(false, { t1: T1, t2: T2, t4: 1234 });
    r.nonInvite();
    r.table.dispatch(response(404, 'OPTIONS'));
    r.clock.advance(1233);
    expect(r.table.size).toBe(1);
    r.clock.advance(1);
    expectReleased(r);
  });

  it('§17.1.2.2: over a reliable transport Timer K is zero', () => {
    const r = rig(true);
    const t = r.nonInvite();
    r.table.dispatch(response(200, 'OPTIONS'));
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(r.events).toEqual(['response 200@0', 'terminated@0']);
    expect(r.table.dispatch(response(200, 'OPTIONS'))).toBe(false);
    expectReleased(r);
  });
});

describe('transport errors (RFC 3261 §17.1.4)', () => {
  it('§17.1.4: a send that throws at start informs the TU once and terminates, nothing armed', () => {
    const r = rig();
    r.state.failure = new Error('EHOSTUNREACH');
    const t = r.invite();
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(r.events).toEqual(['transport-error EHOSTUNREACH@0', 'terminated@0']);
    expectReleased(r);
  });

  it('§17.1.4: a retransmission by Timer A that throws ends the transaction at that instant', () => {
    const r = rig();
    r.invite();
    r.clock.advance(T1);
    r.state.failure = new Error('ECONNREFUSED');
    r.clock.advance(2 * T1);
    r.clock.advance(100 * T1);
    expect(r.sentAt()).toEqual([0, T1]);
    expect(r.events).toEqual([`transport-error ECONNREFUSED@${3 * T1}`, `terminated@${3 * T1}`]);
    expectReleased(r);
  });

  it('§17.1.4: a retransmission by Timer E that throws ends the transaction, also in Proceeding', () => {
    const r = rig();
    r.nonInvite('OPTIONS');
    r.table.dispatch(response(100, 'OPTIONS'));
    r.state.failure = new Error('ENETDOWN');
    r.clock.advance(100 * T1);
    expect(r.events).toEqual(['response 100@0', `transport-error ENETDOWN@${T1}`, `terminated@${T1}`]);
    expectReleased(r);
  });

  it('§17.1.4: an asynchronous transport error in Proceeding informs the TU and terminates', () => {
    const r = rig(true);
    const t = r.invite();
    r.table.dispatch(response(180));
    t.transportError(new Error('ECONNRESET'));
    t.transportError(new Error('again'));
    expect(r.events).toEqual(['response 180@0', 'transport-error ECONNRESET@0', 'terminated@0']);
    expectReleased(r);
  });

  it('§17.1.4: a failure sending the ACK ends the transaction without a second outcome: the TU keeps the final response', () => {
    const r = rig();
    r.invite();
    r.state.failure = new Error('EHOSTUNREACH');
    r.table.dispatch(response(486));
    expect(r.events).toEqual(['response 486@0', 'terminated@0']);
    expectReleased(r);

    const late = rig();
    const t = late.invite();
    late.table.dispatch(response(486));
    late.clock.advance(T1);
    late.state.failure = new Error('EHOSTUNREACH');
    late.table.dispatch(response(486));
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expect(late.events).toEqual(['response 486@0', `terminated@${T1}`]);
    expectReleased(late);
  });
  it('§17.1.4: an asynchronous transport error after the final response (Completed) ends the transaction quietly', () => {
    const r = rig();
    const invite = r.invite('z9hG4bKi');
    const options = r.nonInvite('OPTIONS', 'z9hG4bKo');
    r.table.dispatch(response(404, 'INVITE', 'z9hG4bKi'));
    r.table.dispatch(response(200, 'OPTIONS', 'z9hG4bKo'));
    invite.transportError(new Error('ICMP port unreachable'));
    options.transportError(new Error('ICMP port unreachable'));
    expect(r.events).toEqual(['response 404@0', 'response 200@0', 'terminated@0', 'terminated@0']);
    expectReleased(r);
  });
});

describe('response matching by the table (RFC 3261 §17.1.3)', () => {
  it('§17.1.3: an INVITE and its CANCEL share the branch; the CSeq method picks the transaction', () => {
    const r = rig();
    const invite = r.invite();
    r.table.dispatch(response(180));
    const cancel = r.nonInvite('CANCEL');
    expect(r.table.size).toBe(2);
    expect(r.table.dispatch(response(200, 'CANCEL'))).toBe(true);
    expect(cancel.state).toBe(ClientTransactionState.Completed);
    expect(invite.state).toBe(ClientTransactionState.Proceeding);
    expect(r.table.dispatch(response(487, 'INVITE'))).toBe(true);
    expect(invite.state).toBe(ClientTransactionState.Completed);
    expect(r.methods()).toEqual(['INVITE', 'CANCEL', 'ACK']);
    expect(r.events).toEqual(['response 180@0', 'response 200@0', 'response 487@0']);
    r.clock.advance(32_000);
    expectReleased(r);
  });

  it('§17.1.3: an unknown branch, a known branch with another method, or no usable Via match nothing', () => {
    const r = rig();
    r.invite();
    expect(r.table.dispatch(response(200, 'INVITE', 'z9hG4bKsomeone.else'))).toBe(false);
    expect(r.table.dispatch(response(200, 'BYE'))).toBe(false);
    expect(r.table.dispatch(response(200, 'CANCEL'))).toBe(false);
    const noVia = parseResponse('SIP/2.0 200 OK\nCSeq: 314 INVITE\nContent-Length: 0\n\n');
    expect(r.table.dispatch(noVia)).toBe(false);
    const noBranch = parseResponse(
      'SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.5:5060\nCSeq: 314 INVITE\nContent-Length: 0\n\n',
    );
    expect(r.table.dispatch(noBranch)).toBe(false);
    const badCSeq = parseResponse(
      `SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=${BRANCH}\nCSeq: INVITE\nContent-Length: 0\n\n`,
    );
    expect(r.table.dispatch(badCSeq)).toBe(false);
    expect(r.events).toEqual([]);
    expect(r.table.size).toBe(1);
  });

  it('§17.1.3: responses after termination (Timer B, F, a 2xx) match nothing', () => {
    const r = rig();
    r.invite('z9hG4bKb');
    r.nonInvite('OPTIONS', 'z9hG4bKf');
    r.clock.advance(64 * T1);
    expect(r.table.dispatch(response(100, 'INVITE', 'z9hG4bKb'))).toBe(false);
    expect(r.table.dispatch(response(200, 'OPTIONS', 'z9hG4bKf'))).toBe(false);
    expect(r.events.filter((e) => e.startsWith('timeout'))).toHaveLength(2);
    expectReleased(r);
  });

  it('a second live transaction on the same branch and method is refused', () => {
    const r = rig();
    r.invite();
    expect(() => r.invite()).toThrow(DuplicateTransactionError);
    // After the first one ends (Accepted until Timer M) the branch is free again (a TU reusing it is
    // its own business).
    r.table.dispatch(response(200));
    expect(() => r.invite()).toThrow(DuplicateTransactionError);
    r.clock.advance(64 * T1);
    expect(() => r.invite()).not.toThrow();
  });

  it('clear() drops every transaction silently, timers included', () => {
    const r = rig();
    r.invite('z9hG4bKa');
    r.nonInvite('OPTIONS', 'z9hG4bKb');
    r.invite('z9hG4bKc');
    r.table.dispatch(response(404, 'INVITE', 'z9hG4bKc'));
    expect(r.table.size).toBe(3);
    r.table.clear();
    expectReleased(r);
    r.clock.advance(100 * T1);
    expect(r.events).toEqual(['response 404@0']);
  });
});

describe('lifecycle guards and arguments', () => {
  it('takes the branch its caller made as the key, without reading the Via back', () => {
    const r = rig();
    const branch = newBranch();
    const t = r.table.createNonInvite({
      request: request('BYE', branch),
      branch,
      send: r.send,
      reliable: false,
      user: r.user,
    });
    t.start();
    expect(t.key).toBe(`BYE ${branch}`);
    expect(r.table.dispatch(response(200, 'BYE', branch))).toBe(true);
    expect(r.events).toEqual(['response 200@0']);
    // A given branch is held to the same rule as one read from the Via.
    expect(() =>
      r.table.createInvite({
        request: request('INVITE'),
        branch: 'no-cookie',
        send: r.send,
        reliable: false,
        user: r.user,
      }),
    ).toThrow(ClientTransactionArgumentError);
  });

  it('dispose() (Timer C) stops silently: no callbacks, no sends, no timers, responses no longer match', () => {
    const r = rig();
    const t = r.invite();
    t.dispose();
    t.dispose();
    expect(t.state).toBe(ClientTransactionState.Terminated);
    expectReleased(r);
    r.clock.advance(100 * T1);
    expect(r.table.dispatch(response(180))).toBe(false);
    t.receive(response(180));
    t.transportError(new Error('late'));
    expect(r.sentAt()).toEqual([0]);
    expect(r.events).toEqual([]);
  });

  it('start() twice, or after dispose(), is an illegal transition', () => {
    const r = rig();
    const t = r.invite();
    expect(() => t.start()).toThrow(IllegalTransitionError);
    const u = r.table.createNonInvite({
      request: request('OPTIONS', 'z9hG4bKu'),
      send: r.send,
      reliable: false,
      user: r.user,
    });
    u.dispose();
    expect(() => u.start()).toThrow(IllegalTransitionError);
  });

  it('a response before start() is ignored (nothing was sent)', () => {
    const r = rig();
    const t = r.table.createInvite({
      request: request('INVITE'),
      send: r.send,
      reliable: false,
      user: r.user,
    });
    expect(r.table.dispatch(response(200))).toBe(true);
    expect(t.state).toBe(ClientTransactionState.Calling);
    expect(r.events).toEqual([]);
  });

  it('requests a transaction cannot carry are refused before anything is sent', () => {
    const r = rig();
    const base = { send: r.send, reliable: false, user: r.user };
    expect(() => r.table.createInvite({ ...base, request: request('OPTIONS') })).toThrow(
      ClientTransactionArgumentError,
    );
    expect(() => r.table.createNonInvite({ ...base, request: request('INVITE') })).toThrow(
      ClientTransactionArgumentError,
    );
    expect(() => r.table.createNonInvite({ ...base, request: request('ACK') })).toThrow(
      ClientTransactionArgumentError,
    );
    // RFC 3261 §8.1.1.7: no magic cookie, no transaction (responses could not be matched).
    expect(() => r.table.createInvite({ ...base, request: request('INVITE', '1234') })).toThrow(
      ClientTransactionArgumentError,
    );
    expect(() => r.table.createInvite({ ...base, request: request('INVITE', 'z9hG4bK') })).toThrow(
      ClientTransactionArgumentError,
    );
    const noCallId = parseRequest(
      request('INVITE')
        .toBuffer()
        .toString('latin1')
        .replace(/^Call-ID: .*\r\n/m, '')
        .replace(/\r\n/g, '\n'),
    );
    expect(
      () =>
        new InviteClientTransaction({ ...base, request: noCallId, clock: r.clock, timers: DEFAULT_TIMERS }),
    ).toThrow(/no call-id/);
    expect(r.wire).toEqual([]);
    expect(r.table.size).toBe(0);
  });
});

describe('newBranch (RFC 3261 §8.1.1.7)', () => {
  it('§8.1.1.7: starts with the magic cookie, is a valid Via branch token, and never repeats', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) seen.add(newBranch());
    expect(seen.size).toBe(50_000);
    for (const b of [...seen].slice(0, 2000)) {
      expect(b.startsWith('z9hG4bK')).toBe(true);
      expect(parseVia(`SIP/2.0/UDP 10.0.0.5;branch=${b}`).branch).toBe(b);
    }
  });

  it('§8.1.1.7: consecutive branches differ beyond the counter (not predictable from the previous one)', () => {
    const a = newBranch();
    const b = newBranch();
    // Fixed-length random tail of 8 characters.
    expect(a.slice(-8)).not.toBe(b.slice(-8));
  });
});
