// Event-loop delay while the service reloads a large endpoints.yaml (`node bench/config-reload.mjs`,
// after `npm run build`): the built service in this process, a 4 MiB valid file, several reloads each
// after a real change; the event loop is watched by perf_hooks.monitorEventLoopDelay and by a 5 ms
// timer whose lateness is recorded. For comparison, the time the same check takes on the calling
// thread (what a reload blocked SIP for before it moved to a worker).
//
// node bench/config-reload.mjs [--bytes 4194304] [--reloads 5]
import { parseOptions } from './lib/help.mjs'; // first: --help exits before the rest runs
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';

// dist/ is imported when run, not linked with the static imports: --help answers before a build.
const { checkEndpointsConfig } = await import('../dist/config/load.js');
const { startServer } = await import('../dist/server/server.js');

const { values: args } = parseOptions({
  bytes: { type: 'string', default: String(4 * 1024 * 1024) },
  reloads: { type: 'string', default: '5' },
});
const bytes = Number(args.bytes);

/** A valid endpoints.yaml just under `bytes`; `tag` makes each version differ. */
function endpointsYaml(tag) {
  const tail = `  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    displayName: version ${tag}\n    mode: redirect\n`;
  const parts = ['endpoints:\n'];
  let size = parts[0].length + tail.length;
  for (let i = 0; ; i++) {
    const e = `  - sipAddress: sip:chat${i}@contoso${i % 50}.com\n    poolFqdn: pcpool${i % 20}.contoso.com\n    displayName: Group chat room number ${i}\n    mode: redirect\n`;
    if (size + e.length > bytes) break;
    parts.push(e);
    size += e.length;
  }
  parts.push(tail);
  return parts.join('');
}

const dir = await mkdtemp(join(tmpdir(), 'pchat-bench-reload-'));
await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\n');
await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml(0));
const server = await startServer({ configDir: dir, logger: pino({ level: 'silent' }), watch: false });
const ms = (ns) => (ns / 1e6).toFixed(1);
console.log(`endpoints.yaml: ${Buffer.byteLength(endpointsYaml(0))} bytes, ${server.table().size} endpoints`);
console.log('run                took ms  loop delay max ms  p99 ms  timer late max ms  rss MB');

/** Runs `work` while watching the event loop; prints one row. */
async function watched(label, work) {
  const h = monitorEventLoopDelay({ resolution: 5 });
  let late = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    late = Math.max(late, now - last - 5);
    last = now;
  }, 5);
  h.enable();
  const t0 = performance.now();
  await work();
  const took = performance.now() - t0;
  h.disable();
  clearInterval(probe);
  // perf_hooks records the time between its 5 ms ticks, the period included: the delay is beyond it.
  const beyond = (ns) => Math.max(0, ns - 5e6);
  console.log(
    `${label.padEnd(17)}  ${took.toFixed(0).padStart(7)}  ${ms(beyond(h.max)).padStart(17)}  ${ms(beyond(h.percentile(99))).padStart(6)}  ${late.toFixed(1).padStart(17)}  ${(process.memoryUsage().rss / 1048576).toFixed(0).padStart(6)}`,
  );
}

// Baselines: the loop with nothing to do, and beside a thread that only burns CPU for 2 s (on a
// shared machine the scheduler alone delays the loop by tens of ms).
await watched('idle', () => new Promise((r) => setTimeout(r, 2000)));
await watched('beside a busy thread', async () => {
  const spin = new Worker('const t = Date.now(); while (Date.now() - t < 2000);', { eval: true });
  await new Promise((r) => spin.once('exit', r));
});
for (let i = 1; i <= Number(args.reloads); i++) {
  await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml(i));
  await watched(`reload ${i}`, async () => {
    const r = await server.reload('api');
    if (!r.ok) throw new Error(`reload refused: ${r.issues.join('\n')}`);
  });
}
const text = endpointsYaml('inline');
const t0 = performance.now();
checkEndpointsConfig(text, 'endpoints.yaml');
console.log(
  `the same check on the calling thread: ${(performance.now() - t0).toFixed(0)} ms of blocked event loop`,
);
await server.close();
await rm(dir, { recursive: true, force: true });
