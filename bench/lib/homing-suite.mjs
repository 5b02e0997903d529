// Homing at scale (`--suite redirect --homing ROWS`): the cost of a user table of ROWS users on the
// redirect path, and the cost of the table itself.
// - Side by side: the same redirect load on the service without homing and with a user table of ROWS
//   rows (every caller SIPp makes, sip:legacyN@contoso.com, is a row, so each call is a lookup that
//   hits), back to back per load, their CPU per redirect compared. The table leads every user to the
//   endpoint's own pool, so the 302 names the host SIPp checks for in both runs.
// - Load: the table read, parsed and validated by loadConfig in a fresh process
//   (bench/lib/user-table-load.mjs), its time, the longest the event loop waited meanwhile, and the
//   resident memory before and after.
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { provenance, table } from './report.mjs';

const LOAD_CHILD = fileURLToPath(new URL('./user-table-load.mjs', import.meta.url));
/** Fresh processes the load is measured in; the median is reported. */
const LOAD_RUNS = 3;
/** Targets of the issue (homing): the ratio of CPU per redirect, the load time, the table's RSS. */
export const HOMING_TARGETS = { cpuRatio: 1.05, loadMs: 3000, rssMb: 150 };

/** endpoints.yaml of the homing runs: `endpointsYaml`'s first endpoint given the user table. */
export function withHoming(endpointsYaml) {
  return endpointsYaml.replace(/(mode: redirect\n)/, '$1    homing:\n      - users: users.csv\n');
}

/** Writes a user table of `rows` users (sip:legacy0@domain …), all homed on `pool`, to `file`. */
export async function writeUserTable(file, rows, domain, pool) {
  const out = createWriteStream(file);
  out.write('SipAddress,PoolFqdn\n');
  const CHUNK = 10_000;
  for (let from = 0; from < rows; from += CHUNK) {
    let text = '';
    for (let i = from; i < Math.min(rows, from + CHUNK); i++) text += `sip:legacy${i}@${domain},${pool}\n`;
    if (!out.write(text)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Puts the table in the configuration folder a bench server is about to be started with. */
export async function placeUserTable(dir, tableFile) {
  await mkdir(join(dir, 'config'), { recursive: true });
  await copyFile(tableFile, join(dir, 'config', 'users.csv'));
}

/** The table loaded LOAD_RUNS times, each in a fresh process: every run, and the median's figures. */
export async function measureTableLoad(tableFile, endpointsYaml) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-homing-load-'));
  try {
    await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\n');
    await writeFile(join(dir, 'endpoints.yaml'), withHoming(endpointsYaml));
    await copyFile(tableFile, join(dir, 'users.csv'));
    const runs = [];
    for (let i = 0; i < LOAD_RUNS; i++) {
      const out = execFileSync(process.execPath, ['--expose-gc', LOAD_CHILD, dir], { encoding: 'utf8' });
      const run = JSON.parse(out.trim().split('\n').at(-1));
      runs.push({ ...run, rssMb: (run.rssAfterKb - run.rssBeforeKb) / 1024 });
      console.log(
        `homing load ${i + 1}/${LOAD_RUNS}: ${run.rows} rows in ${run.loadMs.toFixed(0)} ms ` +
          `(event loop waited at most ${run.longestGapMs.toFixed(0)} ms), RSS ${(run.rssBeforeKb / 1024).toFixed(1)} → ` +
          `${(run.rssAfterKb / 1024).toFixed(1)} MB`,
      );
    }
    const median = (key) => runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    return {
      runs,
      loadMs: median('loadMs'),
      longestGapMs: median('longestGapMs'),
      rssMb: median('rssMb'),
      rows: runs[0].rows,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const fixed = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

/** One row per load: CPU per redirect without and with the table, pooled over the rounds. */
function sideBySideRows(runs) {
  const by = new Map();
  for (const r of runs) {
    const key = `${r.level} ${r.transport} ${r.offeredRate}`;
    const acc = by.get(key) ?? { r, plain: [], homed: [] };
    (r.server === 'ours-homing' ? acc.homed : acc.plain).push(r);
    by.set(key, acc);
  }
  const pooled = (rs) => {
    const calls = rs.reduce((a, r) => a + Math.max(0, r.successful), 0);
    return calls > 0 ? (rs.reduce((a, r) => a + Math.max(0, r.serverCpuS), 0) * 1e6) / calls : NaN;
  };
  const lost = (rs) => rs.reduce((a, r) => a + (r.calls - r.successful), 0);
  const peak = (rs) => Math.max(...rs.map((r) => r.peakRssMaxKb)) / 1024;
  const other = (rs) => Math.max(...rs.map((r) => r.otherCpuPercent));
  return [...by.values()].map(({ r, plain, homed }) => {
    const [a, b] = [pooled(plain), pooled(homed)];
    return [
      r.level,
      r.transport.toUpperCase(),
      String(r.offeredRate),
      String(plain.length),
      fixed(a),
      fixed(b),
      Number.isFinite(a) && Number.isFinite(b) && a > 0 ? `${(b / a).toFixed(3)}×` : 'n/a',
      `${lost(plain)} / ${lost(homed)}`,
      `${fixed(peak(plain))} / ${fixed(peak(homed))}`,
      `${fixed(Math.max(other(plain), other(homed)), 0)} %`,
    ];
  });
}

/** The homing standing in bench/RESULTS.md. */
export function homingStanding({ env, rows, runs, load }) {
  const t = HOMING_TARGETS;
  return [
    `## Homing: a user table of ${rows.toLocaleString('en')} rows (\`--suite redirect --homing ${rows}\`)`,
    '',
    provenance(env),
    '',
    `The same redirect load, back to back, on the service without homing and with \`homing: [{ users: users.csv }]\` ` +
      `on the endpoint SIPp calls, users.csv holding ${rows.toLocaleString('en')} rows; every caller SIPp makes ` +
      `(sip:legacyN@contoso.com) is a row, so each redirect looks its caller up. CPU per redirect is utime+stime of ` +
      `the service over the run (the table's load before it is not counted) over successful calls. "other CPU": ` +
      `the largest share of the machine that other work took during either run of the row. Target: ratio at most ` +
      `${t.cpuRatio.toFixed(2)}×.`,
    '',
    table(
      [
        'log',
        'transport',
        'offered/s',
        'rounds',
        'no homing CPU µs/redirect',
        'homing CPU µs/redirect',
        'ratio',
        'not successful (no homing / homing)',
        'peak RSS MB (no homing / homing)',
        'other CPU',
      ],
      sideBySideRows(runs),
    ),
    '',
    `Load of the table (\`loadConfig\`: read, parse and validate on the worker thread, the table put together on ` +
      `the event loop), median of ${load.runs.length} fresh processes (bench/lib/user-table-load.mjs): ` +
      `${load.rows.toLocaleString('en')} rows in ${fixed(load.loadMs / 1000, 2)} s (target under ${t.loadMs / 1000} s; ` +
      `runs ${load.runs.map((r) => fixed(r.loadMs / 1000, 2)).join(', ')} s); the event loop waited at most ` +
      `${fixed(load.longestGapMs, 0)} ms meanwhile; resident memory for it ${fixed(load.rssMb)} MB (RSS after a full ` +
      `GC, after the load less before it; target under ${t.rssMb} MB; runs ${load.runs.map((r) => fixed(r.rssMb)).join(', ')} MB), ` +
      `the bytes of the file kept to tell a later edit from a touch included.`,
  ].join('\n');
}
