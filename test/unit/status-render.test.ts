// `pchat-endpoint status` without a network: the --admin list, what counts as a pchat-endpoint's
// /status answer, which table is the majority's and who differs, and the table and JSON drawn from it.
import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../../src/cli/exit-codes.js';
import {
  agreement,
  fleetStatus,
  formatUptime,
  parseAdminList,
  renderJson,
  renderTable,
  statusFrom,
  type InstanceReport,
} from '../../src/cli/status-command.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

function ok(admin: string, sha256: string, extra: Partial<InstanceReport> = {}): InstanceReport {
  return {
    admin,
    state: 'ok',
    ready: true,
    uptimeSeconds: 125,
    config: { sha256, endpoints: 2 },
    transactionsInFlight: 3,
    poolMembers: { up: 2, down: 1 },
    ...extra,
  } as InstanceReport;
}

const down = (admin: string): InstanceReport => ({
  admin,
  state: 'unreachable',
  error: 'unreachable: connection refused (no service listening there)',
});

function usageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.usage);
    return (err as CliError).message;
  }
  throw new Error('expected a usage error');
}

describe('--admin list', () => {
  it('takes IPv4, [IPv6] and names with ports, trimmed, in order', () => {
    expect(parseAdminList('127.0.0.2:9090, [::1]:9091,Admin.Example.invalid:80')).toEqual([
      { host: '127.0.0.2', port: 9090, label: '127.0.0.2:9090' },
      { host: '::1', port: 9091, label: '[::1]:9091' },
      { host: 'admin.example.invalid', port: 80, label: 'admin.example.invalid:80' },
    ]);
  });

  it('refuses a malformed list whole, naming the entry', () => {
    expect(usageOf(() => parseAdminList('127.0.0.1:9090,'))).toMatch(/entry 2 is empty/);
    expect(usageOf(() => parseAdminList('127.0.0.1'))).toMatch(/"127\.0\.0\.1" is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('127.0.0.1:0'))).toMatch(/is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('127.0.0.1:65536'))).toMatch(/is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('http://127.0.0.1:9090'))).toMatch(/is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('::1:9090'))).toMatch(/is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('300.0.0.1:9090'))).toMatch(/not an IPv4 address/);
    expect(usageOf(() => parseAdminList('127.0.0.1:9090;127.0.0.2:9090'))).toMatch(/is not HOST:PORT/);
    expect(usageOf(() => parseAdminList('127.0.0.1:9090,127.0.0.1:9090'))).toMatch(/listed twice/);
  });
});

describe('a /status answer', () => {
  const good = {
    service: 'pchat-endpoint',
    ready: true,
    uptimeSeconds: 5,
    config: { sha256: A, endpoints: 1 },
    transactionsInFlight: 0,
    poolMembers: { up: 0, down: 0 },
  };

  it('is ours only with the service marker and every field of the right type', () => {
    expect(statusFrom(JSON.stringify(good))).toEqual(good);
    expect(statusFrom(JSON.stringify({ ...good, extra: 1 }))).toEqual(good);
    expect(statusFrom('<html>hello</html>')).toBeUndefined();
    expect(statusFrom('null')).toBeUndefined();
    expect(statusFrom(JSON.stringify({ status: 'ok' }))).toBeUndefined();
    expect(statusFrom(JSON.stringify({ ...good, service: 'other' }))).toBeUndefined();
    expect(statusFrom(JSON.stringify({ ...good, ready: 'yes' }))).toBeUndefined();
    expect(statusFrom(JSON.stringify({ ...good, config: { sha256: 'abc', endpoints: 1 } }))).toBeUndefined();
    expect(statusFrom(JSON.stringify({ ...good, poolMembers: { up: -1, down: 0 } }))).toBeUndefined();
  });
});

describe('digest agreement', () => {
  it('one table for all: nobody differs', () => {
    const a = agreement([ok('x:1', A), ok('x:2', A), down('x:3')]);
    expect(a).toEqual({ majority: A, majorityCount: 2, differs: new Set() });
  });

  it('the odd one out differs from the majority; unreachable instances have no say', () => {
    const a = agreement([ok('x:1', A), ok('x:2', B), ok('x:3', A), down('x:4'), down('x:5')]);
    expect(a.majority).toBe(A);
    expect(a.majorityCount).toBe(2);
    expect([...a.differs]).toEqual(['x:2']);
  });

  it('a tie has no majority: every answering instance is marked', () => {
    const a = agreement([ok('x:1', A), ok('x:2', B)]);
    expect(a.majority).toBeNull();
    expect([...a.differs].sort()).toEqual(['x:1', 'x:2']);
    const three = agreement([ok('x:1', A), ok('x:2', B), ok('x:3', C), ok('x:4', A), ok('x:5', B)]);
    expect(three.majority).toBeNull();
    expect(three.differs.size).toBe(5);
  });

  it('nobody answering is no agreement problem, but not ok', () => {
    const fleet = fleetStatus([down('x:1')]);
    expect(fleet.agreement).toEqual({ majority: null, majorityCount: 0, differs: new Set() });
    expect(fleet.ok).toBe(false);
    expect(fleetStatus([ok('x:1', A), ok('x:2', A)]).ok).toBe(true);
    expect(fleetStatus([ok('x:1', A), ok('x:2', B), ok('x:3', A)]).ok).toBe(false);
  });
});

describe('rendering', () => {
  it('uptime in two units at most', () => {
    expect(formatUptime(0)).toBe('0s');
    expect(formatUptime(59)).toBe('59s');
    expect(formatUptime(252)).toBe('4m12s');
    expect(formatUptime(7500)).toBe('2h05m');
    expect(formatUptime(3 * 86_400 + 4 * 3600 + 59)).toBe('3d04h');
  });

  it('a row per instance, the odd digest marked, a line per problem', () => {
    const fleet = fleetStatus([
      ok('127.0.0.2:9090', A),
      ok('127.0.0.3:9090', B, { ready: false, uptimeSeconds: 7 }),
      ok('127.0.0.4:9090', A),
      down('127.0.0.5:9090'),
      { admin: '127.0.0.6:9090', state: 'unauthorized', error: 'answered 401: it wants a bearer token' },
    ]);
    expect(renderTable(fleet).split('\n')).toEqual([
      'Admin           Reachable  Ready  Uptime  Table           Endpoints  InFlight  PoolUp  PoolDown',
      '--------------  ---------  -----  ------  --------------  ---------  --------  ------  --------',
      '127.0.0.2:9090  yes        yes    2m05s   aaaaaaaaaaaa    2          3         2       1',
      '127.0.0.3:9090  yes        no     7s      bbbbbbbbbbbb *  2          3         2       1',
      '127.0.0.4:9090  yes        yes    2m05s   aaaaaaaaaaaa    2          3         2       1',
      '127.0.0.5:9090  no         -      -       -               -          -         -       -',
      '127.0.0.6:9090  yes        -      -       -               -          -         -       -',
      '',
      '* serves another table than the 2 of 3 answering instances on aaaaaaaaaaaa',
      '127.0.0.5:9090: unreachable: connection refused (no service listening there)',
      '127.0.0.6:9090: answered 401: it wants a bearer token',
      '',
    ]);
  });

  it('all well: the table alone', () => {
    const text = renderTable(fleetStatus([ok('127.0.0.2:9090', A), ok('127.0.0.3:9090', A)]));
    expect(text.trimEnd().split('\n')).toHaveLength(4);
    expect(text).not.toContain('*');
  });

  it('JSON: whole digests, differs per instance, reachable and the reason of each problem', () => {
    const fleet = fleetStatus([ok('x:1', A), ok('x:2', B), ok('x:3', A), down('x:4')]);
    const json = JSON.parse(renderJson(fleet)) as {
      ok: boolean;
      majority: string;
      instances: Record<string, unknown>[];
    };
    expect(json.ok).toBe(false);
    expect(json.majority).toBe(A);
    expect(json.instances.map((i) => [i['admin'], i['reachable'], i['differs']])).toEqual([
      ['x:1', true, false],
      ['x:2', true, true],
      ['x:3', true, false],
      ['x:4', false, undefined],
    ]);
    expect(json.instances[1]).toMatchObject({
      config: { sha256: B, endpoints: 2 },
      poolMembers: { up: 2, down: 1 },
    });
    expect(json.instances[3]).toMatchObject({
      state: 'unreachable',
      error: expect.stringMatching(/refused/) as unknown,
    });
  });
});
