// A large homing user table reloaded while the service serves (a `serve` process from dist/, so the
// table is checked on its worker thread as in production): a steady stream of INVITEs keeps being
// answered with no long gap while the reload runs, and then by the new table; a bad row deep in a
// large file is refused at file:line while the last good table keeps serving.
import dgram from 'node:dgram';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { msgOf, serveFolder, type ServeProcess } from '../helpers/serve-process.js';
import { freePort } from '../helpers/sipp.js';

/** Rows of the large table: parsed in about 0.8 s on the reference machine, in the event loop's way. */
const ROWS = 600_000;
/** The longest an answer may wait behind the reload: well under the time the table takes to parse. */
const MAX_GAP_MS = 200;

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing:
      - users: users.csv
pools:
  - fqdn: pc-us.contoso.com
    targets: [{ uri: "sip:10.0.0.1:5061;transport=tls" }]
  - fqdn: pc-emea.contoso.com
    targets: [{ uri: "sip:10.0.0.2:5061;transport=tls" }]
  - fqdn: pc-apac.contoso.com
    targets: [{ uri: "sip:10.0.0.3:5061;transport=tls" }]
`;
const APAC = '<sip:10.0.0.3:5061;transport=tls>';
const EMEA = '<sip:10.0.0.2:5061;transport=tls>';

let svc: ServeProcess | undefined;
let scratch = '';

afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  if (scratch !== '') await rm(scratch, { recursive: true, force: true });
  scratch = '';
});

/**
 * A user table of ROWS users, all on `pool`; `bad` replaces one row (by its line) with its text.
 * Written row by row into one buffer, so the test process makes no large garbage its own collector
 * would pause for while it times the answers.
 */
function usersCsv(pool: string, bad?: { line: number; row: string }): Buffer {
  const buf = Buffer.allocUnsafe((ROWS + 1) * (40 + pool.length));
  let at = buf.write('SipAddress,PoolFqdn\n');
  for (let i = 0; i < ROWS; i++) {
    const row = bad?.line === i + 2 ? bad.row : `sip:user${i}@contoso.com,${pool}`;
    at += buf.write(`${row}\n`, at, 'latin1');
  }
  return buf.subarray(0, at);
}

/** Writes a user table beside the configuration folder (in the same file system), to move in later. */
async function prepareUsers(text: Buffer): Promise<string> {
  const tmp = join(scratch, 'users.csv');
  await writeFile(tmp, text);
  return tmp;
}

/** Replaces users.csv with a prepared one in one rename. */
async function replaceUsers(prepared: string): Promise<void> {
  await rename(prepared, join(svc!.dir, 'users.csv'));
}

async function start(): Promise<number> {
  scratch = await mkdtemp(join(tmpdir(), 'pchat-users-'));
  const dir = await mkdtemp(join(tmpdir(), 'pchat-serve-'));
  const port = await freePort(['udp']);
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n`,
  );
  await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
  await writeFile(join(dir, 'users.csv'), usersCsv('pc-apac.contoso.com'));
  svc = serveFolder(dir, { removeOnStop: true });
  await svc.waitReadyz(200, 20_000);
  return port;
}

interface Answer {
  readonly at: number;
  readonly contact: string;
}

/**
 * INVITEs from users of the table, one every 2 ms, each answered statelessly (a 302): the answers'
 * arrival times and Contacts, until stop().
 */
async function stream(port: number): Promise<{ answers: Answer[]; stop: () => void }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const local = sock.address().port;
  const answers: Answer[] = [];
  sock.on('message', (m) => {
    const text = m.toString('latin1');
    if (!text.startsWith('SIP/2.0 302')) return;
    answers.push({ at: performance.now(), contact: /^Contact: (.*)$/im.exec(text)?.[1] ?? '' });
  });
  let n = 0;
  const timer = setInterval(() => {
    const id = `r${n++}`;
    const user = `user${(n * 7919) % ROWS}`;
    sock.send(
      `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK${id}\r\n` +
        `From: <sip:${user}@contoso.com>;tag=${id}\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${id}@test\r\n` +
        `CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:${local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
      port,
      '127.0.0.1',
    );
  }, 2);
  return {
    answers,
    stop: () => {
      clearInterval(timer);
      sock.close();
    },
  };
}

/** Waits (bounded) until `done` holds, polling every 20 ms. */
async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms; stderr: ${svc?.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The longest time between two answers in a row from `from` (ms, performance.now()) to `to`. */
function longestGap(answers: readonly Answer[], from: number, to: number): number {
  let gap = 0;
  let prev = from;
  for (const a of answers) {
    if (a.at < from) continue;
    if (a.at > to) break;
    gap = Math.max(gap, a.at - prev);
    prev = a.at;
  }
  return gap;
}

it(`served while a reload of it is in progress: ${ROWS} users moved in one edit`, async () => {
  const port = await start();
  const next = await prepareUsers(usersCsv('pc-emea.contoso.com'));
  const s = await stream(port);
  try {
    await until(() => s.answers.at(-1)?.contact === APAC, 20_000, 'answers by the first table');
    const t0 = performance.now();
    await replaceUsers(next);
    await until(() => s.answers.at(-1)?.contact === EMEA, 30_000, 'answers by the new table');
    const applied = s.answers.find((a) => a.at > t0 && a.contact === EMEA)!.at;
    // A few more answers, all by the new table.
    const seen = s.answers.length;
    await until(() => s.answers.length >= seen + 50, 5000, 'answers after the reload');
    const gap = longestGap(s.answers, t0, applied);
    // The reload took longer than any gap may: had it stalled the event loop, a gap would show it.
    expect(applied - t0).toBeGreaterThan(MAX_GAP_MS);
    expect(
      gap,
      `longest gap ${gap.toFixed(0)} ms in a reload of ${(applied - t0).toFixed(0)} ms`,
    ).toBeLessThan(MAX_GAP_MS);
    expect(s.answers.slice(seen).every((a) => a.contact === EMEA)).toBe(true);
  } finally {
    s.stop();
  }
});

it('a bad row deep in a large table is refused at file:line, the last good table serving meanwhile', async () => {
  const port = await start();
  const line = ROWS - 1000;
  const bad = { line, row: 'sip:mallory@contoso.com,nowhere.contoso.com' };
  const next = await prepareUsers(usersCsv('pc-emea.contoso.com', bad));
  const s = await stream(port);
  try {
    await until(() => s.answers.at(-1)?.contact === APAC, 20_000, 'answers by the first table');
    const from = svc!.lines.length;
    const t0 = performance.now();
    await replaceUsers(next);
    const refused = await svc!.waitForLine((l) => msgOf(l).startsWith('reload refused'), 30_000, from);
    const done = performance.now();
    expect(msgOf(refused)).toContain(`users.csv:${line}:`);
    expect(msgOf(refused)).toContain(
      'pool "nowhere.contoso.com" is not a pool any endpoint or pools entry names',
    );
    const seen = s.answers.length;
    await until(() => s.answers.length >= seen + 50, 5000, 'answers after the refusal');
    expect(s.answers.filter((a) => a.at > t0).every((a) => a.contact === APAC)).toBe(true);
    const gap = longestGap(s.answers, t0, done);
    expect(gap, `longest gap ${gap.toFixed(0)} ms in ${(done - t0).toFixed(0)} ms`).toBeLessThan(MAX_GAP_MS);
  } finally {
    s.stop();
  }
});
