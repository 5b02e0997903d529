// SIP URI grammar: RFC 3261 §19.1 parsing, §19.1.4 comparison, §10.3 AOR keys, and the RFC 4475 URIs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { reasonOf, FIXTURES } from '../helpers/rfc4475.js';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import {
  aorKey,
  aorKeyFromText,
  formatSipUri,
  getUriParam,
  isSipScheme,
  parseSipUri,
  unescapeUri,
  uriEquals,
  uriScheme,
  type SipUri,
} from '../../src/sip/uri.js';

/** The Request-URI of an RFC 4475 message (read as latin1: one char per wire byte). */
function requestUri(message: string): string {
  const raw = readFileSync(join(FIXTURES, `${message}.dat`)).toString('latin1');
  const line = raw.slice(0, raw.indexOf('\r\n'));
  return line.slice(line.indexOf(' ') + 1, line.lastIndexOf(' '));
}

const eq = (a: string, b: string): boolean => uriEquals(parseSipUri(a), parseSipUri(b));

// Valid URIs used by the round-trip, fast-path and truncation checks.
const VALID = [
  'sip:ocschat@contoso.com',
  'sip:OCSChat@Contoso.COM;transport=tls',
  'sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent',
  'sip:+1-212-555-1212:1234@gateway.com;user=phone',
  'sip:alice@192.0.2.4',
  'sip:[2001:db8::1]:5060;maddr=[2001:db8::2]',
  'sip:user@[::ffff:192.0.2.1]',
  'sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com',
  'sip:alice;day=tuesday@atlanta.com',
  'SIP:ALICE@AtLanTa.CoM;Transport=udp',
  'sip:host.example.com.:0',
  'sip:a@b:05060',
  'sip:%61lice@atlanta.com;%6C%72;n%61me=v%61lue%25%34%31',
  'sip:user@example.com?Route=%3Csip:example.com%3E&empty=',
  'sip:null-%00-null@example.com',
  'sip:%C3%89mile@EXAMPLE.com',
];

describe('parseSipUri', () => {
  it('splits every component and keeps them as written', () => {
    expect(
      parseSipUri('sips:alice:se%63ret@Atlanta.com:5061;transport=tcp;lr?subject=project%20x&x='),
    ).toEqual({
      scheme: 'sips',
      user: 'alice',
      password: 'se%63ret',
      host: 'Atlanta.com',
      port: 5061,
      params: [
        ['transport', 'tcp'],
        ['lr', undefined],
      ],
      headers: [
        ['subject', 'project%20x'],
        ['x', ''],
      ],
    });
  });

  it('accepts host names, IPv4 and IPv6 references, and a case-insensitive scheme', () => {
    expect(parseSipUri('sip:contoso.com')).toMatchObject({
      scheme: 'sip',
      user: undefined,
      host: 'contoso.com',
    });
    expect(parseSipUri('SIPS:pool.contoso.com.')).toMatchObject({
      scheme: 'sips',
      host: 'pool.contoso.com.',
    });
    expect(parseSipUri('sip:192.0.2.1:5060')).toMatchObject({ host: '192.0.2.1', port: 5060 });
    expect(parseSipUri('sip:u@[2001:db8::1]:5061')).toMatchObject({ host: '[2001:db8::1]', port: 5061 });
    expect(parseSipUri('sip:[::ffff:192.0.2.128]')).toMatchObject({
      host: '[::ffff:192.0.2.128]',
      port: undefined,
    });
    expect(parseSipUri('sip:[::]').host).toBe('[::]');
    expect(parseSipUri('sip:a@b:0').port).toBe(0);
    expect(parseSipUri('sip:a@b:65535').port).toBe(65535);
    expect(parseSipUri('sip:a@123.example.com').host).toBe('123.example.com');
  });

  it('reads the user part of RFC 4475 semiuri as "user;par=u%40example.net"', () => {
    expect(requestUri('semiuri')).toBe('sip:user;par=u%40example.net@example.com');
    expect(parseSipUri(requestUri('semiuri'))).toMatchObject({
      user: 'user;par=u%40example.net',
      host: 'example.com',
      params: [],
    });
  });

  it('accepts the RFC 4475 intmeth Request-URI with its unusual user and password characters', () => {
    expect(parseSipUri(requestUri('intmeth'))).toMatchObject({
      user: "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
      password: "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
      host: 'example.com',
      params: [],
      headers: [],
    });
  });

  it('accepts RFC 4475 esc01 escapes in the user part', () => {
    expect(parseSipUri(requestUri('esc01'))).toMatchObject({
      user: 'sips%3Auser%40example.com',
      host: 'example.net',
    });
  });

  it('accepts escaped URI headers, which the URI grammar allows (RFC 4475 escruri is refused by the message layer)', () => {
    expect(parseSipUri(requestUri('escruri')).headers).toEqual([['Route', '%3Csip:example.com%3E']]);
  });

  it('refuses <> around the URI (RFC 4475 ltgtruri) and LWS inside it (RFC 4475 lwsruri)', () => {
    expect(reasonOf(() => parseSipUri(requestUri('ltgtruri')))).toBe(
      'Bad SIP URI: URI must not be enclosed in <>',
    );
    expect(requestUri('lwsruri')).toBe('sip:user@example.com; lr');
    expect(reasonOf(() => parseSipUri(requestUri('lwsruri')))).toBe('Bad SIP URI: whitespace in URI');
    expect(reasonOf(() => parseSipUri('sip:us er@example.com'))).toBe('Bad SIP URI: whitespace in URI');
  });

  it('names the field given as `what` in the reason', () => {
    expect(reasonOf(() => parseSipUri('sip:user@[2001:db8::1', 'Request-URI'))).toBe(
      'Bad Request-URI: unterminated IPv6 reference',
    );
  });

  it('refuses bad hosts, ports, escapes, parameters, headers and schemes', () => {
    const cases: Array<[string, string]> = [
      ['sip:user@[2001:db8::1', 'unterminated IPv6 reference'],
      ['sip:user@[2001:db8::1;transport=tcp', 'unterminated IPv6 reference'],
      ['sip:user@[1::2::3]', 'bad IPv6 reference'],
      ['sip:user@[1:2:3:4:5:6:7:8:9]', 'bad IPv6 reference'],
      ['sip:user@[1:2:3:4:5:6:7]', 'bad IPv6 reference'],
      ['sip:user@[12345::1]', 'bad IPv6 reference'],
      ['sip:user@[::1.2.3.256]', 'bad IPv6 reference'],
      ['sip:user@[fe80::1%25eth0]', 'bad IPv6 reference'],
      ['sip:user@', 'empty host'],
      ['sip:', 'empty host'],
      ['sip:user@:5060', 'empty host'],
      ['sip:user@-example.com', 'bad host'],
      ['sip:user@example-.com', 'bad host'],
      ['sip:user@example..com', 'bad host'],
      ['sip:user@.example.com', 'bad host'],
      ['sip:user@example.123', 'bad host'],
      ['sip:user@1.2.3.256', 'bad host'],
      ['sip:user@1.2.3', 'bad host'],
      ['sip:user@exa_mple.com', 'invalid character in URI'],
      ['sip:user@example.com:65536', 'port out of range'],
      ['sip:user@example.com:99999999999999999999', 'port out of range'],
      ['sip:user@example.com:', 'bad port'],
      ['sip:user@example.com:50a', 'invalid character in URI'],
      ['sip:user@example.com:-1', 'bad port'],
      ['sip:@example.com', 'empty user part'],
      ['sip::pw@example.com', 'empty user part'],
      ['sip:us"er@example.com', 'invalid character in user part'],
      ['sip:us<er@example.com', 'invalid character in user part'],
      ['sip:a:b:c@example.com', 'invalid character in password'],
      ['sip:a%2@example.com', 'bad escape in user part'],
      ['sip:a%zz@example.com', 'bad escape in user part'],
      ['sip:a:%g0@example.com', 'bad escape in password'],
      ['sip:a@example.com;;lr', 'empty URI parameter'],
      ['sip:a@example.com;', 'empty URI parameter'],
      ['sip:a@example.com;=x', 'empty URI parameter'],
      ['sip:a@example.com;a=', 'empty URI parameter value'],
      ['sip:a@example.com;a=b=c', 'invalid character in URI'],
      ['sip:a@example.com;a=%4', 'bad escape in URI parameter'],
      ['sip:a@example.com;a="b"', 'invalid character in URI'],
      ['sip:a@example.com?', 'bad URI header'],
      ['sip:a@example.com?x', 'bad URI header'],
      ['sip:a@example.com?=x', 'bad URI header'],
      ['sip:a@example.com?x=1&', 'bad URI header'],
      ['sip:a@example.com?x=%', 'bad escape in URI header'],
      ['sip:a@example.com#frag', 'invalid character in URI'],
      ['sip:a@example.com\u00e9', 'invalid character in URI'],
      ['tel:+1-212-555-1212', 'not a SIP URI'],
      ['sipx:a@b', 'not a SIP URI'],
      ['sip', 'not a SIP URI'],
      ['', 'not a SIP URI'],
      [' sip:a@b', 'not a SIP URI'],
    ];
    for (const [text, why] of cases)
      expect(
        reasonOf(() => parseSipUri(text)),
        text,
      ).toBe(`Bad SIP URI: ${why}`);
  });

  it('throws SipParseError, not TypeError, on a non-string', () => {
    expect(() => parseSipUri(undefined as unknown as string)).toThrow(SipParseError);
  });
});

describe('formatSipUri', () => {
  it('round-trips parse -> format -> parse to an equal structure', () => {
    for (const text of VALID) {
      const uri = parseSipUri(text);
      expect(parseSipUri(formatSipUri(uri)), text).toEqual(uri);
    }
  });

  it('reproduces a URI written without leading zeros exactly', () => {
    const text = 'sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent';
    expect(formatSipUri(parseSipUri(text))).toBe(text);
    expect(formatSipUri(parseSipUri('sip:a@b:05060'))).toBe('sip:a@b:5060');
  });
});

describe('uriEquals (RFC 3261 §19.1.4)', () => {
  it('finds the RFC 3261 §19.1.4 equivalent URIs equal', () => {
    expect(eq('sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp')).toBe(true);
    expect(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5')).toBe(true);
    expect(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;security=on')).toBe(true);
    expect(eq('sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on')).toBe(true);
    expect(
      eq(
        'sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com',
        'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com',
      ),
    ).toBe(true);
    expect(
      eq(
        'sip:alice@atlanta.com?subject=project%20x&priority=urgent',
        'sip:alice@atlanta.com?priority=urgent&subject=project%20x',
      ),
    ).toBe(true);
  });

  it('finds the RFC 3261 §19.1.4 non-equivalent URIs different', () => {
    const pairs: Array<[string, string]> = [
      ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'],
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'],
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'],
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'],
      ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'],
      ['sip:bob@phone21.boxesbybob.example.com', 'sip:bob@192.0.2.4'],
    ];
    for (const [a, b] of pairs) {
      expect(eq(a, b), `${a} vs ${b}`).toBe(false);
      expect(eq(b, a), `${b} vs ${a}`).toBe(false);
    }
  });

  it('applies the user/ttl/method/maddr/transport-in-one-only rule', () => {
    for (const p of ['user=ip', 'ttl=1', 'method=INVITE', 'maddr=192.0.2.1', 'transport=udp']) {
      expect(eq('sip:alice@example.com', `sip:alice@example.com;${p}`), p).toBe(false);
      expect(eq(`sip:alice@example.com;${p}`, 'sip:alice@example.com'), p).toBe(false);
      expect(eq(`sip:alice@example.com;${p}`, `sip:alice@example.com;${p.toUpperCase()}`), p).toBe(true);
    }
    expect(eq('sip:a@b;lr', 'sip:a@b;lr=on')).toBe(false);
    expect(eq('sip:a@b;x=1', 'sip:a@b;X=2')).toBe(false);
  });

  it('never equates sip and sips, and compares userinfo case-sensitively', () => {
    expect(eq('sip:alice@atlanta.com', 'sips:alice@atlanta.com')).toBe(false);
    expect(eq('sip:alice:pw@atlanta.com', 'sip:alice:PW@atlanta.com')).toBe(false);
    expect(eq('sip:alice@atlanta.com', 'sip:alice:pw@atlanta.com')).toBe(false);
    expect(eq('sip:atlanta.com', 'sip:alice@atlanta.com')).toBe(false);
  });

  it('equates escapes of unreserved characters, never of reserved ones, and never unescapes twice (RFC 4475 esc01)', () => {
    expect(eq('sip:%41lice@a.com', 'sip:Alice@a.com')).toBe(true);
    expect(eq('sip:alice%3bx@a.com', 'sip:alice%3Bx@a.com')).toBe(true);
    expect(eq('sip:alice%3Bx@a.com', 'sip:alice;x@a.com')).toBe(false);
    expect(eq('sip:a%253B@a.com', 'sip:a%3B@a.com')).toBe(false);
    const contact = 'sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31';
    expect(eq(contact, 'sip:caller@host5.example.net;lr;name=value%2541')).toBe(true);
    expect(eq(contact, 'sip:caller@host5.example.net;lr;name=valueA')).toBe(false);
  });

  it('compares IPv6 references by address, not spelling', () => {
    expect(eq('sip:a@[2001:DB8:0:0:0:0:0:1]', 'sip:a@[2001:db8::1]')).toBe(true);
    expect(eq('sip:a@[::ffff:192.0.2.1]', 'sip:a@[::ffff:c000:201]')).toBe(true);
    expect(eq('sip:a@[2001:db8::1]', 'sip:a@[2001:db8::2]')).toBe(false);
  });

  it('tells the two RFC 4475 escnull contacts apart', () => {
    expect(eq('sip:%00@host5.example.com', 'sip:%00%00@host5.example.com')).toBe(false);
  });
});

describe('aorKey and aorKeyFromText', () => {
  it('drops parameters, headers, scheme and password, and lower-cases user and host', () => {
    expect(aorKey(parseSipUri('sip:OCSChat@Contoso.COM;transport=tls'))).toBe('ocschat@contoso.com');
    expect(aorKey(parseSipUri('sips:OCSChat:pw@Contoso.COM:5061?x=y'))).toBe('ocschat@contoso.com:5061');
    expect(aorKey(parseSipUri('sip:Contoso.COM'))).toBe('contoso.com');
    expect(aorKey(parseSipUri('sip:%4F%43%53chat@contoso.com'))).toBe('ocschat@contoso.com');
  });

  it('unescapes once (RFC 4475 esc01, escnull)', () => {
    expect(aorKey(parseSipUri(requestUri('esc01')))).toBe('sips:user@example.com@example.net');
    expect(aorKey(parseSipUri('sip:v%2541@x'))).toBe('v%41@x');
    expect(aorKey(parseSipUri('sip:null-%00-null@example.com'))).toBe('null-\u0000-null@example.com');
  });

  it('folds only ASCII letters, so UTF-8 bytes survive', () => {
    expect(aorKey(parseSipUri('sip:%C3%89mile@example.com'))).toBe('\u00c3\u0089mile@example.com');
  });

  it('prints the port as a number and IPv6 in RFC 5952 form', () => {
    expect(aorKey(parseSipUri('sip:a@b:05060'))).toBe('a@b:5060');
    expect(aorKey(parseSipUri('sip:a@[2001:DB8:0:0:1:0:0:1]'))).toBe('a@[2001:db8::1:0:0:1]');
    expect(aorKey(parseSipUri('sip:a@[0:0:0:0:0:0:0:1]'))).toBe('a@[::1]');
  });

  it('gives the same result as aorKey(parseSipUri()) on the fast and the slow path', () => {
    const texts = [
      ...VALID,
      'sip:a@b:0',
      'sip:a@b:00',
      'sip:a@b:0001',
      'sip:a@B:10;x',
      'sip:B',
      'sip:B:7?x=1',
    ];
    for (const text of texts) expect(aorKeyFromText(text), text).toBe(aorKey(parseSipUri(text)));
  });

  it('returns undefined for invalid or non-SIP URIs', () => {
    for (const text of [
      '',
      'tel:+123',
      '<sip:a@b>',
      'sip:a@b; lr',
      'sip:a@[::1',
      'sip:a@b:70000',
      'sip:@b',
    ]) {
      expect(aorKeyFromText(text), text).toBeUndefined();
    }
    expect(aorKeyFromText(42 as unknown as string)).toBeUndefined();
  });
});

describe('scheme helpers', () => {
  it('isSipScheme checks sip/sips in any case', () => {
    for (const yes of ['sip:a@b', 'SIP:a', 'sIpS:a', 'sips:']) expect(isSipScheme(yes), yes).toBe(true);
    for (const no of ['sipx:a', 'tel:1', 'sip', 'si:a', '<sip:a@b>', '', ' sip:a'])
      expect(isSipScheme(no), no).toBe(false);
  });

  it('uriScheme lower-cases any valid scheme (RFC 4475 unkscm, novelsc)', () => {
    expect(uriScheme(requestUri('unkscm'))).toBe('nobodyknowsthisscheme');
    expect(uriScheme(requestUri('novelsc'))).toBe('soap.beep');
    expect(uriScheme('SIPS:a@b')).toBe('sips');
    expect(uriScheme('tel:+1')).toBe('tel');
    for (const no of ['', 'noscheme', '1abc:x', '+a:b', ':x', '<sip:a@b>', 'a_b:c', 'a b:c'])
      expect(uriScheme(no), no).toBeUndefined();
  });
});

describe('unescapeUri', () => {
  it('decodes %HH once, to latin1 chars', () => {
    expect(unescapeUri('value%2541')).toBe('value%41');
    expect(unescapeUri('I%20have%20spaces')).toBe('I have spaces');
    expect(unescapeUri('%00%ff%C3%89')).toBe('\u0000\u00ff\u00c3\u0089');
    expect(unescapeUri('plain')).toBe('plain');
  });

  it('leaves invalid % sequences as they are', () => {
    expect(unescapeUri('%')).toBe('%');
    expect(unescapeUri('a%4')).toBe('a%4');
    expect(unescapeUri('%ZZ%41%g')).toBe('%ZZA%g');
    expect(unescapeUri('%%41')).toBe('%A');
  });
});

describe('getUriParam', () => {
  const uri: SipUri = parseSipUri('sip:a@b;Transport=TLS;lr;%6D%61ddr=192.0.2.1;n%61me=v%61l');
  it('finds parameters by case-insensitive, unescaped name', () => {
    expect(getUriParam(uri, 'transport')).toBe('TLS');
    expect(getUriParam(uri, 'TRANSPORT')).toBe('TLS');
    expect(getUriParam(uri, 'maddr')).toBe('192.0.2.1');
    expect(getUriParam(uri, 'name')).toBe('v%61l');
  });

  it('returns null for a valueless parameter and undefined for an absent one', () => {
    expect(getUriParam(uri, 'lr')).toBeNull();
    expect(getUriParam(uri, 'ttl')).toBeUndefined();
  });
});

describe('robustness', () => {
  it('every truncation and every one-byte change of a valid URI parses or throws SipParseError, and the fast key agrees', () => {
    const bytes = [
      '',
      ' ',
      '\t',
      '\u0000',
      '%',
      '@',
      ':',
      ';',
      '?',
      '&',
      '=',
      '[',
      ']',
      '<',
      '>',
      '"',
      '.',
      '-',
      '\u00e9',
      'A',
      '0',
    ];
    let checked = 0;
    const failures: string[] = [];
    for (const text of VALID) {
      const variants: string[] = [];
      for (let i = 0; i <= text.length; i++) {
        variants.push(text.slice(0, i), text.slice(i));
        for (const b of bytes)
          variants.push(text.slice(0, i) + b + text.slice(i + 1), text.slice(0, i) + b + text.slice(i));
      }
      for (const v of variants) {
        let uri: SipUri | undefined;
        try {
          uri = parseSipUri(v);
        } catch (e) {
          if (!(e instanceof SipParseError) || !/^[\x20-\x7e]+$/.test(e.reason))
            failures.push(`threw ${String(e)}: ${v}`);
        }
        if (aorKeyFromText(v) !== (uri === undefined ? undefined : aorKey(uri)))
          failures.push(`key differs: ${v}`);
        if (uri !== undefined && formatSipUri(parseSipUri(formatSipUri(uri))) !== formatSipUri(uri)) {
          failures.push(`round trip: ${v}`);
        }
        checked++;
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(10000);
  });

  it('stays linear on long hostile input', () => {
    const long = 'sip:' + 'a'.repeat(200_000) + '@' + 'b.'.repeat(50_000) + 'c' + ';x'.repeat(50_000);
    const t0 = performance.now();
    expect(aorKeyFromText(long)).toBeDefined();
    expect(aorKeyFromText('sip:' + '['.repeat(100_000))).toBeUndefined();
    expect(aorKeyFromText('sip:' + '%4'.repeat(100_000) + '@x')).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
