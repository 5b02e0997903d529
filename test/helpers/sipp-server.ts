// Runs SIPp as a server (a pool member, UAS) in the background on a free loopback port, for tests
// that put the service between a SIPp client and SIPp servers.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIO_DIR } from './sipp.js';

export interface SippServer {
  readonly port: number;
  /** Resolves when SIPp exits, with its exit code and the successful/failed call counts. */
  readonly done: Promise<{ exitCode: number | null; successful: number; failed: number; errors: string }>;
  stop(): void;
}

/** A port free on 127.0.0.1 for both UDP and TCP at the moment of asking. */
export async function freeLoopbackPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const srv = net.createServer();
    const port = await new Promise<number>((r) =>
      srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)),
    );
    await new Promise((r) => srv.close(r));
    const sock = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      sock.once('error', () => r(false));
      sock.bind(port, '127.0.0.1', () => r(true));
    });
    sock.close();
    if (ok) return port;
  }
  throw new Error('no free port found');
}

type SippServerOptions = { scenario: string; transport: 'udp' | 'tcp'; calls: number; timeoutMs: number };

/**
 * Starts SIPp as a server; if it exits before it is listening (a parallel test took one of the free
 * ports picked for it first), starts it again on new ports, up to 3 times.
 */
export async function startSippServer(opts: SippServerOptions): Promise<SippServer> {
  for (let attempt = 1; ; attempt++) {
    const server = await startOnce(opts);
    if (server !== undefined) return server;
    if (attempt === 3) throw new Error('SIPp server did not start (ports taken three times)');
  }
}

async function startOnce(opts: SippServerOptions): Promise<SippServer | undefined> {
  const port = await freeLoopbackPort();
  const control = await freeLoopbackPort();
  const dir = await mkdtemp(join(tmpdir(), 'sipp-uas-'));
  const stat = join(dir, 'stat.csv');
  const errFile = join(dir, 'errors.log');
  const child = spawn(
    process.env['SIPP_BIN'] ?? 'sipp',
    [
      '-sf',
      join(SCENARIO_DIR, `${opts.scenario}.xml`),
      '-t',
      opts.transport === 'udp' ? 'u1' : 't1',
      '-i',
      '127.0.0.1',
      '-p',
      String(port),
      '-ci',
      '127.0.0.1',
      '-cp',
      String(control),
      '-m',
      String(opts.calls),
      '-timeout',
      `${Math.ceil(opts.timeoutMs / 1000)}s`,
      '-nostdin',
      '-trace_stat',
      '-stf',
      stat,
      '-trace_err',
      '-error_file',
      errFile,
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  const kill = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 5000);
  const done = new Promise<{ exitCode: number | null; successful: number; failed: number; errors: string }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(kill);
        void (async () => {
          const text = await readFile(stat, 'latin1').catch(() => '');
          const errors = await readFile(errFile, 'latin1').catch(() => '');
          const lines = text.trim().split('\n');
          const head = (lines[0] ?? '').split(';');
          const last = (lines[lines.length - 1] ?? '').split(';');
          const col = (name: string): number => Number(last[head.indexOf(name)] ?? 0);
          await rm(dir, { recursive: true, force: true });
          resolve({
            exitCode: code,
            successful: col('SuccessfulCall(C)'),
            failed: col('FailedCall(C)'),
            errors,
          });
        })();
      });
    },
  );
  // Give SIPp a moment to bind its socket before anyone sends to it; an early exit means it could not.
  let exited = false;
  child.once('exit', () => (exited = true));
  const bound = await waitBound(opts.transport, port, () => exited);
  if (!bound) {
    child.kill('SIGKILL');
    await done.catch(() => undefined);
    return undefined;
  }
  return { port, done, stop: () => child.kill('SIGTERM') };
}

/**
 * Waits until something listens on 127.0.0.1:port, read from /proc/net (a probe socket of our own
 * could take the port from SIPp in the instant before it binds). False when SIPp exited first or
 * nothing came up within 5 s.
 */
async function waitBound(transport: 'udp' | 'tcp', port: number, gone: () => boolean): Promise<boolean> {
  const deadline = Date.now() + 5000;
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  while (Date.now() < deadline) {
    if (gone()) return false;
    const table = await readFile(`/proc/net/${transport}`, 'latin1').catch(() => '');
    // TCP sockets must be in LISTEN (state 0A); a bound UDP socket is listed as it is.
    const listening = table.split('\n').some((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === local && (transport === 'udp' || f[3] === '0A');
    });
    if (listening) {
      // A port taken by another process would also be listed: SIPp, unable to bind, exits at once.
      await new Promise((r) => setTimeout(r, 100));
      return !gone();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
