// Caps that hold, transactions matched on branch and sent-by, identifiers nobody can guess, lookup
// dialogs tied to their flow, and answers that cannot be used to reflect traffic (issue 18, findings
// 4, 7 and 8), end to end over real sockets on 127.0.0.1.

import { lookupOf, proxyOf } from '../helpers/modes.js';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestService, NO_DNS, type TestService } from '../helpers/service.js';
import { startPeer, type SipPeer } from '../helpers/sip-peer.js';
import type { SipRequest } from '../../src/sip/message.js';

let svc: TestService | undefined;
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  await svc?.stop();
  svc = undefined;
});

/** One endpoint of each mode; the proxied one's pool is the peer at `memberPort` (if any). */
function endpoints(memberPort = 9): string {
  return `endpoints:
  - sipAddress: sip:redirect@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: members.contoso.com
    mode: proxy
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
pools:
  - fqdn: members.contoso.com
    targets:
      - uri: sip:127.0.0.1:${memberPort};transport=udp
`;
}

/** T1 of 100 ms: Timer G would resend at 100, 300, 700 ms… and 64*T1 is 6.4 s. */
async function start(opts: { memberPort?: number; extra?: string } = {}): Promise<TestService> {
  svc = await startTestService({
    endpoints: endpoints(opts.memberPort),
    sip: `sip:\n  t1: 100\n${opts.extra ?? ''}`,
    proxy: { dns: NO_DNS, probe: false },
  });
  return svc;
}

/** A pool member that rings (180) and holds every INVITE until CANCELled, then answers 487. */
async function ringingMember(): Promise<SipPeer> {
  const pending = new Map<string, SipRequest>();
  const member = await startPeer('udp', (req, answer) => {
    if (req.method === 'INVITE') {
      pending.set(req.callId ?? '', req);
      return [{ status: 180 }];
    }
    if (req.method === 'CANCEL') {
      const invite = pending.get(req.callId ?? '');
      if (invite !== undefined) setTimeout(() => answer(invite, 487), 10);
      return [{ status: 200 }];
    }
    return [];
  });
  closers.push(() => member.close());
  return member;
}

interface Msg {
  method: string;
  ruri: string;
  /** The Via value; by default this socket's own sent-by. */
  via?: string;
  branch: string;
  callId: string;
  fromTag?: string;
  toTag?: string | undefined;
  cseq?: number;
  cseqMethod?: string;
  extra?: string;
  body?: string;
}

function text(m: Msg, sentBy: string): string {
  const body = m.body ?? '';
  return (
    `${m.method} ${m.ruri} SIP/2.0\r\nVia: ${m.via ?? `SIP/2.0/UDP ${sentBy}`};branch=${m.branch}\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:alice@contoso.com>;tag=${m.fromTag ?? 'a1'}\r\n` +
    `To: <${m.ruri}>${m.toTag === undefined ? '' : `;tag=${m.toTag}`}\r\nCall-ID: ${m.callId}\r\n` +
    `CSeq: ${m.cseq ?? 1} ${m.cseqMethod ?? m.method}\r\nContact: <sip:alice@${sentBy}>\r\n${m.extra ?? ''}` +
    `${body ? 'Content-Type: text/plain\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** A UDP socket on 127.0.0.1 that keeps every datagram it gets, and answers nothing by itself. */
async function udpSocket() {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  closers.push(() => sock.close());
  const inbox: string[] = [];
  sock.on('message', (m) => inbox.push(m.toString('latin1')));
  const port = sock.address().port;
  const sentBy = `127.0.0.1:${port}`;
  const self = {
    port,
    sentBy,
    inbox,
    sendRaw(data: string, to: number): void {
      sock.send(Buffer.from(data, 'latin1'), to, '127.0.0.1');
    },
    send(m: Msg, to: number): string {
      const t = text(m, sentBy);
      self.sendRaw(t, to);
      return t;
    },
    /** Waits until `n` datagrams have come (or `ms` passed); returns them all. */
    async waitFor(n: number, ms = 3000): Promise<string[]> {
      const deadline = Date.now() + ms;
      while (inbox.length < n && Date.now() < deadline) await sleep(5);
      return inbox;
    },
    /** Waits for a datagram matching `pred` among those after `from`. */
    async next(pred: (m: string) => boolean, from = 0, ms = 3000): Promise<string | undefined> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = inbox.slice(from).find(pred);
        if (hit !== undefined || Date.now() > deadline) return hit;
        await sleep(5);
      }
    },
  };
  return self;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const status = (m: string | undefined): number => Number((m ?? '').slice(8, 11));
const toTag = (m: string | undefined): string | undefined =>
  /\r\nTo: [^\r]*;tag=([^;\r]+)/.exec(m ?? '')?.[1];
const isFinal = (m: string): boolean => /^SIP\/2\.0 [2-6]\d\d /.test(m);

/** Transactions held: server, and client (the proxy and the lookup service share one table). */
function held(s: TestService): number {
  return s.server.router.transactions.size + (proxyOf(s.server.router)?.deps.clientTxns.size ?? 0);
}

describe('limits.maxTransactions counts every transaction (finding 4)', () => {
  it('a flood of CANCELs and BYEs, each with its own branch, never holds more than the cap: one stateless 503 each; a CANCEL matching a live INVITE still goes through', async () => {
    const member = await ringingMember();
    const s = await start({
      memberPort: member.port,
      extra: 'limits:\n  maxTransactions: 4\n  overloadRetryAfter: 7\n',
    });
    const port = s.port('udp');
    const client = await udpSocket();
    // Two ringing calls hold a server and a client transaction each: the cap is reached.
    for (const n of [1, 2]) {
      client.send(
        {
          method: 'INVITE',
          ruri: 'sip:proxied@contoso.com',
          branch: `z9hG4bK-call-${n}`,
          callId: `call-${n}`,
        },
        port,
      );
      expect(await client.next((m) => m.startsWith('SIP/2.0 180') && m.includes(`call-${n}`))).toBeDefined();
    }
    expect(held(s)).toBe(4);
    const flooder = await udpSocket();
    for (let i = 0; i < 40; i++) {
      const before = flooder.inbox.length;
      const method = i % 2 === 0 ? 'CANCEL' : 'BYE';
      flooder.send(
        method === 'CANCEL'
          ? { method, ruri: 'sip:proxied@contoso.com', branch: `z9hG4bK-flood-${i}`, callId: `flood-${i}` }
          : // A BYE for a dialog with the pool member, straight to it as a client without Record-Route sends it.
            {
              method,
              ruri: `sip:127.0.0.1:${member.port}`,
              branch: `z9hG4bK-flood-${i}`,
              callId: `flood-${i}`,
              toTag: 'peer1',
              cseq: 2,
            },
        port,
      );
      const answer = await flooder.next(isFinal, before);
      expect(status(answer), `${method} ${i}`).toBe(503);
      expect(answer).toMatch(/\r\nRetry-After: 7\r\n/);
      expect(held(s)).toBeLessThanOrEqual(4);
    }
    // One answer per request, and nothing later: no transaction was made to resend it.
    await sleep(400);
    expect(flooder.inbox).toHaveLength(40);
    expect(held(s)).toBe(4);
    expect(member.received.filter((r) => r.method === 'BYE')).toHaveLength(0);
    // The caller's own CANCEL (same branch and sent-by as its INVITE) is let through over the cap.
    const before = client.inbox.length;
    client.send(
      { method: 'CANCEL', ruri: 'sip:proxied@contoso.com', branch: 'z9hG4bK-call-1', callId: 'call-1' },
      port,
    );
    expect(status(await client.next((m) => m.includes('CSeq: 1 CANCEL'), before))).toBe(200);
    expect(status(await client.next((m) => m.startsWith('SIP/2.0 487'), before))).toBe(487);
    expect(member.received.filter((r) => r.method === 'CANCEL')).toHaveLength(1);
  });
});

describe('matching on branch and sent-by (RFC 3261 §17.2.3, finding 7)', () => {
  it("a CANCEL from another source and sent-by with the victim's branch gets 481 and cancels nothing", async () => {
    const member = await ringingMember();
    const s = await start({ memberPort: member.port });
    const port = s.port('udp');
    const victim = await udpSocket();
    const invite: Msg = {
      method: 'INVITE',
      ruri: 'sip:proxied@contoso.com',
      branch: 'z9hG4bK-victim',
      callId: 'victim-1',
    };
    victim.send(invite, port);
    expect(await victim.next((m) => m.startsWith('SIP/2.0 180'))).toBeDefined();
    // The attacker knows the branch, Call-ID and tags (it saw the INVITE), but is not its sender.
    const attacker = await udpSocket();
    attacker.send({ ...invite, method: 'CANCEL' }, port);
    expect(status(await attacker.next(isFinal))).toBe(481);
    await sleep(300);
    expect(member.received.map((r) => r.method)).toEqual(['INVITE']);
    expect(victim.inbox.some((m) => m.startsWith('SIP/2.0 487'))).toBe(false);
    // The victim's own CANCEL still works.
    victim.send({ ...invite, method: 'CANCEL' }, port);
    expect(await victim.next((m) => m.startsWith('SIP/2.0 487'))).toBeDefined();
    expect(member.received.filter((r) => r.method === 'CANCEL')).toHaveLength(1);
  });

  it("an ACK from another sent-by with the victim's branch does not absorb the victim's final: it is still resent", async () => {
    // The member refuses (486): the service's INVITE server transaction resends the 486 on Timer G
    // until the victim's own ACK comes.
    const member = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 486 }] : []));
    closers.push(() => member.close());
    const s = await start({ memberPort: member.port });
    const port = s.port('udp');
    const victim = await udpSocket();
    const invite: Msg = {
      method: 'INVITE',
      ruri: 'sip:proxied@contoso.com',
      branch: 'z9hG4bK-acked',
      callId: 'ack-1',
    };
    victim.send(invite, port);
    const busy = await victim.next((m) => m.startsWith('SIP/2.0 486'));
    expect(busy).toBeDefined();
    const attacker = await udpSocket();
    const ack = { ...invite, method: 'ACK', toTag: toTag(busy) };
    attacker.send(ack, port);
    const mark = victim.inbox.length;
    // Timer G resends at T1 (100 ms) after the 486: the attacker's ACK did not stop it.
    expect(await victim.next((m) => m.startsWith('SIP/2.0 486'), mark, 1500)).toBeDefined();
    // The victim's ACK (its own sent-by) ends it: nothing more comes.
    victim.send(ack, port);
    await sleep(150);
    const settled = victim.inbox.length;
    await sleep(600);
    expect(victim.inbox).toHaveLength(settled);
  });

  it('1,000 To tags and 1,000 branches of ours are distinct, share no prefix or counter, and carry at least 64 random bits', async () => {
    // One branch per call (an INVITE resent by Timer A carries its call's branch again).
    const byCall = new Map<string, string>();
    const member = await startPeer('udp', (req) => {
      if (req.method !== 'INVITE') return [];
      byCall.set(req.callId ?? '', req.topVia.branch ?? '');
      return [{ status: 200 }];
    });
    closers.push(() => member.close());
    const s = await start({ memberPort: member.port });
    // To tags: the lookup service's 200s (one dialog each), over one TCP connection.
    const sock = net.connect(s.port('tcp'), '127.0.0.1');
    closers.push(() => sock.destroy());
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const sentBy = `127.0.0.1:${sock.localPort}`;
    let batch = '';
    for (let i = 0; i < 1000; i++)
      batch += text(
        {
          method: 'INVITE',
          ruri: 'sip:lookup@contoso.com',
          via: `SIP/2.0/TCP ${sentBy}`,
          branch: `z9hG4bK-t${i}`,
          callId: `tags-${i}`,
        },
        sentBy,
      );
    sock.write(batch, 'latin1');
    const count = (): number => got.split('SIP/2.0 200 OK').length - 1;
    for (const deadline = Date.now() + 10_000; count() < 1000 && Date.now() < deadline;) await sleep(20);
    const tags = [...got.matchAll(/\r\nTo: [^\r]*;tag=([^;\r]+)/g)].map((m) => m[1]!);
    // Branches: the INVITEs the proxy sends on to the pool member.
    const client = await udpSocket();
    for (let i = 0; i < 1000; i++) {
      client.send(
        {
          method: 'INVITE',
          ruri: 'sip:proxied@contoso.com',
          branch: `z9hG4bK-b${i}`,
          callId: `branches-${i}`,
        },
        s.port('udp'),
      );
      // In steps, so no socket buffer overflows on the way.
      if (i % 50 === 49) await sleep(10);
    }
    for (const deadline = Date.now() + 10_000; byCall.size < 1000 && Date.now() < deadline;) await sleep(20);
    const branches = [...byCall.values()];
    expect(tags).toHaveLength(1000);
    expect(branches).toHaveLength(1000);
    for (const [name, values, cookie] of [
      ['To tags', tags, ''],
      ['branches', branches, 'z9hG4bK'],
    ] as const) {
      expect(new Set(values).size, name).toBe(values.length);
      const bodies = values.map((v) => {
        expect(v.startsWith(cookie), name).toBe(true);
        return v.slice(cookie.length);
      });
      // At least 64 bits: 11 characters of base64url (or 16 of hex) and more.
      for (const b of bodies) expect(b, name).toMatch(/^(?:[\w-]{11,}|[0-9a-f]{16,})$/);
      // No prefix shared by many (a per-process prefix is shared by all): among 1,000 random values
      // a given 4-character start recurs a few times at most.
      const starts = new Map<string, number>();
      for (const b of bodies) starts.set(b.slice(0, 4), (starts.get(b.slice(0, 4)) ?? 0) + 1);
      expect(Math.max(...starts.values()), `${name}: most common start`).toBeLessThan(5);
      // Every position varies as random characters do (a counter's high digits and a fixed prefix do
      // not): of 1,000 base64url characters, over 40 of the 64 show up at each position.
      const length = Math.min(...bodies.map((b) => b.length));
      for (let i = 0; i < length; i++) {
        const seen = new Set(bodies.map((b) => b[i]));
        expect(seen.size, `${name}: characters seen at position ${i}`).toBeGreaterThan(40);
      }
    }
  });
});

describe('lookup dialogs are bound to their flow', () => {
  it('an INFO or BYE in a lookup dialog from another source is refused with 403 and changes nothing', async () => {
    const s = await start();
    const port = s.port('udp');
    const client = await udpSocket();
    client.send(
      { method: 'INVITE', ruri: 'sip:lookup@contoso.com', branch: 'z9hG4bK-lk1', callId: 'lk-1' },
      port,
    );
    const ok = await client.next((m) => m.startsWith('SIP/2.0 200'));
    const tag = toTag(ok)!;
    const contact = /\r\nContact: <([^>]+)>/.exec(ok!)![1]!;
    client.send(
      { method: 'ACK', ruri: contact, branch: 'z9hG4bK-lk1-ack', callId: 'lk-1', toTag: tag },
      port,
    );
    const requri =
      '<xccos ver="1" envid="7" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>';
    // Another source with the dialog's Call-ID and both tags (it saw them on the path).
    const other = await udpSocket();
    for (const [method, cseq] of [
      ['INFO', 9],
      ['BYE', 10],
    ] as const) {
      other.send(
        {
          method,
          ruri: contact,
          branch: `z9hG4bK-other-${method}`,
          callId: 'lk-1',
          toTag: tag,
          cseq,
          body: method === 'INFO' ? requri : '',
        },
        port,
      );
      expect(status(await other.next((m) => m.includes(`CSeq: ${cseq} ${method}`))), method).toBe(403);
    }
    await sleep(200);
    // Nothing was sent to anyone for it: no rpl:requri, no BYE; the dialog is still there and its
    // CSeq untouched, so the client's own INFO with CSeq 2 is in order.
    expect(other.inbox).toHaveLength(2);
    expect(client.inbox.filter((m) => !m.startsWith('SIP/2.0 200'))).toEqual([]);
    expect(lookupOf(s.server.router).size).toBe(1);
    const before = client.inbox.length;
    client.send(
      {
        method: 'INFO',
        ruri: contact,
        branch: 'z9hG4bK-lk1-info',
        callId: 'lk-1',
        toTag: tag,
        cseq: 2,
        body: requri,
      },
      port,
    );
    expect(status(await client.next((m) => m.includes('CSeq: 2 INFO'), before))).toBe(200);
    expect(await client.next((m) => m.startsWith('INFO '), before)).toContain('rpl:requri');
  });
});

describe('no reflection: answers of our own are stateless (RFC 3261 §8.2.7, finding 8)', () => {
  for (const [what, ruri, expected] of [
    ['302', 'sip:redirect@contoso.com', 302],
    ['404', 'sip:nobody@contoso.com', 404],
  ] as const) {
    it(`an INVITE from a source that never ACKs gets exactly one ${what}, and its retransmission one identical ${what}`, async () => {
      const s = await start();
      const spoofed = await udpSocket();
      const sent = spoofed.send(
        { method: 'INVITE', ruri, branch: `z9hG4bK-refl-${what}`, callId: `refl-${what}` },
        s.port('udp'),
      );
      // Timer G would resend at 100, 300 and 700 ms.
      await sleep(900);
      expect(spoofed.inbox).toHaveLength(1);
      expect(status(spoofed.inbox[0])).toBe(expected);
      spoofed.sendRaw(sent, s.port('udp'));
      await sleep(900);
      expect(spoofed.inbox).toHaveLength(2);
      expect(spoofed.inbox[1]).toBe(spoofed.inbox[0]);
      expect(toTag(spoofed.inbox[1])).toBeDefined();
      expect(s.server.router.transactions.size).toBe(0);
    });
  }

  it('an INVITE for a proxy endpoint whose every member is held down gets exactly one stateless 503, no 100 Trying and no retransmission', async () => {
    // The only member answers 503: it is held down (proxy.holdDown) after the first call.
    const member = await startPeer('udp', (req) => (req.method === 'INVITE' ? [{ status: 503 }] : []));
    closers.push(() => member.close());
    const s = await start({ memberPort: member.port });
    const caller = await udpSocket();
    caller.send(
      { method: 'INVITE', ruri: 'sip:proxied@contoso.com', branch: 'z9hG4bK-hd-1', callId: 'hd-1' },
      s.port('udp'),
    );
    expect(await caller.next(isFinal)).toBeDefined();
    const spoofed = await udpSocket();
    const sent = spoofed.send(
      { method: 'INVITE', ruri: 'sip:proxied@contoso.com', branch: 'z9hG4bK-hd-2', callId: 'hd-2' },
      s.port('udp'),
    );
    // Timer G would resend at 100, 300 and 700 ms.
    await sleep(900);
    expect(spoofed.inbox.map(status)).toEqual([503]);
    expect(spoofed.inbox[0]).toMatch(/\r\nRetry-After: \d+\r\n/);
    spoofed.sendRaw(sent, s.port('udp'));
    await sleep(900);
    expect(spoofed.inbox).toHaveLength(2);
    expect(spoofed.inbox[1]).toBe(spoofed.inbox[0]);
    expect(member.received.filter((r) => r.method === 'INVITE')).toHaveLength(1);
  });

  it('over lookup.maxDialogs an INVITE gets one stateless 503 and leaves nothing behind', async () => {
    const s = await start({ extra: 'lookup:\n  maxDialogs: 1\n' });
    const client = await udpSocket();
    client.send(
      { method: 'INVITE', ruri: 'sip:lookup@contoso.com', branch: 'z9hG4bK-full-1', callId: 'full-1' },
      s.port('udp'),
    );
    const ok = await client.next((m) => m.startsWith('SIP/2.0 200'));
    client.send(
      {
        method: 'ACK',
        ruri: 'sip:lookup@contoso.com',
        branch: 'z9hG4bK-full-1a',
        callId: 'full-1',
        toTag: toTag(ok),
      },
      s.port('udp'),
    );
    const spoofed = await udpSocket();
    spoofed.send(
      { method: 'INVITE', ruri: 'sip:lookup@contoso.com', branch: 'z9hG4bK-full-2', callId: 'full-2' },
      s.port('udp'),
    );
    await sleep(900);
    expect(spoofed.inbox.map(status)).toEqual([503]);
    expect(spoofed.inbox[0]).toMatch(/\r\nRetry-After: \d+\r\n/);
    expect(lookupOf(s.server.router).size).toBe(1);
    expect(s.server.router.transactions.size).toBe(0);
  });

  it("a copy of a lookup INVITE whose 200 is still un-ACKed, sent from another source, gets one 403 and not the dialog's 200", async () => {
    const s = await start();
    const caller = await udpSocket();
    const invite: Msg = {
      method: 'INVITE',
      ruri: 'sip:lookup@contoso.com',
      branch: 'z9hG4bK-copy-1',
      callId: 'copy-1',
    };
    caller.send(invite, s.port('udp'));
    expect(await caller.next((m) => m.startsWith('SIP/2.0 200'))).toBeDefined();
    // The same INVITE (as a retransmission would be) from another address and port: what a spoofed
    // source naming a victim would send, the victim's own socket standing in for the spoofing.
    const victim = await udpSocket();
    victim.send(invite, s.port('udp'));
    await sleep(400);
    expect(victim.inbox.map(status)).toEqual([403]);
    // The caller's own retransmission still gets its 200.
    const before = caller.inbox.length;
    caller.send(invite, s.port('udp'));
    expect(await caller.next((m) => m.startsWith('SIP/2.0 200'), before)).toBeDefined();
  });

  it('the BYE that ends a never-ACKed lookup dialog holds its source budget until it is answered', async () => {
    const s = await start({ extra: 'lookup:\n  maxUnackedPerSource: 1\n' });
    const spoofed = await udpSocket();
    const invite = (n: number): Msg => ({
      method: 'INVITE',
      ruri: 'sip:lookup@contoso.com',
      branch: `z9hG4bK-bye-budget-${n}`,
      callId: `bye-budget-${n}`,
    });
    spoofed.send(invite(1), s.port('udp'));
    // 64*T1 = 6.4 s of 200s without an ACK, then the BYE (RFC 3261 §13.3.1.4).
    const bye = await spoofed.next((m) => m.startsWith('BYE '), 0, 8000);
    expect(bye).toBeDefined();
    // While that BYE goes unanswered (and is resent), the source has no budget for a new INVITE.
    let from = spoofed.inbox.length;
    spoofed.send(invite(2), s.port('udp'));
    expect(status(await spoofed.next((m) => m.includes('Call-ID: bye-budget-2'), from))).toBe(503);
    // Answered: the slot is back.
    const b = bye!;
    const header = (name: string): string => new RegExp(`\r\n${name}: ([^\r]*)`).exec(b)![1]!;
    spoofed.sendRaw(
      `SIP/2.0 200 OK\r\nVia: ${header('Via')}\r\nFrom: ${header('From')}\r\nTo: ${header('To')}\r\n` +
        `Call-ID: ${header('Call-ID')}\r\nCSeq: ${header('CSeq')}\r\nContent-Length: 0\r\n\r\n`,
      s.port('udp'),
    );
    await sleep(100);
    from = spoofed.inbox.length;
    spoofed.send(invite(3), s.port('udp'));
    expect(status(await spoofed.next((m) => m.includes('Call-ID: bye-budget-3'), from))).toBe(200);
  }, 15_000);

  it('lookup 200 retransmissions towards one source stop at its budget: further INVITEs get one 503 each', async () => {
    // The default budget: 8 un-ACKed 200s per source address.
    const s = await start();
    const spoofed = await udpSocket();
    for (let i = 0; i < 12; i++)
      spoofed.send(
        {
          method: 'INVITE',
          ruri: 'sip:lookup@contoso.com',
          branch: `z9hG4bK-bud-${i}`,
          callId: `budget-${i}`,
        },
        s.port('udp'),
      );
    // 200 at once, resent at 100, 300, 700 and 1500 ms: watch for 1.2 s.
    await sleep(1200);
    const oks = spoofed.inbox.filter((m) => m.startsWith('SIP/2.0 200'));
    const refused = spoofed.inbox.filter((m) => m.startsWith('SIP/2.0 503'));
    expect(new Set(oks.map(toTag)).size).toBe(8);
    expect(refused).toHaveLength(4);
    expect(new Set(refused.map((m) => /Call-ID: (\S+)/.exec(m)?.[1])).size).toBe(4);
    expect(lookupOf(s.server.router).size).toBe(8);
    // Resent 200s come from the 8 dialogs only: about 4 each by now, never more.
    expect(oks.length).toBeGreaterThan(8);
    expect(oks.length).toBeLessThanOrEqual(8 * 5);
    // An ACK frees its share: the next INVITE from that source is taken again.
    const first = oks.find((m) => m.includes('Call-ID: budget-0'))!;
    spoofed.send(
      {
        method: 'ACK',
        ruri: 'sip:lookup@contoso.com',
        branch: 'z9hG4bK-bud-0a',
        callId: 'budget-0',
        toTag: toTag(first),
      },
      s.port('udp'),
    );
    await sleep(100);
    const before = spoofed.inbox.length;
    spoofed.send(
      { method: 'INVITE', ruri: 'sip:lookup@contoso.com', branch: 'z9hG4bK-bud-x', callId: 'budget-x' },
      s.port('udp'),
    );
    expect(status(await spoofed.next((m) => m.includes('Call-ID: budget-x'), before))).toBe(200);
  });
});
