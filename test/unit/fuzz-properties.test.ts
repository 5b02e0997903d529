// Property-based tests (fast-check) for the parser and the URI normaliser: whatever the bytes, the
// parser's API returns a result and never throws; a message parsed, serialised and parsed again is the
// same message; aorKeyFromText agrees with aorKey(parseSipUri(...)) on valid and broken URIs alike.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  findHeaderEndInText,
  parseHeaderLines,
  parseMessage,
  skipLeadingCrlf,
} from '../../src/sip/parser.js';

import { StreamFramer, streamContentLength } from '../../src/sip/framer.js';
import { aorKey, aorKeyFromText, formatSipUri, parseSipUri } from '../../src/sip/uri.js';
import { validateRequest } from '../../src/sip/validate.js';
import { responsePort } from '../../src/sip/response.js';
import { ACK_BRANCH, firstLineViaBranch } from '../../src/router/fast-path.js';
import { namesOwnSentBy } from '../../src/modes/proxy/proxy.js';
import { splitFirstElement, splitHeaderValues } from '../../src/sip/header-values.js';

// Fixed seeds keep `npm test` reproducible; a failure prints the seed and path to replay it.
const RUNS = { numRuns: 400, seed: 4475 };

const token = fc.stringMatching(/^[A-Za-z0-9\-.!%*_+`'~]{1,12}$/);
const userChars = fc.stringMatching(/^[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,12}$/);
const label = fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?$/);
const hostname = fc
  .tuple(fc.array(label, { maxLength: 3 }), fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9]{0,5}$/))
  .map(([labels, top]) => [...labels, top].join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.ipV6().map((a) => `[${a}]`);
// RFC 3261 §25.1 paramchar / hnv-unreserved without escapes: what URI parameters and headers hold.
const ptoken = fc.stringMatching(/^[A-Za-z0-9\-.!*_~'()]{1,10}$/);
const escaped = fc.constantFrom('%41', '%6f', '%25', '%20', '%00');

/** Valid sip/sips URIs with users (escapes, odd case), passwords, ports, parameters and headers. */
const sipUri = fc
  .record({
    scheme: fc.constantFrom('sip', 'sips', 'SIP', 'Sip'),
    user: fc.option(
      fc.array(fc.oneof(userChars, escaped), { minLength: 1, maxLength: 3 }).map((p) => p.join('')),
      {
        nil: undefined,
      },
    ),
    password: fc.option(fc.stringMatching(/^[A-Za-z0-9]{1,6}$/), { nil: undefined }),
    host: fc.oneof(hostname, ipv4, ipv6),
    port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    params: fc.array(fc.tuple(ptoken, fc.option(ptoken, { nil: undefined })), { maxLength: 3 }),
    headers: fc.array(fc.tuple(ptoken, ptoken), { maxLength: 2 }),
  })
  .map((u) => {
    let s = `${u.scheme}:`;
    if (u.user !== undefined) s += u.user + (u.password === undefined ? '' : `:${u.password}`) + '@';
    s += u.host;
    if (u.port !== undefined) s += `:${u.port}`;
    for (const [n, v] of u.params) s += `;${n}${v === undefined ? '' : `=${v}`}`;
    if (u.headers.length > 0) s += '?' + u.headers.map(([n, v]) => `${n}=${v}`).join('&');
    return s;
  });

/** A string that is a valid URI with a few characters changed, cut or inserted. */
const mangledUri = fc
  .tuple(
    sipUri,
    fc.array(
      fc.tuple(fc.nat(80), fc.constantFrom('', '@', ':', '[', ']', ';', '%', '%4', ' ', '\u00e9', '0')),
      { maxLength: 3 },
    ),
  )
  .map(([u, edits]) => {
    let s = u;
    for (const [at, ch] of edits) {
      const i = at % (s.length + 1);
      s = s.slice(0, i) + ch + s.slice(i + (ch === '' ? 1 : 0));
    }
    return s;
  });

describe('URI normaliser properties', () => {
  it('aorKeyFromText(text) === aorKey(parseSipUri(text)) for valid URIs', () => {
    fc.assert(
      fc.property(sipUri, (text) => {
        expect(aorKeyFromText(text)).toBe(aorKey(parseSipUri(text)));
      }),
      RUNS,
    );
  });

  it('on broken URIs too: undefined exactly when parseSipUri throws, else the same key', () => {
    fc.assert(
      fc.property(fc.oneof(mangledUri, fc.string({ maxLength: 40 })), (text) => {
        let expected: string | undefined;
        try {
          expected = aorKey(parseSipUri(text));
        } catch {
          expected = undefined;
        }
        expect(aorKeyFromText(text)).toBe(expected);
      }),
      { ...RUNS, numRuns: 1500 },
    );
  });

  it('format → parse round trip keeps the key and the URI', () => {
    fc.assert(
      fc.property(sipUri, (text) => {
        const uri = parseSipUri(text);
        const again = parseSipUri(formatSipUri(uri));
        expect(again).toEqual(uri);
        expect(aorKey(again)).toBe(aorKey(uri));
      }),
      RUNS,
    );
  });
});

const headerValue = fc.stringMatching(/^[\x21-\x7e](?:[\x20-\x7e]{0,30}[\x21-\x7e])?$/);
const extraHeader = fc.tuple(token, headerValue).filter(([n]) => !/^(content-length|l)$/i.test(n));

/** Well-formed requests: the headers a request needs, some extra ones, an optional body. */
const request = fc
  .record({
    method: fc.oneof(fc.constantFrom('INVITE', 'OPTIONS', 'MESSAGE', 'INFO', 'BYE'), token),
    uri: sipUri,
    branch: fc.stringMatching(/^[A-Za-z0-9]{1,16}$/),
    extra: fc.array(extraHeader, { maxLength: 6 }),
    compact: fc.boolean(),
    body: fc.uint8Array({ maxLength: 64 }),
  })
  .map((r) => {
    const name = (long: string, short: string): string => (r.compact ? short : long);
    const lines = [
      `${r.method} ${r.uri} SIP/2.0`,
      `${name('Via', 'v')}: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK${r.branch}`,
      'Max-Forwards: 70',
      `${name('From', 'f')}: <sip:a@contoso.com>;tag=1`,
      `${name('To', 't')}: <sip:b@contoso.com>`,
      `${name('Call-ID', 'i')}: ${r.branch}@host`,
      `CSeq: 1 ${r.method}`,
      ...r.extra.map(([n, v]) => `${n}: ${v}`),
      `${name('Content-Length', 'l')}: ${r.body.length}`,
    ];
    return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.from(r.body)]);
  });

describe('parser properties', () => {
  it('never throws, whatever the bytes, over datagrams and streams', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, stream) => {
        const r = parseMessage(Buffer.from(bytes), { stream, maxHeaders: 32, maxLineLength: 256 });
        expect(typeof r.ok).toBe('boolean');
        if (r.ok && r.message.kind === 'request') validateRequest(r.message);
      }),
      { ...RUNS, numRuns: 2000 },
    );
  });

  it('never throws on mutated well-formed requests, and a request it keeps can be validated', () => {
    fc.assert(
      fc.property(
        request,
        fc.array(
          fc.tuple(fc.nat(400), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'dup')),
          {
            maxLength: 4,
          },
        ),
        (buf, edits) => {
          let b = Buffer.from(buf);
          for (const [at, byte, op] of edits) {
            const i = at % Math.max(1, b.length);
            if (op === 'set') b[i] = byte;
            else if (op === 'cut') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
            else b = Buffer.concat([b.subarray(0, i), b.subarray(i)]);
          }
          const r = parseMessage(b);
          if (r.ok && r.message.kind === 'request') {
            const problem = validateRequest(r.message);
            if (problem !== undefined) expect(problem.status).toBeGreaterThanOrEqual(400);
          }
        },
      ),
      { ...RUNS, numRuns: 1500 },
    );
  });

  it('the stream framer cuts the header section where parseMessage finds the blank line', () => {
    // The framer searches the whole read as text, parseMessage each message's text: same offsets.
    const piece = fc.constantFrom(
      'INVITE sip:a@b SIP/2.0',
      'SIP/2.0 200 OK',
      '\r\n',
      '\n',
      '\r',
      '\r\n\r\n',
      '\n\n',
      '\r\n\n',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'Call-ID: x',
      'X: y',
      ' folded',
      ':',
      'body',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 14 }), (pieces) => {
        const buf = Buffer.from(pieces.join(''), 'latin1');
        const r = parseMessage(buf);
        const start = skipLeadingCrlf(buf);
        if (start >= buf.length) return;
        const ends = findHeaderEndInText(buf.toString('latin1'), start);
        // Framed with no Content-Length (body length 0), the first message is the header section alone.
        const framed = new StreamFramer(1 << 20).push(buf).find((e) => e.type !== 'ping');
        if (ends === undefined) expect(framed).toBeUndefined();
        else if (framed?.type === 'message') {
          expect(framed.head.text).toBe(buf.toString('latin1', start, ends[1]));
          expect(framed.head.end).toBe(ends[0] - start);
          expect(framed.data.equals(buf.subarray(start, ends[1]))).toBe(true);
        }
        const head = buf.toString('latin1', start, ends === undefined ? buf.length : ends[0]);
        const nl = head.indexOf('\n');
        const expected = parseHeaderLines(head, nl < 0 ? head.length : nl + 1, {});
        const got = r.ok ? r.message : r.request;
        if (got !== undefined) expect(got.headers).toEqual(expected.headers);
        if (ends === undefined) expect(r.ok).toBe(false);
        if (r.ok) expect(r.message.body.equals(buf.subarray(ends![1]))).toBe(true);
      }),
      { ...RUNS, numRuns: 3000 },
    );
  });

  it('parse → serialise → parse gives the same message', () => {
    fc.assert(
      fc.property(request, fc.boolean(), (buf, stream) => {
        const first = parseMessage(buf, { stream });
        expect(first.ok).toBe(true);
        if (!first.ok || first.message.kind !== 'request') return;
        const again = parseMessage(first.message.toBuffer(), { stream });
        expect(again.ok).toBe(true);
        if (!again.ok || again.message.kind !== 'request') return;
        expect(again.message.method).toBe(first.message.method);
        expect(again.message.uri).toBe(first.message.uri);
        expect(again.message.headers).toEqual(first.message.headers);
        expect(Buffer.compare(again.message.body, first.message.body)).toBe(0);
        expect(again.message.toBuffer().equals(first.message.toBuffer())).toBe(true);
      }),
      RUNS,
    );
  });

  it('the framer reads Content-Length as the regular expression that states the rule does', () => {
    // The rule: Content-Length or "l" at the start of the text or of a line, any case, the value
    // possibly on a continuation line; trimmed, 1 to 10 digits; two different values conflict.
    const RULE = /(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*(?:\r?\n[ \t]+)?([^\r\n]*)/gi;
    const reference = (head: string): number | string => {
      let length = 0;
      let seen = false;
      for (const m of head.matchAll(RULE)) {
        const value = (m[1] ?? '').trim();
        if (!/^[0-9]{1,10}$/.test(value)) return 'Bad Content-Length';
        const n = Number(value);
        if (seen && n !== length) return 'Conflicting Content-Length';
        seen = true;
        length = n;
      }
      return length;
    };
    // Header lines made of the parts that matter (name, white space, colon, fold, value), and, for
    // good measure, runs of loose fragments.
    const line = fc
      .tuple(
        fc.constantFrom(
          'Content-Length',
          'content-LENGTH',
          'Content\rLength',
          'Content-Lengthy',
          'l',
          'L',
          'lr',
          'Content-Type',
          'X',
        ),
        fc.constantFrom('', ' ', '\t', ' \t'),
        fc.constantFrom(':', '', ';'),
        fc.constantFrom('', ' ', '\t ', '\xa0'),
        fc.constantFrom('', '', '\r\n ', '\n\t', '\r\n', '\r', '\r\n\r\n '),
        fc.constantFrom('0', '7', '12', '007', '9999999999', '12345678901', '-1', '', 'x', '1 2', '5\v'),
        fc.constantFrom('', ' ', '\t', '\xa0'),
        fc.constantFrom('\r\n', '\n', '\r\n ', '\r\n'),
      )
      .map((parts) => parts.join(''));
    const fragment = fc.constantFrom('Content-Length', 'l', ':', ' ', '\r\n', '\n', '\r', '7', '-', 'x');
    const head = fc.oneof(
      fc.array(line, { maxLength: 5 }).map((ls) => 'INVITE sip:a@b SIP/2.0\r\n' + ls.join('')),
      fc.array(fragment, { maxLength: 24 }).map((fs) => fs.join('')),
    );
    fc.assert(
      fc.property(head, (text) => {
        const got = streamContentLength(text);
        expect(typeof got === 'number' ? got : got.message).toEqual(reference(text));
        // Read in place inside a longer text, as the framer reads it, the answer is the same.
        const around = 'l: 9\r\nContent-Length: 8\r\n';
        expect(
          streamContentLength(around + text + '\r\n' + around, around.length, around.length + text.length),
        ).toEqual(got);
      }),
      { ...RUNS, numRuns: 5000 },
    );
  });

  it('loop detection finds our sent-by in a Via value as the regular expression that states it does', () => {
    const own = new Set(['127.0.0.1:5060', 'pchat.contoso.com:5061', '[::1]:5060', 'hé:1']);
    const reference = (via: string): boolean => {
      const sentBy = /^\S+\s+([^;\s]+)/.exec(via)?.[1]?.toLowerCase();
      return sentBy !== undefined && own.has(sentBy);
    };
    const via = fc
      .tuple(
        fc.constantFrom('SIP/2.0/UDP', 'SIP/2.0/TCP', '', 'x'),
        fc.constantFrom(' ', '\t', '  ', '', '\xa0', '\v'),
        fc.constantFrom(
          '127.0.0.1:5060',
          '127.0.0.1:5070',
          'PChat.Contoso.COM:5061',
          'pchat.contoso.com:5061',
          '[::1]:5060',
          'HÉ:1',
          'hÉ:1',
          '127.0.0.1',
          '',
        ),
        fc.constantFrom('', ';branch=z9hG4bK1', ' ;rport', '\xa0;x', ';'),
      )
      .map((p) => p.join(''));
    fc.assert(
      fc.property(via, (v) => {
        expect(namesOwnSentBy(v, own)).toBe(reference(v));
      }),
      { ...RUNS, numRuns: 3000 },
    );
  });

  it('the quick read of an ACK branch agrees with the regular expression that states it', () => {
    const piece = fc.constantFrom(
      'SIP/2.0/UDP h',
      ';branch=',
      ';BRANCH=',
      '; branch=',
      ';branch =',
      ';xbranch=',
      ';rport',
      'z9hG4bK',
      'abc',
      ' ',
      '\t',
      ',',
      '=',
      '\u00a0',
      '\u000b',
      '\r',
      '\n',
    );
    const start = fc.constantFrom('Via: ', 'v: ', 'VIA: ', 'Via : ');
    fc.assert(
      fc.property(
        start,
        fc.array(piece, { maxLength: 10 }),
        fc.constantFrom('\r\n', '\n', ''),
        (via, parts, eol) => {
          const head = `ACK sip:a@b SIP/2.0\r\n${via}${parts.join('')}${eol}Max-Forwards: 70\r\n\r\n`;
          const quick = firstLineViaBranch(head);
          if (quick !== undefined) expect(quick).toBe(ACK_BRANCH.exec(head)?.[1]);
        },
      ),
      { ...RUNS, numRuns: 3000 },
    );
    // The everyday form is read quickly (else the property above would hold vacuously).
    const sipp = 'ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5183;rport;branch=z9hG4bK-1-2-0\r\n\r\n';
    expect(firstLineViaBranch(sipp)).toBe('z9hG4bK-1-2-0');
  });

  it('the stream framer cuts any split of a run of messages into the same messages', () => {
    fc.assert(
      fc.property(
        fc.array(request, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(2000), { maxLength: 6 }),
        (msgs, cuts) => {
          const all = Buffer.concat(msgs);
          const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
          const framer = new StreamFramer(65535);
          const out: Buffer[] = [];
          let from = 0;
          for (const p of [...points, all.length]) {
            for (const ev of framer.push(all.subarray(from, p))) {
              if (ev.type !== 'message') continue;
              out.push(Buffer.from(ev.data));
              // The header text handed on is the message's own, and parsing with it changes nothing.
              expect(ev.data.toString('latin1').startsWith(ev.head.text)).toBe(true);
              expect(parseMessage(ev.data, { stream: true }, ev.head)).toEqual(
                parseMessage(ev.data, { stream: true }),
              );
            }
            from = p;
          }
          expect(out.map((b) => b.toString('latin1'))).toEqual(msgs.map((b) => b.toString('latin1')));
        },
      ),
      RUNS,
    );
  });

  it('the lines the framer reads parse as the message does under any limits, broken lines included', () => {
    // The framer reads header lines with no limits; parseMessage must still answer as a reading under
    // its own limits does (same headers, same first defect), whatever the lines and the limits.
    const line = fc.constantFrom(
      'Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n',
      'Call-ID: x\r\n',
      'X-Long: ' + 'v'.repeat(30) + '\r\n',
      ' folded more\r\n',
      '\t' + 'w'.repeat(25) + '\r\n',
      'no colon\r\n',
      'Bad Name: y\r\n',
      'X: bare\rcr\r\n',
      'Content-Length: 4\r\n',
      'l: 4\r\n',
      'Content-Length:\r\n 4\r\n',
      'Content-Length: 4\xa0\r\n',
      'Content-Length: 5\r\n',
      'Content-Length: x\r\n',
    );
    fc.assert(
      fc.property(
        fc.constantFrom('INVITE sip:a@b SIP/2.0\r\n', 'ACK sip:a@b SIP/2.0\r\n', 'SIP/2.0 200 OK\r\n'),
        fc.array(line, { maxLength: 8 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 8, max: 60 }),
        (startLine, lines, maxHeaders, maxLineLength) => {
          const bytes = Buffer.from(startLine + lines.join('') + '\r\nbodybodybody', 'latin1');
          const opts = { stream: true, maxHeaders, maxLineLength };
          for (const ev of new StreamFramer(65535).push(bytes)) {
            if (ev.type !== 'message') continue;
            expect(parseMessage(ev.data, opts, ev.head)).toEqual(parseMessage(ev.data, opts));
          }
        },
      ),
      { ...RUNS, numRuns: 3000 },
    );
  });
});

describe('list header properties', () => {
  it('splitFirstElement gives the first element of splitHeaderValues, and a rest that splits into the others', () => {
    // Lines built from the characters that matter to splitting: commas, quotes, escapes, <>, spaces.
    const piece = fc.constantFrom(
      ',',
      '"',
      '\\',
      '<',
      '>',
      ' ',
      '\t',
      ';',
      '=',
      'a',
      'SIP/2.0/UDP h:1',
      'x,y',
    );
    const line = fc.array(piece, { maxLength: 14 }).map((p) => p.join(''));
    fc.assert(
      fc.property(line, (l) => {
        let all: string[] | undefined;
        try {
          all = splitHeaderValues(l);
        } catch {
          all = undefined;
        }
        if (all === undefined || all.length === 0) return; // malformed or empty: callers have validated
        const [first, rest] = splitFirstElement(l);
        expect(first).toBe(all[0]);
        if (all.length === 1) expect(rest).toBeUndefined();
        else expect(splitHeaderValues(rest!)).toEqual(all.slice(1));
      }),
      { numRuns: 3000, seed: 4475 },
    );
  });
});

describe('regressions found by bench/fuzz.mjs', () => {
  it('a Via with port 0 is answered to the source port (a send to port 0 threw ERR_SOCKET_BAD_PORT)', () => {
    const r = parseMessage(
      Buffer.from(
        'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n' +
          'From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
        'latin1',
      ),
    );
    expect(r.ok).toBe(true);
    if (!r.ok || r.message.kind !== 'request') return;
    const link = {
      transport: 'udp',
      reliable: false,
      localAddress: '127.0.0.1',
      localPort: 5060,
      send() {},
    } as const;
    expect(responsePort(r.message.topVia, { link, address: '127.0.0.1', port: 40527 })).toBe(40527);
  });
});
