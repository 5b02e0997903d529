// Reloads that cannot wedge, balloon or leak: the real service on loopback with its configuration in a
// temp folder, and endpoints.yaml replaced by a FIFO, a symlink out of the folder (/etc/passwd,
// /dev/zero), a file far over the size limit; a read stuck behind a full thread pool; the folder
// deleted and recreated under a live watch. Each time the last good table keeps serving and a later
// good edit is applied.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, symlink, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { probe } from '../../src/cli/sip-probe.js';
import { startServer, type ReloadResult, type RunningServer } from '../../src/server/server.js';
import { jsonLines } from '../helpers/log-lines.js';

const endpoints = (user = 'ocschat'): string =>
  `endpoints:\n  - sipAddress: sip:${user}@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n`;

let dir: string;
let outside: string | undefined;
let server: RunningServer | undefined;
let lines: Record<string, unknown>[];
/** FIFOs a reader may still wait on (the old code's): opened for writing at teardown to free it. */
const fifos: string[] = [];

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr.toString()}`);
  fifos.push(path);
}

/** A reader blocked opening `path` gets a writer, then end of file. */
function release(path: string): boolean {
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

afterEach(async () => {
  for (const f of fifos.splice(0)) release(f);
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
  if (outside !== undefined) await rm(outside, { recursive: true, force: true });
  outside = undefined;
});

async function start(opts: { server?: string; watch?: boolean } = {}): Promise<RunningServer> {
  dir = await mkdtemp(join(tmpdir(), 'pchat-reload-safety-'));
  await writeFile(join(dir, 'server.yaml'), opts.server ?? serverYaml());
  await writeFile(join(dir, 'endpoints.yaml'), endpoints());
  lines = [];
  server = await startServer({
    configDir: dir,
    logger: pino({ level: 'info' }, jsonLines(lines)),
    watch: opts.watch ?? false,
    reloadDebounceMs: 50,
  });
  return server;
}

function serverYaml(extra = ''): string {
  return `listen:\n  - udp://127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${extra}`;
}

/** Rejects when `p` has not settled within `ms`: what a wedged reload looks like from outside. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
    }),
  ]);
}

async function status(s: RunningServer, user: string): Promise<number | undefined> {
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

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An edit as an editor saves it: a new file renamed over the old one (or over a FIFO). */
async function save(name: string, text: string): Promise<void> {
  await writeFile(join(dir, `.${name}.tmp`), text);
  await rename(join(dir, `.${name}.tmp`), join(dir, name));
}

const msgs = (): string[] => lines.map((l) => String(l['msg']));

describe('a reload that cannot wedge', () => {
  it('endpoints.yaml replaced by a FIFO is refused at once; a later good edit still applies', async () => {
    const s = await start();
    const fifo = join(dir, 'endpoints.yaml');
    await rm(fifo);
    mkfifo(fifo);
    const t0 = performance.now();
    const refused = await within(3000, 'reload of a FIFO', s.reload('api'));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(refused.ok).toBe(false);
    expect(refused.issues).toEqual([`${fifo}: is a FIFO (named pipe), not a regular file: not read`]);
    expect(await status(s, 'ocschat')).toBe(302);
    // The reloads behind it are not held up.
    await save('endpoints.yaml', endpoints('chat'));
    const applied = await within(3000, 'the reload after the FIFO', s.reload('api'));
    expect(applied.ok).toBe(true);
    expect(await status(s, 'chat')).toBe(302);
  });

  it('a read stuck behind a full thread pool gives up after config.readTimeout; the queue moves on', async () => {
    const s = await start({ server: serverYaml('config:\n  readTimeout: 300\n') });
    // Every file operation of the process runs on libuv's pool (4 threads unless configured): fill it
    // with opens of FIFOs nobody writes to, as a hung mount would.
    outside = await mkdtemp(join(tmpdir(), 'pchat-stuck-'));
    const n = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
    const blocked: string[] = [];
    const held: Promise<FileHandle>[] = [];
    for (let i = 0; i < n; i++) {
      const f = join(outside, `pipe${i}`);
      mkfifo(f);
      blocked.push(f);
      held.push(open(f, 'r'));
    }
    let results: ReloadResult[];
    try {
      // Two reloads queued while the pool is stuck: both settle, refused, each within its timeouts.
      const t0 = performance.now();
      results = await within(
        4000,
        'reloads during a stuck read',
        Promise.all([s.reload('api'), s.reload('api')]),
      );
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      // Free the pool (a FIFO open for reading completes once a writer opens it).
      for (let tries = 0; tries < 100 && blocked.some((f) => !release(f)); tries++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      for (const fh of await Promise.all(held)) await fh.close();
    }
    for (const r of results) {
      expect(r.ok).toBe(false);
      expect(r.issues[0]).toBe(
        `${join(dir, 'server.yaml')}: could not be read within 300 ms (config.readTimeout): given up`,
      );
    }
    expect(await status(s, 'ocschat')).toBe(302);
    await save('endpoints.yaml', endpoints('chat'));
    expect((await within(3000, 'the reload after', s.reload('api'))).ok).toBe(true);
    expect(await status(s, 'chat')).toBe(302);
  });
});

describe('a reload that reads only what it should', () => {
  it('a symlink to /etc/passwd is refused unread: its content is in no log line and not in the POST /reload answer', async () => {
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const firstLine = passwd.split('\n')[0]!;
    expect(firstLine.length).toBeGreaterThan(5);
    const s = await start();
    await rm(join(dir, 'endpoints.yaml'));
    await symlink('/etc/passwd', join(dir, 'endpoints.yaml'));
    const a = s.adminAddress()!;
    const res = await fetch(`http://${a.host}:${a.port}/reload`, { method: 'POST' });
    const body = await res.text();
    expect(res.status).toBe(409);
    expect((JSON.parse(body) as ReloadResult).issues).toEqual([
      `${join(dir, 'endpoints.yaml')}: resolves to /etc/passwd, outside the configuration folder ${dir}: symlinks are followed only within it; not read`,
    ]);
    const logged = JSON.stringify(lines);
    for (const text of [body, logged]) {
      expect(text).not.toContain(firstLine);
      expect(text).not.toContain('/bin/');
    }
    expect(await status(s, 'ocschat')).toBe(302);
  });

  it('a symlink to /dev/zero is refused without reading a byte; RSS stays put', async () => {
    const s = await start();
    await rm(join(dir, 'endpoints.yaml'));
    await symlink('/dev/zero', join(dir, 'endpoints.yaml'));
    const rss0 = process.memoryUsage().rss;
    const r = await within(3000, 'reload of /dev/zero', s.reload('api'));
    const grown = process.memoryUsage().rss - rss0;
    expect(r.issues).toEqual([
      `${join(dir, 'endpoints.yaml')}: resolves to /dev/zero, outside the configuration folder ${dir}: symlinks are followed only within it; not read`,
    ]);
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    expect(await status(s, 'ocschat')).toBe(302);
  });

  it('a ConfigMap-style ..data layout is followed within the folder and its swap is picked up; a link out of it is not', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-reload-cm-'));
    for (const [v, user] of [
      ['..2026_01_01_00_00_00.1', 'ocschat'],
      ['..2026_01_02_00_00_00.2', 'chat'],
    ] as const) {
      await mkdir(join(dir, v));
      await writeFile(join(dir, v, 'server.yaml'), serverYaml());
      await writeFile(join(dir, v, 'endpoints.yaml'), endpoints(user));
    }
    await symlink('..2026_01_01_00_00_00.1', join(dir, '..data'));
    await symlink('..data/server.yaml', join(dir, 'server.yaml'));
    await symlink('..data/endpoints.yaml', join(dir, 'endpoints.yaml'));
    lines = [];
    const s = (server = await startServer({
      configDir: dir,
      logger: pino({ level: 'info' }, jsonLines(lines)),
      reloadDebounceMs: 50,
    }));
    expect(await status(s, 'ocschat')).toBe(302);
    // The kubelet's swap: a new ..data link renamed over the old one.
    await symlink('..2026_01_02_00_00_00.2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await until('the swap applied', async () => (await status(s, 'chat')) === 302);
    // A link to a regular YAML file in another folder is refused all the same.
    outside = await mkdtemp(join(tmpdir(), 'pchat-outside-'));
    await writeFile(join(outside, 'endpoints.yaml'), endpoints('elsewhere'));
    await symlink(join(outside, 'endpoints.yaml'), join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, 'endpoints.yaml'));
    const r = await s.reload('api');
    expect(r.ok).toBe(false);
    expect(r.issues[0]).toMatch(
      /endpoints\.yaml: resolves to .*pchat-outside-.*, outside the configuration folder/,
    );
    expect(await status(s, 'chat')).toBe(302);
    expect(await status(s, 'elsewhere')).toBe(404);
  });

  it('a file over config.maxFileSize is refused unread with its size and the limit; RSS does not grow', async () => {
    const s = await start();
    const file = join(dir, 'endpoints.yaml');
    // 64 MiB without writing them: a sparse file.
    const fh = await open(join(dir, '.big'), 'w');
    await fh.truncate(64 * 1024 * 1024);
    await fh.close();
    await rename(join(dir, '.big'), file);
    const rss0 = process.memoryUsage().rss;
    const r = await within(5000, 'reload of a 64 MiB file', s.reload('api'));
    const grown = process.memoryUsage().rss - rss0;
    expect(r.issues).toEqual([
      `${file}: is 67108864 bytes, over the limit of 4194304 bytes (config.maxFileSize): not read`,
    ]);
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    // The limit is server.yaml's to set; a new value applies to endpoints.yaml in the same reload.
    await save('server.yaml', serverYaml('config:\n  maxFileSize: 4096\n'));
    await save('endpoints.yaml', endpoints('chat') + `# ${'x'.repeat(5000)}\n`);
    const small = await s.reload('api');
    expect(small.issues).toEqual([
      `${file}: is ${endpoints('chat').length + 5003} bytes, over the limit of 4096 bytes (config.maxFileSize): not read`,
    ]);
    await save('endpoints.yaml', endpoints('chat'));
    expect((await s.reload('api')).ok).toBe(true);
    expect(await status(s, 'chat')).toBe(302);
  });
});

describe('a watch that dies comes back', () => {
  it('the config folder deleted and recreated: lost and back in the log, and a later edit applied', async () => {
    const s = await start({ watch: true });
    await rm(dir, { recursive: true, force: true });
    await until('the loss logged', () =>
      msgs().some((m) => m.startsWith('configuration folder no longer watched')),
    );
    const lost = lines.find((l) => String(l['msg']).startsWith('configuration folder no longer watched'))!;
    expect(lost['level']).toBe(40);
    expect(await status(s, 'ocschat')).toBe(302);
    await mkdir(dir);
    await writeFile(join(dir, 'server.yaml'), serverYaml());
    await writeFile(join(dir, 'endpoints.yaml'), endpoints('chat'));
    await until('back in the log', () => msgs().includes('configuration folder watched again'));
    const back = lines.find((l) => l['msg'] === 'configuration folder watched again')!;
    expect(back['level']).toBe(30);
    // What was written while nobody watched is read once the watch is back...
    await until('the recreated folder applied', async () => (await status(s, 'chat')) === 302);
    // ...and an edit after that is seen by the new watch.
    await save('endpoints.yaml', endpoints('persistentchat'));
    await until('the edit applied', async () => (await status(s, 'persistentchat')) === 302);
  });
});
