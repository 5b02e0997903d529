// The Lookup mode's decisions as plain functions (src/modes/lookup/decisions.ts): fed requests that
// are plain objects, not our SipRequest, as another SIP stack would hand them over. What an INVITE,
// a session refresh and an INFO get, and how long a dialog may be left alone.

import { describe, it, expect } from 'vitest';
import {
  decideInfo,
  decideInvite,
  decideSession,
  dialogLifetime,
  mediaType,
  type LookupRequest,
} from '../../src/modes/lookup/decisions.js';
import type { Handout } from '../../src/modes/lookup/handout.js';

/** A request as a plain object: header names lower-case, one entry per header line. */
function view(headers: Record<string, string | string[]>, body = ''): LookupRequest {
  const lines = (name: string): string[] => {
    const v = headers[name];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  return { header: (name) => lines(name)[0], headerLines: lines, body: Buffer.from(body, 'utf8') };
}

const SDP =
  'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5061 sip null\r\n';
const envelope = (...ids: string[]): string =>
  `<xccos ver="1" envid="77" xmlns="urn:parlano:xml:ns:xccos">${ids
    .map((id, i) => `<cmd id="${id}" seqid="${i + 1}"><data/></cmd>`)
    .join('')}</xccos>`;

/** A hand-out source that yields `uris` in turn and counts its calls. */
function picker(uris: string[], allDown = false): { pick: () => Handout; calls: () => number } {
  let n = 0;
  return { pick: () => ({ uri: uris[n++ % uris.length]!, allDown }), calls: () => n };
}

describe('decideInvite', () => {
  it('takes an SDP offer, or none, and answers with our session interval, us refreshing (RFC 4028 §9)', () => {
    const withOffer = decideInvite(view({ 'content-type': 'application/sdp' }, SDP), 1800);
    expect(withOffer).toEqual({
      kind: 'accept',
      session: { kind: 'timer', seconds: 1800, refresher: 'uas' },
    });
    expect(decideInvite(view({}), 0)).toEqual({ kind: 'accept', session: { kind: 'none' } });
  });

  it('refuses an offer that is not SDP with 415 and Accept (RFC 3261 §21.4.13)', () => {
    expect(decideInvite(view({ 'content-type': 'text/plain' }, 'hello'), 1800)).toEqual({
      kind: 'refuse',
      status: 415,
      reason: 'Unsupported Media Type',
      outcome: 'lookup-bad-offer',
      extra: 'Accept: application/sdp\r\n',
      level: 'warn',
    });
  });

  it('refuses a malformed Session-Expires with 400, a short one from a timer-aware client with 422 and Min-SE', () => {
    expect(decideInvite(view({ 'session-expires': 'soon' }), 1800)).toMatchObject({
      kind: 'refuse',
      status: 400,
      reason: 'Bad Session-Expires header',
      outcome: 'lookup-bad-timer',
    });
    expect(decideInvite(view({ 'session-expires': '60', supported: 'timer' }), 1800)).toMatchObject({
      kind: 'refuse',
      status: 422,
      outcome: 'lookup-interval-too-small',
      extra: 'Min-SE: 90\r\n',
    });
    // Without timer support the interval is raised to the minimum instead.
    expect(decideInvite(view({ 'session-expires': '60' }), 1800)).toEqual({
      kind: 'accept',
      session: { kind: 'timer', seconds: 90, refresher: 'uas' },
    });
  });
});

describe('decideSession (a refresh: UPDATE or re-INVITE)', () => {
  it("honours the client's own shorter interval and refresher", () => {
    expect(
      decideSession(view({ 'session-expires': '600;refresher=uac', supported: ['100rel', 'timer'] }), 1800),
    ).toEqual({ kind: 'accept', session: { kind: 'timer', seconds: 600, refresher: 'uac' } });
  });
});

describe('dialogLifetime', () => {
  it('ends a dialog idle, or before its session interval runs out when that comes first (RFC 4028 §10)', () => {
    expect(dialogLifetime({ kind: 'none' }, 120_000)).toEqual({ ms: 120_000, why: 'idle' });
    expect(dialogLifetime({ kind: 'timer', seconds: 1800, refresher: 'uas' }, 120_000)).toEqual({
      ms: 120_000,
      why: 'idle',
    });
    // 90 s minus min(32, 30) s.
    expect(dialogLifetime({ kind: 'timer', seconds: 90, refresher: 'uac' }, 120_000)).toEqual({
      ms: 60_000,
      why: 'session-expired',
    });
  });
});

describe('decideInfo (xccos.md §3)', () => {
  const XML = { 'content-type': 'text/plain' };

  it('answers cmd:requri with the hand-out in an rpl:requri envelope of our envid', () => {
    const p = picker(['sip:chan1@10.0.0.1:5061;transport=tls']);
    const d = decideInfo(view(XML, envelope('cmd:requri')), 16_384, '4242', p.pick);
    expect(d).toEqual({
      kind: 'reply',
      body:
        '<xccos ver="1" envid="4242" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:requri" seqid="1">' +
        '<commandid seqid="1" envid="77"/><resp code="200">SUCCESS_OK</resp>' +
        '<data><uib uri="sip:chan1@10.0.0.1:5061;transport=tls"/></data></rpl></xccos>',
      handedOut: ['sip:chan1@10.0.0.1:5061;transport=tls'],
      unsupported: [],
      line: { level: 'info', outcome: 'lookup-handout', target: 'sip:chan1@10.0.0.1:5061;transport=tls' },
    });
    expect(p.calls()).toBe(1);
  });

  it('answers any other command COMMAND_NOT_SUPPORTED, and says so in the decision line', () => {
    const p = picker(['sip:a@x', 'sip:b@x']);
    const both = decideInfo(view(XML, envelope('cmd:requri', 'cmd:join', 'CMD:REQURI')), 16_384, '1', p.pick);
    if (both.kind !== 'reply') throw new Error(both.kind);
    expect(both.handedOut).toEqual(['sip:a@x', 'sip:b@x']);
    expect(both.unsupported).toEqual(['cmd:join']);
    expect(both.body).toContain(
      '<rpl id="rpl:join" seqid="2"><commandid seqid="2" envid="77"/><resp code="500">',
    );
    expect(both.line).toEqual({
      level: 'warn',
      outcome: 'lookup-handout',
      target: 'sip:a@x sip:b@x',
      reason: 'unsupported XCCOS command cmd:join',
    });
    const none = decideInfo(view(XML, envelope('cmd:bjoin')), 16_384, '1', p.pick);
    expect(none).toMatchObject({
      kind: 'reply',
      handedOut: [],
      line: { level: 'warn', outcome: 'xccos-unsupported', reason: 'unsupported XCCOS command cmd:bjoin' },
    });
    expect(p.calls()).toBe(2);
  });

  it('warns when every lookup URI was probed down and one was handed out anyway', () => {
    const d = decideInfo(view(XML, envelope('cmd:requri')), 16_384, '1', picker(['sip:a@x'], true).pick);
    expect(d).toMatchObject({
      kind: 'reply',
      line: { level: 'warn', reason: 'every lookup URI probed down; handed out anyway' },
    });
  });

  it('accepts a body-less INFO as a keep-alive and an envelope without commands, handing nothing out', () => {
    const p = picker(['sip:a@x']);
    expect(decideInfo(view({}), 16_384, '1', p.pick)).toEqual({ kind: 'keep-alive' });
    expect(decideInfo(view(XML, envelope()), 16_384, '1', p.pick)).toEqual({ kind: 'no-command' });
    expect(p.calls()).toBe(0);
  });

  const refusals: {
    name: string;
    req: LookupRequest;
    status: number;
    reason: string;
    why: string;
    extra?: string;
  }[] = [
    {
      name: 'a body over maxBodyBytes',
      req: view(XML, 'x'.repeat(301)),
      status: 413,
      reason: 'Request Entity Too Large',
      why: 'body of 301 bytes',
    },
    {
      name: 'a compressed body',
      req: view({ ...XML, 'content-encoding': 'gzip' }, envelope('cmd:requri')),
      status: 415,
      reason: 'Unsupported Media Type',
      why: 'Content-Encoding gzip',
      extra: 'Accept-Encoding: identity\r\n',
    },
    {
      name: 'a body without Content-Type (RFC 3261 §20.15)',
      req: view({}, envelope('cmd:requri')),
      status: 400,
      reason: 'Missing Content-Type',
      why: 'body without Content-Type',
    },
    {
      name: 'a body of another media type',
      req: view({ 'content-type': 'application/sdp' }, envelope('cmd:requri')),
      status: 415,
      reason: 'Unsupported Media Type',
      why: 'Content-Type application/sdp',
      extra: 'Accept: text/plain, application/xml, text/xml\r\n',
    },
    {
      name: 'a DTD',
      req: view(XML, `<!DOCTYPE x [<!ENTITY a "b">]>${envelope('cmd:requri')}`),
      status: 400,
      reason: 'Bad XCCOS: DOCTYPE not allowed',
      why: 'PCHAT_ERR_XCCOS_DOCTYPE: DOCTYPE not allowed',
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name} with ${r.status} and hands nothing out`, () => {
      const p = picker(['sip:a@x']);
      expect(decideInfo(r.req, 300, '1', p.pick)).toEqual({
        kind: 'refuse',
        status: r.status,
        reason: r.reason,
        outcome: 'xccos-refused',
        why: r.why,
        level: 'warn',
        ...(r.extra === undefined ? {} : { extra: r.extra }),
      });
      expect(p.calls()).toBe(0);
    });
  }

  it('reads the media type without parameters or case', () => {
    expect(mediaType(' Text/Plain ; charset=utf-8')).toBe('text/plain');
    expect(mediaType(';x')).toBeUndefined();
    expect(mediaType(undefined)).toBeUndefined();
  });
});
