// RFC 4475 torture messages: every message in test/fixtures/rfc4475 is parsed and validated, and
// the outcome is compared with the corpus manifest.

import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseMessage } from '../../src/sip/parser.js';
import { validateRequest, validateResponse } from '../../src/sip/validate.js';
import type { SipParseError } from '../../src/sip/errors.js';

const DIR = join(import.meta.dirname, '../fixtures/rfc4475');

interface Row {
  name: string;
  section: string;
  expect: 'valid' | 'invalid' | 'valid-but-unusual';
  note: string;
}

const rows: Row[] = readFileSync(join(DIR, 'MANIFEST.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => {
    const [name, section, expect, note] = line.split('\t');
    return { name: name!, section: section!, expect: expect as Row['expect'], note: note! };
  });

/** Parse + validate as the service does; returns the error it would answer with, if any. */
function check(data: Buffer): { error: SipParseError | undefined; kind: string | undefined } {
  const r = parseMessage(data);
  if (!r.ok) return { error: r.error, kind: r.request ? 'request' : undefined };
  const m = r.message;
  return { error: m.kind === 'request' ? validateRequest(m) : validateResponse(m), kind: m.kind };
}

describe('RFC 4475 torture messages', () => {
  it('the manifest lists every file of the corpus, 49 of them', () => {
    const files = readdirSync(DIR)
      .filter((f) => f.endsWith('.dat'))
      .map((f) => f.slice(0, -4))
      .sort();
    expect(rows.map((r) => r.name).sort()).toEqual(files);
    expect(rows).toHaveLength(49);
  });

  for (const row of rows) {
    it(`${row.name} (§${row.section}) is ${row.expect}`, () => {
      const data = readFileSync(join(DIR, `${row.name}.dat`));
      const { error } = check(data);
      if (row.expect === 'invalid') {
        expect(error, row.note).toBeDefined();
        expect(error!.reason.length).toBeGreaterThan(3);
        expect(error!.reason).not.toMatch(/[\r\n]/);
      } else {
        expect(error?.reason, row.note).toBeUndefined();
      }
    });
  }

  it('badvers is answered 505 Version Not Supported', () => {
    expect(check(readFileSync(join(DIR, 'badvers.dat'))).error?.status).toBe(505);
  });

  it('dblreq: the REGISTER is read and the octets past Content-Length are ignored', () => {
    const r = parseMessage(readFileSync(join(DIR, 'dblreq.dat')));
    expect(r.ok && r.message.kind === 'request' && r.message.method).toBe('REGISTER');
    expect(r.ok && r.message.body.length).toBe(0);
  });

  it('mpart01: the binary body is framed by Content-Length, byte for byte', () => {
    const data = readFileSync(join(DIR, 'mpart01.dat'));
    const r = parseMessage(data);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const length = Number(r.message.header('content-length'));
    expect(r.message.body.length).toBe(length);
    expect(Buffer.compare(r.message.body, data.subarray(data.length - length))).toBe(0);
  });

  it('wsinv: folded, compact and oddly spaced headers are read', () => {
    const r = parseMessage(readFileSync(join(DIR, 'wsinv.dat')));
    expect(r.ok).toBe(true);
    if (!r.ok || r.message.kind !== 'request') return;
    const m = r.message;
    expect(m.header('max-forwards')).toBe('0068');
    expect(m.cseq).toEqual({ seq: 9, method: 'INVITE' });
    expect(m.values('via')).toHaveLength(3);
    expect(m.topVia.transport).toBe('UDP');
    expect(m.header('newfangledheader')).toBe('newfangled value continued newfangled value');
    expect(m.toTag).toBe('1918181833n');
    expect(m.fromTag).toBe('98asjd8');
  });

  it('intmeth: unknown method, NUL in a quoted string and UTF-8 survive as bytes', () => {
    const data = readFileSync(join(DIR, 'intmeth.dat'));
    const r = parseMessage(data);
    expect(r.ok).toBe(true);
    if (!r.ok || r.message.kind !== 'request') return;
    expect(r.message.method).toBe("!interesting-Method0123456789_*+`.%indeed'~");
    const ext = r.message.header("extensionheader-!.%*+_`'~");
    expect(Buffer.from(ext!, 'latin1').toString('utf8')).toBe('\u{FEFF}\u5927\u505C\u96FB');
  });

  it('insuf names what is missing', () => {
    expect(check(readFileSync(join(DIR, 'insuf.dat'))).error?.reason).toMatch(/Missing (Call-ID|From|To)/);
  });

  it('mismatch01 says the CSeq method does not match', () => {
    expect(check(readFileSync(join(DIR, 'mismatch01.dat'))).error?.reason).toMatch(/CSeq method/);
  });
});
