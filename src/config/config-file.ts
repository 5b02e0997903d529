// Reads one configuration file under the rules that keep a reload from wedging or ballooning: only a
// regular file, only inside the configuration folder when reached through a symlink, never more than
// a size limit, and never waiting longer than a timeout. A refusal names the file and the reason and
// never quotes what was (or would have been) read.
import { constants } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import type { ConfigIssue } from './errors.js';
import { ServiceError } from '../base/service-error.js';
import { withTimeout } from '../base/with-timeout.js';

/** Default largest configuration file read (server.yaml `config.maxFileSize`): 4 MiB. */
export const DEFAULT_MAX_FILE_SIZE = 4 * 1024 * 1024;
/** Largest homing user table read unless server.yaml says otherwise (config.maxUserTableSize). */
export const DEFAULT_MAX_USER_TABLE_SIZE = 256 * 1024 * 1024;
/** The largest `config.maxFileSize` allowed: 1 GiB. */
export const MAX_FILE_SIZE_CEILING = 1024 * 1024 * 1024;
/** Default time one file may take to be opened and read (server.yaml `config.readTimeout`), ms. */
export const DEFAULT_READ_TIMEOUT = 5_000;

export interface ReadRules {
  /** Largest size read, in bytes; a larger file is refused after reading at most this plus one byte. */
  readonly maxFileSize: number;
  /** The setting that sets maxFileSize, named when a file is over it; default `config.maxFileSize`. */
  readonly limitName?: string;
  /** A read that has not finished by then is given up (the file may sit on a hung mount). */
  readonly timeoutMs: number;
  /**
   * The folder the file must resolve into, symlinks followed (as a Kubernetes ConfigMap's `..data`
   * links do); undefined: anywhere (certificates, which Let's Encrypt links from `live/` to `archive/`).
   */
  readonly root?: string | undefined;
}

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever, in one of the
// four threads every file operation of the process shares. On a regular file it changes nothing.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
// O_NOFOLLOW: within a folder the path opened is already resolved; a symlink swapped in since is
// refused, not followed.
const OPEN_RESOLVED = OPEN_FLAGS | constants.O_NOFOLLOW;

/** Thrown inside the reader; becomes the issue's reason. */
class Refused extends ServiceError {
  readonly code = 'PCHAT_ERR_CONFIG_FILE_REFUSED';
}

function kindOf(s: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  // Not startsWith('..'): a ConfigMap's own `..data` and `..2026_01_…` names are inside.
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function tooLarge(size: string, limit: number, name: string): string {
  return `is ${size} bytes, over the limit of ${limit} bytes (${name}): not read`;
}

/** The descriptor's own type and size decide, so a file swapped after a stat changes nothing. */
async function readBounded(fh: FileHandle, limit: number, name: string): Promise<Buffer> {
  const st = await fh.stat();
  if (!st.isFile()) throw new Refused(`is ${kindOf(st)}, not a regular file: not read`);
  if (st.size > limit) throw new Refused(tooLarge(String(st.size), limit, name));
  // The file may grow between the stat and the read: never hold more than limit + 1 bytes, which is
  // enough to know it went over.
  const cap = limit + 1;
  let buf = Buffer.allocUnsafe(Math.min(cap, st.size + 1));
  let total = 0;
  for (;;) {
    if (total === buf.length) {
      if (buf.length >= cap) break;
      const bigger = Buffer.allocUnsafe(Math.min(cap, buf.length * 2));
      buf.copy(bigger, 0, 0, total);
      buf = bigger;
    }
    const { bytesRead } = await fh.read(buf, total, buf.length - total, total);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  if (total > limit) throw new Refused(tooLarge(`more than ${limit}`, limit, name));
  return buf.subarray(0, total);
}

async function readRuled(file: string, rules: ReadRules): Promise<Buffer> {
  let path = file;
  let flags = OPEN_FLAGS;
  if (rules.root !== undefined) {
    const [root, real] = await Promise.all([realpath(rules.root), realpath(file)]);
    if (!inside(root, real)) {
      throw new Refused(
        `resolves to ${real}, outside the configuration folder ${root}: symlinks are followed only within it; not read`,
      );
    }
    path = real;
    flags = OPEN_RESOLVED;
  }
  let fh: FileHandle;
  try {
    fh = await open(path, flags);
  } catch (err) {
    // A socket (or a device with nothing behind it) cannot be opened at all: say what it is.
    if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
    throw new Refused(`is ${kindOf(await stat(path))}, not a regular file: not read`);
  }
  try {
    return await readBounded(fh, rules.maxFileSize, rules.limitName ?? 'config.maxFileSize');
  } finally {
    await fh.close().catch(() => undefined);
  }
}

const timedOut = (ms: number): string => `could not be read within ${ms} ms (config.readTimeout): given up`;

function reasonFor(err: unknown): string {
  if (err instanceof Refused) return err.message;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'file not found';
    case 'ELOOP':
      return 'is a symbolic link (it changed while being read, or loops): not read';
    case 'EACCES':
    case 'EPERM':
      return 'cannot read: permission denied';
    default:
      // The error's own text names the path and the call, never the file's content.
      return `cannot read: ${code ?? (err instanceof Error ? err.message : String(err))}`;
  }
}

/**
 * Reads `file` as UTF-8 text under `rules`, or says why not as an issue on the file as a whole.
 * Settles within `rules.timeoutMs` whatever the file is; a read given up finishes (and closes its
 * descriptor) on its own when the system lets it.
 */
export function readConfigFile(file: string, rules: ReadRules): Promise<string | ConfigIssue> {
  const issue = (reason: string): ConfigIssue => ({ file, line: 0, column: 0, path: '', reason });
  const read = readRuled(file, rules).then(
    (buf) =>
      // YAML allows no NUL character; a file holding one is binary, and quoting it would help nobody.
      buf.includes(0) ? issue('holds NUL bytes: not a text file') : buf.toString('utf8'),
    (err: unknown) => issue(reasonFor(err)),
  );
  return withTimeout(read, rules.timeoutMs, () => issue(timedOut(rules.timeoutMs)));
}

/** The bytes of `file` under `rules` (certificates); on refusal an Error whose message is the reason. */
export async function readRuledBytes(file: string, rules: ReadRules): Promise<Buffer> {
  const read = readRuled(file, rules).then(
    (buf) => buf,
    (err: unknown) => new Error(reasonFor(err)),
  );
  const out = await withTimeout<Buffer | Error>(
    read,
    rules.timeoutMs,
    () => new Error(timedOut(rules.timeoutMs)),
  );
  if (out instanceof Error) throw out;
  return out;
}
