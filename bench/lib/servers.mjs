// Starts and stops the servers under test (pchat-endpoint from dist/, on its own or as a drachtio
// application on a drachtio-server started for it; Kamailio) and keeps track of every process the
// benchmark started, so teardown stops them even after a failure.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDrachtio } from './drachtio.mjs';
import { startKamailio } from './kamailio.mjs';
import { freePort, waitForSip } from './net.mjs';
import { cpuMicros, peakRss, processTree } from './proc.mjs';

// PCHAT_DIST names another build's dist/ folder (an older commit's, say) to measure it on the same
// load; the standing in bench/RESULTS.md is only ever written for this checkout's own build.
const CLI =
  process.env.PCHAT_DIST === undefined
    ? fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
    : join(process.env.PCHAT_DIST, 'cli/main.js');
/** Node flags the service is run with, as `npm start`, the Dockerfile and the systemd unit give them. */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=8'];

/** Everything started here and not stopped yet: { child, pids } (pids: a forked tree to reap too). */
const running = new Set();

/** SIGTERM, then SIGKILL to the child and `pidsToReap` if it has not exited within 5 s. */
export async function stopProcess(child, pidsToReap = []) {
  for (const entry of running) if (entry.child === child) running.delete(entry);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    child.kill('SIGKILL');
    for (const pid of pidsToReap) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/** Stops whatever is still running (end of the run, a failure or Ctrl-C). */
export async function stopAll() {
  await Promise.all([...running].map(({ child, pids }) => stopProcess(child, pids)));
}

/**
 * pchat-endpoint (`serve --config-dir`) on a free UDP+TCP loopback port with the given endpoints.yaml
 * and log level; `admin: true` also opens the admin port (for /metrics) on another free port of
 * 127.0.0.1. `host` and `port` put SIP elsewhere on loopback (the fleet's instances share one port on
 * 127.0.0.2, 127.0.0.3). `nodeArgs` go to node itself; the process runs in `dir` (where a heap
 * snapshot would be written).
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, pid: number, host: string,
 *   port: number, adminPort: number | undefined, logFile: string }>}
 */
export async function startPchat(
  dir,
  {
    level,
    endpointsYaml,
    admin = false,
    tcp = true,
    nodeArgs = [],
    host = '127.0.0.1',
    port: fixedPort,
    serverYamlExtra = '',
  },
) {
  const port = fixedPort ?? (await freePort(tcp ? ['udp', 'tcp'] : ['udp']));
  const adminPort = admin ? await freePort(['tcp']) : undefined;
  const { child, logFile } = await spawnPchat(dir, {
    serverYaml:
      `listen:\n  - udp://${host}:${port}\n${tcp ? `  - tcp://${host}:${port}\n` : ''}` +
      `log:\n  level: ${level}\n  pretty: false\n` +
      (adminPort === undefined ? '' : `admin:\n  listen: 127.0.0.1:${adminPort}\n`) +
      serverYamlExtra,
    endpointsYaml,
    nodeArgs,
  });
  await waitForSip(host, port).catch((err) => {
    throw new Error(`${err.message}\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  });
  return { child, pid: child.pid, host, port, adminPort, logFile };
}

/** `serve --config-dir dir/config` with the given files, its output in dir/server.log; tracked. */
async function spawnPchat(dir, { serverYaml, endpointsYaml, nodeArgs = [] }) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm run bench does)`);
  const configDir = join(dir, 'config');
  await mkdir(configDir, { recursive: true });
  await writeFile(join(configDir, 'server.yaml'), serverYaml);
  await writeFile(join(configDir, 'endpoints.yaml'), endpointsYaml);
  const logFile = join(dir, 'server.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [...SERVICE_NODE_FLAGS, ...nodeArgs, CLI, 'serve', '--config-dir', configDir],
    {
      cwd: dir,
      stdio: ['ignore', fd, fd],
    },
  );
  closeSync(fd);
  running.add({ child, pids: [] });
  return { child, logFile };
}

/**
 * pchat-endpoint as a drachtio application: a drachtio-server of its own on free loopback ports
 * (bench/lib/drachtio.mjs), and the service with `engine: drachtio` connected to its admin port
 * (inbound). Ready once an OPTIONS to drachtio's SIP port is answered 200, which only the connected
 * app does (drachtio-server alone answers with an error). `port` is drachtio's SIP port, where the
 * load goes; `child` and `pid` are the app's; `drachtio` is the server's own process.
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, pid: number, port: number,
 *   logFile: string, drachtio: { child: import('node:child_process').ChildProcess, pid: number,
 *   logFile: string } }>}
 */
export async function startPchatOnDrachtio(dir, { level, endpointsYaml, tcp = true }) {
  const d = await startDrachtio(dir, { tcp });
  running.add({ child: d.child, pids: [] });
  const { child, logFile } = await spawnPchat(dir, {
    serverYaml:
      'engine: drachtio\n' +
      `drachtio:\n  servers:\n    - { host: 127.0.0.1, port: ${d.adminPort}, secret: ${d.secret} }\n` +
      `log:\n  level: ${level}\n  pretty: false\n`,
    endpointsYaml,
  });
  await waitForSip('127.0.0.1', d.port, 15_000, '127.0.0.1', /^SIP\/2\.0 200/).catch((err) => {
    throw new Error(
      `${err.message}\napp log:\n${readFileSync(logFile, 'utf8').slice(-2000)}\n` +
        `drachtio log:\n${readFileSync(d.logFile, 'utf8').slice(-2000)}`,
    );
  });
  return {
    child,
    pid: child.pid,
    port: d.port,
    logFile,
    drachtio: { child: d.child, pid: d.pid, logFile: d.logFile },
  };
}

/** Stops what a start* function started: the app first (it finishes what it holds), then its drachtio. */
export async function stopTarget(target, pidsToReap = []) {
  await stopProcess(target.child, pidsToReap);
  if (target.drachtio) await stopProcess(target.drachtio.child, [target.drachtio.pid]);
}

/**
 * Kamailio with `render(port)`'s configuration on a free loopback port, its process tree recorded
 * once it answers (it forks its workers at start-up).
 */
export async function startKamailioWith(dir, render, { shmMb } = {}) {
  const port = await freePort(['udp', 'tcp']);
  const k = await startKamailio(dir, await render(port), shmMb === undefined ? {} : { shmMb });
  const entry = { child: k.child, pids: [] };
  running.add(entry);
  await waitForSip('127.0.0.1', port).catch((err) => {
    throw new Error(`${err.message}\n${readFileSync(k.logFile, 'utf8').slice(-2000)}`);
  });
  entry.pids = processTree(k.pid);
  return { child: k.child, pid: k.pid, port, logFile: k.logFile };
}

/** A process started elsewhere (SIPp) that teardown must stop as well. */
export function track(child) {
  const entry = { child, pids: [] };
  running.add(entry);
  return () => running.delete(entry);
}

/**
 * The processes of a started target, by part: `app` is the service (Kamailio: its whole tree) and
 * `drachtio` the drachtio-server it runs on (none for the others); `all` both.
 */
export function targetProcesses(target) {
  const app = processTree(target.pid);
  const drachtio = target.drachtio ? processTree(target.drachtio.pid) : [];
  return { app, drachtio, all: [...app, ...drachtio] };
}

/** utime+stime so far of each part of `procs` (targetProcesses), µs. */
export function cpuOfParts(procs) {
  return { app: cpuMicros(procs.app), drachtio: cpuMicros(procs.drachtio) };
}

/**
 * What a run cost, from cpuOfParts before and after it: the total over every process of the target
 * (serverCpuS, cpuMicrosPerCall, as for any server) and, on drachtio, each part on its own, with its
 * peak RSS (VmHWM of the largest process of the part).
 */
export function runCost(procs, before, after, successful) {
  // A process gone by the end reads as 0 (its figures went with it): no figure rather than a negative one.
  const app = after.app >= before.app ? after.app - before.app : NaN;
  const drachtio = after.drachtio >= before.drachtio ? after.drachtio - before.drachtio : NaN;
  const perCall = (micros) => (successful > 0 ? micros / successful : NaN);
  const rss = peakRss(procs.all);
  return {
    processes: procs.all.length,
    serverCpuS: (app + drachtio) / 1e6,
    cpuMicrosPerCall: perCall(app + drachtio),
    peakRssSumKb: rss.sumKb,
    peakRssMaxKb: rss.maxKb,
    ...(procs.drachtio.length === 0
      ? {}
      : {
          appCpuS: app / 1e6,
          drachtioCpuS: drachtio / 1e6,
          appMicrosPerCall: perCall(app),
          drachtioMicrosPerCall: perCall(drachtio),
          appPeakRssKb: peakRss(procs.app).maxKb,
          drachtioPeakRssKb: peakRss(procs.drachtio).maxKb,
        }),
  };
}

/** The last lines of each log of a target, to show why a server exited during a run. */
export function targetLogTail(target, chars = 1500) {
  const tail = (file) => {
    try {
      return readFileSync(file, 'utf8').slice(-chars);
    } catch {
      return '(no log)';
    }
  };
  const how = (child) =>
    child.exitCode !== null ? `exit code ${child.exitCode}` : (child.signalCode ?? 'running');
  return (
    `server (${how(target.child)}) log ends:\n${tail(target.logFile)}` +
    (target.drachtio
      ? `\ndrachtio-server (${how(target.drachtio.child)}) log ends:\n${tail(target.drachtio.logFile)}`
      : '')
  );
}

/** Both parts still running (a server that died during the run makes its figures meaningless). */
export function targetAlive(target) {
  const up = (child) => child.exitCode === null && child.signalCode === null;
  return up(target.child) && (target.drachtio === undefined || up(target.drachtio.child));
}
