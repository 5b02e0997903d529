// To tags for the responses this service sends: random ones for dialogs and transactions, derived
// ones for stateless answers (RFC 3261 §8.2.7), recognisable by their prefix.

import { createHmac, randomBytes, randomFillSync } from 'node:crypto';
import type { SipRequest } from '../sip/message.js';
import { MAGIC_COOKIE } from '../sip/via.js';

/** Random bytes per To tag: 72 bits, above the 64 an off-path guesser would have to beat. */
const TAG_BYTES = 9;
/** Tags drawn per call to the system's random source. */
const TAG_BATCH = 1024;

/** base64url's alphabet as character codes, for derived tags built without intermediate strings. */
const TAG_ALPHABET = Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) =>
  c.charCodeAt(0),
);

/**
 * To tags. `next()` gives a fresh one for a dialog or a transaction: 72 bits from the system's
 * cryptographic random source, drawn in batches so a tag costs one base64url encoding (RFC 3261
 * §19.3 asks for 32 random bits at least; a prefix and a counter, as here before, are guessable).
 *
 * `stateless()` gives the tag of an answer sent without a transaction (RFC 3261 §8.2.7, as
 * Kamailio's `sl` does): derived from the request, so a retransmitted request gets the same tag.
 * Derived tags start with a prefix of their own that holds a "." (never in a random tag, whose
 * alphabet is base64url), so the ACK of such an answer is recognised by its To tag and dropped
 * without further work. The prefix and the hash's starting state come from the deployment secret,
 * so instances sharing it agree and others' tags do not look like ours.
 */
export class TagFactory {
  private readonly pool = Buffer.allocUnsafe(TAG_BYTES * TAG_BATCH);
  private offset = this.pool.length;
  /** The prefix of every derived tag: six characters from the secret, and a dot. */
  readonly statelessPrefix: string;
  /** Starting states of the two 32-bit lanes of the derived tags' hash, from the secret. */
  private readonly seedA: number;
  private readonly seedB: number;
  /** The two lanes while a tag is hashed: no allocation per tag. */
  private readonly lanes = new Int32Array(2);

  constructor(secret: Buffer = randomBytes(32)) {
    const derived = createHmac('sha256', secret).update('stateless-tag').digest();
    this.statelessPrefix = derived.toString('base64url', 0, 6).slice(0, 6) + '.';
    this.seedA = derived.readUInt32LE(8);
    this.seedB = derived.readUInt32LE(12);
  }

  next(): string {
    if (this.offset === this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const tag = this.pool.toString('base64url', this.offset, this.offset + TAG_BYTES);
    this.offset += TAG_BYTES;
    return tag;
  }

  /**
   * The To tag of a stateless answer to `req`: 64 bits hashed from what a retransmission repeats, in
   * two keyed lanes (FNV-1a steps, murmur3's finaliser). With a RFC 3261 branch the top Via says it
   * all: branch and sent-by name the transaction (§17.2.3), and a CANCEL, whose Via is the
   * INVITE's, gets the INVITE's tag as §9.2 would have it. Without one (RFC 2543 clients) Call-ID,
   * From and CSeq are hashed too. Not a MAC, and it need not be one: nothing is granted to whoever
   * knows such a tag (there is no dialog behind it, and its ACK is dropped); it must repeat for a
   * retransmission and differ between requests, at the cost of a few multiplications a character,
   * since it runs for every 302 (an HMAC costs several times the whole rest of the tag). Never
   * throws: a missing or malformed header counts as what it is.
   */
  stateless(req: SipRequest): string {
    const lanes = this.lanes;
    lanes[0] = this.seedA;
    lanes[1] = this.seedB;
    mixIn(lanes, req.header('via'));
    let branch: string | undefined;
    try {
      branch = req.topVia.branch;
    } catch {
      branch = undefined;
    }
    if (branch === undefined || branch.length <= MAGIC_COOKIE.length || !branch.startsWith(MAGIC_COOKIE)) {
      mixIn(lanes, req.header('call-id'));
      mixIn(lanes, req.header('from'));
      mixIn(lanes, req.header('cseq'));
    }
    const a = fmix32(lanes[0] ^ lanes[1]);
    const b = fmix32(lanes[1] + a);
    const t = TAG_ALPHABET;
    return (
      this.statelessPrefix +
      String.fromCharCode(
        t[(a >>> 26) & 63]!,
        t[(a >>> 20) & 63]!,
        t[(a >>> 14) & 63]!,
        t[(a >>> 8) & 63]!,
        t[(a >>> 2) & 63]!,
        t[(b >>> 26) & 63]!,
        t[(b >>> 20) & 63]!,
        t[(b >>> 14) & 63]!,
        t[(b >>> 8) & 63]!,
        t[(b >>> 2) & 63]!,
        t[((a & 3) << 2) | (b & 3)]!,
      )
    );
  }

  /** Is this one of our derived tags (the To tag of a stateless answer). */
  isStateless(tag: string | undefined): boolean {
    return tag !== undefined && tag.startsWith(this.statelessPrefix);
  }
}

/** One header value into both lanes, then a separator no character can be ("ab","c" ≠ "a","bc"). */
function mixIn(lanes: Int32Array, v: string | undefined): void {
  let a = lanes[0]!;
  let b = lanes[1]!;
  if (v !== undefined) {
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
  }
  lanes[0] = Math.imul(a ^ 0x10000, 0x01000193);
  lanes[1] = Math.imul(b ^ 0x10000, 0x5bd1e995);
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
