// host:port as a Via sent-by, a URI's hostport and a listener's id write it.
import { describe, expect, it } from 'vitest';
import { hostPort } from '../../src/sip/host-port.js';
import { listenerId } from '../../src/config/schema.js';

describe('hostPort', () => {
  it('writes an IPv6 address in brackets (RFC 3986 §3.2.2), anything else as it is', () => {
    expect(hostPort('192.0.2.1', 5060)).toBe('192.0.2.1:5060');
    expect(hostPort('pc1.contoso.com', 5041)).toBe('pc1.contoso.com:5041');
    expect(hostPort('::1', 5061)).toBe('[::1]:5061');
    expect(hostPort('2001:db8::7', 0)).toBe('[2001:db8::7]:0');
  });

  it('is what a listener id is made of', () => {
    expect(listenerId({ transport: 'tcp', host: '::1', port: 5060 })).toBe('tcp://[::1]:5060');
    expect(listenerId({ transport: 'udp', host: '127.0.0.1', port: 5060 })).toBe('udp://127.0.0.1:5060');
  });
});
