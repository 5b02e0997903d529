// Outbound: the sender a forwarded request leaves through, over a real UDP listener on loopback.

import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbound, TransportUnavailableError, type NextHop } from '../../src/transport/outbound.js';
import type { TcpConnector } from '../../src/transport/tcp.js';
import { listenUdp, type UdpListener } from '../../src/transport/udp.js';
import { defaultSettings } from '../helpers/settings.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function rig() {
  const listener: UdpListener = await listenUdp(
    { host: '127.0.0.1', port: 0, engine: defaultSettings().transport.udpEngine },
    () => {},
  );
  cleanup.push(() => listener.close());
  const peer = dgram.createSocket('udp4');
  peer.bind(0, '127.0.0.1');
  await once(peer, 'listening');
  cleanup.push(() => new Promise<void>((resolve) => peer.close(() => resolve())));
  const connector = {
    connect: () => Promise.reject(new Error('no TCP in this test')),
  } as unknown as TcpConnector;
  const outbound = new Outbound([listener], [], connector);
  return { listener, peer, outbound };
}

describe('Outbound.readySender', () => {
  it('gives a UDP hop its sender at once, the same one each time, sending from the listener', async () => {
    const { listener, peer, outbound } = await rig();
    const hop: NextHop = { transport: 'udp', address: '127.0.0.1', port: peer.address().port, family: 4 };
    const sender = outbound.readySender(hop);
    expect(sender).toBeDefined();
    expect(outbound.readySender(hop)).toBe(sender);
    await expect(outbound.sender(hop)).resolves.toBe(sender);
    expect(sender!.sentBy).toBe(`127.0.0.1:${listener.address.port}`);
    expect(sender!.reliable).toBe(false);
    const got = once(peer, 'message');
    sender!.send(Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n', 'latin1'));
    const [data, rinfo] = (await got) as [Buffer, dgram.RemoteInfo];
    expect(data.toString('latin1')).toBe('OPTIONS sip:x SIP/2.0\r\n\r\n');
    expect(rinfo.port).toBe(listener.address.port);
  });

  it('gives nothing for a stream hop (it may have to connect) or a family with no listener', async () => {
    const { outbound } = await rig();
    expect(
      outbound.readySender({ transport: 'tcp', address: '127.0.0.1', port: 5060, family: 4 }),
    ).toBeUndefined();
    const v6: NextHop = { transport: 'udp', address: '::1', port: 5060, family: 6 };
    expect(outbound.readySender(v6)).toBeUndefined();
    // The asynchronous path says why.
    await expect(outbound.sender(v6)).rejects.toBeInstanceOf(TransportUnavailableError);
  });
});
