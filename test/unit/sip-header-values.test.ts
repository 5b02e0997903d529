// Header-value helpers: list splitting, CSeq and scalars, token/Call-ID/SIP-date checks, and the grammar error itself.
import { headerValues, reasonOf } from '../helpers/rfc4475.js';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import {
  isGmtDate,
  isToken,
  isValidCallId,
  parseCSeq,
  parseUint,
  splitHeaderValues,
} from '../../src/sip/header-values.js';

describe('SipParseError', () => {
  it('carries a stable code and the reason as message', () => {
    const e = new SipParseError('Bad CSeq');
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('PCHAT_ERR_SIP_PARSE');
    expect(e.reason).toBe('Bad CSeq');
    expect(e.message).toBe('Bad CSeq');
    expect(e.name).toBe('SipParseError');
    // The status a grammar error answers with, unless the one who throws it names another.
    expect(e.status).toBe(400);
    expect(new SipParseError('Message Too Large', 513).status).toBe(513);
  });

  it('keeps its reason a single printable-ASCII line, whatever it is given', () => {
    const e = new SipParseError('Bad\r\nVia: x\u00e9');
    expect(e.reason).toBe('Bad??Via: x?');
    expect(new SipParseError('').reason).toBe('Bad Request');
  });
});

describe('splitHeaderValues', () => {
  it('splits on top-level commas only', () => {
    expect(splitHeaderValues('"Doe, John" <sip:a@b>;q=0.5, <sip:c@d;x=1,2>,sip:e@f')).toEqual([
      '"Doe, John" <sip:a@b>;q=0.5',
      '<sip:c@d;x=1,2>',
      'sip:e@f',
    ]);
  });

  it('respects backslash escapes inside quoted strings', () => {
    expect(splitHeaderValues('"a\\", b" <sip:x@y>, "c" <sip:z@w>')).toEqual([
      '"a\\", b" <sip:x@y>',
      '"c" <sip:z@w>',
    ]);
  });

  it('splits the RFC 4475 semiuri Accept list and the wsinv compact Via line', () => {
    expect(splitHeaderValues(headerValues('semiuri', 'Accept')[0]!)).toEqual([
      'application/sdp',
      'application/pkcs7-mime',
      'multipart/mixed',
      'multipart/signed',
      'message/sip',
      'message/sipfrag',
    ]);
    const vias = headerValues('wsinv', 'Via').flatMap(splitHeaderValues);
    expect(vias).toHaveLength(3);
    expect(vias[2]).toMatch(/^SIP {2}\/ +2\.0 +\/ UDP {2}192\.168\.255\.111 +; branch= z9hG4bK30239$/);
  });

  it('refuses empty elements (RFC 4475 badinv01)', () => {
    const via = headerValues('badinv01', 'Via')[0]!;
    expect(via).toBe('SIP/2.0/UDP 192.0.2.15;;,;,,');
    expect(reasonOf(() => splitHeaderValues(via))).toBe('Bad header value: empty list element');
    for (const bad of ['a,,b', 'a,', ',a', 'a, ,b', ','])
      expect(() => splitHeaderValues(bad)).toThrow(SipParseError);
  });

  it('gives no elements for an empty value, and refuses unterminated quotes and brackets', () => {
    expect(splitHeaderValues('')).toEqual([]);
    expect(splitHeaderValues(' \t')).toEqual([]);
    expect(reasonOf(() => splitHeaderValues('"abc, <sip:a@b>'))).toBe(
      'Bad header value: unterminated quoted string',
    );
    expect(reasonOf(() => splitHeaderValues('<sip:a@b, c'))).toBe('Bad header value: unterminated <');
  });

  it('trims only SP and HTAB, never the 0xA0 byte of a UTF-8 sequence', () => {
    expect(splitHeaderValues('a\u00c3\u00a0 ,\tb')).toEqual(['a\u00c3\u00a0', 'b']);
  });
});

describe('parseUint', () => {
  it('accepts digits up to max, with leading zeros (RFC 4475 wsinv Max-Forwards 0068)', () => {
    expect(parseUint(headerValues('wsinv', 'Max-Forwards')[0]!, 255, 'Max-Forwards')).toBe(68);
    expect(parseUint('0', 255, 'x')).toBe(0);
    expect(parseUint('255', 255, 'x')).toBe(255);
    expect(parseUint('4294967295', 0xffffffff, 'x')).toBe(4294967295);
  });

  it('refuses values over max (RFC 4475 scalar02) with "Bad <what>"', () => {
    expect(reasonOf(() => parseUint(headerValues('scalar02', 'Max-Forwards')[0]!, 255, 'Max-Forwards'))).toBe(
      'Bad Max-Forwards',
    );
    const expires = headerValues('scalar02', 'Expires')[0]!;
    expect(expires.length).toBeGreaterThan(100);
    expect(reasonOf(() => parseUint(expires, 0xffffffff, 'Expires'))).toBe('Bad Expires');
  });

  it('refuses signs, spaces and empty input (RFC 4475 ncl: negative Content-Length)', () => {
    expect(
      reasonOf(() => parseUint(headerValues('ncl', 'Content-Length')[0]!, 2 ** 31, 'Content-Length')),
    ).toBe('Bad Content-Length');
    for (const bad of ['', '+1', ' 1', '1 ', '1.0', '0x10', '１'])
      expect(() => parseUint(bad, 1000, 'n')).toThrow(SipParseError);
  });
});

describe('parseCSeq', () => {
  it('parses the RFC 4475 wsinv CSeq with leading zeros and folded LWS', () => {
    expect(parseCSeq(headerValues('wsinv', 'CSeq')[0]!)).toEqual({ seq: 9, method: 'INVITE' });
  });

  it('keeps an unusual token method as written (RFC 4475 intmeth)', () => {
    expect(parseCSeq(headerValues('intmeth', 'CSeq')[0]!)).toEqual({
      seq: 139122385,
      method: "!interesting-Method0123456789_*+`.%indeed'~",
    });
  });

  it('refuses a sequence number above 2^32-1 (RFC 4475 scalar02, scalarlg)', () => {
    expect(reasonOf(() => parseCSeq(headerValues('scalar02', 'CSeq')[0]!))).toBe('Bad CSeq');
    expect(() => parseCSeq(headerValues('scalarlg', 'CSeq')[0]!)).toThrow(SipParseError);
    expect(parseCSeq('4294967295 ACK').seq).toBe(4294967295);
    expect(() => parseCSeq('4294967296 ACK')).toThrow(SipParseError);
  });

  it('refuses a missing LWS, method or number, and a non-token method', () => {
    for (const bad of ['1INVITE', '1 ', '1', 'INVITE', ' 1 INVITE', '1 INV ITE', '1 INVITE;x', '-1 INVITE']) {
      expect(() => parseCSeq(bad), bad).toThrow(SipParseError);
    }
  });
});

describe('isToken and isValidCallId', () => {
  it('knows the RFC 3261 token set', () => {
    expect(isToken("az-AZ.09!%*_+`'~")).toBe(true);
    for (const bad of ['', 'a b', 'a:b', 'a"', 'a/b', 'a@b', 'a;b', 'a=b', '\u00e9'])
      expect(isToken(bad), bad).toBe(false);
  });

  it('accepts word ["@" word] Call-IDs (RFC 4475 intmeth, longreq)', () => {
    expect(isValidCallId(headerValues('intmeth', 'Call-ID')[0]!)).toBe(true);
    expect(isValidCallId(headerValues('longreq', 'Call-ID')[0]!)).toBe(true);
    expect(isValidCallId('wsinv.ndaksdj@192.0.2.1')).toBe(true);
  });

  it('refuses empty words, a second "@", spaces and non-ASCII bytes', () => {
    for (const bad of ['', '@a', 'a@', 'a@b@c', 'a b', 'a;b', 'a,b', '\u00e9@x'])
      expect(isValidCallId(bad), bad).toBe(false);
  });
});

describe('isGmtDate', () => {
  it('accepts an RFC 1123 date in GMT', () => {
    expect(isGmtDate('Sat, 13 Nov 2010 23:29:00 GMT')).toBe(true);
    expect(isGmtDate('Wed, 29 Feb 2012 00:00:00 GMT')).toBe(true);
  });

  it('refuses a non-GMT zone (RFC 4475 baddate)', () => {
    const date = headerValues('baddate', 'Date')[0]!;
    expect(date).toBe('Fri, 01 Jan 2010 16:00:00 EST');
    expect(isGmtDate(date)).toBe(false);
    expect(isGmtDate(date.replace('EST', 'GMT'))).toBe(true);
  });

  it('refuses malformed dates', () => {
    for (const bad of [
      'Sat, 13 Nov 2010 23:29:00 gmt',
      'sat, 13 Nov 2010 23:29:00 GMT',
      'Sat, 13 Nov 2010  23:29:00 GMT',
      'Sat 13 Nov 2010 23:29:00 GMT',
      'Sat, 13 nov 2010 23:29:00 GMT',
      'Sat, 32 Jan 2010 23:29:00 GMT',
      'Sat, 29 Feb 2011 23:29:00 GMT',
      'Sat, 13 Nov 2010 24:00:00 GMT',
      'Sat, 13 Nov 2010 23:60:00 GMT',
      'Sat, 00 Nov 2010 23:29:00 GMT',
      'Sat, 13 Nov 10 23:29:00 GMT',
      'Sat, 13 Nov 2010 23:29:00 GMT ',
      '',
    ]) {
      expect(isGmtDate(bad), bad).toBe(false);
    }
  });
});
