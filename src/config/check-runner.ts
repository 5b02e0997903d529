// Running one configuration check on a worker thread: settled with the worker's answer or with a
// refusal, never left hanging. The worker is stopped when it answers, after CHECK_TIMEOUT_MS, when the
// service stops (the abort signal), when it runs out of its heap or when it dies. Shared by the YAML
// checks (check.ts) and the user table checks (user-table-check.ts); it imports nothing of either, so
// neither worker loads the other's modules.
import { Worker } from 'node:worker_threads';

/**
 * Files shorter than this are checked on the calling thread: a worker costs about 30 ms to start,
 * more than a YAML file this size takes to check (about 20 ms).
 */
export const OFF_THREAD_BYTES = 64 * 1024;
/** A worker that has not answered by then is stopped and the file refused. */
export const CHECK_TIMEOUT_MS = 60_000;

export interface CheckRun<T> {
  readonly url: URL;
  readonly workerData: unknown;
  /** The heap the check may use, MB: a file built to blow up ends its worker, not the process. */
  readonly heapMb: number;
  readonly signal: AbortSignal | undefined;
  /** The result for a check that did not answer, with the reason. */
  readonly refused: (reason: string) => T;
  /** Each message of the worker; `done` settles the check (more messages may come before it). */
  readonly onMessage: (message: unknown, done: (result: T) => void) => void;
}

export function runCheckWorker<T>(run: CheckRun<T>): Promise<T> {
  const { signal, refused, heapMb } = run;
  return new Promise((resolve) => {
    const worker = new Worker(run.url, {
      workerData: run.workerData,
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    let settled = false;
    const done = (result: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      resolve(result);
    };
    const onAbort = (): void => done(refused('check abandoned: the service is stopping'));
    const timer = setTimeout(
      () => done(refused(`validation took longer than ${CHECK_TIMEOUT_MS} ms: given up`)),
      CHECK_TIMEOUT_MS,
    );
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted === true) onAbort();
    worker.on('message', (m: unknown) => {
      try {
        run.onMessage(m, done);
      } catch (err) {
        done(refused(`validation failed: ${(err as Error).message}`));
      }
    });
    worker.once('error', (err) =>
      done(
        refused(
          (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `validation needed more than ${heapMb} MB of memory: refused`
            : `validation failed: ${err.message}`,
        ),
      ),
    );
    worker.once('exit', (code) => done(refused(`validation stopped (worker exit code ${code})`)));
  });
}
