// Starts real drachtio-server processes for tests and benchmarks: each on free loopback ports, with a
// drachtio.conf.xml of its own, stopped (and killed at the latest when the test process exits).
import { spawn, type ChildProcess } from 'node:child_process';
import { trackChild } from './child-watchdog.js';
import { accessSync, closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './sipp.js';

const DEFAULT_BIN = '/opt/drachtio/bin/drachtio';
const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const START_ATTEMPTS = 5;

/**
 * The drachtio binary the tests use: DRACHTIO_BIN, else `drachtio` on PATH, else the install.sh
 * default; undefined when there is none. A DRACHTIO_BIN naming nothing runnable throws: CI sets it on
 * purpose, and a silent skip would hide a broken install.
 */
export function drachtioAvailable(): string | undefined {
  const fromEnv = process.env['DRACHTIO_BIN'];
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`DRACHTIO_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, 'drachtio'))) return join(dir, 'drachtio');
  }
  return executable(DEFAULT_BIN) ? DEFAULT_BIN : undefined;
}

/**
 * A drachtio test's title: as given where there is a binary, else with the one line saying why it is
 * skipped and how to get one (drachtio-server has no OS package; `npm test` installs the vendored copy
 * where there is one, test/peers.mjs).
 */
export function drachtioTitle(title: string, bin: string | undefined): string {
  if (bin) return title;
  return (
    `${title} (SKIPPED: no drachtio-server; build it from https://github.com/drachtio/drachtio-server ` +
    'and put it on PATH, at /opt/drachtio/bin/drachtio, or in DRACHTIO_BIN)'
  );
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export type DrachtioLogLevel = 'error' | 'warning' | 'notice' | 'info' | 'debug';

export interface DrachtioOptions {
  /** Shared secret apps authenticate with; default "cymru". */
  secret?: string;
  /** Default `notice`: at `info` and below drachtio logs every SIP message, which costs CPU. */
  logLevel?: DrachtioLogLevel;
  /** sofia-sip's own log level 0-9; default 0. */
  sofiaLogLevel?: number;
  /**
   * Outbound connections: drachtio asks this HTTP URL (GET) for every new request, and connects to
   * the app its JSON answer names. drachtio appends "/?method=INVITE&domain=...", so a URL ending in
   * "/route" is asked as "/route/?...".
   */
  requestHandlerUrl?: string;
  /** Binary to run; default drachtioAvailable(). */
  bin?: string;
  /** Keep the temp dir (config and log) after stop(), for a post-mortem. */
  keepDir?: boolean;
}

export interface DrachtioHandle {
  readonly adminPort: number;
  readonly sipPort: number;
  readonly secret: string;
  /** host:port of the SIP contact (UDP and TCP), e.g. "127.0.0.1:40123". */
  readonly sipUri: string;
  /** The current process (changes on restart()). */
  readonly pid: number;
  /** drachtio's console output (stdout and stderr), appended to across restarts. */
  readonly logFile: string;
  readonly configFile: string;
  /** SIGTERM, then SIGKILL if still running after a bound; removes the temp dir unless keepDir. */
  stop(): Promise<void>;
  /** Sends a signal to the current process (SIGKILL to simulate a crash); does not wait. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the current process has exited (after kill(), for instance). */
  exited(): Promise<void>;
  /** stop() without removing anything, then the same binary and config again: same ports. */
  restart(): Promise<void>;
  /** Waits for a log line matching pattern, looking at log bytes from `from` on (default 0). */
  waitForLog(pattern: RegExp, opts?: { timeoutMs?: number; from?: number }): Promise<string>;
  /** Current log length in bytes: pass it to waitForLog as `from` to see only what follows. */
  logLength(): number;
}

const track = trackChild;

export function drachtioConfig(opts: {
  adminPort: number;
  sipPort: number;
  secret: string;
  logLevel: DrachtioLogLevel;
  sofiaLogLevel: number;
  requestHandlerUrl?: string | undefined;
}): string {
  // drachtio appends its query string to the URL text as is, so it must not carry XML escapes.
  if (opts.requestHandlerUrl && /[<>&"]/.test(opts.requestHandlerUrl))
    throw new RangeError(`requestHandlerUrl must not contain <>&": ${opts.requestHandlerUrl}`);
  const handlers = opts.requestHandlerUrl
    ? `  <request-handlers>\n    <request-handler sip-method="*" http-method="GET">${opts.requestHandlerUrl}</request-handler>\n  </request-handlers>\n`
    : '';
  return (
    `<drachtio>\n` +
    `  <admin port="${opts.adminPort}" secret="${opts.secret}">127.0.0.1</admin>\n` +
    `  <sip><contacts><contact>sip:127.0.0.1:${opts.sipPort};transport=udp,tcp</contact></contacts></sip>\n` +
    handlers +
    `  <cdrs>false</cdrs>\n` +
    `  <logging><console/><loglevel>${opts.logLevel}</loglevel><sofia-loglevel>${opts.sofiaLogLevel}</sofia-loglevel></logging>\n` +
    `</drachtio>\n`
  );
}

/**
 * The environment drachtio gets: without DRACHTIO_* (drachtio reads ~40 of them and each overrides
 * the config file, e.g. DRACHTIO_LOGLEVEL, DRACHTIO_SECRET) and without proxy variables (libcurl
 * would send the request-handler query to a proxy instead of 127.0.0.1).
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('DRACHTIO_') || /^(https?|all|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

export async function startDrachtio(opts: DrachtioOptions = {}): Promise<DrachtioHandle> {
  const bin = opts.bin ?? drachtioAvailable();
  if (!bin)
    throw new Error(
      'no drachtio binary: set DRACHTIO_BIN, or put drachtio on PATH or at /opt/drachtio/bin/drachtio ' +
        '(https://github.com/drachtio/drachtio-server)',
    );
  const secret = opts.secret ?? 'cymru';
  if (!/^[A-Za-z0-9_.-]+$/.test(secret)) throw new RangeError(`secret must be [A-Za-z0-9_.-]+: ${secret}`);
  const dir = await mkdtemp(join(tmpdir(), 'drachtio-'));
  const configFile = join(dir, 'drachtio.conf.xml');
  const logFile = join(dir, 'drachtio.log');

  let child: ChildProcess | undefined;
  let adminPort = 0;
  let sipPort = 0;
  let lastError: Error | undefined;
  // The ports are free when picked and released before drachtio binds them; a parallel test may take
  // one in between, and drachtio then exits ("bind: Address already in use"): pick again.
  for (let attempt = 1; attempt <= START_ATTEMPTS && !child; attempt++) {
    sipPort = await freePort(['udp', 'tcp']);
    adminPort = await freePort(['tcp']);
    if (adminPort === sipPort) continue;
    await writeFile(
      configFile,
      drachtioConfig({
        adminPort,
        sipPort,
        secret,
        logLevel: opts.logLevel ?? 'notice',
        sofiaLogLevel: opts.sofiaLogLevel ?? 0,
        requestHandlerUrl: opts.requestHandlerUrl,
      }),
    );
    try {
      child = await launch(bin, configFile, logFile, adminPort, sipPort);
    } catch (err) {
      lastError = err as Error;
    }
  }
  if (!child) {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
    throw new Error(
      `drachtio did not start after ${START_ATTEMPTS} attempts: ${lastError?.message}\n${log.slice(-2000)}`,
    );
  }

  let current: ChildProcess = child;
  const handle: DrachtioHandle = {
    adminPort,
    sipPort,
    secret,
    sipUri: `127.0.0.1:${sipPort}`,
    get pid() {
      return current.pid ?? -1;
    },
    logFile,
    configFile,
    async stop() {
      await terminate(current);
      if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      current.kill(signal);
    },
    exited: () => exitOf(current),
    async restart() {
      await terminate(current);
      // Same config, same ports: a port lost to another process in between fails the restart loudly
      // rather than moving drachtio somewhere its clients do not look.
      let last: Error | undefined;
      for (let attempt = 1; attempt <= 3; attempt++) {
        try {
          current = await launch(bin, configFile, logFile, adminPort, sipPort);
          return;
        } catch (err) {
          last = err as Error;
          await sleep(200);
        }
      }
      throw new Error(`drachtio did not restart on ports ${sipPort}/${adminPort}: ${last?.message}`);
    },
    async waitForLog(pattern, { timeoutMs = 5_000, from = 0 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = readFileSync(logFile).subarray(from).toString('utf8');
        const line = text.split('\n').find((l) => pattern.test(l));
        if (line !== undefined) return line;
        if (Date.now() > deadline)
          throw new Error(`no drachtio log line matching ${pattern} within ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    logLength: () => {
      try {
        return readFileSync(logFile).length;
      } catch {
        return 0;
      }
    },
  };
  return handle;
}

/** Starts drachtio and resolves once it owns its three sockets; rejects (process killed) otherwise. */
async function launch(
  bin: string,
  configFile: string,
  logFile: string,
  adminPort: number,
  sipPort: number,
): Promise<ChildProcess> {
  // drachtio's console output goes straight to a file: no pipe for Node to drain, even at `debug`.
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, ['-f', configFile], { stdio: ['ignore', fd, fd], env: childEnv() });
  } finally {
    closeSync(fd);
  }
  track(child);
  let exit: string | undefined;
  let spawnError: Error | undefined;
  child.once('exit', (code, signal) => (exit = `exited (${signal ?? code})`));
  child.once('error', (err) => (spawnError = err));

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw spawnError;
    // drachtio exits with status 0 when it cannot bind, so any exit during start-up is a failure.
    if (exit) throw new Error(`drachtio ${exit} during start-up`);
    if (child.pid !== undefined && ownsSockets(child.pid, adminPort, sipPort)) return child;
    if (Date.now() > deadline) {
      await terminate(child);
      throw new Error(
        `drachtio did not bind ${sipPort} (udp, tcp) and ${adminPort} (tcp) within ${START_TIMEOUT_MS} ms`,
      );
    }
    await sleep(25);
  }
}

/**
 * True when pid holds the UDP socket on 127.0.0.1:sipPort and listens on TCP 127.0.0.1:sipPort and
 * :adminPort. Read from /proc (socket inodes of the process's fds against /proc/net/{udp,tcp}), so a
 * port taken by another process in the meantime does not pass for drachtio's.
 */
function ownsSockets(pid: number, adminPort: number, sipPort: number): boolean {
  let inodes: Set<string>;
  try {
    inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1]) inodes.add(m[1]);
      } catch {
        // the fd closed while we looked
      }
    }
  } catch {
    return false;
  }
  const udp = socketInodes('/proc/net/udp', sipPort, undefined);
  const tcpSip = socketInodes('/proc/net/tcp', sipPort, '0A');
  const tcpAdmin = socketInodes('/proc/net/tcp', adminPort, '0A');
  const owned = (set: string[]): boolean => set.some((i) => inodes.has(i));
  return owned(udp) && owned(tcpSip) && owned(tcpAdmin);
}

/** Inodes of sockets bound to 127.0.0.1:port in a /proc/net table; state '0A' is TCP LISTEN. */
function socketInodes(table: string, port: number, state: string | undefined): string[] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes: string[] = [];
  for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
    if (f[1] === local && (state === undefined || f[3] === state) && f[9]) inodes.push(f[9]);
  }
  return inodes;
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveExit) => child.once('exit', () => resolveExit()));
}

async function terminate(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  // drachtio dumps its stats on SIGTERM and exits within about 1.5 s here.
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}
