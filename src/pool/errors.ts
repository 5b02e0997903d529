// Errors the pool layer raises, each with a stable code the caller can branch on.

import { ServiceError, type ServiceErrorCode } from '../base/service-error.js';

export class PoolError extends ServiceError {
  readonly code: ServiceErrorCode;
  constructor(code: ServiceErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** DNS failed for a pool and no earlier answer (not even a stale one) is there to fall back on. */
export class PoolResolutionError extends PoolError {
  readonly pool: string;
  constructor(pool: string, cause: unknown) {
    super(
      'PCHAT_ERR_POOL_DNS_FAILED',
      `DNS resolution of pool ${pool} failed and no earlier answer is cached`,
      {
        cause,
      },
    );
    this.pool = pool;
  }
}

/** A constructor was given an option it cannot work with. */
export class PoolOptionError extends PoolError {
  constructor(message: string) {
    super('PCHAT_ERR_POOL_BAD_OPTION', message);
  }
}
