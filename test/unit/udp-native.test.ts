// The service's own UDP binding (native/udp.c through src/transport/udp-native.ts), over real sockets
// on loopback: batches, source addresses, copies, sends, errors and closing.

import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import { NativeUdpListener, nativeUdp, nativeUdpProblem } from '../../src/transport/udp-native.js';
import { listenUdp, type UdpListener } from '../../src/transport/udp.js';
import type { Source } from '../../src/transport/types.js';

const binding = nativeUdp();

interface Received {
  data: Buffer;
  source: Source;
}

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function listen(
  host = '127.0.0.1',
  onMessage?: (data: Buffer, source: Source) => void,
): { l: NativeUdpListener; got: Received[]; errors: Error[] } {
  const got: Received[] = [];
  const errors: Error[] = [];
  const l = NativeUdpListener.listen(
    binding!,
    { host, port: 0, onError: (e) => errors.push(e) },
    onMessage ?? ((data, source) => got.push({ data, source })),
  );
  open.push(l);
  return { l, got, errors };
}

async function client(host = '127.0.0.1'): Promise<dgram.Socket & { inbox: Buffer[] }> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4') as dgram.Socket & { inbox: Buffer[] };
  s.inbox = [];
  s.on('message', (m) => s.inbox.push(m));
  await new Promise<void>((r) => s.bind(0, host, r));
  open.push({ close: () => new Promise<void>((r) => s.close(() => r())) });
  return s;
}

async function until(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.runIf(process.platform === 'linux')('native UDP binding', () => {
  it('is built and loads (npm ci builds it on Linux)', () => {
    expect(nativeUdpProblem()).toBeUndefined();
    expect(binding).toBeDefined();
  });

  it('delivers every datagram of a burst larger than one batch, in order, with its source', async () => {
    const { l, got } = listen();
    const c = await client();
    const n = binding!.constants.batch * 3 + 5;
    for (let i = 0; i < n; i++) c.send(Buffer.from(`datagram ${i}`), l.localPort, '127.0.0.1');
    await until(() => got.length === n, `${n} datagrams`);
    expect(got.map((g) => g.data.toString())).toEqual(Array.from({ length: n }, (_, i) => `datagram ${i}`));
    for (const g of got) {
      expect(g.source).toMatchObject({ address: '127.0.0.1', port: c.address().port, family: 4 });
      expect(g.source.link).toBe(l);
    }
  });

  it('gives each datagram a copy of its own: a kept one is not overwritten by later batches', async () => {
    const { l, got } = listen();
    const c = await client();
    c.send(Buffer.from('first, kept'), l.localPort, '127.0.0.1');
    await until(() => got.length === 1, 'the first datagram');
    for (let i = 0; i < 100; i++)
      c.send(Buffer.from(`later ${i} ${'x'.repeat(20)}`), l.localPort, '127.0.0.1');
    await until(() => got.length === 101, 'the later datagrams');
    expect(got[0]!.data.toString()).toBe('first, kept');
  });

  it('tells sources apart when they change within a batch (two loopback addresses)', async () => {
    const { l, got } = listen('0.0.0.0');
    const a = await client('127.0.0.1');
    const b = await client('127.0.0.2');
    for (let i = 0; i < 20; i++) (i % 3 === 0 ? b : a).send(Buffer.from(String(i)), l.localPort, '127.0.0.1');
    await until(() => got.length === 20, '20 datagrams');
    for (const g of got) {
      const i = Number(g.data.toString());
      const from = i % 3 === 0 ? b : a;
      expect(g.source.address).toBe(i % 3 === 0 ? '127.0.0.2' : '127.0.0.1');
      expect(g.source.port).toBe(from.address().port);
    }
  });

  it('receives the largest UDP datagram intact', async () => {
    const { l, got } = listen();
    const c = await client();
    const big = Buffer.alloc(65507);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    c.send(big, l.localPort, '127.0.0.1');
    await until(() => got.length === 1, 'the datagram');
    expect(got[0]!.data.equals(big)).toBe(true);
  });

  it('sends from the listening socket, over IPv6 too', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const { l, got } = listen(host);
      const c = await client(host);
      c.send(Buffer.from('ping'), l.localPort, host);
      await until(() => got.length === 1, 'the ping');
      expect(got[0]!.source.family).toBe(host === '::1' ? 6 : 4);
      l.send(Buffer.from('pong'), got[0]!.source.address, got[0]!.source.port);
      await until(() => c.inbox.length === 1, 'the pong');
      expect(c.inbox[0]!.toString()).toBe('pong');
    }
  });

  it('replies sent while a batch is handled all arrive, in order, however many there are', async () => {
    // The first datagram gets more replies than one sendmmsg takes (64): the held sends are flushed
    // midway through the batch as well as at its end.
    const replies = (i: number): number => (i === 0 ? 70 : 3);
    let l: NativeUdpListener | undefined = undefined;
    const opened = listen('127.0.0.1', (data, source) => {
      const i = Number(data.toString());
      for (let k = 0; k < replies(i); k++) l!.send(Buffer.from(`${i}.${k}`), source.address, source.port);
    });
    l = opened.l;
    const c = await client();
    const n = 10;
    for (let i = 0; i < n; i++) c.send(Buffer.from(String(i)), l.localPort, '127.0.0.1');
    const expected = Array.from({ length: n }, (_, i) =>
      Array.from({ length: replies(i) }, (_, k) => `${i}.${k}`),
    ).flat();
    await until(() => c.inbox.length === expected.length, `${expected.length} replies`);
    expect(c.inbox.map((b) => b.toString())).toEqual(expected);
    expect(l.counters()).toEqual({ sendsQueued: 0, sendsDropped: 0, receiveErrors: 0 });
  });

  it('sends latin1 text as the bytes it stands for, in a batch and outside one', async () => {
    // Every byte value, as the service's kept responses carry them (UTF-8 reason phrases included).
    const text = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
    let l: NativeUdpListener | undefined = undefined;
    const opened = listen('127.0.0.1', (_data, source) => l!.send(text, source.address, source.port));
    l = opened.l;
    const c = await client();
    c.send(Buffer.from('hi'), l.localPort, '127.0.0.1');
    await until(() => c.inbox.length === 1, 'the reply sent in the batch');
    l.send(text, '127.0.0.1', c.address().port);
    await until(() => c.inbox.length === 2, 'the reply sent outside a batch');
    for (const b of c.inbox) expect(b.equals(Buffer.from(text, 'latin1'))).toBe(true);
  });

  it('a handler that throws loses nothing else of the batch, and the error is reported', async () => {
    let calls = 0;
    const { l, errors } = listen('127.0.0.1', () => {
      calls++;
      if (calls === 2) throw new Error('handler failed');
    });
    const c = await client();
    for (let i = 0; i < 10; i++) c.send(Buffer.from(String(i)), l.localPort, '127.0.0.1');
    await until(() => calls === 10, '10 calls');
    expect(errors.map((e) => e.message)).toEqual(['handler failed']);
  });

  it('a send the kernel refuses is reported, not thrown', () => {
    const { l, errors } = listen();
    // Port 0 is no destination.
    expect(() => l.send(Buffer.from('x'), '127.0.0.1', 0)).not.toThrow();
    expect(errors).toHaveLength(1);
    // An IPv6 address on an IPv4 socket.
    l.send(Buffer.from('x'), '::1', 5060);
    expect(errors).toHaveLength(2);
    expect(l.counters().sendsDropped).toBe(0);
  });

  it('refuses a port already bound, with the errno code', async () => {
    const c = await client();
    expect(() =>
      NativeUdpListener.listen(binding!, { host: '127.0.0.1', port: c.address().port }, () => {}),
    ).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }) as Error);
  });

  it('closes its socket: the port can be bound again, and sends after close are reported', async () => {
    const { l, got, errors } = listen();
    const port = l.localPort;
    await l.close();
    l.send(Buffer.from('late'), '127.0.0.1', 9);
    expect(errors).toHaveLength(1);
    const again = NativeUdpListener.listen(binding!, { host: '127.0.0.1', port }, (data) =>
      got.push({ data, source: undefined as unknown as Source }),
    );
    open.push(again);
    expect(again.localPort).toBe(port);
  });
});

describe('listenUdp', () => {
  it('runs the engine asked for', async () => {
    const d: UdpListener = await listenUdp({ host: '127.0.0.1', port: 0, engine: 'dgram' }, () => {});
    open.push(d);
    expect(d.engine).toBe('dgram');
    if (binding !== undefined) {
      const n = await listenUdp({ host: '127.0.0.1', port: 0, engine: 'native' }, () => {});
      open.push(n);
      expect(n.engine).toBe('native');
      const auto = await listenUdp({ host: '127.0.0.1', port: 0, engine: 'auto' }, () => {});
      open.push(auto);
      expect(auto.engine).toBe('native');
    }
  });
});
