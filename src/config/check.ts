// Validation of one configuration file's text against its schema and rules, on the calling thread
// for small files and on a worker thread for large ones: YAML parsing and validation of a 4 MiB
// endpoints.yaml take about 1.5 s of CPU, which on the event loop would stall SIP for as long.
import type * as z from 'zod';
import { OFF_THREAD_BYTES, runCheckWorker } from './check-runner.js';
import type { ConfigIssue } from './errors.js';
import { schemaIssues, sortIssues } from './issues.js';
import { endpointsRules } from './rules.js';
import {
  endpointsConfigSchema,
  serverConfigSchema,
  type EndpointsConfig,
  type ServerConfig,
} from './schema.js';
import { YamlSource } from './yaml-source.js';

export interface Checked<T> {
  value: T | undefined;
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

export type FileKind = 'server' | 'endpoints';

/** Issues listed at most per file: the rest are counted in one line (a reload log, a /reload answer). */
export const MAX_ISSUES = 100;

function capped(issues: ConfigIssue[], file: string): ConfigIssue[] {
  if (issues.length <= MAX_ISSUES) return issues;
  const more = issues.length - MAX_ISSUES;
  return [
    ...issues.slice(0, MAX_ISSUES),
    {
      file,
      line: 0,
      column: 0,
      path: '',
      reason: `and ${more} more problem${more === 1 ? '' : 's'} not listed`,
    },
  ];
}

function checkWith<T>(
  schema: z.ZodType<T>,
  text: string,
  file: string,
  rules?: (source: YamlSource) => { issues: ConfigIssue[]; warnings: ConfigIssue[] },
): Checked<T> {
  const source = YamlSource.parse(text, file);
  if (Array.isArray(source)) return { value: undefined, issues: capped(source, file), warnings: [] };
  const result = schema.safeParse(source.data);
  const issues = result.success ? [] : schemaIssues(source, result.error);
  const found = rules?.(source) ?? { issues: [], warnings: [] };
  issues.push(...found.issues);
  return {
    value: result.success && issues.length === 0 ? result.data : undefined,
    issues: capped(sortIssues(issues), file),
    warnings: capped(sortIssues(found.warnings), file),
  };
}

export function checkServer(text: string, file: string): Checked<ServerConfig> {
  return checkWith(serverConfigSchema, text, file);
}

export function checkEndpoints(text: string, file: string): Checked<EndpointsConfig> {
  return checkWith(endpointsConfigSchema, text, file, endpointsRules);
}

export function checkKind(kind: FileKind, text: string, file: string): Checked<unknown> {
  return kind === 'server' ? checkServer(text, file) : checkEndpoints(text, file);
}

/**
 * The heap a check may use, in MB: a 4 MiB endpoints.yaml needs between 128 and 256. A file built to
 * blow up when parsed ends its worker, refused, instead of the process.
 */
function workerHeapMb(chars: number): number {
  return Math.max(256, Math.ceil((chars / 1_048_576) * 96));
}

export interface WorkerRequest {
  kind: FileKind;
  text: string;
  file: string;
}

/** The worker's answer: the result first, then (for a long list) its endpoints a slice at a time. */
export type WorkerMessage =
  { checked: Checked<unknown>; more: boolean } | { endpoints: unknown[]; more: boolean };

/** Endpoints per message from the worker: about 3 ms of copying each on the receiving side. */
export const ENDPOINTS_PER_MESSAGE = 1024;

// Built (dist/config/check.js), the worker is the compiled check-worker.js beside this module. Run
// from source (the tests' TypeScript transform) there is no such file, so the check stays in-thread.
const WORKER_URL = import.meta.url.endsWith('.js')
  ? new URL('./check-worker.js', import.meta.url)
  : undefined;

/**
 * Checks `text` as a `kind` file, off the event loop when it is large. Settles with an issue, never
 * hangs: the worker is stopped after CHECK_TIMEOUT_MS or when `signal` aborts.
 */
export async function checkText(
  kind: 'server',
  text: string,
  file: string,
  signal?: AbortSignal,
): Promise<Checked<ServerConfig>>;
export async function checkText(
  kind: 'endpoints',
  text: string,
  file: string,
  signal?: AbortSignal,
): Promise<Checked<EndpointsConfig>>;
export async function checkText(
  kind: FileKind,
  text: string,
  file: string,
  signal?: AbortSignal,
): Promise<Checked<unknown>> {
  if (WORKER_URL === undefined || text.length < OFF_THREAD_BYTES) return checkKind(kind, text, file);
  let result: Checked<unknown> | undefined;
  return runCheckWorker<Checked<unknown>>({
    url: WORKER_URL,
    workerData: { kind, text, file } satisfies WorkerRequest,
    heapMb: workerHeapMb(text.length),
    signal,
    refused: (reason) => ({
      value: undefined,
      issues: [{ file, line: 0, column: 0, path: '', reason }],
      warnings: [],
    }),
    onMessage: (message, done) => {
      const m = message as WorkerMessage;
      if ('checked' in m) result = m.checked;
      else (result?.value as { endpoints: unknown[] } | undefined)?.endpoints.push(...m.endpoints);
      if (!m.more && result !== undefined) done(result);
    },
  });
}
