// A migration wave moved by `pchat-endpoint home import` while SIPp calls a running `serve` (redirect
// mode, homing by users.csv) at a steady rate from several users: no call fails, every call decided
// before the reload gets the old pool's Contact and every call after it the new one's. Real
// processes throughout (dist/, built by `npm run build`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { CLI, msgOf, serveFolder, type ServeProcess } from '../helpers/serve-process.js';
import { freePort, requireSipp, runSipp, type SippResult } from '../helpers/sipp.js';

const USERS = 10;
const CALLS = 280;
const RATE = 40;

const endpointsYaml = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing: [{ users: users.csv }]
# Redirect mode names a pool without targets as sip:<user>@<pool>: its Contact host is the pool.
pools:
  - fqdn: pc-us.contoso.com
  - fqdn: pc-emea.contoso.com
`;

// u0-u5 listed on pc-us; u6-u9 not listed (the endpoint's pc-us). The wave moves u0-u2 to pc-emea,
// adds u6 there, and lists u3 where they are.
const usersCsv =
  'SipAddress,PoolFqdn\n# wave 0: everyone on pc-us\n' +
  Array.from({ length: 6 }, (_, i) => `sip:u${i}@contoso.com,pc-us.contoso.com\n`).join('');
const waveCsv =
  'SipAddress,PoolFqdn\n' +
  ['u0', 'u1', 'u2', 'u6'].map((u) => `sip:${u}@contoso.com,pc-emea.contoso.com\n`).join('') +
  'sip:u3@contoso.com,pc-us.contoso.com\n';
const moved = new Set(['u0', 'u1', 'u2', 'u6']);

let serve: ServeProcess | undefined;
const dirs: string[] = [];

beforeAll(() => {
  requireSipp();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
});

afterEach(async () => {
  await serve?.stop();
  serve = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, out, err });
    });
  });
}

/** SIPp's log: call id to [user, Contact host]. */
async function sippCalls(run: SippResult): Promise<Map<string, [string, string]>> {
  const text = await readFile(join(run.artifactsDir!, 'wave.log'), 'latin1');
  const calls = new Map<string, [string, string]>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (u\d+) (\S+) \|/.exec(line);
    if (m !== null) calls.set(m[1]!, [m[2]!, m[3]!]);
  }
  return calls;
}

it('a wave moved by home import while SIPp calls: no failed call, the new pool from the reload on', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-wave-'));
  dirs.push(dir);
  const port = await freePort(['udp']);
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml);
  await writeFile(join(dir, 'users.csv'), usersCsv);
  const wave = join(dir, 'wave-1.csv');
  await writeFile(wave, waveCsv);
  const inject = join(dir, 'callers.csv');
  await writeFile(inject, `SEQUENTIAL\n${Array.from({ length: USERS }, (_, i) => `u${i};\n`).join('')}`);
  serve = serveFolder(dir);
  await serve.waitReadyz(200, 10_000);

  const sipp = runSipp({
    scenario: 'redirect-wave-uac',
    target: { host: '127.0.0.1', port },
    transport: 'udp',
    calls: CALLS,
    rate: RATE,
    vars: { service: 'ocschat', domain: 'contoso.com' },
    timeoutMs: 20_000,
    keepArtifacts: true,
    extraArgs: ['-inf', inject, '-trace_logs', '-log_file', 'wave.log'],
  });
  const s = serve;
  const invites = () => s.decisions().filter((l) => l['method'] === 'INVITE');
  // A fifth of the calls made (about 1.4 s), then the wave: the import runs while SIPp keeps calling
  // for several seconds more, time enough for a process start and a reload on a busy machine.
  await s.waitForLine(() => invites().length >= CALLS / 5, 10_000);
  const imported = await runCli(['home', 'import', wave, '--config-dir', dir]);
  expect(imported.code, imported.err).toBe(0);
  expect(imported.out).toContain(': 1 added, 3 moved, 1 unchanged');
  const reload = await s.waitForLine((l) => msgOf(l).startsWith('reload applied'), 10_000);
  const run = await sipp;
  if (run.artifactsDir !== undefined) dirs.push(run.artifactsDir);

  expect(run.errors, run.stdout.slice(-2000)).toBe('');
  expect(run.failed).toBe(0);
  expect(run.successful).toBe(CALLS);
  // The service writes its log out at least once a second: the last calls' lines may still be coming.
  await s.waitForLine(() => invites().length >= CALLS, 5_000);

  // The service's decisions, split at the reload: each call's pool, and whether it came after.
  const at = s.lines.indexOf(reload);
  const decided = new Map<string, { pool: string; after: boolean }>();
  s.lines.forEach((l, i) => {
    if (l['msg'] !== 'decision' || l['method'] !== 'INVITE') return;
    const pool = typeof l['pool'] === 'string' ? l['pool'] : 'pc-us.contoso.com';
    decided.set(String(l['callId']), { pool, after: i > at });
  });
  const calls = await sippCalls(run);
  expect(calls.size).toBe(CALLS);
  const seen = { before: 0, after: 0 };
  for (const [callId, [user, contact]] of calls) {
    const d = decided.get(callId);
    expect(d, `no decision for ${callId}`).toBeDefined();
    // What SIPp was told is what the service decided, and the wave's users follow it from the reload on.
    expect(contact).toBe(d!.pool);
    const expected = d!.after && moved.has(user) ? 'pc-emea.contoso.com' : 'pc-us.contoso.com';
    expect(`${user} ${d!.after ? 'after' : 'before'}: ${contact}`).toBe(
      `${user} ${d!.after ? 'after' : 'before'}: ${expected}`,
    );
    if (moved.has(user)) seen[d!.after ? 'after' : 'before']++;
  }
  // Mid-run: the moved users called both before and after the wave.
  expect(seen.before).toBeGreaterThan(0);
  expect(seen.after).toBeGreaterThan(0);
  // The file the wave left: the old rows in place, u6 appended.
  expect(await readFile(join(dir, 'users.csv'), 'utf8')).toBe(
    usersCsv.replace(/u([012])@contoso\.com,pc-us/g, 'u$1@contoso.com,pc-emea') +
      'sip:u6@contoso.com,pc-emea.contoso.com\n',
  );
}, 40_000);
