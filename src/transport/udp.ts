// UDP listeners: one socket per configured address; the socket is also the link responses leave by,
// so they come from the address and port the request was sent to. Two engines behave the same: the
// service's own binding (udp-native.ts, batched reads) where it is built, else node:dgram (here).

import dgram from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import { NO_CAPTURE, type CaptureHook } from './capture.js';
import type { Link, MessageHandler, BoundAddress } from './types.js';
import { NativeUdpListener, nativeUdp, nativeUdpProblem } from './udp-native.js';

/** Which socket implementation a UDP listener uses; `auto` takes the native one when it loads. */
export type UdpEngineChoice = 'auto' | 'native' | 'dgram';

export interface UdpOptions {
  readonly host: string;
  readonly port: number;
  /** Kernel buffer sizes: large enough to ride out bursts at tens of thousands of messages/s. */
  readonly bufferSize?: number;
  readonly onError?: (err: Error) => void;
  /** Where copies of the datagrams sent are taken (HEP), when capture is on. */
  readonly capture?: CaptureHook;
}

/** A bound UDP socket, whichever engine runs it. */
export interface UdpListener extends Link {
  readonly transport: 'udp';
  readonly reliable: false;
  readonly engine: 'native' | 'dgram';
  readonly address: BoundAddress;
  close(): Promise<void>;
}

/**
 * Bind a UDP listener with the engine asked for. `native` fails when the binding cannot load;
 * `auto` falls back to node:dgram then (and says why through `onFallback`).
 */
export async function listenUdp(
  opts: UdpOptions & { readonly engine: UdpEngineChoice; readonly onFallback?: (why: string) => void },
  onMessage: MessageHandler,
): Promise<UdpListener> {
  if (opts.engine !== 'dgram') {
    const binding = nativeUdp();
    if (binding !== undefined) return NativeUdpListener.listen(binding, opts, onMessage);
    const why = nativeUdpProblem() ?? 'not loaded';
    if (opts.engine === 'native') throw new Error(`UDP engine "native" is not available: ${why}`);
    opts.onFallback?.(why);
  }
  return DgramUdpListener.listen(opts, onMessage);
}

export class DgramUdpListener implements UdpListener {
  readonly transport = 'udp' as const;
  readonly reliable = false as const;
  readonly engine = 'dgram' as const;
  private socket: dgram.Socket;
  private bound: BoundAddress | undefined;
  private readonly capture: CaptureHook;

  private constructor(
    private readonly opts: UdpOptions,
    onMessage: MessageHandler,
  ) {
    this.capture = opts.capture ?? NO_CAPTURE;
    const family = isIPv6(opts.host) ? 6 : 4;
    this.socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: family === 6,
      lookup: literalLookup,
    });
    this.socket.on('message', (msg, rinfo) => {
      onMessage(msg, {
        link: this,
        address: rinfo.address,
        port: rinfo.port,
        family: rinfo.family === 'IPv6' ? 6 : 4,
      });
    });
    this.socket.on('error', (err) => opts.onError?.(err));
  }

  static async listen(opts: UdpOptions, onMessage: MessageHandler): Promise<DgramUdpListener> {
    const l = new DgramUdpListener(opts, onMessage);
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(err);
      l.socket.once('error', fail);
      l.socket.bind(opts.port, opts.host, () => {
        l.socket.off('error', fail);
        resolve();
      });
    });
    const size = opts.bufferSize ?? 4 * 1024 * 1024;
    try {
      l.socket.setRecvBufferSize(size);
      l.socket.setSendBufferSize(size);
    } catch {
      // The kernel may cap buffer sizes (net.core.rmem_max); the defaults still work.
    }
    const a = l.socket.address();
    l.bound = { transport: 'udp', host: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 };
    return l;
  }

  get address(): BoundAddress {
    if (this.bound === undefined) throw new Error('UDP listener not bound');
    return this.bound;
  }

  get localAddress(): string {
    return this.address.host;
  }

  get localPort(): number {
    return this.address.port;
  }

  send(data: Buffer | string, address: string, port: number): void {
    const tap = this.capture.tap;
    if (tap !== undefined) tap.sent(data, this, address, port);
    // Send errors surface as the socket's 'error' event; no per-send callback on the hot path.
    this.socket.send(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, port, address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/**
 * Address lookup for sends. The service only ever sends to IP literals (a Via's received/source
 * address, or a pool member resolved beforehand), and Node's default lookup answers those on the
 * next tick, which costs a tick-queue round per datagram. This one answers them at once; a name
 * (never expected here) still goes through the default lookup.
 */
function literalLookup(
  hostname: string,
  options: LookupOneOptions | number,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(hostname);
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  dnsLookup(hostname, typeof options === 'number' ? { family: options } : options, callback);
}
