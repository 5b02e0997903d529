// HEP3 export (src/hep): the datagram's chunk layout byte by byte (HEP3 rev. 12, in the order
// sngrep's receiver reads it), addresses of both families, the Call-ID as correlation id, and the
// exporter's choices (keep-alives skipped, refusals counted, targets changed by update).

import { describe, expect, it } from 'vitest';
import { callIdOf, callIdRange } from '../../src/hep/call-id.js';
import { addressBytes, encodeHep3, HepAgent, type HepMessage } from '../../src/hep/encode.js';
import { HepExporter, type HepTarget } from '../../src/hep/exporter.js';
import type { Link, Source } from '../../src/transport/types.js';

/** One chunk as the spec lays it out: vendor 0, type, length including the 6-byte header, value. */
function chunk(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt16BE(0, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt16BE(6 + value.length, 4);
  return Buffer.concat([h, value]);
}
const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

const SIP = 'OPTIONS sip:a@b SIP/2.0\r\nCall-ID: xyz@h\r\nContent-Length: 0\r\n\r\n';

function message(over: Partial<HepMessage> = {}): HepMessage {
  return {
    family: 4,
    protocol: 17,
    sourceAddress: '127.0.0.2',
    sourcePort: 5070,
    destinationAddress: '10.1.2.3',
    destinationPort: 5060,
    seconds: 1_765_000_000,
    microseconds: 654_321,
    payload: SIP,
    correlation: callIdRange(SIP),
    ...over,
  };
}

describe('HEP3 encoding', () => {
  it('IPv4 over UDP: header, the fixed chunks in order, addresses, payload, then the correlation id', () => {
    const got = encodeHep3(message(), new HepAgent(2001, undefined))!;
    const chunks = Buffer.concat([
      chunk(0x01, u8(2)), // AF_INET
      chunk(0x02, u8(17)), // UDP
      chunk(0x07, u16(5070)),
      chunk(0x08, u16(5060)),
      chunk(0x09, u32(1_765_000_000)),
      chunk(0x0a, u32(654_321)),
      chunk(0x0b, u8(1)), // SIP
      chunk(0x0c, u32(2001)),
      chunk(0x03, Buffer.from([127, 0, 0, 2])),
      chunk(0x04, Buffer.from([10, 1, 2, 3])),
      chunk(0x0f, Buffer.from(SIP, 'latin1')),
      chunk(0x11, Buffer.from('xyz@h', 'latin1')),
    ]);
    const header = Buffer.concat([Buffer.from('HEP3', 'latin1'), u16(6 + chunks.length)]);
    expect(got.toString('hex')).toBe(Buffer.concat([header, chunks]).toString('hex'));
  });

  it('IPv6 over TCP with a password: 16-byte address chunks, the auth key just before the payload', () => {
    const got = encodeHep3(
      message({
        family: 6,
        protocol: 6,
        sourceAddress: '2001:db8::1',
        destinationAddress: '::ffff:127.0.0.1',
        payload: Buffer.from(SIP, 'latin1'),
        correlation: undefined,
      }),
      new HepAgent(0xfffffffe, Buffer.from('s3cret')),
    )!;
    const src = Buffer.alloc(16);
    src.writeUInt16BE(0x2001, 0);
    src.writeUInt16BE(0x0db8, 2);
    src[15] = 1;
    const dst = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
    const chunks = Buffer.concat([
      chunk(0x01, u8(10)), // AF_INET6
      chunk(0x02, u8(6)), // TCP
      chunk(0x07, u16(5070)),
      chunk(0x08, u16(5060)),
      chunk(0x09, u32(1_765_000_000)),
      chunk(0x0a, u32(654_321)),
      chunk(0x0b, u8(1)),
      chunk(0x0c, u32(0xfffffffe)),
      chunk(0x05, src),
      chunk(0x06, dst),
      chunk(0x0e, Buffer.from('s3cret')),
      chunk(0x0f, Buffer.from(SIP, 'latin1')),
    ]);
    expect(got.toString('hex')).toBe(
      Buffer.concat([Buffer.from('HEP3'), u16(6 + chunks.length), chunks]).toString('hex'),
    );
  });

  it('a message too large for the 16-bit length is not encoded', () => {
    const big = 'x'.repeat(65_500);
    expect(encodeHep3(message({ payload: big }), new HepAgent(1, undefined))).toBeUndefined();
    expect(encodeHep3(message({ payload: big.slice(0, 60_000) }), new HepAgent(1, undefined))).toBeDefined();
  });

  it('addresses: IPv6 forms, an IPv4 address in an IPv6 datagram mapped, what cannot be read as zeros', () => {
    expect(addressBytes('::1', true).toString('hex')).toBe('00000000000000000000000000000001');
    expect(addressBytes('fe80::a:b%eth0', true).toString('hex')).toBe('fe80' + '0'.repeat(20) + '000a000b');
    expect(addressBytes('1:2:3:4:5:6:7:8', true).toString('hex')).toBe('00010002000300040005000600070008');
    expect(addressBytes('192.0.2.7', true).toString('hex')).toBe('00000000000000000000ffffc0000207');
    expect(addressBytes('192.0.2.7', false).toString('hex')).toBe('c0000207');
    expect(addressBytes('::1', false).toString('hex')).toBe('00000000');
    expect(addressBytes('1::2::3', true).toString('hex')).toBe('0'.repeat(32));
    expect(addressBytes('', false).toString('hex')).toBe('00000000');
  });
});

describe('Call-ID as the correlation id', () => {
  it('reads the usual spelling, any case, the compact form, from bytes or text', () => {
    expect(callIdOf(Buffer.from(SIP))).toBe('xyz@h');
    expect(callIdOf(SIP)).toBe('xyz@h');
    expect(callIdOf('BYE sip:a SIP/2.0\r\ncall-id:  lower@h \r\n\r\n')).toBe('lower@h');
    expect(callIdOf(Buffer.from('BYE sip:a SIP/2.0\r\nVia: x\r\ni : compact@h\r\n\r\n'))).toBe('compact@h');
  });

  it('is not taken from the body, and is empty when the headers have none', () => {
    const withBody = 'MESSAGE sip:a SIP/2.0\r\nContent-Length: 20\r\n\r\nx\r\nCall-ID: in-body\r\n';
    expect(callIdOf(withBody)).toBe('');
    expect(callIdOf(Buffer.from(withBody))).toBe('');
  });
});

describe('HepExporter', () => {
  const target: HepTarget = { url: 'udp://127.0.0.1:9060', host: '127.0.0.1', port: 9060, family: 4 };
  const link: Link = {
    transport: 'tls',
    reliable: true,
    localAddress: '127.0.0.1',
    localPort: 5061,
    send: () => undefined,
  };
  const source: Source = { link, address: '127.0.0.9', port: 40000, family: 4 };

  function rig(rc = 0) {
    const out: { data: Buffer; host: string; port: number }[] = [];
    const sender = {
      sendUncaptured(data: Buffer, host: string, port: number) {
        // Copied, as the service's sockets copy a datagram before they return.
        out.push({ data: Buffer.from(data), host, port });
        return rc;
      },
    };
    const e = new HepExporter({ targets: [target], captureId: 7, password: undefined }, () => sender);
    return { e, out };
  }

  /** The source and destination ports of a datagram (fixed places: see the layout test). */
  const ports = (d: Buffer) => [d.readUInt16BE(6 + 7 + 7 + 6), d.readUInt16BE(6 + 7 + 7 + 8 + 6)];

  it('a received message goes from the peer to us, a sent one from us to the peer, over TCP for TLS', () => {
    const { e, out } = rig();
    e.received(Buffer.from(SIP), source);
    e.sent('SIP/2.0 302 Moved\r\nCall-ID: xyz@h\r\n\r\n', link, '127.0.0.9', 40000);
    expect(out.map((o) => [o.host, o.port])).toEqual([
      ['127.0.0.1', 9060],
      ['127.0.0.1', 9060],
    ]);
    expect(ports(out[0]!.data)).toEqual([40000, 5061]);
    expect(ports(out[1]!.data)).toEqual([5061, 40000]);
    expect(out[0]!.data[6 + 7 + 6]).toBe(6);
    expect(e.stats).toEqual({ sent: 2, sendErrors: 0 });
  });

  it('skips keep-alives, counts refusals, and sends nowhere once its targets are removed', () => {
    const { e, out } = rig(-111);
    e.sent('\r\n', link, '127.0.0.9', 40000);
    expect(out).toHaveLength(0);
    e.received(Buffer.from(SIP), source);
    expect(e.stats).toEqual({ sent: 0, sendErrors: 1 });
    e.update({ targets: [], captureId: 7, password: undefined });
    e.received(Buffer.from(SIP), source);
    expect(out).toHaveLength(1);
  });
});
