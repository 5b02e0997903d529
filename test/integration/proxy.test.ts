// Proxy mode end to end over real sockets: SIPp as the legacy client → the service → SIPp as the
// pool member, full INVITE/200/ACK/INFO/BYE dialogs over UDP and TCP, with and without Record-Route.

import { describe, it, expect, afterEach } from 'vitest';
import { startTestService, NO_DNS, type TestService } from '../helpers/service.js';
import { runSipp, requireSipp } from '../helpers/sipp.js';
import { startSippServer, type SippServer } from '../helpers/sipp-server.js';
import { startPeer } from '../helpers/sip-peer.js';
import type { ProxyOptions } from '../../src/server/proxy-setup.js';
import type { SipRequest } from '../../src/sip/message.js';

function endpoints(targets: string[], extra = ''): string {
  return `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy${extra}
pools:
  - fqdn: pcpool.contoso.com
    targets:
${targets.map((t) => `      - uri: ${t}\n`).join('')}`;
}

let svc: TestService | undefined;
const servers: SippServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.stop();
  await svc?.stop();
  svc = undefined;
});

async function start(
  targets: string[],
  opts: { recordRoute?: boolean; timerCMs?: number; probe?: ProxyOptions['probe'] } = {},
): Promise<TestService> {
  svc = await startTestService({
    endpoints: endpoints(targets),
    sip: 'sip:\n  t1: 100\n',
    proxy: {
      dns: NO_DNS,
      probe: opts.probe ?? false,
      ...(opts.recordRoute === undefined ? {} : { recordRoute: opts.recordRoute }),
      ...(opts.timerCMs === undefined ? {} : { timerCMs: opts.timerCMs }),
    },
  });
  return svc;
}

describe('proxy mode with SIPp peers', () => {
  requireSipp();

  for (const transport of ['udp', 'tcp'] as const) {
    for (const recordRoute of [false, true]) {
      it(`full dialog INVITE/200/ACK/INFO/BYE over ${transport.toUpperCase()}, Record-Route ${recordRoute ? 'on' : 'off'}`, async () => {
        const uas = await startSippServer({ scenario: 'pool-uas', transport, calls: 3, timeoutMs: 20_000 });
        servers.push(uas);
        const s = await start([`sip:127.0.0.1:${uas.port};transport=${transport}`], { recordRoute });
        const uac = await runSipp({
          scenario: 'proxy-uac',
          target: { host: '127.0.0.1', port: s.port(transport) },
          transport,
          calls: 3,
          rate: 10,
          vars: { service: 'ocschat', domain: 'contoso.com' },
          timeoutMs: 20_000,
        });
        expect(uac.errors, uac.stdout.slice(-2000)).toBe('');
        expect(uac.successful).toBe(3);
        expect(uac.failed).toBe(0);
        const server = await uas.done;
        expect(server.successful).toBe(3);
        const decisions = s.lines.filter((l) => l.msg === 'decision' && l.mode === 'proxy');
        expect(decisions).toHaveLength(3);
        expect(decisions[0]).toMatchObject({
          status: 200,
          outcome: 'proxied',
          target: `${transport}:127.0.0.1:${uas.port}`,
        });
        // INFO and BYE of each dialog came through the proxy too, answered by the pool member.
        const inDialog = s.lines.filter((l) => l.msg === 'decision' && l.mode === 'in-dialog');
        expect(inDialog.map((l) => `${String(l.method)} ${String(l.status)}`).sort()).toEqual([
          ...Array<string>(3).fill('BYE 200'),
          ...Array<string>(3).fill('INFO 200'),
        ]);
      });
    }
  }
});

describe('proxy mode: failover, CANCEL, loops and faults', () => {
  const invite = (callId: string, via: string, extra = ''): string =>
    `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: ${via}\r\nMax-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=9\r\n` +
    `To: <sip:ocschat@contoso.com>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:legacy@127.0.0.1>\r\n${extra}Content-Length: 0\r\n\r\n`;

  /** A UDP client that sends one INVITE and collects the responses until a final one. */
  async function call(port: number, callId: string, extraVia = '', viaBelow = ''): Promise<string[]> {
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const local = sock.address().port;
    const got: string[] = [];
    const final = new Promise<void>((resolve) => {
      sock.on('message', (m) => {
        const t = m.toString('latin1');
        got.push(t);
        if (!/^SIP\/2\.0 1\d\d /.test(t)) resolve();
      });
    });
    const via = `${extraVia}SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-${callId}${viaBelow}`;
    sock.send(invite(callId, via), port, '127.0.0.1');
    await Promise.race([final, new Promise((r) => setTimeout(r, 8000))]);
    sock.close();
    return got;
  }
  const status = (m: string | undefined): number => Number((m ?? '').slice(8, 11));

  /** A pool member that rings (180) until CANCELled, then answers 200 and, `ms` later, 487. */
  function startRingingMember(ms: number): ReturnType<typeof startPeer> {
    let pending: SipRequest | undefined;
    return startPeer('udp', (req, answer) => {
      if (req.method === 'INVITE') {
        pending = req;
        return [{ status: 180 }];
      }
      if (req.method === 'CANCEL') {
        if (pending) setTimeout(() => answer(pending!, 487), ms);
        return [{ status: 200 }];
      }
      return [];
    });
  }

  it('a member answering 503 is failed over to the next one, and held down afterwards', async () => {
    const bad = await startPeer('udp', () => [{ status: 503, headers: 'Retry-After: 120\r\n' }]);
    const good = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 200 }] : []));
    const s = await start([
      `sip:127.0.0.1:${bad.port};transport=udp`,
      `sip:127.0.0.1:${good.port};transport=udp`,
    ]);
    const first = await call(s.port('udp'), 'fo-1');
    expect(status(first.at(-1))).toBe(200);
    expect(bad.received.filter((r) => r.method === 'INVITE')).toHaveLength(1);
    // The 503's Retry-After holds the member down: the next call goes straight to the good one.
    const second = await call(s.port('udp'), 'fo-2');
    expect(status(second.at(-1))).toBe(200);
    expect(bad.received.filter((r) => r.method === 'INVITE')).toHaveLength(1);
    await bad.close();
    await good.close();
  });

  it('after a failover the next member gets the whole request again: headers, extensions and body', async () => {
    // While the first member is tried, the service keeps only a slim copy of the request; the second
    // attempt is read again from the bytes the client sent (here over TCP, framed off the stream).
    const bad = await startPeer('udp', () => [{ status: 503, delayMs: 200 }]);
    const good = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 486 }] : []));
    const s = await start([
      `sip:127.0.0.1:${bad.port};transport=udp`,
      `sip:127.0.0.1:${good.port};transport=udp`,
    ]);
    const net = await import('node:net');
    const sock = net.connect(s.port('tcp'), '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const body =
      'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5060 sip null\r\n';
    const msg =
      `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:${sock.localPort};branch=z9hG4bK-slim-1;ms-received-cid=1A00\r\n` +
      'Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=9\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: slim-1\r\n' +
      'CSeq: 1 INVITE\r\nContact: <sip:legacy@127.0.0.1>\r\nms-keep-alive: UAC;hop-hop=yes\r\nContent-Type: application/sdp\r\n' +
      `Content-Length: ${body.length}\r\n\r\n${body}`;
    let got = '';
    const final = new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (/SIP\/2\.0 486 /.test(got)) resolve();
      });
    });
    // A second message in the same write: the INVITE is a view into a larger chunk.
    sock.write(
      msg +
        'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-o1\r\nMax-Forwards: 70\r\n' +
        'From: <sip:a@contoso.com>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
    );
    await Promise.race([final, new Promise((r) => setTimeout(r, 8000))]);
    sock.destroy();
    expect(got).toMatch(/SIP\/2\.0 486 /);
    const first = bad.received.find((r) => r.method === 'INVITE');
    const second = good.received.find((r) => r.method === 'INVITE');
    expect(first).toBeDefined();
    expect(second).toBeDefined();
    // Everything but our own Via (new branch) is the same on both attempts, body included.
    const withoutTopVia = (r: SipRequest): string =>
      r
        .toBuffer()
        .toString('latin1')
        .replace(/\r\nVia: [^\r]*/, '');
    expect(withoutTopVia(second!)).toBe(withoutTopVia(first!));
    expect(second!.body.toString('latin1')).toBe(body);
    expect(second!.header('ms-keep-alive')).toBe('UAC;hop-hop=yes');
    expect(second!.headerLines('via')[1]).toContain('ms-received-cid=1A00');
    await bad.close();
    await good.close();
  });

  it('a member not listening (connection refused) is failed over to the next one', async () => {
    const good = await startPeer('tcp', (req) => (req.method === 'INVITE' ? [{ status: 200 }] : []));
    const { freeLoopbackPort } = await import('../helpers/sipp-server.js');
    const dead = await freeLoopbackPort();
    const s = await start([
      `sip:127.0.0.1:${dead};transport=tcp`,
      `sip:127.0.0.1:${good.port};transport=tcp`,
    ]);
    const r = await call(s.port('udp'), 'dead-1');
    expect(status(r.at(-1))).toBe(200);
    expect(good.received).toHaveLength(1);
    await good.close();
  });

  it('a member that closes its TCP connection mid-transaction causes failover, not a hang', async () => {
    const closer = await startPeer('tcp', () => ['close']);
    const good = await startPeer('tcp', (req) => (req.method === 'INVITE' ? [{ status: 200 }] : []));
    const s = await start([
      `sip:127.0.0.1:${closer.port};transport=tcp`,
      `sip:127.0.0.1:${good.port};transport=tcp`,
    ]);
    const r = await call(s.port('udp'), 'close-1');
    expect(status(r.at(-1))).toBe(200);
    expect(closer.received).toHaveLength(1);
    await closer.close();
    await good.close();
  });

  it('with every member down the client gets 503 with Retry-After', async () => {
    const { freeLoopbackPort } = await import('../helpers/sipp-server.js');
    const s = await start([`sip:127.0.0.1:${await freeLoopbackPort()};transport=tcp`]);
    const first = await call(s.port('udp'), 'down-1');
    expect(status(first.at(-1))).toBe(503);
    // Now held down: no member is tried at all, and the 503 says when to come back.
    const second = await call(s.port('udp'), 'down-2');
    expect(status(second.at(-1))).toBe(503);
    expect(second.at(-1)).toMatch(/\r\nRetry-After: \d+\r\n/);
    expect(s.lines.some((l) => l.msg === 'decision' && l.outcome === 'no-live-member')).toBe(true);
  });

  it('a request that carries our own Via has looped: 482', async () => {
    const good = await startPeer('udp', () => [{ status: 200 }]);
    const s = await start([`sip:127.0.0.1:${good.port};transport=udp`]);
    // Our Via below the client's, as a request that went round once arrives. (Were it on top, the
    // 482 would go to that sent-by, ourselves, and be dropped there as matching no transaction.)
    const r = await call(
      s.port('udp'),
      'loop-1',
      '',
      `, SIP/2.0/UDP 127.0.0.1:${s.port('udp')};branch=z9hG4bK-earlier`,
    );
    expect(status(r.at(-1))).toBe(482);
    expect(good.received).toHaveLength(0);
    await good.close();
  });

  it('CANCEL before the answer: 200 to the CANCEL, the member is cancelled, the client gets 487', async () => {
    const member = await startRingingMember(20);
    const s = await start([`sip:127.0.0.1:${member.port};transport=udp`]);
    const uac = await runSipp({
      scenario: 'cancel-uac',
      target: { host: '127.0.0.1', port: s.port('udp') },
      transport: 'udp',
      calls: 1,
      vars: { service: 'ocschat', domain: 'contoso.com' },
      timeoutMs: 15_000,
    });
    expect(uac.errors, uac.stdout.slice(-1500)).toBe('');
    expect(uac.successful).toBe(1);
    expect(member.received.map((r) => r.method)).toEqual(['INVITE', 'CANCEL', 'ACK']);
    await member.close();
  });

  it('Timer C (RFC 3261 §16.6 item 11): a member that rings forever is CANCELled and the client gets 408', async () => {
    const member = await startRingingMember(10);
    const s = await start([`sip:127.0.0.1:${member.port};transport=udp`], { timerCMs: 400 });
    const r = await call(s.port('udp'), 'timerc-1');
    expect(r.map(status)).toEqual([100, 180, 408]);
    expect(member.received.map((x) => x.method)).toEqual(['INVITE', 'CANCEL', 'ACK']);
    await member.close();
  });

  it('OPTIONS probing marks a member down when it stops answering and up when it is back', async () => {
    let alive = true;
    const member = await startPeer('udp', (req) =>
      req.method === 'OPTIONS' && alive ? [{ status: 200 }] : [],
    );
    const s = await start([`sip:127.0.0.1:${member.port};transport=udp`], {
      probe: { intervalMs: 150, timeoutMs: 100, upThreshold: 1, downThreshold: 1 },
    });
    const seen = (msg: string): boolean => s.lines.some((l) => l.msg === msg);
    const waitFor = async (msg: string, n: number): Promise<void> => {
      const deadline = Date.now() + 8000;
      while (s.lines.filter((l) => l.msg === msg).length < n) {
        if (Date.now() > deadline) throw new Error(`no "${msg}" logged`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await waitFor('pool member up', 1);
    alive = false;
    await waitFor('pool member down', 1);
    // While it is down, requests are not sent to it: the pool has no live member.
    const r = await call(s.port('udp'), 'probe-1');
    expect(status(r.at(-1))).toBe(503);
    alive = true;
    await waitFor('pool member up', 2);
    expect(seen('pool member down')).toBe(true);
    expect(member.received.filter((x) => x.method === 'OPTIONS').length).toBeGreaterThan(2);
    await member.close();
  });

  it('a Route naming us (a Front End routing the INVITE here) is removed before forwarding (RFC 3261 §16.4)', async () => {
    const member = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 200 }] : []));
    const s = await start([`sip:127.0.0.1:${member.port};transport=udp`]);
    const routes = `Route: <sip:127.0.0.1:${s.port('udp')};lr>, <sip:fe.contoso.com;lr;ms-route-sig=xyz>\r\n`;
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const got = new Promise<string>((resolve) =>
      sock.on('message', (m) => {
        const t = m.toString('latin1');
        if (!t.startsWith('SIP/2.0 100')) resolve(t);
      }),
    );
    sock.send(
      invite('route-1', `SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK-route-1`, routes),
      s.port('udp'),
      '127.0.0.1',
    );
    expect(status(await got)).toBe(200);
    sock.close();
    expect(member.received[0]!.headerLines('route')).toEqual(['<sip:fe.contoso.com;lr;ms-route-sig=xyz>']);
    await member.close();
  });

  it('an in-dialog request that times out does not take the member out of service', async () => {
    // The member answers INVITEs and never answers BYE (as if it had forgotten the dialog).
    const member = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 200 }] : []));
    const s = await start([`sip:127.0.0.1:${member.port};transport=udp`]);
    expect(status((await call(s.port('udp'), 'bye-1')).at(-1))).toBe(200);
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const final = new Promise<string>((resolve) => sock.on('message', (m) => resolve(m.toString('latin1'))));
    const bye =
      `BYE sip:peer@127.0.0.1:${member.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK-bye-1\r\n` +
      'Max-Forwards: 70\r\nFrom: <sip:legacy@contoso.com>;tag=9\r\nTo: <sip:ocschat@contoso.com>;tag=peer1\r\nCall-ID: bye-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n';
    sock.send(bye, s.port('udp'), '127.0.0.1');
    // Timer F is 64*T1 = 6.4 s here; the client then gets 408 for its BYE.
    expect(status(await final)).toBe(408);
    sock.close();
    expect(status((await call(s.port('udp'), 'bye-2')).at(-1))).toBe(200);
    await member.close();
  }, 20_000);
});
