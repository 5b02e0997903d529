// The one error of the SIP layer: a message, or a value in it, that does not follow the grammar or
// cannot be accepted as it stands. It carries the status an element should answer with and a reason
// fit for that response's status line.

import { ServiceError } from '../base/service-error.js';

/**
 * Thrown by every parse function in `src/sip/` on input that does not match the RFC 3261 grammar, and
 * returned by the parser, the framer and the validator for a message that cannot be accepted.
 * `reason` is a short ASCII phrase with no CR/LF, safe to put straight into a status line
 * (e.g. `400 Bad Request URI: unterminated IPv6 reference`).
 */
export class SipParseError extends ServiceError {
  readonly code = 'PCHAT_ERR_SIP_PARSE';
  readonly reason: string;
  /** 400 by default; 505 for an unsupported version, 416/420/501/513 where they fit. */
  readonly status: number;

  constructor(reason: string, status = 400) {
    // A reason phrase ends up in a status line: anything outside printable ASCII could split or corrupt it.
    const safe = toReasonPhrase(reason);
    super(safe);
    this.reason = safe;
    this.status = status;
  }
}

function toReasonPhrase(text: string): string {
  let clean = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      clean = false;
      break;
    }
  }
  if (clean) return text.length > 0 ? text : 'Bad Request';
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += c < 0x20 || c > 0x7e ? '?' : text.charAt(i);
  }
  return out;
}
