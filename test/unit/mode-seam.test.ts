// The mode seam: decisions as plain data (shared checks, each mode's decide) with no socket, no
// transaction and no timer, and a router that reaches the modes only through the registry and the
// Mode interface, so a mode it has never heard of is served like the three it ships with.

import { describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { EndpointTable } from '../../src/endpoints/table.js';
import type { Endpoint } from '../../src/endpoints/endpoint.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { parseMessage } from '../../src/sip/parser.js';
import type { SipRequest } from '../../src/sip/message.js';
import { sharedChecks, maintenanceRetryAfter } from '../../src/modes/shared-checks.js';
import { buildModes } from '../../src/modes/registry.js';
import type { Mode, ModeContext, ModeFactory } from '../../src/modes/mode.js';
import { Router } from '../../src/router/router.js';
import { defaultSettings } from '../helpers/settings.js';
import { TagFactory } from '../../src/dialog/tags.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';

const ENDPOINTS = `
endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:statics@contoso.com
    poolFqdn: pcpool2.contoso.com
    mode: redirect
  - sipAddress: sip:off@contoso.com
    poolFqdn: pcpool.contoso.com
    enabled: false
  - sipAddress: sip:window@contoso.com
    poolFqdn: pcpool.contoso.com
    maintenanceUntil: 2030-01-01T00:00:10Z
  - sipAddress: sip:closed@contoso.com
    poolFqdn: pcpool.contoso.com
    maintenance: "on"
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool2.contoso.com
    targets:
      - uri: sip:pc1.contoso.com:5041;transport=tls
        q: 1.0
      - uri: sip:pc2.contoso.com:5041;transport=tls
        q: 0.5
`;
const table = EndpointTable.fromConfig(parseEndpointsConfig(ENDPOINTS, 'endpoints.yaml'));
const WINDOW_END = Date.parse('2030-01-01T00:00:10Z');

function endpoint(user: string): Endpoint {
  const e = table.lookupUri(`sip:${user}@contoso.com`);
  if (e === undefined) throw new Error(user);
  return e;
}

function req(extra = '', method = 'INVITE', ruri = 'sip:ocschat@contoso.com'): SipRequest {
  const r = parseMessage(
    Buffer.from(
      `${method} ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n` +
        'From: <sip:alice@contoso.com>;tag=1\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: c1\r\n' +
        `CSeq: 1 ${method}\r\n${extra}Content-Length: 0\r\n\r\n`,
      'latin1',
    ),
  );
  if (!r.ok || r.message.kind !== 'request') throw new Error('bad request');
  return r.message;
}

const UAS = { forwards: false };
const never = (): number => {
  throw new Error('the clock is read only when a window is set');
};

describe('shared checks (engine-neutral)', () => {
  it('pass an ordinary request for an enabled endpoint without reading the clock', () => {
    expect(sharedChecks(req('Max-Forwards: 70\r\n'), endpoint('ocschat'), UAS, never)).toBeUndefined();
  });

  it('Max-Forwards 0 gets 483 (RFC 3261 §16.3 item 3), for an endpoint or none', () => {
    expect(sharedChecks(req('Max-Forwards: 0\r\n'), endpoint('ocschat'), UAS, never)).toMatchObject({
      status: 483,
      outcome: 'too-many-hops',
    });
    expect(sharedChecks(req('Max-Forwards: 00\r\n'), undefined, undefined, never)?.status).toBe(483);
  });

  it('a UAS mode reads Require, a forwarding one Proxy-Require (RFC 3261 §8.2.2.3, §16.3 item 5)', () => {
    const both = req('Require: foo, timer\r\nProxy-Require: bar\r\n');
    expect(sharedChecks(both, endpoint('ocschat'), UAS, never)).toMatchObject({
      status: 420,
      extra: 'Unsupported: foo, timer\r\n',
    });
    expect(
      sharedChecks(both, endpoint('ocschat'), { forwards: false, supported: new Set(['timer']) }, never),
    ).toMatchObject({ status: 420, extra: 'Unsupported: foo\r\n' });
    expect(sharedChecks(both, endpoint('proxied'), { forwards: true }, never)).toMatchObject({
      status: 420,
      extra: 'Unsupported: bar\r\n',
    });
  });

  it('a disabled endpoint gets 404, one in a window 503 with the seconds left, "on" an hour', () => {
    expect(sharedChecks(req(), endpoint('off'), UAS, never)).toMatchObject({
      status: 404,
      outcome: 'disabled',
    });
    expect(sharedChecks(req(), endpoint('window'), UAS, () => WINDOW_END - 4_500)).toMatchObject({
      status: 503,
      outcome: 'maintenance',
      extra: 'Retry-After: 5\r\n',
    });
    expect(sharedChecks(req(), endpoint('window'), UAS, () => WINDOW_END)).toBeUndefined();
    expect(maintenanceRetryAfter(endpoint('closed'), 0)).toBe(3600);
  });
});

describe("each mode's decision is data", () => {
  const ctx: ModeContext = {
    logger: pino({ level: 'silent' }),
    clock: new FakeClock(),
    timers: defaultSettings().timers,
    serverHeader: 'pchat-endpoint',
    tags: new TagFactory(),
    secret: Buffer.alloc(32),
    record: () => undefined,
    onResponseLoop: () => undefined,
  };
  const [redirect] = buildModes().map((make) => make(ctx));

  it('buildModes with no options builds redirect alone; the others need their collaborators', () => {
    expect(buildModes().map((make) => make(ctx).name)).toEqual(['redirect']);
  });

  it('redirect: 302 naming the pool, or its static targets with their q-values', () => {
    expect(redirect!.decide(req(), endpoint('ocschat'), undefined as never)).toEqual({
      status: 302,
      outcome: 'redirect',
      extra: 'Contact: <sip:ocschat@pcpool.contoso.com>\r\n',
      endpoint: endpoint('ocschat'),
    });
    expect(redirect!.decide(req(), endpoint('statics'), undefined as never)).toMatchObject({
      extra:
        'Contact: <sip:pc1.contoso.com:5041;transport=tls>;q=1.0, <sip:pc2.contoso.com:5041;transport=tls>;q=0.5\r\n',
    });
  });
});

describe('the router reaches modes only through the seam', () => {
  /** A mode the router has never heard of, registered under proxy mode's name. */
  function stubMode(seen: string[]): ModeFactory {
    return (): Mode<string> => ({
      name: 'proxy',
      forwards: false,
      decide: (r, e) => {
        seen.push(`decide ${r.method} ${e.sipAddress}`);
        return r.method === 'OPTIONS'
          ? { status: 480, outcome: 'stub-busy', endpoint: e }
          : { handover: 'transaction', plan: 'plan-1', endpoint: e };
      },
      carry: (inb, plan) => {
        seen.push(`carry ${plan} ${inb.req.method}`);
        inb.txn.respond(
          486,
          `SIP/2.0 486 Busy Here\r\nVia: ${inb.req.header('via')}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
        );
        return true;
      },
    });
  }

  /** A router over an in-memory link with these modes (buildModes()'s alone when none are given). */
  function run(modes?: ModeFactory[]): { router: Router; link: MemoryLink } {
    const link = new MemoryLink('udp');
    const router = new Router({
      table: () => table,
      logger: pino({ level: 'silent' }),
      clock: new FakeClock(),
      timers: defaultSettings().timers,
      maxMessageSize: 4096,
      serverHeader: 'pchat-endpoint',
      limits: defaultSettings().router,
      ...(modes === undefined ? {} : { modes }),
    });
    return { router, link };
  }

  it("an endpoint's mode gets the decision, and its answer is sent statelessly by the router", () => {
    const seen: string[] = [];
    const { router, link } = run([...buildModes(), stubMode(seen)]);
    router.onMessage(
      req('', 'OPTIONS', 'sip:proxied@contoso.com').toBuffer(),
      link.source('127.0.0.1', 5070),
    );
    expect(seen).toEqual(['decide OPTIONS sip:proxied@contoso.com']);
    const [out] = link.take();
    expect(out).toMatch(/^SIP\/2.0 480 /);
    expect(router.transactions.size).toBe(0);
  });

  it('a transaction hand-over gets a server transaction that absorbs the retransmission', () => {
    const seen: string[] = [];
    const { router, link } = run([...buildModes(), stubMode(seen)]);
    const invite = req('', 'INVITE', 'sip:proxied@contoso.com').toBuffer();
    router.onMessage(invite, link.source('127.0.0.1', 5070));
    router.onMessage(invite, link.source('127.0.0.1', 5070));
    expect(seen).toEqual(['decide INVITE sip:proxied@contoso.com', 'carry plan-1 INVITE']);
    expect(router.transactions.size).toBe(1);
    // The 486 once for the request, once more for its retransmission (RFC 3261 §17.2.1).
    expect(link.take().filter((m) => m.startsWith('SIP/2.0 486'))).toHaveLength(2);
  });

  it('an endpoint whose mode is not registered gets 501 naming the mode', () => {
    const { router, link } = run();
    router.onMessage(req('', 'INVITE', 'sip:proxied@contoso.com').toBuffer(), link.source('127.0.0.1', 5070));
    expect(link.take()[0]).toMatch(/^SIP\/2.0 501 /);
  });
});
