// Reads a classic pcap file (what sngrep -O writes) into its packets: time, IP addresses, protocol,
// ports and the payload. Enough of Ethernet, IPv4, IPv6, UDP and TCP for tests; no dependency.

import { readFileSync } from 'node:fs';

export interface PcapPacket {
  readonly seconds: number;
  readonly microseconds: number;
  /** 17 UDP, 6 TCP. */
  readonly protocol: number;
  readonly source: string;
  readonly sourcePort: number;
  readonly destination: string;
  readonly destinationPort: number;
  readonly payload: string;
}

const LINKTYPE_ETHERNET = 1;

export function readPcap(path: string): PcapPacket[] {
  const b = readFileSync(path);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4;
  if (!le && magic !== 0xd4c3b2a1) throw new Error(`not a pcap file: magic ${magic.toString(16)}`);
  const u32 = (at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const linkType = u32(20);
  if (linkType !== LINKTYPE_ETHERNET) throw new Error(`link type ${linkType}, expected Ethernet`);
  const out: PcapPacket[] = [];
  let at = 24;
  while (at + 16 <= b.length) {
    const seconds = u32(at);
    const microseconds = u32(at + 4);
    const length = u32(at + 8);
    const frame = b.subarray(at + 16, at + 16 + length);
    at += 16 + length;
    // A record cut short (the writer stopped mid-write) ends the file.
    if (frame.length < length) break;
    out.push({ seconds, microseconds, ...ipPacket(frame.subarray(14), frame.readUInt16BE(12)) });
  }
  return out;
}

function ipPacket(ip: Buffer, etherType: number): Omit<PcapPacket, 'seconds' | 'microseconds'> {
  let protocol: number;
  let source: string;
  let destination: string;
  let rest: Buffer;
  if (etherType === 0x0800) {
    protocol = ip[9]!;
    source = [...ip.subarray(12, 16)].join('.');
    destination = [...ip.subarray(16, 20)].join('.');
    rest = ip.subarray((ip[0]! & 0x0f) * 4);
  } else if (etherType === 0x86dd) {
    protocol = ip[6]!;
    source = v6(ip.subarray(8, 24));
    destination = v6(ip.subarray(24, 40));
    rest = ip.subarray(40);
  } else throw new Error(`ether type ${etherType.toString(16)}`);
  const headerLength = protocol === 6 ? (rest[12]! >> 4) * 4 : 8;
  return {
    protocol,
    source,
    destination,
    sourcePort: rest.readUInt16BE(0),
    destinationPort: rest.readUInt16BE(2),
    payload: rest.subarray(headerLength).toString('latin1'),
  };
}

function v6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}
