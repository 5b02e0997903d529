// The npm package as a user gets it: `npm pack` ships what runs and nothing else; the tarball installs
// globally into a temporary prefix (dependencies from a registry on 127.0.0.1 serving this checkout's
// node_modules, so no network; the install script builds the UDP binding); the installed command
// writes a starter folder with `init`, serves it, edits and lists it, and refuses to edit its own
// example. Packs dist/ as built (npm test builds it first).
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackChild } from '../helpers/child-watchdog.js';
import { startLocalRegistry, type LocalRegistry } from '../helpers/local-registry.js';
import { freePort } from '../helpers/sipp.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NPM_TIMEOUT_MS = 120_000;

interface Result {
  code: number | null;
  out: string;
  err: string;
}

/** The environment without npm's own settings (npm test sets npm_config_*) and without proxies. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || /^(https?|all|no)_proxy$/i.test(k) || k === 'PCHAT_CONFIG_DIR') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<Result> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { env, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ code, out, err });
    });
  });
}

/** One INVITE over UDP; the status line of the first answer that is not 100 Trying. */
async function invite(port: number, user: string): Promise<string> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const local = socket.address().port;
    const answer = new Promise<string>((done, fail) => {
      const timer = setTimeout(() => fail(new Error('no answer within 5 s')), 5_000);
      socket.on('message', (m) => {
        const status = m.toString('latin1').split('\r\n')[0] ?? '';
        if (status.startsWith('SIP/2.0 100')) return;
        clearTimeout(timer);
        done(status);
      });
    });
    socket.send(
      `INVITE sip:${user}@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bKpkg${user}\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:alice@contoso.com>;tag=pkg\r\nTo: <sip:${user}@contoso.com>\r\n` +
        `Call-ID: pkg-${user}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:${local}>\r\nContent-Length: 0\r\n\r\n`,
      port,
      '127.0.0.1',
    );
    return await answer;
  } finally {
    socket.close();
  }
}

describe('the npm package', () => {
  let work = '';
  let tarball = '';
  let files: string[] = [];
  let registry: LocalRegistry | undefined;
  let install: Result = { code: null, out: '', err: '' };
  const prefix = (): string => join(work, 'prefix');
  const bin = (): string => join(prefix(), 'bin', 'pchat-endpoint');
  const installed = (): string => join(prefix(), 'lib', 'node_modules', 'pchat-endpoint');
  const cli = (args: readonly string[], extra: Record<string, string> = {}) =>
    run(
      bin(),
      args,
      cleanEnv({ ...extra, PATH: `${join(prefix(), 'bin')}${delimiter}${process.env.PATH ?? ''}` }),
    );

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('no dist/: run npm run build first');
    work = await mkdtemp(join(tmpdir(), 'pchat-npm-'));
    // --ignore-scripts: prepack would rebuild dist/ under the feet of the tests running beside this one.
    const pack = await run(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', work, ROOT],
      cleanEnv({ npm_config_cache: join(work, 'cache') }),
      NPM_TIMEOUT_MS,
    );
    expect(pack.code, pack.err).toBe(0);
    const [packed] = JSON.parse(pack.out) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(work, packed?.filename ?? '');
    files = packed?.files.map((f) => f.path) ?? [];
    registry = await startLocalRegistry(join(ROOT, 'node_modules'));
    await writeFile(join(work, 'npmrc'), '');
    install = await run(
      'npm',
      ['install', '-g', '--prefix', prefix(), '--registry', registry.url, '--cache', join(work, 'cache')]
        .concat(['--userconfig', join(work, 'npmrc'), '--no-audit', '--no-fund', '--no-update-notifier'])
        // Anything npm would fetch from beyond loopback goes to a port nobody listens on, and fails.
        .concat([
          '--proxy',
          'http://127.0.0.1:9',
          '--https-proxy',
          'http://127.0.0.1:9',
          '--noproxy',
          '127.0.0.1',
        ])
        .concat([tarball]),
      cleanEnv(),
      NPM_TIMEOUT_MS,
    );
  }, 2 * NPM_TIMEOUT_MS);

  afterAll(async () => {
    await registry?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('ships dist, the native binding sources, the example config, README and LICENSE; no tests, bench, CI or Dockerfile', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/cli/main.js',
        'dist/server/server.js',
        'native/udp.c',
        'native/binding.gyp',
        'native/build.mjs',
        'config/server.yaml',
        'config/endpoints.yaml',
        'README.md',
        'LICENSE',
        'package.json',
      ]),
    );
    const unexpected = files.filter(
      (f) => !/^(dist\/.*\.js|native\/[^/]+|config\/[^/]+|README\.md|LICENSE|package\.json)$/.test(f),
    );
    expect(unexpected).toEqual([]);
  });

  it('installs from the tarball into a prefix, building the UDP binding', () => {
    expect(install.code, `${install.out}\n${install.err}`).toBe(0);
    expect(registry?.requests).toContain('/drachtio-srf');
    expect(existsSync(join(installed(), 'native/build/Release/pchat_udp.node'))).toBe(true);
  });

  it('with no config folder named: get lists the example; an edit is refused, saying how to make one', async () => {
    const example = join(installed(), 'config/endpoints.yaml');
    const before = await readFile(example, 'utf8');
    const got = await cli(['get', '--json']);
    expect(got.code, got.err).toBe(0);
    expect(got.out).toContain('sip:ocschat@contoso.com');
    for (const args of [
      ['new', '--sip-address', 'sip:team@contoso.com', '--pool-fqdn', 'pcpool.contoso.com'],
      ['set', 'sip:ocschat@contoso.com', '--enabled', 'false'],
      ['remove', 'sip:ocschat@contoso.com', '--force'],
    ]) {
      const r = await cli(args);
      expect(r.code, args[0]).toBe(2);
      expect(r.err).toMatch(/example configuration in the installed package is read-only/);
      expect(r.err).toContain('pchat-endpoint init DIR');
    }
    expect(await readFile(example, 'utf8')).toBe(before);
  });

  it('init writes the two commented files of the example, and refuses a folder that is not empty', async () => {
    const dir = join(work, 'etc');
    const r = await cli(['init', dir]);
    expect(r.code, r.err).toBe(0);
    for (const name of ['server.yaml', 'endpoints.yaml']) {
      expect(await readFile(join(dir, name), 'utf8')).toBe(
        await readFile(join(ROOT, 'config', name), 'utf8'),
      );
    }
    const again = await cli(['init', dir]);
    expect(again.code).toBe(5);
    expect(again.err).toMatch(/is not empty .*--force/);
    expect((await cli(['init', dir, '--force'])).code).toBe(0);
  });

  it('serves the folder init wrote (302 from the native engine), then new and get edit and list it', async () => {
    const dir = join(work, 'etc');
    const port = await freePort(['udp', 'tcp']);
    const server = await readFile(join(dir, 'server.yaml'), 'utf8');
    await writeFile(
      join(dir, 'server.yaml'),
      server
        .replaceAll('127.0.0.1:5060', `127.0.0.1:${port}`)
        .replace('listen: 127.0.0.1:9090', 'listen: off'),
    );
    const child = spawn(bin(), ['serve', '--config-dir', dir], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    const exited = new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const udpListener = (): Record<string, unknown> | undefined =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l['msg'] === 'listening' && l['transport'] === 'udp');
    try {
      for (let t = 0; t < 15_000 && udpListener() === undefined; t += 50)
        await new Promise((r) => setTimeout(r, 50));
      expect(udpListener(), out).toMatchObject({ port, engine: 'native' });
      expect(await invite(port, 'ocschat')).toBe('SIP/2.0 302 Moved Temporarily');
      expect(await invite(port, 'nobody')).toBe('SIP/2.0 404 Not Found');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const list = async (): Promise<string[]> => {
      const got = await cli(['get', '--json'], { PCHAT_CONFIG_DIR: dir });
      expect(got.code, got.err).toBe(0);
      return (JSON.parse(got.out) as Array<{ sipAddress: string }>).map((e) => e.sipAddress);
    };
    const before = await list();
    expect(before).toContain('sip:ocschat@contoso.com');
    const added = await cli([
      'new',
      '-c',
      dir,
      '--sip-address',
      'sip:team@contoso.com',
      '--pool-fqdn',
      'pcpool.contoso.com',
    ]);
    expect(added.code, added.err).toBe(0);
    expect(await list()).toEqual([...before, 'sip:team@contoso.com']);
  }, 30_000);
});
