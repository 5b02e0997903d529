// Reloading the configuration while the service runs: what a reload changed (endpoint by endpoint,
// through the one projection of an Endpoint), which server.yaml settings only a restart applies,
// the watch on the configuration folder, and the queue that runs reloads one at a time.

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ConfigError, formatIssue } from '../config/errors.js';
import { loadIfChanged, SERVER_FILE, type LoadedConfig, type SeenFiles } from '../config/load.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { endpointProjection, poolProjection } from '../endpoints/projection.js';
import { EndpointTable } from '../endpoints/table.js';

/** What one reload did. */
export interface ReloadResult {
  /** False when the configuration was refused and the last good table kept serving. */
  readonly ok: boolean;
  /** What asked for it: watch, SIGHUP, http, api. */
  readonly trigger: string;
  /** Neither file had changed since the last look (watch only): nothing was done or logged. */
  readonly unchanged: boolean;
  readonly added: string[];
  readonly removed: string[];
  readonly modified: string[];
  /** server.yaml settings that changed but only take effect on a restart (not applied). */
  readonly restartNeeded: string[];
  /** Why it was refused: `file:line:col: path: reason`, one per problem. */
  readonly issues: string[];
  readonly endpoints: number;
}

export interface ReloadDeps {
  /** Folder holding server.yaml and endpoints.yaml. */
  readonly configDir: string;
  readonly logger: Logger;
  /** The log level was fixed by the caller (command line, injected logger): server.yaml's is not applied. */
  readonly fixedLogLevel: boolean;
  /** Counts reloads applied and refused. */
  readonly reloaded: (ok: boolean) => void;
  /** Applies what a reload changes live besides the table: allow lists, rate limit, pool probing. */
  readonly applied: (next: LoadedConfig) => void;
  /** Rereads the certificate files (SIGHUP and POST /reload, for folders a watch cannot see into). */
  readonly rereadCertificates: () => void;
}

/** The table an instance serves, as pchat_config_info, /endpoints and /status show it. */
export interface TableDigest {
  /** SHA-256 of endpoints.yaml as loaded, hex. */
  readonly sha256: string;
  readonly endpoints: number;
}

/**
 * The digest of the text of endpoints.yaml as it was read and loaded (UTF-8, so the file's bytes for
 * any file that is valid text). The file, not the table built from it: two instances reading the same
 * file agree whatever their server.yaml says, the digest can be checked against the file itself
 * (`sha256sum endpoints.yaml`) or a git blob, and any edit changes it, a comment included, which is
 * the point when looking for an instance still serving an older copy. server.yaml is left out: it
 * holds per-instance settings (listen addresses) that legitimately differ.
 */
export function tableDigest(loaded: LoadedConfig): TableDigest {
  return {
    sha256: createHash('sha256').update(loaded.texts.endpoints, 'utf8').digest('hex'),
    endpoints: loaded.table.size,
  };
}

/** How often the watched configuration folder is checked to still be the one watched, ms. */
const WATCH_CHECK_MS = 500;

/** What an endpoint is, as far as a reload's "modified" is concerned: all an operator sees of it. */
function fingerprint(e: Endpoint): string {
  return JSON.stringify([endpointProjection(e), poolProjection(e.pool)]);
}

/** What a reload changed, endpoint by endpoint; a slice a turn, as tables of tens of thousands take tens of ms. */
async function diffTablesInSlices(
  before: EndpointTable,
  after: EndpointTable,
): Promise<Pick<ReloadResult, 'added' | 'removed' | 'modified'>> {
  const old = new Map<string, Endpoint>();
  for (const e of before) old.set(e.key, e);
  const added: string[] = [];
  const modified: string[] = [];
  let n = 0;
  for (const e of after) {
    if (++n % EndpointTable.SLICE === 0) await nextTurn();
    const was = old.get(e.key);
    if (was === undefined) added.push(e.sipAddress);
    else if (fingerprint(was) !== fingerprint(e)) modified.push(e.sipAddress);
    old.delete(e.key);
  }
  return { added, removed: [...old.values()].map((e) => e.sipAddress), modified };
}

/** server.yaml sections that only a restart applies, when they differ. */
function restartOnly(before: LoadedConfig['server'], after: LoadedConfig['server']): string[] {
  const out: string[] = [];
  if (JSON.stringify(before.listen) !== JSON.stringify(after.listen)) out.push('listen');
  if (JSON.stringify(before.sip) !== JSON.stringify(after.sip)) out.push('sip');
  if (JSON.stringify(before.admin) !== JSON.stringify(after.admin)) out.push('admin');
  if (JSON.stringify(before.proxy) !== JSON.stringify(after.proxy)) out.push('proxy');
  if (JSON.stringify(before.lookup) !== JSON.stringify(after.lookup)) out.push('lookup');
  // The certificate files themselves are watched and reloaded; which files they are is read once.
  if (JSON.stringify(before.tls) !== JSON.stringify(after.tls)) out.push('tls');
  // access and limits.rate are applied live; the other limits shape listeners and the router.
  const fixedLimits = (l: LoadedConfig['server']['limits']): string => JSON.stringify({ ...l, rate: null });
  if (fixedLimits(before.limits) !== fixedLimits(after.limits)) out.push('limits');
  if (JSON.stringify(before.shutdown) !== JSON.stringify(after.shutdown)) out.push('shutdown');
  // The secret keys the routes and tags of dialogs already set up: it is taken once, at start.
  if (before.security.secret !== after.security.secret) out.push('security');
  if (before.log.pretty !== after.log.pretty) out.push('log.pretty');
  return out;
}

/**
 * Holds the configuration in effect and swaps a new one in. Reloads run one after another: each sees
 * the state the previous one left. None can hold the queue: every read has a timeout
 * (config.readTimeout), refuses what is not a regular file without waiting on it, and a large file is
 * checked on a worker thread that is stopped on close.
 */
export class Reloader {
  private configNow: LoadedConfig;
  private digestNow: TableDigest;
  /**
   * The live table. The router reads it once per request: a reload swaps the reference, and a request
   * already being decided finishes with the table it started with.
   */
  table: EndpointTable;
  private queue: Promise<unknown> = Promise.resolve();
  private lastSeen: SeenFiles;
  private readonly stopLoading = new AbortController();
  private closed = false;
  private watcher: FolderWatch | undefined;

  constructor(
    initial: LoadedConfig,
    private readonly deps: ReloadDeps,
  ) {
    this.configNow = initial;
    this.table = initial.table;
    this.digestNow = tableDigest(initial);
    this.lastSeen = [{ text: initial.texts.server }, { text: initial.texts.endpoints }, initial.users];
  }

  /** The configuration in effect: the endpoints last loaded, the server settings the service started with. */
  get current(): LoadedConfig {
    return this.configNow;
  }

  /** The digest of the table serving now: set with the table, so a refused reload leaves it. */
  get digest(): TableDigest {
    return this.digestNow;
  }

  /** Reads and validates the configuration again and swaps the table in; reloads run one at a time. */
  reload(trigger = 'api'): Promise<ReloadResult> {
    // SIGHUP and POST /reload also reread the certificates, for folders a watch cannot see into.
    if (trigger !== 'watch') this.deps.rereadCertificates();
    const run = this.queue.then(() => this.run(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Watches the configuration folder and reloads when a file in it changes. */
  async watch(debounceMs: number): Promise<void> {
    const reload = (): void => {
      this.reload('watch').catch((err: unknown) => this.deps.logger.error({ err }, 'reload failed'));
    };
    this.watcher = new FolderWatch(this.deps.configDir, this.deps.logger, debounceMs, reload);
    await this.watcher.start();
  }

  /** Stops watching and abandons a reload under way; nothing is applied or logged after this. */
  close(): void {
    this.closed = true;
    this.watcher?.stop();
    this.stopLoading.abort();
  }

  private async run(trigger: string): Promise<ReloadResult> {
    const { logger } = this.deps;
    const current = this.configNow;
    const base = { trigger, added: [], removed: [], modified: [], restartNeeded: [], issues: [] };
    // The last good read limits; a new server.yaml's limits apply to endpoints.yaml in this same load.
    const { seen, result } = await loadIfChanged(
      this.deps.configDir,
      {
        maxFileSize: current.server.config.maxFileSize,
        readTimeoutMs: current.server.config.readTimeout,
        signal: this.stopLoading.signal,
      },
      // Lock files, temp files and touches raise events too; only a change of content counts.
      trigger === 'watch' ? this.lastSeen : undefined,
    );
    this.lastSeen = seen;
    const endpoints = this.table.size;
    // Stopped meanwhile (the check was abandoned): nothing to apply, and nothing to log after "stopped".
    if (this.closed) return { ...base, ok: false, unchanged: false, endpoints };
    if (result === undefined) return { ...base, ok: true, unchanged: true, endpoints };
    if (result instanceof ConfigError) {
      this.deps.reloaded(false);
      const issues = result.issues.map(formatIssue);
      logger.error(
        { trigger, issues },
        `reload refused, still serving the last good table (${endpoints} endpoints): ${issues[0] ?? 'invalid'}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      );
      return { ...base, ok: false, unchanged: false, issues, endpoints };
    }
    return this.apply(result, trigger);
  }

  /** Swaps a configuration that passed the schema in, and says what changed. */
  private async apply(next: LoadedConfig, trigger: string): Promise<ReloadResult> {
    const { logger } = this.deps;
    const current = this.configNow;
    const diff = await diffTablesInSlices(this.table, next.table);
    const restartNeeded = restartOnly(current.server, next.server);
    // The log level is the one server.yaml setting applied live (unless the command line fixed it).
    let level = current.server.log.level;
    if (!this.deps.fixedLogLevel && next.server.log.level !== level) {
      level = next.server.log.level;
      logger.level = level;
    }
    this.table = next.table;
    this.digestNow = tableDigest(next);
    // Allow lists and the rate limit apply at once; the rest of server.yaml waits for a restart.
    this.deps.applied(next);
    this.configNow = {
      ...next,
      server: {
        ...current.server,
        log: { ...current.server.log, level },
        access: next.server.access,
        limits: { ...current.server.limits, rate: next.server.limits.rate },
        config: next.server.config,
      },
    };
    this.deps.reloaded(true);
    const size = this.table.size;
    for (const w of next.warnings) logger.warn({ warning: w }, 'configuration warning');
    logger.info(
      { trigger, ...diff, endpoints: size },
      `reload applied: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.modified.length} modified; ${size} endpoint${size === 1 ? '' : 's'}`,
    );
    if (restartNeeded.length > 0) {
      logger.warn(
        { trigger, restartNeeded },
        `${SERVER_FILE}: ${restartNeeded.join(', ')} changed: not applied, restart the service to apply`,
      );
    }
    return { trigger, ...diff, ok: true, unchanged: false, restartNeeded, issues: [], endpoints: size };
  }
}

/**
 * A watch on the configuration folder that survives the folder being removed or replaced. The folder
 * is watched, not the files: an editor's save-by-rename and a ConfigMap's `..data` symlink swap
 * replace the file, and a watch on the old file would see nothing after that.
 */
class FolderWatch {
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** The folder watched, as device:inode; undefined while it is not watched (lost, not back yet). */
  private watchedFolder: string | undefined;
  private checking = false;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly debounceMs: number,
    private readonly onChange: () => void,
  ) {}

  async start(): Promise<void> {
    const id = await this.folderId();
    if (id === undefined || !this.watchFolder(id)) {
      this.logger.warn(
        { dir: this.dir },
        'configuration folder not watched (it cannot be watched now): watching once it can be',
      );
    }
    this.checkTimer = setInterval(() => void this.check(), WATCH_CHECK_MS);
    this.checkTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.debounce);
    clearInterval(this.checkTimer);
    this.watcher?.close();
  }

  private folderId(): Promise<string | undefined> {
    return stat(this.dir).then(
      (s) => (s.isDirectory() ? `${s.dev}:${s.ino}` : undefined),
      () => undefined,
    );
  }

  private readonly onEvent = (): void => {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      void this.check();
      this.onChange();
    }, this.debounceMs);
  };

  private lose(why: string, err?: unknown): void {
    if (this.watchedFolder === undefined) return;
    this.watchedFolder = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.logger.warn(
      { dir: this.dir, why, ...(err === undefined ? {} : { err }) },
      `configuration folder no longer watched (${why}): watching again once it is back`,
    );
  }

  private watchFolder(id: string): boolean {
    let watcher: FSWatcher;
    try {
      watcher = watch(this.dir, { persistent: false }, this.onEvent);
    } catch {
      // Tried again at the next check (e.g. the system's inotify watches are all in use).
      return false;
    }
    this.watcher = watcher;
    watcher.on('error', (err) => this.lose('watch error', err));
    this.watchedFolder = id;
    return true;
  }

  // A watch dies without a word when its folder is removed (inotify drops it) or replaced by a new
  // one of the same name; a stat now and then notices, and watches the folder again once it is back.
  private async check(): Promise<void> {
    // One check at a time: two at once could both set up a watch, and one would leak.
    if (this.checking) return;
    this.checking = true;
    const id = await this.folderId().finally(() => (this.checking = false));
    if (this.stopped) return;
    if (this.watchedFolder !== undefined && id !== this.watchedFolder) {
      this.lose(id === undefined ? 'the folder is gone' : 'the folder was replaced');
    }
    if (this.watchedFolder === undefined && id !== undefined && this.watchFolder(id)) {
      this.logger.info({ dir: this.dir }, 'configuration folder watched again');
      // What changed while nobody watched.
      this.onChange();
    }
  }
}
