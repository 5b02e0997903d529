// The command line driven from tests: in process with captured output and scripted answers, or as
// a separate process of the built CLI (dist/) with its exit code, signal and output.
import { spawn } from 'node:child_process';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import { CLI } from './serve-process.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
  /** The questions the command asked (answered `answer`). */
  asked: string[];
}

/** Runs `args` in process, with `--config-dir dir` appended when a folder is given. */
export async function cliIn(
  args: string[],
  opts: { dir?: string; interactive?: boolean; answer?: boolean } = {},
): Promise<CliRun> {
  let out = '';
  let err = '';
  const asked: string[] = [];
  const io: CliIo = {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    interactive: opts.interactive ?? false,
    confirm: (q) => {
      asked.push(q);
      return Promise.resolve(opts.answer ?? false);
    },
    env: {},
  };
  const code = await runCli(opts.dir === undefined ? args : [...args, '--config-dir', opts.dir], io);
  return { code, out, err, asked };
}

export interface CliProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs the built CLI as a process; killed (SIGKILL) if still running after `timeoutMs`. */
export function cliProcess(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<CliProcessResult> {
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
