// Starts and stops the servers under test (pchat-endpoint from dist/, Kamailio) and keeps track of
// every process the benchmark started, so teardown stops them even after a failure.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKamailio } from './kamailio.mjs';
import { freePort, waitForSip } from './net.mjs';
import { processTree } from './proc.mjs';

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
 * and log level; `admin: true` also opens the admin port (for /metrics) on another free port.
 * `nodeArgs` go to node itself; the process runs in `dir` (where a heap snapshot would be written).
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, pid: number, port: number,
 *   adminPort: number | undefined, logFile: string }>}
 */
export async function startPchat(dir, { level, endpointsYaml, admin = false, tcp = true, nodeArgs = [] }) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm run bench does)`);
  const port = await freePort(tcp ? ['udp', 'tcp'] : ['udp']);
  const adminPort = admin ? await freePort(['tcp']) : undefined;
  const configDir = join(dir, 'config');
  await mkdir(configDir, { recursive: true });
  await writeFile(
    join(configDir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\n${tcp ? `  - tcp://127.0.0.1:${port}\n` : ''}` +
      `log:\n  level: ${level}\n  pretty: false\n` +
      (adminPort === undefined ? '' : `admin:\n  listen: 127.0.0.1:${adminPort}\n`),
  );
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
  await waitForSip('127.0.0.1', port).catch((err) => {
    throw new Error(`${err.message}\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  });
  return { child, pid: child.pid, port, adminPort, logFile };
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
