// Worker thread entry: checks one configuration file's text and posts the result back (check.ts).
// A long endpoint list goes in slices, each a message of its own: the receiving event loop then
// copies one slice per turn instead of the whole table in one go (tens of ms for 30,000 endpoints).
import { parentPort, workerData } from 'node:worker_threads';
import { checkKind, ENDPOINTS_PER_MESSAGE, type WorkerMessage, type WorkerRequest } from './check.js';

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
