// A promise raced against a timer: for work that may never settle (a read on a hung mount, a close
// that waits on a stuck socket). The timer is unref'd, so it never keeps the process alive itself.

/** Settles within `timeoutMs` whatever `work` does, with `late()` if the time runs out first. */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(late()), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
