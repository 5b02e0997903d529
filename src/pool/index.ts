// The pool layer's public face: what the proxy core and the composition root import.

export type { AddressRecord, DnsLike, NaptrRecord, SrvRecord, Target, TargetTransport } from './types.js';
export { defaultPort } from './types.js';
export { createDnsResolver, DEFAULT_DNS_TIMEOUT_MS } from './dns.js';
export { PoolResolver, type PoolResolverOptions, type TransportChoice } from './pool-resolver.js';
export { TargetHealth, type TargetHealthOptions } from './target-health.js';
export {
  HealthProber,
  acceptCodesFrom,
  defaultAcceptCodes,
  type HealthProberOptions,
  type ProbeResult,
  type ProbeState,
} from './health-prober.js';
export { orderSrv, type RandomSource } from './srv-order.js';
export { PoolError, PoolOptionError, PoolResolutionError } from './errors.js';
