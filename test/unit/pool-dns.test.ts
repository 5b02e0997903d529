// createDnsResolver: servers are always explicit, never the system's resolver by default.

import { describe, expect, it } from 'vitest';
import { createDnsResolver } from '../../src/pool/dns.js';
import { PoolOptionError } from '../../src/pool/errors.js';

describe('createDnsResolver', () => {
  it('refuses to fall back to the system resolver when given no server', () => {
    expect(() => createDnsResolver([])).toThrow(PoolOptionError);
  });

  it('takes IPv4 and IPv6 addresses with or without a port, and nothing else', () => {
    for (const s of ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:5353']) {
      expect(() => createDnsResolver([s]), s).not.toThrow();
    }
    for (const s of ['localhost', 'dns.test.example:53', '127.0.0.1:']) {
      expect(() => createDnsResolver([s]), s).toThrow(/not an IP address/);
    }
  });

  it('refuses a timeout that is not a positive integer', () => {
    expect(() => createDnsResolver(['127.0.0.1'], 0)).toThrow(/timeoutMs/);
  });
});
