// Safe rewrites of a configuration file: an exclusive lock so concurrent editors take turns, and an
// atomic replace (temp file in the same folder, fsync, rename, fsync of the folder) so a reader, the
// service or a crash never sees a half-written file.
import { randomBytes } from 'node:crypto';
import { link, open, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { ServiceError } from '../base/service-error.js';

/** An edit could not take the lock within its time limit: another edit holds it. */
export class LockTimeoutError extends ServiceError {
  readonly code = 'PCHAT_ERR_LOCK_TIMEOUT';
  constructor(
    readonly file: string,
    readonly timeoutMs: number,
  ) {
    super(`${file}: another edit holds the lock (${file}.lock); gave up after ${timeoutMs} ms`);
  }
}

// A lock whose holder died (crash, kill -9) is taken over once it has not been refreshed for this long;
// the holder refreshes it every STALE_MS / 2 while it works.
const STALE_MS = 5_000;
const RETRY_MS = 50;

/**
 * Runs `fn` holding the edit lock of `file` (a `<file>.lock` folder beside it). Waits at most
 * `timeoutMs` for another holder; throws LockTimeoutError after that.
 */
export async function withFileLock<T>(file: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const target = await realpath(file);
  let compromised: Error | undefined;
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(target, {
      stale: STALE_MS,
      update: STALE_MS / 2,
      realpath: false,
      lockfilePath: `${target}.lock`,
      retries: {
        retries: Math.max(0, Math.ceil(timeoutMs / RETRY_MS)),
        factor: 1,
        minTimeout: RETRY_MS,
        maxTimeout: RETRY_MS,
      },
      onCompromised: (err) => {
        compromised = err;
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new LockTimeoutError(file, timeoutMs);
    throw err;
  }
  try {
    const result = await fn();
    // Someone took the lock over while we held it (we stalled past STALE_MS): our write may have
    // raced theirs, so say so rather than report a clean success.
    if (compromised !== undefined)
      throw new Error(`${file}: the edit lock was lost while writing (${compromised.message})`);
    return result;
  } finally {
    await release().catch(() => undefined);
  }
}

export interface AtomicWriteHooks {
  /** Called after the temp file is written and synced, before it replaces the file (tests crash here). */
  readonly beforeRename?: (tempFile: string) => void | Promise<void>;
}

/** `text` written and synced to a new temp file beside `target`; removed again if that fails. */
async function writeTemp(target: string, text: string, mode: number): Promise<string> {
  const temp = join(
    dirname(target),
    `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  return temp;
}

/** A rename or link into `dir` is durable only once the folder's entry is on disk. */
async function syncFolder(dir: string): Promise<void> {
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } catch {
    // Some file systems refuse fsync on a folder; the rename or link has still happened.
  } finally {
    await dirHandle.close();
  }
}

/**
 * Replaces `file` with `text` atomically. A symlinked file (a Kubernetes ConfigMap mount, a dotfiles
 * repo) has its target replaced, so the link survives. The file's permission bits are kept.
 */
export async function writeFileAtomic(
  file: string,
  text: string,
  hooks: AtomicWriteHooks = {},
): Promise<void> {
  const target = await realpath(file);
  const temp = await writeTemp(target, text, (await stat(target)).mode & 0o7777);
  try {
    await hooks.beforeRename?.(temp);
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncFolder(dirname(target));
}

/**
 * Creates `file` with `text`, whole or not at all, and only if it is not there: written to a temp
 * file beside it, synced, then linked into place (link(2) refuses an existing name, where rename
 * would replace it). Throws EEXIST when another writer created it first.
 */
export async function createFileAtomic(file: string, text: string): Promise<void> {
  const temp = await writeTemp(file, text, 0o644);
  try {
    await link(temp, file);
  } finally {
    await rm(temp, { force: true });
  }
  await syncFolder(dirname(file));
}
