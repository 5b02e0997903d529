// server.yaml → settings (src/server/settings.ts): an empty file gives the schema's documented
// defaults, and a value written in server.yaml is the value the layer gets, section by section. A
// default supplied anywhere but the schema (a mapper's `??`, a constant in a layer) fails here.

import { describe, expect, it } from 'vitest';
import { serviceSettingsFrom } from '../../src/server/settings.js';
import { defaultSettings, serverConfig } from '../helpers/settings.js';

describe('server.yaml to settings', () => {
  it('an empty server.yaml gives the defaults the schema documents (config/server.yaml)', () => {
    expect(serviceSettingsFrom(serverConfig(''))).toEqual({
      // RFC 3261 §17.1.1.1: T1 500 ms, T2 4 s, T4 5 s.
      timers: { t1: 500, t2: 4000, t4: 5000 },
      serverHeader: 'pchat-endpoint',
      router: { maxHeaders: 256, maxLineLength: 8192, maxTransactions: 200_000, retryAfter: 5 },
      proxy: {
        recordRoute: false,
        timerCMs: 181_000,
        holdDownMs: 30_000,
        noTargetRetryAfter: 30,
        defaultTransport: 'tls',
        dnsServers: [],
        probe: { intervalMs: 10_000, timeoutMs: 5_000, upThreshold: 2, downThreshold: 2 },
      },
      lookup: {
        sessionExpires: 1800,
        idleTimeoutMs: 120_000,
        maxDialogs: 10_000,
        maxBodyBytes: 16_384,
        maxUnackedPerSource: 8,
      },
      guard: {
        access: { action: 'reject', logIntervalMs: 60_000, rules: [], trustIdentity: [] },
        rate: undefined,
        maxConnectionsPerSource: 256,
        maxConnections: 10_000,
      },
      transport: {
        maxMessageSize: 65535,
        udpEngine: 'auto',
        inbound: { handshakeMs: 5_000, messageMs: 10_000, idleMs: 600_000 },
        outbound: { connectTimeoutMs: 5_000, idleTimeoutMs: 600_000 },
      },
      admin: undefined,
      drainTimeMs: 10_000,
      secret: undefined,
    });
  });

  it('the test helper is the same mapping of the same parse', () => {
    expect(defaultSettings()).toEqual(serviceSettingsFrom(serverConfig('')));
    expect(defaultSettings('lookup:\n  maxDialogs: 3\n').lookup.maxDialogs).toBe(3);
  });

  it('sip: timers, Server header, message size and UDP engine reach their settings', () => {
    const s = defaultSettings(
      'sip:\n  t1: 300\n  t2: 3000\n  t4: 4000\n  serverHeader: edge-1\n  maxMessageSize: 4096\n  udpEngine: dgram\n',
    );
    expect(s.timers).toEqual({ t1: 300, t2: 3000, t4: 4000 });
    expect(s.serverHeader).toBe('edge-1');
    expect(s.transport.maxMessageSize).toBe(4096);
    expect(s.transport.udpEngine).toBe('dgram');
  });

  it('limits: parser limits, transaction cap, Retry-After and connection timers reach router and transports', () => {
    const s = defaultSettings(
      [
        'limits:',
        '  maxHeaders: 100',
        '  maxLineLength: 1000',
        '  maxTransactions: 7',
        '  overloadRetryAfter: 9',
        '  tcp:',
        '    maxConnectionsPerSource: 3',
        '    maxConnections: 40',
        '    handshakeTimeout: 1100',
        '    messageTimeout: 2200',
        '    idleTimeout: 3300',
        '',
      ].join('\n'),
    );
    expect(s.router).toEqual({ maxHeaders: 100, maxLineLength: 1000, maxTransactions: 7, retryAfter: 9 });
    expect(s.transport.inbound).toEqual({ handshakeMs: 1100, messageMs: 2200, idleMs: 3300 });
    // Connections to pool members close after the same quiet time (README: flood protection).
    expect(s.transport.outbound.idleTimeoutMs).toBe(3300);
    expect(s.guard.maxConnectionsPerSource).toBe(3);
    expect(s.guard.maxConnections).toBe(40);
  });

  it('proxy: forwarding, failover, DNS, probing and member connections reach proxy mode and the connectors', () => {
    const s = defaultSettings(
      [
        'proxy:',
        '  recordRoute: true',
        '  timerC: 200000',
        '  holdDown: 1234',
        '  noMemberRetryAfter: 17',
        '  transport: tcp',
        '  connectTimeout: 2345',
        '  dns:',
        '    servers: ["127.0.0.1:5353"]',
        '  probe:',
        '    interval: 700',
        '    timeout: 300',
        '    upThreshold: 4',
        '    downThreshold: 5',
        '',
      ].join('\n'),
    );
    expect(s.proxy).toEqual({
      recordRoute: true,
      timerCMs: 200_000,
      holdDownMs: 1234,
      noTargetRetryAfter: 17,
      defaultTransport: 'tcp',
      dnsServers: ['127.0.0.1:5353'],
      probe: { intervalMs: 700, timeoutMs: 300, upThreshold: 4, downThreshold: 5 },
    });
    expect(s.transport.outbound.connectTimeoutMs).toBe(2345);
    expect(defaultSettings('proxy:\n  probe:\n    enabled: false\n').proxy.probe).toBe(false);
  });

  it('lookup: every setting reaches the lookup service', () => {
    const s = defaultSettings(
      'lookup:\n  sessionExpires: 90\n  idleTimeout: 5000\n  maxDialogs: 12\n  maxBodyBytes: 512\n  maxUnackedPerSource: 2\n',
    );
    expect(s.lookup).toEqual({
      sessionExpires: 90,
      idleTimeoutMs: 5000,
      maxDialogs: 12,
      maxBodyBytes: 512,
      maxUnackedPerSource: 2,
    });
  });

  it('access and limits.rate reach the guard, listener names as listener ids', () => {
    const s = defaultSettings(
      [
        'listen: ["udp://127.0.0.1:5070"]',
        'access:',
        '  action: drop',
        '  logInterval: 5',
        '  allow:',
        '    - listen: udp://127.0.0.1:5070',
        '      networks: [10.0.0.0/8]',
        'limits:',
        '  rate:',
        '    requests: 10',
        '    window: 2000',
        '    ban: 3000',
        '    maxSources: 50',
        '    exempt: [192.0.2.1]',
        '',
      ].join('\n'),
    );
    expect(s.guard.access).toEqual({
      action: 'drop',
      logIntervalMs: 5,
      rules: [{ listeners: ['udp://127.0.0.1:5070'], networks: ['10.0.0.0/8'], certificates: [] }],
      trustIdentity: [],
    });
    expect(s.guard.rate).toEqual({
      requests: 10,
      windowMs: 2000,
      banMs: 3000,
      maxSources: 50,
      exempt: ['192.0.2.1'],
    });
  });

  it('admin: the listen address and who may call the port reach the admin server', () => {
    expect(defaultSettings('admin: {}\n').admin?.listen).toEqual({ host: '127.0.0.1', port: 9090 });
    const s = defaultSettings(
      [
        'admin:',
        '  listen: "[::1]:9191"',
        '  hosts: [admin.contoso.com]',
        '  allowOrigins: [https://grafana.contoso.com]',
        '  tokenFile: admin.token',
        '',
      ].join('\n'),
    );
    expect(s.admin).toEqual({
      listen: { host: '::1', port: 9191 },
      access: {
        hosts: ['admin.contoso.com'],
        allowOrigins: ['https://grafana.contoso.com'],
        token: undefined,
        tokenFile: 'admin.token',
      },
    });
  });

  it('shutdown: drainTime is the drain time', () => {
    expect(defaultSettings('shutdown:\n  drainTime: 2500\n').drainTimeMs).toBe(2500);
  });

  it('security: the secret is the key the router signs with', () => {
    expect(defaultSettings('security:\n  secret: 0123456789abcdef-xyz\n').secret).toBe(
      '0123456789abcdef-xyz',
    );
  });
});
