// The proxy benchmark: SIPp client → server → SIPp pool member full calls (INVITE/100/200/ACK/BYE/200)
// over UDP at fixed offered loads, pchat-endpoint (mode proxy, one static pool member) against Kamailio
// (tm + rr), and with `drachtio` among the servers the same service as a drachtio application on a
// drachtio-server; then the native service's memory over a long run and per held INVITE transaction.
import { readdir, readFile, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderKamailioProxyConfig } from './kamailio.mjs';
import { currentRssKb, machineBusyMicros, peakRss } from './proc.mjs';
import { PROXY_UAC_SCENARIO, runLoad, startSippUas } from './sipp-load.mjs';
import {
  cpuOfParts,
  runCost,
  startKamailioWith,
  startPchat,
  startPchatOnDrachtio,
  stopProcess,
  stopTarget,
  targetAlive,
  targetLogTail,
  targetProcesses,
  track,
} from './servers.mjs';

const USER = 'ocschat';
const DOMAIN = 'contoso.com';
const POOL = 'pcpool.contoso.com';
/** Calls/s of the uncounted warm-up before each measured run, whatever the run's own rate. */
const WARMUP_RATE = 1000;
/**
 * The same warm-up on drachtio runs at this rate instead, for as long: drachtio-server spends about
 * 1 ms per proxied call here, so 1,000/s saturates its one SIP thread, INVITEs then wait past the
 * provisional timeout and the pool member is held down for the measured run too.
 */
const DRACHTIO_WARMUP_RATE = 500;

/**
 * endpoints.yaml: the well-known user in mode proxy, its pool's one static member the SIPp UAS.
 * `recordRoute`: the endpoint's own Record-Route setting, left out when undefined.
 */
function proxyEndpoints(uasPort, recordRoute) {
  return (
    `endpoints:\n  - sipAddress: sip:${USER}@${DOMAIN}\n    poolFqdn: ${POOL}\n    mode: proxy\n` +
    (recordRoute === undefined ? '' : `    recordRoute: ${recordRoute}\n`) +
    `pools:\n  - fqdn: ${POOL}\n    targets:\n      - uri: sip:127.0.0.1:${uasPort};transport=udp\n`
  );
}

/**
 * What the server logged besides its per-request decisions: for the service (on either engine: the
 * app's log), decisions that did not end in a relayed 2xx and every warn/error line, counted by kind;
 * for Kamailio, WARNING/ERROR lines.
 */
async function logSummary(server, logFile) {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const counts = new Map();
  const add = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const line of text.split('\n')) {
    if (!line) continue;
    if (server !== 'kamailio') {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        add(`unparsed: ${line.slice(0, 120)}`);
        continue;
      }
      if (rec.msg === 'decision') {
        // The start-up OPTIONS (bench/lib/net.mjs waitForSip) is answered by the service itself.
        if (rec.status !== 200 || (rec.outcome !== 'proxied' && rec.outcome !== 'options'))
          add(`decision ${rec.mode} ${rec.method} ${rec.status} ${rec.outcome}`);
      } else if (rec.level >= 40) add(`level ${rec.level}: ${rec.msg}${rec.err ? ` (${rec.err})` : ''}`);
    } else if (/\b(WARNING|ERROR|CRITICAL|ALERT)\b/.test(line)) {
      add(line.replace(/^.*?(WARNING|ERROR|CRITICAL|ALERT)/, '$1').slice(0, 160));
    }
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, n]) => `${n}× ${k}`);
}

/**
 * The configuration shared by every run of the suite.
 * @typedef {{ levels: string[], repeat: number, loads: number[], durationS: number, kamailioChildren: number,
 *   kamailioShmMb: number, recordRoute: boolean, memoryCalls: number, memoryRate: number,
 *   holdCalls: number, holdRate: number, holdMs: number, drainS: number, warmupCalls: number,
 *   servers: string[], drachtioMaxRate: number }} ProxySuiteConfig
 *   drachtioMaxRate: loads above it are run without the drachtio server.
 */

async function startServer(server, dir, level, uasPort, cfg, admin = false) {
  if (server === 'drachtio') {
    // SIPp sends the ACK and the BYE to the proxy's address, Route set or not. The native engine and
    // Kamailio relay them by their Request-URI; drachtio-server relays an in-dialog request only when
    // its Route names drachtio (it answers a BYE without one 481 and drops such an ACK), so here the
    // endpoint records the route.
    return startPchatOnDrachtio(dir, { level, endpointsYaml: proxyEndpoints(uasPort, true), tcp: false });
  }
  if (server === 'ours') {
    return startPchat(dir, {
      level,
      endpointsYaml: proxyEndpoints(uasPort),
      admin,
      tcp: false,
      // The memory runs ask for a heap snapshot, which V8 precedes with a full collection: the only way
      // to see live heap from outside without changing the service.
      ...(admin ? { nodeArgs: ['--heapsnapshot-signal=SIGUSR2'] } : {}),
    });
  }
  return startKamailioWith(
    dir,
    (port) =>
      renderKamailioProxyConfig({
        host: '127.0.0.1',
        port,
        children: cfg.kamailioChildren,
        logDecisions: level === 'info',
        recordRoute: cfg.recordRoute,
        user: USER,
        domain: DOMAIN,
        target: { host: '127.0.0.1', port: uasPort },
      }),
    { shmMb: cfg.kamailioShmMb },
  );
}

/** One offered load against one fresh server and a fresh pool member, so VmHWM is this run's alone. */
async function measure(server, level, rate, cfg) {
  const dir = await mkdtemp(join(tmpdir(), `bench-proxy-${server}-`));
  let uas;
  let untrackUas = () => undefined;
  try {
    uas = await startSippUas({ dir, maxS: cfg.warmupCalls / WARMUP_RATE + cfg.durationS + 60 });
    untrackUas = track(uas.child);
    const target = await startServer(server, dir, level, uas.port, cfg);
    const procs = targetProcesses(target);
    const pids = procs.all;
    // A long-running service has its hot paths compiled; without this the JIT's start-up cost would be
    // charged to the first few thousand calls, which at 500 calls/s is most of the run. The warm-up lasts
    // past Timer K (5 s), so that the paths run only when transactions end are compiled too; V8 is
    // still compiling some 30 functions in the 10 s after a 4 s warm-up, about 7 after a 15 s one
    // (--trace-opt). Same for both servers.
    if (cfg.warmupCalls > 0) {
      const warm = await runLoad({
        dir: await mkdtemp(join(dir, 'warmup-')),
        host: '127.0.0.1',
        port: target.port,
        transport: 'udp',
        rate: server === 'drachtio' ? DRACHTIO_WARMUP_RATE : WARMUP_RATE,
        durationS: cfg.warmupCalls / WARMUP_RATE,
        service: USER,
        domain: DOMAIN,
        scenario: PROXY_UAC_SCENARIO,
        track,
      });
      if (warm.successful !== warm.calls) {
        console.log(`  warm-up: ${warm.successful}/${warm.calls} successful`);
      }
    }
    const partsBefore = cpuOfParts(procs);
    const cpuBefore = partsBefore.app + partsBefore.drachtio;
    const busyBefore = machineBusyMicros();
    const uasBefore = uas.cpuMicros();
    const load = await runLoad({
      dir,
      host: '127.0.0.1',
      port: target.port,
      transport: 'udp',
      rate,
      durationS: cfg.durationS,
      service: USER,
      domain: DOMAIN,
      scenario: PROXY_UAC_SCENARIO,
      track,
    });
    const partsAfter = cpuOfParts(procs);
    const cpuAfter = partsAfter.app + partsAfter.drachtio;
    const busyAfter = machineBusyMicros();
    const uasCpuMicros = uas.cpuMicros() - uasBefore;
    const cost = runCost(procs, partsBefore, partsAfter, load.successful);
    // Busy time of everything but the server and both SIPp processes, as a share of the machine.
    const otherCpuPercent =
      ((busyAfter - busyBefore - (cpuAfter - cpuBefore) - load.sippCpuMicros - uasCpuMicros) /
        (load.wallS * 1e6 * cpus().length)) *
      100;
    const alive = targetAlive(target);
    if (!alive) console.log(`  ${server} exited during the run; ${targetLogTail(target)}`);
    const uasErrorsHead = await uas.errorsHead();
    await uas.stop();
    untrackUas();
    await stopTarget(target, pids);
    const result = {
      server,
      level,
      ...load,
      ...cost,
      serverSurvived: alive,
      otherCpuPercent,
      uasCpuPercent: (uasCpuMicros / 1e6 / load.wallS) * 100,
      uasErrorsHead,
      serverLog: await logSummary(server, target.logFile),
    };
    console.log(
      `proxy ${server}/${level} UDP ${rate}/s: ${load.successful}/${load.calls} ok, ${load.failed} failed, ` +
        `${load.unfinished} unfinished, ${load.achievedRate.toFixed(0)}/s, ${result.cpuMicrosPerCall.toFixed(1)} µs CPU/call` +
        (cost.drachtioMicrosPerCall === undefined
          ? ', '
          : ` (drachtio-server ${cost.drachtioMicrosPerCall.toFixed(1)} + app ${cost.appMicrosPerCall.toFixed(1)}), `) +
        `peak RSS ${(cost.peakRssSumKb / 1024).toFixed(1)} MB (max ${(cost.peakRssMaxKb / 1024).toFixed(1)}), ` +
        `sipp CPU ${load.sippCpuPercent.toFixed(0)}% + ${result.uasCpuPercent.toFixed(0)}%, other CPU ${otherCpuPercent.toFixed(0)}%`,
    );
    if (load.errorsHead) console.log(`  client error log starts: ${load.errorsHead.slice(0, 600)}`);
    if (uasErrorsHead) console.log(`  pool member error log starts: ${uasErrorsHead.slice(0, 600)}`);
    for (const l of result.serverLog) console.log(`  server log: ${l}`);
    return result;
  } finally {
    await uas?.stop();
    untrackUas();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Heap and live server transactions from the admin port's Prometheus text (prom-client defaults). */
async function scrape(adminPort) {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(900) });
    const text = await res.text();
    const value = (name) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    };
    return {
      heapUsedKb: value('nodejs_heap_size_used_bytes') / 1024,
      heapTotalKb: value('nodejs_heap_size_total_bytes') / 1024,
      transactions: value('pchat_transactions_in_flight'),
    };
  } catch {
    return { heapUsedKb: NaN, heapTotalKb: NaN, transactions: NaN };
  }
}

/**
 * Samples RSS (from /proc) and heap and live transactions (from /metrics) once a second until stopped.
 * A sample whose scrape is still pending when the next is due is skipped rather than queued.
 */
function sampler(pid, adminPort, t0) {
  const samples = [];
  let busy = false;
  const take = async () => {
    if (busy) return;
    busy = true;
    const t = (Date.now() - t0) / 1000;
    const m = await scrape(adminPort);
    samples.push({ t, rssKb: currentRssKb([pid]), ...m });
    busy = false;
  };
  void take();
  const timer = setInterval(() => void take(), 1000);
  return {
    samples,
    take,
    stop: () => clearInterval(timer),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A sample taken right after a full garbage collection: SIGUSR2 makes the service (started with
 * --heapsnapshot-signal) write a heap snapshot into `dir`, which V8 precedes with a full GC; once the
 * file has stopped growing, heap used is live data only. Bounded to 60 s; the snapshot is deleted.
 */
async function sampleAfterFullGc(pid, adminPort, dir, t0) {
  const snapshots = async () => (await readdir(dir)).filter((f) => f.endsWith('.heapsnapshot'));
  const known = new Set(await snapshots());
  // Writing the snapshot itself grows RSS (and it may not shrink again): RSS is read before it.
  const tSignal = (Date.now() - t0) / 1000;
  const rssBeforeGcKb = currentRssKb([pid]);
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 60_000;
  let file;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await sleep(500);
    file ??= (await snapshots()).find((f) => !known.has(f));
    if (file === undefined) continue;
    const size = (await stat(join(dir, file))).size;
    if (size > 0 && size === lastSize) break;
    lastSize = size;
  }
  const t = (Date.now() - t0) / 1000;
  const m = await scrape(adminPort);
  // BENCH_KEEP_SNAPSHOTS=<dir>: keep the snapshots there, to see what the held calls are made of.
  const keep = process.env.BENCH_KEEP_SNAPSHOTS;
  if (file !== undefined) {
    if (keep) await rename(join(dir, file), join(keep, file));
    else await rm(join(dir, file), { force: true });
  }
  return {
    t,
    tSignal,
    rssKb: currentRssKb([pid]),
    rssBeforeGcKb,
    ...m,
    afterGc: true,
    snapshotWritten: file !== undefined,
  };
}

/**
 * The service alone over `memoryCalls` calls at `memoryRate`, then `drainS` with no traffic so that
 * every transaction has ended (Timer J keeps a non-INVITE server transaction 64*T1 = 32 s): growth
 * that survives the drain is retained memory, not live state.
 */
async function memoryRun(cfg) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-proxy-memory-'));
  let uas;
  let untrackUas = () => undefined;
  const durationS = Math.ceil(cfg.memoryCalls / cfg.memoryRate);
  try {
    uas = await startSippUas({ dir, maxS: durationS + cfg.drainS + 90 });
    untrackUas = track(uas.child);
    const target = await startServer('ours', dir, 'info', uas.port, cfg, true);
    const t0 = Date.now();
    const s = sampler(target.pid, target.adminPort, t0);
    await sleep(1500);
    const gcBefore = await sampleAfterFullGc(target.pid, target.adminPort, dir, t0);
    const loadStartS = (Date.now() - t0) / 1000;
    const load = await runLoad({
      dir,
      host: '127.0.0.1',
      port: target.port,
      transport: 'udp',
      rate: cfg.memoryRate,
      durationS,
      service: USER,
      domain: DOMAIN,
      scenario: PROXY_UAC_SCENARIO,
      track,
    });
    const loadEndS = (Date.now() - t0) / 1000;
    await sleep(cfg.drainS * 1000);
    s.stop();
    await s.take();
    const gcAfter = await sampleAfterFullGc(target.pid, target.adminPort, dir, t0);
    const rss = peakRss([target.pid]);
    const serverLog = await logSummary('ours', target.logFile);
    await uas.stop();
    untrackUas();
    await stopProcess(target.child, [target.pid]);
    console.log(
      `proxy memory: heap after full GC ${(gcBefore.heapUsedKb / 1024).toFixed(1)} MB before, ` +
        `${(gcAfter.heapUsedKb / 1024).toFixed(1)} MB after; ` +
        ` ${load.successful}/${load.calls} ok at ${load.achievedRate.toFixed(0)}/s, ` +
        `VmHWM ${(rss.maxKb / 1024).toFixed(1)} MB, ${s.samples.length} samples`,
    );
    return {
      load,
      samples: s.samples,
      loadStartS,
      loadEndS,
      peakRssKb: rss.maxKb,
      serverLog,
      gcBefore,
      gcAfter,
    };
  } finally {
    await uas?.stop();
    untrackUas();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `holdCalls` calls started at `holdRate`, each held by the pool member for `holdMs` after its 100:
 * at the plateau the service holds that many live INVITE transactions (server and client side, with
 * their response contexts). Memory per held call = (plateau − before) / calls open at the plateau.
 */
async function holdRun(cfg) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-proxy-hold-'));
  let uas;
  let untrackUas = () => undefined;
  const rampS = Math.ceil(cfg.holdCalls / cfg.holdRate);
  const holdS = Math.ceil(cfg.holdMs / 1000);
  try {
    uas = await startSippUas({ dir, holdMs: cfg.holdMs, maxS: rampS + holdS + cfg.drainS + 90 });
    untrackUas = track(uas.child);
    const target = await startServer('ours', dir, 'info', uas.port, cfg, true);
    const t0 = Date.now();
    const s = sampler(target.pid, target.adminPort, t0);
    await sleep(1500);
    // No snapshot before the load: its own RSS would be charged to the held calls. The live heap
    // without them is measured at the end instead, once every call has ended.
    await s.take();
    const before = s.samples.at(-1);
    const loadStartS = (Date.now() - t0) / 1000;
    const loadDone = runLoad({
      dir,
      host: '127.0.0.1',
      port: target.port,
      transport: 'udp',
      rate: cfg.holdRate,
      durationS: rampS,
      service: USER,
      domain: DOMAIN,
      scenario: PROXY_UAC_SCENARIO,
      track,
      limit: cfg.holdCalls,
      graceS: holdS + 40,
    });
    // Awaited below; until then a failure must not surface as an unhandled rejection.
    loadDone.catch(() => undefined);
    // Every call started and none answered yet: the plateau, measured after a full collection.
    await sleep((rampS + 1) * 1000);
    const plateau = await sampleAfterFullGc(target.pid, target.adminPort, dir, t0);
    const load = await loadDone;
    const loadEndS = (Date.now() - t0) / 1000;
    await sleep(cfg.drainS * 1000);
    s.stop();
    const after = await sampleAfterFullGc(target.pid, target.adminPort, dir, t0);
    const rss = peakRss([target.pid]);
    const serverLog = await logSummary('ours', target.logFile);
    await uas.stop();
    untrackUas();
    await stopProcess(target.child, [target.pid]);
    console.log(
      `proxy hold: ${load.successful}/${load.calls} ok, plateau ${plateau.transactions} transactions, ` +
        `RSS ${(plateau.rssBeforeGcKb / 1024).toFixed(1)} MB (before ${(before.rssKb / 1024).toFixed(1)})`,
    );
    if (plateau.tSignal - loadStartS >= holdS) {
      console.log('  the plateau sample came after the first held calls were answered: raise --hold-ms');
    }
    return {
      load,
      samples: s.samples,
      before,
      plateau,
      after,
      loadStartS,
      loadEndS,
      peakRssKb: rss.maxKb,
      serverLog,
    };
  } finally {
    await uas?.stop();
    untrackUas();
    await rm(dir, { recursive: true, force: true });
  }
}

/** @param {ProxySuiteConfig} cfg */
export async function runProxySuite(cfg) {
  const runs = [];
  // The servers take each load back to back, so drift of the machine between runs shifts every side
  // of a ratio alike; the report lists each server's runs together.
  const takes = (server, rate) => server !== 'drachtio' || rate <= cfg.drachtioMaxRate;
  for (const level of cfg.levels) {
    for (const rate of cfg.loads)
      for (let round = 1; round <= cfg.repeat; round++)
        for (const server of cfg.servers.filter((sv) => takes(sv, rate)))
          runs.push({ ...(await measure(server, level, rate, cfg)), round });
  }
  runs.sort((a, b) => cfg.servers.indexOf(a.server) - cfg.servers.indexOf(b.server));
  const withOurs = cfg.servers.includes('ours');
  const memory = withOurs && cfg.memoryCalls > 0 ? await memoryRun(cfg) : undefined;
  const hold = withOurs && cfg.holdCalls > 0 ? await holdRun(cfg) : undefined;
  return { runs, memory, hold };
}
