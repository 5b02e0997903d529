// Formats the benchmark's measurements as the markdown section appended to bench/RESULTS.md.

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

function runRow(run) {
  const notOk = run.calls - run.successful;
  const failures = Object.entries(run.failures)
    .map(([k, v]) => `${k.replace(/^Failed/, '')} ${v}`)
    .join(', ');
  return [
    run.server === 'ours' ? 'pchat-endpoint' : 'kamailio',
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
    fixed(run.cpuMicrosPerCall, 1),
    `${mb(run.peakRssSumKb)} / ${mb(run.peakRssMaxKb)}`,
    run.processes,
    fixed(run.sippCpuPercent),
    fixed(run.otherCpuPercent),
    run.serverSurvived ? '' : 'server exited',
  ];
}

function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';

export function markdownReport({ env, runs, memory, loads, tcpRate, memoryCalls, memoryRate }) {
  const out = [];
  out.push(`## ${env.date.slice(0, 10)} — redirect load, pchat-endpoint vs Kamailio (${env.date})`);
  out.push('');
  out.push(`- Machine: \`${env.uname}\``);
  out.push(
    `- CPU: ${env.cpuModel}, ${env.cores} cores (SIPp, the server and the OS share them); ` +
      `load average before the run: ${env.loadavg}`,
  );
  out.push(`- Versions: node ${env.node}, ${env.sipp}, ${env.kamailio}; pchat-endpoint at ${env.commit}`);
  out.push(
    `- Load: SIPp \`test/sipp/redirect-uac.xml\` (INVITE → 302 → ACK, Contact and To tag checked) at fixed ` +
      `offered rates ${loads.join(', ')}/s over UDP and ${tcpRate}/s over TCP (one connection), ` +
      `${env.durationS} s each (calls = rate × duration), one fresh server process per run.`,
  );
  out.push(
    `- Kamailio: stateless \`sl_send_reply\` redirect generated from \`bench/kamailio/redirect.cfg.tmpl\`, ` +
      `children=${env.kamailioChildren} (UDP) and tcp_children=${env.kamailioChildren}: one receiver per core; ` +
      `"info" adds one xlog line per decision (like the service's info log), "warn" logs none.`,
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
          r.offeredRate === o.offeredRate,
      ),
    }))
    .filter((p) => p.k);
  if (pairs.length > 0) {
    out.push('Ratios ours / Kamailio (same log level, transport and offered load):');
    out.push('');
    out.push(
      table(
        [
          'log',
          'transport',
          'offered/s',
          'achieved rate',
          'CPU µs/call',
          'peak RSS vs Kamailio sum',
          'peak RSS vs Kamailio largest process',
        ],
        pairs.map(({ o, k }) => [
          o.level,
          o.transport.toUpperCase(),
          o.offeredRate,
          ratio(o.achievedRate, k.achievedRate),
          ratio(o.cpuMicrosPerCall, k.cpuMicrosPerCall),
          ratio(o.peakRssMaxKb, k.peakRssSumKb),
          ratio(o.peakRssMaxKb, k.peakRssMaxKb),
        ]),
      ),
    );
    out.push('');
  }

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
