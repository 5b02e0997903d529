// TCP listener: accepts connections, frames each byte stream into SIP messages, and keeps each
// connection as the link its responses go back on (RFC 3261 §18.2.2).

import net from 'node:net';
import { StreamFramer } from '../sip/framer.js';
import { readThroughShared, reportSharedReadBuffer } from './shared-read-buffer.js';
import type { ConnectionWatch, WatchedConnection } from './connection-watch.js';
import { NO_CAPTURE, type CaptureHook } from './capture.js';
import { StreamListener } from './stream-listener.js';
import type { FramingErrorHandler, Link, MessageHandler, PeerCertificate, Source } from './types.js';

export interface TcpOptions {
  readonly host: string;
  readonly port: number;
  readonly maxMessageSize: number;
  /** Times each connection: a message from its first byte to its last, the quiet time between. */
  readonly watch: ConnectionWatch;
  readonly onError?: (err: Error) => void;
  /** Asked about each new connection before it is taken on; false closes it at once (src/guard). */
  readonly admit?: (socket: net.Socket) => boolean;
  /** Told once per process whether connections read into the shared buffer (shared-read-buffer.ts). */
  readonly logger?: { info(fields: object, message: string): void };
  /** Where copies of the messages sent are taken (HEP), when capture is on. */
  readonly capture?: CaptureHook;
}

/** Set for a connection that carries TLS (a TLSSocket is a net.Socket, so the framing is shared). */
export interface SecureConnectionInfo {
  readonly peerCertificate?: PeerCertificate;
}

export class TcpConnection implements Link {
  readonly transport: 'tcp' | 'tls';
  readonly reliable = true;
  readonly source: Source;
  private readonly framer: StreamFramer;
  private readonly closeHandlers = new Set<(err: Error | undefined) => void>();
  /** Answers held while a received chunk is handled (see receive), written when it is done. */
  private readonly gathered: (Buffer | string)[] = [];
  private gathering = false;

  constructor(
    private readonly socket: net.Socket,
    maxMessageSize: number,
    private readonly onMessage: MessageHandler,
    private readonly onFramingError: FramingErrorHandler,
    secure?: SecureConnectionInfo,
    /** Inbound connections only: told what each read did to the message being framed. */
    private readonly timer?: WatchedConnection,
    /** Told of every message sent on the connection (HEP). */
    private readonly capture: CaptureHook = NO_CAPTURE,
  ) {
    this.transport = secure === undefined ? 'tcp' : 'tls';
    this.framer = new StreamFramer(maxMessageSize);
    this.source = {
      link: this,
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 6 : 4,
      ...(secure?.peerCertificate === undefined ? {} : { peerCertificate: secure.peerCertificate }),
    };
    const receive = (chunk: Buffer): void => this.receive(chunk);
    if (secure !== undefined || !readThroughShared(socket, receive)) socket.on('data', receive);
    let failure: Error | undefined;
    socket.on('error', (err) => (failure = err));
    socket.on('close', () => {
      for (const h of [...this.closeHandlers]) h(failure);
      this.closeHandlers.clear();
    });
  }

  /** Peer address as "address|port", the key connections are found by. */
  get id(): string {
    return connectionId(this.source.address, this.source.port);
  }

  /**
   * Be told when the connection closes (with the socket error, if any). Returns a function that
   * cancels the subscription.
   */
  onClose(handler: (err: Error | undefined) => void): () => void {
    if (!this.open) {
      queueMicrotask(() => handler(new Error('connection closed')));
      return () => {};
    }
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  get localAddress(): string {
    return this.socket.localAddress ?? '';
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  get open(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  send(data: Buffer | string): void {
    if (!this.open) return;
    const tap = this.capture.tap;
    if (tap !== undefined) tap.sent(data, this, this.source.address, this.source.port);
    if (this.gathering) this.gathered.push(data);
    else this.write(data);
  }

  private write(data: Buffer | string): void {
    if (typeof data === 'string') this.socket.write(data, 'latin1');
    else this.socket.write(data);
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    // What the messages of one chunk answer leaves in one write: one pass through the socket's
    // stream machinery for the lot, rather than one per answer.
    this.gathering = true;
    try {
      this.frame(chunk);
    } finally {
      this.gathering = false;
      this.flush();
    }
  }

  /** Writes what was gathered, as one latin1 string when it is all text. */
  private flush(): void {
    const gathered = this.gathered;
    const n = gathered.length;
    if (n === 0) return;
    if (this.open) {
      if (n === 1) this.write(gathered[0]!);
      else if (gathered.every((d) => typeof d === 'string')) this.socket.write(gathered.join(''), 'latin1');
      else {
        this.socket.cork();
        for (const d of gathered) this.write(d);
        this.socket.uncork();
      }
    }
    gathered.length = 0;
  }

  private frame(chunk: Buffer): void {
    const events = this.framer.push(chunk);
    for (const ev of events) {
      if (ev.type === 'message') this.onMessage(ev.data, this.source, ev.head);
      else if (ev.type === 'ping') this.send(CRLF);
      else {
        this.onFramingError(ev.error, ev.data, this.source);
        // RFC 4475 §3.1.2.3: framing is lost, so the connection is closed once the answer is out.
        this.flush();
        this.socket.end();
      }
    }
    // A message (or keep-alive) finished restarts the clock; bytes that only add to an unfinished
    // one do not, so a peer trickling a byte at a time is closed at the message bound.
    this.timer?.received(events.length > 0, this.framer.midMessage);
  }
}

// RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
const CRLF = Buffer.from('\r\n', 'latin1');

export function connectionId(address: string, port: number): string {
  return `${address}|${port}`;
}

/**
 * Every open TCP connection, inbound and outbound, by peer address: responses and requests for a
 * peer reuse the connection it already has with us (RFC 3261 §18.2.2, RFC 5923 in spirit).
 */
export class ConnectionRegistry {
  private readonly byPeer = new Map<string, TcpConnection>();

  add(conn: TcpConnection): void {
    this.byPeer.set(conn.id, conn);
    conn.onClose(() => {
      if (this.byPeer.get(conn.id) === conn) this.byPeer.delete(conn.id);
    });
  }

  find(address: string, port: number): TcpConnection | undefined {
    const c = this.byPeer.get(connectionId(address, port));
    return c?.open === true ? c : undefined;
  }

  get size(): number {
    return this.byPeer.size;
  }

  closeAll(): void {
    for (const c of [...this.byPeer.values()]) c.close();
    this.byPeer.clear();
  }
}

/**
 * How long a connection we open may take to come up, and may stay quiet (server.yaml
 * proxy.connectTimeout and limits.tcp.idleTimeout).
 */
export interface OutboundTimeouts {
  /** From connect until the connection (and its TLS handshake) is up, ms. */
  readonly connectTimeoutMs: number;
  /** A connection with no traffic either way for this long is closed, ms. */
  readonly idleTimeoutMs: number;
}

export interface ConnectorOptions extends OutboundTimeouts {
  readonly maxMessageSize: number;
  readonly onError?: (err: Error) => void;
  /** Where copies of the messages sent are taken (HEP), when capture is on. */
  readonly capture?: CaptureHook;
}

/**
 * Opens outbound TCP connections (to pool members), or reuses one already open to the peer. These
 * are not timed by the ConnectionWatch: the connection (and a TLS handshake, see TlsConnector) is
 * bounded by connectTimeoutMs, and an idle one is closed after idleTimeoutMs without traffic either
 * way; a configured pool member gets no per-message bound. Shutdown destroys them with the registry.
 */
export class TcpConnector {
  private readonly pending = new Map<string, Promise<TcpConnection>>();

  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly opts: ConnectorOptions,
    private readonly onMessage: MessageHandler,
    private readonly onFramingError: FramingErrorHandler,
  ) {}

  connect(address: string, port: number): Promise<TcpConnection> {
    const existing = this.registry.find(address, port);
    if (existing !== undefined) return Promise.resolve(existing);
    const id = connectionId(address, port);
    const inFlight = this.pending.get(id);
    if (inFlight !== undefined) return inFlight;
    const p = new Promise<TcpConnection>((resolve, reject) => {
      const socket = net.connect({ host: address, port, noDelay: true });
      const timer = setTimeout(
        () => socket.destroy(new Error(`connect to ${address}:${port} timed out`)),
        this.opts.connectTimeoutMs,
      );
      timer.unref();
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.opts.onError?.(err));
        socket.setTimeout(this.opts.idleTimeoutMs, () => socket.destroy());
        const conn = new TcpConnection(
          socket,
          this.opts.maxMessageSize,
          this.onMessage,
          this.onFramingError,
          undefined,
          undefined,
          this.opts.capture,
        );
        this.registry.add(conn);
        resolve(conn);
      });
    }).finally(() => this.pending.delete(id));
    this.pending.set(id, p);
    return p;
  }
}

export class TcpListener extends StreamListener<TcpConnection> {
  readonly transport = 'tcp' as const;

  private constructor(
    private readonly server: net.Server,
    private readonly opts: TcpOptions,
  ) {
    super(server, 'TCP');
  }

  static async listen(
    opts: TcpOptions,
    onMessage: MessageHandler,
    onFramingError: FramingErrorHandler,
    registry?: ConnectionRegistry,
  ): Promise<TcpListener> {
    const server = net.createServer({ noDelay: true });
    const l = new TcpListener(server, opts);
    server.on('connection', (socket) => {
      if (opts.admit !== undefined && !opts.admit(socket)) {
        socket.on('error', () => undefined);
        socket.destroy();
        return;
      }
      l.accepted(socket);
      // Plain TCP has no handshake: the clock starts on the wait for the first message.
      const timer = opts.watch.track(socket, 'idle');
      const conn = new TcpConnection(
        socket,
        opts.maxMessageSize,
        onMessage,
        onFramingError,
        undefined,
        timer,
        opts.capture,
      );
      l.connections.add(conn);
      registry?.add(conn);
      socket.on('error', (err) => opts.onError?.(err));
      socket.on('close', () => l.connections.delete(conn));
    });
    server.on('error', (err) => opts.onError?.(err));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port, ipv6Only: net.isIPv6(opts.host) }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as net.AddressInfo;
    l.bound = { transport: 'tcp', host: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 };
    if (opts.logger !== undefined) reportSharedReadBuffer(opts.logger);
    return l;
  }

  close(): Promise<void> {
    return this.destroyAll();
  }
}
