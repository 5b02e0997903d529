// Errors of the SIP message layer: each carries the status code an element should answer with.

import { ServiceError } from '../base/service-error.js';

/** A message that cannot be accepted; `status` is the response to send when one can be routed. */
export class SipParseError extends ServiceError {
  readonly code = 'SIP_PARSE';
  constructor(
    /** Short reason phrase, safe to put on a status line (ASCII, no CR/LF). */
    readonly reason: string,
    /** 400 by default; 505 for an unsupported version, 416/420/501/513 where they fit. */
    readonly status: number = 400,
  ) {
    super(reason);
  }
}
