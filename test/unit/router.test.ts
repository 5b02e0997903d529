// The router's decisions over an in-memory link: 302, 404, 483, 416, 420, 400, 513, OPTIONS, ACK and
// retransmission absorption, RFC 3581 rport/received. End-to-end over sockets lives in test/integration.

import { describe, it, expect, beforeEach } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Router } from '../../src/router/router.js';
import { firstLineInviteKey, toTagStartsWith } from '../../src/router/fast-path.js';
import { serverTransactionKey } from '../../src/transaction/server-transaction-table.js';
import { EndpointTable } from '../../src/endpoints/table.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipResponse } from '../../src/sip/message.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';
import { jsonLines } from '../helpers/log-lines.js';
import { defaultSettings } from '../helpers/settings.js';

const DEFAULT_TIMERS = defaultSettings().timers;

const FIX = join(import.meta.dirname, '../fixtures/rfc4475');

const ENDPOINTS = `
endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: pcpool2.contoso.com
    mode: redirect
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
  - sipAddress: sip:off@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
    enabled: false
pools:
  - fqdn: pcpool2.contoso.com
    targets:
      - uri: sip:pc1.contoso.com:5041;transport=tls
        q: 1.0
      - uri: sip:pc2.contoso.com:5041;transport=tls
        q: 0.5
`;

function request(
  opts: { method?: string; ruri?: string; extra?: string; via?: string; cseqMethod?: string } = {},
): Buffer {
  const method = opts.method ?? 'INVITE';
  return Buffer.from(
    `${method} ${opts.ruri ?? 'sip:ocschat@contoso.com'} SIP/2.0\r\n` +
      `Via: ${opts.via ?? 'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-abc'}\r\n` +
      'Max-Forwards: 70\r\nFrom: "Alice" <sip:alice@contoso.com>;tag=1928\r\nTo: <sip:ocschat@contoso.com>\r\n' +
      `Call-ID: call-1@127.0.0.1\r\nCSeq: 1 ${opts.cseqMethod ?? method}\r\n${opts.extra ?? ''}Content-Length: 0\r\n\r\n`,
    'latin1',
  );
}

function response(text: string): SipResponse {
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (!r.ok || r.message.kind !== 'response') throw new Error(`not a response: ${text}`);
  return r.message;
}

let link: MemoryLink;
let router: Router;
let clock: FakeClock;
let lines: Record<string, unknown>[];

beforeEach(() => {
  link = new MemoryLink('udp');
  clock = new FakeClock();
  lines = [];
  const sink = jsonLines(lines);
  const table = EndpointTable.fromConfig(parseEndpointsConfig(ENDPOINTS, 'endpoints.yaml'));
  router = new Router({
    table: () => table,
    logger: pino({ level: 'debug' }, sink),
    clock,
    timers: DEFAULT_TIMERS,
    maxMessageSize: 4096,
    serverHeader: 'pchat-endpoint',
    limits: defaultSettings().router,
  });
});

function send(data: Buffer, address = '127.0.0.1', port = 5070): SipResponse[] {
  router.onMessage(data, link.source(address, port));
  return link.take().map(response);
}

describe('redirect mode', () => {
  it('answers 302 naming the pool, with a To tag and the request headers copied (RFC 3261 §8.2.6)', () => {
    const [r] = send(request());
    expect(r!.status).toBe(302);
    expect(r!.reason).toBe('Moved Temporarily');
    expect(r!.header('contact')).toBe('<sip:ocschat@pcpool.contoso.com>');
    // A stateless answer's tag: the deployment's prefix (with a dot), then 64 bits derived from the request.
    expect(r!.toTag).toMatch(/^[\w-]{6}\.[\w-]{11}$/);
    expect(r!.header('via')).toBe('SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-abc');
    expect(r!.header('from')).toBe('"Alice" <sip:alice@contoso.com>;tag=1928');
    expect(r!.callId).toBe('call-1@127.0.0.1');
    expect(r!.header('cseq')).toBe('1 INVITE');
    expect(link.sent).toHaveLength(0);
  });

  it('lists static targets with their q-values', () => {
    const [r] = send(request({ ruri: 'sip:PersistentChat@CONTOSO.com;transport=tcp' }));
    expect(r!.header('contact')).toBe(
      '<sip:pc1.contoso.com:5041;transport=tls>;q=1.0, <sip:pc2.contoso.com:5041;transport=tls>;q=0.5',
    );
  });

  it('a retransmitted INVITE gets the identical response, statelessly, and the ACK is absorbed', () => {
    // RFC 3261 §8.2.7 (stateless UAS behaviour): nothing is kept; the To tag is derived from the
    // request, so the retransmission is answered with the same bytes.
    router.onMessage(request(), link.source('127.0.0.1', 5070));
    router.onMessage(request(), link.source('127.0.0.1', 5070));
    const [a, b] = link.take();
    expect(b).toBe(a);
    expect(router.stats.retransmissionsAbsorbed).toBe(0);
    expect(router.transactions.size).toBe(0);
    const tag = response(a!).toTag!;
    const ack = request({ method: 'ACK' })
      .toString('latin1')
      .replace('To: <sip:ocschat@contoso.com>', `To: <sip:ocschat@contoso.com>;tag=${tag}`);
    expect(send(Buffer.from(ack, 'latin1'))).toEqual([]);
    expect(router.stats.acksAbsorbed).toBe(1);
    // No Timer G: nothing more is ever sent.
    clock.advance(64 * DEFAULT_TIMERS.t1);
    expect(link.sent).toHaveLength(0);
  });

  it("the ACK of a stateless answer is absorbed when its To tag lies past the fast path's first look", () => {
    // A branch of 300 characters pushes To past byte 320: the full path recognises the tag.
    const via = `SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-${'b'.repeat(292)}`;
    const [a] = send(request({ via }));
    const ack = request({ method: 'ACK', via })
      .toString('latin1')
      .replace('To: <sip:ocschat@contoso.com>', `To: <sip:ocschat@contoso.com>;tag=${a!.toTag}`);
    expect(ack.indexOf(`;tag=${a!.toTag}`)).toBeGreaterThan(320);
    expect(send(Buffer.from(ack, 'latin1'))).toEqual([]);
    expect(router.stats.acksAbsorbed).toBe(1);
    expect(router.stats.dropped).toBe(0);
  });

  it('the 302 is stateless: no transaction is kept and nothing is resent without an ACK (no Timer G)', () => {
    send(request());
    expect(router.transactions.size).toBe(0);
    clock.advance(64 * DEFAULT_TIMERS.t1);
    expect(link.take()).toHaveLength(0);
  });

  it('logs one decision line with callId, branch, method, URI, endpoint, outcome and latency', () => {
    send(request());
    const d = lines.filter((l) => l.msg === 'decision');
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({
      callId: 'call-1@127.0.0.1',
      branch: 'z9hG4bK-abc',
      method: 'INVITE',
      ruri: 'sip:ocschat@contoso.com',
      endpoint: 'sip:ocschat@contoso.com',
      status: 302,
      outcome: 'redirect',
    });
    expect(typeof d[0]!.latencyUs).toBe('number');
  });

  it('RFC 2543 clients (no branch, as Group Chat clients send) are matched by Call-ID/CSeq/From tag', () => {
    const via = 'SIP/2.0/TCP 127.0.0.1:5070';
    const [a] = send(request({ via }));
    const [b] = send(request({ via }));
    expect(b!.toTag).toBe(a!.toTag);
  });
});

describe('other answers', () => {
  it('404 for an unknown address and for a disabled endpoint', () => {
    expect(send(request({ ruri: 'sip:nobody@contoso.com' }))[0]!.status).toBe(404);
    expect(send(request({ ruri: 'sip:off@contoso.com' }))[0]!.status).toBe(404);
  });

  it('483 when Max-Forwards is 0', () => {
    const r = send(
      Buffer.from(request().toString('latin1').replace('Max-Forwards: 70', 'Max-Forwards: 0'), 'latin1'),
    );
    expect(r[0]!.status).toBe(483);
  });

  it('200 to OPTIONS addressed to the service itself, even with Max-Forwards 0', () => {
    const opts = request({ method: 'OPTIONS', ruri: 'sip:127.0.0.1:5060' })
      .toString('latin1')
      .replace('Max-Forwards: 70', 'Max-Forwards: 0');
    const [r] = send(Buffer.from(opts, 'latin1'));
    expect(r!.status).toBe(200);
    expect(r!.header('allow')).toContain('INVITE');
  });

  it('501 for proxy mode until it lands', () => {
    expect(send(request({ ruri: 'sip:proxied@contoso.com' }))[0]!.status).toBe(501);
  });

  it('416 for a Request-URI scheme it does not serve (RFC 4475 unkscm)', () => {
    expect(send(request({ ruri: 'tel:+14085551212' }))[0]!.status).toBe(416);
  });

  it('420 with Unsupported listing the Require tags (RFC 4475 bext01)', () => {
    const [r] = send(request({ extra: 'Require: nothingtosee, 100rel\r\n' }));
    expect(r!.status).toBe(420);
    expect(r!.header('unsupported')).toBe('nothingtosee, 100rel');
  });

  it('400 with a precise reason for a CSeq method mismatch; the next request is still answered', () => {
    const [r] = send(request({ cseqMethod: 'OPTIONS' }));
    expect(r!.status).toBe(400);
    expect(r!.reason).toBe('CSeq method does not match request method');
    expect(send(request())[0]!.status).toBe(302);
  });

  it('513 for an over-size request', () => {
    const big = request({ extra: `X-Filler: ${'a'.repeat(5000)}\r\n` });
    expect(send(big)[0]!.status).toBe(513);
  });

  it('CANCEL: 481 after a stateless 302 (no transaction is held), and none is made for the CANCEL', () => {
    send(request());
    expect(send(request({ method: 'CANCEL' }))[0]!.status).toBe(481);
    expect(
      send(request({ method: 'CANCEL', via: 'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-other' }))[0]!.status,
    ).toBe(481);
    expect(router.transactions.size).toBe(0);
  });

  it('stray responses and binary garbage are dropped and counted, never thrown', () => {
    expect(send(Buffer.from('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\r\n'))).toEqual(
      [],
    );
    const garbage = Buffer.alloc(512);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) & 0xff;
    expect(send(garbage)).toEqual([]);
    expect(router.stats.dropped).toBe(2);
    expect(router.stats.internalErrors).toBe(0);
  });
});

describe('response routing (RFC 3261 §18.2.2, RFC 3581)', () => {
  it('rport: the response goes to the source port and carries received and rport', () => {
    router.onMessage(
      request({ via: 'SIP/2.0/UDP 10.1.1.1:5070;rport;branch=z9hG4bK-nat' }),
      link.source('127.0.0.5', 41234),
    );
    const [sent] = link.sent;
    expect(sent!.address).toBe('127.0.0.5');
    expect(sent!.port).toBe(41234);
    expect(response(sent!.data.toString('latin1')).header('via')).toBe(
      'SIP/2.0/UDP 10.1.1.1:5070;rport=41234;received=127.0.0.5;branch=z9hG4bK-nat',
    );
  });

  it('without rport: to the source address at the sent-by port, with received added', () => {
    router.onMessage(
      request({ via: 'SIP/2.0/UDP client.example.com:5099;branch=z9hG4bK-x' }),
      link.source('127.0.0.6', 41000),
    );
    const [sent] = link.sent;
    expect([sent!.address, sent!.port]).toEqual(['127.0.0.6', 5099]);
    expect(response(sent!.data.toString('latin1')).header('via')).toBe(
      'SIP/2.0/UDP client.example.com:5099;branch=z9hG4bK-x;received=127.0.0.6',
    );
  });
});

describe('RFC 4475 messages through the router', () => {
  // Fixtures name hosts such as 192.0.2.x: the in-memory link never sends, and the source is loopback.
  const answers: Record<string, number> = {
    unkscm: 416,
    novelsc: 416,
    bext01: 420,
    zeromf: 483,
    badvers: 505,
    mismatch01: 400,
    insuf: 400,
    scalar02: 400,
  };
  for (const [name, status] of Object.entries(answers)) {
    it(`${name} is answered ${status}`, () => {
      const r = send(readFileSync(join(FIX, `${name}.dat`)));
      expect(r.map((x) => x.status)).toEqual([status]);
    });
  }
  it('inv2543 (RFC 2543 syntax) is accepted and answered', () => {
    const r = send(readFileSync(join(FIX, 'inv2543.dat')));
    expect(r.map((x) => x.status)).toEqual([404]);
  });
});

describe('maintenance windows', () => {
  it('503 with a Retry-After counting down to the end of the window, then back in service by itself', () => {
    let now = Date.parse('2026-12-05T05:00:00Z');
    const cfg = parseEndpointsConfig(ENDPOINTS, 'endpoints.yaml');
    const base = EndpointTable.fromConfig(cfg);
    const ep = base.lookupUri('sip:ocschat@contoso.com')!;
    const until = Date.parse('2026-12-05T06:00:00Z');
    const inWindow = { ...ep, maintenanceUntil: until };
    const table = {
      lookupUri: (u: string) => (base.lookupUri(u) === ep ? inWindow : base.lookupUri(u)),
    } as unknown as EndpointTable;
    const r = new Router({
      table: () => table,
      logger: pino({ level: 'silent' }),
      clock,
      timers: DEFAULT_TIMERS,
      limits: defaultSettings().router,
      maxMessageSize: 4096,
      serverHeader: '',
      wallClock: () => now,
    });
    const ask = (n: number): SipResponse => {
      r.onMessage(request({ via: `SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m${n}` }), link.source());
      return response(link.take()[0]!);
    };
    const a = ask(1);
    expect(a.status).toBe(503);
    expect(a.header('retry-after')).toBe('3600');
    now += 1_800_500;
    expect(ask(2).header('retry-after')).toBe('1800');
    now = until;
    expect(ask(3).status).toBe(302);
  });
});

describe('endpoint matching', () => {
  it('a Request-URI with a port still names the endpoint (Front Ends relay with one)', () => {
    expect(send(request({ ruri: 'sip:OCSChat@contoso.com:5061;transport=tls' }))[0]!.status).toBe(302);
  });

  it('the endpoint remembered for the last Request-URI is used for that URI and that table only', () => {
    const contactOf = (ruri: string, branch: string): string | undefined =>
      send(request({ ruri, via: `SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-${branch}` }))[0]!.header(
        'contact',
      );
    let table = EndpointTable.fromConfig(parseEndpointsConfig(ENDPOINTS, 'endpoints.yaml'));
    router = new Router({
      table: () => table,
      logger: pino({ level: 'silent' }),
      clock,
      timers: DEFAULT_TIMERS,
      maxMessageSize: 4096,
      serverHeader: 'pchat-endpoint',
      limits: defaultSettings().router,
    });
    expect(contactOf('sip:ocschat@contoso.com', '1')).toBe('<sip:ocschat@pcpool.contoso.com>');
    expect(contactOf('sip:ocschat@contoso.com', '2')).toBe('<sip:ocschat@pcpool.contoso.com>');
    expect(contactOf('sip:persistentchat@contoso.com', '3')).toContain('pc1.contoso.com');
    expect(contactOf('sip:ocschat@contoso.com', '4')).toBe('<sip:ocschat@pcpool.contoso.com>');
    expect(send(request({ ruri: 'sip:nobody@contoso.com' }))[0]!.status).toBe(404);
    expect(
      send(request({ ruri: 'tel:+14085551212', via: 'SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-5' }))[0]!
        .status,
    ).toBe(416);
    // A reload: the same Request-URI now names another pool.
    table = EndpointTable.fromConfig(
      parseEndpointsConfig(
        ENDPOINTS.replace('poolFqdn: pcpool.contoso.com', 'poolFqdn: other.contoso.com'),
        'endpoints.yaml',
      ),
    );
    expect(contactOf('sip:ocschat@contoso.com', '6')).toBe('<sip:ocschat@other.contoso.com>');
  });
});

describe('regressions found by the mutation fuzzer', () => {
  it('a malformed Route or Require gets 400 and leaves no transaction behind', () => {
    for (const extra of [
      'Route: <sip:fe.contoso.com;lr\r\n',
      'Require: 100rel, <x\r\n',
      'Proxy-Require: a b\r\n',
    ]) {
      const r = send(
        request({
          ruri: 'sip:proxied@contoso.com',
          extra,
          via: `SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-${extra.length}`,
        }),
      );
      expect(r.map((x) => x.status)).toEqual([400]);
    }
    expect(router.transactions.size).toBe(0);
    expect(router.stats.internalErrors).toBe(0);
  });
});

describe('the ACK fast path reads the transaction key as the parser does', () => {
  it('firstLineInviteKey, when it gives a key, gives serverTransactionKey of the parsed ACK (branch and sent-by)', () => {
    const host = fc.constantFrom(
      '127.0.0.1',
      'Client.Example.com',
      '[::1]',
      '[2001:DB8::1]',
      'a-b.c',
      '10.0.0.1 ',
    );
    const port = fc.constantFrom(
      '',
      ':5060',
      ':05060',
      ':0',
      ':65535',
      ':65536',
      ': 5060',
      ' :5060',
      ':5o60',
    );
    const params = fc.constantFrom(
      ';branch=z9hG4bK-1',
      ';rport;branch=z9hG4bK-2',
      ';branch=z9hG4bK-3;rport',
      ' ;branch=z9hG4bK-4',
    );
    const protocol = fc.constantFrom('SIP/2.0/UDP ', 'SIP/2.0/TCP  ', 'SIP / 2.0 / UDP ', 'SIP/2.0/UDP\t');
    let keyed = 0;
    fc.assert(
      fc.property(protocol, host, port, params, (proto, h, p, ps) => {
        const text = `ACK sip:a@b SIP/2.0\r\nVia: ${proto}${h}${p}${ps}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n`;
        const quick = firstLineInviteKey(text);
        if (quick === undefined) return;
        keyed++;
        const r = parseMessage(Buffer.from(text, 'latin1'));
        // A key read off the text stands for a Via the parser reads the same way.
        expect(r.ok).toBe(true);
        if (!r.ok || r.message.kind !== 'request') return;
        expect(quick).toBe(serverTransactionKey(r.message, 'INVITE'));
      }),
      { numRuns: 2000, seed: 3261 },
    );
    // The everyday forms are read quickly (else the property would hold vacuously).
    expect(keyed).toBeGreaterThan(100);
  });

  it('toTagStartsWith finds a tag on the To line only, in any of its spellings', () => {
    const needle = ';tag=abcdef.';
    expect(toTagStartsWith('ACK x SIP/2.0\r\nTo: <sip:a@b>;tag=abcdef.123\r\n', needle)).toBe(true);
    expect(toTagStartsWith('ACK x SIP/2.0\r\nt : <sip:a@b>;tag=abcdef.123\r\n', needle)).toBe(true);
    expect(toTagStartsWith('ACK x SIP/2.0\r\nTO:<sip:a@b>;tag=abcdef.123\r\n', needle)).toBe(true);
    expect(toTagStartsWith('ACK x SIP/2.0\r\nFrom: <sip:a@b>;tag=abcdef.123\r\n', needle)).toBe(false);
    expect(toTagStartsWith('ACK x SIP/2.0\r\nTimestamp: 1;tag=abcdef.123\r\n', needle)).toBe(false);
    expect(toTagStartsWith('ACK x SIP/2.0\r\nTo: <sip:a@b>;tag=abcdeg.123\r\n', needle)).toBe(false);
  });
});
