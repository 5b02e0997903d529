// The UAS dialog layer alone (src/dialog/), over an in-memory link and a fake clock: 2xx
// retransmission until ACK and give-up at 64*T1 (RFC 3261 §13.3.1.4), CSeq order (§12.2.2), the
// route set and our own in-dialog requests (§12.1.1, §12.2.1.1), the lifetime timer, BYE, and the
// per-source budget of un-ACKed 2xx.

import { describe, it, expect, beforeEach } from 'vitest';
import { pino } from 'pino';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';
import { ClientTransactionTable } from '../../src/transaction/client-transaction-table.js';
import { TagFactory } from '../../src/dialog/tags.js';
import { UasDialogTable, type DialogStats } from '../../src/dialog/uas-dialog-table.js';
import {
  inDialogRequest,
  isLooseRoute,
  readDialogTargets,
  recordRouteLines,
  type DialogRequest,
  type UasDialog,
} from '../../src/dialog/uas-dialog.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';

const T = { t1: 500, t2: 4000, t4: 5000 };

let link: MemoryLink;
let clock: FakeClock;
let clientTxns: ClientTransactionTable;
let stats: DialogStats;
let ended: { why: string; bye: boolean; context: string }[];
let table: UasDialogTable<string>;
/** What the Responder of each request answered: status and text. */
let answered: { status: number; text: string }[];

function start(transport: 'udp' | 'tcp' = 'udp', limits = { maxDialogs: 100, maxUnackedPerSource: 8 }): void {
  link = new MemoryLink(transport);
  clock = new FakeClock();
  clientTxns = new ClientTransactionTable(clock, T);
  stats = { dialogs: 0, dialogsCreated: 0, expired: 0, byesSent: 0, otherFlow: 0, overSourceBudget: 0 };
  ended = [];
  answered = [];
  table = new UasDialogTable<string>({
    clientTxns,
    clock,
    timers: T,
    tags: new TagFactory(),
    logger: pino({ level: 'silent' }),
    userAgent: 'test-uas',
    limits,
    stats,
    onEnded: (d, why, bye) => ended.push({ why, bye, context: d.context }),
  });
}

beforeEach(() => start());

function parse(text: string): SipMessage {
  const r = parseMessage(Buffer.from(text, 'latin1'), { stream: link.reliable });
  if (!r.ok) throw new Error(`unparsable: ${text}`);
  return r.message;
}

function request(
  method: string,
  opts: { callId?: string; cseq?: number; toTag?: string; extra?: string; port?: number } = {},
): DialogRequest {
  const port = opts.port ?? 40000;
  const req = parse(
    `${method} sip:uas@127.0.0.1 SIP/2.0\r\n` +
      `Via: SIP/2.0/${link.transport.toUpperCase()} 127.0.0.1:${port};branch=z9hG4bK-${method}-${opts.cseq ?? 1};rport\r\n` +
      `From: "Alice" <sip:alice@example.com>;tag=a1\r\n` +
      `To: <sip:uas@example.com>${opts.toTag === undefined ? '' : `;tag=${opts.toTag}`}\r\n` +
      `Call-ID: ${opts.callId ?? 'call-1'}\r\nCSeq: ${opts.cseq ?? 1} ${method}\r\nMax-Forwards: 70\r\n` +
      `Contact: <sip:alice@127.0.0.1:${port}>\r\n${opts.extra ?? ''}Content-Length: 0\r\n\r\n`,
  ) as SipRequest;
  const source = link.source('127.0.0.1', port);
  return {
    req,
    source,
    via: req.topVia,
    txn: { respond: (status, data) => answered.push({ status, text: data.toString('latin1') }) },
  };
}

const OK = Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1');

/** A dialog from an INVITE, its 200 sent: the dialog and the INVITE. */
function dialog(opts: Parameters<typeof request>[1] = {}): { d: UasDialog<string>; inv: DialogRequest } {
  const inv = request('INVITE', opts);
  expect(table.admit(inv.req, inv.source)).toBeUndefined();
  const d = table.create(inv, `ctx-${opts.callId ?? 'call-1'}`)!;
  expect(d).toBeDefined();
  table.send2xx(d, inv, OK);
  return { d, inv };
}

/** The ACK of the 200 to `inv`. */
function ack(d: UasDialog<string>, inv: DialogRequest): boolean {
  const a = request('ACK', {
    callId: d.callId,
    cseq: inv.req.cseq.seq,
    toTag: d.localTag,
    port: inv.source.port,
  });
  return table.ack(a.req, a.source);
}

/** Times (ms on the fake clock) at which the link sent something, over `ms`, in steps of 100 ms. */
function sendTimes(ms: number): number[] {
  const times: number[] = [];
  for (let t = 0; t < ms; t += 100) {
    clock.advance(100);
    for (let n = link.take().length; n > 0; n--) times.push(clock.now());
  }
  return times;
}

describe('2xx retransmission (RFC 3261 §13.3.1.4)', () => {
  it('retransmits the 2xx over UDP at T1, doubling to T2, until the ACK stops it', () => {
    const { d, inv } = dialog();
    expect(answered).toEqual([{ status: 200, text: OK.toString('latin1') }]);
    // Intervals 500, 1000, 2000, 4000, then 4000 (T2) each.
    expect(sendTimes(16000)).toEqual([500, 1500, 3500, 7500, 11500, 15500]);
    expect(ack(d, inv)).toBe(true);
    expect(sendTimes(20000)).toEqual([]);
    expect(d.confirmed).toBe(true);
    expect(table.size).toBe(1);
  });

  it('does not retransmit the 2xx over a stream', () => {
    start('tcp');
    dialog();
    expect(answered).toHaveLength(1);
    expect(sendTimes(20000)).toEqual([]);
  });

  it('sends the same 2xx again for a retransmitted INVITE, and refuses the copy from another flow', () => {
    const { inv } = dialog();
    const again = request('INVITE');
    expect(table.admit(again.req, again.source)).toBeUndefined();
    expect(table.answerRetransmission(again)).toBe(true);
    expect(answered.map((a) => a.status)).toEqual([200, 200]);
    const elsewhere = request('INVITE', { port: 40001 });
    expect(table.admit(elsewhere.req, elsewhere.source)).toEqual({ why: 'other-flow' });
    expect(stats.otherFlow).toBe(1);
    // A new INVITE (another CSeq) is not a retransmission.
    expect(table.answerRetransmission(request('INVITE', { cseq: inv.req.cseq.seq + 1 }))).toBe(false);
  });

  it('gives up at 64*T1 without an ACK: ends the dialog with BYE', () => {
    const { d } = dialog();
    const times = sendTimes(64 * T.t1 - 100);
    expect(times.length).toBe(10);
    expect(table.size).toBe(1);
    clock.advance(100);
    // The last 2xx retransmission is not sent; the BYE is.
    const sent = link.take().map((t) => parse(t));
    expect(sent).toHaveLength(1);
    const bye = sent[0] as SipRequest;
    expect(bye.method).toBe('BYE');
    expect(bye.uri).toBe('sip:alice@127.0.0.1:40000');
    expect(bye.header('from')).toBe(`<sip:uas@example.com>;tag=${d.localTag}`);
    expect(bye.header('to')).toBe('"Alice" <sip:alice@example.com>;tag=a1');
    expect(bye.header('cseq')).toBe('1 BYE');
    expect(bye.header('user-agent')).toBe('test-uas');
    expect(table.size).toBe(0);
    expect(d.ended).toBe(true);
    expect(ended).toEqual([{ why: 'no-ack', bye: true, context: 'ctx-call-1' }]);
    expect(stats).toMatchObject({ dialogs: 0, expired: 1, byesSent: 1 });
  });

  it("holds a source's budget of un-ACKed 2xx until each is ACKed, or its BYE is over", () => {
    start('udp', { maxDialogs: 100, maxUnackedPerSource: 2 });
    const a = dialog({ callId: 'a' });
    dialog({ callId: 'b' });
    const c = request('INVITE', { callId: 'c' });
    expect(table.admit(c.req, c.source)).toEqual({ why: 'source-budget', retryAfter: 32 });
    expect(stats.overSourceBudget).toBe(1);
    // Another source is not held to this one's budget.
    const other = request('INVITE', { callId: 'c', port: 40002 });
    expect(table.admit(other.req, { ...other.source, address: '127.0.0.2' })).toBeUndefined();
    expect(ack(a.d, a.inv)).toBe(true);
    expect(table.admit(c.req, c.source)).toBeUndefined();
    // 'b' is given up on at 64*T1; its BYE, unanswered, keeps the slot until Timer F (64*T1 more).
    dialog({ callId: 'c' });
    clock.advance(64 * T.t1);
    const d = request('INVITE', { callId: 'd' });
    expect(table.admit(d.req, d.source)).toEqual({ why: 'source-budget', retryAfter: 32 });
    clock.advance(64 * T.t1);
    expect(table.admit(d.req, d.source)).toBeUndefined();
    // Every slot given back: the whole budget is there again.
    dialog({ callId: 'd' });
    const e = request('INVITE', { callId: 'e' });
    expect(table.admit(e.req, e.source)).toBeUndefined();
  });

  it('refuses a new INVITE once maxDialogs are held', () => {
    start('tcp', { maxDialogs: 1, maxUnackedPerSource: 8 });
    dialog();
    const next = request('INVITE', { callId: 'call-2' });
    expect(table.admit(next.req, next.source)).toEqual({ why: 'full' });
  });

  it('drops an ACK from another flow, and goes on retransmitting', () => {
    const { d, inv } = dialog();
    const a = request('ACK', { callId: d.callId, toTag: d.localTag, port: 40001 });
    expect(table.ack(a.req, a.source)).toBe(true);
    expect(stats.otherFlow).toBe(1);
    expect(sendTimes(1000)).toEqual([500]);
    expect(ack(d, inv)).toBe(true);
    expect(sendTimes(5000)).toEqual([]);
  });
});

describe('in-dialog requests (RFC 3261 §12.2.2)', () => {
  it('matches by Call-ID and tags, on the flow the dialog came on', () => {
    const { d } = dialog();
    const info = request('INFO', { cseq: 2, toTag: d.localTag });
    expect([d.callId, d.remoteTag, d.localTag.length]).toEqual(['call-1', 'a1', 12]);
    expect(table.owns(info.req, info.source)).toBe('flow');
    expect(
      table.owns(
        request('INFO', { cseq: 2, toTag: d.localTag, port: 40001 }).req,
        link.source('127.0.0.1', 40001),
      ),
    ).toBe('other-flow');
    expect(table.owns(request('INFO', { cseq: 2, toTag: 'not-ours' }).req, info.source)).toBeUndefined();
    expect(table.match(request('INFO', { cseq: 2, toTag: 'not-ours' }))).toEqual({ kind: 'no-dialog' });
  });

  it('takes a request in CSeq order and refuses a lower CSeq as out of order (500)', () => {
    const { d, inv } = dialog({ cseq: 5 });
    ack(d, inv);
    expect(table.match(request('INFO', { cseq: 7, toTag: d.localTag }))).toEqual({
      kind: 'in-order',
      dialog: d,
    });
    expect(d.remoteCseq).toBe(7);
    expect(table.match(request('INFO', { cseq: 6, toTag: d.localTag }))).toEqual({
      kind: 'out-of-order',
      dialog: d,
    });
    expect(d.remoteCseq).toBe(7);
    // Equal is not lower: a request retransmitted past its transaction is still taken.
    expect(table.match(request('INFO', { cseq: 7, toTag: d.localTag })).kind).toBe('in-order');
  });

  it('answers a re-INVITE retransmitted after its 2xx with that 2xx again', () => {
    const { d, inv } = dialog();
    ack(d, inv);
    const reinvite = request('INVITE', { cseq: 2, toTag: d.localTag });
    expect(table.match(reinvite).kind).toBe('in-order');
    table.send2xx(d, reinvite, OK);
    answered = [];
    expect(table.match(request('INVITE', { cseq: 2, toTag: d.localTag }))).toEqual({ kind: 'answered' });
    expect(answered.map((a) => a.status)).toEqual([200]);
  });

  it('forgets a dialog ended by BYE: no match, no timers left', () => {
    const { d, inv } = dialog();
    ack(d, inv);
    table.setLifetime(d, 60_000, 'idle');
    const bye = request('BYE', { cseq: 2, toTag: d.localTag });
    expect(table.match(bye).kind).toBe('in-order');
    table.end(d, 'bye', false);
    expect(ended).toEqual([{ why: 'bye', bye: false, context: 'ctx-call-1' }]);
    expect(table.size).toBe(0);
    expect(table.owns(bye.req, bye.source)).toBeUndefined();
    expect(table.match(request('INFO', { cseq: 3, toTag: d.localTag }))).toEqual({ kind: 'no-dialog' });
    expect(clock.active).toBe(0);
    expect(link.take()).toEqual([]);
  });

  it('ends a dialog whose lifetime runs out with BYE', () => {
    const { d, inv } = dialog();
    ack(d, inv);
    table.setLifetime(d, 10_000, 'idle');
    clock.advance(9_000);
    // Re-armed by a request: counted from now.
    table.setLifetime(d, 10_000, 'idle');
    clock.advance(9_000);
    expect(table.size).toBe(1);
    clock.advance(1_000);
    const sent = link.take().map((t) => parse(t) as SipRequest);
    expect(sent.map((r) => r.method)).toEqual(['BYE']);
    expect(ended).toEqual([{ why: 'idle', bye: true, context: 'ctx-call-1' }]);
    expect(stats).toMatchObject({ expired: 1, byesSent: 1, dialogs: 0 });
  });

  it('replaces the remote target from a target refresh, and keeps it for a bad Contact', () => {
    const { d } = dialog();
    table.refreshTarget(d, request('UPDATE', { cseq: 2, toTag: d.localTag, port: 40005 }).req);
    expect(d.remoteTarget).toBe('sip:alice@127.0.0.1:40005');
    const bad = request('UPDATE', { cseq: 3, toTag: d.localTag });
    bad.req.headers.splice(
      bad.req.headers.findIndex((h) => h.name === 'contact'),
      1,
      { name: 'contact', wire: 'Contact', value: '<sip:broken' },
    );
    table.refreshTarget(d, bad.req);
    expect(d.remoteTarget).toBe('sip:alice@127.0.0.1:40005');
  });
});

describe('route set and our requests (RFC 3261 §12.1.1, §12.2.1.1)', () => {
  const RR =
    'Record-Route: <sip:fe2.example.com;lr>, <sip:fe1.example.com;lr>\r\nRecord-Route: <sip:edge.example.com;lr;x=1>\r\n';

  it('takes the route set from Record-Route in order: the UAS does not reverse it (the UAC does, §12.1.2)', () => {
    const inv = request('INVITE', { extra: RR });
    expect(readDialogTargets(inv.req)).toEqual({
      remoteTarget: 'sip:alice@127.0.0.1:40000',
      routeSet: ['<sip:fe2.example.com;lr>', '<sip:fe1.example.com;lr>', '<sip:edge.example.com;lr;x=1>'],
    });
    // The 2xx copies Record-Route as received, order kept.
    expect(recordRouteLines(inv.req)).toBe(
      'Record-Route: <sip:fe2.example.com;lr>, <sip:fe1.example.com;lr>\r\nRecord-Route: <sip:edge.example.com;lr;x=1>\r\n',
    );
  });

  it('falls back on the From URI without a Contact, and refuses a Record-Route it cannot read', () => {
    const noContact = request('INVITE');
    noContact.req.headers.splice(
      noContact.req.headers.findIndex((h) => h.name === 'contact'),
      1,
    );
    expect(readDialogTargets(noContact.req)?.remoteTarget).toBe('sip:alice@example.com');
    const bad = request('INVITE', { extra: 'Record-Route: <sip:fe1.example.com;lr\r\n' });
    expect(readDialogTargets(bad.req)).toBeUndefined();
    expect(table.create(bad, 'x')).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it('sends its INFO to the remote target along the route set, through a client transaction', () => {
    const { d, inv } = dialog({ extra: RR });
    ack(d, inv);
    let done = 0;
    table.request(d, 'INFO', { type: 'text/plain', text: 'hello' }, () => done++);
    const [text] = link.take();
    const info = parse(text!) as SipRequest;
    expect(info.uri).toBe('sip:alice@127.0.0.1:40000');
    expect(info.headerLines('route')).toEqual([
      '<sip:fe2.example.com;lr>',
      '<sip:fe1.example.com;lr>',
      '<sip:edge.example.com;lr;x=1>',
    ]);
    expect(info.header('cseq')).toBe('1 INFO');
    expect(info.header('content-type')).toBe('text/plain');
    expect(info.body.toString()).toBe('hello');
    expect(info.topVia.host).toBe('127.0.0.1');
    expect(info.topVia.port).toBe(5060);
    // Retransmitted over UDP by its transaction (Timer E) until answered.
    clock.advance(T.t1);
    expect(link.take()).toHaveLength(1);
    const res = parse(
      `SIP/2.0 200 OK\r\nVia: ${info.header('via')}\r\nFrom: ${info.header('from')}\r\nTo: ${info.header('to')}\r\n` +
        `Call-ID: ${info.callId}\r\nCSeq: 1 INFO\r\nContent-Length: 0\r\n\r\n`,
    ) as SipResponse;
    expect(clientTxns.dispatch(res)).toBe(true);
    expect(done).toBe(1);
    expect(table.size).toBe(1);
    // The next request of ours counts on.
    table.request(d, 'INFO', { type: 'text/plain', text: 'again' });
    expect((parse(link.take()[0]!) as SipRequest).header('cseq')).toBe('2 INFO');
  });

  it('ends the dialog when its INFO is answered 481 (§12.2.1.2)', () => {
    const { d, inv } = dialog();
    ack(d, inv);
    table.request(d, 'INFO', { type: 'text/plain', text: 'x' });
    const info = parse(link.take()[0]!) as SipRequest;
    clientTxns.dispatch(
      parse(
        `SIP/2.0 481 Call/Transaction Does Not Exist\r\nVia: ${info.header('via')}\r\nFrom: ${info.header('from')}\r\n` +
          `To: ${info.header('to')}\r\nCall-ID: ${info.callId}\r\nCSeq: 1 INFO\r\nContent-Length: 0\r\n\r\n`,
      ) as SipResponse,
    );
    expect(table.size).toBe(0);
    expect(ended).toEqual([{ why: 'INFO answered 481', bye: false, context: 'ctx-call-1' }]);
  });

  it('puts a strict router first in the set into the Request-URI and the remote target last', () => {
    const { d } = dialog({ extra: 'Record-Route: <sip:strict.example.com>, <sip:fe1.example.com;lr>\r\n' });
    expect(isLooseRoute('<sip:strict.example.com>')).toBe(false);
    expect(isLooseRoute('<sip:fe1.example.com;lr>')).toBe(true);
    const req = inDialogRequest(d, { method: 'BYE', branch: 'z9hG4bK-x', cseq: 9, userAgent: '' });
    expect(req.uri).toBe('sip:strict.example.com');
    expect(req.headerLines('route')).toEqual(['<sip:fe1.example.com;lr>', '<sip:alice@127.0.0.1:40000>']);
    expect(req.header('user-agent')).toBeUndefined();
    expect(req.header('cseq')).toBe('9 BYE');
  });
});
