// The user table of homing (issue: one well-known address, each user led to their own pool): which
// Persistent Chat pool each user is homed on, read from a CSV file of `SipAddress,PoolFqdn` rows as
// exported from `Get-CsUser` or a migration plan. Pure: text in, a table or the rows' problems out.
//
// The file is RFC 4180 CSV with a header row naming its columns (in any order, names compared
// without case; other columns are ignored, so an export can be used as it is). Lines starting with
// "#" are comments, and empty lines are skipped, so an operator can annotate a migration wave.
// A user is looked up in O(1): one Map from the address's key to the index of its pool.

import { domainNameKey, domainNameProblem } from './domain-name.js';

/** The columns the table reads, by their header names in lower case. */
const ADDRESS_COLUMN = 'sipaddress';
const POOL_COLUMN = 'poolfqdn';

/** One problem in the file, at its line and column (1-based), with the reason. */
export interface UserTableIssue {
  readonly line: number;
  readonly column: number;
  readonly reason: string;
}

export interface UserTableOptions {
  /** Whether a pool (its domainNameKey) is one an endpoint or a pools entry knows. */
  readonly knownPool?: (poolKey: string) => boolean;
  /** Problems reported at most; parsing stops at the next one (a file that is not CSV at all). */
  readonly maxIssues?: number;
  /** Bytes of a file (given as bytes) decoded at a time, about; a row is never split. */
  readonly pieceBytes?: number;
}

/**
 * A file given as bytes is decoded this much at a time: no string of the whole of it is made. Under
 * V8's large-object size (128 KB), so each piece is made young and dies young; larger ones would stay
 * until a full collection, which a load of a million rows may never run.
 */
const PIECE_BYTES = 1 << 16;

/** A table's parts (UserTable.parts), as they cross from one thread to another. */
export interface UserTableParts {
  readonly keys: Uint8Array;
  readonly starts: Uint32Array;
  readonly slots: Int32Array;
  readonly poolOfRow: Uint16Array;
  readonly pools: readonly string[];
}

export type UserTableResult =
  | { readonly ok: true; readonly table: UserTable }
  | { readonly ok: false; readonly issues: readonly UserTableIssue[] };

/**
 * The table, built once and read only. A million users would cost a JavaScript Map one string and
 * one entry each (about 150 MB); here every key is in one byte array, found through an
 * open-addressing table of row numbers (about 36 MB for a million). Keys are ASCII (a row's user part
 * and domain are checked to be), so a byte each; being bytes, they cross from the worker thread that
 * built them transferred, not copied, and no string per row is ever made.
 */
export class UserTable {
  /** Each pool's domainNameKey, by index: what homing compares and leads to. */
  private readonly poolKeys: readonly string[];

  /**
   * @param keys every user's key, one after the other, a byte (ASCII) per character
   * @param starts where each row's key starts in `keys`, and one more entry for the end
   * @param slots the hash table: 0 for an empty slot, else the row's number plus one
   * @param poolOfRow each row's index in `pools`
   * @param pools pool FQDNs as first written, by index
   */
  private constructor(
    private readonly keys: Uint8Array,
    private readonly starts: Uint32Array,
    private readonly slots: Int32Array,
    private readonly poolOfRow: Uint16Array,
    readonly pools: readonly string[],
  ) {
    this.poolKeys = pools.map(domainNameKey);
  }

  static readonly EMPTY = new UserTable(
    new Uint8Array(0),
    new Uint32Array(1),
    new Int32Array(1),
    new Uint16Array(0),
    [],
  );

  /**
   * The table of a builder's rows: its arrays themselves, each on a buffer of its own. They were
   * sized for every line of the file, the keys for all its text; views of the rows' part are kept,
   * not copies: the rest was never written, so never made resident, and a copy would have been
   * (a million rows: 28 MB more at the load's peak).
   */
  static build(b: UserTableBuilder, pools: readonly string[]): UserTable {
    const n = b.rows;
    const keys = b.keys.subarray(0, b.starts[n]);
    return new UserTable(keys, b.starts.subarray(0, n + 1), b.slots, b.poolOfRow.subarray(0, n), pools);
  }

  /**
   * What the table is made of: four typed arrays and the pools, each array on a buffer of its own,
   * so a worker thread that built the table posts them with the buffers transferred, not copied.
   */
  parts(): UserTableParts {
    return {
      keys: this.keys,
      starts: this.starts,
      slots: this.slots,
      poolOfRow: this.poolOfRow,
      pools: this.pools,
    };
  }

  /**
   * The table of `parts` (as parts() gave them, in another thread): no row is read again, so a table
   * of a million rows is back in well under a millisecond. Parts that do not fit together throw.
   */
  static fromParts(p: UserTableParts): UserTable {
    const n = p.starts.length - 1;
    const slots = p.slots.length;
    if (
      n < 0 ||
      p.poolOfRow.length !== n ||
      p.starts[n] !== p.keys.length ||
      slots === 0 ||
      (slots & (slots - 1)) !== 0 ||
      slots < n
    )
      throw new Error('user table: parts that do not make a table');
    return new UserTable(p.keys, p.starts, p.slots, p.poolOfRow, [...p.pools]);
  }

  get size(): number {
    return this.starts.length - 1;
  }

  /**
   * The pool a caller is homed on, or undefined when the table does not list them. `address` is a
   * SIP URI (`sip:alice@contoso.com`, parameters allowed) or a bare `alice@contoso.com`.
   */
  poolOf(address: string): string | undefined {
    const key = userKey(address);
    if (key === undefined) return undefined;
    const row = this.find(key);
    return row < 0 ? undefined : this.pools[this.poolOfRow[row]!];
  }

  /**
   * The pool (its domainNameKey) the user of `key` is homed on, or undefined: for a key already made
   * by userKey (the caller's, once per request), so nothing is parsed again on the request's path.
   */
  poolKeyOf(key: string): string | undefined {
    const row = this.find(key);
    return row < 0 ? undefined : this.poolKeys[this.poolOfRow[row]!];
  }

  /**
   * As poolKeyOf(callerKey(value)) for a From or P-Asserted-Identity value, without making the key:
   * it is hashed and compared straight off `value` (see CallerSpan), as the request's path wants.
   */
  poolKeyOfCaller(value: string): string | undefined {
    const found = callerSpan(value);
    if (found === NO_KEY) return undefined;
    const row = found === SLOW ? this.slowFind(value) : this.findSpan(value);
    return row < 0 ? undefined : this.poolKeys[this.poolOfRow[row]!];
  }

  /** Every row, as `[user key, pool]`. */
  *entries(): IterableIterator<[string, string]> {
    for (let r = 0; r < this.size; r++)
      yield [
        String.fromCharCode(...this.keys.subarray(this.starts[r], this.starts[r + 1])),
        this.pools[this.poolOfRow[r]!]!,
      ];
  }

  /** The row of `key`, or -1. */
  private find(key: string): number {
    const mask = this.slots.length - 1;
    for (let i = hash(key) & mask; ; i = (i + 1) & mask) {
      const v = this.slots[i]!;
      if (v === 0) return -1;
      if (keyIs(this.keys, this.starts, v - 1, key)) return v - 1;
    }
  }

  /** The row of a value that holds characters beyond ASCII: through the key, made as userKey does. */
  private slowFind(value: string): number {
    const key = callerKey(value);
    return key === undefined ? -1 : this.find(key);
  }

  /** The row of the key `span` (just set by callerSpan) describes in `value`, or -1. */
  private findSpan(value: string): number {
    const mask = this.slots.length - 1;
    const keys = this.keys;
    const length = span.end - span.start;
    for (let i = span.hash & mask; ; i = (i + 1) & mask) {
      const v = this.slots[i]!;
      if (v === 0) return -1;
      const start = this.starts[v - 1]!;
      if (this.starts[v]! - start === length && spanIs(value, keys, start)) return v - 1;
    }
  }
}

function keyIs(keys: Uint8Array, starts: Uint32Array, row: number, key: string): boolean {
  const start = starts[row]!;
  if (starts[row + 1]! - start !== key.length) return false;
  for (let k = 0; k < key.length; k++) if (keys[start + k] !== key.charCodeAt(k)) return false;
  return true;
}

/**
 * The rows while the file is read: their keys, pools and lines, and the hash table the finished
 * table keeps (sized for every line of the file, so it is never rebuilt). A duplicate is found in it
 * as the rows come.
 */
class UserTableBuilder {
  rows = 0;
  /** The keys' bytes: a key is no longer than its address, so the text's length always suffices. */
  readonly keys: Uint8Array;
  readonly starts: Uint32Array;
  readonly slots: Int32Array;
  readonly poolOfRow: Uint16Array;
  readonly lineOfRow: Uint32Array;

  constructor(rows: number, textLength: number) {
    this.keys = new Uint8Array(textLength);
    this.starts = new Uint32Array(rows + 1);
    this.slots = new Int32Array(tableSize(rows));
    this.poolOfRow = new Uint16Array(rows);
    this.lineOfRow = new Uint32Array(rows);
  }

  /** Adds a row; when its key is there already, returns that row's line and adds nothing. */
  add(key: string, pool: number, line: number): number | undefined {
    const mask = this.slots.length - 1;
    let i = hash(key) & mask;
    for (let v = this.slots[i]!; v !== 0; v = this.slots[i]!) {
      if (keyIs(this.keys, this.starts, v - 1, key)) return this.lineOfRow[v - 1];
      i = (i + 1) & mask;
    }
    const row = this.rows++;
    const start = this.starts[row]!;
    for (let k = 0; k < key.length; k++) {
      const c = key.charCodeAt(k);
      // addressProblem lets no other character through (USER and the domain labels are ASCII).
      if (c > 0x7f) throw new Error(`user table: a key beyond ASCII (${key})`);
      this.keys[start + k] = c;
    }
    this.starts[row + 1] = start + key.length;
    this.poolOfRow[row] = pool;
    this.lineOfRow[row] = line;
    this.slots[i] = row + 1;
    return undefined;
  }
}

/** Slots for n keys: a power of two at least twice n, so probes stay short. */
function tableSize(n: number): number {
  let size = 16;
  while (size < n * 2) size *= 2;
  return size;
}

/** FNV-1a over the UTF-16 code units of `key`. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < key.length; k++) h = Math.imul(h ^ key.charCodeAt(k), 0x01000193);
  return h >>> 0;
}

/**
 * The caller's key (see userKey) from a From or P-Asserted-Identity value: the URI in angle
 * brackets when there are some (a display name may come first), else the value up to its parameters.
 */
export function callerKey(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const open = value.indexOf('<');
  if (open >= 0) {
    const close = value.indexOf('>', open);
    return close < 0 ? undefined : userKey(value.slice(open + 1, close));
  }
  return userKey(value);
}

/** callerSpan's answers: no key (callerKey gives undefined), the key is `span`, or make the key. */
const NO_KEY = 0;
const SPAN = 1;
const SLOW = 2;

/**
 * Where callerKey's key lies in a value, as callerSpan last found it: it is `value.slice(start, end)`
 * in ASCII lower case (the user part, the "@", the domain without its trailing dot), `hash` its
 * hash(). One object for
 * every request, so looking a caller up allocates nothing.
 */
const span = { start: 0, end: 0, hash: 0 };

/**
 * callerKey without the string: sets `span` and answers SPAN, or NO_KEY where callerKey gives
 * undefined. A key with a character beyond ASCII answers SLOW: lower case and trimming are JavaScript's
 * there (U+212A KELVIN SIGN lowers to "k"), left to callerKey itself.
 */
function callerSpan(v: string): number {
  let b = 0;
  let e = v.length;
  const open = v.indexOf('<');
  if (open >= 0) {
    e = v.indexOf('>', open);
    if (e < 0) return NO_KEY;
    b = open + 1;
  }
  // From here userKey's steps, on v's [b, e): trim (a character beyond ASCII at either end may be
  // white space String.prototype.trim knows), angle brackets, scheme, parameters, the last "@".
  while (b < e && isSpace(v.charCodeAt(b))) b++;
  while (e > b && isSpace(v.charCodeAt(e - 1))) e--;
  if (b < e && (v.charCodeAt(b) > 0x7f || v.charCodeAt(e - 1) > 0x7f)) return SLOW;
  if (e - b >= 2 && v.charCodeAt(b) === 0x3c && v.charCodeAt(e - 1) === 0x3e) {
    b++;
    e--;
  }
  b += schemeLength(v, b, e);
  // One pass finds the key's end and hashes it as hash() would the key (lower case), keeping the hash
  // before the last character in case that is the domain's trailing dot.
  let at = -1;
  let h = 0x811c9dc5;
  let before = h;
  for (let i = b; i < e; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x3b /* ; */ || c === 0x3f /* ? */ || c === 0x3e /* > */) {
      e = i;
      break;
    }
    if (c > 0x7f) return SLOW;
    if (c === 0x40 /* @ */) at = i;
    before = h;
    h = Math.imul(h ^ lower(c), 0x01000193);
  }
  if (at <= b || at === e - 1) return NO_KEY;
  const dot = v.charCodeAt(e - 1) === 0x2e; /* . */
  span.start = b;
  span.end = dot ? e - 1 : e;
  span.hash = (dot ? before : h) >>> 0;
  return SPAN;
}

/** What String.prototype.trim takes for white space, among ASCII characters. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** 4 for `sip:`, 5 for `sips:` (any case) at v[b], else 0: userKey's /^sips?:/i. */
function schemeLength(v: string, b: number, e: number): number {
  if (e - b < 4) return 0;
  if ((v.charCodeAt(b) | 0x20) !== 0x73 || (v.charCodeAt(b + 1) | 0x20) !== 0x69) return 0;
  if ((v.charCodeAt(b + 2) | 0x20) !== 0x70) return 0;
  if (v.charCodeAt(b + 3) === 0x3a) return 4;
  return e - b >= 5 && (v.charCodeAt(b + 3) | 0x20) === 0x73 && v.charCodeAt(b + 4) === 0x3a ? 5 : 0;
}

/** An ASCII character in lower case. */
function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** Whether the key `span` describes in `v` is the one at `keys[start]` (its length already equal). */
function spanIs(v: string, keys: Uint8Array, start: number): boolean {
  for (let i = span.start, k = start; i < span.end; i++, k++)
    if (keys[k] !== lower(v.charCodeAt(i))) return false;
  return true;
}

/**
 * The key a user is stored and looked up under: `user@domain`, the user part in lower case (the
 * directory compares addresses so) and the domain as domainNameKey; undefined for no address.
 */
export function userKey(address: string): string | undefined {
  let s = address.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  const colon = s.indexOf(':');
  if (colon >= 0 && colon < 5 && /^sips?:/i.test(s)) s = s.slice(colon + 1);
  const end = s.search(/[;?>]/);
  if (end >= 0) s = s.slice(0, end);
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) return undefined;
  return `${s.slice(0, at).toLowerCase()}@${domainNameKey(s.slice(at + 1))}`;
}

/** A user part (RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )). */
const USER = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$/;

/**
 * Why a user table cell is not a user's SIP address, or undefined. Users share a few domains: each
 * domain's verdict is kept in `domains` for the rows after.
 */
function addressProblem(text: string, domains: Map<string, string | undefined>): string | undefined {
  if (text === '') return 'SipAddress is empty';
  const bare = /^sips?:/i.test(text) ? text.slice(text.indexOf(':') + 1) : text;
  const at = bare.lastIndexOf('@');
  if (at <= 0) return `SipAddress "${clip(text)}" is not user@domain (e.g. sip:alice@contoso.com)`;
  if (!USER.test(bare.slice(0, at)))
    return `SipAddress "${clip(text)}" has characters a SIP user part cannot carry`;
  const domain = bare.slice(at + 1);
  let problem = domains.get(domain);
  if (problem === undefined && !domains.has(domain)) {
    problem = domainNameProblem(domain);
    domains.set(domain, problem);
  }
  return problem === undefined ? undefined : `SipAddress "${clip(text)}": its domain ${problem}`;
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * Parses and validates a user table, given as text or as its UTF-8 bytes. Bytes are decoded a piece
 * at a time (a million rows: never a string of all 46 MB). Every problem is reported (up to maxIssues),
 * none applied.
 */
export function parseUserTable(file: string | Uint8Array, opts: UserTableOptions = {}): UserTableResult {
  if (typeof file === 'string') {
    if (file.includes('\0')) return NOT_TEXT;
    return parseRows(new CsvReader(file), countLines(file), file.length, opts);
  }
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (bytes.includes(0)) return NOT_TEXT;
  const reader = new CsvReader('', pieces(bytes, opts.pieceBytes ?? PIECE_BYTES));
  // A UTF-8 file has no more characters than bytes, and its line breaks are the same bytes.
  return parseRows(reader, countLineBytes(bytes), bytes.length, opts);
}

const NOT_TEXT: UserTableResult = {
  ok: false,
  issues: [{ line: 1, column: 1, reason: 'is not text (it holds NUL bytes)' }],
};

/**
 * The text of `bytes` a piece at a time: at least `size` bytes (or `atLeast` characters' worth, for a
 * row longer than a piece), up to the end of a line, so no character or line break is cut in two.
 */
function pieces(bytes: Buffer, size: number): (atLeast: number) => string | undefined {
  let at = 0;
  return (atLeast) => {
    if (at >= bytes.length) return undefined;
    let end = at + Math.max(size, atLeast);
    if (end < bytes.length) {
      const lf = bytes.indexOf(0x0a, end - 1);
      end = lf < 0 ? bytes.length : lf + 1;
    } else end = bytes.length;
    const text = bytes.toString('utf8', at, end);
    at = end;
    return text;
  };
}

/** Where the header row puts the two columns, or the issue that it names them not. */
function readHeader(
  reader: CsvReader,
): { readonly addressAt: number; readonly poolAt: number; readonly columns: number } | UserTableIssue {
  const header = reader.next();
  if (header === undefined)
    return { line: 1, column: 1, reason: 'is empty: expected a header row "SipAddress,PoolFqdn"' };
  const names = header.fields.map((f) =>
    f
      .replace(/^\uFEFF/, '')
      .trim()
      .toLowerCase(),
  );
  const addressAt = names.indexOf(ADDRESS_COLUMN);
  const poolAt = names.indexOf(POOL_COLUMN);
  if (addressAt >= 0 && poolAt >= 0) return { addressAt, poolAt, columns: header.fields.length };
  const got = clip(header.fields.join(','));
  return {
    line: header.line,
    column: 1,
    reason: `expected a header row naming SipAddress and PoolFqdn, got "${got}"`,
  };
}

/** The pools the rows name, each an index; two spellings of one pool (case, a trailing dot) share it. */
class PoolNames {
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();

  constructor(private readonly opts: UserTableOptions) {}

  /** The pool's index, or why the cell names no pool. */
  indexOf(pool: string): number | string {
    const known = this.index.get(pool);
    if (known !== undefined) return known;
    const reason = poolProblem(pool, this.opts);
    if (reason !== undefined) return reason;
    const same = this.names.findIndex((p) => domainNameKey(p) === domainNameKey(pool));
    if (same < 0 && this.names.length === 0xffff) return 'more than 65,535 distinct pools';
    const index = same >= 0 ? same : this.names.push(pool) - 1;
    this.index.set(pool, index);
    return index;
  }
}

/** The rows of `reader`: at most `lines`, their text at most `length` characters. */
function parseRows(
  reader: CsvReader,
  lines: number,
  length: number,
  opts: UserTableOptions,
): UserTableResult {
  const header = readHeader(reader);
  if ('reason' in header) return { ok: false, issues: [header] };
  const { addressAt, poolAt } = header;
  const issues: UserTableIssue[] = [];
  const maxIssues = opts.maxIssues ?? 50;
  const report = (line: number, column: number, reason: string): boolean => {
    issues.push({ line, column, reason });
    return issues.length >= maxIssues;
  };
  // Rows are at most the file's lines, counted once up front so nothing is ever grown and copied.
  const builder = new UserTableBuilder(lines, length);
  const pools = new PoolNames(opts);
  const domains = new Map<string, string | undefined>();
  const needed = Math.max(addressAt, poolAt) + 1;
  for (let row = reader.next(); row !== undefined; row = reader.next()) {
    let problem: [column: number, reason: string] | undefined;
    if (row.error !== undefined) problem = [row.column, row.error];
    else if (row.fields.length < needed)
      problem = [1, `expected ${header.columns} columns as the header has, got ${row.fields.length}`];
    else {
      const address = row.fields[addressAt]!.trim();
      const bad = addressProblem(address, domains);
      const index = bad === undefined ? pools.indexOf(row.fields[poolAt]!.trim()) : bad;
      if (bad !== undefined) problem = [row.columns[addressAt]!, bad];
      else if (typeof index === 'string') problem = [row.columns[poolAt]!, index];
      else {
        const first = builder.add(userKey(address)!, index, row.line);
        if (first !== undefined)
          problem = [row.columns[addressAt]!, `${clip(address)} is listed twice (first at line ${first})`];
      }
    }
    if (problem !== undefined && report(row.line, problem[0], problem[1])) break;
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, table: UserTable.build(builder, pools.names) };
}

/** Why a pool cell names no pool the service knows, or undefined. */
function poolProblem(pool: string, opts: UserTableOptions): string | undefined {
  const problem = domainNameProblem(pool);
  if (problem !== undefined) return `PoolFqdn "${clip(pool)}" ${problem}`;
  if (opts.knownPool !== undefined && !opts.knownPool(domainNameKey(pool)))
    return `pool "${clip(pool)}" is not a pool any endpoint or pools entry names`;
  return undefined;
}

/** Line breaks in `text`, plus one: an upper bound on its rows. */
function countLines(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  // A lone CR ends a row too (the reader takes it as a line break): uncounted, a file of such lines
  // would outgrow the builder's arrays and fill its hash table, whose probe would then never end.
  for (let i = text.indexOf('\r'); i >= 0; i = text.indexOf('\r', i + 1))
    if (text.charCodeAt(i + 1) !== 0x0a) n++;
  return n;
}

/** countLines of the text of UTF-8 `bytes` (whose line breaks are the same bytes). */
function countLineBytes(bytes: Buffer): number {
  let n = 1;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) n++;
  for (let i = bytes.indexOf(0x0d); i >= 0; i = bytes.indexOf(0x0d, i + 1)) if (bytes[i + 1] !== 0x0a) n++;
  return n;
}

export interface CsvRow {
  readonly fields: string[];
  /** Column (1-based) where each field starts, counted from the row's start. */
  readonly columns: number[];
  /** Where each field ends in the text (after its closing quote): for an edit in place. */
  readonly ends: number[];
  /** Line (1-based) the row starts on. */
  readonly line: number;
  readonly column: number;
  readonly error?: string;
  /** Offsets in the text: the row's start, its end before the line break, and after the line break. */
  readonly start: number;
  readonly end: number;
  readonly next: number;
}

function isLineBreak(c: number): boolean {
  return c === 0x0a || c === 0x0d;
}

/**
 * RFC 4180 rows, one at a time: fields separated by commas, a field in double quotes may hold
 * commas, line breaks and doubled quotes. A line starting with "#" and an empty line are skipped.
 * The loader and the user table's editor (src/config/users-editor.ts) read with this one reader, so
 * an edit lands where a load will find it. Offsets are in the text given whole (in pieces, in the
 * current piece's).
 */
export class CsvReader {
  private pos = 0;
  private line = 1;
  /** Whether `text` holds the rest of the file: always, unless it comes in pieces. */
  private whole: boolean;

  /**
   * @param text the file's text, or its first piece
   * @param more the next piece (ending with a line break, but the last), at least `atLeast` long;
   *   undefined after the last
   */
  constructor(
    private text: string,
    private readonly more?: (atLeast: number) => string | undefined,
  ) {
    this.whole = more === undefined;
    // A byte order mark (Excel's "CSV UTF-8") is not text: a comment on the first line is one.
    if (text.charCodeAt(0) === 0xfeff) this.pos = 1;
  }

  next(): CsvRow | undefined {
    for (;;) {
      const t = this.text;
      if (this.pos >= t.length) {
        if (this.whole || !this.readMore()) return undefined;
        continue;
      }
      const c = t.charCodeAt(this.pos);
      if (c === 0x0a || c === 0x0d || c === 0x23 /* # */) {
        this.skipLine(c === 0x23);
        continue;
      }
      const [pos, line] = [this.pos, this.line];
      const row = this.row();
      if (row !== undefined) return row;
      // A quoted field runs past this piece: the row again, with the next one.
      [this.pos, this.line] = [pos, line];
      if (!this.readMore()) this.whole = true;
    }
  }

  /** The text from pos with the next piece after it (twice as long at least: a long row costs O(n)). */
  private readMore(): boolean {
    const rest = this.text.slice(this.pos);
    const piece = this.more?.(rest.length);
    if (piece === undefined) {
      this.whole = true;
      return false;
    }
    this.text = rest + piece;
    this.pos = 0;
    return true;
  }

  private skipLine(comment: boolean): void {
    const t = this.text;
    // A comment ends at any line break, a lone CR's (classic Mac) too.
    if (comment) while (this.pos < t.length && !isLineBreak(t.charCodeAt(this.pos))) this.pos++;
    if (t.charCodeAt(this.pos) === 0x0d) this.pos++;
    if (t.charCodeAt(this.pos) === 0x0a) this.pos++;
    this.line++;
  }

  /** The row at pos; undefined when it runs past a piece that is not the last. */
  private row(): CsvRow | undefined {
    const t = this.text;
    const line = this.line;
    const start = this.pos;
    const fields: string[] = [];
    const columns: number[] = [];
    const ends: number[] = [];
    for (;;) {
      columns.push(this.pos - start + 1);
      if (t.charCodeAt(this.pos) === 0x22 /* " */) {
        const quoted = this.quoted();
        if (quoted === undefined) {
          if (!this.whole) return undefined;
          return this.refused(
            { fields, columns, ends, line, start },
            columns.at(-1)!,
            'a quoted field is not closed',
          );
        }
        fields.push(quoted);
      } else {
        let end = this.pos;
        while (end < t.length) {
          const c = t.charCodeAt(end);
          if (c === 0x2c || c === 0x0a || c === 0x0d) break;
          end++;
        }
        fields.push(t.slice(this.pos, end));
        this.pos = end;
      }
      ends.push(this.pos);
      const c = t.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (this.pos < t.length && c !== 0x0a && c !== 0x0d)
        return this.refused(
          { fields, columns, ends, line, start },
          this.pos - start + 1,
          'unexpected text after a quoted field',
        );
      const end = this.pos;
      if (this.pos < t.length) this.skipLine(false);
      return { fields, columns, ends, line, column: 1, start, end, next: this.pos };
    }
  }

  /** A row that is not CSV, reported at `column`; read past the rest of its line. */
  private refused(
    row: Pick<CsvRow, 'fields' | 'columns' | 'ends' | 'line' | 'start'>,
    column: number,
    error: string,
  ): CsvRow {
    this.skipRest();
    return { ...row, column, error, end: this.pos, next: this.pos };
  }

  /** A quoted field from the opening quote at pos; undefined when it is not closed. */
  private quoted(): string | undefined {
    const t = this.text;
    let out = '';
    let from = this.pos + 1;
    // The line breaks inside count only once the field closes: an unclosed one is reported at its
    // row, and the rows after it keep their own line numbers.
    let lines = 0;
    for (let i = from; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c === 0x0a) lines++;
      if (c !== 0x22) continue;
      if (t.charCodeAt(i + 1) === 0x22) {
        out += t.slice(from, i + 1);
        from = i + 2;
        i++;
        continue;
      }
      out += t.slice(from, i);
      this.pos = i + 1;
      this.line += lines;
      return out;
    }
    return undefined;
  }

  /** Past the rest of a refused row's line, whatever ends it. */
  private skipRest(): void {
    const t = this.text;
    while (this.pos < t.length && !isLineBreak(t.charCodeAt(this.pos))) this.pos++;
    this.skipLine(false);
  }
}
