// Via branch parameters for the requests we send: RFC 3261 §8.1.1.7 unique, and hard to guess.

import { randomFillSync } from 'node:crypto';
import { MAGIC_COOKIE } from '../sip/via.js';

/** Random bytes per branch: 72 bits, so branches are unique without a counter and cannot be guessed. */
const BRANCH_BYTES = 9;
/** Drawn in batches: one call to the system's random source per 1024 branches. */
const POOL_SIZE = 1024 * BRANCH_BYTES;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

/**
 * A new branch: `z9hG4bK` and 72 bits from the system's cryptographic random source (12 base64url
 * characters). No per-process prefix or counter: one branch seen tells nothing of the next, so an
 * off-path sender cannot forge a response a client transaction would match (RFC 3261 §17.1.3
 * matches by branch), and 72 bits keep two branches of any run apart (a collision after 2^36).
 */
export function newBranch(): string {
  if (poolOffset === POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const tail = pool.toString('base64url', poolOffset, poolOffset + BRANCH_BYTES);
  poolOffset += BRANCH_BYTES;
  return MAGIC_COOKIE + tail;
}
