// Runs SIPp (the legacy client's view of the service) from tests and returns its parsed statistics.
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCENARIO_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../sipp');

/** SIPp binary; overridable so CI can point at a build of its own. */
const SIPP_BIN = process.env['SIPP_BIN'] ?? 'sipp';

export type SippTransport = 'udp' | 'tcp';

export interface SippRunOptions {
  /** A scenario name in test/sipp (without .xml) or a path to a scenario file. */
  scenario: string;
  target: { host: string; port: number };
  transport: SippTransport;
  /** Total calls; SIPp exits after this many (-m). */
  calls: number;
  /** Calls started per second (-r); SIPp's default is 10. */
  rate?: number;
  /**
   * Scenario parameters. Every entry is passed as `-key name value` ([name] in the XML); names the
   * scenario declares in `<Global variables="...">` are passed as `-set` instead ([$name]); `service`
   * is passed as `-s`, because SIPp's built-in [service] ignores -key.
   */
  vars?: Record<string, string>;
  /** Hard limit: SIPp gets -timeout of this, and is killed a little after it if still running. */
  timeoutMs: number;
  /** Keep the trace directory (its path is returned) instead of deleting it. */
  keepArtifacts?: boolean;
  extraArgs?: string[];
}

export interface SippStats {
  /** The last row of SIPp's -trace_stat file, column name to raw value. */
  raw: Record<string, string>;
  successful: number;
  failed: number;
  retransmissions: number;
  /** Failure counters that are non-zero, e.g. { FailedUnexpectedMessage: 1 }. */
  failures: Record<string, number>;
  /** ResponseTimeRepartition1 buckets in order, e.g. [{ label: '<1', count: 19 }, ...]. */
  responseTimeBuckets: Array<{ label: string; count: number }>;
}

export interface SippResult {
  exitCode: number | null;
  /** True if the harness had to kill SIPp because it outlived timeoutMs. */
  killed: boolean;
  successful: number;
  failed: number;
  stdout: string;
  stderr: string;
  /** SIPp's error log (unexpected messages, failed checks), empty when there was none. */
  errors: string;
  stats?: SippStats;
  args: string[];
  artifactsDir?: string;
}

export class SippNotInstalledError extends Error {
  readonly code = 'SIPP_NOT_INSTALLED';
  constructor(detail: string) {
    super(
      `SIPp is required by this test but "${SIPP_BIN}" could not be run (${detail}). ` +
        'Install it (Debian/Ubuntu: apt-get install sip-tester) or set SIPP_BIN.',
    );
  }
}

/** Throws SippNotInstalledError unless SIPp runs; returns its version line. */
export function requireSipp(): string {
  const probe = spawnSync(SIPP_BIN, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error) throw new SippNotInstalledError(probe.error.message);
  const version = /SIPp v[^\s,]+/.exec(`${probe.stdout}${probe.stderr}`)?.[0];
  if (!version) throw new SippNotInstalledError(`unexpected output of "-v": ${probe.stdout}${probe.stderr}`);
  return version;
}

const OUTPUT_LIMIT = 256 * 1024;
const KILL_GRACE_MS = 3_000;

/**
 * Runs SIPp once; if one of the free ports picked for it was taken by a parallel test before SIPp
 * could bind it (SIPp logs "Address already in use"), runs it again on new ports, up to 3 times.
 */
export async function runSipp(opts: SippRunOptions): Promise<SippResult> {
  for (let attempt = 1; ; attempt++) {
    const result = await runSippOnce(opts);
    const lostPort = /Address already in use/.test(result.errors + result.stderr);
    if (!lostPort || attempt === 3) return result;
  }
}

async function runSippOnce(opts: SippRunOptions): Promise<SippResult> {
  if (!Number.isInteger(opts.calls) || opts.calls < 1)
    throw new RangeError(`calls must be >= 1, got ${opts.calls}`);
  if (!(opts.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${opts.timeoutMs}`);
  if (opts.rate !== undefined && !(opts.rate > 0)) throw new RangeError(`rate must be > 0, got ${opts.rate}`);

  const scenarioFile = scenarioPath(opts.scenario);
  const scenarioXml = await readFile(scenarioFile, 'utf8');
  const dir = await mkdtemp(join(tmpdir(), 'sipp-'));
  const statFile = join(dir, 'stat.csv');
  const errorFile = join(dir, 'errors.log');

  // SIPp's "default" local ports are fixed (5060, media 6000, control 8888 on all interfaces), which
  // collides between parallel runs, so every port is picked free and the control socket kept on loopback.
  const localPort = await freePort(['udp', 'tcp']);
  const controlPort = await freePort(['udp']);
  const mediaPort = await freeMediaPort();

  const args = [
    '-sf',
    scenarioFile,
    '-t',
    opts.transport === 'udp' ? 'u1' : 't1',
    '-i',
    '127.0.0.1',
    '-p',
    String(localPort),
    '-ci',
    '127.0.0.1',
    '-cp',
    String(controlPort),
    '-mp',
    String(mediaPort),
    '-m',
    String(opts.calls),
    '-r',
    String(opts.rate ?? 10),
    '-timeout',
    `${Math.max(1, Math.ceil(opts.timeoutMs / 1000))}s`,
    '-timeout_error',
    '-nostdin',
    '-trace_stat',
    '-stf',
    statFile,
    '-fd',
    '1',
    '-trace_err',
    '-error_file',
    errorFile,
    ...varArgs(opts.vars ?? {}, declaredGlobals(scenarioXml)),
    ...(opts.extraArgs ?? []),
    `${opts.target.host}:${opts.target.port}`,
  ];

  const child = spawn(SIPP_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = capped(child.stdout);
  const stderr = capped(child.stderr);

  let killed = false;
  const exitCode = await new Promise<number | null>((resolveExit, rejectExit) => {
    const term = setTimeout(() => {
      killed = true;
      child.kill('SIGTERM');
    }, opts.timeoutMs + KILL_GRACE_MS);
    const hardKill = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 2 * KILL_GRACE_MS);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(term);
      clearTimeout(hardKill);
      rejectExit(err.code === 'ENOENT' ? new SippNotInstalledError(err.message) : err);
    });
    child.once('close', (code) => {
      clearTimeout(term);
      clearTimeout(hardKill);
      resolveExit(code);
    });
  });

  const statText = await readFile(statFile, 'latin1').catch(() => '');
  const errors = await readFile(errorFile, 'latin1').catch(() => '');
  const stats = statText ? parseStatCsv(statText) : undefined;
  if (!opts.keepArtifacts) await rm(dir, { recursive: true, force: true });

  return {
    exitCode,
    killed,
    successful: stats?.successful ?? 0,
    failed: stats?.failed ?? 0,
    stdout: stdout(),
    stderr: stderr(),
    errors,
    ...(stats ? { stats } : {}),
    args,
    ...(opts.keepArtifacts ? { artifactsDir: dir } : {}),
  };
}

function scenarioPath(scenario: string): string {
  if (isAbsolute(scenario) || scenario.endsWith('.xml')) return resolve(scenario);
  return join(SCENARIO_DIR, `${scenario}.xml`);
}

function declaredGlobals(xml: string): Set<string> {
  const names = new Set<string>();
  for (const m of xml.matchAll(/<Global\s+variables="([^"]*)"/g)) {
    for (const name of (m[1] ?? '').split(',')) if (name.trim()) names.add(name.trim());
  }
  return names;
}

function varArgs(vars: Record<string, string>, globals: Set<string>): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new RangeError(`bad SIPp variable name: ${name}`);
    if (name === 'service') args.push('-s', value);
    else if (globals.has(name)) args.push('-set', name, value);
    else args.push('-key', name, value);
  }
  return args;
}

/** Parses the last row of a -trace_stat CSV (';'-separated, one header line). */
export function parseStatCsv(text: string): SippStats {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(';');
  const values = (lines[lines.length - 1] ?? '').split(';');
  const raw: Record<string, string> = {};
  header.forEach((name, i) => {
    if (name) raw[name] = values[i] ?? '';
  });
  const num = (name: string): number => {
    const n = Number(raw[name]);
    return Number.isFinite(n) ? n : 0;
  };
  const failures: Record<string, number> = {};
  const responseTimeBuckets: Array<{ label: string; count: number }> = [];
  for (const name of header) {
    const failure = /^(Failed\w+)\(C\)$/.exec(name);
    // FailedCall is the total; the others say why.
    if (failure?.[1] && failure[1] !== 'FailedCall' && num(name) > 0) failures[failure[1]] = num(name);
    const bucket = /^ResponseTimeRepartition1_(.+)$/.exec(name);
    if (bucket?.[1]) responseTimeBuckets.push({ label: bucket[1], count: num(name) });
  }
  return {
    raw,
    successful: num('SuccessfulCall(C)'),
    failed: num('FailedCall(C)'),
    retransmissions: num('Retransmissions(C)'),
    failures,
    responseTimeBuckets,
  };
}

function capped(stream: NodeJS.ReadableStream): () => string {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    // SIPp redraws its screen every second; only the tail is worth keeping.
    text = (text + chunk).slice(-OUTPUT_LIMIT);
  });
  return () => text;
}

/** A port free on 127.0.0.1 for every listed protocol at the time of the call. */
export async function freePort(kinds: Array<'udp' | 'tcp'>): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindEphemeral(kinds[0] ?? 'udp');
    if (await allFree(port, kinds.slice(1))) return port;
  }
  throw new Error(`no free port for ${kinds.join('+')} after 50 attempts`);
}

/** SIPp binds its media port and media port + 2 (audio RTP and video RTP). */
async function freeMediaPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindEphemeral('udp');
    if (port + 2 <= 65535 && (await allFree(port + 2, ['udp']))) return port;
  }
  throw new Error('no free UDP media port pair after 50 attempts');
}

async function allFree(port: number, kinds: Array<'udp' | 'tcp'>): Promise<boolean> {
  for (const kind of kinds) {
    const ok = await bindEphemeral(kind, port).then(
      () => true,
      () => false,
    );
    if (!ok) return false;
  }
  return true;
}

function bindEphemeral(kind: 'udp' | 'tcp', port = 0): Promise<number> {
  return new Promise((resolveBind, rejectBind) => {
    if (kind === 'udp') {
      const sock = dgram.createSocket('udp4');
      sock.once('error', rejectBind);
      sock.bind(port, '127.0.0.1', () => {
        const bound = sock.address().port;
        sock.close(() => resolveBind(bound));
      });
    } else {
      const server = net.createServer();
      server.once('error', rejectBind);
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolveBind(bound));
      });
    }
  });
}
