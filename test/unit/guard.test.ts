// Access control and flood protection in isolation: CIDR and certificate allow lists, the pike-like
// rate limiter (sliding window, bans, bounded memory), log throttling, per-source TCP connection limits.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { AccessPolicy, certificateNames } from '../../src/guard/access-policy.js';
import { Guard, type GuardSettings } from '../../src/guard/guard.js';
import { LogThrottle } from '../../src/base/log-throttle.js';
import { NetworkList, networkProblem } from '../../src/guard/networks.js';
import { RateLimiter } from '../../src/guard/rate-limiter.js';
import type { Link, PeerCertificate, Source } from '../../src/transport/types.js';
import { jsonLines } from '../helpers/log-lines.js';

const LINK: Link = {
  transport: 'udp',
  reliable: false,
  localAddress: '127.0.0.1',
  localPort: 5060,
  send() {},
};

function source(address: string, peerCertificate?: PeerCertificate): Source {
  return {
    link: LINK,
    address,
    port: 5060,
    family: address.includes(':') ? 6 : 4,
    ...(peerCertificate === undefined ? {} : { peerCertificate }),
  };
}

function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = jsonLines(lines);
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('networks (CIDR allow lists)', () => {
  it('matches IPv4 and IPv6 blocks and single addresses, never across families', () => {
    const list = new NetworkList(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1']);
    expect(list.has('10.200.3.4')).toBe(true);
    expect(list.has('11.0.0.1')).toBe(false);
    expect(list.has('192.0.2.7')).toBe(true);
    expect(list.has('192.0.2.8')).toBe(false);
    expect(list.has('2001:db8:1::5')).toBe(true);
    expect(list.has('2001:db9::5')).toBe(false);
    expect(list.has('::1')).toBe(true);
    expect(list.has('::2')).toBe(false);
    expect(list.has('not an address')).toBe(false);
  });

  it('an IPv4-mapped IPv6 peer (dual-stack socket) is matched as IPv4', () => {
    expect(new NetworkList(['10.0.0.0/8']).has('::ffff:10.1.2.3')).toBe(true);
  });

  it('0.0.0.0/0 and ::/0 allow every address of their family', () => {
    const list = new NetworkList(['0.0.0.0/0']);
    expect(list.has('203.0.113.9')).toBe(true);
    expect(list.has('2001:db8::1')).toBe(false);
    expect(new NetworkList(['::/0']).has('2001:db8::1')).toBe(true);
  });

  it.each([
    ['10.0.0.0/8', undefined],
    ['2001:db8::/32', undefined],
    ['10.0.0.1', undefined],
    ['10.0.0.0/33', 'prefix length "33" is not 0 to 32'],
    ['::/129', 'prefix length "129" is not 0 to 128'],
    ['10.0.0.0/', 'prefix length "" is not 0 to 32'],
    ['10', '"10" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)'],
    [
      'contoso.com/24',
      '"contoso.com/24" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)',
    ],
  ])('networkProblem(%s)', (text, problem) => {
    expect(networkProblem(text)).toBe(problem);
  });
});

describe('access policy', () => {
  const cert: PeerCertificate = {
    subject: 'C=US, O=Contoso, CN=fe1.contoso.com',
    commonName: 'fe1.contoso.com',
    san: ['DNS:fe1.contoso.com', 'DNS:pool.contoso.com', 'IP Address:10.0.0.5'],
  };

  it('reads the DN, the common name and the SANs without their type prefix', () => {
    expect(certificateNames(cert)).toEqual([
      'c=us,o=contoso,cn=fe1.contoso.com',
      'fe1.contoso.com',
      'fe1.contoso.com',
      'pool.contoso.com',
      '10.0.0.5',
    ]);
    expect(certificateNames({ subject: 'O=Contoso, CN=fe2.contoso.com', san: [] })).toContain(
      'fe2.contoso.com',
    );
  });

  it.each([
    ['C=US,O=Contoso,CN=FE1.contoso.com', true],
    ['fe1.contoso.com', true],
    ['POOL.contoso.com', true],
    ['*.contoso.com', true],
    ['*.fabrikam.com', false],
    ['fe2.contoso.com', false],
    ['contoso.com', false],
  ])('certificate entry %s admits fe1.contoso.com: %s', (entry, ok) => {
    const policy = new AccessPolicy({ networks: [], certificates: [entry] });
    expect(policy.allows(source('203.0.113.1', cert))).toBe(ok);
    // Without a certificate (UDP, TCP) only networks can admit.
    expect(policy.allows(source('203.0.113.1'))).toBe(false);
  });

  it('networks or certificates: either one admits', () => {
    const policy = new AccessPolicy({ networks: ['10.0.0.0/8'], certificates: ['*.contoso.com'] });
    expect(policy.allows(source('10.1.1.1'))).toBe(true);
    expect(policy.allows(source('203.0.113.1', cert))).toBe(true);
    expect(policy.allows(source('203.0.113.1'))).toBe(false);
    expect(policy.allowsNetwork('10.1.1.1')).toBe(true);
    expect(policy.namesCertificates).toBe(true);
  });
});

describe('rate limiter (pike)', () => {
  const settings = { requests: 10, windowMs: 1000, banMs: 5000, maxSources: 100 };

  it('allows the limit per window, bans on the first request over it, drops until the ban ends', () => {
    const r = new RateLimiter(settings);
    for (let i = 0; i < 10; i++) expect(r.hit('10.0.0.1', i)).toBe('ok');
    expect(r.hit('10.0.0.1', 10)).toBe('ban');
    expect(r.hit('10.0.0.1', 11)).toBe('banned');
    expect(r.banned('10.0.0.1', 4000)).toBe(true);
    // Another source is counted on its own.
    expect(r.hit('10.0.0.2', 12)).toBe('ok');
    expect(r.hit('10.0.0.1', 5011)).toBe('ok');
    expect(r.banned('10.0.0.1', 5011)).toBe(false);
  });

  it('slides: the previous window counts in proportion to the overlap, so a burst at a boundary is caught', () => {
    const r = new RateLimiter(settings);
    // The window starts with the source's first request; nine more come at its very end.
    expect(r.hit('a', 0)).toBe('ok');
    for (let i = 0; i < 9; i++) expect(r.hit('a', 990 + i)).toBe('ok');
    // At 1100 ms the sliding window still covers 90% of the first window's 10 requests: a fixed
    // window would allow 10 more here, the sliding one 1.
    expect(r.hit('a', 1100)).toBe('ok');
    expect(r.hit('a', 1101)).toBe('ban');
  });

  it('a steady rate under the limit is never banned', () => {
    const r = new RateLimiter(settings);
    // 9 requests per second for a minute.
    for (let t = 0; t < 60_000; t += 111) expect(r.hit('steady', t)).toBe('ok');
  });

  it('memory is bounded: the oldest unbanned sources are evicted, banned ones kept when possible', () => {
    const r = new RateLimiter({ ...settings, requests: 1, maxSources: 50 });
    r.hit('flooder', 0);
    expect(r.hit('flooder', 1)).toBe('ban');
    for (let i = 0; i < 10_000; i++) r.hit(`198.51.100.${i}`, 2);
    expect(r.size).toBe(50);
    expect(r.evictions).toBeGreaterThan(9_000);
    expect(r.banned('flooder', 3)).toBe(true);
  });

  it('sweep forgets quiet sources and keeps banned ones', () => {
    const r = new RateLimiter({ ...settings, requests: 1 });
    r.hit('quiet', 0);
    r.hit('flooder', 0);
    r.hit('flooder', 1);
    r.sweep(2500);
    expect(r.size).toBe(1);
    expect(r.banned('flooder', 2500)).toBe(true);
    r.sweep(6000);
    expect(r.size).toBe(0);
  });

  it('refuses settings that would never admit anything', () => {
    expect(() => new RateLimiter({ ...settings, requests: 0 })).toThrow(RangeError);
  });
});

describe('log throttle', () => {
  it('one line per key per interval, then the count of what was not logged', () => {
    const t = new LogThrottle(1000);
    expect(t.take('a', 0)).toBe(0);
    expect(t.take('a', 10)).toBeUndefined();
    expect(t.take('a', 20)).toBeUndefined();
    expect(t.take('b', 30)).toBe(0);
    expect(t.take('a', 1001)).toBe(2);
  });

  it('remembers a bounded number of keys', () => {
    const t = new LogThrottle(60_000);
    for (let i = 0; i < 50_000; i++) t.take(`k${i}`, i);
    expect(t.size).toBeLessThanOrEqual(10_000);
  });
});

function guardSettings(over: Partial<GuardSettings> = {}): GuardSettings {
  return {
    access: { action: 'reject', logIntervalMs: 60_000, rules: [] },
    maxConnectionsPerSource: 0,
    maxConnections: 0,
    ...over,
  };
}

describe('guard', () => {
  it('per listener: a rule naming one listener leaves the others open', () => {
    const { logger } = capture();
    const g = new Guard(
      guardSettings({
        access: {
          action: 'drop',
          logIntervalMs: 60_000,
          rules: [{ listeners: ['udp://127.0.0.1:5060'], networks: ['10.0.0.0/8'], certificates: [] }],
        },
      }),
      { logger },
    );
    expect(g.forListener('udp://127.0.0.1:5060').admit(source('192.0.2.1'))).toBe('drop');
    expect(g.forListener('udp://127.0.0.1:5060').admit(source('10.0.0.1'))).toBe('pass');
    expect(g.forListener('tcp://127.0.0.1:5060').admit(source('192.0.2.1'))).toBe('pass');
    expect(g.stats.accessDenied).toBe(1);
    g.close();
  });

  it('refusals are counted every time and logged once per source per interval', () => {
    const { logger, lines } = capture();
    let now = 0;
    const g = new Guard(
      guardSettings({
        access: {
          action: 'reject',
          logIntervalMs: 1000,
          rules: [{ networks: ['10.0.0.0/8'], certificates: [] }],
        },
      }),
      { logger, now: () => now },
    );
    const lg = g.forListener('udp://127.0.0.1:5060');
    for (let i = 0; i < 100; i++) expect(lg.admit(source('192.0.2.1'))).toBe('reject');
    lg.admit(source('192.0.2.2'));
    now = 1500;
    lg.admit(source('192.0.2.1'));
    expect(g.stats.accessDenied).toBe(102);
    const refused = lines.filter((l) => l['msg'] === 'request from a source not on the allow list refused');
    expect(refused.map((l) => [l['peer'], l['suppressed']])).toEqual([
      ['192.0.2.1', 0],
      ['192.0.2.2', 0],
      ['192.0.2.1', 99],
    ]);
    g.close();
  });

  it('a reload changes the allow list at once', () => {
    const { logger } = capture();
    const g = new Guard(guardSettings(), { logger });
    const lg = g.forListener('udp://127.0.0.1:5060');
    expect(lg.admit(source('192.0.2.1'))).toBe('pass');
    g.update(
      guardSettings({
        access: {
          action: 'reject',
          logIntervalMs: 0,
          rules: [{ networks: ['10.0.0.0/8'], certificates: [] }],
        },
      }),
    );
    expect(lg.admit(source('192.0.2.1'))).toBe('reject');
    g.close();
  });

  it('rate limit before access: a flooding source is banned (one log line) and exempt networks are not counted', () => {
    const { logger, lines } = capture();
    let now = 0;
    const g = new Guard(
      guardSettings({
        rate: { requests: 3, windowMs: 1000, banMs: 10_000, maxSources: 10, exempt: ['10.0.0.0/8'] },
      }),
      { logger, now: () => now },
    );
    const lg = g.forListener('udp://127.0.0.1:5060');
    const verdicts = Array.from({ length: 6 }, () => lg.admit(source('192.0.2.1')));
    expect(verdicts).toEqual(['pass', 'pass', 'pass', 'drop', 'drop', 'drop']);
    for (let i = 0; i < 100; i++) expect(lg.admit(source('10.1.1.1'))).toBe('pass');
    expect(g.stats).toMatchObject({ rateLimited: 3, bans: 1 });
    expect(lines.filter((l) => String(l['msg']).startsWith('source banned'))).toHaveLength(1);
    now = 10_001;
    expect(lg.admit(source('192.0.2.1'))).toBe('pass');
    expect(g.trackedSources).toBe(1);
    g.close();
  });

  it('TCP connections per source: over the limit refused; a closed one frees its place', () => {
    const { logger } = capture();
    const g = new Guard(guardSettings({ maxConnectionsPerSource: 2 }), { logger });
    const lg = g.forListener('tcp://127.0.0.1:5060');
    const sock = (address: string): Socket =>
      Object.assign(new EventEmitter(), { remoteAddress: address }) as unknown as Socket;
    const a = sock('192.0.2.1');
    expect(lg.admitConnection(a)).toBe(true);
    expect(lg.admitConnection(sock('192.0.2.1'))).toBe(true);
    expect(lg.admitConnection(sock('192.0.2.1'))).toBe(false);
    expect(lg.admitConnection(sock('192.0.2.2'))).toBe(true);
    a.emit('close');
    expect(lg.connectionsFrom('192.0.2.1')).toBe(1);
    expect(lg.admitConnection(sock('192.0.2.1'))).toBe(true);
    expect(g.stats.connectionsRefused).toBe(1);
    g.close();
  });

  it('the global connection cap counts every listener and source; the descriptor limit lowers it, with a warning', () => {
    const { logger, lines } = capture();
    const g = new Guard(guardSettings({ maxConnections: 1000 }), { logger, descriptorLimit: 67 });
    // 67 files, 64 kept back: room for 3 connections, whatever maxConnections says.
    expect(g.connectionCap).toBe(3);
    expect(lines.find((l) => String(l['msg']).startsWith('inbound connections capped at 3'))).toMatchObject({
      configured: 1000,
      openFilesLimit: 67,
      reserved: 64,
    });
    const sock = (address: string): Socket =>
      Object.assign(new EventEmitter(), { remoteAddress: address }) as unknown as Socket;
    const tcp = g.forListener('tcp://127.0.0.1:5060');
    const tls = g.forListener('tls://127.0.0.1:5061');
    const first = sock('192.0.2.1');
    expect([
      tcp.admitConnection(first),
      tls.admitConnection(sock('192.0.2.2')),
      tcp.admitConnection(sock('192.0.2.3')),
    ]).toEqual([true, true, true]);
    expect(tls.admitConnection(sock('192.0.2.4'))).toBe(false);
    expect(g.stats).toMatchObject({
      connectionsRefused: 1,
      connectionsOverGlobalCap: 1,
      connectionsOverSourceCap: 0,
    });
    first.emit('close');
    expect(g.openConnections).toBe(2);
    expect(tls.admitConnection(sock('192.0.2.4'))).toBe(true);
    g.close();
  });

  it('a new connection is a rate-limit hit: a flood of them bans the source; exempt networks are not counted', () => {
    const { logger } = capture();
    let now = 0;
    const g = new Guard(
      guardSettings({
        rate: { requests: 3, windowMs: 1000, banMs: 10_000, maxSources: 100, exempt: ['198.51.100.0/24'] },
      }),
      { logger, now: () => now },
    );
    const lg = g.forListener('tls://127.0.0.1:5061');
    const sock = (address: string): Socket =>
      Object.assign(new EventEmitter(), { remoteAddress: address }) as unknown as Socket;
    const opened = Array.from({ length: 5 }, () => lg.admitConnection(sock('192.0.2.1')));
    expect(opened).toEqual([true, true, true, false, false]);
    expect(g.stats.bans).toBe(1);
    // The ban covers its requests too.
    expect(lg.admit(source('192.0.2.1'))).toBe('drop');
    expect(Array.from({ length: 5 }, () => lg.admitConnection(sock('198.51.100.7'))).every(Boolean)).toBe(
      true,
    );
    now = 10_001;
    expect(lg.admitConnection(sock('192.0.2.1'))).toBe(true);
    g.close();
  });

  it('a drop policy refuses a TCP connection from outside its networks before any request', () => {
    const { logger } = capture();
    const g = new Guard(
      guardSettings({
        access: { action: 'drop', logIntervalMs: 0, rules: [{ networks: ['10.0.0.0/8'], certificates: [] }] },
      }),
      { logger },
    );
    const lg = g.forListener('tcp://127.0.0.1:5060');
    const sock = (address: string): Socket =>
      Object.assign(new EventEmitter(), { remoteAddress: address }) as unknown as Socket;
    expect(lg.admitConnection(sock('192.0.2.1'))).toBe(false);
    expect(lg.admitConnection(sock('10.0.0.1'))).toBe(true);
    g.close();
  });
});
