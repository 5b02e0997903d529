// The endpoint table: lookup by canonical address-of-record, pools shared by name, defaults filled in.
import { describe, expect, it } from 'vitest';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { domainNameKey, domainNameProblem } from '../../src/endpoints/domain-name.js';
import { EndpointTable } from '../../src/endpoints/table.js';

const CONFIG = `
endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    displayName: Group Chat lookup
    mode: redirect
  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: PCPool.Contoso.com.
  - sipAddress: sip:groupchat@fabrikam.com
    poolFqdn: pcpool.fabrikam.com
    mode: lookup
    enabled: false
    lookupUris: [sip:pcpool.fabrikam.com;transport=tls]
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:pc1.contoso.com:5041;transport=tls
        q: 1
      - uri: sip:pc2.contoso.com:5041;transport=tls
  - fqdn: spare.contoso.com
`;

const table = EndpointTable.fromConfig(parseEndpointsConfig(CONFIG, 'endpoints.yaml'));

describe('EndpointTable lookup', () => {
  it.each([
    'sip:ocschat@contoso.com',
    'sip:OCSCHAT@CONTOSO.com;transport=tls',
    'sips:OCSChat@contoso.com',
    'sip:ocschat@contoso.com;maddr=192.0.2.1?subject=x',
    'sip:ocs%63hat@contoso.com',
    // Endpoint addresses have no port: a Request-URI with one (as Front Ends relay) means the same address.
    'sip:ocschat@contoso.com:5060',
    'sip:ocschat@contoso.com:5061;transport=tls',
  ])('finds sip:ocschat@contoso.com from %s', (requestUri) => {
    expect(table.lookupUri(requestUri)?.sipAddress).toBe('sip:ocschat@contoso.com');
  });

  it.each([
    'sip:ocschat@fabrikam.com',
    'sip:other@contoso.com',
    'sip:contoso.com',
    'tel:+15551234',
    'not a uri',
    '',
  ])('knows nothing of %s', (requestUri) => {
    expect(table.lookupUri(requestUri)).toBeUndefined();
  });

  it('looks up by key', () => {
    expect(table.lookupKey('persistentchat@contoso.com')?.sipAddress).toBe('sip:persistentchat@contoso.com');
    expect(table.lookupKey('sip:persistentchat@contoso.com')).toBeUndefined();
  });

  it('returns a disabled endpoint: what to answer is the router’s decision', () => {
    expect(table.lookupUri('sip:groupchat@fabrikam.com')).toMatchObject({ enabled: false, mode: 'lookup' });
  });
});

describe('EndpointTable contents', () => {
  it('has every endpoint, in file order, with defaults filled in', () => {
    expect(table.size).toBe(3);
    expect([...table]).toEqual([
      {
        sipAddress: 'sip:ocschat@contoso.com',
        key: 'ocschat@contoso.com',
        user: 'ocschat',
        poolFqdn: 'pcpool.contoso.com',
        displayName: 'Group Chat lookup',
        mode: 'redirect',
        enabled: true,
        lookupUris: ['sip:ocschat@pcpool.contoso.com'],
        pool: {
          fqdn: 'pcpool.contoso.com',
          targets: [
            { uri: 'sip:pc1.contoso.com:5041;transport=tls', q: 1 },
            { uri: 'sip:pc2.contoso.com:5041;transport=tls', q: undefined },
          ],
        },
      },
      expect.objectContaining({
        key: 'persistentchat@contoso.com',
        mode: 'proxy',
        enabled: true,
        displayName: undefined,
      }),
      expect.objectContaining({
        key: 'groupchat@fabrikam.com',
        lookupUris: ['sip:pcpool.fabrikam.com;transport=tls'],
        pool: { fqdn: 'pcpool.fabrikam.com', targets: [] },
      }),
    ]);
  });

  it('shares one Pool between endpoints naming it in any case or with a trailing dot', () => {
    const ocschat = table.lookupKey('ocschat@contoso.com');
    const persistent = table.lookupKey('persistentchat@contoso.com');
    expect(persistent?.poolFqdn).toBe('pcpool.contoso.com');
    expect(persistent?.pool).toBe(ocschat?.pool);
  });

  it('lists the pools endpoints use, once each, leaving out pools no endpoint uses', () => {
    expect([...table.pools()].map((p) => p.fqdn)).toEqual(['pcpool.contoso.com', 'pcpool.fabrikam.com']);
  });

  it('is frozen: the hot path shares it without copying', () => {
    const e = table.lookupKey('ocschat@contoso.com');
    expect(Object.isFrozen(e)).toBe(true);
    expect(Object.isFrozen(e?.pool)).toBe(true);
    expect(Object.isFrozen(e?.lookupUris)).toBe(true);
  });

  it('an empty table finds nothing', () => {
    const empty = EndpointTable.fromConfig({ endpoints: [], pools: [] });
    expect(empty.size).toBe(0);
    expect([...empty]).toEqual([]);
    expect(empty.lookupUri('sip:ocschat@contoso.com')).toBeUndefined();
  });

  it('refuses a duplicate address even when handed an unvalidated configuration', () => {
    const entry = { poolFqdn: 'pcpool.contoso.com', mode: 'proxy', enabled: true } as const;
    expect(() =>
      EndpointTable.fromConfig({
        endpoints: [
          { ...entry, sipAddress: 'sip:ocschat@contoso.com' },
          { ...entry, sipAddress: 'sip:OCSChat@contoso.com' },
        ],
        pools: [],
      }),
    ).toThrow(/duplicate address sip:OCSChat@contoso.com/);
  });
});

describe('domain names', () => {
  it.each([
    'contoso.com',
    'pcpool.contoso.com',
    'PC-1.Contoso.COM',
    'a.b',
    'pcpool.contoso.com.',
    '1pool.contoso.com',
  ])('accepts %s', (name) => {
    expect(domainNameProblem(name)).toBeUndefined();
  });

  it.each([
    ['', 'is empty'],
    ['contoso', 'is not fully qualified (expected at least two labels, e.g. contoso.com)'],
    ['10.1.2.3', 'is an IP address, expected a domain name'],
    ['[::1]', 'is an IP address, expected a domain name'],
    ['-pool.contoso.com', 'has an invalid label "-pool" (letters, digits and inner hyphens only)'],
    ['pool-.contoso.com', 'has an invalid label "pool-" (letters, digits and inner hyphens only)'],
    [
      'pool.contoso.123',
      'has an invalid top label "123" (letters, digits and inner hyphens, starting with a letter)',
    ],
    [`${'a'.repeat(64)}.com`, `has a label longer than 63 characters ("${'a'.repeat(16)}...")`],
    [`${'abcdefgh.'.repeat(28)}com`, 'is longer than 253 characters'],
  ])('refuses %j: %s', (name, reason) => {
    expect(domainNameProblem(name)).toBe(reason);
  });

  it('compares names in lower case without the trailing dot', () => {
    expect(domainNameKey('PCPool.Contoso.COM.')).toBe('pcpool.contoso.com');
  });
});

describe('homed endpoints: what lookup mode hands a caller homed on another pool', () => {
  const homedTable = EndpointTable.fromConfig(
    parseEndpointsConfig(
      `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: lookup
    lookupUris: ["sip:chat-us@pc-us.contoso.com"]
    homing: [{ callers: "*@emea.contoso.com", pool: pc-emea.contoso.com }]
pools:
  - fqdn: pc-emea.contoso.com
    lookupUris: ["sip:chat@pc-emea.contoso.com;transport=tls"]
  - fqdn: pc-apac.contoso.com
`,
      'endpoints.yaml',
    ),
  );
  const e = homedTable.lookupUri('sip:ocschat@contoso.com')!;

  it("the pool entry's lookupUris; without them, the endpoint's user at the pool's name", () => {
    expect(homedTable.homeFor(e, '<sip:marie@emea.contoso.com>').lookupUris).toEqual([
      'sip:chat@pc-emea.contoso.com;transport=tls',
    ]);
    expect(homedTable.homed(e, 'pc-apac.contoso.com', 'test').lookupUris).toEqual([
      'sip:ocschat@pc-apac.contoso.com',
    ]);
  });

  it("homed on the endpoint's own pool, the endpoint's lookupUris (written for that pool) still apply", () => {
    expect(homedTable.homed(e, 'pc-us.contoso.com', 'test').lookupUris).toEqual([
      'sip:chat-us@pc-us.contoso.com',
    ]);
  });

  it('a caller no rule matches meets the endpoint as configured', () => {
    expect(homedTable.homeFor(e, '<sip:bob@contoso.com>')).toBe(e);
  });
});
