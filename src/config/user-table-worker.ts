// Worker thread entry: parses and validates one homing user table (user-table-check.ts) and posts
// back its parts, the typed arrays' buffers transferred: a million rows cross as four
// buffers, not a million objects to copy on the thread serving SIP.
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { userTableAnswer, type UserTableRequest } from './user-table-check.js';

// As check-worker.ts: on Linux this lowers the priority of this thread alone, so on a busy machine
// the scheduler prefers the thread serving SIP.
if (process.platform === 'linux') {
  try {
    setPriority(0, 10);
  } catch {
    // Not allowed here (a container's seccomp profile): the check runs at normal priority.
  }
}

const answer = userTableAnswer(workerData as UserTableRequest);
if ('parts' in answer) {
  const { keys, starts, slots, poolOfRow } = answer.parts;
  // Each array is on an ArrayBuffer of its own (UserTable.build allocates them), never a shared one.
  const buffers = [keys.buffer, starts.buffer, slots.buffer, poolOfRow.buffer] as ArrayBuffer[];
  parentPort?.postMessage(answer, buffers);
} else parentPort?.postMessage(answer);
