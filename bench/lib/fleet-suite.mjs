// The fleet benchmark (`--suite fleet`): SIPp → Kamailio's dispatcher (bench/kamailio/fleet.cfg.tmpl)
// → two pchat-endpoint instances (127.0.0.2 and 127.0.0.3, one port) against SIPp → one instance
// directly, redirect at one offered load over UDP. What it answers: calls failed (none expected), the
// CPU per call of the front (Kamailio's processes) and of each instance, so the CPU a front adds per
// call; and what a lost instance costs: one instance SIGKILLed in the middle of a run, the calls
// failed and the ones delayed until the front failed them over.
//
// This machine has 2 cores for SIPp, Kamailio and both instances, so the fleet cannot show more
// throughput than one instance here: each instance is one process on one core, and the gain needs a
// core per instance (README, Running several instances).
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderKamailioFleetConfig } from './kamailio.mjs';
import { cpuMicros, machineBusyMicros, peakRss, processTree } from './proc.mjs';
import { freePort } from './net.mjs';
import { runLoad } from './sipp-load.mjs';
import { startKamailioWith, startPchat, stopProcess, track } from './servers.mjs';

const USER = 'ocschat';
const DOMAIN = 'contoso.com';
const POOL = 'pcpool.contoso.com';
const ENDPOINTS_YAML =
  `endpoints:\n  - sipAddress: sip:${USER}@${DOMAIN}\n    poolFqdn: ${POOL}\n    mode: redirect\n` +
  `  - sipAddress: sip:persistentchat@${DOMAIN}\n    poolFqdn: ${POOL}\n    mode: redirect\n`;
/** The instances' addresses: one port on each, as a fleet on separate hosts would have. */
const INSTANCE_HOSTS = ['127.0.0.2', '127.0.0.3'];

/** INVITEs an instance has answered, from its /metrics (pchat_requests_total, every outcome). */
async function invitesAnswered(adminPort) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('pchat_requests_total{') && line.includes('method="INVITE"')) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
    }
  }
  return n;
}

/** Instances on INSTANCE_HOSTS (the first `count`), one free port shared, admin ports for /metrics. */
async function startInstances(dir, count, level) {
  const port = await freePort(['udp', 'tcp']);
  const out = [];
  for (const host of INSTANCE_HOSTS.slice(0, count)) {
    const idir = join(dir, host);
    out.push(await startPchat(idir, { level, endpointsYaml: ENDPOINTS_YAML, admin: true, host, port }));
  }
  return out;
}

/** Kamailio's dispatcher front on 127.0.0.1 over `instances`, its process tree recorded. */
async function startFront(dir, instances, cfg) {
  const listFile = join(dir, 'dispatcher.list');
  return startKamailioWith(
    dir,
    async (port) => {
      const { config, list } = await renderKamailioFleetConfig({
        host: '127.0.0.1',
        port,
        children: cfg.kamailioChildren,
        listFile,
        frTimerMs: cfg.frTimerMs,
        pingIntervalS: cfg.pingIntervalS,
        instances: instances.map((i) => ({ host: i.host, port: i.port })),
      });
      await writeFile(listFile, list);
      return config;
    },
    // tm keeps a transaction per call for a few seconds after its 302 (wait timer), and the kill run
    // holds those of a dead instance for fr_timer too.
    { shmMb: cfg.kamailioShmMb },
  );
}

/** SIPp at `rate` for `durationS` against `port` on 127.0.0.1 or an instance's host. */
function load(dir, host, port, rate, durationS) {
  return runLoad({
    dir,
    host,
    port,
    transport: 'udp',
    rate,
    durationS,
    service: USER,
    domain: DOMAIN,
    pool: POOL,
    track,
  });
}

/** Calls whose INVITE → 302 took at least `ms` (SIPp's response-time buckets: "_1000" is ≥ 1 s). */
function slowerThan(buckets, ms) {
  return buckets
    .filter((b) => {
      const bound = Number(/(\d+)$/.exec(b.label)?.[1]);
      return b.label.startsWith('>=') ? bound >= ms : false;
    })
    .reduce((sum, b) => sum + b.count, 0);
}

/** Seconds from `sinceMs` to the first "instance down ... at <epoch seconds>" line of the front's log. */
function markedDownAfter(log, sinceMs) {
  const m = /dispatcher: instance down \S+ at (\d+\.\d+)/.exec(log);
  return m === null ? NaN : Number(m[1]) - sinceMs / 1000;
}

/**
 * One measured configuration: `front` false sends SIPp straight to one instance, true through the
 * front to two. `killAtS`: SIGKILL the second instance that many seconds into the measured run.
 */
async function measure(cfg, { front, killAtS, rate = cfg.rate }) {
  const dir = await mkdtemp(join(tmpdir(), `bench-fleet-${front ? 'front' : 'direct'}-`));
  /** What to stop at the end: each process, and for Kamailio its forked workers. */
  const started = [];
  try {
    const instances = await startInstances(dir, front ? 2 : 1, cfg.level);
    started.push(...instances.map((i) => ({ child: i.child, pids: [] })));
    const k = front ? await startFront(dir, instances, cfg) : undefined;
    const frontPids = k ? processTree(k.pid) : [];
    if (k) started.unshift({ child: k.child, pids: frontPids });
    const target = k ? { host: '127.0.0.1', port: k.port } : instances[0];
    const instancePids = instances.map((i) => [i.pid]);
    // Every process compiles and sizes itself on the same uncounted warm-up load first.
    if (cfg.warmupCalls > 0) {
      const warmRate = Math.min(rate, 10_000);
      await load(
        await mkdtemp(join(dir, 'warmup-')),
        target.host,
        target.port,
        warmRate,
        cfg.warmupCalls / warmRate,
      );
    }
    const answeredBefore = await Promise.all(instances.map((i) => invitesAnswered(i.adminPort)));
    const frontBefore = cpuMicros(frontPids);
    const instBefore = instancePids.map((p) => cpuMicros(p));
    const busyBefore = machineBusyMicros();
    // The killed instance's figures are read just before the kill: its /proc entry goes with it.
    let killed;
    const killTimer =
      killAtS === undefined
        ? undefined
        : setTimeout(() => {
            const cpu = cpuMicros(instancePids[1]) - instBefore[1];
            void invitesAnswered(instances[1].adminPort)
              .then(
                (n) => n - answeredBefore[1],
                () => NaN,
              )
              .then((answered) => {
                instances[1].child.kill('SIGKILL');
                killed = { atMs: Date.now(), cpu, answered };
              });
          }, killAtS * 1000);
    const result = await load(
      await mkdtemp(join(dir, 'run-')),
      target.host,
      target.port,
      rate,
      cfg.durationS,
    );
    clearTimeout(killTimer);
    const frontCpu = cpuMicros(frontPids) - frontBefore;
    const alive = instances.map((i) => i.child.exitCode === null && i.child.signalCode === null);
    // The killed instance: what it did until the kill.
    const instCpu = instancePids.map((p, n) =>
      alive[n] ? cpuMicros(p) - instBefore[n] : n === 1 && killed ? killed.cpu : NaN,
    );
    const busy = machineBusyMicros() - busyBefore;
    const answered = await Promise.all(
      instances.map((i, n) =>
        alive[n]
          ? invitesAnswered(i.adminPort).then((a) => a - answeredBefore[n])
          : n === 1 && killed
            ? killed.answered
            : NaN,
      ),
    );
    const perCall = (micros) => (result.successful > 0 ? micros / result.successful : NaN);
    const measured = frontCpu + instCpu.reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);
    const log = k ? await readFile(k.logFile, 'utf8').catch(() => '') : '';
    const row = {
      setup: front
        ? killAtS === undefined
          ? 'front'
          : 'front, one killed'
        : rate === cfg.rate
          ? 'direct'
          : 'direct, half the load',
      rate,
      ...result,
      frontMicrosPerCall: k ? perCall(frontCpu) : undefined,
      instanceMicrosPerCall: instCpu.map(perCall),
      answered,
      frontPeakRssKb: k ? peakRss(frontPids).sumKb : undefined,
      killedAfterS: killed ? killAtS : undefined,
      // From the kill to the front's "instance down" line (the first call to time out marks it).
      markedDownAfterS: killed ? markedDownAfter(log, killed.atMs) : undefined,
      slowCalls: slowerThan(result.buckets, 1000),
      otherCpuPercent:
        ((busy - measured - result.sippCpuMicros) / (result.wallS * 1e6 * cpus().length)) * 100,
    };
    console.log(
      `fleet ${row.setup} ${rate}/s: ${row.successful}/${row.calls} ok, ${row.failed} failed, ${row.unfinished} unfinished, ` +
        `${row.achievedRate.toFixed(0)}/s` +
        (k ? `, front ${row.frontMicrosPerCall.toFixed(1)} µs/call` : '') +
        `, instances ${row.instanceMicrosPerCall.map((v) => v.toFixed(1)).join(' + ')} µs/call` +
        `, answered ${row.answered.join(' / ')}, ${row.slowCalls} calls ≥ 1 s, sipp CPU ${result.sippCpuPercent.toFixed(0)}%` +
        `, other CPU ${row.otherCpuPercent.toFixed(0)}%`,
    );
    if (result.errorsHead) console.log(`  sipp error log starts: ${result.errorsHead.slice(0, 600)}`);
    return row;
  } finally {
    for (const p of started) await stopProcess(p.child, p.pids);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * @param {{ rate: number, durationS: number, warmupCalls: number, repeat: number, level: string,
 *   kamailioChildren: number, kamailioShmMb: number, frTimerMs: number, pingIntervalS: number,
 *   killAtS: number }} cfg
 */
export async function runFleetSuite(cfg) {
  const runs = [];
  // Direct and through the front back to back in each round, so a drifting machine shifts both. One
  // instance at half the load too: what each instance behind the front takes, without the front.
  for (let round = 1; round <= cfg.repeat; round++) {
    runs.push({ ...(await measure(cfg, { front: false })), round });
    runs.push({ ...(await measure(cfg, { front: false, rate: cfg.rate / 2 })), round });
    runs.push({ ...(await measure(cfg, { front: true })), round });
  }
  const kill = await measure(cfg, { front: true, killAtS: cfg.killAtS });
  return { runs, kill };
}

const fmt = (v, digits = 1) => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));
const median = (values) => {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The figures the standing and the report share: medians over the rounds. */
function summary({ runs }) {
  const direct = runs.filter((r) => r.setup === 'direct');
  const front = runs.filter((r) => r.setup === 'front');
  const directInstance = median(direct.map((r) => r.instanceMicrosPerCall[0]));
  const halfInstance = median(
    runs.filter((r) => r.setup === 'direct, half the load').map((r) => r.instanceMicrosPerCall[0]),
  );
  const frontCost = median(front.map((r) => r.frontMicrosPerCall));
  const instancesCost = median(front.map((r) => r.instanceMicrosPerCall.reduce((a, b) => a + b, 0)));
  return { direct, front, directInstance, halfInstance, frontCost, instancesCost };
}

function table(rows) {
  const lines = [
    '| setup | rate/s | round | calls | failed | unfinished | achieved/s | front µs/call | instances µs/call (each) | INVITEs answered (each) | calls ≥ 1 s | SIPp CPU | other CPU |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --- | --- | --: | --: | --: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.setup} | ${r.rate} | ${r.round ?? '—'} | ${r.calls} | ${r.failed} | ${r.unfinished} | ${fmt(r.achievedRate, 0)} | ` +
        `${fmt(r.frontMicrosPerCall)} | ${r.instanceMicrosPerCall.map((v) => fmt(v)).join(' + ')} | ` +
        `${r.answered.map((a) => (Number.isNaN(a) ? '—' : String(a))).join(' / ')} | ${r.slowCalls} | ` +
        `${fmt(r.sippCpuPercent, 0)}% | ${fmt(r.otherCpuPercent, 0)}% |`,
    );
  }
  return lines.join('\n');
}

function envLine(env) {
  return (
    `${env.date.slice(0, 10)}, commit ${env.commit}, ${env.cpuModel} (${env.cores} cores), node ${env.node}, ` +
    `${env.sipp}, ${env.kamailio}; load average before ${env.loadavg}`
  );
}

/** The full report: every run, and the settings. */
export function fleetMarkdownReport({ env, cfg, runs, kill }) {
  const s = summary({ runs });
  return [
    `# Fleet benchmark (${env.command})`,
    '',
    envLine(env),
    '',
    `Redirect over UDP at ${cfg.rate}/s for ${cfg.durationS} s per run (${cfg.warmupCalls} calls of uncounted warm-up first), ` +
      `instances at log level ${cfg.level}, Kamailio with ${cfg.kamailioChildren} UDP children, fr_timer ${cfg.frTimerMs} ms, ` +
      `probes every ${cfg.pingIntervalS} s. CPU per call is the process's CPU over the run divided by the calls that succeeded.`,
    '',
    table([...runs, kill]),
    '',
    `Front (median): ${fmt(s.frontCost)} µs per call; instances behind it ${fmt(s.instancesCost)} µs per call together, ` +
      `one instance alone ${fmt(s.directInstance)} µs per call (at half the load: ${fmt(s.halfInstance)}).`,
    '',
    `Kill run: the second instance SIGKILLed ${kill.killedAfterS ?? '—'} s into the run; ${kill.failed} calls failed, ` +
      `${kill.unfinished} unfinished, ${kill.slowCalls} answered after ≥ 1 s (failed over on timeout), ` +
      `the front marked it down ${fmt(kill.markedDownAfterS)} s after the kill.`,
  ].join('\n');
}

/** The fleet section of bench/RESULTS.md. */
export function fleetStanding({ env, cfg, runs, kill }) {
  const s = summary({ runs });
  const failed = runs.reduce((n, r) => n + r.failed + r.unfinished, 0);
  return [
    '## Fleet: Kamailio dispatcher in front of two instances',
    '',
    envLine(env),
    '',
    `SIPp → Kamailio (dispatcher, hash over Call-ID, bench/kamailio/fleet.cfg.tmpl) → two instances on 127.0.0.2 and ` +
      `127.0.0.3, against SIPp → one instance, redirect over UDP at ${cfg.rate}/s, ${cfg.durationS} s per run, ` +
      `instances at log level ${cfg.level}; \`${env.command}\`.`,
    '',
    '| | µs CPU per call |',
    '| --- | --: |',
    `| one instance, SIPp straight to it | ${fmt(s.directInstance)} |`,
    `| one instance at half the load (${cfg.rate / 2}/s: what each behind the front takes), per call it answered | ${fmt(s.halfInstance)} |`,
    `| through the front: Kamailio (all its processes) | ${fmt(s.frontCost)} |`,
    `| through the front: both instances together | ${fmt(s.instancesCost)} |`,
    `| **the front adds per call** (all through the front, less one instance alone) | **${fmt(s.frontCost + s.instancesCost - s.directInstance)}** |`,
    '',
    `Calls failed or unfinished through the front and direct: ${failed}. One instance SIGKILLed ` +
      `${kill.killedAfterS ?? '—'} s into a run: ${kill.failed} failed, ${kill.unfinished} unfinished; ` +
      `${kill.slowCalls} of ${kill.calls} answered after ≥ 1 s (the front waited fr_timer, ${cfg.frTimerMs} ms, ` +
      `for the dead instance, then failed them over); the front marked it down ${fmt(kill.markedDownAfterS)} s after the kill.`,
    '',
    table([...runs, kill]),
    '',
    'Two cores host SIPp, Kamailio and both instances here, so no throughput gain can show: each instance is one ' +
      'process on one core, and a fleet scales with a core (or a host) per instance.',
  ].join('\n');
}
