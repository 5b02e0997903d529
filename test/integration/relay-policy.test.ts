// The forwarding policy over real sockets (issue 18, findings 1 and 2): the service is no open relay
// (a Route naming it does not make it forward to whatever the Request-URI names, nor connect there,
// and a closed port looks like an open one), responses that match no transaction are never relayed
// (not for a source the policy drops, not into another client's connection, not round in a loop),
// 2xx retransmissions still reach the caller through the Accepted transactions (RFC 6026), and a
// Record-Route of ours only works when its signature verifies and the request goes to the other
// party of the dialog it was made for.

import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { startTestService, NO_DNS, type TestService } from '../helpers/service.js';
import { startPeer, type SipPeer } from '../helpers/sip-peer.js';
import type { SipRequest } from '../../src/sip/message.js';

let svc: TestService | undefined;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await svc?.stop();
  svc = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const status = (m: string | undefined): number => Number((m ?? '').slice(8, 11));

function endpoints(memberPort: number): string {
  return `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${memberPort};transport=udp
`;
}

async function start(
  memberPort: number,
  opts: { recordRoute?: boolean; sip?: string } = {},
): Promise<TestService> {
  svc = await startTestService({
    endpoints: endpoints(memberPort),
    sip: `sip:\n  t1: 100\n${opts.sip ?? ''}`,
    proxy: { dns: NO_DNS, probe: false, ...(opts.recordRoute === true ? { recordRoute: true } : {}) },
  });
  return svc;
}

/** A pool member that accepts every INVITE and answers everything else 200. */
async function member(
  onInvite?: (req: SipRequest, answer: (to: SipRequest, status: number) => void) => void,
): Promise<SipPeer> {
  const m = await startPeer('udp', (req, answer) => {
    if (req.method === 'ACK') return [];
    if (req.method === 'INVITE') onInvite?.(req, answer);
    return [{ status: 200 }];
  });
  closers.push(() => m.close());
  return m;
}

/** A UDP socket on a loopback address that keeps what it receives. */
async function udp(address = '127.0.0.1'): Promise<{
  readonly port: number;
  readonly got: string[];
  send(text: string, port: number): void;
  next(pred: (m: string) => boolean, ms: number): Promise<string | undefined>;
}> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, address, r));
  const got: string[] = [];
  const waiters: (() => void)[] = [];
  sock.on('message', (m) => {
    got.push(m.toString('latin1'));
    for (const w of waiters.splice(0)) w();
  });
  closers.push(() => new Promise<void>((r) => sock.close(() => r())));
  return {
    port: sock.address().port,
    got,
    send: (text, port) => sock.send(Buffer.from(text, 'latin1'), port, '127.0.0.1'),
    async next(pred, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = got.find(pred);
        if (hit !== undefined) return hit;
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(left)]);
      }
    },
  };
}

/** A TCP server on loopback that counts the connections made to it (the would-be victim). */
async function tcpVictim(): Promise<{ readonly port: number; connections: () => number }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, connections: () => n };
}

/** A port nothing listens on (bound, then let go). */
async function closedPort(): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  await new Promise<void>((r) => sock.close(() => r()));
  return port;
}

function request(
  method: string,
  ruri: string,
  opts: { fromPort: number; callId: string; route?: string; toTag?: string; cseq?: number; fromTag?: string },
): string {
  return (
    `${method} ${ruri} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP 127.0.0.1:${opts.fromPort};rport;branch=z9hG4bK-${opts.callId}-${method}-${opts.cseq ?? 1}\r\n` +
    (opts.route === undefined ? '' : `Route: ${opts.route}\r\n`) +
    `Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=${opts.fromTag ?? 'c1'}\r\n` +
    `To: <sip:ocschat@contoso.com>${opts.toTag === undefined ? '' : `;tag=${opts.toTag}`}\r\n` +
    `Call-ID: ${opts.callId}\r\nCSeq: ${opts.cseq ?? 1} ${method}\r\n` +
    `Contact: <sip:legacy@127.0.0.1:${opts.fromPort}>\r\n` +
    (method === 'MESSAGE'
      ? 'Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi'
      : 'Content-Length: 0\r\n\r\n')
  );
}

const isFinal = (m: string): boolean => /^SIP\/2\.0 [2-6]\d\d /.test(m);

describe('finding 1: no open relay through a Route naming the service', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`INVITE, MESSAGE and ACK with our Route and a non-member Request-URI (${transport}) never reach it: 403, ACK dropped, no connection`, async () => {
      const m = await member();
      const s = await start(m.port);
      const svcPort = s.port('udp');
      const victimUdp = await udp();
      const victimTcp = await tcpVictim();
      const victimPort = transport === 'udp' ? victimUdp.port : victimTcp.port;
      const client = await udp();
      const route = `<sip:127.0.0.1:${svcPort};lr>`;
      const ruri = `sip:victim@127.0.0.1:${victimPort}${transport === 'tcp' ? ';transport=tcp' : ''}`;
      const answers: number[] = [];
      let n = 0;
      for (const method of ['INVITE', 'MESSAGE']) {
        for (const toTag of [undefined, 'x1']) {
          const callId = `relay-${transport}-${n++}`;
          client.send(
            request(method, ruri, { fromPort: client.port, callId, route, ...(toTag ? { toTag } : {}) }),
            svcPort,
          );
          const answer = await client.next((t) => isFinal(t) && t.includes(`Call-ID: ${callId}\r\n`), 5000);
          answers.push(status(answer));
        }
      }
      client.send(
        request('ACK', ruri, { fromPort: client.port, callId: `relay-${transport}-ack`, route, toTag: 'x1' }),
        svcPort,
      );
      await sleep(300);
      expect(answers).toEqual([403, 403, 403, 403]);
      expect(victimUdp.got).toEqual([]);
      expect(victimTcp.connections()).toBe(0);
      expect(m.received).toHaveLength(0);
      // The ACK was counted as dropped, not forwarded.
      expect(s.server.router.stats.dropped).toBeGreaterThanOrEqual(1);
    });
  }

  it('a closed port and an open one get the same answer, before anything is sent or connected', async () => {
    const m = await member();
    const s = await start(m.port);
    const svcPort = s.port('udp');
    const open = await tcpVictim();
    const closed = await closedPort();
    const client = await udp();
    const route = `<sip:127.0.0.1:${svcPort};lr>`;
    const ask = async (port: number, callId: string): Promise<{ line: string; ms: number }> => {
      const t0 = performance.now();
      client.send(
        request('INVITE', `sip:victim@127.0.0.1:${port};transport=tcp`, {
          fromPort: client.port,
          callId,
          route,
        }),
        svcPort,
      );
      const answer = await client.next((t) => isFinal(t) && t.includes(`Call-ID: ${callId}\r\n`), 5000);
      return { line: (answer ?? '').split('\r\n')[0]!, ms: performance.now() - t0 };
    };
    const a = await ask(open.port, 'scan-open');
    const b = await ask(closed, 'scan-closed');
    expect(a.line).toBe('SIP/2.0 403 Forbidden');
    expect(b.line).toBe(a.line);
    // Both answered at once (no connect attempted, no timer waited for).
    expect(a.ms).toBeLessThan(1500);
    expect(b.ms).toBeLessThan(1500);
    expect(open.connections()).toBe(0);
  });

  it('a Front End routing the INVITE for an endpoint to us (our Route, endpoint Request-URI) still reaches the pool', async () => {
    const m = await member();
    const s = await start(m.port);
    const client = await udp();
    const route = `<sip:127.0.0.1:${s.port('udp')};lr>`;
    client.send(
      request('INVITE', 'sip:ocschat@contoso.com', { fromPort: client.port, callId: 'fe-1', route }),
      s.port('udp'),
    );
    expect(status(await client.next(isFinal, 5000))).toBe(200);
    expect(m.received.map((r) => r.method)).toEqual(['INVITE']);
    expect(m.received[0]!.header('route')).toBeUndefined();
  });
});

/** A response that matches nothing of ours: our Via on top, then `below`. */
function strayResponse(svcPort: number, below: string, status = 200, callId = 'stray'): string {
  return (
    `SIP/2.0 ${status} OK\r\nVia: SIP/2.0/UDP 127.0.0.1:${svcPort};branch=z9hG4bK-not-ours-${callId}\r\n${below}` +
    `From: <sip:a@contoso.com>;tag=1\r\nTo: <sip:b@contoso.com>;tag=2\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`
  );
}

describe('finding 2: responses that match no transaction are never relayed', () => {
  it('50 stray responses from a source the access policy drops (rate limit 5/s) reach nobody', async () => {
    const m = await member();
    const s = await start(m.port, {
      sip: 'access:\n  action: drop\n  allow:\n    - networks: [10.0.0.0/8]\nlimits:\n  rate:\n    requests: 5\n    window: 1000\n    ban: 60000\n',
    });
    const victim = await udp();
    const attacker = await udp();
    for (let i = 0; i < 50; i++)
      attacker.send(
        strayResponse(
          s.port('udp'),
          `Via: SIP/2.0/UDP 127.0.0.1:${victim.port};branch=z9hG4bK-v${i}\r\n`,
          200,
          `stray-${i}`,
        ),
        s.port('udp'),
      );
    await sleep(400);
    expect(victim.got).toHaveLength(0);
    expect(s.server.router.stats.strayResponses).toBe(50);
    expect(await s.server.metrics.text()).toMatch(/^pchat_stray_responses_total 50$/m);
  });

  it("a forged 200 OK aimed at another client's TCP connection is not delivered", async () => {
    const m = await member();
    const s = await start(m.port);
    // The victim: a client holding a TCP connection to the service.
    const got: string[] = [];
    const conn = net.connect(s.port('tcp'), '127.0.0.1');
    closers.push(() => void conn.destroy());
    conn.on('data', (d: Buffer) => got.push(d.toString('latin1')));
    await new Promise<void>((r) => conn.once('connect', () => r()));
    const victimPort = conn.localPort!;
    conn.write(
      `OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:${victimPort};branch=z9hG4bK-opt1\r\nMax-Forwards: 70\r\n` +
        `From: <sip:v@contoso.com>;tag=v\r\nTo: <sip:127.0.0.1>\r\nCall-ID: victim-opt\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
    );
    for (let i = 0; i < 40 && got.length === 0; i++) await sleep(25);
    expect(got.join('')).toMatch(/^SIP\/2\.0 200 /);
    got.length = 0;
    const attacker = await udp();
    attacker.send(
      strayResponse(
        s.port('udp'),
        `Via: SIP/2.0/TCP 127.0.0.1:${victimPort};branch=z9hG4bK-forged\r\n`,
        200,
        'forged',
      ),
      s.port('udp'),
    );
    await sleep(400);
    expect(got).toEqual([]);
    expect(s.server.router.stats.strayResponses).toBe(1);
  });

  it('a response whose Vias name the service does not loop: received once, sent nowhere', async () => {
    const m = await member();
    const s = await start(m.port);
    const victim = await udp();
    // Count every message the router handles (the instance's own receive, patched in place).
    const router = s.server.router as unknown as { receive: (d: Buffer, ...rest: unknown[]) => void };
    const original = router.receive.bind(router);
    let responsesSeen = 0;
    router.receive = (d: Buffer, ...rest: unknown[]) => {
      if (d.toString('latin1', 0, 4) === 'SIP/') responsesSeen++;
      original(d, ...rest);
    };
    const ours = `Via: SIP/2.0/UDP 127.0.0.1:${s.port('udp')};branch=z9hG4bK-loop\r\n`;
    const attacker = await udp();
    attacker.send(
      strayResponse(
        s.port('udp'),
        ours.repeat(100) + `Via: SIP/2.0/UDP 127.0.0.1:${victim.port};branch=z9hG4bK-end\r\n`,
        200,
        'loop',
      ),
      s.port('udp'),
    );
    await sleep(400);
    expect(responsesSeen).toBe(1);
    expect(victim.got).toHaveLength(0);
  });

  it('a response matching a live transaction but sent from a source the access policy refuses is dropped', async () => {
    let branch: string | undefined;
    let finish: (() => void) | undefined;
    // The member rings, and answers only when the test says so.
    const m = await startPeer('udp', (req, answer) => {
      if (req.method !== 'INVITE') return [];
      branch = req.topVia.branch;
      finish = () => answer(req, 200);
      return [{ status: 180 }];
    });
    closers.push(() => m.close());
    const s = await start(m.port, {
      sip: 'access:\n  action: drop\n  allow:\n    - networks: [127.0.0.1/32]\n',
    });
    const client = await udp();
    client.send(
      request('INVITE', 'sip:ocschat@contoso.com', { fromPort: client.port, callId: 'forge-1' }),
      s.port('udp'),
    );
    expect(await client.next((t) => t.startsWith('SIP/2.0 180 '), 5000)).toBeDefined();
    // A 200 forged for that very transaction (its branch leaked) from an address the policy refuses.
    const attacker = await udp('127.0.0.3');
    attacker.send(
      `SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:${s.port('udp')};branch=${branch!}\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${client.port};rport=${client.port};received=127.0.0.1;branch=z9hG4bK-forge-1-INVITE-1\r\n` +
        `From: <sip:legacy@contoso.com>;tag=c1\r\nTo: <sip:ocschat@contoso.com>;tag=evil\r\nCall-ID: forge-1\r\n` +
        `CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
      s.port('udp'),
    );
    await sleep(300);
    expect(client.got.filter((t) => t.startsWith('SIP/2.0 200 '))).toEqual([]);
    expect(s.server.router.stats.responsesRefused).toBe(1);
    // The member's own answer, from where the INVITE went, still goes through.
    finish!();
    const ok = await client.next((t) => t.startsWith('SIP/2.0 200 '), 5000);
    expect(ok).toMatch(/To: <sip:ocschat@contoso\.com>;tag=peer1/);
  });

  it("a pool member's answers are never rate limited away (limit 5/s, 12 responses to one INVITE)", async () => {
    const m = await startPeer('udp', (req) =>
      req.method === 'INVITE'
        ? [...Array.from({ length: 11 }, () => ({ status: 180 })), { status: 200 }]
        : [],
    );
    closers.push(() => m.close());
    const s = await start(m.port, {
      sip: 'limits:\n  rate:\n    requests: 5\n    window: 1000\n    ban: 60000\n',
    });
    const client = await udp();
    client.send(
      request('INVITE', 'sip:ocschat@contoso.com', { fromPort: client.port, callId: 'rate-1' }),
      s.port('udp'),
    );
    expect(await client.next((t) => t.startsWith('SIP/2.0 200 '), 5000)).toBeDefined();
    expect(client.got.filter((t) => t.startsWith('SIP/2.0 180 '))).toHaveLength(11);
    expect(s.server.guard.stats.rateLimited).toBe(0);
  });

  it('RFC 6026: 2xx retransmitted by the member after the first one still reach a TCP caller, through the transactions', async () => {
    let resend: (() => void) | undefined;
    const m = await member((req, answer) => {
      // The member's 2xx is sent by the peer helper; two retransmissions follow, as a UAS does until the ACK.
      resend = () => answer(req, 200);
    });
    const s = await start(m.port);
    const got: string[] = [];
    const conn = net.connect(s.port('tcp'), '127.0.0.1');
    closers.push(() => void conn.destroy());
    conn.on('data', (d: Buffer) => got.push(d.toString('latin1')));
    await new Promise<void>((r) => conn.once('connect', () => r()));
    // A TCP client's Via names its listening port, not the ephemeral one of this connection.
    conn.write(
      `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-acc1\r\nMax-Forwards: 70\r\n` +
        `From: <sip:legacy@contoso.com>;tag=c1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: accepted-1\r\nCSeq: 1 INVITE\r\n` +
        `Contact: <sip:legacy@127.0.0.1:5999;transport=tcp>\r\nContent-Length: 0\r\n\r\n`,
    );
    const count200 = (): number => (got.join('').match(/SIP\/2\.0 200 /g) ?? []).length;
    for (let i = 0; i < 80 && count200() < 1; i++) await sleep(25);
    expect(count200()).toBe(1);
    resend!();
    await sleep(100);
    resend!();
    for (let i = 0; i < 80 && count200() < 3; i++) await sleep(25);
    expect(count200()).toBe(3);
    expect(s.server.router.stats.strayResponses).toBe(0);
  });
});

describe('signed Record-Route: in-dialog requests only along a valid signature, to the other party', () => {
  /** A dialog set up through the service with Record-Route on; what each side holds of it. */
  async function dialog(callId: string) {
    const m = await member();
    const s = await start(m.port, { recordRoute: true });
    const client = await udp();
    client.send(
      request('INVITE', 'sip:ocschat@contoso.com', { fromPort: client.port, callId }),
      s.port('udp'),
    );
    const ok = await client.next(
      (t) => t.startsWith('SIP/2.0 200 ') && t.includes(`Call-ID: ${callId}\r\n`),
      2000,
    );
    expect(ok).toBeDefined();
    const rr = /\r\nRecord-Route: (<[^>]+>)\r\n/i.exec(ok!)?.[1];
    expect(rr).toBeDefined();
    const invite = m.received[0]!;
    const memberRr = invite.header('record-route');
    expect(memberRr).toBeDefined();
    return { m, s, client, rr: rr!, memberRr: memberRr!, memberUri: `sip:peer@127.0.0.1:${m.port}` };
  }

  const bye = (ruri: string, route: string, callId: string, fromPort: number, cseq = 2): string =>
    request('BYE', ruri, { fromPort, callId, route, toTag: 'peer1', cseq });

  it('our Record-Route is signed: form 1 (no To tag) towards the member, form 2 in the 2xx to the caller', async () => {
    const d = await dialog('rr-forms');
    expect(d.memberRr).toMatch(
      /^<sip:127\.0\.0\.1:\d+;transport=udp;lr;pcu=127\.0\.0\.1;pcd=127\.0\.0\.1;pcsig=1[\w-]{22}>$/,
    );
    expect(d.rr).toMatch(
      /^<sip:127\.0\.0\.1:\d+;transport=udp;lr;pcu=127\.0\.0\.1;pcd=127\.0\.0\.1;pcsig=2[\w-]{22}>$/,
    );
  });

  it('a BYE along the signed Route from the 2xx reaches the member and is answered', async () => {
    const d = await dialog('rr-ok');
    d.client.send(bye(d.memberUri, d.rr, 'rr-ok', d.client.port), d.s.port('udp'));
    const answer = await d.client.next((t) => isFinal(t) && t.includes('CSeq: 2 BYE'), 5000);
    expect(status(answer)).toBe(200);
    expect(d.m.received.map((r) => r.method)).toContain('BYE');
    expect(d.m.received.find((r) => r.method === 'BYE')!.header('route')).toBeUndefined();
  });

  it("the member's BYE along the Route from the INVITE (form 1) reaches the caller", async () => {
    const d = await dialog('rr-up');
    // The member sends from its own address (another port of it: parties are compared by address).
    const memberSide = await udp();
    const text =
      `BYE sip:legacy@127.0.0.1:${d.client.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${memberSide.port};rport;branch=z9hG4bK-up-bye\r\n` +
      `Route: ${d.memberRr}\r\nMax-Forwards: 70\r\nFrom: <sip:ocschat@contoso.com>;tag=peer1\r\nTo: <sip:legacy@contoso.com>;tag=c1\r\n` +
      `Call-ID: rr-up\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n`;
    memberSide.send(text, d.s.port('udp'));
    expect(await d.client.next((t) => t.startsWith('BYE '), 5000)).toBeDefined();
  });

  it('an ACK along a valid signed Route reaches the member only from the other party, not from a third host', async () => {
    const d = await dialog('rr-ack');
    const ack = (fromPort: number, branch: string): string =>
      request('ACK', d.memberUri, { fromPort, callId: 'rr-ack', route: d.rr, toTag: 'peer1' }).replace(
        /branch=[^;\r]+/,
        `branch=${branch}`,
      );
    const third = await udp('127.0.0.3');
    third.send(ack(third.port, 'z9hG4bK-ack-third'), d.s.port('udp'));
    await sleep(300);
    expect(d.m.received.map((r) => r.method)).not.toContain('ACK');
    d.client.send(ack(d.client.port, 'z9hG4bK-ack-caller'), d.s.port('udp'));
    for (let i = 0; i < 80 && !d.m.received.some((r) => r.method === 'ACK'); i++) await sleep(25);
    expect(d.m.received.filter((r) => r.method === 'ACK')).toHaveLength(1);
  });

  it('a tampered signature gets 403 and nothing reaches the member', async () => {
    const d = await dialog('rr-bad');
    // One character of the signature changed (or, on a Route without one, a made-up one added).
    const tampered = /;pcsig=/.test(d.rr)
      ? d.rr.replace(/;pcsig=2(.)/, (_all, c: string) => `;pcsig=2${c === 'A' ? 'B' : 'A'}`)
      : d.rr.replace(/>$/, ';pcsig=2AAAAAAAAAAAAAAAAAAAAAA>');
    expect(tampered).not.toBe(d.rr);
    d.client.send(bye(d.memberUri, tampered, 'rr-bad', d.client.port), d.s.port('udp'));
    const answer = await d.client.next((t) => isFinal(t) && t.includes('CSeq: 2 BYE'), 5000);
    expect(status(answer)).toBe(403);
    await sleep(200);
    expect(d.m.received.map((r) => r.method)).not.toContain('BYE');
  });

  it('a valid signature with a Request-URI naming a third host gets 403 and nothing reaches it', async () => {
    const d = await dialog('rr-third');
    const third = await udp('127.0.0.3');
    d.client.send(
      bye(`sip:victim@127.0.0.3:${third.port}`, d.rr, 'rr-third', d.client.port),
      d.s.port('udp'),
    );
    const answer = await d.client.next((t) => isFinal(t) && t.includes('CSeq: 2 BYE'), 5000);
    expect(status(answer)).toBe(403);
    // Nor from a third host towards a party: the sender must be the other party.
    const sender = await udp('127.0.0.3');
    sender.send(bye(d.memberUri, d.rr, 'rr-third', sender.port, 3), d.s.port('udp'));
    expect(status(await sender.next(isFinal, 5000))).toBe(403);
    await sleep(200);
    expect(third.got).toHaveLength(0);
    expect(d.m.received.map((r) => r.method)).not.toContain('BYE');
  });
});
