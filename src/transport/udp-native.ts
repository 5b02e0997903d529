// The UDP listener on the service's own socket binding (native/udp.c): datagrams arrive in batches
// read with recvmmsg(2), one call into JavaScript per batch, with no per-datagram address object or
// ArrayBuffer. Node's dgram does that work for every datagram, which at tens of thousands a second
// is a large share of the CPU a redirect costs. Used when the binding is built (Linux, at `npm ci`);
// otherwise the service falls back to node:dgram (udp.ts), which behaves the same.

import { lookup as dnsLookup } from 'node:dns';
import { createRequire } from 'node:module';
import { isIP, isIPv6 } from 'node:net';
import { NO_CAPTURE, type CaptureHook } from './capture.js';
import type { BoundAddress, MessageHandler, Source } from './types.js';
import type { UdpOptions } from './udp.js';

/** What native/udp.c exports. */
interface Binding {
  open(
    family: 4 | 6,
    host: string,
    port: number,
    bufferSize: number,
    shared: ArrayBuffer,
    onBatch: (count: number) => void,
  ): object;
  localPort(handle: object): number;
  /** 0 when sent or queued, a negative errno when refused. A string is sent as latin1. */
  send(handle: object, data: Uint8Array | string, port: number, address: string): number;
  /** [sends queued for want of buffer space, sends dropped, receive errors]. */
  counters(handle: object): [number, number, number];
  close(handle: object): void;
  readonly constants: {
    readonly batch: number;
    readonly slotSize: number;
    readonly metaInts: number;
    readonly addressText: number;
    readonly sharedSize: number;
  };
}

const ADDON = '../../native/build/Release/pchat_udp.node';
let binding: Binding | undefined;
let loadProblem: string | undefined;

/** The binding, loaded once; undefined when it is not built or cannot load here (see `nativeUdpProblem`). */
export function nativeUdp(): Binding | undefined {
  if (binding === undefined && loadProblem === undefined) {
    if (process.platform !== 'linux') loadProblem = `not available on ${process.platform}`;
    else
      try {
        binding = createRequire(import.meta.url)(ADDON) as Binding;
      } catch (err) {
        loadProblem = err instanceof Error ? err.message.split('\n')[0] : String(err);
      }
  }
  return binding;
}

/** Why the binding cannot be used, when it cannot. */
export function nativeUdpProblem(): string | undefined {
  nativeUdp();
  return loadProblem;
}

/** Counters of the socket's own: what the kernel refused or the queue had to drop. */
export interface NativeUdpCounters {
  readonly sendsQueued: number;
  readonly sendsDropped: number;
  readonly receiveErrors: number;
}

export class NativeUdpListener {
  readonly transport = 'udp' as const;
  readonly reliable = false as const;
  readonly engine = 'native' as const;
  readonly address: BoundAddress;
  private readonly handle: object;
  private readonly bytes: Buffer;
  private readonly meta: Int32Array;
  private readonly textBase: number;
  private readonly family: 4 | 6;
  /** Source address of the last datagram: the binding sends the text only when it changes. */
  private lastAddress = '';
  private closed = false;
  private readonly capture: CaptureHook;

  private constructor(
    private readonly native: Binding,
    private readonly opts: UdpOptions,
    private readonly onMessage: MessageHandler,
  ) {
    const c = native.constants;
    this.capture = opts.capture ?? NO_CAPTURE;
    this.family = isIPv6(opts.host) ? 6 : 4;
    // Shared with the binding, which keeps a reference to it as long as the socket is open.
    const shared = new ArrayBuffer(c.sharedSize);
    this.bytes = Buffer.from(shared);
    this.meta = new Int32Array(shared, c.batch * c.slotSize, c.batch * c.metaInts);
    this.textBase = c.batch * c.slotSize + c.batch * c.metaInts * 4;
    this.handle = native.open(
      this.family,
      opts.host,
      opts.port,
      opts.bufferSize ?? 4 * 1024 * 1024,
      shared,
      this.onBatch,
    );
    this.address = {
      transport: 'udp',
      host: opts.host,
      port: native.localPort(this.handle),
      family: this.family,
    };
  }

  /** Bind a socket; throws (EADDRINUSE, EADDRNOTAVAIL...) as dgram's bind would reject. */
  static listen(binding: Binding, opts: UdpOptions, onMessage: MessageHandler): NativeUdpListener {
    return new NativeUdpListener(binding, opts, onMessage);
  }

  get localAddress(): string {
    return this.address.host;
  }

  get localPort(): number {
    return this.address.port;
  }

  /** One batch of `count` datagrams sits in the shared buffer; it is overwritten after this returns. */
  private readonly onBatch = (count: number): void => {
    const { slotSize, metaInts, addressText } = this.native.constants;
    const meta = this.meta;
    for (let i = 0; i < count; i++) {
      const m = i * metaInts;
      const length = meta[m]!;
      const textLength = meta[m + 2]!;
      if (textLength > 0) {
        const at = this.textBase + i * addressText;
        this.lastAddress = this.bytes.toString('latin1', at, at + textLength);
      }
      // A datagram larger than a slot (64 KiB) cannot be a SIP message over UDP; it is not passed on.
      if (meta[m + 3] !== 0) continue;
      const start = i * slotSize;
      // A copy of its own: the parsed message may outlive this batch (a body, a request held by the proxy).
      const data = Buffer.allocUnsafe(length);
      this.bytes.copy(data, 0, start, start + length);
      const source: Source = {
        link: this,
        address: this.lastAddress,
        port: meta[m + 1]!,
        family: this.family,
      };
      try {
        this.onMessage(data, source);
      } catch (err) {
        // The handler is not supposed to throw; one that does must not cost the rest of the batch.
        this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  };

  send(data: Buffer | string, address: string, port: number): void {
    const tap = this.capture.tap;
    if (tap !== undefined) tap.sent(data, this, address, port);
    const rc = this.native.send(this.handle, data, port, address);
    if (rc === 0) return;
    // EINVAL: not an IP literal. The service sends to addresses it was given or resolved, so a
    // name is not expected; like dgram, look it up rather than drop the datagram.
    if (rc === -22 && isIP(address) === 0 && !this.closed) {
      dnsLookup(address, { family: this.family }, (err, resolved) => {
        if (err !== null) this.opts.onError?.(err);
        else if (!this.closed) this.send(data, resolved, port);
      });
      return;
    }
    const err: NodeJS.ErrnoException = new Error(`send to ${address}:${port} failed (errno ${-rc})`);
    err.errno = rc;
    this.opts.onError?.(err);
  }

  /**
   * Sends a datagram of the service's own (a HEP copy) from this socket: not captured, no lookup,
   * no error report; a refusal is returned (a negative errno) for the caller to count. Sent during a
   * batch, it leaves with the batch's answers in one sendmmsg(2).
   */
  sendUncaptured(data: Buffer, address: string, port: number): number {
    return this.native.send(this.handle, data, port, address);
  }

  counters(): NativeUdpCounters {
    const [sendsQueued, sendsDropped, receiveErrors] = this.native.counters(this.handle);
    return { sendsQueued, sendsDropped, receiveErrors };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.native.close(this.handle);
    }
    // The binding closes the socket on the next turn of the event loop.
    return new Promise((resolve) => setImmediate(resolve));
  }
}
