// Lookup mode end to end over real sockets on 127.0.0.1: SIPp as the legacy Group Chat client
// performing the exchange of docs/protocol/xccos.md over UDP and TCP, round-robin hand-outs,
// dialogs the client abandons, and raw clients sending bad bodies and retransmissions.

import { lookupOf } from '../helpers/modes.js';
import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestService, NO_DNS, type TestService } from '../helpers/service.js';
import { runSipp, requireSipp } from '../helpers/sipp.js';
import { startServer } from '../../src/server/server.js';
import { parseMessage } from '../../src/sip/parser.js';
import { StreamFramer } from '../../src/sip/framer.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';
import type { LookupSettings } from '../../src/modes/lookup/lookup-service.js';

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
  - sipAddress: sip:rr@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
    lookupUris:
      - sip:chan1@pc1.contoso.com
      - sip:chan2@pc2.contoso.com
      - sip:chan3@pc3.contoso.com
`;

let svc: TestService | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** The service with lookup settings of the test's choosing (startTestService passes none). */
async function start(lookup: Partial<LookupSettings> = {}): Promise<TestService> {
  const base = await startTestService({ endpoints: ENDPOINTS, sip: 'sip:\n  t1: 100\n' });
  if (Object.keys(lookup).length === 0) {
    svc = base;
    return base;
  }
  // Same folder and log capture, restarted with the settings (the ports are new: port 0).
  await base.server.close();
  const server = await startServer({
    configDir: base.dir,
    logger: base.server.logger,
    watch: false,
    proxy: { probe: false, dns: NO_DNS },
    lookup,
  });
  svc = {
    ...base,
    server,
    port(transport) {
      const a = server.addresses().find((x) => x.transport === transport && x.family === 4);
      if (a === undefined) throw new Error(`no ${transport} listener`);
      return a.port;
    },
    async stop() {
      await server.close();
      await rm(base.dir, { recursive: true, force: true });
    },
  };
  return svc;
}

/** SIPp's <log> lines of one run. */
async function sippLog(dir: string | undefined): Promise<string[]> {
  if (dir === undefined) throw new Error('no artifacts');
  dirs.push(dir);
  const text = await readFile(join(dir, 'lookup.log'), 'latin1').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('lookup '));
}

describe('lookup mode with SIPp as the legacy client', () => {
  requireSipp();

  for (const transport of ['udp', 'tcp'] as const) {
    it(`INVITE/200/ACK/INFO cmd:requri/200/INFO rpl:requri/200/BYE over ${transport.toUpperCase()}`, async () => {
      const s = await start();
      const run = await runSipp({
        scenario: 'lookup-uac',
        target: { host: '127.0.0.1', port: s.port(transport) },
        transport,
        calls: 2,
        rate: 10,
        vars: { service: 'ocschat', domain: 'contoso.com' },
        timeoutMs: 20_000,
        keepArtifacts: true,
        extraArgs: ['-trace_logs', '-log_file', 'lookup.log'],
      });
      const log = await sippLog(run.artifactsDir);
      expect(run.errors, run.stdout.slice(-2000)).toBe('');
      expect(run.successful).toBe(2);
      expect(run.failed).toBe(0);
      // What the client saw: the lookup URI as the 200's To and as the From of the service's INFO,
      // the channel Session-Expires, and the pool's URI in <uib>.
      expect(log).toHaveLength(2);
      for (const l of log)
        expect(l).toMatch(
          /^lookup \S+ to=sip:ocschat@contoso\.com from=sip:ocschat@contoso\.com se=1800 uri=sip:ocschat@pcpool\.contoso\.com$/,
        );
      const decisions = s.lines.filter((l) => l.msg === 'decision');
      expect(
        decisions.map((l) => `${String(l.method)} ${String(l.status)} ${String(l.outcome)}`).sort(),
      ).toEqual(
        [
          ...Array<string>(2).fill('BYE 200 lookup-bye'),
          ...Array<string>(2).fill('INFO 200 lookup-handout'),
          ...Array<string>(2).fill('INVITE 200 lookup-dialog'),
        ].sort(),
      );
      expect(decisions.find((l) => l.outcome === 'lookup-handout')).toMatchObject({
        target: 'sip:ocschat@pcpool.contoso.com',
        endpoint: 'sip:ocschat@contoso.com',
        mode: 'lookup',
      });
      expect(lookupOf(s.server.router).size).toBe(0);
      // Counted: the hand-outs show in the request counter by outcome.
      expect(await s.server.metrics.text()).toMatch(
        /pchat_requests_total\{method="INFO",endpoint="sip:ocschat@contoso\.com",mode="lookup",outcome="lookup-handout",status="200"\} 2/,
      );
    });
  }

  it('hands out the configured URIs round-robin, one per client', async () => {
    const s = await start();
    const run = await runSipp({
      scenario: 'lookup-uac',
      target: { host: '127.0.0.1', port: s.port('udp') },
      transport: 'udp',
      calls: 6,
      rate: 5,
      vars: { service: 'rr', domain: 'contoso.com' },
      timeoutMs: 20_000,
      keepArtifacts: true,
      extraArgs: ['-trace_logs', '-log_file', 'lookup.log', '-l', '1'],
    });
    const log = await sippLog(run.artifactsDir);
    expect(run.errors, run.stdout.slice(-2000)).toBe('');
    expect(run.successful).toBe(6);
    // One call at a time (-l 1), so the order the client saw is the order handed out.
    expect(log.map((l) => /uri=(\S+)$/.exec(l)?.[1])).toEqual([
      'sip:chan1@pc1.contoso.com',
      'sip:chan2@pc2.contoso.com',
      'sip:chan3@pc3.contoso.com',
      'sip:chan1@pc1.contoso.com',
      'sip:chan2@pc2.contoso.com',
      'sip:chan3@pc3.contoso.com',
    ]);
  });

  it('ends a dialog the client abandons after the ACK with BYE, and frees it', async () => {
    const s = await start({ idleTimeoutMs: 1000 });
    const run = await runSipp({
      scenario: 'lookup-abandon-uac',
      target: { host: '127.0.0.1', port: s.port('udp') },
      transport: 'udp',
      calls: 3,
      vars: { service: 'ocschat', domain: 'contoso.com' },
      timeoutMs: 15_000,
    });
    expect(run.errors, run.stdout.slice(-2000)).toBe('');
    expect(run.successful).toBe(3);
    expect(lookupOf(s.server.router).size).toBe(0);
    expect(lookupOf(s.server.router).stats).toMatchObject({ expired: 3, byesSent: 3, dialogs: 0 });
  });

  it('answers malformed XML in the INFO with 400, and the dialog still ends with BYE', async () => {
    const s = await start();
    const run = await runSipp({
      scenario: 'lookup-badxml-uac',
      target: { host: '127.0.0.1', port: s.port('tcp') },
      transport: 'tcp',
      calls: 1,
      vars: { service: 'ocschat', domain: 'contoso.com' },
      timeoutMs: 15_000,
    });
    expect(run.errors, run.stdout.slice(-2000)).toBe('');
    expect(run.successful).toBe(1);
    expect(s.lines.find((l) => l.outcome === 'xccos-refused')).toMatchObject({
      level: 40,
      status: 400,
      method: 'INFO',
      reason: expect.stringMatching(/^PCHAT_ERR_XCCOS_MALFORMED_XML: malformed XML: /) as unknown,
    });
  });
});

/** A raw SIP client on a real socket: sends text, collects every message that comes back. */
interface Raw {
  readonly port: number;
  readonly got: SipMessage[];
  send(text: string): void;
  waitFor(n: number, ms?: number): Promise<SipMessage[]>;
  close(): void;
}

async function rawClient(transport: 'udp' | 'tcp', servicePort: number): Promise<Raw> {
  const got: SipMessage[] = [];
  const push = (b: Buffer): void => {
    const r = parseMessage(b, { stream: transport === 'tcp' });
    if (r.ok) got.push(r.message);
  };
  let send: (text: string) => void;
  let close: () => void;
  let port: number;
  if (transport === 'udp') {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    sock.on('message', push);
    port = sock.address().port;
    send = (t) => sock.send(Buffer.from(t, 'latin1'), servicePort, '127.0.0.1');
    close = () => sock.close();
  } else {
    const sock = net.connect(servicePort, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', r));
    const framer = new StreamFramer(1 << 20);
    sock.on('data', (c: Buffer) => {
      for (const ev of framer.push(c)) if (ev.type === 'message') push(ev.data);
    });
    sock.on('error', () => undefined);
    port = sock.localPort ?? 0;
    send = (t) => sock.write(Buffer.from(t, 'latin1'));
    close = () => sock.destroy();
  }
  return {
    port,
    got,
    send: (t) => send(t),
    async waitFor(n, ms = 3000) {
      const end = Date.now() + ms;
      while (got.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      return got;
    },
    close: () => close(),
  };
}

function request(
  transport: 'udp' | 'tcp',
  port: number,
  method: string,
  uri: string,
  opts: {
    callId: string;
    cseq: number;
    toTag?: string;
    type?: string;
    body?: string | Buffer;
    extra?: string;
  },
): string {
  const body = opts.body === undefined ? '' : opts.body.toString('latin1');
  return (
    `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/${transport.toUpperCase()} 127.0.0.1:${port};branch=z9hG4bK-${opts.callId}-${opts.cseq}${method}\r\n` +
    `From: <sip:alice@contoso.com>;tag=a1;epid=e1\r\nTo: <sip:ocschat@contoso.com>${opts.toTag === undefined ? '' : `;tag=${opts.toTag}`}\r\n` +
    `Call-ID: ${opts.callId}\r\nCSeq: ${opts.cseq} ${method}\r\nMax-Forwards: 70\r\n` +
    `Contact: <sip:alice@127.0.0.1:${port};transport=${transport}>\r\n${opts.extra ?? ''}` +
    `${opts.type === undefined ? '' : `Content-Type: ${opts.type}\r\n`}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`
  );
}

const REQURI =
  '<xccos ver="1" envid="77" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>';

/** INVITE and ACK over a raw client; returns the dialog's To tag and Contact URI. */
async function establish(
  c: Raw,
  transport: 'udp' | 'tcp',
  callId: string,
): Promise<{ tag: string; contact: string }> {
  c.send(
    request(transport, c.port, 'INVITE', 'sip:ocschat@contoso.com', {
      callId,
      cseq: 1,
      type: 'application/sdp',
      body: 'v=0\r\nm=message 5061 sip null\r\n',
    }),
  );
  const [ok] = await c.waitFor(1);
  const res = ok as SipResponse;
  expect(res.status).toBe(200);
  const tag = res.toTag ?? '';
  const contact = /<([^>]+)>/.exec(res.header('contact') ?? '')?.[1] ?? '';
  c.send(request(transport, c.port, 'ACK', contact, { callId, cseq: 1, toTag: tag }));
  c.got.length = 0;
  return { tag, contact };
}

describe('lookup mode over raw sockets: retransmissions and bad input', () => {
  it('answers an INFO retransmitted over UDP with the same 200 and sends one rpl:requri', async () => {
    const s = await start();
    const c = await rawClient('udp', s.port('udp'));
    try {
      const { tag, contact } = await establish(c, 'udp', 'rtx-info');
      const info = request('udp', c.port, 'INFO', contact, {
        callId: 'rtx-info',
        cseq: 2,
        toTag: tag,
        type: 'text/plain',
        body: REQURI,
      });
      c.send(info);
      await c.waitFor(2);
      c.send(info);
      c.send(info);
      await c.waitFor(4);
      // Wait past where a second rpl would show up (the service retransmits its INFO at T1 = 100 ms
      // unless answered; answer it first so only a genuine second rpl could appear).
      const rpl = c.got.find((m): m is SipRequest => m.kind === 'request');
      expect(rpl).toBeDefined();
      const via = rpl!.header('via') ?? '';
      c.send(
        `SIP/2.0 200 OK\r\nVia: ${via}\r\nFrom: ${rpl!.header('from') ?? ''}\r\nTo: ${rpl!.header('to') ?? ''}\r\n` +
          `Call-ID: rtx-info\r\nCSeq: ${rpl!.header('cseq') ?? ''}\r\nContent-Length: 0\r\n\r\n`,
      );
      await new Promise((r) => setTimeout(r, 400));
      const responses = c.got.filter((m): m is SipResponse => m.kind === 'response');
      const requests = c.got.filter((m): m is SipRequest => m.kind === 'request');
      expect(responses).toHaveLength(3);
      expect(new Set(responses.map((r) => r.toBuffer().toString('latin1'))).size).toBe(1);
      expect(requests).toHaveLength(1);
      expect(requests[0]!.body.toString()).toContain('<commandid seqid="1" envid="77"/>');
      expect(lookupOf(s.server.router).stats.handouts).toBe(1);
    } finally {
      c.close();
    }
  });

  const cases: Array<{
    name: string;
    type?: string;
    body: string;
    extra?: string;
    status: number;
    why: RegExp;
  }> = [
    {
      name: 'wrong Content-Type',
      type: 'application/sdp',
      body: REQURI,
      status: 415,
      why: /Content-Type application\/sdp/,
    },
    {
      name: 'truncated XML',
      type: 'text/plain',
      body: REQURI.slice(0, 70),
      status: 400,
      why: /^PCHAT_ERR_XCCOS_MALFORMED_XML/,
    },
    {
      name: 'billion laughs',
      type: 'text/plain',
      body:
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
        '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><xccos envid="1">&lol2;</xccos>',
      status: 400,
      why: /^PCHAT_ERR_XCCOS_DOCTYPE/,
    },
    {
      name: 'external entity',
      type: 'application/xml',
      body: '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xccos envid="1"><cmd id="cmd:requri">&e;</cmd></xccos>',
      status: 400,
      why: /^PCHAT_ERR_XCCOS_DOCTYPE/,
    },
    {
      name: 'huge body',
      type: 'text/plain',
      body: `<xccos envid="1">${'<a/>'.repeat(6000)}</xccos>`,
      status: 413,
      why: /^body of \d+ bytes$/,
    },
  ];
  for (const transport of ['udp', 'tcp'] as const) {
    for (const k of cases) {
      it(`refuses ${k.name} over ${transport.toUpperCase()} with ${k.status}, logged, and no rpl`, async () => {
        const s = await start();
        const c = await rawClient(transport, s.port(transport));
        try {
          const { tag, contact } = await establish(c, transport, `bad-${transport}`);
          c.send(
            request(transport, c.port, 'INFO', contact, {
              callId: `bad-${transport}`,
              cseq: 2,
              toTag: tag,
              body: k.body,
              ...(k.type === undefined ? {} : { type: k.type }),
            }),
          );
          await c.waitFor(1);
          await new Promise((r) => setTimeout(r, 200));
          expect(c.got).toHaveLength(1);
          const r = c.got[0] as SipResponse;
          expect(r.status).toBe(k.status);
          const line = s.lines.find((l) => l.outcome === 'xccos-refused');
          expect(line).toMatchObject({ level: 40, status: k.status, method: 'INFO', mode: 'lookup' });
          expect(String(line!.reason)).toMatch(k.why);
          expect(lookupOf(s.server.router).stats.handouts).toBe(0);
        } finally {
          c.close();
        }
      });
    }
  }
});
