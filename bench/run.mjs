// Load benchmark (`npm run bench`): the service and a Kamailio stateless redirect server, each driven by
// SIPp's redirect-uac scenario at fixed offered loads; appends a dated section to bench/RESULTS.md.
//
// node bench/run.mjs [--duration 10] [--loads 5000,10000,20000] [--tcp-rate 10000]
//   [--memory-calls 200000] [--memory-rate 5000] [--only ours|kamailio] [--kamailio-children 2]
//   [--levels info,warn] [--no-write]
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { kamailioVersion, renderKamailioConfig, startKamailio } from './lib/kamailio.mjs';
import { freePort, waitForSip } from './lib/net.mjs';
import { cpuMicros, currentRssKb, machineBusyMicros, peakRss, processTree } from './lib/proc.mjs';
import { runLoad, sippVersion } from './lib/sipp-load.mjs';
import { markdownReport } from './lib/report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const RESULTS = join(ROOT, 'bench/RESULTS.md');

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    loads: { type: 'string', default: '5000,10000,20000' },
    'tcp-rate': { type: 'string', default: '10000' },
    'memory-calls': { type: 'string', default: '200000' },
    'memory-rate': { type: 'string', default: '5000' },
    only: { type: 'string' },
    levels: { type: 'string', default: 'info,warn' },
    'kamailio-children': { type: 'string', default: '2' },
    'no-write': { type: 'boolean', default: false },
  },
});
const durationS = Number(args.duration);
const loads = args.loads.split(',').map(Number);
const tcpRate = Number(args['tcp-rate']);
const memoryCalls = Number(args['memory-calls']);
const memoryRate = Number(args['memory-rate']);
const levels = args.levels.split(',');
const kamailioChildren = Number(args['kamailio-children']);
if (!(memoryCalls >= 0)) throw new Error('--memory-calls: expected a number, 0 to skip the memory run');
for (const [name, n] of Object.entries({ durationS, tcpRate, memoryRate, kamailioChildren })) {
  if (!(n > 0)) throw new Error(`--${name}: expected a positive number`);
}
if (loads.some((n) => !(n > 0))) throw new Error('--loads: expected positive numbers, comma-separated');

// The same table for both servers: the two well-known users of the shipped example config.
const DOMAIN = 'contoso.com';
const POOL = 'pcpool.contoso.com';
const ENDPOINTS = [
  { user: 'ocschat', domain: DOMAIN, pool: POOL },
  { user: 'persistentchat', domain: DOMAIN, pool: POOL },
];

/** Everything this script started, so teardown can stop it even after a failure. */
const running = new Set();

async function stopProcess(child, pidsToReap = []) {
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

async function startOurs(dir, level) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm run bench does)`);
  const port = await freePort(['udp', 'tcp']);
  const configDir = join(dir, 'config');
  await mkdir(configDir, { recursive: true });
  await writeFile(
    join(configDir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\n  - tcp://127.0.0.1:${port}\nlog:\n  level: ${level}\n  pretty: false\n`,
  );
  await writeFile(
    join(configDir, 'endpoints.yaml'),
    'endpoints:\n' +
      ENDPOINTS.map(
        (e) => `  - sipAddress: sip:${e.user}@${e.domain}\n    poolFqdn: ${e.pool}\n    mode: redirect\n`,
      ).join(''),
  );
  const logFile = join(dir, 'server.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI, 'serve', '--config-dir', configDir], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  running.add({ child, pids: [] });
  await waitForSip('127.0.0.1', port).catch((err) => {
    throw new Error(`${err.message}\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  });
  return { child, pid: child.pid, port, logFile };
}

async function startKamailioTarget(dir, level) {
  const port = await freePort(['udp', 'tcp']);
  const config = await renderKamailioConfig({
    host: '127.0.0.1',
    port,
    children: kamailioChildren,
    tcpChildren: kamailioChildren,
    logDecisions: level === 'info',
    endpoints: ENDPOINTS.map((e) => ({
      user: e.user,
      domain: e.domain,
      // Same Contact as the service's redirect mode sends when the pool has no static targets.
      contact: `<sip:${e.user}@${e.pool}>`,
    })),
  });
  const k = await startKamailio(dir, config);
  const entry = { child: k.child, pids: [] };
  running.add(entry);
  await waitForSip('127.0.0.1', port).catch((err) => {
    throw new Error(`${err.message}\n${readFileSync(k.logFile, 'utf8').slice(-2000)}`);
  });
  entry.pids = processTree(k.pid);
  return { child: k.child, pid: k.pid, port, logFile: k.logFile };
}

/** One fresh server per run, so VmHWM is the peak of that run alone. */
async function measure(server, level, transport, rate) {
  const dir = await mkdtemp(join(tmpdir(), `bench-${server}-`));
  try {
    const target = server === 'ours' ? await startOurs(dir, level) : await startKamailioTarget(dir, level);
    const pids = processTree(target.pid);
    const cpuBefore = cpuMicros(pids);
    const busyBefore = machineBusyMicros();
    const load = await runLoad({
      dir,
      host: '127.0.0.1',
      port: target.port,
      transport,
      rate,
      durationS,
      service: 'ocschat',
      domain: DOMAIN,
      pool: POOL,
    });
    const cpuAfter = cpuMicros(pids);
    const busyAfter = machineBusyMicros();
    const rss = peakRss(pids);
    // Busy time of everything but the server and SIPp, as a share of the machine: non-zero means other
    // work competed for the cores, and the run's figures are less trustworthy.
    const otherCpuPercent =
      ((busyAfter - busyBefore - (cpuAfter - cpuBefore) - load.sippCpuMicros) /
        (load.wallS * 1e6 * cpus().length)) *
      100;
    const alive = target.child.exitCode === null && target.child.signalCode === null;
    await stopProcess(target.child, pids);
    const result = {
      server,
      level,
      ...load,
      processes: pids.length,
      serverCpuS: (cpuAfter - cpuBefore) / 1e6,
      cpuMicrosPerCall: load.successful > 0 ? (cpuAfter - cpuBefore) / load.successful : NaN,
      peakRssSumKb: rss.sumKb,
      peakRssMaxKb: rss.maxKb,
      serverSurvived: alive,
      otherCpuPercent,
    };
    console.log(
      `${server}/${level} ${transport} ${rate}/s: ${load.successful}/${load.calls} ok, ${load.failed} failed, ` +
        `${load.achievedRate.toFixed(0)}/s, ${result.cpuMicrosPerCall.toFixed(1)} µs CPU/call, ` +
        `peak RSS ${(rss.sumKb / 1024).toFixed(1)} MB (max ${(rss.maxKb / 1024).toFixed(1)}), sipp CPU ${load.sippCpuPercent.toFixed(0)}%, other CPU ${otherCpuPercent.toFixed(0)}% of machine`,
    );
    if (load.errorsHead) console.log(`  sipp error log starts: ${load.errorsHead.slice(0, 600)}`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * RSS of the service sampled once a second through a long run. The default rate is one the service
 * sustains on the reference machine, so growth means retained memory rather than a backlog of work.
 */
async function memoryRun(level) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-memory-'));
  try {
    const target = await startOurs(dir, level);
    const pids = [target.pid];
    const samples = [];
    const t0 = Date.now();
    let lastSample = 0;
    samples.push({ t: 0, rssKb: currentRssKb(pids) });
    const load = await runLoad({
      dir,
      host: '127.0.0.1',
      port: target.port,
      transport: 'udp',
      rate: memoryRate,
      durationS: Math.ceil(memoryCalls / memoryRate),
      service: 'ocschat',
      domain: DOMAIN,
      pool: POOL,
      onSample: () => {
        if (Date.now() - lastSample >= 1000) {
          lastSample = Date.now();
          samples.push({ t: (lastSample - t0) / 1000, rssKb: currentRssKb(pids) });
        }
      },
    });
    samples.push({ t: (Date.now() - t0) / 1000, rssKb: currentRssKb(pids) });
    const rss = peakRss(pids);
    await stopProcess(target.child, pids);
    return { level, load, samples, peakRssKb: rss.maxKb };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function environment() {
  const sh = (cmd, a) => {
    try {
      return execFileSync(cmd, a, { encoding: 'utf8', cwd: ROOT }).trim();
    } catch {
      return 'unknown';
    }
  };
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return {
    date: new Date().toISOString(),
    uname: sh('uname', ['-a']),
    cpuModel,
    cores: cpus().length,
    node: process.version,
    sipp: sippVersion(),
    kamailio: kamailioVersion(),
    commit: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${sh('git', ['status', '--porcelain', '--', 'src']) ? ' (src modified)' : ''}`,
    kamailioChildren,
    durationS,
    // Other work on the machine skews every figure here; the load average before the run shows it.
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

async function main() {
  const env = environment();
  console.log(`bench: ${env.cpuModel}, ${env.cores} cores, node ${env.node}, ${env.sipp}, ${env.kamailio}`);
  const servers = args.only ? [args.only] : ['ours', 'kamailio'];
  const runs = [];
  for (const server of servers) {
    for (const level of levels) {
      for (const rate of loads) runs.push(await measure(server, level, 'udp', rate));
      runs.push(await measure(server, level, 'tcp', tcpRate));
    }
  }
  const memory = servers.includes('ours') && memoryCalls > 0 ? await memoryRun('info') : undefined;
  const report = markdownReport({ env, runs, memory, loads, tcpRate, memoryCalls, memoryRate });
  console.log(`\n${report}`);
  if (!args['no-write']) {
    if (!existsSync(RESULTS)) {
      await writeFile(
        RESULTS,
        '# Benchmark results\n\nWritten by `npm run bench` (bench/run.mjs); each run appends a dated section.\n',
      );
    }
    await appendFile(RESULTS, `\n${report}\n`);
    console.log(`appended to ${RESULTS}`);
  }
}

async function teardown() {
  await Promise.all([...running].map(({ child, pids }) => stopProcess(child, pids)));
}

process.once('SIGINT', () => {
  void teardown().then(() => process.exit(130));
});
try {
  await main();
} finally {
  await teardown();
}
