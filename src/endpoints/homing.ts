// Homing: the pool a caller of an endpoint is led to. An endpoint's rules are tried in order (a
// pattern on the caller's user@domain, or a user table); the first that names a pool decides, and
// with none the endpoint's own poolFqdn stands. Pure: the caller's key in, a pool name out.

import { domainNameKey } from './domain-name.js';
import type { UserTable } from './user-table.js';
import { callerKey } from './user-table.js';

// Where it was first defined: the CLI's trace and tests import it from here.
export { callerKey } from './user-table.js';

export type HomingRule =
  | {
      readonly kind: 'callers';
      /** As written, e.g. `*@emea.contoso.com`. */
      readonly pattern: string;
      readonly regex: RegExp;
      /** As Pool.fqdn: lower case, no trailing dot. */
      readonly pool: string;
    }
  | { readonly kind: 'users'; readonly file: string; readonly table: UserTable };

/** What chose a caller's pool, for the decision line: `callers *@emea.contoso.com`, `users users.csv`. */
export function ruleName(rule: HomingRule): string {
  return rule.kind === 'callers' ? `callers ${rule.pattern}` : `users ${rule.file}`;
}

/** A caller pattern as a rule: `*` is any text; compared without case. */
export function callersRule(pattern: string, pool: string): HomingRule {
  const escaped = pattern
    .toLowerCase()
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return { kind: 'callers', pattern, regex: new RegExp(`^${escaped}$`), pool: domainNameKey(pool) };
}

/** The pool the first matching rule names for `caller` (a userKey), and the rule; undefined for none. */
export function homePool(
  rules: readonly HomingRule[],
  caller: string,
): { readonly pool: string; readonly rule: HomingRule } | undefined {
  for (const rule of rules) {
    if (rule.kind === 'callers') {
      if (rule.regex.test(caller)) return { pool: rule.pool, rule };
      continue;
    }
    const pool = rule.table.poolKeyOf(caller);
    if (pool !== undefined) return { pool, rule };
  }
  return undefined;
}

/**
 * homePool(rules, callerKey(value)) for a From or P-Asserted-Identity value, on each request's path:
 * the key is made only for a callers pattern; a user table looks the caller up straight off `value`.
 */
export function homePoolOf(
  rules: readonly HomingRule[],
  value: string | undefined,
): { readonly pool: string; readonly rule: HomingRule } | undefined {
  if (value === undefined) return undefined;
  let key: string | undefined | null = null;
  for (const rule of rules) {
    if (rule.kind === 'callers') {
      if (key === null) key = callerKey(value);
      if (key === undefined) return undefined;
      if (rule.regex.test(key)) return { pool: rule.pool, rule };
      continue;
    }
    const pool = rule.table.poolKeyOfCaller(value);
    if (pool !== undefined) return { pool, rule };
  }
  return undefined;
}
