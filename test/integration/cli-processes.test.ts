// The built command line as separate processes: concurrent edits both land (the lock), a crash between
// write and rename leaves the old file whole (the atomic replace), and trace --live against a running
// `serve` that SIGHUP reloads. Runs dist/ (npm test builds it first).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { freePort } from '../helpers/sipp.js';
import { cliProcess, type CliProcessResult as Result } from '../helpers/cli.js';
import { CLI } from '../helpers/serve-process.js';

const run = cliProcess;

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

  it('get | head: the reader leaving early ends the command quietly, no EPIPE stack trace', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-cli-proc-'));
    await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\n');
    const rows = Array.from(
      { length: 3000 },
      (_, i) =>
        `  - { sipAddress: sip:chat${i}@contoso.com, poolFqdn: pcpool.contoso.com, mode: redirect }\n`,
    );
    await writeFile(join(dir, 'endpoints.yaml'), `endpoints:\n${rows.join('')}`);
    // `head -c 1`: a reader that closes the pipe after its first byte, as `| head -1` does.
    const r = spawnSync(
      'sh',
      ['-c', `"${process.execPath}" "${CLI}" get -c "${dir}" | head -c 1 >/dev/null`],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    expect(r.stderr).not.toContain('EPIPE');
    expect(r.status).toBe(0);
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

describe('configuration files that are not what they seem', () => {
  const mkfifo = (path: string): void => {
    const r = spawnSync('mkfifo', [path]);
    if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr.toString()}`);
  };
  const release = (path: string): void => {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader waiting: nothing to free.
    }
  };

  it('check refuses a FIFO in place of endpoints.yaml at once, as a folder and as a file', async () => {
    await freshDir();
    const fifo = join(dir, 'endpoints.yaml');
    await rm(fifo);
    mkfifo(fifo);
    for (const args of [
      ['check', '-c', dir],
      ['check', fifo],
    ]) {
      const t0 = performance.now();
      const r = await run(args, {}, 5_000);
      expect(performance.now() - t0).toBeLessThan(3_000);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(3);
      expect(r.err).toContain(`${fifo}: is a FIFO (named pipe), not a regular file: not read`);
    }
  }, 20_000);

  it('serve: a FIFO reload is refused, a good edit after it applies, and SIGTERM still stops the process', async () => {
    await freshDir('listen:\n  - udp://127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n');
    const child = spawn(process.execPath, [CLI, 'serve', '-c', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const waitFor = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 100 && !pattern.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      if (!pattern.test(out)) throw new Error(`never logged ${pattern}: ${out}`);
    };
    const fifo = join(dir, 'endpoints.yaml');
    try {
      await waitFor(/"msg":"endpoint table loaded/);
      await rm(fifo);
      mkfifo(fifo);
      child.kill('SIGHUP');
      await waitFor(/"trigger":"SIGHUP"[^\n]*"msg":"reload refused[^\n]*is a FIFO \(named pipe\)/);
      await writeFile(
        join(dir, '.endpoints.yaml.tmp'),
        `${ENDPOINTS}  - sipAddress: sip:chat@contoso.com\n    poolFqdn: pcpool.contoso.com\n`,
      );
      await rename(join(dir, '.endpoints.yaml.tmp'), fifo);
      child.kill('SIGHUP');
      await waitFor(/"msg":"reload applied: 1 added/);
      const t0 = performance.now();
      child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r('still running'), 5_000)),
      ]);
      expect(code).toBe(0);
      expect(performance.now() - t0).toBeLessThan(5_000);
    } finally {
      release(fifo);
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
  }, 30_000);

  it('a reload of a 4 MiB endpoints.yaml does not stall SIP (answers keep coming within a generous bound); SIGTERM during one exits at once', async () => {
    const port = await freePort(['udp']);
    await freshDir(`listen:\n  - udp://127.0.0.1:${port}\nlog:\n  level: info\n  pretty: false\n`);
    await writeFile(join(dir, 'endpoints.yaml'), bigEndpoints(4 * 1024 * 1024 - 4096));
    const child = spawn(process.execPath, [CLI, 'serve', '-c', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const waitFor = async (pattern: RegExp, ms: number): Promise<void> => {
      for (let t = 0; t < ms && !pattern.test(out); t += 50) await new Promise((r) => setTimeout(r, 50));
      if (!pattern.test(out)) throw new Error(`never logged ${pattern}: ${out.slice(-2000)}`);
    };
    const socket = createSocket('udp4');
    try {
      await waitFor(/"msg":"endpoint table loaded/, 20_000);
      await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
      // An OPTIONS every 10 ms; the longest wait for an answer is how long SIP was held up.
      const sent = new Map<string, number>();
      const latencies: number[] = [];
      socket.on('message', (msg) => {
        const id = /^Call-ID: (\S+)/im.exec(msg.toString())?.[1];
        const t = id === undefined ? undefined : sent.get(id);
        if (t !== undefined && id !== undefined) {
          latencies.push(performance.now() - t);
          sent.delete(id);
        }
      });
      let n = 0;
      const lport = socket.address().port;
      const timer = setInterval(() => {
        const id = `lat${n++}`;
        sent.set(id, performance.now());
        socket.send(
          `OPTIONS sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${lport};branch=z9hG4bK${id}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=${id}\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
          port,
          '127.0.0.1',
        );
      }, 10);
      try {
        await new Promise((r) => setTimeout(r, 300));
        const before = latencies.length;
        expect(before).toBeGreaterThan(5);
        await appendFile(
          join(dir, 'endpoints.yaml'),
          '  - sipAddress: sip:late@contoso.com\n    poolFqdn: pcpool.contoso.com\n',
        );
        await waitFor(/"msg":"reload applied: 1 added/, 20_000);
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        clearInterval(timer);
      }
      // Unanswered probes count with the time they have waited so far.
      const now = performance.now();
      const worst = Math.max(...latencies, ...[...sent.values()].map((t) => now - t));
      // The target is 100 ms (measured in the report); the bound leaves room for a loaded test machine.
      expect(worst).toBeLessThan(500);

      // SIGTERM while the next large reload is being checked: the check is abandoned, the process exits.
      await appendFile(
        join(dir, 'endpoints.yaml'),
        '  - sipAddress: sip:later@contoso.com\n    poolFqdn: pcpool.contoso.com\n',
      );
      child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r('still running'), 5_000)),
      ]);
      expect(child.exitCode ?? code).toBe(0);
      // Not after the check: a check on the event loop held the signal for as long as it ran (1.5-3 s).
      expect(performance.now() - t0).toBeLessThan(1_000);
    } finally {
      socket.close();
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
  }, 60_000);
});

/** A valid endpoints.yaml of about `bytes` bytes: thousands of endpoints over twenty pools. */
function bigEndpoints(bytes: number): string {
  const parts = ['endpoints:\n'];
  let size = parts[0]!.length;
  for (let i = 0; size < bytes; i++) {
    const e = `  - sipAddress: sip:chat${i}@contoso${i % 50}.com\n    poolFqdn: pcpool${i % 20}.contoso.com\n    displayName: Group chat room number ${i}\n    mode: redirect\n`;
    parts.push(e);
    size += e.length;
  }
  return `${parts.join('')}  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n`;
}
