// Load benchmark (`npm run bench`): the service against Kamailio under the same SIPp load, in two suites
// (both by default; a third, `fleet`, when named): `redirect` (stateless 302, SIPp's redirect-uac scenario) and `proxy` (stateful
// proxying of full calls to a SIPp pool member, bench/lib/proxy-suite.mjs). Each suite puts its
// standing (one table: CPU per call against Kamailio, failures, peak RSS) in place of its section of
// bench/RESULTS.md and writes its full report to a temporary file (bench/lib/standing.mjs).
// `--engine drachtio` adds a third server to both suites: the service as a drachtio application on a
// drachtio-server of its own (bench/lib/drachtio.mjs), the load sent to drachtio's SIP port, the CPU
// of drachtio-server and of the app measured apart; the standing gains a table for it. Loads above
// --drachtio-max-rate are run without it (its one SIP thread saturates near 4,000-5,000/s here).
// `--suite fleet` (only when named) runs SIPp → Kamailio's dispatcher → two instances against SIPp →
// one instance, and a run with one instance SIGKILLed (bench/lib/fleet-suite.mjs).
// `--suite redirect --homing ROWS` runs the redirect loads on the service alone, without homing and
// with a user table of ROWS rows side by side, and the table's load time and memory in fresh
// processes (bench/lib/homing-suite.mjs); its standing is RESULTS.md's homing section, not redirect's.
//
// node bench/run.mjs [--suite redirect|proxy] [--only ours|drachtio|kamailio] [--levels info,warn]
//   [--kamailio-children 2] [--repeat 1] [--no-write] [--engine drachtio] [--drachtio-max-rate 5000]
//   redirect: [--duration 10] [--loads 5000,10000,20000 (2000,5000,10000,20000 with --engine drachtio)]
//             [--tcp-rate 10000]
//             [--redirect-warmup 20000] [--memory-calls 200000] [--memory-rate 5000]
//             [--homing ROWS (e.g. 1000000: with and without a user table of ROWS rows, no Kamailio)]
//   redirect --hep: HEP export off and on side by side, the service alone (bench/lib/hep-suite.mjs):
//             [--hep-rate 10000] [--repeat rounds] [--levels one level, warn if several]
//             [--hep-collector counting|sink (a socket never read: no reader woken on loopback)]
//   proxy:    [--proxy-duration 10] [--proxy-loads 500,1000,2000,3000] [--record-route]
//             [--proxy-memory-calls 100000] [--proxy-memory-rate 1000] [--drain 40]
//             [--hold-calls 20000] [--hold-rate 2000] [--hold-ms 30000] [--warmup 15000]
//             [--kamailio-shm 1024]
//   fleet:    [--fleet-rate 5000] [--fleet-duration 10] [--fleet-warmup 10000] [--fleet-level warn]
//             [--fleet-fr-timer 2000] [--fleet-ping-interval 5] [--fleet-kill-at (half the duration)]
import { parseOptions } from './lib/help.mjs'; // first: --help exits before the rest runs
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kamailioVersion, renderKamailioConfig } from './lib/kamailio.mjs';
import { cpuMicros, currentRssKb, machineBusyMicros, peakRss } from './lib/proc.mjs';
import { fleetMarkdownReport, fleetStanding, runFleetSuite } from './lib/fleet-suite.mjs';
import { hepMarkdownReport, runHepSuite } from './lib/hep-suite.mjs';
import { runProxySuite } from './lib/proxy-suite.mjs';
import { drachtioVersion } from './lib/drachtio.mjs';
import { runLoad, sippVersion } from './lib/sipp-load.mjs';
import { markdownReport, proxyMarkdownReport, proxyStanding, redirectStanding } from './lib/report.mjs';
import { recordStanding, saveFullReport } from './lib/standing.mjs';
import {
  homingStanding,
  measureTableLoad,
  placeUserTable,
  withHoming,
  writeUserTable,
} from './lib/homing-suite.mjs';
import {
  cpuOfParts,
  runCost,
  startKamailioWith,
  startPchat,
  startPchatOnDrachtio,
  stopAll,
  stopProcess,
  stopTarget,
  targetAlive,
  targetLogTail,
  targetProcesses,
  track,
} from './lib/servers.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SUITES = ['redirect', 'proxy', 'fleet'];
/** The suites run when none is named; the fleet suite runs only when asked for. */
const DEFAULT_SUITES = ['redirect', 'proxy'];

const { values: args } = parseOptions({
  suite: { type: 'string' },
  duration: { type: 'string', default: '10' },
  // Left out: 5000,10000,20000, and 2000 as well with --engine drachtio (its target load).
  loads: { type: 'string' },
  'tcp-rate': { type: 'string', default: '10000' },
  'redirect-warmup': { type: 'string', default: '20000' },
  'memory-calls': { type: 'string', default: '200000' },
  'memory-rate': { type: 'string', default: '5000' },
  only: { type: 'string' },
  levels: { type: 'string', default: 'info,warn' },
  'kamailio-children': { type: 'string', default: '2' },
  // Rounds per load: each round runs both servers back to back, and the report pairs them by round.
  repeat: { type: 'string', default: '1' },
  'no-write': { type: 'boolean', default: false },
  'proxy-duration': { type: 'string', default: '10' },
  'proxy-loads': { type: 'string', default: '500,1000,2000,3000' },
  'record-route': { type: 'boolean', default: false },
  'proxy-memory-calls': { type: 'string', default: '100000' },
  'proxy-memory-rate': { type: 'string', default: '1000' },
  drain: { type: 'string', default: '40' },
  'hold-calls': { type: 'string', default: '20000' },
  'hold-rate': { type: 'string', default: '2000' },
  'hold-ms': { type: 'string', default: '30000' },
  'kamailio-shm': { type: 'string', default: '1024' },
  warmup: { type: 'string', default: '15000' },
  engine: { type: 'string' },
  'drachtio-max-rate': { type: 'string', default: '5000' },
  'fleet-rate': { type: 'string', default: '5000' },
  'fleet-duration': { type: 'string', default: '10' },
  'fleet-warmup': { type: 'string', default: '10000' },
  'fleet-level': { type: 'string', default: 'warn' },
  'fleet-fr-timer': { type: 'string', default: '2000' },
  'fleet-ping-interval': { type: 'string', default: '5' },
  'fleet-kill-at': { type: 'string' },
  homing: { type: 'string' },
  hep: { type: 'boolean', default: false },
  'hep-rate': { type: 'string', default: '10000' },
  'hep-collector': { type: 'string', default: 'counting' },
});
if (args.suite !== undefined && !SUITES.includes(args.suite)) {
  throw new Error(
    `--suite: expected one of ${SUITES.join(', ')} (${DEFAULT_SUITES.join(' and ')} run when it is left out)`,
  );
}
if (args.only !== undefined && !['ours', 'drachtio', 'kamailio'].includes(args.only)) {
  throw new Error('--only: expected ours, drachtio or kamailio');
}
if (args.engine !== undefined && args.engine !== 'drachtio') {
  throw new Error('--engine: expected drachtio (the native engine and Kamailio always run)');
}
/** Rows of the user table of the homing runs (--homing); undefined: no homing runs. */
const homingRows = args.homing === undefined ? undefined : Number(args.homing);
if (homingRows !== undefined) {
  if (!Number.isInteger(homingRows) || homingRows < 1)
    throw new Error("--homing: expected the user table's rows, a whole number, at least 1");
  if (args.suite !== 'redirect') throw new Error('--homing: only with --suite redirect');
  if (args.only !== undefined || args.engine !== undefined)
    throw new Error('--homing: not with --only or --engine (the service is compared with itself)');
}
/** The drachtio column: asked for with --engine drachtio, or alone with --only drachtio. */
const withDrachtio = args.engine === 'drachtio' || args.only === 'drachtio';
/** The servers of each run, in the order they take a load. */
const SERVERS = args.only
  ? [args.only]
  : withDrachtio
    ? ['ours', 'drachtio', 'kamailio']
    : ['ours', 'kamailio'];
const drachtioMaxRate = Number(args['drachtio-max-rate']);
if (!(drachtioMaxRate > 0)) throw new Error('--drachtio-max-rate: expected a positive number');
/** Whether `server` takes a load of `rate`/s: drachtio only up to --drachtio-max-rate. */
const takes = (server, rate) => server !== 'drachtio' || rate <= drachtioMaxRate;
const suites = args.suite ? [args.suite] : DEFAULT_SUITES;
const durationS = Number(args.duration);
const loads = (args.loads ?? (withDrachtio ? '2000,5000,10000,20000' : '5000,10000,20000'))
  .split(',')
  .map(Number);
const tcpRate = Number(args['tcp-rate']);
const redirectWarmup = Number(args['redirect-warmup']);
const memoryCalls = Number(args['memory-calls']);
const memoryRate = Number(args['memory-rate']);
const levels = args.levels.split(',');
const kamailioChildren = Number(args['kamailio-children']);
const repeat = Number(args.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat: expected a whole number, at least 1');
if (!(redirectWarmup >= 0)) throw new Error('--redirect-warmup: expected a number, 0 to skip the warm-up');
if (!(memoryCalls >= 0)) throw new Error('--memory-calls: expected a number, 0 to skip the memory run');
for (const [name, n] of Object.entries({ durationS, tcpRate, memoryRate, kamailioChildren })) {
  if (!(n > 0)) throw new Error(`--${name}: expected a positive number`);
}
if (loads.some((n) => !(n > 0))) throw new Error('--loads: expected positive numbers, comma-separated');
if (args.hep && args.suite !== 'redirect') throw new Error('--hep: only with --suite redirect');
const hepRate = Number(args['hep-rate']);
if (!(hepRate > 0)) throw new Error('--hep-rate: expected a positive number');
if (!['counting', 'sink'].includes(args['hep-collector']))
  throw new Error('--hep-collector: expected counting or sink');

/** The proxy suite's settings, each a positive number except the counts (0 skips that run). */
const proxyCfg = {
  levels,
  repeat,
  loads: args['proxy-loads'].split(',').map(Number),
  durationS: Number(args['proxy-duration']),
  kamailioChildren,
  kamailioShmMb: Number(args['kamailio-shm']),
  recordRoute: args['record-route'],
  memoryCalls: Number(args['proxy-memory-calls']),
  memoryRate: Number(args['proxy-memory-rate']),
  holdCalls: Number(args['hold-calls']),
  holdRate: Number(args['hold-rate']),
  holdMs: Number(args['hold-ms']),
  drainS: Number(args.drain),
  warmupCalls: Number(args.warmup),
  servers: SERVERS,
  drachtioMaxRate,
};
if (proxyCfg.loads.some((n) => !(n > 0)))
  throw new Error('--proxy-loads: expected positive numbers, comma-separated');
for (const key of ['durationS', 'kamailioShmMb', 'memoryRate', 'holdRate', 'holdMs']) {
  if (!(proxyCfg[key] > 0)) throw new Error(`proxy ${key}: expected a positive number`);
}
for (const key of ['memoryCalls', 'holdCalls', 'drainS', 'warmupCalls']) {
  if (!(proxyCfg[key] >= 0)) throw new Error(`proxy ${key}: expected a number, 0 to skip`);
}
// Timer C (181 s) would end a held INVITE first; past 32 s a held call also outlives SIPp's defaults.
if (proxyCfg.holdMs > 170_000) throw new Error('--hold-ms: at most 170000 (Timer C is 181 s)');

/** The fleet suite's settings (bench/lib/fleet-suite.mjs). */
const fleetCfg = {
  rate: Number(args['fleet-rate']),
  durationS: Number(args['fleet-duration']),
  warmupCalls: Number(args['fleet-warmup']),
  level: args['fleet-level'],
  repeat,
  kamailioChildren,
  kamailioShmMb: Number(args['kamailio-shm']),
  frTimerMs: Number(args['fleet-fr-timer']),
  pingIntervalS: Number(args['fleet-ping-interval']),
  killAtS:
    args['fleet-kill-at'] === undefined ? Number(args['fleet-duration']) / 2 : Number(args['fleet-kill-at']),
};
for (const key of ['rate', 'durationS', 'kamailioShmMb', 'frTimerMs', 'pingIntervalS', 'killAtS']) {
  if (!(fleetCfg[key] > 0)) throw new Error(`fleet ${key}: expected a positive number`);
}
if (!(fleetCfg.warmupCalls >= 0)) throw new Error('--fleet-warmup: expected a number, 0 to skip the warm-up');
if (fleetCfg.killAtS >= fleetCfg.durationS)
  throw new Error('--fleet-kill-at: expected less than --fleet-duration');
if (!['info', 'warn'].includes(fleetCfg.level)) throw new Error('--fleet-level: expected info or warn');
if (suites.includes('fleet') && args.only !== undefined) throw new Error('--only: not for the fleet suite');

// The same table for both servers: the two well-known users of the shipped example config.
const DOMAIN = 'contoso.com';
const POOL = 'pcpool.contoso.com';
const ENDPOINTS = [
  { user: 'ocschat', domain: DOMAIN, pool: POOL },
  { user: 'persistentchat', domain: DOMAIN, pool: POOL },
];

const REDIRECT_ENDPOINTS_YAML =
  'endpoints:\n' +
  ENDPOINTS.map(
    (e) => `  - sipAddress: sip:${e.user}@${e.domain}\n    poolFqdn: ${e.pool}\n    mode: redirect\n`,
  ).join('');

function startOurs(dir, level) {
  return startPchat(dir, { level, endpointsYaml: REDIRECT_ENDPOINTS_YAML });
}

/** The user table the homing runs copy into each server's folder (written once per suite). */
let homingTable;

async function startTarget(server, dir, level) {
  if (server === 'ours') return startOurs(dir, level);
  if (server === 'ours-homing') {
    await placeUserTable(dir, homingTable);
    return startPchat(dir, { level, endpointsYaml: withHoming(REDIRECT_ENDPOINTS_YAML) });
  }
  if (server === 'drachtio')
    return startPchatOnDrachtio(dir, { level, endpointsYaml: REDIRECT_ENDPOINTS_YAML });
  return startKamailioTarget(dir, level);
}

/** `hep`: siptrace mirrors every message to this collector (the HEP suite's reference). */
function startKamailioTarget(dir, level, hep) {
  return startKamailioWith(dir, (port) =>
    renderKamailioConfig({
      host: '127.0.0.1',
      port,
      children: kamailioChildren,
      tcpChildren: kamailioChildren,
      logDecisions: level === 'info',
      ...(hep === undefined ? {} : { hep }),
      endpoints: ENDPOINTS.map((e) => ({
        user: e.user,
        domain: e.domain,
        // The service's redirect mode sends Contact <sip:user@pool> when the pool has no static targets.
        targets: [{ uri: `sip:${e.user}@${e.pool}` }],
      })),
    }),
  );
}

/** One fresh server per run, so VmHWM is the peak of that run alone. */
async function measure(server, level, transport, rate) {
  const dir = await mkdtemp(join(tmpdir(), `bench-${server}-`));
  try {
    const target = await startTarget(server, dir, level);
    const procs = targetProcesses(target);
    const pids = procs.all;
    // A server runs for months: what it costs per call is its steady state. Every server takes the same
    // warm-up load first (for the service, V8 compiles its hot path then), and it is not counted.
    const warmupCpu = await warmup(dir, target, transport, rate, pids);
    const partsBefore = cpuOfParts(procs);
    const cpuBefore = partsBefore.app + partsBefore.drachtio;
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
      track,
    });
    const partsAfter = cpuOfParts(procs);
    const cpuAfter = partsAfter.app + partsAfter.drachtio;
    const busyAfter = machineBusyMicros();
    const cost = runCost(procs, partsBefore, partsAfter, load.successful);
    // Busy time of everything but the server and SIPp, as a share of the machine: non-zero means other
    // work competed for the cores, and the run's figures are less trustworthy.
    const otherCpuPercent =
      ((busyAfter - busyBefore - (cpuAfter - cpuBefore) - load.sippCpuMicros) /
        (load.wallS * 1e6 * cpus().length)) *
      100;
    const alive = targetAlive(target);
    if (!alive) console.log(`  ${server} exited during the run; ${targetLogTail(target)}`);
    await stopTarget(target, pids);
    const result = {
      server,
      level,
      ...load,
      ...cost,
      warmupCpuS: warmupCpu / 1e6,
      serverSurvived: alive,
      otherCpuPercent,
    };
    console.log(
      `${server}/${level} ${transport} ${rate}/s: ${load.successful}/${load.calls} ok, ${load.failed} failed, ` +
        `${load.achievedRate.toFixed(0)}/s, ${result.cpuMicrosPerCall.toFixed(1)} µs CPU/call` +
        (cost.drachtioMicrosPerCall === undefined
          ? ''
          : ` (drachtio-server ${cost.drachtioMicrosPerCall.toFixed(1)} + app ${cost.appMicrosPerCall.toFixed(1)})`) +
        `, peak RSS ${(cost.peakRssSumKb / 1024).toFixed(1)} MB (max ${(cost.peakRssMaxKb / 1024).toFixed(1)}), sipp CPU ${load.sippCpuPercent.toFixed(0)}%, other CPU ${otherCpuPercent.toFixed(0)}% of machine`,
    );
    if (load.errorsHead) console.log(`  sipp error log starts: ${load.errorsHead.slice(0, 600)}`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The uncounted warm-up before a run: `redirectWarmup` calls at the run's rate (at most 10,000/s). */
async function warmup(dir, target, transport, rate, pids) {
  if (redirectWarmup === 0) return 0;
  const before = cpuMicros(pids);
  const warmRate = Math.min(rate, 10_000);
  await runLoad({
    dir: await mkdtemp(join(dir, 'warmup-')),
    host: '127.0.0.1',
    port: target.port,
    transport,
    rate: warmRate,
    durationS: redirectWarmup / warmRate,
    service: 'ocschat',
    domain: DOMAIN,
    pool: POOL,
    track,
  });
  return cpuMicros(pids) - before;
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
      track,
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
    command: ['node bench/run.mjs', ...process.argv.slice(2)].join(' '),
    uname: sh('uname', ['-a']),
    cpuModel,
    cores: cpus().length,
    node: process.version,
    sipp: sippVersion(),
    kamailio: kamailioVersion(),
    ...(withDrachtio ? { drachtio: drachtioVersion(), drachtioMaxRate } : {}),
    commit: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${sh('git', ['status', '--porcelain', '--', 'src']) ? ' (src modified)' : ''}`,
    kamailioChildren,
    durationS,
    redirectWarmup,
    // Other work on the machine skews every figure here; the load average before the run shows it.
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

/**
 * The full report goes to a temporary file; the standing replaces the suite's section of
 * bench/RESULTS.md, unless --no-write, or one server was left out (a standing is a comparison).
 */
async function record(suite, env, report, standing) {
  console.log(`full report: ${await saveFullReport(suite, env.date, report)}`);
  if (args['no-write'] || process.env.PCHAT_DIST !== undefined) return;
  if (args.only) {
    console.log(`bench/RESULTS.md left as it was: --only ${args.only} runs one server`);
    return;
  }
  console.log(`standing written to ${await recordStanding(suite, standing)}`);
}

async function redirectSuite() {
  const env = environment();
  const servers = SERVERS;
  const runs = [];
  // The servers take each load back to back, so a machine that drifts (a busier neighbour, a slower
  // phase of the host) shifts both sides of a ratio alike rather than one half of the suite.
  const cells = [];
  for (const level of levels) {
    for (const rate of loads) cells.push({ level, transport: 'udp', rate });
    cells.push({ level, transport: 'tcp', rate: tcpRate });
  }
  for (const c of cells)
    for (let round = 1; round <= repeat; round++)
      for (const server of servers.filter((sv) => takes(sv, c.rate)))
        runs.push({ ...(await measure(server, c.level, c.transport, c.rate)), round });
  runs.sort((a, b) => servers.indexOf(a.server) - servers.indexOf(b.server));
  const memory = servers.includes('ours') && memoryCalls > 0 ? await memoryRun('info') : undefined;
  const report = markdownReport({ env, runs, memory, loads, tcpRate, memoryCalls, memoryRate, servers });
  console.log(`\n${report}`);
  await record('redirect', env, report, redirectStanding({ env, runs, memory, memoryCalls, memoryRate }));
}

/**
 * `--homing ROWS`: each load on the service without homing and with a user table of ROWS rows, back
 * to back; then the table's load in fresh processes. Kamailio and the memory run are left out.
 */
async function homingSuite() {
  const env = environment();
  const scratch = await mkdtemp(join(tmpdir(), 'bench-homing-'));
  try {
    homingTable = join(scratch, 'users.csv');
    await writeUserTable(homingTable, homingRows, DOMAIN, POOL);
    const runs = [];
    for (const level of levels) {
      const cells = [
        ...loads.map((rate) => ({ transport: 'udp', rate })),
        { transport: 'tcp', rate: tcpRate },
      ];
      for (const c of cells)
        for (let round = 1; round <= repeat; round++)
          for (const server of ['ours', 'ours-homing'])
            runs.push({ ...(await measure(server, level, c.transport, c.rate)), round });
    }
    const load = await measureTableLoad(homingTable, REDIRECT_ENDPOINTS_YAML);
    const standing = homingStanding({ env, rows: homingRows, runs, load });
    console.log(`\n${standing}`);
    await record('homing', env, standing, standing);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** HEP off and on, side by side; the report is printed for bench/RESULTS.md (written by hand). */
async function hepSuite() {
  const env = environment();
  const cfg = {
    rate: hepRate,
    durationS,
    rounds: repeat,
    // The cheaper log level unless one is named: the smaller the cost without HEP, the larger its share.
    level: levels.length === 1 ? levels[0] : 'warn',
    warmupCalls: redirectWarmup,
    collector: args['hep-collector'],
    endpointsYaml: REDIRECT_ENDPOINTS_YAML,
    domain: DOMAIN,
    pool: POOL,
    // The reference: Kamailio's siptrace mirroring the same traffic to the same collector.
    startKamailio: (dir, level, hepPort) =>
      startKamailioTarget(dir, level, hepPort === undefined ? undefined : { port: hepPort, id: 2001 }),
  };
  const result = await runHepSuite(cfg);
  const report = hepMarkdownReport({ env, cfg, ...result });
  console.log(`\n${report}`);
  console.log(`full report: ${await saveFullReport('redirect-hep', env.date, report)}`);
}

async function proxySuite() {
  // Taken before the suite starts, so the load average is that of the machine, not of the first runs.
  const env = { ...environment(), durationS: proxyCfg.durationS };
  const result = await runProxySuite(proxyCfg);
  // The raw figures, kept in case the report cannot be rendered: a long run is not lost to a typo.
  const raw = join(tmpdir(), `pchat-bench-proxy-${env.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(raw, JSON.stringify({ env, cfg: proxyCfg, ...result }, null, 2));
  console.log(`raw results: ${raw}`);
  const report = proxyMarkdownReport({ env, cfg: proxyCfg, ...result });
  console.log(`\n${report}`);
  await record('proxy', env, report, proxyStanding({ env, cfg: proxyCfg, ...result }));
}

async function fleetSuite() {
  const env = environment();
  const result = await runFleetSuite(fleetCfg);
  const raw = join(tmpdir(), `pchat-bench-fleet-${env.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(raw, JSON.stringify({ env, cfg: fleetCfg, ...result }, null, 2));
  console.log(`raw results: ${raw}`);
  const report = fleetMarkdownReport({ env, cfg: fleetCfg, ...result });
  console.log(`\n${report}`);
  await record('fleet', env, report, fleetStanding({ env, cfg: fleetCfg, ...result }));
}

async function main() {
  const env = environment();
  console.log(
    `bench (${suites.join(' + ')}): ${env.cpuModel}, ${env.cores} cores, node ${env.node}, ${env.sipp}, ${env.kamailio}` +
      `${env.drachtio ? `, ${env.drachtio}` : ''}; load average ${env.loadavg}`,
  );
  for (const suite of suites) {
    if (suite === 'redirect' && homingRows !== undefined) await homingSuite();
    else if (suite === 'redirect') await (args.hep ? hepSuite() : redirectSuite());
    else if (suite === 'fleet') await fleetSuite();
    else await proxySuite();
  }
}

async function teardown() {
  await stopAll();
}

process.once('SIGINT', () => {
  void teardown().then(() => process.exit(130));
});
try {
  await main();
} finally {
  await teardown();
}
