// The one error the pure SIP grammar helpers throw: a malformed value, with a reason fit for a 400 reason phrase.

import { ServiceError } from '../base/service-error.js';

/**
 * Thrown by every parse function in `src/sip/` on input that does not match the RFC 3261 grammar.
 * `reason` is a short ASCII phrase with no CR/LF, safe to put straight into a status line
 * (e.g. `400 Bad Request URI: unterminated IPv6 reference`).
 */
export class SipGrammarError extends ServiceError {
  readonly code = 'SIP_GRAMMAR';
  readonly reason: string;

  constructor(reason: string) {
    // A reason phrase ends up in a status line: anything outside printable ASCII could split or corrupt it.
    const safe = toReasonPhrase(reason);
    super(safe);
    this.reason = safe;
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
