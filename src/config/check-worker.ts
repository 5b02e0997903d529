// Worker thread entry: checks one configuration file's text and posts the result back (check.ts).
// A long endpoint list goes in slices, each a message of its own: the receiving event loop then
// copies one slice per turn instead of the whole table in one go (tens of ms for 30,000 endpoints).
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { checkKind, ENDPOINTS_PER_MESSAGE, type WorkerMessage, type WorkerRequest } from './check.js';

// On a busy machine the check competes for the CPU with the thread serving SIP: let the scheduler
// prefer that one. On Linux, setpriority on pid 0 applies to the calling thread only (each thread is
// a task of its own); elsewhere it would lower the whole process, so it is left alone there.
if (process.platform === 'linux') {
  try {
    setPriority(0, 10);
  } catch {
    // Not allowed here (a container's seccomp profile): the check runs at normal priority.
  }
}

const { kind, text, file } = workerData as WorkerRequest;
const checked = checkKind(kind, text, file);
const post = (m: WorkerMessage): void => parentPort?.postMessage(m);
const value = checked.value as { endpoints?: unknown[] } | undefined;
const list = kind === 'endpoints' ? value?.endpoints : undefined;
if (list === undefined || list.length <= ENDPOINTS_PER_MESSAGE) {
  post({ checked, more: false });
} else {
  post({ checked: { ...checked, value: { ...value, endpoints: [] } }, more: true });
  for (let i = 0; i < list.length; i += ENDPOINTS_PER_MESSAGE) {
    const last = i + ENDPOINTS_PER_MESSAGE >= list.length;
    post({ endpoints: list.slice(i, i + ENDPOINTS_PER_MESSAGE), more: !last });
  }
}
