// Live reload of the real service on loopback: edits by rename, in place and by ConfigMap-style
// symlink swap take effect; a bad edit is refused with file:line and the last good table keeps
// serving; SIPp load across several reloads sees no failed call.
import dgram from 'node:dgram';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { probe } from '../../src/cli/sip-probe.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { requireSipp, runSipp } from '../helpers/sipp.js';
import { jsonLines } from '../helpers/log-lines.js';

const SERVER = 'listen:\n  - udp://127.0.0.1:0\nlog:\n  level: info\n';
const endpoints = (extra = '', mode = 'redirect'): string =>
  `endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: ${mode}\n${extra}`;

let dir: string;
let server: RunningServer | undefined;
let lines: Record<string, unknown>[];

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(configDir: string): Promise<RunningServer> {
  lines = [];
  const sink = jsonLines(lines);
  server = await startServer({ configDir, logger: pino({ level: 'info' }, sink), reloadDebounceMs: 50 });
  return server;
}

async function status(s: RunningServer, user = 'ocschat'): Promise<number | undefined> {
  const udp = s.addresses().find((a) => a.transport === 'udp')!;
  const r = await probe({
    host: '127.0.0.1',
    port: udp.port,
    method: 'INVITE',
    uri: `sip:${user}@contoso.com`,
    timeoutMs: 2000,
  });
  return r.final?.status;
}

async function until<T>(what: string, f: () => T | Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 60; i++) {
    last = await f();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: last saw ${JSON.stringify(last)}`);
}

const reloadLines = (msg: string): Record<string, unknown>[] =>
  lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith(msg));

describe('live reload', () => {
  it('sees save-by-rename and in-place writes, logs what changed, applies within a second', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-'));
    await writeFile(join(dir, 'server.yaml'), SERVER);
    await writeFile(join(dir, 'endpoints.yaml'), endpoints());
    const s = await start(dir);
    expect(await status(s, 'chat')).toBe(404);

    // An editor's save: write a new file, rename it over the old one.
    await writeFile(
      join(dir, '.endpoints.yaml.swp'),
      endpoints(
        '  - sipAddress: sip:chat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n',
      ),
    );
    await rename(join(dir, '.endpoints.yaml.swp'), join(dir, 'endpoints.yaml'));
    const t0 = Date.now();
    await until(
      'the new endpoint served',
      () => status(s, 'chat'),
      (v) => v === 302,
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(reloadLines('reload applied')[0]).toMatchObject({
      trigger: 'watch',
      added: ['sip:chat@contoso.com'],
      removed: [],
      modified: [],
    });

    // In place: the mode changes, and the log says modified.
    await writeFile(join(dir, 'endpoints.yaml'), endpoints('', 'proxy'));
    await until(
      'the reload logged',
      () => reloadLines('reload applied').length,
      (n) => n >= 2,
    );
    expect(reloadLines('reload applied').at(-1)).toMatchObject({
      removed: ['sip:chat@contoso.com'],
      modified: ['sip:ocschat@contoso.com'],
    });
    expect(s.table().lookupUri('sip:ocschat@contoso.com')?.mode).toBe('proxy');
  });

  it('follows a Kubernetes ConfigMap ..data symlink swap', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-cm-'));
    const v1 = join(dir, '..2026_01');
    const v2 = join(dir, '..2026_02');
    await mkdir(v1);
    await mkdir(v2);
    await writeFile(join(v1, 'server.yaml'), SERVER);
    await writeFile(join(v1, 'endpoints.yaml'), endpoints());
    await writeFile(join(v2, 'server.yaml'), SERVER);
    await writeFile(
      join(v2, 'endpoints.yaml'),
      endpoints('', 'redirect').replace('pcpool.contoso.com', 'pcpool2.contoso.com'),
    );
    await symlink('..2026_01', join(dir, '..data'));
    await symlink('..data/server.yaml', join(dir, 'server.yaml'));
    await symlink('..data/endpoints.yaml', join(dir, 'endpoints.yaml'));
    const s = await start(dir);
    expect(s.table().lookupUri('sip:ocschat@contoso.com')?.poolFqdn).toBe('pcpool.contoso.com');
    // What the kubelet does: a new symlink beside the old, renamed over it.
    await symlink('..2026_02', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await until(
      'the swap applied',
      () => s.table().lookupUri('sip:ocschat@contoso.com')?.poolFqdn,
      (v) => v === 'pcpool2.contoso.com',
    );
  });

  it('refuses a bad edit with file:line, keeps serving the last good table, then takes the fix', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-bad-'));
    await writeFile(join(dir, 'server.yaml'), SERVER);
    await writeFile(join(dir, 'endpoints.yaml'), endpoints());
    const s = await start(dir);
    const good = s.table();
    await writeFile(
      join(dir, 'endpoints.yaml'),
      endpoints('  - sipAddress: sip:OCSChat@contoso.com\n    poolFqdn: pcpool.contoso.com\n'),
    );
    const refused = await until(
      'refusal logged',
      () => reloadLines('reload refused'),
      (l) => l.length > 0,
    );
    expect(refused[0]).toMatchObject({ level: 50, trigger: 'watch' });
    expect((refused[0]?.['issues'] as string[])[0]).toBe(
      `${join(dir, 'endpoints.yaml')}:5:17: endpoints[1].sipAddress: duplicate address sip:OCSChat@contoso.com (first defined at line 2 as sip:ocschat@contoso.com)`,
    );
    expect(s.table()).toBe(good);
    expect(await status(s)).toBe(302);
    const explicit = await s.reload('api');
    expect(explicit.ok).toBe(false);

    await writeFile(join(dir, 'endpoints.yaml'), endpoints('', 'proxy'));
    await until(
      'the fix applied',
      () => s.table().lookupUri('sip:ocschat@contoso.com')?.mode,
      (m) => m === 'proxy',
    );
    expect(await s.metrics.text()).toMatch(/pchat_config_reloads_total\{result="refused"\} 2/);
  });

  it('security.secretFile keys answers as the same secret inline does; a changed secret waits for a restart', async () => {
    // The To tag of a stateless 302 is derived from the request with the secret: one INVITE, sent
    // alike to services keyed by a file and inline, gets the same tag; another secret, another tag.
    // One client socket for every request, so the INVITEs are alike to the byte (their Via too).
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    onTestFinished(() => void sock.close());
    const toTag = (s: RunningServer): Promise<string> => {
      const port = s.addresses().find((a) => a.transport === 'udp')!.port;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer')), 3000);
        sock.once('message', (m) => {
          clearTimeout(timer);
          resolve(/^To: .*;tag=([^;\r]+)/m.exec(m.toString('latin1'))?.[1] ?? '');
        });
        sock.send(
          `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bKsecret1\r\n` +
            'From: <sip:a@contoso.com>;tag=f1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: secret-file@test\r\n' +
            'CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
          port,
          '127.0.0.1',
        );
      });
    };
    const tagWith = async (security: string): Promise<string> => {
      dir = await mkdtemp(join(tmpdir(), 'pchat-reload-secret-'));
      await writeFile(join(dir, 'secret'), 'one-secret-for-every-instance\n');
      await writeFile(join(dir, 'server.yaml'), `${SERVER}security:\n${security}`);
      await writeFile(join(dir, 'endpoints.yaml'), endpoints());
      const tag = await toTag(await start(dir));
      await server!.close();
      server = undefined;
      await rm(dir, { recursive: true, force: true });
      return tag;
    };
    const fromFile = await tagWith('  secretFile: secret\n');
    expect(fromFile).not.toBe('');
    expect(await tagWith('  secret: one-secret-for-every-instance\n')).toBe(fromFile);
    expect(await tagWith('  secret: another-secret-altogether\n')).not.toBe(fromFile);
    // A running service keeps the secret it started with: its dialogs' routes were signed with it.
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-secret-'));
    await writeFile(join(dir, 'secret'), 'one-secret-for-every-instance\n');
    await writeFile(join(dir, 'server.yaml'), `${SERVER}security:\n  secretFile: secret\n`);
    await writeFile(join(dir, 'endpoints.yaml'), endpoints());
    const s = await start(dir);
    await writeFile(join(dir, 'server.yaml'), `${SERVER}security:\n  secret: another-secret-altogether\n`);
    expect(await s.reload('api')).toMatchObject({ ok: true, restartNeeded: ['security'] });
    expect(await toTag(s)).toBe(fromFile);
  });

  it('reports server.yaml changes that need a restart, applying none of them', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-srv-'));
    await writeFile(join(dir, 'server.yaml'), SERVER);
    await writeFile(join(dir, 'endpoints.yaml'), endpoints());
    const s = await start(dir);
    const before = s.addresses();
    await writeFile(
      join(dir, 'server.yaml'),
      'listen:\n  - udp://127.0.0.1:0\n  - tcp://127.0.0.1:0\nlog:\n  level: warn\n',
    );
    const r = await s.reload('api');
    expect(r).toMatchObject({ ok: true, restartNeeded: ['listen'] });
    expect(s.addresses()).toEqual(before);
    expect(s.logger.level).toBe('info'); // a logger handed in by the caller is left alone
    expect(
      lines.some(
        (l) => l['msg'] === 'server.yaml: listen changed: not applied, restart the service to apply',
      ),
    ).toBe(true);
  });

  it('SIPp load across several reloads: no failed call', async () => {
    requireSipp();
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-load-'));
    await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\nlog:\n  level: warn\n');
    await writeFile(join(dir, 'endpoints.yaml'), endpoints());
    const s = await start(dir);
    const udp = s.addresses().find((a) => a.transport === 'udp')!;
    const calls = 600;
    const load = runSipp({
      scenario: 'redirect-uac',
      target: { host: '127.0.0.1', port: udp.port },
      transport: 'udp',
      calls,
      rate: 200,
      vars: { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' },
      timeoutMs: 20_000,
    });
    let reloads = 0;
    let done = false;
    void load.then(() => (done = true));
    for (let i = 0; i < 12 && !done; i++) {
      await new Promise((r) => setTimeout(r, 200));
      // Alternate an unrelated endpoint in and out: the table is swapped under the load each time.
      const extra =
        i % 2 === 0 ? `  - sipAddress: sip:x${i}@contoso.com\n    poolFqdn: pcpool.contoso.com\n` : '';
      await writeFile(join(dir, 'endpoints.yaml.tmp'), endpoints(extra));
      await rename(join(dir, 'endpoints.yaml.tmp'), join(dir, 'endpoints.yaml'));
      const r = await s.reload('api');
      if (r.ok) reloads++;
    }
    const result = await load;
    expect(reloads).toBeGreaterThanOrEqual(3);
    expect(
      { exit: result.exitCode, ok: result.successful, failed: result.failed },
      result.errors.slice(0, 1000),
    ).toEqual({
      exit: 0,
      ok: calls,
      failed: 0,
    });
  }, 40_000);
});
