// One load of a configuration folder with a homing user table, in a process of its own (run by
// bench/lib/homing-suite.mjs with --expose-gc): the time loadConfig takes to read, parse and validate
// it (the table checked on its worker thread, as `serve` does), the longest the event loop waited
// meanwhile, and the resident memory before and after (each after a full GC), printed as one JSON line.
//
// node --expose-gc bench/lib/user-table-load.mjs CONFIG_DIR
import './help.mjs'; // first: --help exits before the rest runs
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist =
  process.env.PCHAT_DIST === undefined
    ? fileURLToPath(new URL('../../dist', import.meta.url))
    : process.env.PCHAT_DIST;
const { loadConfig } = await import(pathToFileURL(join(dist, 'config/load.js')).href);

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: node --expose-gc bench/lib/user-table-load.mjs CONFIG_DIR');
if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');

/** RSS after a full collection, once what the last step freed has settled. */
async function settledRss() {
  globalThis.gc();
  await sleep(200);
  globalThis.gc();
  return process.memoryUsage().rss;
}

const before = await settledRss();
let last = performance.now();
let longestGapMs = 0;
const ticker = setInterval(() => {
  const now = performance.now();
  longestGapMs = Math.max(longestGapMs, now - last);
  last = now;
}, 1);
const t0 = performance.now();
const config = await loadConfig(dir);
const loadMs = performance.now() - t0;
clearInterval(ticker);
let rows = 0;
for (const e of config.table) for (const r of e.homing ?? []) if (r.kind === 'users') rows += r.table.size;
const after = await settledRss();
console.log(
  JSON.stringify({ loadMs, longestGapMs, rows, rssBeforeKb: before / 1024, rssAfterKb: after / 1024 }),
);
// The table is held until here, so the RSS above is with it.
if (config.table.size < 0) console.log('unreachable');
