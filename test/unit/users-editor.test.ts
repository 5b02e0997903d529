// Edits of the homing user table (src/config/users-editor.ts): a change touches its own row only,
// every other byte (comments, blank lines, header, other columns, quoting, CRLF) stays; the result is
// checked as a load checks it (file:line and the reason) before anything is written, under the lock.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockTimeoutError, withFileLock } from '../../src/config/atomic-file.js';
import { EditError } from '../../src/config/endpoints-editor.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import {
  chooseUserTable,
  csvCell,
  editUsersFile,
  homeUsers,
  readHomingContext,
  removeUser,
  scanUsers,
  type HomingContext,
} from '../../src/config/users-editor.js';
import { parseUserTable } from '../../src/endpoints/user-table.js';

const CRLF_TABLE =
  '\uFEFFDisplayName,PoolFqdn,SipAddress\r\n' +
  '# Migration plan, wave 1 (exported from Get-CsUser)\r\n' +
  '"Doe, Jane",  pc-us.contoso.com ,sip:jane@contoso.com\r\n' +
  '\r\n' +
  '# EMEA\r\n' +
  'Bob,"pc-emea.contoso.com",sip:Bob@contoso.com\r\n';

describe('homeUsers and removeUser: edits in place', () => {
  it('moves a user by rewriting their PoolFqdn cell only; every other byte stays, CRLF included', () => {
    const doc = scanUsers(CRLF_TABLE);
    const { text, changes } = homeUsers(doc, [
      { address: 'sip:JANE@contoso.com', pool: 'pc-emea.contoso.com' },
    ]);
    expect(changes).toEqual([
      {
        kind: 'moved',
        address: 'sip:jane@contoso.com',
        from: 'pc-us.contoso.com',
        to: 'pc-emea.contoso.com',
      },
    ]);
    expect(text).toBe(
      CRLF_TABLE.replace('"Doe, Jane",  pc-us.contoso.com ,', '"Doe, Jane",pc-emea.contoso.com,'),
    );
  });

  it('appends a new user with the CRLF and the columns of the file; the rest unchanged', () => {
    const { text, changes } = homeUsers(scanUsers(CRLF_TABLE), [
      { address: 'sip:carol@contoso.com', pool: 'pc-us.contoso.com' },
    ]);
    expect(changes).toEqual([{ kind: 'added', address: 'sip:carol@contoso.com', to: 'pc-us.contoso.com' }]);
    expect(text).toBe(CRLF_TABLE + ',pc-us.contoso.com,sip:carol@contoso.com\r\n');
    const parsed = parseUserTable(text);
    expect(parsed.ok && parsed.table.poolOf('sip:carol@contoso.com')).toBe('pc-us.contoso.com');
  });

  it('leaves a user homed on the pool already (in any spelling of it) alone', () => {
    const doc = scanUsers(CRLF_TABLE);
    const { text, changes } = homeUsers(doc, [{ address: 'bob@CONTOSO.com', pool: 'PC-EMEA.contoso.com.' }]);
    expect(text).toBe(CRLF_TABLE);
    expect(changes).toEqual([
      { kind: 'unchanged', address: 'sip:Bob@contoso.com', to: 'pc-emea.contoso.com' },
    ]);
  });

  it("a last line without a line break gets one of the file's kind before the new row", () => {
    const { text } = homeUsers(scanUsers('SipAddress,PoolFqdn\r\na@contoso.com,p.contoso.com'), [
      { address: 'b@contoso.com', pool: 'p.contoso.com' },
    ]);
    expect(text).toBe(
      'SipAddress,PoolFqdn\r\na@contoso.com,p.contoso.com\r\nb@contoso.com,p.contoso.com\r\n',
    );
  });

  it('a file with no record yet gets the header before its first row, after its comments', () => {
    const { text } = homeUsers(scanUsers('# wave 1\n'), [
      { address: 'a@contoso.com', pool: 'p.contoso.com' },
    ]);
    expect(text).toBe('# wave 1\nSipAddress,PoolFqdn\na@contoso.com,p.contoso.com\n');
    expect(homeUsers(scanUsers(''), [{ address: 'a@contoso.com', pool: 'p.contoso.com' }]).text).toBe(
      'SipAddress,PoolFqdn\na@contoso.com,p.contoso.com\n',
    );
  });

  it('a whole wave: moves, additions and unchanged rows in one pass, rows kept in their places', () => {
    const before = 'SipAddress,PoolFqdn\n# wave 0\na@c.com,p1.c.com\nb@c.com,p1.c.com\nc@c.com,p2.c.com\n';
    const { text, changes } = homeUsers(scanUsers(before), [
      { address: 'c@c.com', pool: 'p1.c.com' },
      { address: 'a@c.com', pool: 'p2.c.com' },
      { address: 'b@c.com', pool: 'p1.c.com' },
      { address: 'd@c.com', pool: 'p2.c.com' },
    ]);
    expect(text).toBe(
      'SipAddress,PoolFqdn\n# wave 0\na@c.com,p2.c.com\nb@c.com,p1.c.com\nc@c.com,p1.c.com\nd@c.com,p2.c.com\n',
    );
    expect(changes.map((c) => c.kind)).toEqual(['moved', 'moved', 'unchanged', 'added']);
  });

  it('removes a row with its line break; the comment above it and the rows around it stay', () => {
    const removed = removeUser(scanUsers(CRLF_TABLE), 'sip:bob@contoso.com');
    expect(removed?.row.line).toBe(6);
    expect(removed?.text).toBe(CRLF_TABLE.replace('Bob,"pc-emea.contoso.com",sip:Bob@contoso.com\r\n', ''));
    expect(removeUser(scanUsers(CRLF_TABLE), 'sip:nobody@contoso.com')).toBeUndefined();
    expect(
      removeUser(scanUsers('SipAddress,PoolFqdn\na@c.com,p.c.com\nb@c.com,p.c.com'), 'b@c.com')?.text,
    ).toBe('SipAddress,PoolFqdn\na@c.com,p.c.com\n');
  });

  it('quotes a cell that would otherwise end the cell or the row, or read as a comment', () => {
    expect(csvCell('sip:a,b@contoso.com')).toBe('"sip:a,b@contoso.com"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('#x')).toBe('"#x"');
    expect(csvCell('sip:a@contoso.com')).toBe('sip:a@contoso.com');
    const { text } = homeUsers(scanUsers('SipAddress,PoolFqdn\n'), [
      { address: 'sip:a,b@contoso.com', pool: 'p.c.com' },
    ]);
    const parsed = parseUserTable(text);
    expect(parsed.ok && parsed.table.poolOf('sip:a,b@contoso.com')).toBe('p.c.com');
  });
});

describe('scanUsers reads the rows the loader reads', () => {
  // The editor reads rows with their offsets through the loader's own reader: scanUsers and the loader
  // must agree on the rows and their lines.
  // Lines as operators and exports write them: rows with quoted, padded and multi-line cells, comments,
  // blank lines, and now and then a line that is not CSV at all.
  const cell = (values: string[]) =>
    fc
      .constantFrom(...values)
      .chain((v) => (v.includes(',') ? fc.constant(`"${v}"`) : fc.constantFrom(v, ` ${v} `, `"${v}"`)));
  const extra = fc.constantFrom('', ',z', ',"two\nlines"', ',"a ""q"""');
  const line = (n: number) =>
    fc.oneof(
      fc
        .tuple(
          cell([`sip:u${n}@c.com`, `U${n}@c.com`, `sip:u${n},x@c.com`]),
          cell(['p1.c.com', 'P2.c.com.']),
          extra,
        )
        .map(([a, p, rest]) => `${a},${p}${rest}`),
      fc.constantFrom('# comment, with "quotes"', '', '"unclosed', 'x"y,z'),
    );
  const table = fc
    .tuple(fc.uniqueArray(fc.nat(1000), { maxLength: 12 }), fc.constantFrom('\n', '\r\n', '\r'), fc.boolean())
    .chain(([ids, br, last]) =>
      fc
        .tuple(...ids.map((n) => line(n)))
        .map((lines) => `SipAddress,PoolFqdn${br}${lines.join(br)}${last ? br : ''}`),
    );

  it('for any text the loader accepts, the same users on the same pools, each at the line the loader sees', () => {
    let accepted = 0;
    fc.assert(
      fc.property(table, (text) => {
        const parsed = parseUserTable(text);
        if (!parsed.ok) return;
        accepted++;
        const rows = scanUsers(text).rows;
        const again = parseUserTable(
          'SipAddress,PoolFqdn\n' + rows.map((r) => `${csvCell(r.address)},${csvCell(r.pool)}`).join('\n'),
        );
        expect(again.ok && [...again.table.entries()]).toEqual([...parsed.table.entries()]);
        // Each row listed again at the end is reported by the loader as first at the line scanUsers gives.
        // (After an LF, so the listed row starts a line of its own.)
        for (const r of rows) {
          const dup = parseUserTable(`${text}\n${csvCell(r.address)},p1.c.com\n`);
          expect(dup.ok ? undefined : dup.issues[0]!.reason).toMatch(
            new RegExp(`first at line ${r.line}\\)$`),
          );
        }
      }),
      { numRuns: 1500 },
    );
    // Not a vacuous property: a good share of the generated tables are accepted.
    expect(accepted).toBeGreaterThan(300);
  });

  it('gives each row the line the loader reports it at', () => {
    const text =
      'SipAddress,PoolFqdn,Note\n# c\na@c.com,p.c.com,"two\r\nlines"\n\nb@c.com,p.c.com,x\nB@c.com,p.c.com,\n';
    const parsed = parseUserTable(text);
    expect(parsed.ok ? [] : parsed.issues.map((i) => i.line)).toEqual([7]);
    expect(scanUsers(text).rows.map((r) => r.line)).toEqual([3, 6, 7]);
  });
});

describe('editUsersFile: checked, atomic, locked', () => {
  let dir: string;
  let ctx: HomingContext;
  const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    homing: [{ users: users.csv }]
pools:
  - fqdn: pc-emea.contoso.com
`;
  const USERS = '# homed users\nSipAddress,PoolFqdn\nsip:jane@contoso.com,pc-us.contoso.com\n';

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-users-'));
    await writeFile(join(dir, 'server.yaml'), 'config:\n  maxUserTableSize: 4096\n');
    await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
    await writeFile(join(dir, 'users.csv'), USERS);
    ctx = await readHomingContext(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const file = () => join(dir, 'users.csv');
  const opts = { whatIf: false, lockTimeoutMs: 2000 };
  const wave = (rows: [string, string][]) => (doc: Parameters<typeof homeUsers>[0]) => ({
    ...homeUsers(
      doc,
      rows.map(([address, pool]) => ({ address, pool })),
    ),
    summary: 'wave',
  });

  it('writes the edit, and nothing but the file is left in the folder', async () => {
    const r = await editUsersFile(ctx, file(), opts, wave([['sip:jane@contoso.com', 'pc-emea.contoso.com']]));
    expect(r.written).toBe(true);
    expect(await readFile(file(), 'utf8')).toBe(USERS.replace('pc-us', 'pc-emea'));
    expect((await readdir(dir)).sort()).toEqual(['endpoints.yaml', 'server.yaml', 'users.csv']);
  });

  it('what-if writes nothing', async () => {
    const r = await editUsersFile(
      ctx,
      file(),
      { ...opts, whatIf: true },
      wave([['sip:bob@contoso.com', 'pc-us.contoso.com']]),
    );
    expect(r.written).toBe(false);
    expect(r.text).toContain('sip:bob@contoso.com,pc-us.contoso.com\n');
    expect(await readFile(file(), 'utf8')).toBe(USERS);
  });

  async function refusal(rows: [string, string][]): Promise<string[]> {
    const err = await editUsersFile(ctx, file(), opts, wave(rows)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(await readFile(file(), 'utf8')).toBe(USERS);
    return (err as ConfigError).message.split('\n');
  }

  it('refuses a pool no endpoint or pools entry knows, at file:line:col, and writes nothing', async () => {
    expect(await refusal([['sip:bob@contoso.com', 'pc-apac.contoso.com']])).toEqual([
      `${file()}:4:21: pool "pc-apac.contoso.com" is not a pool any endpoint or pools entry names`,
    ]);
  });

  it('refuses a malformed address at file:line:col, and writes nothing', async () => {
    expect(await refusal([['sip:bob', 'pc-us.contoso.com']])).toEqual([
      `${file()}:4:1: SipAddress "sip:bob" is not user@domain (e.g. sip:alice@contoso.com)`,
    ]);
  });

  it('refuses a result over config.maxUserTableSize, and writes nothing', async () => {
    const many = Array.from({ length: 200 }, (_, i): [string, string] => [
      `sip:user${i}@contoso.com`,
      'pc-us.contoso.com',
    ]);
    const [message] = await refusal(many);
    expect(message).toMatch(
      /users\.csv: would be \d+ bytes, over the limit of 4096 bytes \(config\.maxUserTableSize\)$/,
    );
  });

  it('refuses a table already over config.maxUserTableSize without reading it, and writes nothing', async () => {
    const big = USERS + '#'.repeat(5000) + '\n';
    await writeFile(file(), big);
    const err = await editUsersFile(ctx, file(), opts, wave([])).catch((e: unknown) => e);
    expect((err as ConfigError).message).toBe(
      `${file()}: is ${Buffer.byteLength(big)} bytes, over the limit of 4096 bytes (config.maxUserTableSize): not read`,
    );
    expect(await readFile(file(), 'utf8')).toBe(big);
  });

  it('refuses a duplicate already in the file; removing the user (both rows) is allowed', async () => {
    await writeFile(file(), USERS + 'sip:Jane@contoso.com,pc-emea.contoso.com\n');
    const err = await editUsersFile(
      ctx,
      file(),
      opts,
      wave([['sip:bob@contoso.com', 'pc-us.contoso.com']]),
    ).catch((e: unknown) => e);
    expect((err as ConfigError).message).toBe(
      `${file()}:4:1: sip:Jane@contoso.com is listed twice (first at line 3)`,
    );
    const fixed = await editUsersFile(ctx, file(), opts, (doc) => ({
      text: removeUser(doc, 'sip:jane@contoso.com')!.text,
      summary: 'remove',
    }));
    expect(fixed.written).toBe(true);
    expect(await readFile(file(), 'utf8')).toBe('# homed users\nSipAddress,PoolFqdn\n');
  });

  it('edits a lone-CR file with a comment in it: the comment ends at its CR, the row lands after it', async () => {
    const text = 'SipAddress,PoolFqdn\rsip:jane@contoso.com,pc-us.contoso.com\r# wave 2 below\r';
    await writeFile(file(), text);
    const done = await editUsersFile(ctx, file(), opts, wave([['sip:bob@contoso.com', 'pc-us.contoso.com']]));
    expect(done.written).toBe(true);
    expect(await readFile(file(), 'utf8')).toBe(`${text}sip:bob@contoso.com,pc-us.contoso.com\r`);
  });

  it('refuses an edit that would not read back as meant, and writes nothing', async () => {
    // The guard against any difference between how the edit and the loader read a file: a plan
    // that says it homes bob, with a text that does not.
    const text = 'SipAddress,PoolFqdn\nsip:jane@contoso.com,pc-us.contoso.com\n';
    await writeFile(file(), text);
    const err = await editUsersFile(ctx, file(), opts, () => ({
      text: `${text}# sip:bob@contoso.com,pc-us.contoso.com\n`,
      summary: 'wave',
      homed: [{ address: 'sip:bob@contoso.com', pool: 'pc-us.contoso.com' }],
    })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EditError);
    expect((err as EditError).message).toContain('would not read back as meant for sip:bob@contoso.com');
    expect(await readFile(file(), 'utf8')).toBe(text);
  });

  it('waits for the lock another edit holds, and gives up after lockTimeoutMs', async () => {
    await withFileLock(file(), 1000, async () => {
      const err = await editUsersFile(ctx, file(), { ...opts, lockTimeoutMs: 200 }, wave([])).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LockTimeoutError);
    });
    expect(
      (await editUsersFile(ctx, file(), opts, wave([['a@contoso.com', 'pc-us.contoso.com']]))).written,
    ).toBe(true);
  });
});

describe('chooseUserTable', () => {
  const cfg = (yaml: string) => parseEndpointsConfig(yaml, 'endpoints.yaml');
  const two = cfg(`endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pc-us.contoso.com
    homing: [{ users: users.csv }]
  - sipAddress: sip:chat@fabrikam.com
    poolFqdn: pc-us.contoso.com
    homing: [{ callers: "*@x.com", pool: pc-x.contoso.com }, { users: fabrikam.csv }]
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pc-us.contoso.com
    homing: [{ users: users.csv }]
`);

  it('the one table endpoints.yaml names', () => {
    const one = cfg(
      'endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: p.contoso.com\n    homing: [{ users: u.csv }]\n',
    );
    expect(chooseUserTable(one, {})).toBe('u.csv');
  });

  it('several: ambiguous unless --file or --endpoint picks one; an unknown one is not found', () => {
    const attempt = (pick: { file?: string; endpoint?: string }) => {
      try {
        return chooseUserTable(two, pick);
      } catch (err) {
        expect(err).toBeInstanceOf(EditError);
        return `${(err as EditError).code}: ${(err as EditError).message}`;
      }
    };
    expect(attempt({})).toBe(
      'PCHAT_ERR_EDIT_CONFLICT: endpoints.yaml names several user tables (users.csv: sip:ocschat@contoso.com, sip:lookup@contoso.com; fabrikam.csv: sip:chat@fabrikam.com): choose one with --file',
    );
    expect(attempt({ file: 'fabrikam.csv' })).toBe('fabrikam.csv');
    expect(attempt({ endpoint: 'sip:LOOKUP@contoso.com' })).toBe('users.csv');
    expect(attempt({ file: 'other.csv' })).toMatch(
      /^PCHAT_ERR_EDIT_NOT_FOUND: no homing rule names the user table other\.csv/,
    );
    expect(attempt({ endpoint: 'sip:nobody@contoso.com' })).toMatch(
      /^PCHAT_ERR_EDIT_NOT_FOUND: no endpoint with address/,
    );
  });

  it('none: says how to name one', () => {
    expect(() =>
      chooseUserTable(
        cfg('endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: p.contoso.com\n'),
        {},
      ),
    ).toThrow(/no endpoint has a user table: add a homing rule to one in endpoints\.yaml/);
  });
});
