// server.yaml: defaults, listen addresses, and where each refusal is reported.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseServerConfig } from '../../src/config/load.js';
import { parseListenAddress } from '../../src/config/schema.js';

const FILE = 'config/server.yaml';

function refusal(text: string): string[] {
  try {
    parseServerConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.split('\n');
  }
  expect.fail('the configuration was accepted');
}

const DEFAULTS = {
  listen: [
    { transport: 'udp', host: '127.0.0.1', port: 5060, family: 4 },
    { transport: 'tcp', host: '127.0.0.1', port: 5060, family: 4 },
  ],
  log: { level: 'info', pretty: 'auto' },
  sip: {
    maxMessageSize: 65535,
    t1: 500,
    t2: 4000,
    t4: 5000,
    serverHeader: 'pchat-endpoint',
    udpEngine: 'auto',
  },
  admin: { listen: undefined, hosts: [], allowOrigins: [] },
  proxy: {
    recordRoute: false,
    timerC: 181_000,
    holdDown: 30_000,
    noMemberRetryAfter: 30,
    transport: 'tls',
    connectTimeout: 5_000,
    dns: { servers: [] },
    probe: { enabled: true, interval: 10_000, timeout: 5_000, upThreshold: 2, downThreshold: 2 },
  },
  lookup: {
    sessionExpires: 1800,
    idleTimeout: 120_000,
    maxDialogs: 10_000,
    maxBodyBytes: 16_384,
    maxUnackedPerSource: 8,
  },
  limits: {
    maxHeaders: 256,
    maxLineLength: 8192,
    maxTransactions: 200_000,
    overloadRetryAfter: 5,
    tcp: {
      maxConnectionsPerSource: 256,
      maxConnections: 10_000,
      handshakeTimeout: 5_000,
      messageTimeout: 10_000,
      idleTimeout: 600_000,
    },
    rate: { requests: 0, window: 1000, ban: 60_000, maxSources: 100_000, exempt: [] },
  },
  access: { action: 'reject', logInterval: 60_000, allow: [], trustIdentity: [] },
  shutdown: { drainTime: 10_000 },
  security: {},
  config: { maxFileSize: 4 * 1024 * 1024, readTimeout: 5_000, maxUserTableSize: 256 * 1024 * 1024 },
  engine: 'native',
};

describe('server.yaml accepted', () => {
  it('an empty file means every default', () => {
    expect(parseServerConfig('', FILE)).toEqual(DEFAULTS);
    expect(parseServerConfig('# nothing\n', FILE)).toEqual(DEFAULTS);
  });

  it('the proxy section: Timer C above 3 minutes, DNS servers as IP[:port]', () => {
    expect(refusal('proxy:\n  timerC: 60000\n')[0]).toMatch(
      /^config\/server.yaml:2:11: proxy.timerC: must be at least 180001/,
    );
    expect(refusal('proxy:\n  dns:\n    servers: [dns.example.com]\n')[0]).toMatch(
      /proxy.dns.servers\[0\]: "dns.example.com" is not an IP address/,
    );
    const cfg = parseServerConfig(
      'proxy:\n  recordRoute: true\n  dns:\n    servers: ["127.0.0.1:5353", "[::1]:53"]\n',
      FILE,
    );
    expect(cfg.proxy.recordRoute).toBe(true);
    expect(cfg.proxy.dns.servers).toEqual(['127.0.0.1:5353', '[::1]:53']);
  });

  it('sections left empty take their defaults', () => {
    expect(parseServerConfig('listen:\nlog:\nsip:\n', FILE)).toEqual(DEFAULTS);
  });

  it('a partial section keeps the defaults of the keys it leaves out', () => {
    const cfg = parseServerConfig('log:\n  pretty: false\nsip:\n  t1: 250\n  serverHeader: ""\n', FILE);
    expect(cfg.log).toEqual({ level: 'info', pretty: false });
    expect(cfg.sip).toEqual({ ...DEFAULTS.sip, t1: 250, serverHeader: '' });
  });

  it.each([
    ['udp://127.0.0.1:5060', { transport: 'udp', host: '127.0.0.1', port: 5060, family: 4 }],
    ['TCP://0.0.0.0:0', { transport: 'tcp', host: '0.0.0.0', port: 0, family: 4 }],
    ['udp://[::1]:5070', { transport: 'udp', host: '::1', port: 5070, family: 6 }],
    ['tcp://[::]', { transport: 'tcp', host: '::', port: 5060, family: 6 }],
    ['udp://192.0.2.1', { transport: 'udp', host: '192.0.2.1', port: 5060, family: 4 }],
  ])('listen %s', (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected);
  });
});

describe('server.yaml refused, at file:line:column', () => {
  it.each([
    ['sctp://127.0.0.1:5060', 'transport "sctp" is not supported (supported: udp, tcp, tls, ws, wss)'],
    ['127.0.0.1:5060', 'expected transport://host:port (e.g. udp://127.0.0.1:5060), got "127.0.0.1:5060"'],
    [
      'udp://localhost:5060',
      'host "localhost" is not an IP address (use 0.0.0.0 or [::] for every interface)',
    ],
    ['udp://::1:5060', 'write an IPv6 address in brackets, e.g. udp://[::1]:5060'],
    ['udp://[::1:5060', 'missing "]" after the IPv6 address in "udp://[::1:5060"'],
    ['udp://[127.0.0.1]:5060', '"127.0.0.1" is not an IPv6 address'],
    ['udp://127.0.0.1:65536', 'port "65536" is not a number from 0 to 65535'],
    ['udp://127.0.0.1:sip', 'port "sip" is not a number from 0 to 65535'],
    ['udp://:5060', 'missing host in "udp://:5060" (use 0.0.0.0 or [::] for every interface)'],
  ])('listen %s', (entry, reason) => {
    expect(refusal(`listen:\n  - udp://127.0.0.1:5060\n  - ${entry}\n`)).toEqual([
      `${FILE}:3:5: listen[1]: ${reason}`,
    ]);
  });

  it('the same listen address twice (port 0 excepted)', () => {
    const text =
      'listen:\n  - udp://127.0.0.1:5060\n  - udp://127.0.0.1:0\n  - udp://127.0.0.1:0\n  - UDP://127.0.0.1\n';
    expect(refusal(text)).toEqual([`${FILE}:5:5: listen[3]: same address as listen[0]`]);
  });

  it('an empty listen list', () => {
    expect(refusal('listen: []\n')).toEqual([`${FILE}:1:9: listen: must have at least 1 entry, got 0`]);
  });

  it('every problem in the file at once, each at its value or key', () => {
    const text = [
      'listen:',
      '  - udp://127.0.0.1:5060',
      'log:',
      '  level: verbose', // 4
      '  pretty: sometimes', // 5
      'sip:',
      '  t1: 0.5', // 7
      '  t2: 4000',
      '  maxMessageSize: 100', // 9
      '  serverHeader: "a\\r\\nInjected: yes"', // 10
      '  timerB: 32000', // 11
      'metrics: {}', // 12
    ].join('\n');
    expect(refusal(text)).toEqual([
      `${FILE}:4:10: log.level: expected one of "trace", "debug", "info", "warn", "error", "silent", got "verbose"`,
      `${FILE}:5:11: log.pretty: expected "auto" or true or false, got "sometimes"`,
      `${FILE}:7:7: sip.t1: expected a whole number, got 0.5`,
      `${FILE}:9:19: sip.maxMessageSize: must be at least 512, got 100`,
      `${FILE}:10:17: sip.serverHeader: must not contain control characters`,
      `${FILE}:11:3: sip.timerB: unknown key "timerB"; allowed keys: maxMessageSize, t1, t2, t4, serverHeader, udpEngine`,
      `${FILE}:12:1: metrics: unknown key "metrics"; allowed keys: listen, log, sip, admin, proxy, lookup, tls, limits, access, shutdown, security, config, engine, drachtio, hep`,
    ]);
  });

  it('an unknown UDP engine', () => {
    expect(refusal('sip:\n  udpEngine: epoll\n')).toEqual([
      `${FILE}:2:14: sip.udpEngine: expected one of "auto", "native", "dgram", got "epoll"`,
    ]);
  });

  it('t2 below t1', () => {
    expect(refusal('sip:\n  t1: 5000\n  t2: 4000\n')).toEqual([
      `${FILE}:3:7: sip.t2: must not be less than t1 (5000)`,
    ]);
  });

  it('a YAML syntax error, at its line', () => {
    const lines = refusal('log:\n  level: info\n\tpretty: true\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^config\/server\.yaml:3:1: YAML syntax error: /);
  });

  it('a document that is not a mapping', () => {
    expect(refusal('- udp://127.0.0.1:5060\n')).toEqual([`${FILE}:1:1: expected a mapping, got a list`]);
  });
});

describe('server.yaml: the drachtio engine', () => {
  it('engine: drachtio with inbound servers takes the defaults for the rest', () => {
    const cfg = parseServerConfig(
      'engine: drachtio\ndrachtio:\n  servers:\n    - { host: 127.0.0.1, secret: cymru }\n',
      FILE,
    );
    expect(cfg.engine).toBe('drachtio');
    expect(cfg.drachtio).toEqual({
      servers: [{ host: '127.0.0.1', port: 9022, secret: 'cymru' }],
      reconnect: { max: 30_000 },
      provisionalTimeout: 2000,
      finalTimeout: 32_000,
    });
  });

  it('outbound: listen with its default address and port', () => {
    const cfg = parseServerConfig('engine: drachtio\ndrachtio:\n  listen: { secret: s3cret }\n', FILE);
    expect(cfg.drachtio?.listen).toEqual({ address: '127.0.0.1', port: 9023, secret: 's3cret' });
  });

  it('engine: drachtio without its section, both directions, neither, or a server without a secret are refused where they are', () => {
    expect(refusal('engine: drachtio\n')).toEqual([
      `${FILE}:1:9: engine: drachtio needs the drachtio section (servers to connect to, or listen)`,
    ]);
    expect(
      refusal(
        'engine: drachtio\ndrachtio:\n  servers: [{ host: 127.0.0.1, secret: a }]\n  listen: { secret: b }\n',
      )[0],
    ).toMatch(/^config\/server.yaml:3:3: drachtio: give servers .* or listen .*, one of them/);
    expect(refusal('engine: drachtio\ndrachtio:\n  reconnect: { max: 1000 }\n')[0]).toMatch(/one of them/);
    expect(refusal('engine: drachtio\ndrachtio:\n  servers:\n    - { host: 127.0.0.1 }\n')[0]).toMatch(
      /^config\/server.yaml:4:7: drachtio.servers\[0\].secret: /,
    );
    expect(refusal('engine: kamailio\n')[0]).toMatch(
      /^config\/server.yaml:1:9: engine: expected one of "native", "drachtio"/,
    );
  });

  it('outbound on a wildcard address needs advertise: drachtio-servers cannot connect to 0.0.0.0', () => {
    expect(refusal('engine: drachtio\ndrachtio:\n  listen: { address: 0.0.0.0, secret: s }\n')[0]).toMatch(
      /drachtio.listen.advertise: listening on 0.0.0.0: give advertise/,
    );
    const cfg = parseServerConfig(
      'engine: drachtio\ndrachtio:\n  listen: { address: 0.0.0.0, secret: s, advertise: 10.0.0.5:9023 }\n',
      FILE,
    );
    expect(cfg.drachtio?.listen?.advertise).toBe('10.0.0.5:9023');
  });
});

describe('server.yaml: hep', () => {
  it('collectors as udp://address[:port], 9060 when none is given; id 2001 by default; off when left out', () => {
    const cfg = parseServerConfig(
      'hep:\n  targets: [udp://127.0.0.1:9061, "udp://[::1]", udp://10.0.0.9]\n  password: s3cret\n',
      FILE,
    );
    expect(cfg.hep).toEqual({
      targets: [
        { url: 'udp://127.0.0.1:9061', host: '127.0.0.1', port: 9061, family: 4 },
        { url: 'udp://[::1]', host: '::1', port: 9060, family: 6 },
        { url: 'udp://10.0.0.9', host: '10.0.0.9', port: 9060, family: 4 },
      ],
      id: 2001,
      password: 's3cret',
    });
    expect(parseServerConfig('listen: [udp://127.0.0.1:5060]\n', FILE).hep).toBeUndefined();
    expect(parseServerConfig('hep: off\n', FILE).hep).toBeUndefined();
    expect(parseServerConfig('hep:\n  targets:\n  id: 7\n', FILE).hep).toEqual({ targets: [], id: 7 });
  });

  it('refuses what names no collector it can send to, each at its value', () => {
    expect(
      refusal(
        [
          'hep:', // 1
          '  targets:', // 2
          '    - tcp://127.0.0.1:9060', // 3
          '    - udp://homer.contoso.com:9060', // 4
          '    - udp://0.0.0.0:9060', // 5
          '    - udp://127.0.0.1:0', // 6
          '  id: -1', // 7
        ].join('\n'),
      ),
    ).toEqual([
      `${FILE}:3:7: hep.targets[0]: expected udp://host:port (e.g. udp://10.0.0.9:9060), got "tcp://127.0.0.1:9060"`,
      `${FILE}:4:7: hep.targets[1]: host "homer.contoso.com" is not an IP address (a collector is named by address)`,
      `${FILE}:5:7: hep.targets[2]: 0.0.0.0 names no collector`,
      `${FILE}:6:7: hep.targets[3]: port 0 names no collector`,
      `${FILE}:7:7: hep.id: must be at least 0, got -1`,
    ]);
  });
});
