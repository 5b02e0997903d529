// Changes to a homing user table (users.csv) as the `home` commands make them: the rows found with
// their place in the text, a change written over its own row only (a new user appended, a removed
// one cut out with its line break), so every other byte (comments, blank lines, the header, other
// columns, quoting, line breaks) stays as the operator left it. The whole result is checked as a
// load checks it, then written atomically under the edit lock.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { domainNameKey } from '../endpoints/domain-name.js';
import { CsvReader, userKey, type CsvRow, type UserTable } from '../endpoints/user-table.js';
import { createFileAtomic, withFileLock, writeFileAtomic } from './atomic-file.js';
import {
  DEFAULT_READ_TIMEOUT,
  MAX_FILE_SIZE_CEILING,
  readConfigFile,
  type ReadRules,
} from './config-file.js';
import { EditError, readEndpointsFile, findEndpoint, type EditOptions } from './endpoints-editor.js';
import { ConfigError } from './errors.js';
import {
  checkUserTableText,
  ENDPOINTS_FILE,
  knownPoolNames,
  parseServerConfig,
  SERVER_FILE,
} from './load.js';
import type { EndpointsConfig } from './schema.js';

/** Where the table's two columns are; a file without a header gets this one. */
export interface UsersHeader {
  readonly width: number;
  readonly addressAt: number;
  readonly poolAt: number;
}

const DEFAULT_HEADER: UsersHeader = { width: 2, addressAt: 0, poolAt: 1 };
const DEFAULT_HEADER_TEXT = 'SipAddress,PoolFqdn';

/** A row of the table as it stands in the text. */
export interface UserRow {
  /** SipAddress and PoolFqdn as written, trimmed and unquoted. */
  readonly address: string;
  readonly pool: string;
  readonly line: number;
  /** Offsets in the text: the row's start, its end before the line break, and after the line break. */
  readonly start: number;
  readonly end: number;
  readonly next: number;
  /** The PoolFqdn cell's span, quotes included. */
  readonly poolStart: number;
  readonly poolEnd: number;
}

export interface UsersText {
  readonly text: string;
  /** The line break a new row gets: the file's first one, else \n. */
  readonly eol: string;
  /** Undefined when the first record names no SipAddress and PoolFqdn columns, or there is none. */
  readonly header: UsersHeader | undefined;
  /** Whether the file holds no record at all (only comments and blank lines, or nothing). */
  readonly empty: boolean;
  readonly rows: readonly UserRow[];
}

function headerOf(record: CsvRow): UsersHeader | undefined {
  const names = record.fields.map((f) =>
    f
      .replace(/^\uFEFF/, '')
      .trim()
      .toLowerCase(),
  );
  const addressAt = names.indexOf('sipaddress');
  const poolAt = names.indexOf('poolfqdn');
  return addressAt < 0 || poolAt < 0 ? undefined : { width: names.length, addressAt, poolAt };
}

/** The rows of a user table's text, each with its place, for an edit in place. */
export function scanUsers(text: string): UsersText {
  const reader = new CsvReader(text);
  const first = reader.next();
  const header = first === undefined ? undefined : headerOf(first);
  const rows: UserRow[] = [];
  const needed = header === undefined ? 0 : Math.max(header.addressAt, header.poolAt) + 1;
  for (let r = header === undefined ? undefined : reader.next(); r !== undefined; r = reader.next()) {
    // A row the reader refuses (an unclosed quote, text after a closing quote) is not one: the check
    // refuses the file.
    if (r.error !== undefined || r.fields.length < needed) continue;
    const poolAt = header!.poolAt;
    rows.push({
      address: r.fields[header!.addressAt]!.trim(),
      pool: r.fields[poolAt]!.trim(),
      line: r.line,
      start: r.start,
      end: r.end,
      next: r.next,
      poolStart: r.start + r.columns[poolAt]! - 1,
      poolEnd: r.ends[poolAt]!,
    });
  }
  const eol = /\r\n|\n|\r/.exec(text)?.[0] ?? '\n';
  return { text, eol, header, empty: first === undefined, rows };
}

/** A value as a CSV cell: quoted when it holds what would end or change the cell or the row. */
export function csvCell(value: string): string {
  return /[",\r\n]|^#|^\s|\s$/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The row of `address` (any spelling of it), or undefined. */
export function findUser(doc: UsersText, address: string): UserRow | undefined {
  const key = userKey(address);
  return key === undefined ? undefined : doc.rows.find((r) => userKey(r.address) === key);
}

/** One user of a wave: where they go. */
export interface WaveRow {
  readonly address: string;
  readonly pool: string;
}

export type UserChange =
  | { readonly kind: 'added'; readonly address: string; readonly to: string }
  | { readonly kind: 'moved'; readonly address: string; readonly from: string; readonly to: string }
  | { readonly kind: 'unchanged'; readonly address: string; readonly to: string };

/**
 * Homes each user of `wave` on their pool: a listed user's PoolFqdn cell is rewritten in place (or
 * left alone when it names that pool already, in any spelling), an unlisted one is appended. The
 * wave holds each user once (checked before); the result is the caller's to check.
 */
export function homeUsers(
  doc: UsersText,
  wave: readonly WaveRow[],
): { text: string; changes: UserChange[]; homed: readonly WaveRow[] } {
  const byKey = new Map<string, UserRow>();
  for (const row of doc.rows) {
    const key = userKey(row.address);
    if (key !== undefined && !byKey.has(key)) byKey.set(key, row);
  }
  const rewrites = new Map<UserRow, string | null>();
  const appended: string[] = [];
  const changes: UserChange[] = [];
  const header = doc.header ?? DEFAULT_HEADER;
  for (const { address, pool } of wave) {
    const key = userKey(address);
    const row = key === undefined ? undefined : byKey.get(key);
    if (row === undefined) {
      appended.push(rowText(header, address, pool));
      changes.push({ kind: 'added', address, to: pool });
    } else if (domainNameKey(row.pool) === domainNameKey(pool)) {
      changes.push({ kind: 'unchanged', address: row.address, to: row.pool });
    } else {
      const text = doc.text;
      rewrites.set(
        row,
        text.slice(row.start, row.poolStart) + csvCell(pool) + text.slice(row.poolEnd, row.end),
      );
      changes.push({ kind: 'moved', address: row.address, from: row.pool, to: pool });
    }
  }
  return { text: compose(doc, rewrites, appended), changes, homed: wave };
}

/**
 * The text without the rows of `address` (one, unless the file lists the user twice), each cut out
 * with its line break; undefined when the user is not listed.
 */
export function removeUser(doc: UsersText, address: string): { text: string; row: UserRow } | undefined {
  const key = userKey(address);
  const rows = key === undefined ? [] : doc.rows.filter((r) => userKey(r.address) === key);
  if (rows.length === 0) return undefined;
  return { text: compose(doc, new Map(rows.map((r) => [r, null])), []), row: rows[0]! };
}

function rowText(header: UsersHeader, address: string, pool: string): string {
  const cells = new Array<string>(header.width).fill('');
  cells[header.addressAt] = csvCell(address);
  cells[header.poolAt] = csvCell(pool);
  return cells.join(',');
}

/**
 * The text with rows replaced (null: removed) and rows appended at the end, after a line break of
 * the file's own kind when its last line has none, after a header when the file has no record.
 */
function compose(doc: UsersText, rewrites: ReadonlyMap<UserRow, string | null>, appended: string[]): string {
  const parts: string[] = [];
  let at = 0;
  if (rewrites.size > 0) {
    for (const row of doc.rows) {
      const rewrite = rewrites.get(row);
      if (rewrite === undefined) continue;
      parts.push(doc.text.slice(at, row.start));
      if (rewrite !== null) parts.push(rewrite);
      at = rewrite === null ? row.next : row.end;
    }
  }
  parts.push(doc.text.slice(at));
  if (appended.length === 0) return parts.join('');
  const last = parts.at(-1)!;
  if (doc.text !== '' && !/[\r\n]$/.test(last)) parts.push(doc.eol);
  if (doc.empty) parts.push(DEFAULT_HEADER_TEXT + doc.eol);
  for (const row of appended) parts.push(row, doc.eol);
  return parts.join('');
}

/** What an edit of a user table is checked against: the rest of the configuration folder. */
export interface HomingContext {
  readonly dir: string;
  readonly endpoints: EndpointsConfig;
  /** Every pool endpoints.yaml knows, as domainNameKey. */
  readonly knownPools: ReadonlySet<string>;
  /** How the service reads a user table: server.yaml's config.maxUserTableSize and readTimeout. */
  readonly rules: ReadRules & { readonly root: string };
}

/** Reads server.yaml and endpoints.yaml of `dir` as the service does; throws ConfigError when refused. */
export async function readHomingContext(dir: string): Promise<HomingContext> {
  const serverFile = join(dir, SERVER_FILE);
  const serverText = await readConfigFile(serverFile, {
    maxFileSize: MAX_FILE_SIZE_CEILING,
    timeoutMs: DEFAULT_READ_TIMEOUT,
    root: dir,
  });
  if (typeof serverText !== 'string') throw new ConfigError([serverText]);
  const { config } = parseServerConfig(serverText, serverFile);
  const { config: endpoints } = await readEndpointsFile(join(dir, ENDPOINTS_FILE));
  return {
    dir,
    endpoints,
    knownPools: knownPoolNames(endpoints),
    rules: {
      maxFileSize: config.maxUserTableSize,
      limitName: 'config.maxUserTableSize',
      timeoutMs: config.readTimeout,
      root: dir,
    },
  };
}

/** The user tables endpoints.yaml names (`homing: [{users: FILE}]`), each with the endpoints naming it. */
export function userTableNames(endpoints: EndpointsConfig): Map<string, string[]> {
  const names = new Map<string, string[]>();
  for (const e of endpoints.endpoints)
    for (const r of e.homing ?? []) {
      if (!('users' in r)) continue;
      const by = names.get(r.users) ?? [];
      if (!by.includes(e.sipAddress)) by.push(e.sipAddress);
      names.set(r.users, by);
    }
  return names;
}

/**
 * The user table an operator means: the one endpoints.yaml names, or, when it names several, the
 * one `file` names or `endpoint`'s rule names. Throws EditError when none or more than one fits.
 */
export function chooseUserTable(
  endpoints: EndpointsConfig,
  pick: { file?: string; endpoint?: string },
): string {
  let names = userTableNames(endpoints);
  if (names.size === 0)
    throw new EditError(
      'PCHAT_ERR_EDIT_NOT_FOUND',
      'no endpoint has a user table: add a homing rule to one in endpoints.yaml, e.g. homing: [{ users: users.csv }]',
    );
  if (pick.endpoint !== undefined) {
    const e = endpoints.endpoints[findEndpoint(endpoints, pick.endpoint)]!;
    names = new Map([...names].filter(([, by]) => by.includes(e.sipAddress)));
    if (names.size === 0)
      throw new EditError(
        'PCHAT_ERR_EDIT_NOT_FOUND',
        `endpoint ${e.sipAddress} has no homing rule { users: FILE }`,
      );
  }
  if (pick.file !== undefined) {
    if (names.has(pick.file)) return pick.file;
    throw new EditError(
      'PCHAT_ERR_EDIT_NOT_FOUND',
      `no homing rule names the user table ${pick.file}${describeTables(names)}`,
    );
  }
  if (names.size === 1) return [...names.keys()][0]!;
  throw new EditError(
    'PCHAT_ERR_EDIT_CONFLICT',
    `endpoints.yaml names several user tables${describeTables(names)}: choose one with --file`,
  );
}

function describeTables(names: ReadonlyMap<string, string[]>): string {
  if (names.size === 0) return '';
  return ` (${[...names].map(([file, by]) => `${file}: ${by.join(', ')}`).join('; ')})`;
}

/**
 * Reads a user table under the service's rules; throws ConfigError when it cannot be read, EditError
 * (not found) when it is not there yet.
 */
export async function readUsersFile(ctx: HomingContext, file: string): Promise<UsersText> {
  const text = await readConfigFile(file, ctx.rules);
  if (typeof text === 'string') return scanUsers(text);
  if (text.reason === 'file not found') throw notThere(file);
  throw new ConfigError([text]);
}

function notThere(file: string): EditError {
  return new EditError(
    'PCHAT_ERR_EDIT_NOT_FOUND',
    `${file}: file not found: home set and home import create it; or write it with the header row SipAddress,PoolFqdn (config/users.csv is an example)`,
  );
}

/** Checks a user table's text as a load does, its size included; throws ConfigError when refused. */
export function checkUsersText(ctx: HomingContext, file: string, text: string): UserTable {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > ctx.rules.maxFileSize) {
    const reason = `would be ${size} bytes, over the limit of ${ctx.rules.maxFileSize} bytes (config.maxUserTableSize)`;
    throw new ConfigError([{ file, line: 0, column: 0, path: '', reason }]);
  }
  const checked = checkUserTableText(text, file, ctx.knownPools);
  if (checked.issues !== undefined) throw new ConfigError(checked.issues);
  return checked.table;
}

export interface UsersEditPlan {
  readonly text: string;
  /** One line for the operator: what the edit does. */
  readonly summary: string;
  /** Users the edit homes, and users it removes: the result must read back so. */
  readonly homed?: readonly WaveRow[];
  readonly removed?: readonly string[];
}

/**
 * Whether the table reads back as the plan meant. A guard against any difference between how the
 * edit and the loader read a file (a line break or a quote taken differently, say).
 */
function readBack(table: UserTable, plan: UsersEditPlan, file: string): void {
  const wrong = [
    ...(plan.homed ?? []).filter(
      (w) => domainNameKey(table.poolOf(w.address) ?? '') !== domainNameKey(w.pool),
    ),
    ...(plan.removed ?? []).filter((a) => table.poolOf(a) !== undefined).map((address) => ({ address })),
  ];
  if (wrong.length > 0)
    throw new EditError(
      'PCHAT_ERR_EDIT_CONFLICT',
      `${file}: the edit would not read back as meant for ${wrong[0]!.address}${wrong.length > 1 ? ` and ${wrong.length - 1} more` : ''} (look for a comment or line break that swallows the row); nothing written`,
    );
}

/**
 * Makes one planned edit of the user table `file` under its lock: read, planned against, checked and
 * replaced while no other edit can come between. A result the check refuses throws ConfigError and
 * writes nothing; with whatIf nothing is written (and no lock taken).
 */
export async function editUsersFile<P extends UsersEditPlan>(
  ctx: HomingContext,
  file: string,
  opts: EditOptions & { readonly create?: boolean },
  plan: (doc: UsersText) => P,
): Promise<P & { readonly before: string; readonly written: boolean }> {
  const run = async () => {
    const doc = await readUsersFile(ctx, file);
    const planned = plan(doc);
    readBack(checkUsersText(ctx, file, planned.text), planned, file);
    const written = !opts.whatIf && planned.text !== doc.text;
    if (written) await writeFileAtomic(file, planned.text, opts.hooks ?? {});
    return { ...planned, before: doc.text, written };
  };
  if (!existsSync(file)) {
    if (opts.create !== true) throw notThere(file);
    const created = await createUsersFile(ctx, file, opts, plan);
    if (created !== undefined) return created;
  }
  if (opts.whatIf) return run();
  // The lock is taken on the file itself, which is there now.
  return withFileLock(file, opts.lockTimeoutMs, run);
}

/**
 * The first edit of a user table a homing rule names but nobody wrote yet: the planned rows under a
 * header, created whole (no lock to take on a file that is not there; an exclusive create instead).
 * Undefined when another edit created the file meanwhile: that one is then edited as usual.
 */
async function createUsersFile<P extends UsersEditPlan>(
  ctx: HomingContext,
  file: string,
  opts: EditOptions,
  plan: (doc: UsersText) => P,
): Promise<(P & { readonly before: string; readonly written: boolean }) | undefined> {
  const planned = plan(scanUsers(''));
  readBack(checkUsersText(ctx, file, planned.text), planned, file);
  if (opts.whatIf) return { ...planned, before: '', written: false };
  try {
    await createFileAtomic(file, planned.text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  return { ...planned, before: '', written: true };
}
