// The homing user table (src/endpoints/user-table.ts): CSV rows of SipAddress,PoolFqdn, validated
// with the line and column of each problem, looked up by caller.
import { describe, expect, it } from 'vitest';
import { callerKey, parseUserTable, userKey, UserTable } from '../../src/endpoints/user-table.js';

function table(text: string, known?: string[]): UserTable {
  const r = parseUserTable(text, known === undefined ? {} : { knownPool: (p) => known.includes(p) });
  if (!r.ok) expect.fail(JSON.stringify(r.issues));
  return r.table;
}

function issues(text: string, known?: string[]): string[] {
  const r = parseUserTable(text, known === undefined ? {} : { knownPool: (p) => known.includes(p) });
  if (r.ok) expect.fail('the table was accepted');
  return r.issues.map((i) => `${i.line}:${i.column}: ${i.reason}`);
}

describe('user table: accepted', () => {
  it('rows in any column order, other columns ignored, comments and empty lines skipped, quoted fields', () => {
    const t = table(
      '\uFEFFDisplayName,PoolFqdn,SipAddress\r\n' +
        '# wave 1: EMEA\r\n' +
        '"Doe, Jane",pc-emea.contoso.com,sip:Jane.Doe@Contoso.com\r\n' +
        '\r\n' +
        '"He said ""hi""",pc-us.contoso.com,bob@contoso.com\n',
    );
    expect(t.size).toBe(2);
    expect(t.poolOf('sip:jane.doe@contoso.com')).toBe('pc-emea.contoso.com');
    expect(t.poolOf('<sip:JANE.DOE@CONTOSO.COM;transport=tls>')).toBe('pc-emea.contoso.com');
    expect(t.poolOf('sip:bob@contoso.com')).toBe('pc-us.contoso.com');
    expect(t.poolOf('sip:carol@contoso.com')).toBeUndefined();
    expect(t.poolOf('not an address')).toBeUndefined();
    expect([...t.entries()]).toEqual([
      ['jane.doe@contoso.com', 'pc-emea.contoso.com'],
      ['bob@contoso.com', 'pc-us.contoso.com'],
    ]);
  });

  it('two spellings of one pool are one pool; the first spelling is kept', () => {
    const t = table('SipAddress,PoolFqdn\na@contoso.com,PC.contoso.com\nb@contoso.com,pc.contoso.com.\n');
    expect(t.pools).toEqual(['PC.contoso.com']);
    expect(t.poolOf('b@contoso.com')).toBe('PC.contoso.com');
    // By a caller's key (userKey, made once per request): the pool as homing compares it.
    expect(t.poolKeyOf(userKey('sip:B@Contoso.com')!)).toBe('pc.contoso.com');
    expect(t.poolKeyOf('c@contoso.com')).toBeUndefined();
  });

  it('many rows: every one found, in O(1) each (no probe chain grows with the table)', () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `u${i}@contoso.com,p${i % 7}.contoso.com`);
    const t = table(`SipAddress,PoolFqdn\n${rows.join('\n')}\n`);
    expect(t.size).toBe(20_000);
    for (let i = 0; i < 20_000; i += 997)
      expect(t.poolOf(`sip:u${i}@contoso.com`)).toBe(`p${i % 7}.contoso.com`);
    expect(t.poolOf('sip:u20000@contoso.com')).toBeUndefined();
  });

  it('lines ended by a lone CR (classic Mac): every row read with its pool, the parse ends', () => {
    // Regression: rows were counted by LF only, so such a file overran the builder's arrays (pools
    // lost) and, past 16 rows, filled its hash table, whose probe for the next row never ended.
    // 12 rows: without the fix this fails (pools lost) rather than hangs.
    const rows = Array.from({ length: 12 }, (_, i) => `u${i}@contoso.com,p${i % 3}.contoso.com`);
    const t = table(`SipAddress,PoolFqdn\r${rows.join('\r')}\r`);
    expect(t.size).toBe(12);
    for (let i = 0; i < 12; i++) expect(t.poolOf(`u${i}@contoso.com`)).toBe(`p${i % 3}.contoso.com`);
  });

  it('a comment ends at a lone CR too, and a byte order mark before a first-line comment is no header', () => {
    // Regression: a "#" comment ran to the next LF, so in a lone-CR file it swallowed every row after
    // it; and a file starting BOM + "#" took the comment line for its header.
    const mac = table(
      'SipAddress,PoolFqdn\r# wave 1\ru1@contoso.com,p1.contoso.com\ru2@contoso.com,p2.contoso.com\r',
    );
    expect([...mac.entries()]).toEqual([
      ['u1@contoso.com', 'p1.contoso.com'],
      ['u2@contoso.com', 'p2.contoso.com'],
    ]);
    const excel = table(
      '\uFEFF# exported 2026-12-07\r\nSipAddress,PoolFqdn\r\nu1@contoso.com,p1.contoso.com\r\n',
    );
    expect([...excel.entries()]).toEqual([['u1@contoso.com', 'p1.contoso.com']]);
  });

  it('after a quoted field that is not closed, the rows below keep their own line numbers', () => {
    // Regression: the quote's line breaks (to the end of the file) were counted before it was found
    // unclosed, so every later issue named a line too far down.
    const r = parseUserTable(
      'SipAddress,PoolFqdn\n"a@c.com,p.c.com\nb@c.com,p.c.com\nbad,p.c.com\nc@c.com,p.c.com\n',
    );
    expect(r.ok ? [] : r.issues.map((i) => [i.line, i.reason.slice(0, 30)])).toEqual([
      [2, 'a quoted field is not closed'],
      [4, 'SipAddress "bad" is not user@d'],
    ]);
  });

  it('userKey: scheme, brackets and parameters dropped, user part and domain compared without case', () => {
    expect(userKey('<sip:Alice@Contoso.COM.;transport=tls>')).toBe('alice@contoso.com');
    expect(userKey('alice')).toBeUndefined();
    expect(userKey('sip:@contoso.com')).toBeUndefined();
  });
});

describe('user table: refused, at line:column', () => {
  it('a bad address, a bad pool, an unknown pool, a duplicate user, a short row: all reported', () => {
    expect(
      issues(
        'SipAddress,PoolFqdn\n' +
          'alice@contoso.com,pc.contoso.com\n' +
          'not-an-address,pc.contoso.com\n' +
          'bob@10.0.0.1,pc.contoso.com\n' +
          'carol@contoso.com,pc_bad\n' +
          'dave@contoso.com,elsewhere.contoso.com\n' +
          'sip:ALICE@contoso.com,pc.contoso.com\n' +
          'erin@contoso.com\n',
        ['pc.contoso.com'],
      ),
    ).toEqual([
      '3:1: SipAddress "not-an-address" is not user@domain (e.g. sip:alice@contoso.com)',
      '4:1: SipAddress "bob@10.0.0.1": its domain is an IP address, expected a domain name',
      '5:19: PoolFqdn "pc_bad" is not fully qualified (expected at least two labels, e.g. contoso.com)',
      '6:18: pool "elsewhere.contoso.com" is not a pool any endpoint or pools entry names',
      '7:1: sip:ALICE@contoso.com is listed twice (first at line 2)',
      '8:1: expected 2 columns as the header has, got 1',
    ]);
  });

  it('a file that is not CSV: no header naming the columns, NUL bytes, an unclosed quote, nothing at all', () => {
    expect(issues('endpoints:\n  - sipAddress: sip:x@contoso.com\n')).toEqual([
      '1:1: expected a header row naming SipAddress and PoolFqdn, got "endpoints:"',
    ]);
    expect(issues('SipAddress,PoolFqdn\n\0\0\0')).toEqual(['1:1: is not text (it holds NUL bytes)']);
    expect(issues('SipAddress,PoolFqdn\n"a@contoso.com,pc.contoso.com\n')).toEqual([
      '2:1: a quoted field is not closed',
    ]);
    expect(issues('# only a comment\n')).toEqual([
      '1:1: is empty: expected a header row "SipAddress,PoolFqdn"',
    ]);
  });

  it('stops after maxIssues problems', () => {
    const bad = Array.from({ length: 100 }, () => 'x,y').join('\n');
    const r = parseUserTable(`SipAddress,PoolFqdn\n${bad}\n`, { maxIssues: 5 });
    expect(r.ok ? [] : r.issues).toHaveLength(5);
  });
});

describe('user table: parts, as a worker thread posts them', () => {
  it('a table put together from another thread’s parts answers as the one parsed', () => {
    const rows = Array.from({ length: 500 }, (_, i) => `sip:u${i}@contoso.com,pc-${i % 3}.contoso.com`);
    const parsed = table(`SipAddress,PoolFqdn\n${rows.join('\n')}\n`);
    // The round trip of a real post: the typed arrays' buffers transferred, the rest cloned.
    const parts = structuredClone(parsed.parts(), {
      transfer: [
        parsed.parts().keys.buffer,
        parsed.parts().starts.buffer,
        parsed.parts().slots.buffer,
        parsed.parts().poolOfRow.buffer,
      ] as ArrayBuffer[],
    });
    const rebuilt = UserTable.fromParts(parts);
    expect(rebuilt.size).toBe(500);
    expect(rebuilt.poolOf('sip:U7@contoso.com')).toBe('pc-1.contoso.com');
    expect(rebuilt.poolOf('sip:u499@contoso.com')).toBe('pc-1.contoso.com');
    expect(rebuilt.poolOf('sip:u500@contoso.com')).toBeUndefined();
    expect([...rebuilt.entries()].slice(0, 2)).toEqual([
      ['u0@contoso.com', 'pc-0.contoso.com'],
      ['u1@contoso.com', 'pc-1.contoso.com'],
    ]);
  });

  it('parts that do not fit together are refused', () => {
    const p = table('SipAddress,PoolFqdn\nsip:a@contoso.com,pc.contoso.com\n').parts();
    const longer = new Uint8Array([...p.keys, 0x78]);
    expect(() => UserTable.fromParts({ ...p, keys: longer })).toThrow(/parts that do not make a table/);
    expect(() => UserTable.fromParts({ ...p, poolOfRow: new Uint16Array(2) })).toThrow(/do not make a table/);
    expect(() => UserTable.fromParts({ ...p, slots: new Int32Array(3) })).toThrow(/do not make a table/);
  });
});

describe('user table: a caller looked up straight off the From value', () => {
  const t = table(
    'SipAddress,PoolFqdn\n' +
      'sip:kelly@contoso.com,pc-k.contoso.com\n' +
      'sip:Alice@Contoso.com,pc-a.contoso.com\n' +
      'sip:bob@emea.contoso.com,pc-b.contoso.com\n' +
      'sip:a%41b@contoso.com,pc-e.contoso.com\n',
  );
  // Each as From or P-Asserted-Identity values come: display names, brackets, schemes in any case,
  // parameters and headers, white space, a trailing dot, and characters beyond ASCII.
  const values = [
    'sip:alice@contoso.com',
    '"Alice" <sip:ALICE@CONTOSO.COM>;tag=1a2b',
    'Alice <SIPS:alice@contoso.com.;transport=tls>;tag=x',
    ' \t<sip:alice@contoso.com?subject=hi> ',
    '<alice@contoso.com>',
    'alice@contoso.com;tag=9',
    'sip:alice@contoso.com.',
    'sipx:alice@contoso.com',
    'si:alice@contoso.com',
    'tel:alice@contoso.com',
    'sip:sip:alice@contoso.com',
    '<<sip:alice@contoso.com>>',
    '<sip:alice@contoso.com',
    'sip:alice@',
    'sip:@contoso.com',
    '@contoso.com',
    'sip:x@alice@contoso.com',
    '',
    '   ',
    '<>',
    'sip:bob@EMEA.Contoso.Com',
    'sip:A%41B@contoso.com',
    'sip:\u212Aelly@contoso.com', // KELVIN SIGN: lower case is "k", a row
    '\u00A0sip:kelly@contoso.com\u3000', // white space trim() knows, beyond ASCII
    '"Ünal" <sip:kelly@contoso.com>',
    'sip:kelly@contoso.com\u00A0;tag=1',
    'sip:kélly@contoso.com',
    'sip:kelly@contoso.com\u212A',
  ];

  it.each(values)('%j: the pool poolKeyOf(callerKey(value)) gives', (value) => {
    const key = callerKey(value);
    const expected = key === undefined ? undefined : t.poolKeyOf(key);
    expect(t.poolKeyOfCaller(value)).toBe(expected);
  });

  it('the values above do reach rows, through every way of writing them', () => {
    // The first seven spell alice, then bob, a%41b, and three for kelly beyond ASCII.
    const found = values.filter((v) => t.poolKeyOfCaller(v) !== undefined);
    expect(found).toEqual([...values.slice(0, 7), ...values.slice(20, 25)]);
    expect(t.poolKeyOfCaller('sip:\u212Aelly@contoso.com')).toBe('pc-k.contoso.com');
    expect(t.poolKeyOfCaller('"Ünal" <sip:kelly@contoso.com>')).toBe('pc-k.contoso.com');
  });
});

describe('user table: given as bytes, decoded a piece at a time', () => {
  const files = {
    'quoted fields with line breaks and quotes, CRLF, a BOM, comments, characters beyond ASCII':
      '\uFEFFDisplayName,SipAddress,PoolFqdn\r\n# wave 1\r\n' +
      '"Doe,\r\nJane ""JD""",sip:Jane.Doe@Contoso.com,pc-emea.contoso.com\r\n\r\n' +
      '"Ünal Çelik\nsecond line\nthird",sip:unal@contoso.com,pc-us.contoso.com\r\n' +
      'Bob,bob@contoso.com,pc-us.contoso.com',
    'bad rows: a duplicate, a bad address, an unknown pool, too few columns, text after a quote':
      'SipAddress,PoolFqdn\nsip:a@contoso.com,pc-us.contoso.com\n"sip:a@contoso.com",pc-us.contoso.com\n' +
      'sip:x y@contoso.com,pc-us.contoso.com\nsip:b@contoso.com,nowhere.contoso.com\nsip:c@contoso.com\n' +
      '"sip:d@contoso.com"x,pc-us.contoso.com\n',
    'a quoted field never closed, over many lines':
      'SipAddress,PoolFqdn,Note\nsip:a@contoso.com,pc-us.contoso.com,"open\n' +
      'sip:b@contoso.com,pc-us.contoso.com\n'.repeat(20),
    'lines ended by a lone CR':
      'SipAddress,PoolFqdn\rsip:a@contoso.com,pc-us.contoso.com\rsip:b@contoso.com,pc-emea.contoso.com\r',
    'no header': '\n\n# nothing\n',
  };
  const known = ['pc-us.contoso.com', 'pc-emea.contoso.com'];
  const knownPool = (p: string): boolean => known.includes(p);
  const outcome = (r: ReturnType<typeof parseUserTable>): unknown =>
    r.ok ? [...r.table.entries()] : r.issues;

  it.each(Object.entries(files))('%s: as the text gives, for every piece size', (_, text) => {
    const fromText = outcome(parseUserTable(text, { knownPool }));
    for (const pieceBytes of [1, 2, 3, 7, 16, 64, 1 << 16])
      expect(outcome(parseUserTable(Buffer.from(text), { knownPool, pieceBytes }))).toEqual(fromText);
  });

  it('the files above are read (rows found) or refused (issues) as written', () => {
    const first = parseUserTable(Buffer.from(Object.values(files)[0]!), { knownPool, pieceBytes: 5 });
    if (!first.ok) expect.fail(JSON.stringify(first.issues));
    expect(first.table.size).toBe(3);
    expect(first.table.poolOf('sip:unal@contoso.com')).toBe('pc-us.contoso.com');
    const bad = parseUserTable(Buffer.from(Object.values(files)[1]!), { knownPool, pieceBytes: 5 });
    expect(bad.ok ? [] : bad.issues.map((i) => `${i.line}:${i.column}`)).toEqual([
      '3:1',
      '4:1',
      '5:19',
      '6:1',
      '7:20',
    ]);
  });

  it('a NUL byte: refused as not text', () => {
    const r = parseUserTable(Buffer.from('SipAddress,PoolFqdn\n\0\n'));
    expect(r.ok ? [] : r.issues.map((i) => i.reason)).toEqual(['is not text (it holds NUL bytes)']);
  });
});
