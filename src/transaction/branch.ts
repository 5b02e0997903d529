// Via branch parameters for the requests we send: RFC 3261 §8.1.1.7 unique, and hard to guess.

import { randomBytes, randomFillSync } from 'node:crypto';
import { MAGIC_COOKIE } from '../sip/via.js';

/**
 * Unique across space: 72 random bits drawn once per process, so two instances (or a restart)
 * never share a prefix in practice.
 */
const PREFIX = MAGIC_COOKIE + randomBytes(9).toString('base64url');

/** Per-branch random bytes, drawn in batches: one syscall per 1024 branches. */
const TAIL_BYTES = 6;
const POOL_SIZE = 1024 * TAIL_BYTES;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

/** Unique across time within the process. */
let counter = 0;

/**
 * A new branch: `z9hG4bK`, the process prefix, a counter in base 36, then 48 random bits.
 * The prefix and counter alone would be unique; the random tail stops an off-path sender that saw
 * one of our branches from predicting the next one and forging a response that a client
 * transaction matches (RFC 3261 §17.1.3 matches by branch).
 */
export function newBranch(): string {
  if (poolOffset === POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const tail = pool.toString('base64url', poolOffset, poolOffset + TAIL_BYTES);
  poolOffset += TAIL_BYTES;
  // The tail has a fixed length (8 characters), so prefix + counter + tail splits one way only.
  return PREFIX + (counter++).toString(36) + tail;
}
