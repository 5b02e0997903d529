// The `home` commands run in-process against real files in temp folders: what they print, their exit
// codes, and what lands in users.csv (or does not).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { cliIn } from '../helpers/cli.js';

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    mode: redirect
    homing:
      - callers: "*@emea.contoso.com"
        pool: pc-emea.contoso.com
      - users: users.csv
pools:
  - fqdn: pc-apac.contoso.com
`;
const USERS =
  'DisplayName,SipAddress,PoolFqdn\r\n' +
  '# wave 1 (2026-11-30)\r\n' +
  '"Doe, Jane",sip:jane@contoso.com,pc-us.contoso.com\r\n' +
  '\r\n' +
  'Bob,sip:bob@contoso.com,pc-apac.contoso.com\r\n';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-cli-home-'));
  await writeFile(join(dir, 'server.yaml'), 'listen:\n  - udp://127.0.0.1:0\n');
  await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
  await writeFile(join(dir, 'users.csv'), USERS);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], opts: { interactive?: boolean; answer?: boolean } = {}) =>
  cliIn(args, { ...opts, dir });

const users = () => readFile(join(dir, 'users.csv'), 'utf8');

describe('home get', () => {
  it('lists the rows with their lines; a user or a pool narrows the list; JSON for scripts', async () => {
    const all = await cli(['home', 'get']);
    expect(all.code, all.err).toBe(EXIT.ok);
    expect(all.out).toBe(
      'SipAddress            PoolFqdn             Line\n' +
        '--------------------  -------------------  ----\n' +
        'sip:jane@contoso.com  pc-us.contoso.com    3\n' +
        'sip:bob@contoso.com   pc-apac.contoso.com  5\n',
    );
    const one = await cli(['home', 'get', 'BOB@contoso.com', '--json']);
    expect(JSON.parse(one.out)).toEqual([
      { sipAddress: 'sip:bob@contoso.com', poolFqdn: 'pc-apac.contoso.com', line: 5 },
    ]);
    const pool = await cli(['home', 'get', '--pool', 'PC-US.contoso.com', '--json']);
    expect(JSON.parse(pool.out)).toEqual([
      { sipAddress: 'sip:jane@contoso.com', poolFqdn: 'pc-us.contoso.com', line: 3 },
    ]);
  });

  it('a user not in the table: exit 4; a malformed one: exit 2', async () => {
    const r = await cli(['home', 'get', 'sip:carol@contoso.com']);
    expect(r.code).toBe(EXIT.notFound);
    expect(r.err).toContain('sip:carol@contoso.com is not in');
    expect((await cli(['home', 'get', 'carol'])).code).toBe(EXIT.usage);
  });

  it('a table the loader refuses: exit 3 with file:line:col', async () => {
    await writeFile(join(dir, 'users.csv'), USERS + 'Eve,sip:eve@contoso.com,pc-nowhere.contoso.com\r\n');
    const r = await cli(['home', 'get']);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toContain(
      `${join(dir, 'users.csv')}:6:25: pool "pc-nowhere.contoso.com" is not a pool any`,
    );
  });
});

describe('home set', () => {
  it('moves a user in place; the rest of the file, CRLF included, is unchanged byte for byte', async () => {
    const r = await cli(['home', 'set', 'sip:jane@contoso.com', '--pool', 'pc-emea.contoso.com']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toBe(
      `move sip:jane@contoso.com from pc-us.contoso.com to pc-emea.contoso.com in ${join(dir, 'users.csv')}\n`,
    );
    expect(await users()).toBe(USERS.replace('jane@contoso.com,pc-us', 'jane@contoso.com,pc-emea'));
  });

  it('adds a new user at the end with --pass-thru; says so when nothing changes', async () => {
    const r = await cli([
      'home',
      'set',
      'sip:carol@contoso.com',
      '--pool',
      'pc-apac.contoso.com',
      '--pass-thru',
    ]);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toContain('add sip:carol@contoso.com on pc-apac.contoso.com in');
    expect(r.out).toContain('sip:carol@contoso.com  pc-apac.contoso.com  6');
    expect(await users()).toBe(USERS + ',sip:carol@contoso.com,pc-apac.contoso.com\r\n');
    const again = await cli(['home', 'set', 'sip:carol@contoso.com', '--pool', 'pc-apac.contoso.com']);
    expect(again.out).toMatch(/^unchanged: sip:carol@contoso\.com is on pc-apac\.contoso\.com already in /);
  });

  it('--what-if prints the change as a diff and writes nothing', async () => {
    const r = await cli(['home', 'set', 'sip:bob@contoso.com', '--pool', 'pc-us.contoso.com', '--what-if']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toContain(
      '- Bob,sip:bob@contoso.com,pc-apac.contoso.com\n+ Bob,sip:bob@contoso.com,pc-us.contoso.com\n',
    );
    expect(await users()).toBe(USERS);
  });

  it('a pool endpoints.yaml does not know: exit 4; a malformed pool or user: exit 2; nothing written', async () => {
    const unknown = await cli(['home', 'set', 'sip:bob@contoso.com', '--pool', 'pc-mars.contoso.com']);
    expect(unknown.code).toBe(EXIT.notFound);
    expect(unknown.err).toContain('names pool pc-mars.contoso.com');
    expect((await cli(['home', 'set', 'sip:bob@contoso.com', '--pool', 'pc_bad'])).code).toBe(EXIT.usage);
    const user = await cli(['home', 'set', 'sip:bob', '--pool', 'pc-us.contoso.com']);
    expect(user.code).toBe(EXIT.usage);
    expect(user.err).toContain('<user>: SipAddress "sip:bob" is not user@domain');
    expect(await users()).toBe(USERS);
  });
});

describe('home remove', () => {
  it('removes the row with its line break; asks first on a terminal; a user not listed: exit 4', async () => {
    const declined = await cli(['home', 'remove', 'sip:bob@contoso.com'], {
      interactive: true,
      answer: false,
    });
    expect(declined.code).toBe(EXIT.declined);
    expect(declined.asked).toEqual([
      `Remove sip:bob@contoso.com (homed on pc-apac.contoso.com) from ${join(dir, 'users.csv')}?`,
    ]);
    expect(await users()).toBe(USERS);
    const r = await cli(['home', 'remove', 'sip:bob@contoso.com']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(await users()).toBe(USERS.replace('Bob,sip:bob@contoso.com,pc-apac.contoso.com\r\n', ''));
    expect((await cli(['home', 'remove', 'sip:bob@contoso.com'])).code).toBe(EXIT.notFound);
  });
});

describe('home import', () => {
  const WAVE =
    'SipAddress,PoolFqdn,Note\n' +
    'sip:jane@contoso.com,pc-emea.contoso.com,moves\n' +
    'sip:bob@contoso.com,PC-APAC.contoso.com,stays\n' +
    'sip:carol@contoso.com,pc-emea.contoso.com,new\n' +
    'sip:dan@contoso.com,pc-emea.contoso.com,new\n';

  it('applies the wave in one edit and summarises the moves per pool', async () => {
    await writeFile(join(dir, 'wave-2.csv'), WAVE);
    const r = await cli(['home', 'import', join(dir, 'wave-2.csv')]);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toBe(
      `import wave-2.csv into ${join(dir, 'users.csv')}: 2 added, 1 moved, 1 unchanged\n` +
        'Change     From               To                   Users\n' +
        '---------  -----------------  -------------------  -----\n' +
        'added      -                  pc-emea.contoso.com  2\n' +
        'moved      pc-us.contoso.com  pc-emea.contoso.com  1\n' +
        'unchanged  -                  pc-apac.contoso.com  1\n',
    );
    expect(await users()).toBe(
      USERS.replace('jane@contoso.com,pc-us', 'jane@contoso.com,pc-emea') +
        ',sip:carol@contoso.com,pc-emea.contoso.com\r\n,sip:dan@contoso.com,pc-emea.contoso.com\r\n',
    );
  });

  it('--what-if prints the summary and writes nothing; --json lists every user', async () => {
    await writeFile(join(dir, 'wave-2.csv'), WAVE);
    const r = await cli(['home', 'import', join(dir, 'wave-2.csv'), '--what-if', '--json']);
    expect(r.code, r.err).toBe(EXIT.ok);
    const summary = JSON.parse(r.out) as Record<string, unknown>;
    expect(summary).toMatchObject({ written: false, added: 2, moved: 1, unchanged: 1 });
    expect(summary['users']).toContainEqual({
      sipAddress: 'sip:jane@contoso.com',
      change: 'moved',
      from: 'pc-us.contoso.com',
      poolFqdn: 'pc-emea.contoso.com',
    });
    expect(await users()).toBe(USERS);
  });

  it('a bad wave is refused at its own file:line, users.csv left unchanged (exit 3)', async () => {
    await writeFile(
      join(dir, 'wave-3.csv'),
      'SipAddress,PoolFqdn\nsip:x@contoso.com,pc-emea.contoso.com\nsip:y@contoso.com,pc-mars.contoso.com\nsip:X@contoso.com,pc-us.contoso.com\n',
    );
    const r = await cli(['home', 'import', join(dir, 'wave-3.csv')]);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toContain(`${join(dir, 'wave-3.csv')}:3:19: pool "pc-mars.contoso.com" is not a pool any`);
    expect(r.err).toContain(
      `${join(dir, 'wave-3.csv')}:4:1: sip:X@contoso.com is listed twice (first at line 2)`,
    );
    expect(await users()).toBe(USERS);
    expect((await cli(['home', 'import', join(dir, 'missing.csv')])).code).toBe(EXIT.failure);
  });
});

describe('which user table', () => {
  it('several named: exit 5 unless --file or --endpoint picks one', async () => {
    const second =
      '  - sipAddress: sip:chat@fabrikam.com\n    poolFqdn: pc-us.contoso.com\n    homing: [{ users: fabrikam.csv }]\n';
    await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS.replace('pools:', `${second}pools:`));
    await writeFile(
      join(dir, 'fabrikam.csv'),
      'SipAddress,PoolFqdn\nsip:ann@fabrikam.com,pc-apac.contoso.com\n',
    );
    const ambiguous = await cli(['home', 'get']);
    expect(ambiguous.code).toBe(EXIT.conflict);
    expect(ambiguous.err).toContain('choose one with --file');
    const byFile = await cli(['home', 'get', '--file', 'fabrikam.csv', '--json']);
    expect(JSON.parse(byFile.out)).toEqual([
      { sipAddress: 'sip:ann@fabrikam.com', poolFqdn: 'pc-apac.contoso.com', line: 2 },
    ]);
    const byEndpoint = await cli(['home', 'get', '--endpoint', 'sip:ocschat@contoso.com', '--json']);
    expect((JSON.parse(byEndpoint.out) as unknown[]).length).toBe(2);
    expect((await cli(['home', 'get', '--file', 'other.csv'])).code).toBe(EXIT.notFound);
  });

  it('named but not there yet: get and remove exit 4 saying how to make one; set and import create it', async () => {
    await rm(join(dir, 'users.csv'));
    const got = await cli(['home', 'get']);
    expect(got.code).toBe(EXIT.notFound);
    expect(got.err).toContain(
      `${join(dir, 'users.csv')}: file not found: home set and home import create it`,
    );
    expect((await cli(['home', 'remove', 'sip:bob@contoso.com', '--force'])).code).toBe(EXIT.notFound);
    // --what-if plans the new file and writes nothing.
    const planned = await cli([
      'home',
      'set',
      'sip:bob@contoso.com',
      '--pool',
      'pc-us.contoso.com',
      '--what-if',
    ]);
    expect(planned.code, planned.err).toBe(EXIT.ok);
    await expect(users()).rejects.toThrow(/ENOENT/);
    const set = await cli(['home', 'set', 'sip:bob@contoso.com', '--pool', 'pc-us.contoso.com']);
    expect(set.code, set.err).toBe(EXIT.ok);
    expect(await users()).toBe('SipAddress,PoolFqdn\nsip:bob@contoso.com,pc-us.contoso.com\n');
    // A pool nobody knows is refused before anything is created.
    await rm(join(dir, 'users.csv'));
    const refused = await cli(['home', 'set', 'sip:bob@contoso.com', '--pool', 'nowhere.contoso.com']);
    expect(refused.code).not.toBe(EXIT.ok);
    await expect(users()).rejects.toThrow(/ENOENT/);
    await writeFile(join(dir, 'wave.csv'), 'SipAddress,PoolFqdn\nsip:ann@contoso.com,pc-apac.contoso.com\n');
    const imported = await cli(['home', 'import', join(dir, 'wave.csv')]);
    expect(imported.code, imported.err).toBe(EXIT.ok);
    expect(await users()).toBe('SipAddress,PoolFqdn\nsip:ann@contoso.com,pc-apac.contoso.com\n');
  });

  it('none named: exit 4, saying how to name one', async () => {
    await writeFile(
      join(dir, 'endpoints.yaml'),
      'endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: p.contoso.com\n',
    );
    const r = await cli(['home', 'get']);
    expect(r.code).toBe(EXIT.notFound);
    expect(r.err).toContain('homing: [{ users: users.csv }]');
  });
});
