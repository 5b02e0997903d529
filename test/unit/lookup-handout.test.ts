// Which lookup URI is handed out: round-robin per endpoint, and what health probing knows of the
// members a URI names (by host name or address, port and transport).

import { describe, it, expect } from 'vitest';
import { HandoutPicker, uriDown } from '../../src/modes/lookup/handout.js';
import type { Endpoint } from '../../src/endpoints/endpoint.js';
import type { Target } from '../../src/pool/index.js';

function state(host: string, address: string, port: number, transport: Target['transport'], up: boolean) {
  const target: Target = {
    transport,
    host,
    address,
    port,
    family: 4,
    id: `${transport}:${address}:${port}`,
    source: 'dns',
  };
  return { target, up };
}

const endpoint = (key: string, lookupUris: string[]): Endpoint =>
  ({ key, lookupUris }) as unknown as Endpoint;

describe('uriDown', () => {
  const states = [
    state('pc1.contoso.com', '10.0.0.1', 5061, 'tls', false),
    state('pc2.contoso.com', '10.0.0.2', 5061, 'tls', true),
    state('pc2.contoso.com', '10.0.0.3', 5061, 'tls', false),
  ];

  it('is true only when every member the URI names is down', () => {
    expect(uriDown('sip:chan@pc1.contoso.com', states)).toBe(true);
    expect(uriDown('sip:chan@PC1.Contoso.com:5061;transport=tls', states)).toBe(true);
    // pc2 has one member up and one down: the URI is live.
    expect(uriDown('sip:chan@pc2.contoso.com', states)).toBe(false);
    expect(uriDown('sip:chan@10.0.0.3', states)).toBe(true);
  });

  it('is unknown when no probed member matches host, port and transport, or nothing is probed', () => {
    expect(uriDown('sip:chan@pcpool.contoso.com', states)).toBeUndefined();
    expect(uriDown('sip:chan@pc1.contoso.com:5062', states)).toBeUndefined();
    expect(uriDown('sip:chan@pc1.contoso.com;transport=tcp', states)).toBeUndefined();
    expect(uriDown('sip:chan@pc1.contoso.com', [])).toBeUndefined();
    expect(uriDown('not a uri', states)).toBeUndefined();
  });
});

describe('HandoutPicker', () => {
  it('goes round the URIs per endpoint, each endpoint on its own', () => {
    const p = new HandoutPicker();
    const a = endpoint('a@x', ['sip:1@x', 'sip:2@x']);
    const b = endpoint('b@x', ['sip:9@x']);
    expect([p.pick(a), p.pick(b), p.pick(a), p.pick(a)].map((h) => h.uri)).toEqual([
      'sip:1@x',
      'sip:9@x',
      'sip:2@x',
      'sip:1@x',
    ]);
  });

  it('skips URIs known down, and falls back to all of them when every one is', () => {
    let states = [state('h1', '10.0.0.1', 5060, 'udp', false), state('h2', '10.0.0.2', 5060, 'udp', true)];
    const p = new HandoutPicker(() => states);
    const e = endpoint('e@x', ['sip:c@h1', 'sip:c@h2', 'sip:c@h3']);
    expect([p.pick(e), p.pick(e), p.pick(e)].map((h) => h.uri)).toEqual(['sip:c@h2', 'sip:c@h3', 'sip:c@h2']);
    states = states.map((s) => ({ ...s, up: false }));
    const e2 = endpoint('e2@x', ['sip:c@h1', 'sip:c@h2']);
    expect(p.pick(e2)).toEqual({ uri: 'sip:c@h1', allDown: true });
    expect(p.pick(e2)).toEqual({ uri: 'sip:c@h2', allDown: true });
  });
});
