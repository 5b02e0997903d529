// The command line's exit codes (documented in the README) and the error that carries one.

import { ServiceError } from '../base/service-error.js';

export const EXIT = {
  ok: 0,
  /** Anything else went wrong: a port in use, an unreadable file, no answer from the service. */
  failure: 1,
  /** Bad arguments: an unknown flag, a missing value, a malformed address. */
  usage: 2,
  /** A configuration the schema refuses (as found, or as an edit would leave it). */
  config: 3,
  /** The endpoint or pool named does not exist. */
  notFound: 4,
  /** The change conflicts with what is there: a duplicate address, an ambiguous name. */
  conflict: 5,
  /** Another edit held the lock on endpoints.yaml for longer than --lock-timeout. */
  lockTimeout: 6,
  /** The operator answered no to a confirmation. */
  declined: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the command line reports as one message and an exit code. */
export class CliError extends ServiceError {
  readonly code = 'PCHAT_ERR_CLI_FAILURE';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
  }
}

/** A bad argument, named in the message. */
export function usage(message: string): CliError {
  return new CliError(EXIT.usage, message);
}
