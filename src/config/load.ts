// Reads and validates the configuration files: server.yaml (service settings) and endpoints.yaml (the
// endpoint table). Everything past this point trusts what it returns.
import { isAbsolute, join, sep } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { EndpointTable } from '../endpoints/table.js';
import { domainNameKey } from '../endpoints/domain-name.js';
import { parseUserTable, type UserTable } from '../endpoints/user-table.js';
import { checkEndpoints, checkServer, checkText, type Checked } from './check.js';
import {
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_MAX_USER_TABLE_SIZE,
  DEFAULT_READ_TIMEOUT,
  readConfigFile,
  readRuledBytes,
  type ReadRules,
} from './config-file.js';
import { ConfigError, formatIssue, type ConfigIssue } from './errors.js';
import type { EndpointsConfig, ServerConfig } from './schema.js';
import { checkUserTable } from './user-table-check.js';

export const SERVER_FILE = 'server.yaml';
export const ENDPOINTS_FILE = 'endpoints.yaml';

function orThrow<T>(checked: Checked<T>): T {
  if (checked.value === undefined) throw new ConfigError(checked.issues);
  return checked.value;
}

/** Validates the text of server.yaml; `file` is the name used in messages. Throws ConfigError. */
export function parseServerConfig(text: string, file: string): ServerConfig {
  return orThrow(checkServer(text, file));
}

/** Validates the text of endpoints.yaml; `file` is the name used in messages. Throws ConfigError. */
export function parseEndpointsConfig(text: string, file: string): EndpointsConfig {
  return orThrow(checkEndpoints(text, file));
}

/**
 * As parseEndpointsConfig, also returning what is allowed but probably unintended (a pool no endpoint
 * uses, lookupUris on an endpoint not in lookup mode), for `check` and reload to report.
 */
export function checkEndpointsConfig(
  text: string,
  file: string,
): { config: EndpointsConfig; warnings: ConfigIssue[] } {
  const checked = checkEndpoints(text, file);
  return { config: orThrow(checked), warnings: checked.warnings };
}

export interface LoadedConfig {
  server: ServerConfig;
  endpoints: EndpointsConfig;
  table: EndpointTable;
  files: { server: string; endpoints: string };
  /** The text of each file as read, so a reload can tell a real change from a touch. */
  texts: { server: string; endpoints: string };
  /** What this load read of the homing user tables, by file name: a later edit of one is a change. */
  users: ReadonlyMap<string, Seen>;
  /** Formatted like issues: `file:line:col: path: reason`. */
  warnings: string[];
}

export interface LoadOptions {
  /**
   * Largest file read, in bytes: server.yaml is read under it, endpoints.yaml under server.yaml's
   * `config.maxFileSize` (this one when server.yaml is refused). A reload passes the last good value.
   */
  readonly maxFileSize?: number;
  /** Time one file may take to be read, in ms; as maxFileSize, server.yaml's value for endpoints.yaml. */
  readonly readTimeoutMs?: number;
  /** Aborting gives up a check running off the event loop (the service is stopping). */
  readonly signal?: AbortSignal;
}

/**
 * What a read found: the text (the bytes, for a user table: the event loop never decodes one), or
 * why there is none. Compared to tell a change from a touch.
 */
export type Seen = { text: string } | { bytes: Buffer } | { refused: string };
export type SeenFiles = readonly [server: Seen, endpoints: Seen, users?: ReadonlyMap<string, Seen>];

const seenOf = (read: string | Buffer | ConfigIssue): Seen =>
  typeof read === 'string'
    ? { text: read }
    : Buffer.isBuffer(read)
      ? { bytes: read }
      : { refused: read.reason };
const same = (a: Seen, b: Seen): boolean => {
  if ('text' in a) return 'text' in b && a.text === b.text;
  if ('bytes' in a) return 'bytes' in b && a.bytes.equals(b.bytes);
  return 'refused' in b && a.refused === b.refused;
};

/** A user table's bytes, or why it was not read (as readConfigFile's issue). */
function readUserTable(file: string, rules: ReadRules): Promise<Buffer | ConfigIssue> {
  return readRuledBytes(file, { ...rules, shared: true }).catch((err: unknown): ConfigIssue => ({
    file,
    line: 0,
    column: 0,
    path: '',
    reason: (err as Error).message,
  }));
}

/**
 * Loads server.yaml and endpoints.yaml from `dir` and builds the endpoint table. Problems in both files
 * are reported together in one ConfigError. Messages name the files as `dir` was given.
 */
export async function loadConfig(dir: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  const { result } = await loadIfChanged(dir, opts, undefined);
  if (result instanceof ConfigError) throw result;
  // Without `previous` there is always a result.
  return result as LoadedConfig;
}

/**
 * As loadConfig, for a reload: when both files read as they did in `previous`, nothing is checked and
 * the result is undefined. `seen` is what this read found, to pass as `previous` next time.
 */
export async function loadIfChanged(
  dir: string,
  opts: LoadOptions,
  previous: SeenFiles | undefined,
): Promise<{ seen: SeenFiles; result: LoadedConfig | ConfigError | undefined }> {
  const files = { server: join(dir, SERVER_FILE), endpoints: join(dir, ENDPOINTS_FILE) };
  const maxFileSize = opts.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
  const timeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT;
  // Symlinks are followed only into `dir`: a ConfigMap's `..data` links are, /etc/passwd is not.
  const serverText = await readConfigFile(files.server, { maxFileSize, timeoutMs, root: dir });
  const sameServer = previous !== undefined && same(previous[0], seenOf(serverText));
  let server: Checked<ServerConfig> | undefined;
  if (typeof serverText !== 'string') server = failed(serverText);
  // Unchanged, its limits are the ones passed in; changed, they apply to endpoints.yaml at once.
  else if (!sameServer) server = await checkText('server', serverText, files.server, opts.signal);
  const limits = server?.value?.config;
  const endpointsText = await readConfigFile(files.endpoints, {
    maxFileSize: limits?.maxFileSize ?? maxFileSize,
    timeoutMs: limits?.readTimeout ?? timeoutMs,
    root: dir,
  });
  const userLimits = {
    maxFileSize: limits?.maxUserTableSize ?? DEFAULT_MAX_USER_TABLE_SIZE,
    limitName: 'config.maxUserTableSize',
    timeoutMs: limits?.readTimeout ?? timeoutMs,
    root: dir,
  };
  // The user tables the last load read: read again, so an edit of one alone is a change too.
  const usersRead = new Map<string, Buffer | ConfigIssue>();
  for (const name of previous?.[2]?.keys() ?? [])
    usersRead.set(name, await readUserTable(join(dir, name), userLimits));
  const usersSeen = new Map([...usersRead].map(([name, read]) => [name, seenOf(read)]));
  const seen: SeenFiles = [seenOf(serverText), seenOf(endpointsText), usersSeen];
  if (
    sameServer &&
    same(previous[1], seen[1]) &&
    [...usersSeen].every(([name, now]) => {
      const before = previous[2]?.get(name);
      return before !== undefined && same(before, now);
    })
  )
    return { seen, result: undefined };
  server ??= await checkText('server', serverText as string, files.server, opts.signal);
  server = await withSecretFile(server, dir, files.server);
  const endpoints =
    typeof endpointsText === 'string'
      ? await checkText('endpoints', endpointsText, files.endpoints, opts.signal)
      : failed(endpointsText);
  if (server.value === undefined || endpoints.value === undefined) {
    return { seen, result: new ConfigError([...server.issues, ...endpoints.issues]) };
  }
  const users = await loadUserTables(dir, endpoints.value, usersRead, userLimits, opts.signal);
  const seenNow: SeenFiles = [seen[0], seen[1], users.seen];
  if (users.issues.length > 0) return { seen: seenNow, result: new ConfigError(users.issues) };
  const userTables = users.tables;
  // The check's answer arrived in this turn; the table is built over the next ones, a slice a turn,
  // so the event loop is never held for the whole of a large table.
  const building = EndpointTable.building(endpoints.value, userTables);
  let step = building.next();
  while (step.done !== true) {
    await nextTurn();
    step = building.next();
  }
  return {
    seen: seenNow,
    result: {
      server: server.value,
      endpoints: endpoints.value,
      table: step.value,
      files,
      texts: { server: serverText as string, endpoints: endpointsText as string },
      users: users.seen,
      warnings: [...server.warnings, ...endpoints.warnings].map(formatIssue),
    },
  };
}

/** The longest security.secretFile read: a secret is a line of text, not a file of any size. */
const MAX_SECRET_FILE = 4096;

/**
 * server.yaml with `security.secretFile` read into `security.secret`; an issue at server.yaml's
 * security.secretFile when the file cannot be read or holds no secret of 16 characters.
 */
async function withSecretFile(
  server: Checked<ServerConfig>,
  dir: string,
  serverFile: string,
): Promise<Checked<ServerConfig>> {
  const name = server.value?.security.secretFile;
  if (server.value === undefined || name === undefined) return server;
  const file = isAbsolute(name) ? name : join(dir, name);
  const read = await readConfigFile(file, {
    maxFileSize: MAX_SECRET_FILE,
    timeoutMs: server.value.config.readTimeout,
  });
  const secret = typeof read === 'string' ? read.trimEnd() : undefined;
  if (secret !== undefined && secret.length >= 16)
    return { ...server, value: { ...server.value, security: { secret } } };
  const why = typeof read === 'string' ? 'holds no secret of 16 characters or more' : read.reason;
  const reason = `security.secretFile ${file}: ${why}`;
  return {
    ...server,
    value: undefined,
    issues: [{ file: serverFile, line: 0, column: 0, path: '', reason }],
  };
}

/**
 * The homing user tables the endpoints name, each read once (`read` holds those read already) and
 * checked off the event loop when large (user-table-check.ts).
 */
async function loadUserTables(
  dir: string,
  cfg: EndpointsConfig,
  read: ReadonlyMap<string, Buffer | ConfigIssue>,
  rules: ReadRules,
  signal: AbortSignal | undefined,
): Promise<{ tables: Map<string, UserTable>; issues: ConfigIssue[]; seen: Map<string, Seen> }> {
  const tables = new Map<string, UserTable>();
  const issues: ConfigIssue[] = [];
  const seen = new Map<string, Seen>();
  const names = new Set<string>();
  for (const e of cfg.endpoints) for (const r of e.homing ?? []) if ('users' in r) names.add(r.users);
  const knownPools = [...knownPoolNames(cfg)];
  for (const name of names) {
    const file = join(dir, name);
    const bytes = read.get(name) ?? (await readUserTable(file, rules));
    seen.set(name, seenOf(bytes));
    if (!Buffer.isBuffer(bytes)) {
      issues.push(bytes);
      continue;
    }
    const checked = await checkUserTable(bytes, file, knownPools, signal);
    if ('table' in checked) tables.set(name, checked.table);
    else issues.push(...checked.issues);
  }
  return { tables, issues, seen };
}

function failed(issue: ConfigIssue): Checked<never> {
  return { value: undefined, issues: [issue], warnings: [] };
}

/**
 * The config/ folder shipped with the package. This module sits two levels below the package root both
 * as source (src/config/) and built (dist/config/), so one relative URL serves both.
 */
export function defaultConfigDir(): string {
  return fileURLToPath(new URL('../../config', import.meta.url));
}

/**
 * Parses a homing user table as a load does (the `home` commands check their result so too): the
 * table, or its problems as issues of `file`.
 */
export function checkUserTableText(
  text: string,
  file: string,
  knownPools: ReadonlySet<string>,
): { table: UserTable; issues?: never } | { table?: never; issues: ConfigIssue[] } {
  const parsed = parseUserTable(text, { knownPool: (p) => knownPools.has(p) });
  if (parsed.ok) return { table: parsed.table };
  return {
    issues: parsed.issues.map((i) => ({ file, line: i.line, column: i.column, path: '', reason: i.reason })),
  };
}

/**
 * Whether the package at `root` (default: this one) was installed by npm rather than checked out:
 * npm puts every package it installs, global or local, under a node_modules folder. Node runs a
 * package's files from their real path, so `npm link` to a checkout counts as the checkout.
 */
export function isInstalledPackage(root = fileURLToPath(new URL('../..', import.meta.url))): boolean {
  return root.split(sep).includes('node_modules');
}

/** The pools endpoints.yaml knows: every endpoint's, every pools entry, every homing rule's. */
export function knownPoolNames(cfg: EndpointsConfig): Set<string> {
  const names = new Set<string>();
  for (const p of cfg.pools) names.add(domainNameKey(p.fqdn));
  for (const e of cfg.endpoints) {
    names.add(domainNameKey(e.poolFqdn));
    for (const r of e.homing ?? []) if ('pool' in r) names.add(domainNameKey(r.pool));
  }
  return names;
}
