// server.yaml `admin`: the old forms stay valid, the access keys (hosts, allowOrigins, token,
// tokenFile) are checked, and the Host rule of a wildcard listen address (which no loopback-only test
// can bind).
import { describe, expect, it } from 'vitest';
import { AdminGuard } from '../../src/admin/admin-server.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseServerConfig } from '../../src/config/load.js';

const FILE = 'server.yaml';

function admin(text: string) {
  return parseServerConfig(text, FILE).admin;
}

function refusal(text: string): string {
  try {
    parseServerConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  return expect.fail('the configuration was accepted');
}

describe('server.yaml admin', () => {
  it('keeps every older form: left out, off, false, {} and a listen address', () => {
    const off = { listen: undefined, hosts: [], allowOrigins: [] };
    expect(admin('')).toEqual(off);
    expect(admin('admin: off\n')).toEqual(off);
    expect(admin('admin: false\n')).toEqual(off);
    expect(admin('admin:\n  listen: off\n')).toEqual(off);
    expect(admin('admin: {}\n')).toEqual({
      listen: { host: '127.0.0.1', port: 9090 },
      hosts: [],
      allowOrigins: [],
    });
    expect(admin('admin:\n  listen: "[::1]:9091"\n').listen).toEqual({ host: '::1', port: 9091 });
  });

  it('takes hosts, origins and a token, in lower case where case does not matter', () => {
    expect(
      admin(
        'admin:\n  hosts: [Admin.Contoso.com, "admin.contoso.com:8443", "[fd00::1]:9090"]\n' +
          '  allowOrigins: [https://Grafana.contoso.com, "http://localhost:3000"]\n' +
          '  token: 0123456789abcdef\n',
      ),
    ).toEqual({
      listen: { host: '127.0.0.1', port: 9090 },
      hosts: ['admin.contoso.com', 'admin.contoso.com:8443', '[fd00::1]:9090'],
      allowOrigins: ['https://grafana.contoso.com', 'http://localhost:3000'],
      token: '0123456789abcdef',
    });
    expect(admin('admin:\n  tokenFile: secrets/admin.token\n').tokenFile).toBe('secrets/admin.token');
  });

  it('refuses a short token, both token and tokenFile, an origin with a path and a host with a scheme', () => {
    expect(refusal('admin:\n  token: short\n')).toMatch(/admin\.token: .*at least 16 characters/);
    expect(refusal('admin:\n  token: 0123456789abcdef\n  tokenFile: t\n')).toContain(
      'admin.tokenFile: give token or tokenFile, not both',
    );
    expect(refusal('admin:\n  allowOrigins: [https://grafana.contoso.com/]\n')).toContain('is not an origin');
    expect(refusal('admin:\n  allowOrigins: ["*"]\n')).toContain('is not an origin');
    expect(refusal('admin:\n  hosts: [http://admin.contoso.com]\n')).toContain('is not a host name');
  });
});

describe('admin Host rule on a wildcard listen address', () => {
  const access = { hosts: [], allowOrigins: [], baseDir: '.' };

  it('any IP literal with the port or none, and localhost; never a name', () => {
    for (const [address, family] of [
      ['0.0.0.0', 'IPv4'],
      ['::', 'IPv6'],
    ] as const) {
      const g = new AdminGuard({ address, family, port: 9090 }, access);
      for (const host of ['10.1.2.3:9090', '127.0.0.1', '[fd00::5]:9090', 'localhost:9090', 'localhost']) {
        expect([address, host, g.host(host)]).toEqual([address, host, true]);
      }
      for (const host of ['10.1.2.3:9091', 'pchat.contoso.com:9090', 'attacker.example', '[fd00::5']) {
        expect([address, host, g.host(host)]).toEqual([address, host, false]);
      }
    }
  });
});
