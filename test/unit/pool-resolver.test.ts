// PoolResolver: RFC 3263 NAPTR/SRV/A resolution, TTL caching, stale answers on DNS failure and static
// overrides, against an in-memory DNS with a fake clock.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Pool } from '../../src/endpoints/endpoint.js';
import { PoolResolutionError } from '../../src/pool/errors.js';
import { PoolResolver, type PoolResolverOptions } from '../../src/pool/pool-resolver.js';
import type { AddressRecord, DnsLike, NaptrRecord, SrvRecord, Target } from '../../src/pool/types.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { jsonLines } from '../helpers/log-lines.js';
import { defaultSettings } from '../helpers/settings.js';

class DnsError extends Error {
  constructor(readonly code: string) {
    super(`query failed: ${code}`);
  }
}

/** An in-memory zone; `failing` makes every query fail as a dead server would. */
class FakeDns implements DnsLike {
  naptr = new Map<string, NaptrRecord[]>();
  srv = new Map<string, SrvRecord[]>();
  a = new Map<string, AddressRecord[]>();
  aaaa = new Map<string, AddressRecord[]>();
  failing = false;
  queries: string[] = [];

  private answer<T>(type: string, map: Map<string, T[]>, name: string): Promise<T[]> {
    this.queries.push(`${type} ${name}`);
    if (this.failing) return Promise.reject(new DnsError('ECONNREFUSED'));
    const records = map.get(name);
    return records === undefined ? Promise.reject(new DnsError('ENOTFOUND')) : Promise.resolve(records);
  }
  resolveNaptr(name: string) {
    return this.answer('NAPTR', this.naptr, name);
  }
  resolveSrv(name: string) {
    return this.answer('SRV', this.srv, name);
  }
  resolve4(name: string) {
    return this.answer('A', this.a, name);
  }
  resolve6(name: string) {
    return this.answer('AAAA', this.aaaa, name);
  }
}

const naptr = (
  order: number,
  preference: number,
  service: string,
  replacement: string,
  ttl?: number,
): NaptrRecord => ({
  flags: 'S',
  service,
  regexp: '',
  replacement,
  order,
  preference,
  ...(ttl === undefined ? {} : { ttl }),
});
const srv = (name: string, port: number, priority: number, weight: number, ttl?: number): SrvRecord => ({
  name,
  port,
  priority,
  weight,
  ...(ttl === undefined ? {} : { ttl }),
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = jsonLines(lines);
  return { logger: pino({ level: 'debug' }, sink), lines };
}

function setup(extra: Partial<PoolResolverOptions> = {}) {
  const dns = new FakeDns();
  const clock = new FakeClock();
  const { logger, lines } = capture();
  const resolver = new PoolResolver({
    dns,
    clock,
    logger,
    random: () => 0,
    defaultTransport: defaultSettings().proxy.defaultTransport,
    ...extra,
  });
  return { dns, clock, lines, resolver };
}

const pool = (fqdn: string, targets: Pool['targets'] = []): Pool => ({ fqdn, targets });
const brief = (ts: Target[]) => ts.map((t) => `${t.transport} ${t.address}:${t.port}`);

/** A Lync-style pool: NAPTR for TLS and TCP, SRV with two priorities, A records. */
function lyncZone(dns: FakeDns) {
  dns.naptr.set('pcpool.test.example', [
    naptr(20, 10, 'SIP+D2T', '_sip._tcp.pcpool.test.example'),
    naptr(10, 10, 'SIPS+D2T', '_sips._tcp.pcpool.test.example'),
  ]);
  dns.srv.set('_sips._tcp.pcpool.test.example', [
    srv('pc2.test.example', 5041, 20, 0),
    srv('pc1.test.example', 5041, 10, 0),
  ]);
  dns.srv.set('_sip._tcp.pcpool.test.example', [srv('pc1.test.example', 5060, 10, 0)]);
  dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 300 }]);
  dns.a.set('pc2.test.example', [{ address: '127.0.0.12', ttl: 300 }]);
}

describe('PoolResolver: RFC 3263 resolution', () => {
  it('follows NAPTR for the requested transport, then SRV by priority, then A', async () => {
    const { dns, resolver } = setup();
    lyncZone(dns);
    const targets = await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(brief(targets)).toEqual(['tls 127.0.0.11:5041', 'tls 127.0.0.12:5041']);
    expect(targets[0]).toEqual({
      transport: 'tls',
      host: 'pc1.test.example',
      address: '127.0.0.11',
      port: 5041,
      family: 4,
      id: 'tls:127.0.0.11:5041',
      source: 'dns',
    });
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tcp'))).toEqual([
      'tcp 127.0.0.11:5060',
    ]);
  });

  it('defaults to TLS (Lync pools) when no transport is asked for', async () => {
    const { dns, resolver } = setup();
    lyncZone(dns);
    expect(brief(await resolver.resolve(pool('pcpool.test.example')))).toEqual([
      'tls 127.0.0.11:5041',
      'tls 127.0.0.12:5041',
    ]);
  });

  it('uses the SRV name the NAPTR record gives, not the conventional one', async () => {
    const { dns, resolver } = setup();
    dns.naptr.set('pcpool.test.example', [
      naptr(10, 10, 'SIPS+D2T', '_sipinternaltls._tcp.pcpool.test.example'),
    ]);
    dns.srv.set('_sipinternaltls._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0)]);
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('wrong.test.example', 5061, 0, 0)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 60 }]);
    dns.a.set('wrong.test.example', [{ address: '127.0.0.99', ttl: 60 }]);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.11:5041',
    ]);
  });

  it('with no transport preferred, takes the transport of the lowest NAPTR order, then preference', async () => {
    const { dns, resolver } = setup({ defaultTransport: 'any' });
    dns.naptr.set('pcpool.test.example', [
      naptr(10, 20, 'SIP+D2T', '_sip._tcp.pcpool.test.example'),
      naptr(10, 10, 'SIP+D2U', '_sip._udp.pcpool.test.example'),
      naptr(5, 10, 'E2U+sip', 'ignored.test.example'), // not a SIP transport service: discarded
    ]);
    dns.srv.set('_sip._tcp.pcpool.test.example', [srv('pc1.test.example', 5070, 0, 0)]);
    dns.srv.set('_sip._udp.pcpool.test.example', [srv('pc1.test.example', 5080, 0, 0)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 60 }]);
    expect(brief(await resolver.resolve(pool('pcpool.test.example')))).toEqual(['udp 127.0.0.11:5080']);
  });

  it('without NAPTR, asks the conventional SRV name of the transport (_sips._tcp for TLS)', async () => {
    const { dns, resolver } = setup();
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 60 }]);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.11:5041',
    ]);
    expect(dns.queries).toContain('SRV _sips._tcp.pcpool.test.example');
  });

  it('without NAPTR or SRV, uses the pool name’s A/AAAA records on the default port', async () => {
    const { dns, resolver } = setup();
    dns.a.set('pcpool.test.example', [{ address: '127.0.0.20', ttl: 60 }]);
    dns.aaaa.set('pcpool.test.example', [{ address: '::1', ttl: 60 }]);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.20:5061',
      'tls ::1:5061',
    ]);
    const udp = await resolver.resolve(pool('pcpool.test.example'), 'udp');
    expect(brief(udp)).toEqual(['udp 127.0.0.20:5060', 'udp ::1:5060']);
    expect(udp[1]).toMatchObject({ family: 6, id: 'udp:::1:5060' });
  });

  it('orders equal priorities by weight with the injected random source', async () => {
    const records = [srv('pc1.test.example', 5041, 0, 10), srv('pc2.test.example', 5041, 0, 90)];
    for (const [random, first] of [
      [0, '127.0.0.11'],
      [0.5, '127.0.0.12'],
    ] as const) {
      const { dns, resolver } = setup({ random: () => random });
      dns.srv.set('_sips._tcp.pcpool.test.example', records);
      dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 60 }]);
      dns.a.set('pc2.test.example', [{ address: '127.0.0.12', ttl: 60 }]);
      const targets = await resolver.resolve(pool('pcpool.test.example'), 'tls');
      expect(targets.map((t) => t.address)).toEqual(
        first === '127.0.0.11' ? ['127.0.0.11', '127.0.0.12'] : ['127.0.0.12', '127.0.0.11'],
      );
    }
  });

  it('takes an SRV target of "." as "service decidedly not available": no A fallback', async () => {
    const { dns, resolver } = setup();
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('.', 0, 0, 0)]);
    dns.a.set('pcpool.test.example', [{ address: '127.0.0.20', ttl: 60 }]);
    expect(await resolver.resolve(pool('pcpool.test.example'), 'tls')).toEqual([]);
  });

  it('uses a pool given as an IP literal directly, without DNS', async () => {
    const { dns, resolver } = setup();
    expect(brief(await resolver.resolve(pool('127.0.0.30'), 'tcp'))).toEqual(['tcp 127.0.0.30:5060']);
    expect(dns.queries).toEqual([]);
  });
});

describe('PoolResolver: caching', () => {
  it('serves answers from cache until the shortest TTL runs out, then asks again', async () => {
    const { dns, clock, resolver } = setup({ negativeTtlMs: 60_000 });
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0, 120)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 30 }]);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    const first = dns.queries.length;
    expect(dns.queries).toContain('A pc1.test.example');

    clock.advance(29_000);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(dns.queries.length).toBe(first);

    dns.a.set('pc1.test.example', [{ address: '127.0.0.12', ttl: 30 }]);
    clock.advance(1_000);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.12:5041',
    ]);
    // Only the expired A answer was asked again; the SRV answer (TTL 120 s) still stands.
    expect(dns.queries.slice(first)).toEqual(['A pc1.test.example']);
  });

  it('believes "no such record" for negativeTtlMs only', async () => {
    const { dns, clock, resolver } = setup({ negativeTtlMs: 10_000 });
    dns.a.set('pcpool.test.example', [{ address: '127.0.0.20', ttl: 3600 }]);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0, 3600)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 3600 }]);
    clock.advance(9_999);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.20:5061',
    ]);
    clock.advance(1);
    expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
      'tls 127.0.0.11:5041',
    ]);
  });

  it('uses defaultTtlMs for records whose resolver reports no TTL (node:dns NAPTR/SRV)', async () => {
    const { dns, clock, resolver } = setup({ defaultTtlMs: 5_000 });
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 3600 }]);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5042, 0, 0)]);
    clock.advance(4_999);
    expect((await resolver.resolve(pool('pcpool.test.example'), 'tls'))[0]?.port).toBe(5041);
    clock.advance(1);
    expect((await resolver.resolve(pool('pcpool.test.example'), 'tls'))[0]?.port).toBe(5042);
  });

  it('gives a fresh plan at once through cached(), and nothing before the first resolution or after the TTL', async () => {
    const { dns, clock, resolver } = setup();
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0, 120)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 30 }]);
    const p = pool('pcpool.test.example');
    expect(resolver.cached(p, 'tls')).toBeUndefined();
    await resolver.resolve(p, 'tls');
    const queries = dns.queries.length;
    expect(brief(resolver.cached(p, 'tls')!)).toEqual(['tls 127.0.0.11:5041']);
    // Another transport has a plan of its own.
    expect(resolver.cached(p, 'tcp')).toBeUndefined();
    clock.advance(29_999);
    expect(brief(resolver.cached(p, 'tls')!)).toEqual(['tls 127.0.0.11:5041']);
    clock.advance(1);
    expect(resolver.cached(p, 'tls')).toBeUndefined();
    // cached() never asks DNS itself.
    expect(dns.queries.length).toBe(queries);
  });

  it('gives static targets through cached() once planned, per pool object (a reload plans anew)', async () => {
    const { resolver } = setup();
    const p = pool('pcpool.test.example', [{ uri: 'sip:127.0.0.5:5060;transport=udp', q: undefined }]);
    expect(resolver.cached(p)).toBeUndefined();
    await resolver.resolve(p);
    expect(brief(resolver.cached(p)!)).toEqual(['udp 127.0.0.5:5060']);
    const reloaded = pool('pcpool.test.example', [{ uri: 'sip:127.0.0.6:5060;transport=udp', q: undefined }]);
    expect(resolver.cached(reloaded)).toBeUndefined();
  });

  it('shares one query among concurrent resolutions', async () => {
    const { dns, resolver } = setup();
    lyncZone(dns);
    await Promise.all(Array.from({ length: 50 }, () => resolver.resolve(pool('pcpool.test.example'), 'tls')));
    expect(dns.queries.filter((q) => q === 'SRV _sips._tcp.pcpool.test.example')).toHaveLength(1);
  });
  it('draws the SRV weighted order anew for every request, from cached answers', async () => {
    let next = 0;
    const draws = [0, 0.5, 0, 0.5];
    const { dns, resolver } = setup({ random: () => draws[next++ % draws.length]! });
    dns.srv.set('_sips._tcp.pcpool.test.example', [
      srv('pc1.test.example', 5041, 0, 0),
      srv('pc2.test.example', 5041, 0, 100),
    ]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 60 }]);
    dns.a.set('pc2.test.example', [{ address: '127.0.0.12', ttl: 60 }]);
    const firsts: string[] = [];
    for (let i = 0; i < 4; i++)
      firsts.push((await resolver.resolve(pool('pcpool.test.example'), 'tls'))[0]!.address);
    expect(firsts).toEqual(['127.0.0.11', '127.0.0.12', '127.0.0.11', '127.0.0.12']);
    expect(dns.queries.filter((q) => q.startsWith('SRV'))).toHaveLength(1);
  });

  it('applies a reloaded pool’s static targets at once, whatever is cached for the old ones', async () => {
    const { resolver } = setup();
    const before = pool('pcpool.test.example', [{ uri: 'sip:127.0.0.5:5041;transport=tls', q: undefined }]);
    expect(brief(await resolver.resolve(before))).toEqual(['tls 127.0.0.5:5041']);
    const after = pool('pcpool.test.example', [{ uri: 'sip:127.0.0.6:5041;transport=tls', q: undefined }]);
    expect(brief(await resolver.resolve(after))).toEqual(['tls 127.0.0.6:5041']);
    // And a pool whose static targets are removed goes back to DNS.
    await expect(resolver.resolve(pool('pcpool.test.example'))).resolves.toEqual([]);
  });
});

describe('PoolResolver: DNS failure', () => {
  it('serves the last answer stale when DNS fails, logs it once per pool, and logs the recovery', async () => {
    const { dns, clock, lines, resolver } = setup({ negativeTtlMs: 5_000 });
    lyncZone(dns);
    const fresh = await resolver.resolve(pool('pcpool.test.example'), 'tls');

    dns.failing = true;
    clock.advance(3600_000);
    for (let i = 0; i < 3; i++) {
      expect(await resolver.resolve(pool('pcpool.test.example'), 'tls')).toEqual(fresh);
      clock.advance(6_000);
    }
    const stale = lines.filter((l) => l.msg === 'pool DNS lookup failed; serving the last answer');
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ level: 40, pool: 'pcpool.test.example' });
    expect(String(stale[0]?.err)).toContain('ECONNREFUSED');

    dns.failing = false;
    clock.advance(6_000);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(lines.filter((l) => l.msg === 'pool DNS answers again')).toHaveLength(1);
  });

  it('does not ask a failing server again until negativeTtlMs has passed', async () => {
    const { dns, clock, resolver } = setup({ negativeTtlMs: 5_000 });
    lyncZone(dns);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    dns.failing = true;
    clock.advance(3600_000);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    const asked = dns.queries.length;
    clock.advance(4_999);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(dns.queries.length).toBe(asked);
    clock.advance(1);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(dns.queries.length).toBeGreaterThan(asked);
  });

  it('remembers a failure with nothing cached, so requests do not each wait for the server', async () => {
    const { dns, clock, resolver } = setup({ negativeTtlMs: 5_000 });
    dns.srv.set('_sips._tcp.pcpool.test.example', [srv('pc1.test.example', 5041, 0, 0, 3600)]);
    dns.a.set('pc1.test.example', [{ address: '127.0.0.11', ttl: 3600 }]);
    dns.resolve6 = (name: string) => {
      dns.queries.push(`AAAA ${name}`);
      return Promise.reject(new DnsError('ESERVFAIL'));
    };
    for (let i = 0; i < 5; i++) {
      expect(brief(await resolver.resolve(pool('pcpool.test.example'), 'tls'))).toEqual([
        'tls 127.0.0.11:5041',
      ]);
    }
    expect(dns.queries.filter((q) => q.startsWith('AAAA'))).toHaveLength(1);
    clock.advance(5_000);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    expect(dns.queries.filter((q) => q.startsWith('AAAA'))).toHaveLength(2);
  });

  it('stops serving an answer older than maxStaleMs past its expiry', async () => {
    const { dns, clock, resolver } = setup({ maxStaleMs: 60_000, defaultTtlMs: 1_000 });
    lyncZone(dns);
    await resolver.resolve(pool('pcpool.test.example'), 'tls');
    dns.failing = true;
    clock.advance(300_000 + 60_001);
    await expect(resolver.resolve(pool('pcpool.test.example'), 'tls')).rejects.toBeInstanceOf(
      PoolResolutionError,
    );
  });

  it('rejects with PCHAT_ERR_POOL_DNS_FAILED when DNS fails and nothing was ever cached', async () => {
    const { dns, resolver } = setup();
    dns.failing = true;
    await expect(resolver.resolve(pool('pcpool.test.example'), 'tls')).rejects.toMatchObject({
      code: 'PCHAT_ERR_POOL_DNS_FAILED',
      pool: 'pcpool.test.example',
    });
  });

  it('does not fall back to the pool name’s A records when the SRV query failed', async () => {
    const { dns, resolver } = setup();
    const failingSrv = () => Promise.reject(new DnsError('ETIMEOUT'));
    dns.resolveSrv = failingSrv;
    dns.a.set('pcpool.test.example', [{ address: '127.0.0.20', ttl: 60 }]);
    await expect(resolver.resolve(pool('pcpool.test.example'), 'tls')).rejects.toBeInstanceOf(
      PoolResolutionError,
    );
  });
});

describe('PoolResolver: static targets', () => {
  it('override DNS, ordered by q then as written; a transport parameter wins, else the asked transport', async () => {
    const { dns, resolver } = setup();
    lyncZone(dns);
    dns.a.set('pc9.test.example', [{ address: '127.0.0.19', ttl: 60 }]);
    const p = pool('pcpool.test.example', [
      { uri: 'sip:127.0.0.5:5041;transport=tls', q: 0.5 },
      { uri: 'sip:pc9.test.example:5041', q: undefined },
      { uri: 'sip:[::1]:5070;transport=tcp', q: 0.5 },
      { uri: 'sips:127.0.0.6', q: 0.1 },
    ]);
    const targets = await resolver.resolve(p, 'tls');
    expect(brief(targets)).toEqual([
      'tls 127.0.0.19:5041',
      'tls 127.0.0.5:5041',
      'tcp ::1:5070',
      'tls 127.0.0.6:5061',
    ]);
    expect(targets.every((t) => t.source === 'static')).toBe(true);
    expect(targets[0]?.host).toBe('pc9.test.example');
    // Only the static host name went to DNS (A and AAAA); no NAPTR or SRV for the pool.
    expect(dns.queries.sort()).toEqual(['A pc9.test.example', 'AAAA pc9.test.example']);
  });

  it('skips a target it cannot reach (ws transport, bad URI) and logs it once', async () => {
    const { resolver, lines } = setup();
    const p = pool('pcpool.test.example', [
      { uri: 'sip:127.0.0.5:5041;transport=ws', q: undefined },
      { uri: 'sip:127.0.0.6:5041;transport=tls', q: undefined },
    ]);
    for (let i = 0; i < 3; i++)
      expect(brief(await resolver.resolve(p, 'tls'))).toEqual(['tls 127.0.0.6:5041']);
    expect(lines.filter((l) => l.msg === 'static pool target skipped')).toHaveLength(1);
  });
});
