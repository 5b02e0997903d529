// `--suite redirect --hep`: what HEP export costs. The service answers the redirect load with HEP off
// and with HEP on (one collector: a UDP socket on loopback in this process, counting datagrams), side
// by side round after round, and the report gives the CPU per redirect of each and their ratio
// (target: at most 1.10). Kamailio's stateless redirect server does the same with and without
// siptrace mirroring every message to the same collector as HEP3: the reference for what such a
// copy costs a SIP server on this machine. With `--hep-collector sink` the collector is a socket that never reads
// (a python3 child): datagrams past its buffer are dropped on arrival, and no reader is woken, as with
// a collector on another host; the difference from a reading one is what waking it costs the sender
// on loopback.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSplitMicros } from './proc.mjs';
import { runLoad } from './sipp-load.mjs';
import { processTree } from './proc.mjs';
import { startPchat, stopProcess, targetAlive, track } from './servers.mjs';

/** A HEP collector that only counts what arrives. */
async function countingCollector() {
  const socket = dgram.createSocket('udp4');
  let count = 0;
  socket.on('message', (m) => {
    if (m.length >= 6 && m.toString('latin1', 0, 4) === 'HEP3') count++;
  });
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    socket.setRecvBufferSize(16 * 1024 * 1024);
  } catch {
    // Capped by net.core.rmem_max: datagrams the collector misses do not change the sender's cost.
  }
  return {
    port: socket.address().port,
    get count() {
      return count;
    },
    close: () => socket.close(),
  };
}

/** A UDP socket on loopback that is never read, in a child process; it counts nothing. */
async function sinkCollector() {
  const code =
    'import socket, sys\n' +
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n' +
    "s.bind(('127.0.0.1', 0))\n" +
    'print(s.getsockname()[1], flush=True)\n' +
    'sys.stdin.read()\n';
  // It lives as long as its stdin is open: closed by close(), or when this process ends.
  const child = spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
  });
  return {
    port,
    count: NaN,
    close: () => child.stdin.end(),
  };
}

/** The server under test: the service, or Kamailio (siptrace mirroring when `hepPort` is given). */
function startServer(cfg, server, dir, hepPort) {
  if (server === 'kamailio') return cfg.startKamailio(dir, cfg.level, hepPort);
  return startPchat(dir, {
    level: cfg.level,
    endpointsYaml: cfg.endpointsYaml,
    tcp: false,
    serverYamlExtra:
      hepPort === undefined ? '' : `hep:\n  targets: [udp://127.0.0.1:${hepPort}]\n  id: 2001\n`,
  });
}

/** One run: a fresh server, its warm-up, then the measured load; CPU per successful call. */
async function measureOnce(cfg, server, hepPort) {
  const dir = await mkdtemp(join(tmpdir(), `bench-hep-${server}-${hepPort === undefined ? 'off' : 'on'}-`));
  try {
    const target = await startServer(cfg, server, dir, hepPort);
    const load = (durationS, sub) =>
      runLoad({
        dir: sub,
        host: '127.0.0.1',
        port: target.port,
        transport: 'udp',
        rate: cfg.rate,
        durationS,
        service: 'ocschat',
        domain: cfg.domain,
        pool: cfg.pool,
        track,
      });
    if (cfg.warmupCalls > 0) await load(cfg.warmupCalls / cfg.rate, await mkdtemp(join(dir, 'warmup-')));
    // Kamailio is a tree of processes (its receivers and timers); the service, one.
    const pids = processTree(target.pid);
    const before = cpuSplitMicros(pids);
    const run = await load(cfg.durationS, dir);
    const after = cpuSplitMicros(pids);
    const user = after.user - before.user;
    const system = after.system - before.system;
    const perCall = (micros) => (run.successful > 0 ? micros / run.successful : NaN);
    const alive = server === 'kamailio' ? target.child.exitCode === null : targetAlive(target);
    await stopProcess(target.child, pids);
    return {
      ...run,
      cpuMicrosPerCall: perCall(user + system),
      userMicrosPerCall: perCall(user),
      systemMicrosPerCall: perCall(system),
      alive,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Rounds of off then on. cfg: { rate, durationS, rounds, level, warmupCalls, endpointsYaml, domain, pool }.
 */
export async function runHepSuite(cfg) {
  const collector = cfg.collector === 'sink' ? await sinkCollector() : await countingCollector();
  const rounds = [];
  try {
    for (let round = 1; round <= cfg.rounds; round++) {
      const row = { round };
      for (const server of cfg.startKamailio === undefined ? ['ours'] : ['ours', 'kamailio']) {
        const off = await measureOnce(cfg, server, undefined);
        const countBefore = collector.count;
        const on = await measureOnce(cfg, server, collector.port);
        // Warm-up and measured calls both sent their copies.
        const datagrams = collector.count - countBefore;
        row[server] = { off, on, datagrams };
        console.log(
          `round ${round} ${server}: off ${off.cpuMicrosPerCall.toFixed(1)} µs/call (${off.successful}/${off.calls} ok), ` +
            `on ${on.cpuMicrosPerCall.toFixed(1)} µs/call (${on.successful}/${on.calls} ok), ` +
            `ratio ${(on.cpuMicrosPerCall / off.cpuMicrosPerCall).toFixed(3)}, ${Number.isNaN(datagrams) ? 'not counted (sink)' : `${datagrams} HEP datagrams received`}`,
        );
      }
      rounds.push(row);
    }
  } finally {
    collector.close();
  }
  return { rounds };
}

/** The markdown section for bench/RESULTS.md. */
export function hepMarkdownReport({ env, cfg, rounds }) {
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const split = (run) =>
    `${run.cpuMicrosPerCall.toFixed(1)} (${run.userMicrosPerCall.toFixed(1)} + ${run.systemMicrosPerCall.toFixed(1)})`;
  const servers = Object.keys(rounds[0] ?? {}).filter((k) => k !== 'round');
  const meanOf = (server, side) => ({
    cpuMicrosPerCall: mean(rounds.map((r) => r[server][side].cpuMicrosPerCall)),
    userMicrosPerCall: mean(rounds.map((r) => r[server][side].userMicrosPerCall)),
    systemMicrosPerCall: mean(rounds.map((r) => r[server][side].systemMicrosPerCall)),
  });
  const ratio = (x) => (x.on.cpuMicrosPerCall / x.off.cpuMicrosPerCall).toFixed(2);
  const rows = [];
  for (const server of servers) {
    for (const r of rounds) {
      const x = r[server];
      rows.push(
        `| ${server} | ${r.round} | ${split(x.off)} | ${split(x.on)} | ${ratio(x)}× | ` +
          `${x.off.calls - x.off.successful} / ${x.on.calls - x.on.successful} | ${Number.isNaN(x.datagrams) ? 'not counted' : x.datagrams} |`,
      );
    }
    const m = { off: meanOf(server, 'off'), on: meanOf(server, 'on') };
    rows.push(`| ${server} | mean | ${split(m.off)} | ${split(m.on)} | ${ratio(m)}× | | |`);
  }
  const lines = [
    `## HEP export: redirect with HEP off and on (\`--suite redirect --hep\`)`,
    '',
    `Run of ${env.date}: \`${env.command}\`, pchat-endpoint at ${env.commit}. Machine: ${env.cpuModel}, ${env.cores} cores; node ${env.node}, ${env.sipp}${env.kamailio ? `, ${env.kamailio}` : ''}. ` +
      `Each server alone (UDP, log ${cfg.level}), ${cfg.rate}/s for ${cfg.durationS} s after a warm-up of ${cfg.warmupCalls} calls, a fresh process per run; ` +
      (cfg.collector === 'sink'
        ? 'HEP on: one collector, a UDP socket on loopback that is never read (`--hep-collector sink`: no reader woken, datagrams past its buffer dropped on arrival; INVITE, 302 and ACK of each call: 3 per call). '
        : 'HEP on: one collector, a UDP socket on loopback in the bench process counting datagrams (INVITE, 302 and ACK of each call: 3 per call). ') +
      "The service's `hep` section against Kamailio's stateless redirect server with siptrace mirroring every message it receives or sends as HEP3 (`trace_mode` 1, the core's events). " +
      'CPU per call: utime+stime of the server (Kamailio: all its processes) over the measured run, divided by its successful calls (user and kernel apart in brackets). Target for the service: on/off at most 1.10.',
    '',
    '| server | round | off µs/call (user + kernel) | on µs/call (user + kernel) | on / off | not successful (off / on) | HEP datagrams received (warm-up included) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ];
  return lines.join('\n');
}
