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
  /** The Call-ID, as latin1 text; left out when empty. */
  readonly correlationId: string;
}

/** What every datagram of one capture agent carries alike. */
export interface HepAgent {
  readonly captureId: number;
  /** The auth key chunk's value; no chunk when undefined. */
  readonly password: Buffer | undefined;
}

// Fixed part: header (6), family (7), protocol (7), two ports (8 + 8), two times (10 + 10),
// payload type (7), agent id (10).
const FIXED = 6 + 7 + 7 + 8 + 8 + 10 + 10 + 7 + 10;
const CHUNK_HEADER = 6;

/**
 * The HEP3 datagram for `m`, or undefined when it would be longer than a HEP3 length can say (a
 * stream message over 64 KiB).
 */
export function encodeHep3(m: HepMessage, agent: HepAgent): Buffer | undefined {
  const v6 = m.family === 6;
  const addressLength = v6 ? 16 : 4;
  const payloadLength = typeof m.payload === 'string' ? m.payload.length : m.payload.length;
  const auth = agent.password;
  const correlationLength = m.correlationId.length;
  const total =
    FIXED +
    2 * (CHUNK_HEADER + addressLength) +
    (auth === undefined ? 0 : CHUNK_HEADER + auth.length) +
    CHUNK_HEADER +
    payloadLength +
    (correlationLength === 0 ? 0 : CHUNK_HEADER + correlationLength);
  if (total > HEP_MAX_LENGTH) return undefined;
  const b = Buffer.allocUnsafe(total);
  b.write('HEP3', 0, 'latin1');
  b.writeUInt16BE(total, 4);
  let at = 6;
  at = uint8(b, at, HepChunk.IP_FAMILY, v6 ? AF_INET6 : AF_INET);
  at = uint8(b, at, HepChunk.IP_PROTOCOL, m.protocol);
  at = uint16(b, at, HepChunk.SOURCE_PORT, m.sourcePort);
  at = uint16(b, at, HepChunk.DESTINATION_PORT, m.destinationPort);
  at = uint32(b, at, HepChunk.TIME_SECONDS, m.seconds);
  at = uint32(b, at, HepChunk.TIME_MICROSECONDS, m.microseconds);
  at = uint8(b, at, HepChunk.PAYLOAD_TYPE, PAYLOAD_SIP);
  at = uint32(b, at, HepChunk.CAPTURE_AGENT_ID, agent.captureId);
  at = chunkHeader(b, at, v6 ? HepChunk.IPV6_SOURCE : HepChunk.IPV4_SOURCE, addressLength);
  at += addressBytes(m.sourceAddress, v6).copy(b, at);
  at = chunkHeader(b, at, v6 ? HepChunk.IPV6_DESTINATION : HepChunk.IPV4_DESTINATION, addressLength);
  at += addressBytes(m.destinationAddress, v6).copy(b, at);
  if (auth !== undefined) {
    at = chunkHeader(b, at, HepChunk.AUTH_KEY, auth.length);
    at += auth.copy(b, at);
  }
  at = chunkHeader(b, at, HepChunk.PAYLOAD, payloadLength);
  at += typeof m.payload === 'string' ? b.write(m.payload, at, 'latin1') : m.payload.copy(b, at);
  if (correlationLength > 0) {
    at = chunkHeader(b, at, HepChunk.CORRELATION_ID, correlationLength);
    b.write(m.correlationId, at, 'latin1');
  }
  return b;
}

function chunkHeader(b: Buffer, at: number, type: number, valueLength: number): number {
  b.writeUInt16BE(0, at);
  b.writeUInt16BE(type, at + 2);
  b.writeUInt16BE(CHUNK_HEADER + valueLength, at + 4);
  return at + CHUNK_HEADER;
}

function uint8(b: Buffer, at: number, type: number, value: number): number {
  at = chunkHeader(b, at, type, 1);
  b[at] = value;
  return at + 1;
}

function uint16(b: Buffer, at: number, type: number, value: number): number {
  at = chunkHeader(b, at, type, 2);
  b.writeUInt16BE(value & 0xffff, at);
  return at + 2;
}

function uint32(b: Buffer, at: number, type: number, value: number): number {
  at = chunkHeader(b, at, type, 4);
  b.writeUInt32BE(value >>> 0, at);
  return at + 4;
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
