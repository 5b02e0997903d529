// Runs SIPp at a fixed offered load against one server and returns what it measured; runs the SIPp pool
// member (UAS) that the proxy benchmark forwards to.
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './net.mjs';
import { cpuMicros } from './proc.mjs';

const SCENARIO = fileURLToPath(new URL('../../test/sipp/redirect-uac.xml', import.meta.url));
export const PROXY_UAC_SCENARIO = fileURLToPath(
  new URL('../../test/sipp/bench-proxy-uac.xml', import.meta.url),
);
const POOL_UAS_SCENARIO = fileURLToPath(new URL('../../test/sipp/bench-pool-uas.xml', import.meta.url));

export function sippVersion() {
  const r = spawnSync('sipp', ['-v'], { encoding: 'utf8' });
  if (r.error)
    throw new Error(`sipp is not installed (${r.error.message}); Debian: apt-get install sip-tester`);
  return /SIPp v[^\s,]+/.exec(`${r.stdout}${r.stderr}`)?.[0]?.replace(/\.$/, '') ?? 'unknown';
}

/** "HH:MM:SS:micros" (SIPp's duration format) to milliseconds. */
function durationMs(text) {
  const m = /^(\d+):(\d+):(\d+):(\d+)$/.exec(text ?? '');
  return m ? (Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1000 + Number(m[4]) / 1000 : NaN;
}

/** SIPp's date columns end with a tab and seconds since the epoch ("...\t1795278726.741140"). */
function epochSeconds(text) {
  return Number((text ?? '').split('\t').pop());
}

function parseStat(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0].split(';');
  const rows = lines.slice(1).map((line) => {
    const values = line.split(';');
    return Object.fromEntries(header.map((h, i) => [h, values[i] ?? '']));
  });
  return rows;
}

/**
 * @param {{ dir: string, host: string, port: number, transport: 'udp'|'tcp', rate: number,
 *   durationS: number, service: string, domain: string, pool?: string, scenario?: string,
 *   limit?: number, graceS?: number, onSample?: () => void,
 *   track?: (child: import('node:child_process').ChildProcess) => () => void }} opts
 *   scenario: defaults to the redirect client; pool: the redirect client's expected Contact host;
 *   limit: most calls open at once (SIPp's -l); graceS: how long calls may still take after the last
 *   one started (default 20 s); track: registers SIPp for the caller's teardown, returns its release.
 */
export async function runLoad(opts) {
  const calls = Math.round(opts.rate * opts.durationS);
  const localPort = await freePort(['udp', 'tcp']);
  const controlPort = await freePort(['udp']);
  const mediaPort = await freePort(['udp'], 3);
  const graceS = opts.graceS ?? 20;
  const statFile = join(opts.dir, `sipp-${opts.transport}-${opts.rate}.csv`);
  const errorFile = join(opts.dir, `sipp-${opts.transport}-${opts.rate}-errors.log`);
  // Bounded: -m stops starting calls after `calls`; -timeout ends the run `graceS` after the last one
  // should have started, even if some are still retransmitting (they are reported as unfinished), and
  // the process is killed 10 s after that if it has not exited.
  const args = [
    '-sf',
    opts.scenario ?? SCENARIO,
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
    '-s',
    opts.service,
    '-key',
    'domain',
    opts.domain,
    ...(opts.pool === undefined ? [] : ['-set', 'pool', opts.pool]),
    ...(opts.limit === undefined ? [] : ['-l', String(opts.limit)]),
    '-r',
    String(opts.rate),
    '-rp',
    '1000',
    '-m',
    String(calls),
    '-timeout',
    `${Math.ceil(opts.durationS + graceS)}s`,
    '-nostdin',
    '-buff_size',
    String(4 * 1024 * 1024),
    '-trace_stat',
    '-stf',
    statFile,
    '-fd',
    '1',
    '-trace_err',
    '-error_file',
    errorFile,
    '-max_log_size',
    String(2 * 1024 * 1024),
    `${opts.host}:${opts.port}`,
  ];
  const started = process.hrtime.bigint();
  const child = spawn('sipp', args, { cwd: opts.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const untrack = opts.track?.(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  // SIPp's own CPU, to tell a saturated load generator from a saturated server. Sampled, because the
  // figures are gone once the process has been reaped; the last sample is at most 100 ms old.
  let sippCpu = 0;
  const sampler = setInterval(() => {
    const c = cpuMicros([child.pid]);
    if (c > 0) sippCpu = c;
    opts.onSample?.();
  }, 100);
  const killAt = setTimeout(() => child.kill('SIGKILL'), (opts.durationS + graceS + 10) * 1000);
  const exitCode = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  clearInterval(sampler);
  clearTimeout(killAt);
  untrack?.();
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;

  const rows = parseStat(await readFile(statFile, 'latin1'));
  const errorsHead = (await readFile(errorFile, 'latin1').catch(() => '')).slice(0, 1500);
  const last = rows[rows.length - 1];
  const num = (name) => Number(last[name]) || 0;
  const successful = num('SuccessfulCall(C)');
  const elapsedS = epochSeconds(last.CurrentTime) - epochSeconds(last.StartTime);
  const bucketsOf = (rtd) =>
    Object.keys(last)
      .filter((k) => k.startsWith(`ResponseTimeRepartition${rtd}_`))
      .map((k) => ({ label: k.slice(`ResponseTimeRepartition${rtd}_`.length), count: Number(last[k]) || 0 }));
  const buckets = bucketsOf(1);
  const failures = Object.fromEntries(
    Object.keys(last)
      .filter((k) => /^Failed\w+\(C\)$/.test(k) && k !== 'FailedCall(C)' && Number(last[k]) > 0)
      .map((k) => [k.replace('(C)', ''), Number(last[k])]),
  );
  return {
    transport: opts.transport,
    offeredRate: opts.rate,
    calls,
    exitCode,
    successful,
    failed: num('FailedCall(C)'),
    // Calls that never finished (still waiting when the run was cut off) are neither successful nor failed.
    unfinished: calls - successful - num('FailedCall(C)'),
    failures,
    retransmissions: num('Retransmissions(C)'),
    achievedRate: elapsedS > 0 ? successful / elapsedS : 0,
    elapsedS,
    wallS,
    meanResponseMs: durationMs(last['ResponseTime1(C)']),
    buckets,
    // The proxy client's second measure (BYE → 200); empty for the redirect client.
    buckets2: bucketsOf(2),
    sippCpuMicros: sippCpu,
    sippCpuPercent: (sippCpu / 1e6 / wallS) * 100,
    errorsHead,
    stderr: stderr
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('Resolving remote host'))
      .join('\n'),
  };
}

/**
 * The SIPp pool member the proxy forwards to (test/sipp/bench-pool-uas.xml) on a free UDP port.
 * `holdMs` > 0 makes it answer 100 and hold each INVITE that long before the 200. Bounded: SIPp's
 * -timeout ends it after `maxS`, and stop() kills it (SIGKILL after 5 s) when the run is over.
 * @param {{ dir: string, holdMs?: number, maxS: number }} opts
 */
export async function startSippUas(opts) {
  const port = await freePort(['udp']);
  const controlPort = await freePort(['udp']);
  const mediaPort = await freePort(['udp'], 3);
  const errorFile = join(opts.dir, `sipp-uas-${port}-errors.log`);
  const args = [
    '-sf',
    POOL_UAS_SCENARIO,
    '-t',
    'u1',
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-cp',
    String(controlPort),
    '-mp',
    String(mediaPort),
    '-set',
    'hold',
    String(opts.holdMs ?? 0),
    '-nostdin',
    '-timeout',
    `${opts.maxS}s`,
    '-buff_size',
    String(4 * 1024 * 1024),
    '-trace_err',
    '-error_file',
    errorFile,
    '-max_log_size',
    String(2 * 1024 * 1024),
  ];
  const child = spawn('sipp', args, { cwd: opts.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  // As for the client: sampled, because the figures are gone once the process has been reaped.
  let cpu = 0;
  const sampler = setInterval(() => {
    const c = cpuMicros([child.pid]);
    if (c > 0) cpu = c;
  }, 100);
  const exited = new Promise((resolve) => child.once('close', resolve));
  return {
    port,
    child,
    cpuMicros: () => {
      const c = cpuMicros([child.pid]);
      if (c > 0) cpu = c;
      return cpu;
    },
    // The scenario's 4 s linger ends on a receive timeout by design; SIPp logs each one as an event.
    errorsHead: async () =>
      (await readFile(errorFile, 'latin1').catch(() => ''))
        .split(/(?=\d{4}-\d\d-\d\d\t)/)
        .filter((e) => !/receive timeout on message .*jumping to label/.test(e))
        .join('')
        .replace(/^The following events occurred:\n?$/, '')
        .slice(0, 1500),
    stderr: () => stderr,
    async stop() {
      clearInterval(sampler);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
