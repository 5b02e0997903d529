// endpoints.yaml: what the schema and its rules accept, and where each refusal is reported.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { checkEndpointsConfig, parseEndpointsConfig } from '../../src/config/load.js';

const FILE = 'config/endpoints.yaml';

/** The lines of the ConfigError thrown for `text`, or a failure when nothing is thrown. */
function refusal(text: string): string[] {
  try {
    parseEndpointsConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('PCHAT_ERR_CONFIG_INVALID');
    return (err as ConfigError).message.split('\n');
  }
  expect.fail('the configuration was accepted');
}

/** A one-endpoint file; `sipAddress` values start at column 17, `poolFqdn` values at column 15. */
const one = (sipAddress: string, poolFqdn = 'pcpool.contoso.com'): string =>
  `endpoints:\n  - sipAddress: ${sipAddress}\n    poolFqdn: ${poolFqdn}\n`;

describe('endpoints.yaml accepted', () => {
  it('fills defaults: mode proxy, enabled, no pools', () => {
    const cfg = parseEndpointsConfig(one('sip:ocschat@contoso.com'), FILE);
    expect(cfg).toEqual({
      endpoints: [
        {
          sipAddress: 'sip:ocschat@contoso.com',
          poolFqdn: 'pcpool.contoso.com',
          mode: 'proxy',
          enabled: true,
        },
      ],
      pools: [],
    });
  });

  it('takes every field, and pool targets with q', () => {
    const cfg = parseEndpointsConfig(
      [
        'endpoints:',
        '  - sipAddress: sip:groupchat@fabrikam.com',
        '    poolFqdn: PCPool.Fabrikam.com.',
        '    displayName: Lookup',
        '    mode: lookup',
        '    enabled: false',
        '    lookupUris: [sip:pcpool.fabrikam.com, sips:pc1.fabrikam.com;transport=tls]',
        'pools:',
        '  - fqdn: pcpool.fabrikam.com',
        '    targets:',
        '      - uri: sip:pc1.fabrikam.com:5041;transport=TLS',
        '        q: 1.0',
        '      - uri: sips:pc2.fabrikam.com',
      ].join('\n'),
      FILE,
    );
    expect(cfg.endpoints[0]).toMatchObject({ mode: 'lookup', enabled: false, displayName: 'Lookup' });
    expect(cfg.pools).toEqual([
      {
        fqdn: 'pcpool.fabrikam.com',
        targets: [{ uri: 'sip:pc1.fabrikam.com:5041;transport=TLS', q: 1 }, { uri: 'sips:pc2.fabrikam.com' }],
      },
    ]);
  });

  it('reads a key left empty (every entry commented out) as an empty list, with a warning for endpoints', () => {
    const { config, warnings } = checkEndpointsConfig(
      'endpoints:\n  # - sipAddress: sip:a@b.com\npools:\n',
      FILE,
    );
    expect(config).toEqual({ endpoints: [], pools: [] });
    expect(warnings.map((w) => `${w.line} ${w.path} ${w.reason}`)).toEqual([
      '1 endpoints no endpoints: every request will be answered 404 Not Found',
    ]);
  });

  it('warns about (but accepts) a pool no endpoint uses and lookupUris outside lookup mode', () => {
    const text = [
      'endpoints:',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool.contoso.com',
      '    lookupUris: [sip:pcpool.contoso.com]',
      'pools:',
      '  - fqdn: PCPool.contoso.com',
      '  - fqdn: spare.contoso.com',
    ].join('\n');
    const { warnings } = checkEndpointsConfig(text, FILE);
    expect(warnings).toEqual([
      {
        file: FILE,
        line: 4,
        column: 5,
        path: 'endpoints[0].lookupUris',
        reason: 'ignored: only used in mode lookup (mode is proxy)',
      },
      {
        file: FILE,
        line: 7,
        column: 11,
        path: 'pools[1].fqdn',
        reason: 'pool spare.contoso.com is not used by any endpoint',
      },
    ]);
  });
});

describe('endpoints.yaml refused, at file:line:column', () => {
  it('a duplicate address, naming the first definition', () => {
    const text = [
      'endpoints:',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool.contoso.com',
      '    displayName: Group Chat',
      '    mode: redirect',
      '    enabled: true',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool.contoso.com',
    ].join('\n');
    expect(refusal(text)).toEqual([
      'config/endpoints.yaml:7:17: endpoints[1].sipAddress: duplicate address sip:ocschat@contoso.com (first defined at line 2)',
    ]);
  });

  it('a duplicate address that differs only in case (the table key is the canonical AOR)', () => {
    const text =
      one('sip:ocschat@contoso.com') +
      '  - sipAddress: sip:OCSChat@Contoso.COM\n    poolFqdn: pcpool.contoso.com\n';
    expect(refusal(text)).toEqual([
      `${FILE}:4:17: endpoints[1].sipAddress: duplicate address sip:OCSChat@Contoso.COM (first defined at line 2 as sip:ocschat@contoso.com)`,
    ]);
  });

  it.each([
    ['ocschat@contoso.com', 'must use the sip: prefix and a valid domain, e.g. sip:ocschat@contoso.com'],
    ['tel:+15551234', 'must use the sip: prefix and a valid domain, e.g. sip:ocschat@contoso.com'],
    [
      'sips:ocschat@contoso.com',
      'must use the sip: prefix, not sips: (a request for the sips: form is matched by the same entry)',
    ],
    ['sip:contoso.com', 'has no user part (expected sip:user@domain, e.g. sip:ocschat@contoso.com)'],
    ['sip:ocschat@10.0.0.1', 'domain "10.0.0.1" is an IP address, expected a domain name'],
    [
      'sip:ocschat@contoso',
      'domain "contoso" is not fully qualified (expected at least two labels, e.g. contoso.com)',
    ],
    ['sip:ocschat@contoso.com:5061', 'must not have a port: an endpoint is an address, not a next hop'],
    [
      'sip:ocschat@contoso.com;transport=tls',
      'must not have URI parameters (";..."): an endpoint is an address',
    ],
    ['"sip:ocschat@contoso.com?subject=hi"', 'must not have URI headers ("?..."): an endpoint is an address'],
  ])('sipAddress %s', (address, reason) => {
    expect(refusal(one(address))).toEqual([`${FILE}:2:17: endpoints[0].sipAddress: ${reason}`]);
  });

  it('a sipAddress the SIP grammar rejects, with the parser reason', () => {
    expect(refusal(one('"sip:oc schat@contoso.com"'))).toEqual([
      `${FILE}:2:17: endpoints[0].sipAddress: is not a valid SIP URI (whitespace in URI) (expected sip:user@domain, e.g. sip:ocschat@contoso.com)`,
    ]);
  });

  it('a sipAddress whose domain ends with a dot (requests never match it)', () => {
    expect(refusal(one('sip:ocschat@contoso.com.'))).toEqual([
      `${FILE}:2:17: endpoints[0].sipAddress: must not end the domain with a dot`,
    ]);
  });

  it.each([
    ['sip:pcpool.contoso.com', 'must be a bare domain name, without a scheme (e.g. pcpool.contoso.com)'],
    ['https://pcpool.contoso.com', 'must be a bare domain name, without a scheme (e.g. pcpool.contoso.com)'],
    [
      'pcpool.contoso.com:5041',
      'must not have a port (pool members with ports are listed under pools[].targets)',
    ],
    ['pcpool', '"pcpool" is not fully qualified (expected at least two labels, e.g. contoso.com)'],
    [
      'pc_pool.contoso.com',
      '"pc_pool.contoso.com" has an invalid label "pc_pool" (letters, digits and inner hyphens only)',
    ],
    ['pcpool..contoso.com', '"pcpool..contoso.com" has an empty label'],
    ['192.0.2.10', '"192.0.2.10" is an IP address, expected a domain name'],
  ])('poolFqdn %s', (fqdn, reason) => {
    expect(refusal(one('sip:ocschat@contoso.com', fqdn))).toEqual([
      `${FILE}:3:15: endpoints[0].poolFqdn: ${reason}`,
    ]);
  });

  it('an unknown key, at the key, with a suggestion, and the required key it displaced', () => {
    const text = 'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFdqn: pcpool.contoso.com\n';
    expect(refusal(text)).toEqual([
      `${FILE}:2:5: endpoints[0].poolFqdn: is required`,
      `${FILE}:3:5: endpoints[0].poolFdqn: unknown key "poolFdqn" (did you mean "poolFqdn"?); allowed keys: sipAddress, poolFqdn, displayName, mode, enabled, recordRoute, lookupUris, homing, maintenance, maintenanceUntil`,
    ]);
  });

  it('an unknown top-level key and a missing endpoints list', () => {
    expect(refusal('endpoint:\n  - sipAddress: sip:ocschat@contoso.com\n')).toEqual([
      `${FILE}:1:1: endpoints: is required`,
      `${FILE}:1:1: endpoint: unknown key "endpoint" (did you mean "endpoints"?); allowed keys: endpoints, pools`,
    ]);
  });

  it('an empty file: endpoints is required', () => {
    expect(refusal('')).toEqual([`${FILE}:1:1: endpoints: is required`]);
  });

  it('wrong types and values, each at its value', () => {
    const text = [
      'endpoints:',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool.contoso.com',
      '    mode: redirct',
      '    enabled: yes',
      '    displayName: [a, b]',
      '  - 42',
    ].join('\n');
    expect(refusal(text)).toEqual([
      `${FILE}:4:11: endpoints[0].mode: expected one of "proxy", "redirect", "lookup", got "redirct"`,
      `${FILE}:5:14: endpoints[0].enabled: expected true or false, got "yes"`,
      `${FILE}:6:18: endpoints[0].displayName: expected a string, got a list`,
      `${FILE}:7:5: endpoints[1]: expected a mapping, got 42`,
    ]);
  });

  it('an empty value, at its key', () => {
    expect(refusal('endpoints:\n  - sipAddress:\n    poolFqdn: pcpool.contoso.com\n')).toEqual([
      `${FILE}:2:5: endpoints[0].sipAddress: expected a string, got an empty value`,
    ]);
  });

  it('pool targets: bad URI, bad transport, q out of range, unknown key; a pool listed twice', () => {
    const text = [
      'endpoints:',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool.contoso.com',
      'pools:',
      '  - fqdn: pcpool.contoso.com',
      '    targets:',
      '      - uri: http://pc1.contoso.com',
      '      - uri: sip:pc2.contoso.com:65536;transport=sctp',
      '        q: 1.5',
      '      - uri: sip:pc3.contoso.com;transport=sctp',
      '        weight: 2',
      '  - fqdn: PCPOOL.contoso.com.',
    ].join('\n');
    expect(refusal(text)).toEqual([
      `${FILE}:7:14: pools[0].targets[0].uri: must be a sip: or sips: URI`,
      `${FILE}:8:14: pools[0].targets[1].uri: is not a valid SIP URI (port out of range)`,
      `${FILE}:9:12: pools[0].targets[1].q: must be at most 1, got 1.5`,
      `${FILE}:10:14: pools[0].targets[2].uri: transport "sctp" is not one of udp, tcp, tls, ws, wss`,
      `${FILE}:11:9: pools[0].targets[2].weight: unknown key "weight"; allowed keys: uri, q`,
      `${FILE}:12:11: pools[1].fqdn: duplicate pool pcpool.contoso.com (first defined at line 5)`,
    ]);
  });

  it('collects every problem in one pass, in file order, the cross-entry ones included', () => {
    const text = [
      'endpoints:',
      '  - sipAddress: sip:ocschat@contoso.com',
      '    poolFqdn: pcpool', // 3: not an FQDN
      '  - sipAddress: sip:ocschat@contoso.com', // 4: duplicate
      '    poolFqdn: pcpool.contoso.com',
      '    mode: relay', // 6: bad mode
      '  - sipAddress: chat@contoso.com', // 7: no sip:
      '    poolFqdn: pcpool.contoso.com',
      '    colour: blue', // 9: unknown key
    ].join('\n');
    expect(refusal(text).map((l) => l.split(': ')[0])).toEqual([
      `${FILE}:3:15`,
      `${FILE}:4:17`,
      `${FILE}:6:11`,
      `${FILE}:7:17`,
      `${FILE}:9:5`,
    ]);
  });

  it('a YAML syntax error, at its line, and nothing else', () => {
    const text =
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: "pcpool.contoso.com\n    mode: wrong\n';
    const lines = refusal(text);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^config\/endpoints\.yaml:5:1: YAML syntax error: /);
  });

  it('a key written twice in one mapping', () => {
    const text =
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: a.contoso.com\n    poolFqdn: b.contoso.com\n';
    expect(refusal(text)).toEqual([`${FILE}:4:5: YAML syntax error: Map keys must be unique`]);
  });

  it('an alias to an anchor never defined', () => {
    expect(refusal('endpoints:\n  - *nowhere\n')).toEqual([
      `${FILE}:2:5: YAML syntax error: no anchor &nowhere before this alias`,
    ]);
  });
});
