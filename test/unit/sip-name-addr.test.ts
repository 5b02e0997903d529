// From/To/Contact/Route values: name-addr vs addr-spec, display names, header params, tags, against RFC 3261 §20 and RFC 4475.
import { readdirSync } from 'node:fs';
import { headerValues, reasonOf, FIXTURES } from '../helpers/rfc4475.js';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import { splitHeaderValues } from '../../src/sip/header-values.js';
import {
  getParam,
  getTag,
  isWildcardContact,
  parseNameAddr,
  uriOf,
  type NameAddr,
} from '../../src/sip/name-addr.js';

const one = (message: string, name: string): string => headerValues(message, name)[0]!;

describe('parseNameAddr: accepted forms', () => {
  it('parses a quoted display name, a bracketed URI and header params', () => {
    expect(parseNameAddr('"Bob \\"B\\"" <sips:bob@biloxi.example.com>;tag=a6c85cf;epid=01010101')).toEqual({
      displayName: '"Bob \\"B\\""',
      uri: 'sips:bob@biloxi.example.com',
      bracketed: true,
      params: [
        ['tag', 'a6c85cf'],
        ['epid', '01010101'],
      ],
    });
  });

  it('accepts a token display name glued to "<" (RFC 4475 lwsdisp)', () => {
    const from = one('lwsdisp', 'From');
    expect(from).toBe('caller<sip:caller@example.com>;tag=323');
    expect(parseNameAddr(from)).toEqual({
      displayName: 'caller',
      uri: 'sip:caller@example.com',
      bracketed: true,
      params: [['tag', '323']],
    });
  });

  it('keeps a multi-token display name as written (RFC 4475 intmeth From)', () => {
    const from = parseNameAddr(one('intmeth', 'From'));
    expect(from.displayName).toBe("token1~` token2'+_ token3*%!.-");
    expect(from.uri).toBe('sip:mundane@example.com');
    expect(from.params.map(([n]) => n)).toEqual(["fromParam''~+*_!.-%", 'tag']);
    // The quoted value holds raw UTF-8 bytes, one latin1 char each.
    expect(from.params[0]![1]).toBe(
      '"\u00d1\u0080\u00d0\u00b0\u00d0\u00b1\u00d0\u00be\u00d1\u0082\u00d0\u00b0\u00d1\u008e\u00d1\u0089\u00d0\u00b8\u00d0\u00b9"',
    );
    expect(getParam(from.params, 'TAG')).toBe("_token~1'+`*%!-.");
  });

  it('accepts quoted-pairs of control characters in a display name (RFC 4475 intmeth To)', () => {
    const to = parseNameAddr(one('intmeth', 'To'));
    expect(to.displayName).toBe('"BEL:\\\u0007 NUL:\\\u0000 DEL:\\\u007f"');
    expect(to.uri).toBe("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com");
  });

  it('accepts the LWS RFC 4475 wsinv puts around ";" and "="', () => {
    expect(parseNameAddr(one('wsinv', 'To'))).toEqual({
      displayName: undefined,
      uri: 'sip:vivekg@chair-dnrc.example.com',
      bracketed: false,
      params: [['tag', '1918181833n']],
    });
    const from = parseNameAddr(one('wsinv', 'From'));
    expect(from.displayName).toBe('"J Rosenberg \\\\\\""');
    expect(from.params).toEqual([['tag', '98asjd8']]);
    expect(parseNameAddr(one('wsinv', 'Contact')).params).toEqual([
      ['newparam', 'newvalue'],
      ['secondparam', undefined],
      ['q', '0.33'],
    ]);
  });

  it('treats ";" after a bare URI as a header param (RFC 4475 cparam01) and inside <> as a URI param (cparam02)', () => {
    expect(parseNameAddr(one('cparam01', 'Contact'))).toEqual({
      displayName: undefined,
      uri: 'sip:+19725552222@gw1.example.net',
      bracketed: false,
      params: [['unknownparam', undefined]],
    });
    expect(parseNameAddr(one('cparam02', 'Contact'))).toEqual({
      displayName: undefined,
      uri: 'sip:+19725552222@gw1.example.net;unknownparam',
      bracketed: true,
      params: [],
    });
  });

  it('accepts escaped URI headers inside <> (RFC 4475 regescrt)', () => {
    expect(parseNameAddr(one('regescrt', 'Contact')).uri).toBe(
      'sip:user@example.com?Route=%3Csip:sip.example.com%3E',
    );
  });

  it('accepts non-SIP schemes in To, From and Contact (RFC 4475 unksm2)', () => {
    expect(parseNameAddr(one('unksm2', 'To'))).toMatchObject({ uri: 'isbn:2983792873', bracketed: false });
    expect(parseNameAddr(one('unksm2', 'From'))).toMatchObject({
      uri: 'http://www.example.com',
      params: [['tag', '3234233']],
    });
    expect(parseNameAddr(one('unksm2', 'Contact'))).toMatchObject({ uri: 'name:John_Smith' });
    expect(parseNameAddr('<tel:+1-201-555-0123;phone-context=example.com>').uri).toBe(
      'tel:+1-201-555-0123;phone-context=example.com',
    );
    expect(parseNameAddr('<urn:service:sos>').uri).toBe('urn:service:sos');
  });

  it('accepts the quoted display names of RFC 4475 esc02, longreq and badaspec From', () => {
    expect(parseNameAddr(one('esc02', 'To')).displayName).toBe('"%Z%45"');
    expect(parseNameAddr(one('longreq', 'To')).displayName).toMatch(
      /^"I have a user name of (extreme){10} proportion"$/,
    );
    expect(parseNameAddr(one('badaspec', 'From')).displayName).toBe('"Bell, Alexander"');
    expect(parseNameAddr('"" <sip:a@b>').displayName).toBe('""');
  });

  it('accepts IPv6 references and quoted strings as param values', () => {
    expect(parseNameAddr('<sip:a@b>;maddr=[2001:db8::1];x="a;b, c"').params).toEqual([
      ['maddr', '[2001:db8::1]'],
      ['x', '"a;b, c"'],
    ]);
  });
});

describe('parseNameAddr: refused forms', () => {
  it('refuses unquoted display names with non-token characters (RFC 4475 baddn)', () => {
    expect(one('baddn', 'From')).toBe('Bell, Alexander <sip:a.g.bell@example.com>;tag=43');
    expect(reasonOf(() => parseNameAddr(one('baddn', 'From'), 'From'))).toBe('Bad From: bad display name');
    expect(() => parseNameAddr(one('baddn', 'To'))).toThrow(SipParseError);
  });

  it('refuses an unterminated quoted display name (RFC 4475 quotbal)', () => {
    expect(reasonOf(() => parseNameAddr(one('quotbal', 'To'), 'To'))).toBe(
      'Bad To: unterminated quoted string',
    );
  });

  it('refuses spaces inside <> (RFC 4475 badaspec)', () => {
    expect(one('badaspec', 'To')).toBe('"Watson, Thomas" < sip:t.watson@example.org >');
    expect(reasonOf(() => parseNameAddr(one('badaspec', 'To'), 'To'))).toBe('Bad To: whitespace inside <>');
  });

  it('refuses URI headers in a bare addr-spec (RFC 4475 regbadct)', () => {
    expect(reasonOf(() => parseNameAddr(one('regbadct', 'Contact'), 'Contact'))).toBe(
      'Bad Contact: URI with , or ? must be enclosed in <>',
    );
  });

  it('refuses empty params (RFC 4475 badinv01)', () => {
    expect(one('badinv01', 'Contact')).toBe('"Joe" <sip:joe@example.org>;;;;');
    expect(reasonOf(() => parseNameAddr(one('badinv01', 'Contact'), 'Contact'))).toBe(
      'Bad Contact: empty parameter',
    );
  });

  it('does not read a semicolon user part out of a bare addr-spec (RFC 3261 §20: such URIs need <>)', () => {
    expect(() => parseNameAddr('sip:user;par=u%40example.net@example.com')).toThrow(SipParseError);
    expect(parseNameAddr('<sip:user;par=u%40example.net@example.com>').uri).toBe(
      'sip:user;par=u%40example.net@example.com',
    );
  });

  it('refuses other malformed values', () => {
    const bad = [
      '',
      '*',
      'Joe sip:joe@example.com',
      '"Joe" sip:joe@example.com',
      '"Joe"',
      'Joe',
      '<sip:a@b',
      '<>',
      '<sip:a@b>x',
      '<sip:a@b> x',
      '<sip:a@b>;',
      '<sip:a@b>;tag=',
      '<sip:a@b>;tag = ',
      '<sip:a@b>;=x',
      '<sip:a@b>;x=a:b',
      '<sip:a@b>;x=[::1',
      '<sip:a@b>;x="unterminated',
      '<sip:a@[::1>',
      '<sip:a@b;;x>',
      '<sip:a b@c>',
      '<sip:a@b:99999>',
      '<nonsense>',
      '<1tel:123>',
      '<tel:>',
      '<tel:1"2>',
      '<tel:%zz>',
      'tel:1,2',
      'sip:a@b?x=y',
      'sip:a@b c',
      '"a\u0001" <sip:a@b>',
      '"a\\\r" <sip:a@b>',
      'Jo\u00e9 <sip:a@b>',
      '<sip:a@b>;tag=\u00e9',
      '<sip:a@b>;tag',
      '<sip:a@b>;TAG="quoted"',
      'sip:a@b;tag=[::1]',
    ];
    for (const value of bad) expect(() => parseNameAddr(value), JSON.stringify(value)).toThrow(SipParseError);
  });
});

describe('getParam', () => {
  const params: NameAddr['params'] = parseNameAddr('<sip:a@b>;Expires=60;lr;q=0.5').params;
  it('finds a param case-insensitively, "" when valueless, undefined when absent', () => {
    expect(getParam(params, 'expires')).toBe('60');
    expect(getParam(params, 'LR')).toBe('');
    expect(getParam(params, 'tag')).toBeUndefined();
  });
});

describe('getTag', () => {
  it('reads the header tag, not a URI param or quoted text', () => {
    expect(getTag('<sip:a@b;tag=uri>;tag=hdr')).toBe('hdr');
    expect(getTag('<sip:a@b;tag=uri>')).toBeUndefined();
    expect(getTag('"x;tag=no <sip:q@r>" <sip:a@b>;foo="y;tag=no";tag=yes')).toBe('yes');
    expect(getTag('sip:a@b;TAG=x')).toBe('x');
    expect(getTag('sip:a@b')).toBeUndefined();
    expect(getTag(one('wsinv', 'To'))).toBe('1918181833n');
    expect(getTag(one('wsinv', 'From'))).toBe('98asjd8');
    expect(getTag(one('lwsdisp', 'From'))).toBe('323');
  });

  it('throws SipParseError on broken structure', () => {
    for (const bad of [
      '"abc <sip:a@b>;tag=1',
      '<sip:a@b;tag=1',
      '<sip:a@b>;tag',
      '<sip:a@b>;tag="q"',
      '<sip:a@b>;;tag=1',
      '<sip:a@b> x;tag=1',
    ]) {
      expect(() => getTag(bad), bad).toThrow(SipParseError);
    }
  });

  it('agrees with parseNameAddr on every From and To value of RFC 4475', () => {
    let compared = 0;
    for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.dat'))) {
      const message = file.slice(0, -4);
      for (const value of [...headerValues(message, 'From'), ...headerValues(message, 'To')]) {
        let parsed: NameAddr;
        try {
          parsed = parseNameAddr(value);
        } catch {
          continue;
        }
        const tag = getParam(parsed.params, 'tag');
        expect(getTag(value), `${message}: ${value}`).toBe(tag);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(80);
  });
});

describe('isWildcardContact', () => {
  it('recognises only a lone "*"', () => {
    expect(isWildcardContact('*')).toBe(true);
    expect(isWildcardContact(' * ')).toBe(true);
    for (const no of ['', '**', '*;q=1', '<*>', 'sip:*@b', '"*" <sip:a@b>'])
      expect(isWildcardContact(no), no).toBe(false);
  });
});

describe('robustness', () => {
  it('every truncation and one-byte change of a valid value parses or throws SipParseError, and getTag agrees', () => {
    const samples = [
      one('intmeth', 'From'),
      one('intmeth', 'To'),
      one('wsinv', 'From'),
      one('wsinv', 'Contact'),
      one('cparam01', 'Contact'),
      one('regescrt', 'Contact'),
      '"A \\"B\\"" <sips:[2001:db8::1]:5061;transport=tls>;tag=x;q=0.5;+sip.instance="<urn:uuid:1>"',
      'caller<tel:+1-201-555-0123>;tag=323',
    ];
    const bytes = [
      '',
      ' ',
      '"',
      '\\',
      '<',
      '>',
      ';',
      '=',
      ',',
      '?',
      ':',
      '@',
      '[',
      ']',
      '\u0000',
      '\u00e9',
      'x',
    ];
    const failures: string[] = [];
    let checked = 0;
    for (const text of samples) {
      for (let i = 0; i <= text.length; i++) {
        const variants = [text.slice(0, i), text.slice(i)];
        for (const b of bytes)
          variants.push(text.slice(0, i) + b + text.slice(i + 1), text.slice(0, i) + b + text.slice(i));
        for (const v of variants) {
          checked++;
          let parsed: NameAddr | undefined;
          try {
            parsed = parseNameAddr(v);
          } catch (e) {
            if (!(e instanceof SipParseError)) failures.push(`parse threw ${String(e)}: ${v}`);
          }
          try {
            const tag = getTag(v);
            if (parsed !== undefined && tag !== getParam(parsed.params, 'tag'))
              failures.push(`tag differs: ${v}`);
          } catch (e) {
            if (!(e instanceof SipParseError)) failures.push(`getTag threw ${String(e)}: ${v}`);
            else if (parsed !== undefined) failures.push(`getTag refused a valid value: ${v}`);
          }
          try {
            splitHeaderValues(v);
          } catch (e) {
            if (!(e instanceof SipParseError)) failures.push(`split threw ${String(e)}: ${v}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(5000);
  });
});

describe('uriOf', () => {
  it('gives the URI of a name-addr or addr-spec, and undefined for a value that does not parse', () => {
    expect(uriOf('"Lync" <sip:ocschat@contoso.com;transport=tls>;tag=1')).toBe(
      'sip:ocschat@contoso.com;transport=tls',
    );
    expect(uriOf('<sip:pc1.contoso.com:5041;lr>')).toBe('sip:pc1.contoso.com:5041;lr');
    // RFC 3261 §20.10: without brackets, what follows a semicolon is a header parameter, not the URI's.
    expect(uriOf('sip:pc1.contoso.com:5041;lr')).toBe('sip:pc1.contoso.com:5041');
    expect(uriOf('<sip:unterminated@contoso.com')).toBeUndefined();
    expect(uriOf('')).toBeUndefined();
  });
});
