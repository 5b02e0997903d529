// XCCOS envelopes: the client's cmd:requri as xccos.md §3 shows it, the server's rpl:requri byte for
// byte, and everything a hostile or broken body can try (DTDs, entities, truncation, encodings, size).

import { describe, it, expect } from 'vitest';
import {
  buildXccosReply,
  isRequri,
  parseXccos,
  SUCCESS,
  UNSUPPORTED,
  XccosError,
} from '../../src/modes/lookup/xccos.js';

const REQURI =
  '<xccos ver="1" envid="1804289383" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>';

function refused(body: string | Buffer): XccosError {
  try {
    parseXccos(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  } catch (err) {
    if (err instanceof XccosError) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe('parseXccos', () => {
  it('reads the cmd:requri envelope a legacy client sends (xccos.md §3)', () => {
    const env = parseXccos(Buffer.from(REQURI));
    expect(env).toEqual({ envid: '1804289383', commands: [{ id: 'cmd:requri', seqid: '1' }] });
    expect(isRequri(env.commands[0]!)).toBe(true);
  });

  it('compares the command id case-insensitively, as sipe does', () => {
    const env = parseXccos(Buffer.from(REQURI.replace('cmd:requri', 'CMD:ReqUri')));
    expect(isRequri(env.commands[0]!)).toBe(true);
  });

  it('accepts an XML declaration, a prefixed namespace and no namespace at all', () => {
    expect(parseXccos(Buffer.from(`<?xml version="1.0" encoding="utf-8"?>${REQURI}`)).commands).toHaveLength(
      1,
    );
    const prefixed =
      '<x:xccos xmlns:x="urn:parlano:xml:ns:xccos" envid="7"><x:cmd id="cmd:requri" seqid="3"/></x:xccos>';
    expect(parseXccos(Buffer.from(prefixed))).toEqual({
      envid: '7',
      commands: [{ id: 'cmd:requri', seqid: '3' }],
    });
    expect(parseXccos(Buffer.from('<xccos envid="1"><cmd id="cmd:requri"/></xccos>')).commands).toEqual([
      { id: 'cmd:requri', seqid: '1' },
    ]);
  });

  it('refuses a billion laughs document without expanding anything', () => {
    const lol =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
      Array.from(
        { length: 9 },
        (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`,
      ).join('') +
      ']><xccos envid="1"><cmd id="cmd:requri">&lol9;</cmd></xccos>';
    const t0 = performance.now();
    const err = refused(lol);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(err.code).toBe('PCHAT_ERR_XCCOS_DOCTYPE');
    expect(err.message).toBe('DOCTYPE not allowed');
  });

  it('refuses external entities (never resolved) and undeclared entities', () => {
    expect(
      refused('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xccos envid="1">&e;</xccos>').code,
    ).toBe('PCHAT_ERR_XCCOS_DOCTYPE');
    expect(refused('<!DOCTYPE xccos SYSTEM "http://127.0.0.1:9/x.dtd"><xccos envid="1"/>').code).toBe(
      'PCHAT_ERR_XCCOS_DOCTYPE',
    );
    const undeclared = refused('<xccos envid="1"><cmd id="cmd:requri">&e;</cmd></xccos>');
    expect(undeclared.code).toBe('PCHAT_ERR_XCCOS_MALFORMED_XML');
    expect(undeclared.message).toMatch(/undefined entity/);
  });

  it('refuses truncated and malformed XML with the parser position', () => {
    for (const cut of [10, 40, REQURI.length - 1]) {
      const err = refused(REQURI.slice(0, cut));
      expect(err.code, `cut at ${cut}`).toBe('PCHAT_ERR_XCCOS_MALFORMED_XML');
    }
    expect(refused('<xccos envid="1"><cmd id="a"></xccos>').message).toMatch(/^malformed XML: 1:\d+: /);
    expect(refused('not xml at all').code).toBe('PCHAT_ERR_XCCOS_MALFORMED_XML');
    expect(refused('').code).toBe('PCHAT_ERR_XCCOS_MALFORMED_XML');
  });

  it('refuses another root, another namespace, and a cmd without id', () => {
    expect(refused('<html/>').code).toBe('PCHAT_ERR_XCCOS_NOT_ENVELOPE');
    expect(refused('<xccos xmlns="urn:other" envid="1"/>').code).toBe('PCHAT_ERR_XCCOS_NOT_ENVELOPE');
    expect(refused('<xccos envid="1"><cmd seqid="1"/></xccos>').message).toBe('cmd without id');
  });

  it('refuses invalid UTF-8, deep nesting, too many commands and long attributes', () => {
    expect(refused(Buffer.from([0x3c, 0x78, 0xff, 0x3e])).code).toBe('PCHAT_ERR_XCCOS_ENCODING');
    expect(refused(`<xccos envid="1">${'<a>'.repeat(20)}${'</a>'.repeat(20)}</xccos>`).code).toBe(
      'PCHAT_ERR_XCCOS_LIMIT',
    );
    expect(refused(`<xccos envid="1">${'<cmd id="cmd:requri"/>'.repeat(9)}</xccos>`).code).toBe(
      'PCHAT_ERR_XCCOS_LIMIT',
    );
    expect(refused(`<xccos envid="${'9'.repeat(200)}"/>`).code).toBe('PCHAT_ERR_XCCOS_LIMIT');
  });
});

describe('buildXccosReply', () => {
  it('writes rpl:requri exactly as xccos.md §3 shows it', () => {
    const body = buildXccosReply('42', '1804289383', [
      { command: { id: 'cmd:requri', seqid: '1' }, result: SUCCESS, uri: 'sip:pcpool@contoso.com' },
    ]);
    expect(body).toBe(
      '<xccos ver="1" envid="42" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:requri" seqid="1">' +
        '<commandid seqid="1" envid="1804289383"/><resp code="200">SUCCESS_OK</resp>' +
        '<data><uib uri="sip:pcpool@contoso.com"/></data></rpl></xccos>',
    );
    // Our own reply reads back as a well-formed envelope.
    expect(parseXccos(Buffer.from(body)).envid).toBe('42');
  });

  it('answers any other command with an error reply, and escapes what it echoes', () => {
    const body = buildXccosReply('1', 'a"<&', [
      { command: { id: 'cmd:join', seqid: '2' }, result: UNSUPPORTED },
    ]);
    expect(body).toContain('<rpl id="rpl:join" seqid="2"><commandid seqid="2" envid="a&#34;&#60;&#38;"/>');
    expect(body).toContain('<resp code="500">COMMAND_NOT_SUPPORTED</resp><data/></rpl>');
    expect(() => parseXccos(Buffer.from(body))).not.toThrow();
  });
});
