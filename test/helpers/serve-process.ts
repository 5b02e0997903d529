// `pchat-endpoint serve` as a real process (dist/, built by `npm run build`), with its JSON log lines
// read as they come, its admin port found from its own log, and every process killed at the latest
// when the test process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { trackChild } from './child-watchdog.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLI = resolve(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

export type LogLine = Record<string, unknown>;

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  /** Every JSON line written so far (the service flushes its log buffer at least once a second). */
  readonly lines: LogLine[];
  /** The admin port, from the "admin port on" line; 0 until it was logged. */
  adminPort(): number;
  /** Lines whose msg is "decision". */
  decisions(): LogLine[];
  /** Waits for a line `match` accepts, among lines from index `from` on; throws after `timeoutMs`. */
  waitForLine(match: (l: LogLine) => boolean, timeoutMs: number, from?: number): Promise<LogLine>;
  /** GET /readyz on the admin port: its status, or 0 when the port does not answer. */
  readyz(): Promise<number>;
  /** Polls /readyz every 50 ms until it answers `status`; throws after `timeoutMs`. */
  waitReadyz(status: number, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code and signal once the process is gone. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stderr's tail, for failure messages. */
  stderr(): string;
  /** SIGKILL if still running, then removes the folder startServe wrote (a shared one is kept). */
  stop(): Promise<void>;
}

/** A line's message text ('' when it has none). */
export function msgOf(l: LogLine): string {
  const m = l['msg'];
  return typeof m === 'string' ? m : '';
}

const track = trackChild;

/** Writes server.yaml and endpoints.yaml to a folder of their own and runs `serve` on it. */
export async function startServe(serverYaml: string, endpointsYaml: string): Promise<ServeProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-serve-'));
  await writeFile(join(dir, 'server.yaml'), serverYaml);
  await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml);
  return serveFolder(dir, { removeOnStop: true });
}

/**
 * Runs `serve` on a configuration folder that already exists, one several processes may share;
 * `removeOnStop`: stop() removes the folder too (leave it false for a shared one).
 */
export function serveFolder(
  dir: string,
  { removeOnStop = false, args = [] as readonly string[] } = {},
): ServeProcess {
  const child = spawn(process.execPath, [CLI, 'serve', '--config-dir', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const lines: LogLine[] = [];
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) if (l.startsWith('{')) lines.push(JSON.parse(l) as LogLine);
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  const adminPort = (): number => {
    const l = lines.find((x) => msgOf(x).startsWith('admin port on'));
    return Number((l?.['admin'] as { port?: number } | undefined)?.port ?? 0);
  };
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const svc: ServeProcess = {
    child,
    dir,
    lines,
    adminPort,
    decisions: () => lines.filter((l) => l['msg'] === 'decision'),
    async waitForLine(match, timeoutMs, from = 0) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (let i = from; i < lines.length; i++) if (match(lines[i]!)) return lines[i]!;
        if (Date.now() > deadline || gone())
          throw new Error(
            `no log line as asked within ${timeoutMs} ms (${gone() ? 'process exited' : 'still running'}); ` +
              `last lines: ${lines.slice(-5).map(msgOf).join(' | ')}; stderr: ${err}`,
          );
        await sleep(50);
      }
    },
    readyz: () => readyz(adminPort()),
    async waitReadyz(status, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last = -1;
      while (Date.now() < deadline) {
        last = await readyz(adminPort());
        if (last === status) return;
        await sleep(50);
      }
      throw new Error(`/readyz answered ${last}, not ${status}, for ${timeoutMs} ms; stderr: ${err}`);
    },
    exit,
    stderr: () => err,
    async stop() {
      if (!gone()) child.kill('SIGKILL');
      await Promise.race([exit, sleep(5000)]);
      if (removeOnStop) await rm(dir, { recursive: true, force: true });
    },
  };
  return svc;
}

/** GET /readyz on 127.0.0.1:port: the status, or 0 when nothing answers within a second. */
function readyz(port: number): Promise<number> {
  if (port === 0) return Promise.resolve(0);
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => done(0));
    req.end();
  });
}
