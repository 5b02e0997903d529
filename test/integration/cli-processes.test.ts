// The built command line as separate processes: concurrent edits both land (the lock), a crash between
// write and rename leaves the old file whole (the atomic replace), and trace --live against a running
// `serve` that SIGHUP reloads. Runs dist/ (npm test builds it first).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { freePort } from '../helpers/sipp.js';

const CLI = resolve(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<Result> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, out, err });
    });
  });
}

let dir: string;
const ENDPOINTS = `# operators' notes
endpoints:
  - sipAddress: sip:ocschat@contoso.com   # the lookup URI
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
});

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function freshDir(server = 'listen:\n  - udp://127.0.0.1:0\n'): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'pchat-cli-proc-'));
  await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
  await writeFile(join(dir, 'server.yaml'), server);
  return dir;
}

describe('the command line as processes', () => {
  it('concurrent edits from several processes all land', async () => {
    await freshDir();
    const n = 4;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        run([
          'new',
          '-c',
          dir,
          '--sip-address',
          `sip:chat${i}@fabrikam.com`,
          '--pool-fqdn',
          'pcpool.fabrikam.com',
          '--mode',
          'redirect',
        ]),
      ),
    );
    for (const r of results) expect(r.code, r.err).toBe(0);
    const text = await readFile(join(dir, 'endpoints.yaml'), 'utf8');
    const cfg = parseEndpointsConfig(text, 'endpoints.yaml');
    expect(cfg.endpoints.map((e) => e.sipAddress).sort()).toEqual(
      ['sip:ocschat@contoso.com', ...Array.from({ length: n }, (_, i) => `sip:chat${i}@fabrikam.com`)].sort(),
    );
    expect(text.startsWith(ENDPOINTS)).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(['endpoints.yaml', 'server.yaml']);
  });

  it('a crash between write and rename leaves the old file intact; the next edit goes through', async () => {
    await freshDir();
    const crashed = await run(['set', '-c', dir, 'sip:ocschat@contoso.com', '--mode', 'proxy'], {
      PCHAT_TEST_CRASH_BEFORE_RENAME: '1',
    });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await readFile(join(dir, 'endpoints.yaml'), 'utf8')).toBe(ENDPOINTS);
    // The dead process left its synced temp file and its lock behind; the lock goes stale and is taken over.
    expect((await readdir(dir)).some((f) => f.endsWith('.tmp'))).toBe(true);
    const next = await run([
      'set',
      '-c',
      dir,
      'sip:ocschat@contoso.com',
      '--mode',
      'proxy',
      '--lock-timeout',
      '15000',
    ]);
    expect(next.code, next.err).toBe(0);
    expect(await readFile(join(dir, 'endpoints.yaml'), 'utf8')).toBe(
      ENDPOINTS.replace('mode: redirect', 'mode: proxy'),
    );
  }, 30_000);
});

describe('serve and trace --live', () => {
  let serve: ChildProcess | undefined;
  afterAll(() => {
    serve?.kill('SIGKILL');
  });

  it('draws the 302 of the running service, then the 503 of a window set with the CLI', async () => {
    const port = await freePort(['udp']);
    await freshDir(`listen:\n  - udp://127.0.0.1:${port}\nlog:\n  level: warn\n  pretty: false\n`);
    const child = spawn(process.execPath, [CLI, 'serve', '-c', dir], { stdio: 'ignore' });
    serve = child;
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    // Bounded polling: the service needs a moment to bind, then a moment to reload.
    const traceUntil = async (pattern: RegExp): Promise<Result> => {
      let last: Result | undefined;
      for (let i = 0; i < 40; i++) {
        last = await run(['trace', 'sip:ocschat@contoso.com', '--live', '--timeout', '1000', '-c', dir]);
        if (pattern.test(last.out)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`trace never showed ${pattern}: ${last?.out ?? ''}${last?.err ?? ''}`);
    };
    const redirect = await traceUntil(/<-+ 302 Moved Temporarily --\|/);
    expect(redirect.code, redirect.err).toBe(0);
    expect(redirect.out).toMatch(/\|-- INVITE sip:ocschat@contoso\.com -+>\|/);
    expect(redirect.out).toContain('Contact: <sip:ocschat@pcpool.contoso.com>');
    expect(redirect.out).toMatch(/\|-- ACK sip:ocschat@contoso\.com -+>\|/);
    expect(redirect.out).toContain(`pchat-endpoint 127.0.0.1:${port}`);

    const set = await run(['set', '-c', dir, 'pcpool.contoso.com', '--maintenance', 'on']);
    expect(set.code, set.err).toBe(0);
    const window = await traceUntil(/503 Service Unavailable --\|/);
    expect(window.out).toContain('Retry-After: 3600');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const silent = await run(['trace', 'sip:ocschat@contoso.com', '--live', '--timeout', '600', '-c', dir]);
    expect(silent.code).toBe(1);
    expect(silent.err).toContain(`no final answer from udp://127.0.0.1:${port} within 600 ms`);
  }, 30_000);
});

describe('serve and SIGHUP', () => {
  it('SIGHUP reloads the configuration and logs the reload with its trigger', async () => {
    await freshDir('listen:\n  - udp://127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n');
    const child = spawn(process.execPath, [CLI, 'serve', '-c', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const waitFor = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 100 && !pattern.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      if (!pattern.test(out)) throw new Error(`never logged ${pattern}: ${out}`);
    };
    try {
      await waitFor(/"msg":"endpoint table loaded/);
      child.kill('SIGHUP');
      await waitFor(/"trigger":"SIGHUP"[^\n]*"msg":"reload applied/);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 20_000);
});
