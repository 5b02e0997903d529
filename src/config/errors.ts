// Errors for configuration refused at load time, each issue pinned to a file, line, column and field path.

import { ServiceError } from '../base/service-error.js';

/** One problem found in a configuration file; line and column are 1-based. */
export interface ConfigIssue {
  file: string;
  /** 0 (with column 0) when the issue concerns the file as a whole, e.g. it cannot be read. */
  line: number;
  column: number;
  /** Field path in the file, e.g. `endpoints[1].sipAddress`; empty for the document as a whole. */
  path: string;
  reason: string;
}

/** `file:line:col: path: reason`, the form editors and terminals turn into a link to the spot. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === 0 ? issue.file : `${issue.file}:${issue.line}:${issue.column}`;
  return issue.path === '' ? `${where}: ${issue.reason}` : `${where}: ${issue.path}: ${issue.reason}`;
}

/**
 * Every problem found in one pass over the configuration, so an operator can fix them all at once.
 * The message holds each issue on its own line.
 */
export class ConfigError extends ServiceError {
  readonly code = 'PCHAT_ERR_CONFIG_INVALID';
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}
