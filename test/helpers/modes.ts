// The modes of a Router, typed, for tests that look at what a mode holds.

import type { Router } from '../../src/router/router.js';
import { LookupMode } from '../../src/modes/lookup/index.js';
import { ProxyMode } from '../../src/modes/proxy/index.js';
import type { LookupService } from '../../src/modes/lookup/lookup-service.js';
import type { Proxy } from '../../src/modes/proxy/proxy.js';

/** The router's lookup service; throws when lookup mode is not configured. */
export function lookupOf(router: Router): LookupService {
  const mode = router.mode('lookup');
  if (!(mode instanceof LookupMode)) throw new Error('lookup mode is not configured');
  return mode.service;
}

/** The router's proxy core, when proxy mode is configured. */
export function proxyOf(router: Router): Proxy | undefined {
  const mode = router.mode('proxy');
  return mode instanceof ProxyMode ? mode.proxy : undefined;
}
