// The drachtio profile of docker-compose.yml, checked where Docker is not available: the shipped
// drachtio.conf.xml run by the real drachtio-server (its listen addresses moved to free loopback
// ports, nothing else changed), and a drachtio-srf client with the secret of the shipped
// config-drachtio/server.yaml let in, where a wrong secret is not.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { drachtioAvailable, drachtioTitle } from '../helpers/drachtio.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const require = createRequire(import.meta.url);

/** What this test uses of drachtio-srf (a CommonJS package without type declarations). */
interface SrfClient {
  connect(opts: { host: string; port: number; secret: string }): void;
  on(event: 'connect', listener: (err: Error | undefined, hostport?: string) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  disconnect(): void;
}
const Srf = require('drachtio-srf') as new () => SrfClient;

const bin = drachtioAvailable();

function freeTcpPort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = net.createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => res(port));
    });
  });
}

/** `text` with `from` replaced by `to`, which must occur exactly once (or the check proves nothing). */
function replaceOnce(text: string, from: string, to: string): string {
  expect(text.split(from).length - 1, `"${from}" in drachtio.conf.xml`).toBe(1);
  return text.replace(from, to);
}

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; at most `ms`. */
async function waitForTcp(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => (sock.destroy(), res(true)));
      sock.once('error', () => (sock.destroy(), res(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The first 'connect' event of a drachtio-srf client: its error, or the SIP addresses drachtio gave. */
function firstConnect(port: number, secret: string): Promise<{ err?: Error; hostport?: string }> {
  const srf = new Srf();
  return new Promise((res) => {
    const timer = setTimeout(() => {
      srf.disconnect();
      res({ err: new Error('no connect event in 5 s') });
    }, 5000);
    srf.on('error', () => undefined);
    srf.on('connect', (err, hostport) => {
      clearTimeout(timer);
      srf.disconnect();
      res(err ? { err } : hostport === undefined ? {} : { hostport });
    });
    srf.connect({ host: '127.0.0.1', port, secret });
  });
}

const title = drachtioTitle('docker-compose.yml drachtio profile, with the real drachtio-server', bin);

describe.skipIf(!bin)(title, () => {
  let dir: string;
  let drachtio: ChildProcess | undefined;
  let adminPort: number;
  let sipPort: number;
  let log = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deploy-drachtio-'));
    adminPort = await freeTcpPort();
    sipPort = await freeTcpPort();
    let conf = await readFile(join(ROOT, 'docs/deploy/drachtio/drachtio.conf.xml'), 'utf8');
    conf = replaceOnce(conf, '>0.0.0.0</admin>', '>127.0.0.1</admin>');
    conf = replaceOnce(conf, 'port="9022"', `port="${adminPort}"`);
    conf = replaceOnce(conf, 'sip:*:5060;', `sip:127.0.0.1:${sipPort};`);
    await writeFile(join(dir, 'drachtio.conf.xml'), conf);
    drachtio = spawn(bin!, ['-f', join(dir, 'drachtio.conf.xml')], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Each DRACHTIO_* variable drachtio reads would override the file under test.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRACHTIO_'))),
    });
    drachtio.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    drachtio.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitForTcp(adminPort, 10_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${log}`);
    });
  });

  afterAll(async () => {
    const child = drachtio;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(kill);
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("lets in the app with config-drachtio/server.yaml's secret and hands it SIP on UDP and TCP", async () => {
    const cfg = await loadConfig(join(ROOT, 'docs/deploy/config-drachtio'));
    const server = cfg.server.drachtio?.servers?.[0];
    expect(server).toBeDefined();
    const result = await firstConnect(adminPort, server!.secret);
    expect(result.err).toBeUndefined();
    expect(result.hostport?.split(',').sort()).toEqual([
      `tcp/127.0.0.1:${sipPort}`,
      `udp/127.0.0.1:${sipPort}`,
    ]);
  });

  it('refuses a client with another secret (so the test above can fail)', async () => {
    const result = await firstConnect(adminPort, 'not-the-secret');
    expect(result.err?.message).toMatch(/authenticate/);
  });

  it('logs at notice: no per-message lines', () => {
    // drachtio prints its threshold at start; notice is 1 (info 2, debug 3).
    expect(log).toMatch(/Logging threshold:\s+1\b/);
  });
});
