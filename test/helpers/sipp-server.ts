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

export async function startSippServer(opts: {
  scenario: string;
  transport: 'udp' | 'tcp';
  calls: number;
  timeoutMs: number;
}): Promise<SippServer> {
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
  // Give SIPp a moment to bind its socket before anyone sends to it.
  await waitBound(opts.transport, port);
  return { port, done, stop: () => child.kill('SIGTERM') };
}

async function waitBound(transport: 'udp' | 'tcp', port: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const inUse =
      transport === 'tcp'
        ? await new Promise<boolean>((r) => {
            const s = net.connect(port, '127.0.0.1');
            s.once('connect', () => {
              s.destroy();
              r(true);
            });
            s.once('error', () => r(false));
          })
        : await new Promise<boolean>((r) => {
            const s = dgram.createSocket('udp4');
            s.once('error', () => r(true));
            s.bind(port, '127.0.0.1', () => {
              s.close();
              r(false);
            });
          });
    if (inUse) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`SIPp did not bind ${transport} port ${port}`);
}
