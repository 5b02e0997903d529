// Homing: the pool a caller of an endpoint is led to. An endpoint's rules are tried in order (a
// pattern on the caller's user@domain, or a user table); the first that names a pool decides, and
// with none the endpoint's own poolFqdn stands. Pure: the caller's key in, a pool name out.

import { domainNameKey } from './domain-name.js';
import type { UserTable } from './user-table.js';
import { userKey } from './user-table.js';

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
 * The caller's key (see userKey) from a From or P-Asserted-Identity value: the URI in angle
 * brackets when there are some (a display name may come first), else the value up to its parameters.
 */
export function callerKey(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const open = value.indexOf('<');
  if (open >= 0) {
    const close = value.indexOf('>', open);
    return close < 0 ? undefined : userKey(value.slice(open + 1, close));
  }
  return userKey(value);
}
