// Turns the schema's findings into issues an operator can act on: each at its line and column, in
// words that say what was expected and what was found.
import type * as z from 'zod';
import type { ConfigIssue } from './errors.js';
import { ALLOWED_KEYS } from './schema.js';
import type { ConfigPath, YamlSource } from './yaml-source.js';

/** The raw value at `path`, or `undefined` when the file has nothing there. */
export function valueAt(data: unknown, path: ConfigPath): unknown {
  let value = data;
  for (const segment of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Longest string value quoted back in a message; the operator has the file for the rest. */
const QUOTE_MAX = 60;

/** `text` in double quotes, cut at QUOTE_MAX characters. */
function quote(text: string): string {
  return text.length > QUOTE_MAX ? `${JSON.stringify(text.slice(0, QUOTE_MAX))}…` : JSON.stringify(text);
}

function describe(value: unknown, path: ConfigPath = ['']): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // A whole document that is one string is no configuration the operator wrote as such (some other
  // file, a pasted secret): say what it is, never what it says.
  if (typeof value === 'string' && path.length === 0) return 'text, not a YAML mapping';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

/** A near miss among `allowed`, for "did you mean" hints on misspelt keys. */
function closest(word: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const d = candidate.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** What the alternatives of a union accept, e.g. `"auto" or true or false`. */
function alternatives(errors: readonly (readonly z.core.$ZodIssue[])[]): string {
  const parts: string[] = [];
  for (const branch of errors) {
    const first = branch[0];
    if (first?.code === 'invalid_type') parts.push(EXPECTED[first.expected] ?? first.expected);
    else if (first?.code === 'invalid_value')
      parts.push(first.values.map((v) => JSON.stringify(v)).join(' or '));
  }
  return parts.join(' or ');
}

function bound(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, found: unknown): string {
  const word = issue.code === 'too_small' ? 'least' : 'most';
  const limit = String(issue.code === 'too_small' ? issue.minimum : issue.maximum);
  if (Array.isArray(found)) {
    return `must have at ${word} ${limit} ${limit === '1' ? 'entry' : 'entries'}, got ${found.length}`;
  }
  if (typeof found === 'string') return `must be at ${word} ${limit} characters long, got ${found.length}`;
  if (issue.inclusive === false) {
    return `must be ${word === 'least' ? 'greater' : 'less'} than ${limit}, got ${describe(found)}`;
  }
  return `must be at ${word} ${limit}, got ${describe(found)}`;
}

/** One issue per problem the schema found, in file order. */
export function schemaIssues(source: YamlSource, error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path;
    const found = valueAt(source.data, path);
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = issue.message.startsWith(ALLOWED_KEYS)
          ? issue.message.slice(ALLOWED_KEYS.length).split(', ')
          : [];
        for (const key of issue.keys) {
          const hint = closest(key, allowed);
          const reason = `unknown key ${quote(key)}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; ${issue.message}`;
          out.push(source.issue([...path, key], reason, 'key'));
        }
        break;
      }
      case 'invalid_type':
        out.push(
          source.issue(
            path,
            found === undefined
              ? 'is required'
              : `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describe(found, path)}`,
          ),
        );
        break;
      case 'invalid_value':
        out.push(
          source.issue(
            path,
            `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(found)}`,
          ),
        );
        break;
      case 'invalid_union':
        out.push(source.issue(path, `expected ${alternatives(issue.errors)}, got ${describe(found, path)}`));
        break;
      case 'too_small':
      case 'too_big':
        out.push(source.issue(path, bound(issue, found)));
        break;
      default:
        out.push(source.issue(path, issue.message));
    }
  }
  return sortIssues(out);
}

/** File order, which is the order an operator fixes them in; the sort is stable for ties. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}
