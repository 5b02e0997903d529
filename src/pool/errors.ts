// Errors the pool layer raises, each with a stable code the caller can branch on.

import { ServiceError } from '../base/service-error.js';

export class PoolError extends ServiceError {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** DNS failed for a pool and no earlier answer (not even a stale one) is there to fall back on. */
export class PoolResolutionError extends PoolError {
  readonly pool: string;
  constructor(pool: string, cause: unknown) {
    super('POOL_DNS_FAILED', `DNS resolution of pool ${pool} failed and no earlier answer is cached`, {
      cause,
    });
    this.pool = pool;
  }
}

/** A constructor was given an option it cannot work with. */
export class PoolOptionError extends PoolError {
  constructor(message: string) {
    super('POOL_BAD_OPTION', message);
  }
}
