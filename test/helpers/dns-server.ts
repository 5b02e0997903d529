// A real DNS server for tests: Debian's dnsmasq on 127.0.0.1 on a free port, serving the records a
// test gives it, started per test file and killed in teardown. Fails loudly when dnsmasq is missing.

import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface DnsZone {
  /** Every name in these domains is answered from the records below (NXDOMAIN otherwise), never forwarded. */
  readonly domains: readonly string[];
  readonly naptr?: readonly {
    name: string;
    order: number;
    preference: number;
    flags: string;
    service: string;
    replacement: string;
  }[];
  readonly srv?: readonly { name: string; target: string; port: number; priority: number; weight: number }[];
  /** A records; the TTL in seconds. */
  readonly hosts?: readonly { name: string; address: string; ttl: number }[];
  /** TTL of the SRV and NAPTR answers, in seconds. */
  readonly ttl?: number;
}

export interface DnsServer {
  /** `127.0.0.1:<port>`, for createDnsResolver. */
  readonly address: string;
  readonly port: number;
  /** Kills the server and waits for it to exit; safe to call twice. */
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'dnsmasq not found (looked in PATH, /usr/sbin, /sbin): the DNS integration tests need a real DNS ' +
  "server. Install Debian's package: apt-get install -y dnsmasq-base (.ci/run does).";

export function findDnsmasq(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, 'dnsmasq');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error(INSTALL_HINT);
}

/** A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both); may race, so callers retry. */
async function freePort(): Promise<number> {
  const udp = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, '127.0.0.1', resolve);
  });
  const port = udp.address().port;
  const tcp = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', resolve);
    });
  } finally {
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => udp.close(resolve));
  }
  return port;
}

function args(zone: DnsZone, port: number, dir: string): string[] {
  const ttl = String(zone.ttl ?? 300);
  const out = [
    '--keep-in-foreground',
    '--log-facility=-',
    `--port=${String(port)}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    `--local-ttl=${ttl}`,
    '--cache-size=0',
  ];
  for (const d of zone.domains) out.push(`--local=/${d}/`);
  for (const n of zone.naptr ?? []) {
    out.push(
      `--naptr-record=${n.name},${String(n.order)},${String(n.preference)},${n.flags},${n.service},,${n.replacement}`,
    );
  }
  for (const s of zone.srv ?? []) {
    out.push(`--srv-host=${s.name},${s.target},${String(s.port)},${String(s.priority)},${String(s.weight)}`);
  }
  for (const h of zone.hosts ?? []) out.push(`--host-record=${h.name},${h.address},${String(h.ttl)}`);
  return out;
}

/** Waits until the server answers a query (any answer, even NXDOMAIN), or fails when it exits or 5 s pass. */
async function ready(
  child: ChildProcess,
  port: number,
  probeName: string,
  stderr: () => string,
): Promise<void> {
  let exited = false;
  child.once('exit', () => (exited = true));
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${String(port)}`]);
  const deadline = Date.now() + 5000;
  for (;;) {
    if (exited) throw new Error(`dnsmasq exited during startup: ${stderr().trim()}`);
    try {
      await resolver.resolve4(probeName);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return;
    }
    if (Date.now() > deadline) throw new Error(`dnsmasq did not answer within 5 s: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startDnsServer(zone: DnsZone): Promise<DnsServer> {
  const bin = findDnsmasq();
  const dir = mkdtempSync(join(tmpdir(), 'pchat-dns-'));
  let lastError: unknown;
  // The free port may be taken between the probe and dnsmasq's bind; a few tries cover that race.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn(bin, args(zone, port, dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (err = (err + d).slice(-4000)));
    const exitedPromise = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
    try {
      await Promise.race([
        ready(child, port, `ready-check.${zone.domains[0] ?? 'test'}`, () => err),
        spawnError,
      ]);
    } catch (e) {
      lastError = e;
      child.kill('SIGKILL');
      await exitedPromise;
      continue;
    }
    let stopped = false;
    return {
      address: `127.0.0.1:${String(port)}`,
      port,
      async stop() {
        if (!stopped) {
          stopped = true;
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
          await exitedPromise;
          clearTimeout(timer);
          rmSync(dir, { recursive: true, force: true });
        }
        await exitedPromise;
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`could not start dnsmasq: ${String(lastError)}`);
}
