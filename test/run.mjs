// Runs the whole test suite (vitest) and ends with one plain summary line, "N passed, N failed",
// that any CI log reader understands. Exits non-zero when any run failed.
//
// Two runs: everything in parallel, then the mutation fuzzer on its own. The fuzzer's mutated Vias
// can name any loopback port, and the service answers there: run beside other tests, those answers
// could land on their sockets.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { SBIN } from './peers.mjs';

const USAGE = `usage: node test/run.mjs [vitest arguments...]     (npm test [-- vitest arguments...])

Without arguments: the whole suite in two vitest runs (everything but test/fuzz in parallel, then
test/fuzz alone) and one summary line. With arguments: one vitest run with them, such as a test file
or -t NAME (npx vitest --help lists vitest's own options).`;

const extra = process.argv.slice(2);
if (extra.includes('--help') || extra.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
// Kamailio and dnsmasq live in sbin, which a normal user's PATH leaves out (test/peers.mjs looks there).
const path = (process.env.PATH ?? '').split(delimiter);
const env = { ...process.env, PATH: [...path, ...SBIN.filter((d) => !path.includes(d))].join(delimiter) };
const runs = extra.length > 0 ? [extra] : [['--exclude', 'test/fuzz/**'], ['test/fuzz']];
const dir = mkdtempSync(join(tmpdir(), 'pchat-vitest-'));
let passed = 0;
let failed = 0;
let skipped = 0;
let status = 0;
for (const [i, selection] of runs.entries()) {
  const report = join(dir, `report-${i}.json`);
  const args = [
    'vitest',
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...selection,
  ];
  const run = spawnSync('npx', args, { stdio: 'inherit', env });
  if (run.status !== 0) status = run.status ?? 1;
  try {
    const r = JSON.parse(readFileSync(report, 'utf8'));
    passed += r.numPassedTests;
    // A file that fails before its tests run (an import that throws) fails no test of its own: it
    // counts as one failure, so the summary never reads "0 failed" on a failed run.
    failed +=
      r.numFailedTests +
      (r.testResults ?? []).filter(
        (f) => f.status === 'failed' && f.assertionResults.every((a) => a.status !== 'failed'),
      ).length;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  } catch {
    // No report: vitest did not get as far as running tests; count the run as a failure.
    failed += 1;
  }
}
rmSync(dir, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(status);
