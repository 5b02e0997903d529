// Parsing and validation of a homing user table, on a worker thread when it is large: a CSV of a
// million users takes about 1.5 s of CPU to check, which on the event loop would stall SIP serving
// for as long during a reload. The worker posts back the table's parts (typed arrays, their buffers
// transferred) and the main thread puts the table together from them at once.
import {
  parseUserTable,
  UserTable,
  type UserTableIssue,
  type UserTableParts,
} from '../endpoints/user-table.js';
import { OFF_THREAD_BYTES, runCheckWorker } from './check-runner.js';
import type { ConfigIssue } from './errors.js';

/**
 * What the worker is given: the file's bytes (in shared memory when read so, else copied to it) and
 * the pools it may name.
 */
export interface UserTableRequest {
  readonly bytes: Uint8Array;
  readonly knownPools: readonly string[];
}

/** The worker's one answer. */
export type UserTableAnswer =
  { readonly parts: UserTableParts } | { readonly issues: readonly UserTableIssue[] };

export type UserTableChecked = { readonly table: UserTable } | { readonly issues: ConfigIssue[] };

/** Parses `bytes` on the calling thread: what the worker does, and small files everywhere. */
export function userTableAnswer(req: UserTableRequest): UserTableAnswer {
  const known = new Set(req.knownPools);
  // The bytes themselves: decoded a piece at a time, so the file's text is never all in memory at once.
  const parsed = parseUserTable(req.bytes, { knownPool: (p) => known.has(p) });
  return parsed.ok ? { parts: parsed.table.parts() } : { issues: parsed.issues };
}

/**
 * The heap the worker may use, in MB: the file's text comes a piece at a time and the table's arrays
 * are off the heap, but a file built to blow up (one field of the whole file) still ends its worker,
 * refused, instead of the process.
 */
function workerHeapMb(bytes: number): number {
  return Math.max(256, Math.ceil((bytes / 1_048_576) * 8));
}

// Built, the worker is the compiled user-table-worker.js beside this module; run from source (the
// tests' TypeScript transform) there is no such file, and the table is checked in-thread.
const WORKER_URL = import.meta.url.endsWith('.js')
  ? new URL('./user-table-worker.js', import.meta.url)
  : undefined;

function issuesOf(file: string, answer: { readonly issues: readonly UserTableIssue[] }): ConfigIssue[] {
  return answer.issues.map((i) => ({ file, line: i.line, column: i.column, path: '', reason: i.reason }));
}

function settle(file: string, answer: UserTableAnswer): UserTableChecked {
  return 'parts' in answer
    ? { table: UserTable.fromParts(answer.parts) }
    : { issues: issuesOf(file, answer) };
}

/**
 * Checks the user table `file` read as `bytes`, off the event loop when it is large. Settles with an
 * issue, never hangs: the worker is stopped after CHECK_TIMEOUT_MS or when `signal` aborts.
 */
export function checkUserTable(
  bytes: Uint8Array,
  file: string,
  knownPools: readonly string[],
  signal?: AbortSignal,
): Promise<UserTableChecked> {
  const request: UserTableRequest = { bytes, knownPools };
  if (WORKER_URL === undefined || bytes.byteLength < OFF_THREAD_BYTES)
    return Promise.resolve(settle(file, userTableAnswer(request)));
  return inWorker(WORKER_URL, request, file, signal);
}

function inWorker(
  url: URL,
  request: UserTableRequest,
  file: string,
  signal: AbortSignal | undefined,
): Promise<UserTableChecked> {
  return runCheckWorker<UserTableChecked>({
    url,
    workerData: request,
    heapMb: workerHeapMb(request.bytes.byteLength),
    signal,
    refused: (reason) => ({ issues: [{ file, line: 0, column: 0, path: '', reason }] }),
    onMessage: (answer, done) => done(settle(file, answer as UserTableAnswer)),
  });
}
