// The `home` commands as separate processes (dist/, built by `npm run build`): concurrent edits of
// users.csv all land (the lock), a crash between write and rename leaves the old file whole (the
// atomic replace), and the exit codes an operator's script sees.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseUserTable } from '../../src/endpoints/user-table.js';
import { cliProcess } from '../helpers/cli.js';
import { CLI } from '../helpers/serve-process.js';

const run = cliProcess;

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing: [{ users: users.csv }]
pools:
  - fqdn: pc-emea.contoso.com
`;
const USERS = "# operators' notes\r\nSipAddress,PoolFqdn\r\nsip:jane@contoso.com,pc-us.contoso.com\r\n";

let dir: string;
const users = () => readFile(join(dir, 'users.csv'), 'utf8');

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does)`);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-home-proc-'));
  await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\n');
  await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
  await writeFile(join(dir, 'users.csv'), USERS);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('home commands as processes', () => {
  it('concurrent home set from several processes all land; the file keeps its comment and CRLF', async () => {
    const n = 5;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        run(['home', 'set', `sip:user${i}@contoso.com`, '--pool', 'pc-emea.contoso.com', '-c', dir]),
      ),
    );
    for (const r of results) expect(r.code, r.err).toBe(0);
    const text = await users();
    expect(text.startsWith(USERS)).toBe(true);
    expect(
      text
        .split('\r\n')
        .filter((l) => l.startsWith('sip:user'))
        .sort(),
    ).toEqual(Array.from({ length: n }, (_, i) => `sip:user${i}@contoso.com,pc-emea.contoso.com`));
    const parsed = parseUserTable(text);
    expect(parsed.ok && parsed.table.size).toBe(n + 1);
    expect((await readdir(dir)).sort()).toEqual(['endpoints.yaml', 'server.yaml', 'users.csv']);
  });

  it('concurrent home set with no users.csv yet: one process creates it, the others edit it, all land', async () => {
    await rm(join(dir, 'users.csv'));
    const n = 4;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        run(['home', 'set', `sip:user${i}@contoso.com`, '--pool', 'pc-emea.contoso.com', '-c', dir]),
      ),
    );
    for (const r of results) expect(r.code, r.err).toBe(0);
    const text = await users();
    expect(text.startsWith('SipAddress,PoolFqdn\n')).toBe(true);
    const parsed = parseUserTable(text);
    expect(parsed.ok && [...parsed.table.entries()].map(([k]) => k).sort()).toEqual(
      Array.from({ length: n }, (_, i) => `user${i}@contoso.com`),
    );
    // No temp file or lock is left behind.
    expect((await readdir(dir)).sort()).toEqual(['endpoints.yaml', 'server.yaml', 'users.csv']);
  });

  it('a crash between write and rename leaves users.csv whole; the next edit goes through', async () => {
    const set = ['home', 'set', 'sip:jane@contoso.com', '--pool', 'pc-emea.contoso.com', '-c', dir];
    const crashed = await run(set, { PCHAT_TEST_CRASH_BEFORE_RENAME: '1' });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await users()).toBe(USERS);
    // The dead process left its synced temp file and its lock; the lock goes stale and is taken over.
    expect((await readdir(dir)).some((f) => f.endsWith('.tmp'))).toBe(true);
    const next = await run([...set, '--lock-timeout', '15000']);
    expect(next.code, next.err).toBe(0);
    expect(await users()).toBe(USERS.replace('jane@contoso.com,pc-us', 'jane@contoso.com,pc-emea'));
  }, 30_000);

  it('exit codes a script sees: what-if 0 and nothing written, a bad wave 3, an unknown user 4', async () => {
    await writeFile(join(dir, 'wave.csv'), 'SipAddress,PoolFqdn\nsip:jane@contoso.com,pc-emea.contoso.com\n');
    const whatIf = await run(['home', 'import', join(dir, 'wave.csv'), '--what-if', '-c', dir]);
    expect(whatIf.code, whatIf.err).toBe(0);
    expect(whatIf.out).toContain(
      `What if: import wave.csv into ${join(dir, 'users.csv')}: 0 added, 1 moved, 0 unchanged`,
    );
    expect(await users()).toBe(USERS);
    await writeFile(join(dir, 'bad.csv'), 'SipAddress,PoolFqdn\nsip:jane@contoso.com,pc-mars.contoso.com\n');
    const bad = await run(['home', 'import', join(dir, 'bad.csv'), '-c', dir]);
    expect(bad.code).toBe(3);
    expect(bad.err).toContain(`${join(dir, 'bad.csv')}:2:22: pool "pc-mars.contoso.com" is not a pool any`);
    const unknown = await run(['home', 'remove', 'sip:nobody@contoso.com', '-c', dir]);
    expect(unknown.code).toBe(4);
    expect(await users()).toBe(USERS);
  });
});
