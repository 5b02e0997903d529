// Reading the RFC 4475 torture messages in grammar tests: header values straight from the bytes
// (independently of the project's own parser), and the reason a grammar function refuses a value.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SipParseError } from '../../src/sip/errors.js';

export const FIXTURES = join(import.meta.dirname, '../fixtures/rfc4475');

const COMPACT: Record<string, string> = {
  i: 'call-id',
  l: 'content-length',
  v: 'via',
  m: 'contact',
  f: 'from',
  t: 'to',
};

/** The unfolded, trimmed values of header `name` (long name; compact forms are matched too) in an RFC 4475 message. */
export function headerValues(message: string, name: string): string[] {
  const raw = readFileSync(join(FIXTURES, `${message}.dat`)).toString('latin1');
  const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const hname = line
      .slice(0, colon)
      .replace(/[ \t]+$/, '')
      .toLowerCase();
    if ((COMPACT[hname] ?? hname) === name.toLowerCase())
      out.push(line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return out;
}

/** The reason phrase `fn` refuses its input with; fails the test if it accepts it or throws anything else. */
export function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SipParseError) return e.reason;
    throw e;
  }
  throw new Error('did not throw');
}
