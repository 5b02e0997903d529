// Worker thread entry: checks one configuration file's text and posts the result back (check.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { checkKind, type WorkerRequest } from './check.js';

const { kind, text, file } = workerData as WorkerRequest;
parentPort?.postMessage(checkKind(kind, text, file));
