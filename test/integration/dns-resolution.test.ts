// Pool resolution against a real DNS server (dnsmasq on 127.0.0.1): NAPTR → SRV → A as the wire
// gives them, through node:dns, and the last answer served stale once the server is gone.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/endpoints/endpoint.js';
import { createDnsResolver } from '../../src/pool/dns.js';
import { PoolResolver } from '../../src/pool/pool-resolver.js';
import type { Target } from '../../src/pool/types.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { jsonLines } from '../helpers/log-lines.js';
import { defaultSettings } from '../helpers/settings.js';

const D = 'pcpool.test.example';

let started: DnsServer | undefined;
let startError: unknown;

/**
 * The running server. A missing dnsmasq fails every test here with the install hint, rather than
 * leaving them skipped behind a failed hook, so a CI summary counts them as failed.
 */
function server(): DnsServer {
  if (started === undefined) throw startError instanceof Error ? startError : new Error(String(startError));
  return started;
}

beforeAll(async () => {
  try {
    started = await startDnsServer({
      domains: ['test.example'],
      ttl: 60,
      naptr: [
        { name: D, order: 30, preference: 10, flags: 'S', service: 'SIP+D2U', replacement: `_sip._udp.${D}` },
        {
          name: D,
          order: 10,
          preference: 10,
          flags: 'S',
          service: 'SIPS+D2T',
          replacement: `_sips._tcp.${D}`,
        },
        { name: D, order: 20, preference: 10, flags: 'S', service: 'SIP+D2T', replacement: `_sip._tcp.${D}` },
      ],
      srv: [
        // Priority 10: weight 0 and weight 100, so a pinned random source gives one order whatever
        // order the server lists them in; priority 20 always last.
        { name: `_sips._tcp.${D}`, target: `pc3.${D}`, port: 5043, priority: 20, weight: 0 },
        { name: `_sips._tcp.${D}`, target: `pc1.${D}`, port: 5041, priority: 10, weight: 0 },
        { name: `_sips._tcp.${D}`, target: `pc2.${D}`, port: 5042, priority: 10, weight: 100 },
        { name: `_sip._tcp.${D}`, target: `pc1.${D}`, port: 5060, priority: 10, weight: 0 },
        { name: `_sip._udp.${D}`, target: `pc2.${D}`, port: 5062, priority: 10, weight: 0 },
        { name: '_sips._tcp.nonaptr.test.example', target: `pc1.${D}`, port: 5051, priority: 0, weight: 0 },
      ],
      hosts: [
        { name: `pc1.${D}`, address: '127.0.0.11', ttl: 60 },
        { name: `pc2.${D}`, address: '127.0.0.12', ttl: 60 },
        { name: `pc3.${D}`, address: '127.0.0.13', ttl: 60 },
        { name: 'plain.test.example', address: '127.0.0.21', ttl: 60 },
        { name: 'static1.test.example', address: '127.0.0.31', ttl: 60 },
      ],
    });
  } catch (err) {
    startError = err;
  }
});

afterAll(async () => {
  await started?.stop();
});

function resolverWith(random: number) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, jsonLines(lines));
  const clock = new FakeClock();
  const resolver = new PoolResolver({
    dns: createDnsResolver([server().address], 300),
    clock,
    logger,
    random: () => random,
    defaultTransport: defaultSettings().proxy.defaultTransport,
  });
  return { resolver, clock, lines };
}

const pool = (fqdn: string, targets: Pool['targets'] = []): Pool => ({ fqdn, targets });
const brief = (ts: Target[]) => ts.map((t) => `${t.transport} ${t.host} ${t.address}:${t.port}`);

describe('pool resolution against a real DNS server', () => {
  it('follows NAPTR (SIPS+D2T first) to SRV, priority then weight, to A records', async () => {
    expect(brief(await resolverWith(0.5).resolver.resolve(pool(D)))).toEqual([
      `tls pc2.${D} 127.0.0.12:5042`,
      `tls pc1.${D} 127.0.0.11:5041`,
      `tls pc3.${D} 127.0.0.13:5043`,
    ]);
    // A random 0 picks the weight-0 record first (RFC 2782 puts it first in the running sum).
    expect(brief(await resolverWith(0).resolver.resolve(pool(D), 'tls'))).toEqual([
      `tls pc1.${D} 127.0.0.11:5041`,
      `tls pc2.${D} 127.0.0.12:5042`,
      `tls pc3.${D} 127.0.0.13:5043`,
    ]);
  });

  it('takes the NAPTR record of the requested transport', async () => {
    const { resolver } = resolverWith(0);
    expect(brief(await resolver.resolve(pool(D), 'tcp'))).toEqual([`tcp pc1.${D} 127.0.0.11:5060`]);
    expect(brief(await resolver.resolve(pool(D), 'udp'))).toEqual([`udp pc2.${D} 127.0.0.12:5062`]);
  });

  it('falls back to SRV without NAPTR, and to A on the default port without SRV', async () => {
    const { resolver } = resolverWith(0);
    expect(brief(await resolver.resolve(pool('nonaptr.test.example')))).toEqual([
      `tls pc1.${D} 127.0.0.11:5051`,
    ]);
    expect(brief(await resolver.resolve(pool('plain.test.example')))).toEqual([
      'tls plain.test.example 127.0.0.21:5061',
    ]);
    expect(await resolver.resolve(pool('nothing.test.example'))).toEqual([]);
  });

  it('resolves a static target’s host name through the same DNS server', async () => {
    const { resolver } = resolverWith(0);
    const p = pool(D, [
      { uri: 'sip:static1.test.example:5041;transport=tls', q: undefined },
      { uri: 'sip:127.0.0.32:5099;transport=tcp', q: undefined },
    ]);
    expect(brief(await resolver.resolve(p))).toEqual([
      'tls static1.test.example 127.0.0.31:5041',
      'tcp 127.0.0.32 127.0.0.32:5099',
    ]);
  });

  // Last: it stops the server.
  it('serves the last answer stale once the DNS server is gone, and logs it once', async () => {
    const { resolver, clock, lines } = resolverWith(0.5);
    const fresh = await resolver.resolve(pool(D));
    expect(fresh).toHaveLength(3);

    await server().stop();
    clock.advance(120_000); // past every TTL (60 s)
    const started = Date.now();
    expect(await resolver.resolve(pool(D))).toEqual(fresh);
    expect(await resolver.resolve(pool(D))).toEqual(fresh);
    expect(Date.now() - started).toBeLessThan(5_000);
    const stale = lines.filter((l) => l.msg === 'pool DNS lookup failed; serving the last answer');
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ pool: D });

    // Nothing cached for another pool: a clear failure, not an empty list.
    await expect(resolver.resolve(pool('plain.test.example'))).rejects.toMatchObject({
      code: 'PCHAT_ERR_POOL_DNS_FAILED',
    });
  });
});
