// Makes sure a process a test starts (drachtio-server, `serve`, Kamailio) does not outlive the test
// process. An 'exit' listener covers a normal end, but vitest ends its workers with SIGTERM and then
// SIGKILL, where no listener runs: so each child also gets a watchdog, a shell blocked reading a pipe
// from us, which kills the child when the pipe closes, that is when this process is gone however it
// ended.
import { spawn, type ChildProcess } from 'node:child_process';

/** Every child tracked and not yet seen to exit, killed when the test process exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

export function trackChild(child: ChildProcess): void {
  running.add(child);
  const watchdog = spawn('sh', ['-c', 'read _line; kill -KILL "$0" 2>/dev/null', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither the watchdog nor its pipe may keep the test process alive.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.stdin?.on('error', () => undefined);
  child.once('exit', () => {
    running.delete(child);
    // Gone first, so its pid, once free for reuse, is never killed by mistake.
    watchdog.kill('SIGKILL');
  });
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Only synchronous work runs in an 'exit' listener: a plain SIGKILL, no waiting.
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}
