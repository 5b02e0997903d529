// Via values: sent-protocol with LWS, sent-by, and the RFC 3261 / RFC 3581 via-params, against RFC 4475.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { reasonOf, FIXTURES } from '../helpers/rfc4475.js';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import { splitHeaderValues } from '../../src/sip/header-values.js';
import { MAGIC_COOKIE, parseVia, type Via } from '../../src/sip/via.js';

/** Every via-parm of an RFC 4475 message, in order: Via lines (long and compact) unfolded and split on commas. */
function vias(message: string): string[] {
  const raw = readFileSync(join(FIXTURES, `${message}.dat`)).toString('latin1');
  const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const name = line
      .slice(0, colon)
      .replace(/[ \t]+$/, '')
      .toLowerCase();
    if (name === 'via' || name === 'v')
      out.push(...splitHeaderValues(line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')));
  }
  return out;
}

describe('parseVia', () => {
  it('parses protocol, transport, sent-by and params', () => {
    expect(
      parseVia(
        'SIP/2.0/tls pool.contoso.com:5061;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5062;ms-received-cid=A00',
      ),
    ).toEqual({
      protocol: 'SIP/2.0',
      transport: 'TLS',
      host: 'pool.contoso.com',
      port: 5061,
      params: [
        ['branch', 'z9hG4bK776asdhds'],
        ['received', '192.0.2.1'],
        ['rport', '5062'],
        ['ms-received-cid', 'A00'],
      ],
      branch: 'z9hG4bK776asdhds',
    } satisfies Via);
  });

  it('accepts the LWS of RFC 4475 wsinv around "/", ";" and "="', () => {
    const [first, second, third] = vias('wsinv').map((v) => parseVia(v));
    expect(first).toMatchObject({
      protocol: 'SIP/2.0',
      transport: 'UDP',
      host: '192.0.2.2',
      branch: '390skdjuw',
    });
    expect(second).toMatchObject({
      transport: 'TCP',
      host: 'spindle.example.com',
      port: undefined,
      branch: 'z9hG4bK9ikj8',
    });
    expect(third).toMatchObject({ transport: 'UDP', host: '192.168.255.111', branch: 'z9hG4bK30239' });
  });

  it('accepts every transport of RFC 4475 transports, including an unknown one', () => {
    expect(vias('transports').map((v) => parseVia(v).transport)).toEqual([
      'UDP',
      'SCTP',
      'TLS',
      'UNKNOWN',
      'TCP',
    ]);
    expect(parseVia('SIP/2.0/wss df7jal23ls0d.invalid;branch=z9hG4bKasudf').transport).toBe('WSS');
  });

  it('accepts a branch that is only the magic cookie (RFC 4475 badbranch)', () => {
    expect(parseVia(vias('badbranch')[0]!).branch).toBe(MAGIC_COOKIE);
    expect(MAGIC_COOKIE).toBe('z9hG4bK');
  });

  it('accepts the unusual branch tokens of RFC 4475 intmeth and esc02', () => {
    expect(parseVia(vias('intmeth')[0]!).branch).toBe("z9hG4bK-.!%66*_+`'~");
    expect(parseVia(vias('esc02')[0]!).branch).toBe('z9hG4bK209%fzsnel234');
  });

  it('accepts all 34 Vias of RFC 4475 longreq, and the broadcast sent-by of bcast', () => {
    const all = vias('longreq').map((v) => parseVia(v));
    expect(all).toHaveLength(34);
    expect(all[33]!.params[0]).toEqual(['received', '192.0.2.5']);
    expect(all[33]!.branch).toMatch(/^verylong(long)+branchvalue$/);
    expect(parseVia(vias('bcast')[1]!).host).toBe('255.255.255.255');
  });

  it('leaves branch undefined on an RFC 2543 Via (RFC 4475 inv2543)', () => {
    expect(parseVia(vias('inv2543')[0]!)).toMatchObject({
      host: 'iftgw.example.com',
      branch: undefined,
      params: [],
    });
  });

  it('accepts IPv6 sent-by and received, rport without value, and LWS around ":"', () => {
    expect(
      parseVia('SIP/2.0/UDP [2001:db8::9:1]:5060;received=2001:db8::9:255;rport;branch=z9hG4bKas3-111'),
    ).toMatchObject({
      host: '[2001:db8::9:1]',
      port: 5060,
      params: [
        ['received', '2001:db8::9:255'],
        ['rport', undefined],
        ['branch', 'z9hG4bKas3-111'],
      ],
    });
    expect(parseVia('SIP/2.0/UDP h;received=[2001:db8::9:255]').params[0]).toEqual([
      'received',
      '[2001:db8::9:255]',
    ]);
    expect(parseVia('SIP/2.0/UDP host.example.com : 5060 ;maddr=224.2.0.1;ttl=16')).toMatchObject({
      port: 5060,
      params: [
        ['maddr', '224.2.0.1'],
        ['ttl', '16'],
      ],
    });
  });

  it('refuses the empty params of RFC 4475 badinv01', () => {
    expect(reasonOf(() => parseVia('SIP/2.0/UDP 192.0.2.15;;'))).toBe('Bad Via: empty parameter');
    expect(() => parseVia('SIP/2.0/UDP 192.0.2.15;')).toThrow(SipParseError);
  });

  it('refuses malformed values with a reason', () => {
    const cases: Array<[string, string]> = [
      ['', 'missing protocol name'],
      ['SIP/2.0', 'bad sent-protocol'],
      ['SIP/2.0/UDP', 'missing sent-by'],
      ['SIP/2.0/UDP ', 'missing sent-by'],
      ['SIP/2.0 UDP host', 'bad sent-protocol'],
      ['SIP//UDP host', 'missing protocol version'],
      ['SIP/2.0/ host', 'missing sent-by'],
      ['SIP/2.0/UDP [2001:db8::1', 'unterminated IPv6 reference'],
      ['SIP/2.0/UDP [2001:db8::1::2]', 'bad IPv6 reference'],
      ['SIP/2.0/UDP -bad.example.com', 'bad host'],
      ['SIP/2.0/UDP host:70000', 'port out of range'],
      ['SIP/2.0/UDP host:', 'bad port'],
      ['SIP/2.0/UDP host;branch', 'bad branch'],
      ['SIP/2.0/UDP host;branch="z9hG4bK1"', 'bad branch'],
      ['SIP/2.0/UDP host;received=example.com', 'bad received'],
      ['SIP/2.0/UDP host;received', 'bad received'],
      ['SIP/2.0/UDP host;rport=x', 'bad rport'],
      ['SIP/2.0/UDP host;rport=65536', 'bad rport'],
      ['SIP/2.0/UDP host;ttl=256', 'bad ttl'],
      ['SIP/2.0/UDP host;ttl=0001', 'bad ttl'],
      ['SIP/2.0/UDP host;maddr=-x', 'bad maddr'],
      ['SIP/2.0/UDP host;x=a:b', 'bad parameter value'],
      ['SIP/2.0/UDP host;x="open', 'unterminated quoted string'],
      ['SIP/2.0/UDP host x', 'unexpected text after address'],
      ['SIP/2.0/UDP host,other', 'unexpected text after address'],
    ];
    for (const [value, why] of cases)
      expect(
        reasonOf(() => parseVia(value)),
        value,
      ).toBe(`Bad Via: ${why}`);
  });

  it('every truncation and one-byte change of a valid Via parses or throws SipParseError', () => {
    const samples = [
      ...vias('wsinv'),
      'SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK1;received=2001:db8::2;rport=1;x="q;,"',
    ];
    const bytes = ['', ' ', '/', ';', '=', ':', '[', ']', '"', ',', '\u0000', '\u00e9', 'x'];
    const failures: string[] = [];
    for (const text of samples) {
      for (let i = 0; i <= text.length; i++) {
        const variants = [text.slice(0, i), text.slice(i)];
        for (const b of bytes)
          variants.push(text.slice(0, i) + b + text.slice(i + 1), text.slice(0, i) + b + text.slice(i));
        for (const v of variants) {
          try {
            parseVia(v);
          } catch (e) {
            if (!(e instanceof SipParseError)) failures.push(`${String(e)}: ${v}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
