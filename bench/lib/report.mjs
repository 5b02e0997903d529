// Formats the benchmark's measurements: the full report of a run, and the standing that bench/RESULTS.md keeps.

const mb = (kb) => (kb / 1024).toFixed(1);
const fixed = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const pct = (part, whole) => (whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : 'n/a');

/** SIPp's response-time buckets (ms) folded into a few columns: <1, 1-2, 2-5, 5-10, 10-50, >=50. */
const BANDS = [
  { title: '<1 ms', labels: ['<1'] },
  { title: '1–2', labels: ['<2'] },
  { title: '2–5', labels: ['<5'] },
  { title: '5–10', labels: ['<10'] },
  { title: '10–50', labels: ['<20', '<50'] },
  { title: '≥50', labels: ['<100', '<200', '<500', '<1000', '>=1000'] },
];

function bands(run) {
  const total = run.buckets.reduce((s, b) => s + b.count, 0);
  return BANDS.map((band) =>
    pct(
      run.buckets.filter((b) => band.labels.includes(b.label)).reduce((s, b) => s + b.count, 0),
      total,
    ),
  );
}

/** Upper bound of the bucket holding quantile q, e.g. "<2" (ms); SIPp keeps only bucket counts. */
function quantile(run, q) {
  const total = run.buckets.reduce((s, b) => s + b.count, 0);
  if (total === 0) return 'n/a';
  let seen = 0;
  for (const b of run.buckets) {
    seen += b.count;
    if (seen >= q * total) return b.label;
  }
  return 'n/a';
}

/** SIPp's failure counters that are not zero, e.g. "MaxUDPRetrans 3, CallTimeout 1". */
const failureKinds = (run) =>
  Object.entries(run.failures)
    .map(([k, v]) => `${k.replace(/^Failed/, '')} ${v}`)
    .join(', ');

/** The servers of a run, in the order they took each load: "the service, then Kamailio". */
function inOrder(runs) {
  const order = ['ours', 'drachtio', 'kamailio'].filter((sv) => runs.some((r) => r.server === sv));
  const words = { ours: 'the service', drachtio: 'the service on drachtio', kamailio: 'Kamailio' };
  return order.map((sv) => words[sv]).join(', then ');
}

/** The title's "pchat-endpoint vs Kamailio", naming drachtio when it ran. */
const contenders = (runs) =>
  runs.some((r) => r.server === 'drachtio')
    ? 'pchat-endpoint (native and on drachtio) vs Kamailio'
    : 'pchat-endpoint vs Kamailio';

const SERVER_NAMES = { ours: 'pchat-endpoint', drachtio: 'pchat-endpoint on drachtio', kamailio: 'kamailio' };
const serverName = (run) => SERVER_NAMES[run.server] ?? run.server;

/** CPU per call; on drachtio the total and its two parts, "total (drachtio-server + app)". */
const cpuCell = (run) =>
  run.drachtioMicrosPerCall === undefined
    ? fixed(run.cpuMicrosPerCall, 1)
    : `${fixed(run.cpuMicrosPerCall, 1)} (${fixed(run.drachtioMicrosPerCall, 1)} + ${fixed(run.appMicrosPerCall, 1)})`;

function runRow(run) {
  const notOk = run.calls - run.successful;
  const failures = failureKinds(run);
  return [
    serverName(run),
    run.level,
    run.transport.toUpperCase(),
    run.offeredRate,
    fixed(run.achievedRate),
    `${run.successful}/${run.calls}`,
    notOk === 0
      ? '0'
      : `${notOk}${failures ? ` (${failures})` : ''}${run.unfinished > 0 ? ` ${run.unfinished} unfinished` : ''}`,
    run.retransmissions,
    ...bands(run),
    quantile(run, 0.5),
    quantile(run, 0.99),
    cpuCell(run),
    run.warmupCpuS === undefined ? 'n/a' : fixed(run.warmupCpuS, 2),
    `${mb(run.peakRssSumKb)} / ${mb(run.peakRssMaxKb)}`,
    run.processes,
    fixed(run.sippCpuPercent),
    fixed(run.otherCpuPercent),
    run.serverSurvived ? '' : 'server exited',
  ];
}

export function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';

/**
 * CPU per call over every round of one configuration (each server's CPU seconds summed, over its
 * successful calls summed), ours against Kamailio: one run varies by about ±10 % at low rates here,
 * and the pooled figure is what the rounds say together.
 * @param {any[]} runs
 * @param {(r: any) => string} keyOf the configuration (log level, transport, load) as text
 */
function pooledCpu(runs, keyOf) {
  const by = new Map();
  for (const r of runs) {
    if (!(r.serverCpuS >= 0) || !(r.successful > 0)) continue;
    // The drachtio runs have a table of their own (drachtioRows).
    if (r.server !== 'ours' && r.server !== 'kamailio') continue;
    const key = keyOf(r);
    const acc = by.get(key) ?? { ours: { cpu: 0, calls: 0, n: 0 }, kamailio: { cpu: 0, calls: 0, n: 0 } };
    const side = r.server === 'ours' ? acc.ours : acc.kamailio;
    side.cpu += r.serverCpuS;
    side.calls += r.successful;
    side.n++;
    by.set(key, acc);
  }
  const rows = [];
  for (const [key, { ours, kamailio }] of by) {
    if (ours.n < 2 || kamailio.n < 2) continue;
    const o = (ours.cpu * 1e6) / ours.calls;
    const k = (kamailio.cpu * 1e6) / kamailio.calls;
    rows.push([key, `${ours.n} / ${kamailio.n}`, o.toFixed(1), k.toFixed(1), ratio(o, k)]);
  }
  return rows;
}

function pushPooled(out, rows) {
  if (rows.length === 0) return;
  out.push('CPU per call over all rounds (CPU summed over calls summed, per server):');
  out.push('');
  out.push(
    table(['configuration', 'rounds (ours / Kamailio)', 'ours µs/call', 'Kamailio µs/call', 'ratio'], rows),
  );
  out.push('');
}

export function markdownReport({ env, runs, memory, loads, tcpRate, memoryCalls, memoryRate }) {
  const out = [];
  out.push(`## ${env.date.slice(0, 10)} — redirect load, ${contenders(runs)} (${env.date})`);
  out.push('');
  out.push(`- Machine: \`${env.uname}\``);
  out.push(
    `- CPU: ${env.cpuModel}, ${env.cores} cores (SIPp, the server and the OS share them); ` +
      `load average before the run: ${env.loadavg}`,
  );
  out.push(
    `- Versions: node ${env.node}, ${env.sipp}, ${env.kamailio}${env.drachtio ? `, ${env.drachtio}` : ''}; ` +
      `pchat-endpoint at ${env.commit}`,
  );
  out.push(
    `- Load: SIPp \`test/sipp/redirect-uac.xml\` (INVITE → 302 → ACK, Contact and To tag checked) at fixed ` +
      `offered rates ${loads.join(', ')}/s over UDP and ${tcpRate}/s over TCP (one connection), ` +
      `${env.durationS} s each (calls = rate × duration), one fresh server process per run` +
      (env.redirectWarmup > 0
        ? `, which first takes ${env.redirectWarmup} warm-up calls on the same transport at the same rate ` +
          '(at most 10,000/s); the warm-up is not counted in any figure below except "warm-up CPU s".'
        : ' (no warm-up: the figures include start-up and JIT compilation).'),
  );
  out.push(
    `- Kamailio: stateless \`sl_send_reply\` redirect generated from \`bench/kamailio/redirect.cfg.tmpl\`, ` +
      `children=${env.kamailioChildren} (UDP) and tcp_children=${env.kamailioChildren}: one receiver per core; ` +
      `"info" adds one xlog line per decision (like the service's info log), "warn" logs none.`,
  );
  out.push(
    `- Order: for each log level, transport and load, ${inOrder(runs)}, back to back ` +
      `(${Math.max(...runs.map((r) => r.round ?? 1))} round(s) of the pair; \`--repeat\`).`,
  );
  out.push(
    '- CPU µs/call: utime+stime of every server process (Kamailio: the whole process tree) over the run, ' +
      'divided by successful calls (each call is one INVITE and one ACK). Peak RSS: VmHWM, sum / largest ' +
      'process (Kamailio shares its shm between processes, so the sum counts it more than once).',
  );
  out.push(
    '- SIPp CPU %: of one core. Other CPU %: busy time of everything else on the machine during the run ' +
      '(other processes, kernel, hypervisor steal), as a share of all cores; runs with a high value were ' +
      'disturbed and compare poorly.',
  );
  out.push(
    '- Response time: INVITE → 302 as SIPp measures it, share of calls per band and the band holding the ' +
      'median and the 99th percentile. SIPp counts whole milliseconds from its own event-loop clock, so ' +
      '"<1 ms" means "answered within the same loop turn" and small values partly measure SIPp itself.',
  );
  out.push('');
  const header = [
    'server',
    'log',
    'transport',
    'offered/s',
    'achieved/s',
    'successful',
    'not successful',
    'retrans',
    ...BANDS.map((b) => b.title),
    'p50 ms',
    'p99 ms',
    'CPU µs/call',
    'warm-up CPU s',
    'peak RSS MB (sum / max)',
    'procs',
    'SIPp CPU %',
    'other CPU %',
    'note',
  ];
  out.push(table(header, runs.map(runRow)));
  out.push('');

  const ours = runs.filter((r) => r.server === 'ours');
  const pairs = ours
    .map((o) => ({
      o,
      k: runs.find(
        (r) =>
          r.server === 'kamailio' &&
          r.level === o.level &&
          r.transport === o.transport &&
          r.offeredRate === o.offeredRate &&
          r.round === o.round,
      ),
    }))
    .filter((p) => p.k);
  if (pairs.length > 0) {
    const byRound = pairs.some(({ o }) => o.round > 1);
    out.push(
      `Ratios ours / Kamailio (same log level, transport and offered load${byRound ? ', and round' : ''}):`,
    );
    out.push('');
    out.push(
      table(
        [
          'log',
          'transport',
          'offered/s',
          ...(byRound ? ['round'] : []),
          'achieved rate',
          'CPU µs/call',
          'peak RSS vs Kamailio sum',
          'peak RSS vs Kamailio largest process',
        ],
        pairs.map(({ o, k }) => [
          o.level,
          o.transport.toUpperCase(),
          o.offeredRate,
          ...(byRound ? [o.round] : []),
          ratio(o.achievedRate, k.achievedRate),
          ratio(o.cpuMicrosPerCall, k.cpuMicrosPerCall),
          ratio(o.peakRssMaxKb, k.peakRssSumKb),
          ratio(o.peakRssMaxKb, k.peakRssMaxKb),
        ]),
      ),
    );
    out.push('');
    pushPooled(
      out,
      pooledCpu(runs, (r) => `${r.level} ${r.transport.toUpperCase()} ${r.offeredRate}/s`),
    );
  }
  const drachtioPart = drachtioSection(env, runs, ['log', 'transport', 'offered/s'], (r) => [
    r.level,
    r.transport.toUpperCase(),
    String(r.offeredRate),
  ]);
  if (drachtioPart.length > 0) out.push(...drachtioPart, '');

  if (memory) {
    const s = memory.samples;
    const first = s[0]?.rssKb ?? 0;
    const rssValues = s.map((x) => x.rssKb);
    // Growth over the second half of the run, after warm-up (JIT, pools, GC heap sizing) has settled.
    const mid = s[Math.floor(s.length / 2)]?.rssKb ?? 0;
    const end = s[s.length - 1]?.rssKb ?? 0;
    out.push(
      `Memory: pchat-endpoint (log ${memory.level}), ${memoryCalls} calls offered at ${memoryRate}/s over UDP: ` +
        `${memory.load.successful} successful, ${memory.load.calls - memory.load.successful} not, ` +
        `${fixed(memory.load.achievedRate)}/s achieved. RSS at start ${mb(first)} MB, min ${mb(Math.min(...rssValues))}, ` +
        `max ${mb(Math.max(...rssValues))}, mid-run ${mb(mid)}, end ${mb(end)} MB ` +
        `(second half: ${end >= mid ? '+' : ''}${mb(end - mid)} MB); VmHWM ${mb(memory.peakRssKb)} MB.`,
    );
    out.push('');
    out.push(`RSS samples (s: MB): ${s.map((x) => `${x.t.toFixed(0)}: ${mb(x.rssKb)}`).join(', ')}`);
    out.push('');
  }
  return out.join('\n');
}

/** The band holding quantile q of the BYE → 200 measure (response time 2). */
const byeQuantile = (run, q) => quantile({ buckets: run.buckets2 }, q);

function proxyRunRow(run) {
  const notOk = run.calls - run.successful;
  const failures = failureKinds(run);
  return [
    serverName(run),
    run.level,
    run.offeredRate,
    fixed(run.achievedRate),
    `${run.successful}/${run.calls}`,
    notOk === 0
      ? '0'
      : `${run.failed}${failures ? ` (${failures})` : ''}${run.unfinished > 0 ? `, ${run.unfinished} unfinished` : ''}`,
    run.retransmissions,
    ...bands(run),
    quantile(run, 0.5),
    quantile(run, 0.99),
    byeQuantile(run, 0.99),
    cpuCell(run),
    `${mb(run.peakRssSumKb)} / ${mb(run.peakRssMaxKb)}`,
    run.processes,
    `${fixed(run.sippCpuPercent)} + ${fixed(run.uasCpuPercent)}`,
    fixed(run.otherCpuPercent),
    run.serverSurvived ? '' : 'server exited',
  ];
}

const fmtMb = (kb) => (Number.isFinite(kb) ? mb(kb) : 'n/a');

/** The samples whose time lies in [from, to) seconds. */
const between = (samples, from, to) => samples.filter((x) => x.t >= from && x.t < to);

const gcNote = (x) => (x.snapshotWritten ? '' : ' (no snapshot seen: not after a full GC)');

function memorySection(memory, cfg) {
  const out = [];
  const s = memory.samples;
  const { gcBefore, gcAfter } = memory;
  const rssMax = Math.max(...s.map((x) => x.rssKb));
  // RSS over the second half of the load, where warm-up (JIT, pools, heap sizing) has settled.
  const len = memory.loadEndS - memory.loadStartS;
  const half = between(s, memory.loadStartS + len / 2, memory.loadEndS);
  const rssMid = half[0]?.rssKb ?? NaN;
  const rssEnd = half.at(-1)?.rssKb ?? NaN;
  out.push(
    `Memory: pchat-endpoint (log info), ${cfg.memoryCalls} calls offered at ${cfg.memoryRate}/s over UDP: ` +
      `${memory.load.successful} successful, ${memory.load.calls - memory.load.successful} not ` +
      `(${memory.load.failed} failed), ${fixed(memory.load.achievedRate)}/s achieved, then ${cfg.drainS} s idle ` +
      `(Timer J keeps each BYE's server transaction 32 s). Heap used after a full GC: ` +
      `${fmtMb(gcBefore.heapUsedKb)} MB before the load${gcNote(gcBefore)}, ${fmtMb(gcAfter.heapUsedKb)} MB after it` +
      `${gcNote(gcAfter)} (${gcAfter.transactions} live server transactions). RSS ${fmtMb(gcBefore.rssBeforeGcKb)} MB before, ` +
      `max ${fmtMb(rssMax)}, second half of the load ${fmtMb(rssMid)} → ${fmtMb(rssEnd)} MB, after the idle ` +
      `${fmtMb(gcAfter.rssBeforeGcKb)} MB; VmHWM ${mb(memory.peakRssKb)} MB (RSS during the load includes what the ` +
      'snapshot before it left behind). Heap used between samples includes garbage not yet collected; only the ' +
      'after-GC figures are live data.',
  );
  out.push('');
  out.push(
    `Samples (s: RSS MB / heap used MB / server transactions; load from ${memory.loadStartS.toFixed(0)} s to ` +
      `${memory.loadEndS.toFixed(0)} s): ` +
      s
        .map((x) => `${x.t.toFixed(0)}: ${fmtMb(x.rssKb)}/${fmtMb(x.heapUsedKb)}/${x.transactions}`)
        .join(', '),
  );
  if (memory.serverLog.length > 0)
    out.push('', `Server log besides relayed 2xx: ${memory.serverLog.join('; ')}`);
  out.push('');
  return out;
}

function holdSection(hold, cfg) {
  const out = [];
  const { before, plateau, after } = hold;
  const open = plateau.transactions;
  // RSS: just before the plateau's snapshot against just before the load (no snapshot before it).
  // Heap: both after a full GC, at the plateau and once every call has ended in the same process.
  const perRss = ((plateau.rssBeforeGcKb - before.rssKb) * 1024) / open;
  const perHeap = ((plateau.heapUsedKb - after.heapUsedKb) * 1024) / open;
  out.push(
    `Held calls: ${cfg.holdCalls} calls started at ${cfg.holdRate}/s, the pool member answering 100 and holding each ` +
      `${cfg.holdMs} ms before its 200: ${hold.load.successful} successful, ${hold.load.calls - hold.load.successful} not ` +
      `(${hold.load.failed} failed). With every call started and none answered, ${open} live server transactions: ` +
      `RSS ${fmtMb(plateau.rssBeforeGcKb)} MB (${fmtMb(before.rssKb)} before the load), heap used after a full GC ` +
      `${fmtMb(plateau.heapUsedKb)} MB${gcNote(plateau)} (${fmtMb(after.heapUsedKb)} once the calls had ended${gcNote(after)}): ` +
      `${fixed(perHeap / 1024, 1)} kB of live heap and ${fixed(perRss / 1024, 1)} kB of RSS per held INVITE ` +
      '(its server and client transactions and response context; no dialog state, Record-Route being off). ' +
      `At that rate 50,000 held INVITEs would take about ${fixed((before.rssKb * 1024 + perRss * 50_000) / 1024 / 1024)} MB RSS. ` +
      `After the calls ended and ${cfg.drainS} s idle: ${after.transactions} transactions, RSS ` +
      `${fmtMb(after.rssBeforeGcKb)} MB; VmHWM ${mb(hold.peakRssKb)} MB (the heap snapshots add to it).`,
  );
  out.push('');
  out.push(
    `Samples (s: RSS MB / heap used MB / server transactions; calls started from ${hold.loadStartS.toFixed(0)} s, ` +
      `last answered by ${hold.loadEndS.toFixed(0)} s): ` +
      hold.samples
        .map((x) => `${x.t.toFixed(0)}: ${fmtMb(x.rssKb)}/${fmtMb(x.heapUsedKb)}/${x.transactions}`)
        .join(', '),
  );
  if (hold.serverLog.length > 0) out.push('', `Server log besides relayed 2xx: ${hold.serverLog.join('; ')}`);
  out.push('');
  return out;
}

/** The proxy suite's full report (kept in a temporary file; bench/RESULTS.md keeps its standing). */
export function proxyMarkdownReport({ env, cfg, runs, memory, hold }) {
  const out = [];
  out.push(`## ${env.date.slice(0, 10)} — proxy load, ${contenders(runs)} (${env.date})`);
  out.push('');
  out.push(`- Machine: \`${env.uname}\``);
  out.push(
    `- CPU: ${env.cpuModel}, ${env.cores} cores (both SIPp processes, the server and the OS share them); ` +
      `load average before the suite: ${env.loadavg}`,
  );
  out.push(
    `- Versions: node ${env.node}, ${env.sipp}, ${env.kamailio}${env.drachtio ? `, ${env.drachtio}` : ''}; ` +
      `pchat-endpoint at ${env.commit}`,
  );
  out.push(
    `- Load: SIPp \`test/sipp/bench-proxy-uac.xml\` (INVITE → 100 → 200 → ACK → BYE → 200) through the server to ` +
      `SIPp \`test/sipp/bench-pool-uas.xml\` (the pool member, answering at once), over UDP on 127.0.0.1, at fixed ` +
      `offered rates ${cfg.loads.join(', ')} calls/s, ${cfg.durationS} s each (calls = rate × duration), one fresh ` +
      `server and pool member per run, each server first warmed up with ${cfg.warmupCalls} calls at 1000/s ` +
      '(on drachtio, half as many at 500/s: 1000/s saturates drachtio-server) ' +
      `that are not counted. For each log level and load, ${inOrder(runs)}, ` +
      `back to back, ${cfg.repeat ?? 1} round(s) of the pair (\`--repeat\`).`,
  );
  out.push(
    `- pchat-endpoint: \`serve --config-dir\` with \`mode: proxy\` and one static pool target ` +
      '`sip:127.0.0.1:PORT;transport=udp`; no Record-Route (the default; server.yaml has no key for it yet), ' +
      'OPTIONS health probing on (its default, one OPTIONS every 10 s, answered by the pool member).',
  );
  out.push(
    `- Kamailio: stateful \`t_relay()\` (tm, rr) generated from \`bench/kamailio/proxy.cfg.tmpl\`, ` +
      `children=${cfg.kamailioChildren}, shm ${cfg.kamailioShmMb} MB, record_route() ${cfg.recordRoute ? 'ON (pchat-endpoint: off — not like for like)' : 'off, like the service'}; ` +
      'the 2xx ACK forwarded statelessly. "info" logs one line per relayed request on both servers, "warn" none.',
  );
  out.push(
    '- CPU µs/call: utime+stime of every server process over the run divided by successful calls (a call is ' +
      'one INVITE transaction, one 2xx ACK and one BYE transaction). Peak RSS: VmHWM, sum / largest process ' +
      '(Kamailio shares its shm between processes, so the sum counts it more than once).',
  );
  out.push(
    '- SIPp CPU %: client + pool member, each of one core. Other CPU %: busy time of everything else on the ' +
      'machine during the run, as a share of all cores; runs with a high value were disturbed.',
  );
  out.push(
    '- Response time: INVITE → 200 as the client measures it (bands, median and 99th percentile), and the ' +
      "99th percentile of BYE → 200. SIPp's buckets are whole milliseconds of its own event loop. Not " +
      'successful: failed calls (by SIPp reason) and calls still unfinished when the run was cut off.',
  );
  out.push('');
  const header = [
    'server',
    'log',
    'offered/s',
    'achieved/s',
    'successful',
    'not successful',
    'retrans',
    ...BANDS.map((b) => b.title),
    'p50 ms',
    'p99 ms',
    'BYE p99 ms',
    'CPU µs/call',
    'peak RSS MB (sum / max)',
    'procs',
    'SIPp CPU % (uac + uas)',
    'other CPU %',
    'note',
  ];
  out.push(table(header, runs.map(proxyRunRow)));
  out.push('');

  const pairs = runs
    .filter((r) => r.server === 'ours')
    .map((o) => ({
      o,
      k: runs.find(
        (r) =>
          r.server === 'kamailio' &&
          r.level === o.level &&
          r.offeredRate === o.offeredRate &&
          r.round === o.round,
      ),
    }))
    .filter((p) => p.k);
  if (pairs.length > 0) {
    const byRound = pairs.some(({ o }) => o.round > 1);
    out.push(`Ratios ours / Kamailio (same log level and offered load${byRound ? ', and round' : ''}):`);
    out.push('');
    out.push(
      table(
        [
          'log',
          'offered/s',
          ...(byRound ? ['round'] : []),
          'achieved rate',
          'not successful (ours / kamailio)',
          'CPU µs/call',
          'peak RSS vs Kamailio sum',
          'peak RSS vs Kamailio largest process',
        ],
        pairs.map(({ o, k }) => [
          o.level,
          o.offeredRate,
          ...(byRound ? [o.round] : []),
          ratio(o.achievedRate, k.achievedRate),
          `${o.calls - o.successful} / ${k.calls - k.successful}`,
          ratio(o.cpuMicrosPerCall, k.cpuMicrosPerCall),
          ratio(o.peakRssMaxKb, k.peakRssSumKb),
          ratio(o.peakRssMaxKb, k.peakRssMaxKb),
        ]),
      ),
    );
    out.push('');
    pushPooled(
      out,
      pooledCpu(runs, (r) => `${r.level} ${r.offeredRate}/s`),
    );
  }
  const drachtioPart = drachtioSection(
    env,
    runs,
    ['log', 'offered/s'],
    (r) => [r.level, String(r.offeredRate)],
    DRACHTIO_PROXY_NOTE,
  );
  if (drachtioPart.length > 0) out.push(...drachtioPart, '');

  const troubled = runs.filter((r) => r.calls !== r.successful || r.serverLog.length > 0);
  if (troubled.length > 0) {
    out.push('Where calls failed or the server logged more than relayed 2xx:');
    out.push('');
    for (const r of troubled) {
      const first = (r.errorsHead || r.uasErrorsHead || '')
        .split('\n')
        .find((l) => /Aborting|unexpected|timeout|Timeout|Failed/i.test(l));
      out.push(
        `- ${serverName(r)} ${r.level} ${r.offeredRate}/s: ` +
          `${r.serverLog.length > 0 ? `server log ${r.serverLog.join('; ')}` : 'nothing in the server log'}` +
          `${first ? `; SIPp: \`${first.replace(/`/g, "'").slice(0, 200)}\`` : ''}`,
      );
    }
    out.push('');
  }
  if (memory) out.push(...memorySection(memory, cfg));
  if (hold) out.push(...holdSection(hold, cfg));
  return out.join('\n');
}

/**
 * Each configuration's CPU per call over every round it ran (each server's CPU summed over its
 * successful calls summed), ours against Kamailio, with what failed and the peak RSS: the rows of a
 * suite's standing in bench/RESULTS.md.
 * @param {any[]} runs
 * @param {(r: any) => string[]} keyOf the configuration's cells (log level, transport, load)
 */
function standingRows(runs, keyOf) {
  const by = new Map();
  for (const r of runs) {
    // The drachtio runs have a table of their own (drachtioRows).
    if (r.server !== 'ours' && r.server !== 'kamailio') continue;
    const cells = keyOf(r);
    const key = cells.join(' ');
    const acc = by.get(key) ?? { cells, ours: [], kamailio: [] };
    (r.server === 'ours' ? acc.ours : acc.kamailio).push(r);
    by.set(key, acc);
  }
  const cpu = (rs) => {
    const calls = rs.reduce((a, r) => a + (r.successful > 0 ? r.successful : 0), 0);
    return calls > 0
      ? (rs.reduce((a, r) => a + (r.serverCpuS >= 0 ? r.serverCpuS : 0), 0) * 1e6) / calls
      : NaN;
  };
  const notOk = (rs) =>
    rs.length === 0 ? '-' : String(rs.reduce((a, r) => a + (r.calls - r.successful), 0));
  const peak = (rs, field) => (rs.length === 0 ? NaN : Math.max(...rs.map((r) => r[field])));
  return [...by.values()].map(({ cells, ours, kamailio }) => {
    const o = cpu(ours);
    const k = cpu(kamailio);
    return [
      ...cells,
      `${ours.length} / ${kamailio.length}`,
      fixed(o, 1),
      fixed(k, 1),
      ratio(o, k),
      `${notOk(ours)} / ${notOk(kamailio)}`,
      `${fmtMb(peak(ours, 'peakRssMaxKb'))} / ${fmtMb(peak(kamailio, 'peakRssSumKb'))}`,
    ];
  });
}

/** The issue's target for the app on drachtio: at most this share of drachtio-server's own CPU. */
const APP_SHARE_TARGET = 0.5;

/**
 * The drachtio runs, one row per configuration over every round (CPU summed over successful calls
 * summed, as standingRows does): drachtio-server's CPU per call and the app's apart, the app's share,
 * the pair's total against the native engine and Kamailio in the same configuration, what failed,
 * and peak RSS of each part. No row where drachtio did not run.
 * @param {any[]} runs
 * @param {(r: any) => string[]} keyOf the configuration's cells (log level, transport, load)
 */
function drachtioRows(runs, keyOf) {
  const by = new Map();
  for (const r of runs) {
    const cells = keyOf(r);
    const key = cells.join(' ');
    const acc = by.get(key) ?? { cells, ours: [], drachtio: [], kamailio: [] };
    acc[r.server]?.push(r);
    by.set(key, acc);
  }
  const perCall = (rs, field) => {
    const calls = rs.reduce((a, r) => a + (r.successful > 0 ? r.successful : 0), 0);
    return calls > 0 ? (rs.reduce((a, r) => a + (r[field] >= 0 ? r[field] : 0), 0) * 1e6) / calls : NaN;
  };
  const notOk = (rs) =>
    rs.length === 0 ? '-' : String(rs.reduce((a, r) => a + (r.calls - r.successful), 0));
  const peak = (rs, field) => (rs.length === 0 ? NaN : Math.max(...rs.map((r) => r[field])));
  return [...by.values()]
    .filter((acc) => acc.drachtio.length > 0)
    .map(({ cells, ours, drachtio, kamailio }) => {
      const server = perCall(drachtio, 'drachtioCpuS');
      const app = perCall(drachtio, 'appCpuS');
      const total = perCall(drachtio, 'serverCpuS');
      return [
        ...cells,
        String(drachtio.length),
        fixed(server, 1),
        fixed(app, 1),
        ratio(app, server),
        fixed(total, 1),
        ratio(total, perCall(ours, 'serverCpuS')),
        ratio(total, perCall(kamailio, 'serverCpuS')),
        `${notOk(ours)} / ${notOk(drachtio)} / ${notOk(kamailio)}`,
        `${fmtMb(peak(drachtio, 'drachtioPeakRssKb'))} / ${fmtMb(peak(drachtio, 'appPeakRssKb'))}`,
      ];
    });
}

/** Why the proxy suite's drachtio runs Record-Route (bench/lib/proxy-suite.mjs, startServer). */
const DRACHTIO_PROXY_NOTE =
  'On drachtio the endpoint Record-Routes (the native engine and Kamailio do not): SIPp sends the ACK and ' +
  'the BYE to the proxy address either way, and drachtio-server relays an in-dialog request only when ' +
  'its Route names drachtio.';

const DRACHTIO_COLUMNS = [
  'rounds',
  'drachtio-server CPU µs/call',
  'app CPU µs/call',
  'app / drachtio-server',
  'total CPU µs/call',
  'total / native',
  'total / Kamailio',
  'not successful (native / drachtio / Kamailio)',
  'peak RSS MB (drachtio-server / app)',
];

/**
 * The drachtio table with its heading and how to read it, or nothing when drachtio did not run.
 * `note`: what else differs in the suite's drachtio runs.
 */
function drachtioSection(env, runs, keyColumns, keyOf, note = '') {
  const rows = drachtioRows(runs, keyOf);
  if (rows.length === 0) return [];
  return [
    '',
    '### The same service on drachtio (`--engine drachtio`)',
    '',
    `${env.drachtio ?? 'drachtio-server'} on 127.0.0.1 at \`notice\` logging (sofia's log off, no CDRs), ` +
      'the service connected to its admin port (`engine: drachtio`, inbound) and the load sent to its SIP ' +
      'port. CPU per call of drachtio-server and of the app apart (utime+stime of each process over the run, ' +
      'divided by successful calls), their total against the native engine and Kamailio in the same ' +
      `configuration. Target: the app at most ${APP_SHARE_TARGET.toFixed(2)}× drachtio-server's own CPU, ` +
      `0 failed calls at 2,000 calls/s offered.` +
      (env.drachtioMaxRate === undefined
        ? ''
        : ` Loads above ${env.drachtioMaxRate}/s ran without drachtio.`) +
      (note ? ` ${note}` : ''),
    '',
    table([...keyColumns, ...DRACHTIO_COLUMNS], rows),
  ];
}

const STANDING_COLUMNS = [
  'rounds (ours / Kamailio)',
  'ours CPU µs/call',
  'Kamailio CPU µs/call',
  'ratio',
  'not successful (ours / Kamailio)',
  'peak RSS MB (ours / Kamailio sum)',
];

/** Where a run came from: date, command, commit, machine and versions. */
export function provenance(env) {
  return (
    `Run of ${env.date}: \`${env.command}\`, pchat-endpoint at ${env.commit}. Machine: ${env.cpuModel}, ` +
    `${env.cores} cores (the servers, SIPp and the OS share them), \`${env.uname}\`, load average before ` +
    `${env.loadavg}; node ${env.node}, ${env.sipp}, ${env.kamailio}${env.drachtio ? `, ${env.drachtio}` : ''}.`
  );
}

/** The redirect suite's standing in bench/RESULTS.md (the full report is kept apart). */
export function redirectStanding({ env, runs, memory, memoryCalls, memoryRate }) {
  const out = ['## Redirect: stateless 302 (`--suite redirect`)', '', provenance(env), ''];
  out.push(
    table(
      ['log', 'transport', 'offered/s', ...STANDING_COLUMNS],
      standingRows(runs, (r) => [r.level, r.transport.toUpperCase(), String(r.offeredRate)]),
    ),
  );
  out.push(
    ...drachtioSection(env, runs, ['log', 'transport', 'offered/s'], (r) => [
      r.level,
      r.transport.toUpperCase(),
      String(r.offeredRate),
    ]),
  );
  if (memory) {
    const s = memory.samples;
    const mid = s[Math.floor(s.length / 2)]?.rssKb ?? NaN;
    const last = s.at(-1)?.rssKb ?? NaN;
    out.push(
      '',
      `Memory: ${memoryCalls} calls at ${memoryRate}/s over UDP (log ${memory.level}), ` +
        `${memory.load.calls - memory.load.successful} not successful: RSS ${fmtMb(s[0]?.rssKb)} MB at the start, ` +
        `${fmtMb(last)} at the end (second half ${last >= mid ? '+' : ''}${fmtMb(last - mid)} MB), VmHWM ${mb(memory.peakRssKb)} MB.`,
    );
  }
  return out.join('\n');
}

/** The proxy suite's standing in bench/RESULTS.md (the full report is kept apart). */
export function proxyStanding({ env, cfg, runs, memory, hold }) {
  const out = ['## Proxy: stateful, full calls to a pool member (`--suite proxy`)', '', provenance(env), ''];
  out.push(
    table(
      ['log', 'offered/s', ...STANDING_COLUMNS],
      standingRows(runs, (r) => [r.level, String(r.offeredRate)]),
    ),
  );
  out.push(
    ...drachtioSection(
      env,
      runs,
      ['log', 'offered/s'],
      (r) => [r.level, String(r.offeredRate)],
      DRACHTIO_PROXY_NOTE,
    ),
  );
  if (memory) {
    out.push(
      '',
      `Memory: ${cfg.memoryCalls} calls at ${cfg.memoryRate}/s, ${memory.load.calls - memory.load.successful} not ` +
        `successful: heap after a full GC ${fmtMb(memory.gcBefore.heapUsedKb)} MB before, ` +
        `${fmtMb(memory.gcAfter.heapUsedKb)} MB after; VmHWM ${mb(memory.peakRssKb)} MB.`,
    );
  }
  if (hold) {
    const open = hold.plateau.transactions;
    const perRss = ((hold.plateau.rssBeforeGcKb - hold.before.rssKb) * 1024) / open;
    const perHeap = ((hold.plateau.heapUsedKb - hold.after.heapUsedKb) * 1024) / open;
    out.push(
      '',
      `Held calls: ${cfg.holdCalls} INVITEs held ${cfg.holdMs} ms each, ${hold.load.calls - hold.load.successful} ` +
        `not successful: ${fixed(perHeap / 1024, 1)} kB of live heap and ${fixed(perRss / 1024, 1)} kB of RSS per held INVITE.`,
    );
  }
  return out.join('\n');
}
