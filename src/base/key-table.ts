// A hash table from string keys to values, for the transaction tables: entries come and go tens of
// thousands of times a second while only a few are held at once.
//
// Why not a Map: V8 compacts a Map by building a new backing table and leaves the old one pointing
// at its successor, with the old entries still in it. Once one of those retired tables has been
// promoted to the old generation, every scavenge treats it as a root, so its successor survives,
// is promoted in turn, and so on: each table, and every transaction and message its entries name,
// reaches the old generation and waits there for a full collection. Whether that chain starts
// depends on where the current table sits at the first full collection, so identical runs settled
// either at about 90 MB or at 125-135 MB RSS, the latter with about 20 % more CPU per request. Here
// the slots are reused in place: nothing is left behind that links to what comes next, and a
// deleted entry lets go of its key and value at once.

import { randomBytes } from 'node:crypto';

/** Marks a slot whose entry was deleted; probing goes on past it. */
const DELETED = null;

const MIN_CAPACITY = 1024;

export class KeyTable<V> {
  private keys: (string | null | undefined)[];
  private vals: (V | undefined)[];
  /** The hash of each slot's key: compared before the key, and a rebuild does not hash again. */
  private hashes: Int32Array;
  private mask: number;
  /** Entries held. */
  private live = 0;
  /** Entries held plus deleted slots: a probe stops only at a slot never used. */
  private used = 0;

  constructor(capacity: number = MIN_CAPACITY) {
    const c = roundUp(capacity);
    this.keys = new Array<string | null | undefined>(c).fill(undefined);
    this.vals = new Array<V | undefined>(c).fill(undefined);
    this.hashes = new Int32Array(c);
    this.mask = c - 1;
  }

  get size(): number {
    return this.live;
  }

  /**
   * The key hashed last and its hash: a transaction is looked up and then created, or looked up and
   * then ended, under one key, and comparing it with the last is cheaper than hashing it again.
   * Holds that one string (never a value) until the next key comes.
   *
   * What it buys (issue 19, docs/performance-notes.md): a proxied call hashes 18 keys of about 27
   * characters, 12 of them just hashed (about 3,000 instructions a call); without this, 3.5 % more
   * CPU on the in-process proxy path (`node bench/proxy-hotpath.mjs DIST 30000`, 43 alternated
   * pairs: mean +3.5 %, median +4.1 %). The redirect path does not use the table.
   */
  private lastKey = '';
  private lastHash = hash('');

  private hashOf(key: string): number {
    if (key !== this.lastKey) {
      this.lastHash = hash(key);
      this.lastKey = key;
    }
    return this.lastHash;
  }

  /** Slots allocated (diagnostics and tests). */
  get capacity(): number {
    return this.keys.length;
  }

  get(key: string): V | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.vals[i];
  }

  has(key: string): boolean {
    return this.find(key) >= 0;
  }

  set(key: string, value: V): void {
    this.insert(key, value, this.hashOf(key) | 0);
  }

  private insert(key: string, value: V, h: number): void {
    const keys = this.keys;
    const hashes = this.hashes;
    const mask = this.mask;
    let i = h & mask;
    let free = -1;
    for (;;) {
      const k = keys[i];
      if (k === undefined) break;
      if (hashes[i] === h && k === key) {
        this.vals[i] = value;
        return;
      }
      if (k === DELETED && free < 0) free = i;
      i = (i + 1) & mask;
    }
    if (free >= 0) {
      // A deleted slot on the way is reused: `used` does not grow.
      keys[free] = key;
      this.vals[free] = value;
      hashes[free] = h;
      this.live++;
      return;
    }
    keys[i] = key;
    this.vals[i] = value;
    hashes[i] = h;
    this.live++;
    // Kept at most half full, so that a probe for a missing key ends soon.
    if (++this.used * 2 > keys.length) this.rebuild();
  }

  delete(key: string): boolean {
    const i = this.find(key);
    if (i < 0) return false;
    this.remove(i);
    return true;
  }

  /** Delete the entry for `key` only when it holds `value`: one probe where get and delete take two. */
  deleteIf(key: string, value: unknown): boolean {
    const i = this.find(key);
    if (i < 0 || this.vals[i] !== value) return false;
    this.remove(i);
    return true;
  }

  private remove(i: number): void {
    this.keys[i] = DELETED;
    this.vals[i] = undefined;
    this.live--;
    // After a burst, give the room back once few entries are left.
    if (this.live * 16 < this.keys.length && this.keys.length > MIN_CAPACITY) this.rebuild();
  }

  /** Every value held (a snapshot: the table may be changed while it is walked). */
  values(): V[] {
    const out: V[] = [];
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k !== undefined && k !== DELETED) out.push(this.vals[i] as V);
    }
    return out;
  }

  clear(): void {
    this.keys.fill(undefined);
    this.vals.fill(undefined);
    this.live = 0;
    this.used = 0;
  }

  private find(key: string): number {
    const keys = this.keys;
    const hashes = this.hashes;
    const mask = this.mask;
    const h = this.hashOf(key) | 0;
    let i = h & mask;
    for (;;) {
      const k = keys[i];
      if (k === undefined) return -1;
      // The hash first: another key's text is not read (a cache miss each on a large table).
      if (hashes[i] === h && k === key) return i;
      i = (i + 1) & mask;
    }
  }

  /**
   * Clears the deleted slots. The arrays keep their size (and stay where the collector has put
   * them) unless the entries held need more room, or far less.
   */
  private rebuild(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    let capacity = oldKeys.length;
    if (this.live * 4 > capacity) capacity *= 2;
    else if (this.live * 16 < capacity && capacity > MIN_CAPACITY) capacity /= 2;
    const oldHashes = this.hashes;
    const liveKeys: string[] = [];
    const liveVals: V[] = [];
    const liveHashes: number[] = [];
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i];
      if (k !== undefined && k !== DELETED) {
        liveKeys.push(k);
        liveVals.push(oldVals[i] as V);
        liveHashes.push(oldHashes[i]!);
      }
    }
    // Emptied in any case: arrays given up must hold nothing alive if they linger.
    oldKeys.fill(undefined);
    oldVals.fill(undefined);
    if (capacity !== oldKeys.length) {
      this.keys = new Array<string | null | undefined>(capacity).fill(undefined);
      this.vals = new Array<V | undefined>(capacity).fill(undefined);
      this.hashes = new Int32Array(capacity);
      this.mask = capacity - 1;
    }
    this.live = 0;
    this.used = 0;
    for (let j = 0; j < liveKeys.length; j++) this.insert(liveKeys[j]!, liveVals[j]!, liveHashes[j]!);
  }
}

function roundUp(n: number): number {
  let c = MIN_CAPACITY;
  while (c < n) c *= 2;
  return c;
}

/**
 * A per-process random start, so that nobody can pick branches that all land in one run of slots:
 * a peer chooses the keys (its branches), and a table probed linearly is only as fast as its hash
 * is unpredictable.
 */
const SEED = randomBytes(4).readUInt32LE(0);

/** FNV-1a over the UTF-16 code units from a random start, then murmur3's finaliser to spread the bits. */
function hash(s: string): number {
  let h = SEED ^ 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
