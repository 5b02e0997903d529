// Reads and validates the configuration files: server.yaml (service settings) and endpoints.yaml (the
// endpoint table). Everything past this point trusts what it returns.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as z from 'zod';
import { EndpointTable } from '../endpoints/table.js';
import { ConfigError, formatIssue, type ConfigIssue } from './errors.js';
import { schemaIssues, sortIssues } from './issues.js';
import { endpointsRules } from './rules.js';
import {
  endpointsConfigSchema,
  serverConfigSchema,
  type EndpointsConfig,
  type ServerConfig,
} from './schema.js';
import { YamlSource } from './yaml-source.js';

export const SERVER_FILE = 'server.yaml';
export const ENDPOINTS_FILE = 'endpoints.yaml';

interface Checked<T> {
  value: T | undefined;
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

function checkWith<T>(
  schema: z.ZodType<T>,
  text: string,
  file: string,
  rules?: (source: YamlSource) => { issues: ConfigIssue[]; warnings: ConfigIssue[] },
): Checked<T> {
  const source = YamlSource.parse(text, file);
  if (Array.isArray(source)) return { value: undefined, issues: source, warnings: [] };
  const result = schema.safeParse(source.data);
  const issues = result.success ? [] : schemaIssues(source, result.error);
  const found = rules?.(source) ?? { issues: [], warnings: [] };
  issues.push(...found.issues);
  return {
    value: result.success && issues.length === 0 ? result.data : undefined,
    issues: sortIssues(issues),
    warnings: sortIssues(found.warnings),
  };
}

function checkServer(text: string, file: string): Checked<ServerConfig> {
  return checkWith(serverConfigSchema, text, file);
}

function checkEndpoints(text: string, file: string): Checked<EndpointsConfig> {
  return checkWith(endpointsConfigSchema, text, file, endpointsRules);
}

function orThrow<T>(checked: Checked<T>): T {
  if (checked.value === undefined) throw new ConfigError(checked.issues);
  return checked.value;
}

/** Validates the text of server.yaml; `file` is the name used in messages. Throws ConfigError. */
export function parseServerConfig(text: string, file: string): ServerConfig {
  return orThrow(checkServer(text, file));
}

/** Validates the text of endpoints.yaml; `file` is the name used in messages. Throws ConfigError. */
export function parseEndpointsConfig(text: string, file: string): EndpointsConfig {
  return orThrow(checkEndpoints(text, file));
}

/**
 * As parseEndpointsConfig, also returning what is allowed but probably unintended (a pool no endpoint
 * uses, lookupUris on an endpoint not in lookup mode), for `check` and reload to report.
 */
export function checkEndpointsConfig(
  text: string,
  file: string,
): { config: EndpointsConfig; warnings: ConfigIssue[] } {
  const checked = checkEndpoints(text, file);
  return { config: orThrow(checked), warnings: checked.warnings };
}

async function readText(file: string): Promise<string | ConfigIssue> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot read: ${String(err)}`;
    return { file, line: 0, column: 0, path: '', reason };
  }
}

export interface LoadedConfig {
  server: ServerConfig;
  endpoints: EndpointsConfig;
  table: EndpointTable;
  files: { server: string; endpoints: string };
  /** The text of each file as read, so a reload can tell a real change from a touch. */
  texts: { server: string; endpoints: string };
  /** Formatted like issues: `file:line:col: path: reason`. */
  warnings: string[];
}

/**
 * Loads server.yaml and endpoints.yaml from `dir` and builds the endpoint table. Problems in both files
 * are reported together in one ConfigError. Messages name the files as `dir` was given.
 */
export async function loadConfig(dir: string): Promise<LoadedConfig> {
  const files = { server: join(dir, SERVER_FILE), endpoints: join(dir, ENDPOINTS_FILE) };
  const [serverText, endpointsText] = await Promise.all([readText(files.server), readText(files.endpoints)]);
  const server = typeof serverText === 'string' ? checkServer(serverText, files.server) : failed(serverText);
  const endpoints =
    typeof endpointsText === 'string'
      ? checkEndpoints(endpointsText, files.endpoints)
      : failed(endpointsText);
  if (server.value === undefined || endpoints.value === undefined) {
    throw new ConfigError([...server.issues, ...endpoints.issues]);
  }
  return {
    server: server.value,
    endpoints: endpoints.value,
    table: EndpointTable.fromConfig(endpoints.value),
    files,
    texts: { server: serverText as string, endpoints: endpointsText as string },
    warnings: [...server.warnings, ...endpoints.warnings].map(formatIssue),
  };
}

function failed(issue: ConfigIssue): Checked<never> {
  return { value: undefined, issues: [issue], warnings: [] };
}

/**
 * The config/ folder shipped with the package. This module sits two levels below the package root both
 * as source (src/config/) and built (dist/config/), so one relative URL serves both.
 */
export function defaultConfigDir(): string {
  return fileURLToPath(new URL('../../config', import.meta.url));
}
