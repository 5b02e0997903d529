// HEP version 3 (sipcapture's "HEP3", also called EEP): one captured SIP message in one datagram, as
// Homer's collectors and sngrep read it. A 6-byte header ("HEP3", total length) and then chunks, each
// vendor id (0: generic), type id, length (its 6-byte header included) and value, big-endian.
//
// The chunks go in the order sngrep's receiver expects: it does not walk the chunks but reads them
// at fixed places (family, protocol, ports, time, payload type and agent id; then the two addresses;
// then the auth key, only when it was started with a password; then the payload). Homer walks the
// chunks, so it reads any order. The correlation id comes last for that reason: before the payload,
// sngrep would take it for the payload.

import { isIPv4 } from 'node:net';
import type { Range } from './call-id.js';

/** Chunk type ids of the generic vendor (HEP3 revision 12, "Chunk types"). */
export const HepChunk = {
  IP_FAMILY: 0x0001,
  IP_PROTOCOL: 0x0002,
  IPV4_SOURCE: 0x0003,
  IPV4_DESTINATION: 0x0004,
  IPV6_SOURCE: 0x0005,
  IPV6_DESTINATION: 0x0006,
  SOURCE_PORT: 0x0007,
  DESTINATION_PORT: 0x0008,
  TIME_SECONDS: 0x0009,
  TIME_MICROSECONDS: 0x000a,
  PAYLOAD_TYPE: 0x000b,
  CAPTURE_AGENT_ID: 0x000c,
  AUTH_KEY: 0x000e,
  PAYLOAD: 0x000f,
  CORRELATION_ID: 0x0011,
} as const;

/** The IP protocol chunk holds the protocol number: TLS and WebSocket travel over TCP. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
/** The payload type chunk: 1 is SIP. */
export const PAYLOAD_SIP = 1;
/** The IP family chunk holds the socket address family: AF_INET, AF_INET6 (Linux values, which HEP uses). */
const AF_INET = 2;
const AF_INET6 = 10;

/** A HEP3 datagram's length is a 16-bit field: a larger one cannot be encoded. */
export const HEP_MAX_LENGTH = 0xffff;

/** One captured message: where it went from and to, when, and its bytes. */
export interface HepMessage {
  readonly family: 4 | 6;
  readonly protocol: typeof IPPROTO_TCP | typeof IPPROTO_UDP;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** Capture time: seconds since the epoch and the microseconds within that second. */
  readonly seconds: number;
  readonly microseconds: number;
  /** The message as received or sent; a string holds it as latin1 (one character per byte). */
  readonly payload: Buffer | string;
  /** Where the Call-ID lies in the payload (call-id.ts); no correlation chunk when undefined. */
  readonly correlation: Range | undefined;
}

const CHUNK_HEADER = 6;
// Where the values of the fixed chunks lie: header (6), then family (7), protocol (7), two ports
// (8 + 8), two times (10 + 10), payload type (7), agent id (10), each value after its 6-byte header.
const AT_LENGTH = 4;
const AT_SOURCE_PORT = 26;
const AT_DESTINATION_PORT = 34;
const AT_SECONDS = 42;
const AT_MICROSECONDS = 52;
const FIXED = 73;

/**
 * What every datagram of one capture agent carries alike, laid out once per family and protocol: the
 * fixed chunks and the two address chunk headers, with the agent id and protocol filled in; and the
 * auth key chunk whole.
 */
export class HepAgent {
  private readonly prefixes = new Map<number, Buffer>();
  private readonly authChunk: Buffer;

  constructor(
    readonly captureId: number,
    /** The auth key chunk's value; no chunk when undefined. */
    password: Buffer | undefined,
  ) {
    this.authChunk = password === undefined ? Buffer.alloc(0) : chunk(HepChunk.AUTH_KEY, password);
  }

  prefix(family: 4 | 6, protocol: number): Buffer {
    const key = family * 256 + protocol;
    let p = this.prefixes.get(key);
    if (p === undefined) {
      p = layPrefix(family, protocol, this.captureId);
      this.prefixes.set(key, p);
    }
    return p;
  }

  get auth(): Buffer {
    return this.authChunk;
  }
}

function layPrefix(family: 4 | 6, protocol: number, captureId: number): Buffer {
  const v6 = family === 6;
  const address = Buffer.alloc(v6 ? 16 : 4);
  return Buffer.concat([
    Buffer.from('HEP3\0\0', 'latin1'),
    chunk(HepChunk.IP_FAMILY, Buffer.from([v6 ? AF_INET6 : AF_INET])),
    chunk(HepChunk.IP_PROTOCOL, Buffer.from([protocol])),
    chunk(HepChunk.SOURCE_PORT, Buffer.alloc(2)),
    chunk(HepChunk.DESTINATION_PORT, Buffer.alloc(2)),
    chunk(HepChunk.TIME_SECONDS, Buffer.alloc(4)),
    chunk(HepChunk.TIME_MICROSECONDS, Buffer.alloc(4)),
    chunk(HepChunk.PAYLOAD_TYPE, Buffer.from([PAYLOAD_SIP])),
    chunk(HepChunk.CAPTURE_AGENT_ID, uint32(captureId)),
    chunk(v6 ? HepChunk.IPV6_SOURCE : HepChunk.IPV4_SOURCE, address),
    chunk(v6 ? HepChunk.IPV6_DESTINATION : HepChunk.IPV4_DESTINATION, address),
  ]);
}

function chunk(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc(CHUNK_HEADER + value.length);
  b.writeUInt16BE(0, 0);
  b.writeUInt16BE(type, 2);
  b.writeUInt16BE(b.length, 4);
  value.copy(b, CHUNK_HEADER);
  return b;
}

function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

/** How long the datagram for `m` is; over HEP_MAX_LENGTH, it cannot be sent. */
export function hepLength(m: HepMessage, agent: HepAgent): number {
  const c = m.correlation;
  return (
    FIXED +
    2 * CHUNK_HEADER +
    (m.family === 6 ? 32 : 8) +
    agent.auth.length +
    CHUNK_HEADER +
    m.payload.length +
    (c === undefined ? 0 : CHUNK_HEADER + c[1] - c[0])
  );
}

/** The HEP3 datagram for `m` in a buffer of its own, or undefined when it is too long for HEP3. */
export function encodeHep3(m: HepMessage, agent: HepAgent): Buffer | undefined {
  const length = hepLength(m, agent);
  if (length > HEP_MAX_LENGTH) return undefined;
  const b = Buffer.allocUnsafe(length);
  encodeHep3Into(b, m, agent, length);
  return b;
}

/**
 * Writes the datagram for `m` at the start of `out` (at least `length` bytes, `hepLength(m)`, which
 * the caller has checked against HEP_MAX_LENGTH). A buffer reused for every message spares an
 * allocation when the socket copies the datagram before returning.
 */
export function encodeHep3Into(out: Buffer, m: HepMessage, agent: HepAgent, length: number): void {
  const v6 = m.family === 6;
  const prefix = agent.prefix(m.family, m.protocol);
  // TypedArray.set rather than Buffer.copy: a builtin of the engine, not a call into Node's C++.
  out.set(prefix, 0);
  put16(out, AT_LENGTH, length);
  put16(out, AT_SOURCE_PORT, m.sourcePort);
  put16(out, AT_DESTINATION_PORT, m.destinationPort);
  put32(out, AT_SECONDS, m.seconds);
  put32(out, AT_MICROSECONDS, m.microseconds);
  const addressLength = v6 ? 16 : 4;
  out.set(addressBytes(m.sourceAddress, v6), FIXED + CHUNK_HEADER);
  out.set(addressBytes(m.destinationAddress, v6), FIXED + 2 * CHUNK_HEADER + addressLength);
  let at = prefix.length;
  const auth = agent.auth;
  if (auth.length > 0) {
    out.set(auth, at);
    at += auth.length;
  }
  const payload = m.payload;
  at = chunkHeader(out, at, HepChunk.PAYLOAD, payload.length);
  if (typeof payload === 'string') at += out.write(payload, at, 'latin1');
  else {
    out.set(payload, at);
    at += payload.length;
  }
  const c = m.correlation;
  if (c !== undefined) {
    at = chunkHeader(out, at, HepChunk.CORRELATION_ID, c[1] - c[0]);
    if (typeof payload === 'string') out.write(payload.slice(c[0], c[1]), at, 'latin1');
    else for (let i = c[0]; i < c[1]; i++) out[at++] = payload[i]!;
  }
}

function put16(b: Buffer, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function put32(b: Buffer, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function chunkHeader(b: Buffer, at: number, type: number, valueLength: number): number {
  b[at] = 0;
  b[at + 1] = 0;
  put16(b, at + 2, type);
  put16(b, at + 4, CHUNK_HEADER + valueLength);
  return at + CHUNK_HEADER;
}

// Peers are few (front ends, pool members, a dispatcher), so the bytes of each address are kept; the
// cache is emptied when it grows past a bound, so a flood of sources cannot grow it without end.
const CACHE_LIMIT = 4096;
const cache4 = new Map<string, Buffer>();
const cache6 = new Map<string, Buffer>();

/**
 * An address as 4 or 16 bytes. An IPv4 address in an IPv6 datagram becomes its mapped form
 * (::ffff:a.b.c.d); what cannot be read (an IPv6 address in an IPv4 datagram, an empty one) is zeros.
 */
export function addressBytes(text: string, v6: boolean): Buffer {
  const cache = v6 ? cache6 : cache4;
  let bytes = cache.get(text);
  if (bytes === undefined) {
    bytes = (v6 ? parseIPv6(text) : parseIPv4(text)) ?? Buffer.alloc(v6 ? 16 : 4);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(text, bytes);
  }
  return bytes;
}

function parseIPv4(text: string): Buffer | undefined {
  if (!isIPv4(text)) return undefined;
  return Buffer.from(text.split('.').map(Number));
}

function parseIPv6(text: string): Buffer | undefined {
  if (isIPv4(text)) {
    const v4 = parseIPv4(text)!;
    return Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), v4]);
  }
  // A zone ("fe80::1%eth0") names an interface, not part of the address.
  const bare = text.split('%')[0]!;
  const halves = bare.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (isIPv4(g)) {
        const v4 = parseIPv4(g)!;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0) || (halves.length === 2 && fill < 1)) return undefined;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
  return b;
}
