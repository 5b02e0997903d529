// Lookup mode through the router over an in-memory link and a fake clock: the dialog (INVITE, 200 with
// SDP, 2xx retransmission until ACK, BYE after 64*T1), XCCOS cmd:requri → 200 + INFO rpl:requri,
// round-robin and health, RFC 4028 session timers, bad bodies, and dialogs that are abandoned.

import { buildModes } from '../../src/modes/registry.js';
import { lookupOf } from '../helpers/modes.js';
import { describe, it, expect, beforeEach } from 'vitest';
import { pino } from 'pino';
import { Router } from '../../src/router/router.js';
import { EndpointTable } from '../../src/endpoints/table.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';
import { ClientTransactionTable } from '../../src/transaction/client-transaction-table.js';
import type { LookupSettings } from '../../src/modes/lookup/lookup-service.js';
import { defaultSettings } from '../helpers/settings.js';
import type { ProbeStates } from '../../src/modes/lookup/handout.js';
import type { Target } from '../../src/pool/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';
import { jsonLines } from '../helpers/log-lines.js';

const T = { t1: 500, t2: 4000, t4: 5000 };

const ENDPOINTS = `
endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
  - sipAddress: sip:rr@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
    lookupUris:
      - sip:chan1@10.0.0.1:5061;transport=tls
      - sip:chan2@10.0.0.2:5061;transport=tls
      - sip:chan3@10.0.0.3:5061;transport=tls
`;

const REQURI = (envid: number, id = 'cmd:requri'): string =>
  `<xccos ver="1" envid="${envid}" xmlns="urn:parlano:xml:ns:xccos"><cmd id="${id}" seqid="1"><data/></cmd></xccos>`;

const OFFER =
  'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5061 sip null\r\n' +
  'a=accept-types:text/plain text/html image/gif application/im-iscomposing+xml application/ms-imdn+xml text/x-msmsgsinvite\r\n';

let link: MemoryLink;
let clock: FakeClock;
let router: Router;
let clientTxns: ClientTransactionTable;
let lines: Record<string, unknown>[];
let probes: ReturnType<ProbeStates>;

function start(
  settings: Partial<LookupSettings> = {},
  transport: 'udp' | 'tcp' = 'udp',
  maxTransactions = 0,
): void {
  link = new MemoryLink(transport);
  clock = new FakeClock();
  lines = [];
  probes = [];
  const sink = jsonLines(lines);
  const table = EndpointTable.fromConfig(parseEndpointsConfig(ENDPOINTS, 'endpoints.yaml'));
  clientTxns = new ClientTransactionTable(clock, T);
  router = new Router({
    table: () => table,
    logger: pino({ level: 'debug' }, sink),
    clock,
    timers: T,
    maxMessageSize: 65535,
    serverHeader: 'pchat-endpoint',
    modes: buildModes({
      lookup: {
        clientTxns,
        probes: () => probes,
        settings: { ...defaultSettings().lookup, ...settings },
      },
    }),
    limits: { ...defaultSettings().router, maxTransactions },
  });
}

beforeEach(() => start());

function parse(text: string): SipMessage {
  const r = parseMessage(Buffer.from(text, 'latin1'), { stream: link.reliable });
  if (!r.ok) throw new Error(`unparsable: ${text}`);
  return r.message;
}
const asResponse = (t: string): SipResponse => parse(t) as SipResponse;
const asRequest = (t: string): SipRequest => parse(t) as SipRequest;

/** The legacy client's side of one dialog, as sipe builds its messages (xccos.md §1, §3). */
class Client {
  toTag = '';
  contact = '';
  cseq = 1;
  constructor(
    readonly callId: string,
    readonly user = 'ocschat',
    readonly port = 40000,
  ) {}

  private head(
    method: string,
    uri: string,
    cseq: number,
    toTag: string,
    branch: string,
    extra: string,
  ): string {
    return (
      `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/${link.transport.toUpperCase()} 127.0.0.1:${this.port}${branch}\r\n` +
      `From: <sip:alice@contoso.com>;tag=81723456;epid=0123abcd\r\nTo: <sip:${this.user}@contoso.com>${toTag}\r\n` +
      `Max-Forwards: 70\r\nCall-ID: ${this.callId}\r\nCSeq: ${cseq} ${method}\r\n${extra}`
    );
  }

  send(text: string): void {
    router.onMessage(Buffer.from(text, 'latin1'), link.source('127.0.0.1', this.port));
  }

  invite(extra = '', opts: { branch?: string; body?: string } = {}): string {
    const body = opts.body ?? OFFER;
    const text =
      this.head('INVITE', `sip:${this.user}@contoso.com`, 1, '', opts.branch ?? '', extra) +
      `Supported: ms-sender\r\nContact: <sip:alice@127.0.0.1:${this.port};transport=${link.transport}>\r\n` +
      `${body ? 'Content-Type: application/sdp\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    this.send(text);
    return text;
  }

  /** Reads the 200 just sent to the INVITE: the To tag and Contact of the dialog. */
  accept(res: SipResponse): void {
    this.toTag = res.toTag ?? '';
    this.contact = /<([^>]+)>/.exec(res.header('contact') ?? '')?.[1] ?? '';
  }

  inDialog(
    method: string,
    opts: { body?: string; type?: string | null; extra?: string; cseq?: number } = {},
  ): string {
    const cseq = opts.cseq ?? (method === 'ACK' ? 1 : ++this.cseq);
    const body = opts.body ?? '';
    const type =
      opts.type === undefined
        ? body
          ? 'Content-Type: text/plain\r\n'
          : ''
        : opts.type
          ? `Content-Type: ${opts.type}\r\n`
          : '';
    const text =
      this.head(method, this.contact, cseq, `;tag=${this.toTag}`, '', opts.extra ?? '') +
      `${type}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    this.send(text);
    return text;
  }

  /** The client's 200 to a request from the service. */
  answer(req: SipRequest, status = 200): void {
    const copy = ['via', 'from', 'to', 'call-id', 'cseq']
      .map((n) => `${n}: ${req.header(n) ?? ''}`)
      .join('\r\n');
    this.send(`SIP/2.0 ${status} OK\r\n${copy}\r\nContent-Length: 0\r\n\r\n`);
  }
}

/** Start a dialog and return the client and the 200. */
function dialog(callId: string, user = 'ocschat', extra = ''): { c: Client; ok: SipResponse } {
  const c = new Client(callId, user);
  c.invite(extra);
  const sent = link.take();
  expect(sent).toHaveLength(1);
  const ok = asResponse(sent[0]!);
  c.accept(ok);
  return { c, ok };
}

/** Dialog, ACK, INFO cmd:requri: returns the 200 to the INFO and the service's INFO. */
function lookup(callId: string, user = 'ocschat'): { c: Client; infoOk: SipResponse; rpl: SipRequest } {
  const { c } = dialog(callId, user);
  c.inDialog('ACK');
  c.inDialog('INFO', { body: REQURI(1000) });
  const sent = link.take();
  expect(sent, sent.join('\n----\n')).toHaveLength(2);
  return { c, infoOk: asResponse(sent[0]!), rpl: asRequest(sent[1]!) };
}

const uib = (rpl: SipRequest): string | undefined => /<uib uri="([^"]+)"\/>/.exec(rpl.body.toString())?.[1];

describe('lookup dialog (RFC 3261 §12, §13.3.1.4)', () => {
  it('answers the INVITE 200 with To tag, Contact, SDP answer and the channel Session-Expires', () => {
    const { ok } = dialog('inv-1');
    expect(ok.status).toBe(200);
    // A dialog's tag: 72 random bits, base64url.
    expect(ok.toTag).toMatch(/^[\w-]{12}$/);
    expect(ok.header('to')).toMatch(/^<sip:ocschat@contoso\.com>;tag=/);
    expect(ok.header('contact')).toBe('<sip:127.0.0.1:5060>');
    expect(ok.header('content-type')).toBe('application/sdp');
    expect(ok.body.toString()).toContain('\r\nm=message 5060 sip null\r\n');
    expect(ok.body.toString()).toMatch(/^v=0\r\no=- 0 0 IN IP4 127\.0\.0\.1\r\n/);
    expect(Number(ok.header('content-length'))).toBe(ok.body.length);
    // xccos.md §4: sipe refreshes its chat dialog only from the Lookup 200's Session-Expires; it
    // does not support timers itself, so we are the refresher (RFC 4028 §9) and no Require is sent.
    expect(ok.header('session-expires')).toBe('1800;refresher=uas');
    expect(ok.header('require')).toBeUndefined();
    expect(lines.find((l) => l.msg === 'decision')).toMatchObject({
      method: 'INVITE',
      status: 200,
      outcome: 'lookup-dialog',
      mode: 'lookup',
      endpoint: 'sip:ocschat@contoso.com',
    });
  });

  it('declines other offered streams with port 0, keeping the m-line count (RFC 3264 §6)', () => {
    const c = new Client('sdp-1');
    c.invite('', { body: 'v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=message 5061 sip null\r\n' });
    const body = asResponse(link.take()[0]!).body.toString();
    expect(body.match(/^m=.*$/gm)).toEqual(['m=audio 0 RTP/AVP 0', 'm=message 5060 sip null']);
  });

  it('retransmits the 2xx over UDP at T1, 2*T1, 4*T1 ... capped at T2 until the ACK comes', () => {
    const { c } = dialog('rtx-1');
    const at: number[] = [];
    for (let i = 0; i < 10; i++) {
      clock.advance(250);
      for (const m of link.take()) {
        expect(m).toMatch(/^SIP\/2\.0 200 OK/);
        at.push(clock.now());
      }
    }
    expect(at).toEqual([500, 1500]);
    clock.advance(2000);
    expect(link.take()).toHaveLength(1); // at 3500
    clock.advance(4000);
    expect(link.take()).toHaveLength(1); // at 7500 (4000 = T2 from here on)
    clock.advance(4000);
    expect(link.take()).toHaveLength(1);
    c.inDialog('ACK');
    clock.advance(20_000);
    expect(link.take()).toHaveLength(0);
    expect(lookupOf(router).size).toBe(1);
  });

  it('does not retransmit the 2xx over TCP', () => {
    start({}, 'tcp');
    const { ok } = dialog('tcp-1');
    expect(ok.header('contact')).toBe('<sip:127.0.0.1:5060;transport=tcp>');
    clock.advance(10_000);
    expect(link.take()).toHaveLength(0);
  });

  it('sends the same 2xx again when the INVITE is retransmitted, and makes no second dialog', () => {
    const c = new Client('inv-rtx');
    const text = c.invite('', { branch: ';branch=z9hG4bK-inv-rtx' });
    const first = link.take();
    c.send(text);
    const again = link.take();
    expect(again).toEqual(first);
    expect(lookupOf(router).size).toBe(1);
    // Branch-less (RFC 2543) INVITEs too: matched by Call-ID, From tag and CSeq.
    const d = new Client('inv-rtx-2543');
    const t2 = d.invite();
    const f2 = link.take();
    d.send(t2);
    expect(link.take()).toEqual(f2);
    expect(lookupOf(router).size).toBe(2);
  });

  it('ends a dialog never ACKed with BYE after 64*T1 and frees it', () => {
    const { c } = dialog('noack-1');
    clock.advance(64 * T.t1 - 1);
    expect(link.take().every((m) => m.startsWith('SIP/2.0 200'))).toBe(true);
    clock.advance(1);
    const sent = link.take();
    expect(sent).toHaveLength(1);
    const bye = asRequest(sent[0]!);
    expect(bye.method).toBe('BYE');
    expect(bye.uri).toBe('sip:alice@127.0.0.1:40000;transport=udp');
    expect(bye.header('from')).toBe(`<sip:ocschat@contoso.com>;tag=${c.toTag}`);
    expect(bye.header('to')).toBe('<sip:alice@contoso.com>;tag=81723456;epid=0123abcd');
    expect(bye.header('call-id')).toBe('noack-1');
    expect(bye.topVia.branch).toMatch(/^z9hG4bK/);
    expect(lookupOf(router).size).toBe(0);
    expect(lookupOf(router).stats).toMatchObject({ expired: 1, byesSent: 1, dialogs: 0 });
    // An ACK arriving afterwards matches nothing.
    c.inDialog('ACK');
    expect(router.stats.dropped).toBe(1);
  });

  it('answers BYE 200 and forgets the dialog; a later INFO gets 481', () => {
    const { c } = dialog('bye-1');
    c.inDialog('ACK');
    c.inDialog('BYE');
    const r = asResponse(link.take()[0]!);
    expect(r.status).toBe(200);
    expect(r.cseq.method).toBe('BYE');
    expect(lookupOf(router).size).toBe(0);
    c.inDialog('INFO', { body: REQURI(1) });
    expect(asResponse(link.take()[0]!).status).toBe(481);
  });

  it('over limits.maxTransactions an INFO in a dialog gets one stateless 503, while BYE still ends it', () => {
    start({}, 'udp', 1);
    const { c } = dialog('cap-bye');
    c.inDialog('ACK');
    // A body-less INFO is answered 200; its transaction is kept for Timer J: the cap of 1 is reached.
    c.inDialog('INFO');
    expect(asResponse(link.take()[0]!).status).toBe(200);
    expect(router.transactions.size).toBe(1);
    c.inDialog('INFO');
    const shed = asResponse(link.take()[0]!);
    expect(shed.status).toBe(503);
    expect(shed.header('retry-after')).toBe('5');
    expect(router.transactions.size).toBe(1);
    c.inDialog('BYE');
    expect(asResponse(link.take()[0]!).status).toBe(200);
    expect(lookupOf(router).size).toBe(0);
  });

  it('ends a confirmed dialog left idle with BYE', () => {
    start({ idleTimeoutMs: 5000 });
    const { c } = dialog('idle-1');
    c.inDialog('ACK');
    clock.advance(4999);
    expect(link.take()).toHaveLength(0);
    clock.advance(1);
    const bye = asRequest(link.take()[0]!);
    expect(bye.method).toBe('BYE');
    expect(bye.cseq.seq).toBe(1);
    c.answer(bye);
    expect(lookupOf(router).size).toBe(0);
  });

  it('refuses a request out of CSeq order with 500 (RFC 3261 §12.2.2)', () => {
    const { c } = dialog('cseq-1');
    c.inDialog('ACK');
    c.inDialog('INFO', { cseq: 5 });
    expect(asResponse(link.take()[0]!).status).toBe(200);
    c.inDialog('INFO', { cseq: 3 });
    expect(asResponse(link.take()[0]!).status).toBe(500);
  });

  it('answers outside a dialog: 481 for a To tag it does not know, 405 for methods but INVITE, OPTIONS 200', () => {
    const c = new Client('out-1');
    c.toTag = 'nosuchtag';
    c.contact = 'sip:ocschat@contoso.com';
    c.inDialog('INFO', { body: REQURI(1) });
    expect(asResponse(link.take()[0]!).status).toBe(481);
    c.toTag = '';
    const msg =
      'MESSAGE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-m1\r\n' +
      'From: <sip:alice@contoso.com>;tag=1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n';
    c.send(msg);
    const r = asResponse(link.take()[0]!);
    expect(r.status).toBe(405);
    expect(r.header('allow')).toContain('INVITE');
    c.send(msg.replace(/MESSAGE/g, 'OPTIONS').replace('z9hG4bK-m1', 'z9hG4bK-o1'));
    expect(asResponse(link.take()[0]!).status).toBe(200);
  });
});

describe('XCCOS over the lookup dialog (xccos.md §3)', () => {
  it('answers cmd:requri with 200, then an INFO carrying rpl:requri and the default URI', () => {
    const { c, infoOk, rpl } = lookup('requri-1');
    expect(infoOk.status).toBe(200);
    expect(infoOk.cseq).toEqual({ seq: 2, method: 'INFO' });
    expect(rpl.method).toBe('INFO');
    expect(rpl.uri).toBe('sip:alice@127.0.0.1:40000;transport=udp');
    expect(rpl.header('call-id')).toBe('requri-1');
    // sipe finds the session by From = the lookup URI (xccos.md §3).
    expect(rpl.header('from')).toBe(`<sip:ocschat@contoso.com>;tag=${c.toTag}`);
    expect(rpl.header('to')).toBe('<sip:alice@contoso.com>;tag=81723456;epid=0123abcd');
    expect(rpl.header('content-type')).toBe('text/plain');
    expect(rpl.cseq).toEqual({ seq: 1, method: 'INFO' });
    expect(rpl.body.toString()).toMatch(
      /^<xccos ver="1" envid="\d+" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:requri" seqid="1"><commandid seqid="1" envid="1000"\/><resp code="200">SUCCESS_OK<\/resp><data><uib uri="sip:ocschat@pcpool\.contoso\.com"\/><\/data><\/rpl><\/xccos>$/,
    );
    expect(lines.filter((l) => l.outcome === 'lookup-handout')).toEqual([
      expect.objectContaining({
        method: 'INFO',
        status: 200,
        target: 'sip:ocschat@pcpool.contoso.com',
        endpoint: 'sip:ocschat@contoso.com',
        mode: 'lookup',
      }),
    ]);
    expect(lookupOf(router).stats.handouts).toBe(1);
    // The client's 200 ends our INFO transaction; then its BYE ends the dialog.
    c.answer(rpl);
    clock.advance(T.t4);
    expect(clientTxns.size).toBe(0);
    c.inDialog('BYE');
    expect(asResponse(link.take()[0]!).status).toBe(200);
    expect(lookupOf(router).size).toBe(0);
  });

  it('copies Record-Route into the 200 and routes its INFO through the Front End (RFC 3261 §12.1.1)', () => {
    const { ok } = dialog(
      'rr-fe',
      'ocschat',
      'Record-Route: <sip:fe1.contoso.com:5061;transport=tls;lr>\r\n',
    );
    expect(ok.header('record-route')).toBe('<sip:fe1.contoso.com:5061;transport=tls;lr>');
    const c = new Client('rr-fe');
    c.accept(ok);
    c.inDialog('ACK');
    c.inDialog('INFO', { body: REQURI(5) });
    // Sent back where the client's requests come from, not resolved from the route or Contact.
    expect(link.sent.map((m) => `${m.address}:${m.port}`)).toEqual(['127.0.0.1:40000', '127.0.0.1:40000']);
    const rpl = asRequest(link.take()[1]!);
    expect(rpl.uri).toBe('sip:alice@127.0.0.1:40000;transport=udp');
    expect(rpl.header('route')).toBe('<sip:fe1.contoso.com:5061;transport=tls;lr>');
  });

  it('puts a strict-routing Front End in the Request-URI and the remote target last', () => {
    const { ok } = dialog('rr-strict', 'ocschat', 'Record-Route: <sip:fe1.contoso.com>\r\n');
    const c = new Client('rr-strict');
    c.accept(ok);
    c.inDialog('ACK');
    c.inDialog('INFO', { body: REQURI(5) });
    const rpl = asRequest(link.take()[1]!);
    expect(rpl.uri).toBe('sip:fe1.contoso.com');
    expect(rpl.header('route')).toBe('<sip:alice@127.0.0.1:40000;transport=udp>');
  });

  it('retransmits its INFO over UDP until the client answers (RFC 3261 §17.1.2)', () => {
    const { c, rpl } = lookup('requri-rtx');
    clock.advance(T.t1);
    const again = link.take();
    expect(again).toHaveLength(1);
    expect(asRequest(again[0]!).topVia.branch).toBe(rpl.topVia.branch);
    c.answer(rpl);
    clock.advance(10_000);
    expect(link.take()).toHaveLength(0);
  });

  it('hands out lookupUris round-robin', () => {
    const got: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) got.push(uib(lookup(`rr-${i}`, 'rr').rpl));
    expect(got).toEqual([
      'sip:chan1@10.0.0.1:5061;transport=tls',
      'sip:chan2@10.0.0.2:5061;transport=tls',
      'sip:chan3@10.0.0.3:5061;transport=tls',
      'sip:chan1@10.0.0.1:5061;transport=tls',
    ]);
  });

  it('skips URIs whose probed members are down, and hands out anyway when all are', () => {
    const target = (address: string, up: boolean): { target: Target; up: boolean } => ({
      target: {
        transport: 'tls',
        host: address,
        address,
        port: 5061,
        family: 4,
        id: `tls:${address}:5061`,
        source: 'static',
      },
      up,
    });
    probes = [target('10.0.0.1', true), target('10.0.0.2', false), target('10.0.0.3', true)];
    const got: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) got.push(uib(lookup(`health-${i}`, 'rr').rpl)?.slice(0, 9));
    expect(got).toEqual(['sip:chan1', 'sip:chan3', 'sip:chan1', 'sip:chan3']);
    probes = probes.map((p) => ({ ...p, up: false }));
    expect(uib(lookup('health-down', 'rr').rpl)).toMatch(/^sip:chan/);
    expect(lines.filter((l) => l.outcome === 'lookup-handout').at(-1)).toMatchObject({
      level: 40,
      reason: 'every lookup URI probed down; handed out anyway',
    });
  });

  it('answers a retransmitted INFO over UDP with the same 200 and sends one rpl only', () => {
    const { c } = dialog('info-rtx');
    c.inDialog('ACK');
    const info = c.inDialog('INFO', { body: REQURI(7) });
    const first = link.take();
    expect(first).toHaveLength(2);
    c.send(info);
    c.send(info);
    const again = link.take();
    expect(again).toEqual([first[0], first[0]]);
    expect(lookupOf(router).stats.handouts).toBe(1);
  });

  it('answers any other command with the error reply (resp 500), not silence', () => {
    const { c } = dialog('other-1');
    c.inDialog('ACK');
    c.inDialog('INFO', { body: REQURI(9, 'cmd:bjoin') });
    const sent = link.take();
    expect(asResponse(sent[0]!).status).toBe(200);
    const rpl = asRequest(sent[1]!);
    expect(rpl.body.toString()).toContain(
      '<rpl id="rpl:bjoin" seqid="1"><commandid seqid="1" envid="9"/><resp code="500">COMMAND_NOT_SUPPORTED</resp><data/></rpl>',
    );
    expect(lines.at(-1)).toMatchObject({ outcome: 'xccos-unsupported', level: 40 });
  });

  const bad: Array<{
    name: string;
    body: string | Buffer;
    type?: string | null;
    extra?: string;
    status: number;
    reason: RegExp;
  }> = [
    {
      name: 'malformed XML',
      body: '<xccos envid="1"><cmd id="cmd:requri"></xccos>',
      status: 400,
      reason: /^Bad XCCOS: malformed XML: 1:\d+/,
    },
    { name: 'truncated XML', body: REQURI(1).slice(0, 60), status: 400, reason: /^Bad XCCOS: malformed XML/ },
    {
      name: 'billion laughs',
      body: '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xccos envid="1">&b;</xccos>',
      status: 400,
      reason: /^Bad XCCOS: DOCTYPE not allowed$/,
    },
    {
      name: 'external entity',
      body: '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xccos envid="1">&e;</xccos>',
      status: 400,
      reason: /^Bad XCCOS: DOCTYPE not allowed$/,
    },
    {
      name: 'not an envelope',
      body: '<html/>',
      status: 400,
      reason: /^Bad XCCOS: root element is not xccos$/,
    },
    {
      name: 'wrong Content-Type',
      body: REQURI(1),
      type: 'application/sdp',
      status: 415,
      reason: /^Unsupported Media Type$/,
    },
    {
      name: 'missing Content-Type',
      body: REQURI(1),
      type: null,
      status: 400,
      reason: /^Missing Content-Type$/,
    },
    {
      name: 'compressed body',
      body: REQURI(1),
      extra: 'Content-Encoding: gzip\r\n',
      status: 415,
      reason: /^Unsupported Media Type$/,
    },
    {
      name: 'huge body',
      body: `<xccos envid="1">${' '.repeat(20_000)}</xccos>`,
      status: 413,
      reason: /^Request Entity Too Large$/,
    },
  ];
  for (const b of bad) {
    it(`refuses ${b.name} with ${b.status}, logs it and sends no rpl`, () => {
      const { c } = dialog(`bad-${b.name.replace(/ /g, '-')}`);
      c.inDialog('ACK');
      c.inDialog('INFO', {
        body: b.body.toString(),
        ...(b.type === undefined ? {} : { type: b.type }),
        ...(b.extra === undefined ? {} : { extra: b.extra }),
      });
      const sent = link.take();
      expect(sent).toHaveLength(1);
      const r = asResponse(sent[0]!);
      expect(r.status).toBe(b.status);
      expect(r.reason).toMatch(b.reason);
      if (b.status === 415 && b.type !== undefined)
        expect(r.header('accept')).toBe('text/plain, application/xml, text/xml');
      expect(lines.at(-1)).toMatchObject({
        msg: 'decision',
        outcome: 'xccos-refused',
        level: 40,
        status: b.status,
      });
      expect(lines.at(-1)!.reason).toEqual(expect.any(String));
      expect(lookupOf(router).stats.handouts).toBe(0);
      // The dialog survives a bad INFO: a good one still works.
      c.inDialog('INFO', { body: REQURI(2) });
      expect(link.take()).toHaveLength(2);
    });
  }
});

describe('RFC 4028 session timers on the lookup dialog', () => {
  it('honours a client that asks: its interval, refresher=uac, Require: timer, BYE before expiry', () => {
    const { c, ok } = dialog(
      'se-1',
      'ocschat',
      'Supported: timer\r\nSession-Expires: 600\r\nRequire: timer\r\n',
    );
    expect(ok.status).toBe(200);
    expect(ok.header('session-expires')).toBe('600;refresher=uac');
    expect(ok.header('require')).toBe('timer');
    c.inDialog('ACK');
    start({ idleTimeoutMs: 3_600_000 });
    const d = dialog('se-2', 'ocschat', 'Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n');
    d.c.inDialog('ACK');
    // RFC 4028 §10: BYE at the session expiration less min(32 s, a third of the interval).
    clock.advance(568_000 - 1);
    expect(link.take()).toHaveLength(0);
    // A refresh (UPDATE) restarts the interval.
    d.c.inDialog('UPDATE', { extra: 'Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n' });
    const upd = asResponse(link.take()[0]!);
    expect(upd.status).toBe(200);
    expect(upd.header('session-expires')).toBe('600;refresher=uac');
    clock.advance(568_000 - 1);
    expect(link.take()).toHaveLength(0);
    clock.advance(1);
    expect(asRequest(link.take()[0]!).method).toBe('BYE');
  });

  it('answers 422 with Min-SE to an interval under 90 s from a client that supports timers', () => {
    const c = new Client('se-422');
    c.invite('Supported: timer\r\nSession-Expires: 30\r\n');
    const r = asResponse(link.take()[0]!);
    expect(r.status).toBe(422);
    expect(r.header('min-se')).toBe('90');
    expect(lookupOf(router).size).toBe(0);
  });

  it('raises a too-short interval from a client without timer support, and never goes under Min-SE', () => {
    expect(dialog('se-low', 'ocschat', 'Session-Expires: 30\r\n').ok.header('session-expires')).toBe(
      '90;refresher=uas',
    );
    expect(
      dialog('se-min', 'ocschat', 'Supported: timer\r\nSession-Expires: 3600\r\nMin-SE: 2000\r\n').ok.header(
        'session-expires',
      ),
    ).toBe('2000;refresher=uac');
  });

  it('keeps the session interval in force when a refresh is refused with 422', () => {
    const { c } = dialog('se-keep', 'ocschat', 'Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n');
    c.inDialog('ACK');
    c.inDialog('UPDATE', { extra: 'Supported: timer\r\nSession-Expires: 30\r\n' });
    expect(asResponse(link.take()[0]!).status).toBe(422);
    // A request after the refused refresh re-arms the 90 s interval's deadline (60 s), not the idle
    // timeout (120 s): the refused refresh changed nothing.
    c.inDialog('INFO');
    expect(asResponse(link.take()[0]!).status).toBe(200);
    clock.advance(60_000 - 1);
    expect(link.take()).toHaveLength(0);
    clock.advance(1);
    expect(asRequest(link.take()[0]!).method).toBe('BYE');
  });

  it('refuses a malformed Session-Expires with 400, and 420 for extensions other than timer', () => {
    const c = new Client('se-bad');
    c.invite('Session-Expires: soon\r\n');
    expect(asResponse(link.take()[0]!).status).toBe(400);
    const d = new Client('req-100rel');
    d.invite('Require: timer, 100rel\r\n');
    const r = asResponse(link.take()[0]!);
    expect(r.status).toBe(420);
    expect(r.header('unsupported')).toBe('100rel');
  });
});

describe('bounded memory', () => {
  it('leaves nothing behind after many abandoned dialogs (never ACKed, or ACKed and left)', () => {
    // All 500 come from one address: the budget of un-ACKed 200s per source is lifted for this one.
    start({ idleTimeoutMs: 60_000, maxUnackedPerSource: 1000 });
    for (let i = 0; i < 500; i++) {
      const c = new Client(`abandon-${i}`);
      c.invite();
      if (i % 2 === 0) {
        c.accept(asResponse(link.take()[0]!));
        c.inDialog('ACK');
        c.inDialog('INFO', { body: REQURI(i) });
      }
    }
    link.take();
    expect(lookupOf(router).size).toBe(500);
    // 64*T1 ends the un-ACKed ones, the idle timeout the others; our BYEs and INFOs then time out
    // (Timer F) unanswered, and the INFO transactions end their dialogs.
    clock.advance(200_000);
    expect(lookupOf(router).size).toBe(0);
    expect(lookupOf(router).stats.dialogs).toBe(0);
    expect(clientTxns.size).toBe(0);
    expect(router.transactions.size).toBe(0);
    expect(clock.active).toBe(0);
  });

  it('answers 503 with Retry-After beyond maxDialogs', () => {
    start({ maxDialogs: 2 });
    dialog('cap-1');
    dialog('cap-2');
    const c = new Client('cap-3');
    c.invite();
    const r = asResponse(link.take()[0]!);
    expect(r.status).toBe(503);
    expect(r.header('retry-after')).toBe('30');
  });
});
