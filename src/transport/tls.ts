// SIP over TLS: a listener (optionally mutual TLS, verifying client certificates against a CA
// bundle) and outbound connections to pool members, verified against the member's name. Each
// connection is a TcpConnection carrying TLS, so framing, CRLF keep-alive and connection reuse are
// those of TCP (RFC 3261 §18.2.2, RFC 5626 §3.5.1).

import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { describeVerifyError, peerCertificateOf, type CertificateStore } from './certificates.js';
import type { ConnectionWatch, WatchedConnection } from './connection-watch.js';
import { connectionId, TcpConnection, type ConnectionRegistry, type OutboundTimeouts } from './tcp.js';
import type { CaptureHook } from './capture.js';
import { StreamListener } from './stream-listener.js';
import type { FramingErrorHandler, MessageHandler } from './types.js';

export interface TlsListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly maxMessageSize: number;
  readonly certificates: CertificateStore;
  readonly logger: Logger;
  /**
   * Times each connection from accept: the handshake, then each message from its first byte to its
   * last, then the quiet time between messages. A half-open handshake would hold a socket for ever.
   */
  readonly watch: ConnectionWatch;
  readonly onError?: (err: Error) => void;
  /** Asked about each new connection before its handshake; false closes it at once (src/guard). */
  readonly admit?: (socket: net.Socket) => boolean;
  /** Where copies of the messages sent are taken (HEP, after decryption), when capture is on. */
  readonly capture?: CaptureHook;
}

export class TlsListener extends StreamListener<TcpConnection> {
  readonly transport = 'tls' as const;
  private unsubscribe: () => void = () => {};
  /** Connections in their handshake, by peer "address|port", with their clocks. */
  private readonly handshaking = new Map<string, WatchedConnection>();

  private constructor(server: tls.Server) {
    super(server, 'TLS');
  }

  static async listen(
    opts: TlsListenerOptions,
    onMessage: MessageHandler,
    onFramingError: FramingErrorHandler,
    registry?: ConnectionRegistry,
  ): Promise<TlsListener> {
    const store = opts.certificates;
    const server = tls.createServer({
      ...store.contextOptions(),
      // Verification is ours, after the handshake, so that a refusal can be logged with its reason.
      requestCert: store.requestsClientCert,
      rejectUnauthorized: false,
      SNICallback: store.sniCallback,
      // Node's own handshake timeout only reports (tlsClientError) and leaves the socket open: the
      // watch destroys it instead.
      handshakeTimeout: 0,
      noDelay: true,
    });
    const l = new TlsListener(server);
    const admit = opts.admit;
    // The raw connection, before any handshake work is spent on it.
    server.on('connection', (socket: net.Socket) => {
      if (admit !== undefined && !admit(socket)) {
        socket.on('error', () => undefined);
        socket.destroy();
        return;
      }
      l.accepted(socket);
      const key = connectionId(socket.remoteAddress ?? '', socket.remotePort ?? 0);
      const timer = opts.watch.track(socket, 'handshake');
      l.handshaking.set(key, timer);
      socket.once('close', () => {
        if (l.handshaking.get(key) === timer) l.handshaking.delete(key);
      });
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', (err: Error) => opts.onError?.(err));
      const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
      // The TLS socket is found by its peer address: unique among the listener's open connections.
      const key = connectionId(peer.address, peer.port);
      // Not found only if the peer address could not be read: timed from here, then.
      const timer = l.handshaking.get(key) ?? opts.watch.track(socket, 'idle');
      l.handshaking.delete(key);
      timer.handshakeDone();
      if (store.requiresClientCert && !socket.authorized) {
        const presented = Object.keys(socket.getPeerCertificate()).length > 0;
        const reason = describeVerifyError(
          socket.authorizationError === null ? undefined : String(socket.authorizationError),
          presented,
        );
        opts.logger.warn(
          {
            ...peer,
            reason,
            code: socket.authorizationError ?? null,
            subject: socket.getPeerX509Certificate()?.subject.split('\n').join(', ') ?? null,
          },
          `TLS client refused: ${reason}`,
        );
        socket.destroy();
        return;
      }
      const peerCertificate = peerCertificateOf(socket);
      const conn = new TcpConnection(
        socket,
        opts.maxMessageSize,
        onMessage,
        onFramingError,
        peerCertificate === undefined ? {} : { peerCertificate },
        timer,
        opts.capture,
      );
      l.connections.add(conn);
      registry?.add(conn);
      socket.on('close', () => l.connections.delete(conn));
      opts.logger.debug(
        { ...peer, protocol: socket.getProtocol(), subject: peerCertificate?.subject ?? null },
        'TLS connection accepted',
      );
    });
    // Handshake failures (wrong protocol version, no common cipher, plain text on a TLS port).
    server.on('tlsClientError', (err, socket) => {
      opts.logger.info(
        { address: socket.remoteAddress ?? null, port: socket.remotePort ?? null, reason: err.message },
        `TLS handshake failed: ${err.message}`,
      );
    });
    server.on('error', (err: Error) => opts.onError?.(err));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port, ipv6Only: net.isIPv6(opts.host) }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A renewed certificate serves new handshakes; established connections keep the one they have.
    l.unsubscribe = store.onChange(() => server.setSecureContext(store.contextOptions()));
    const a = server.address() as net.AddressInfo;
    l.bound = { transport: 'tls', host: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 };
    return l;
  }

  close(): Promise<void> {
    this.unsubscribe();
    return this.destroyAll();
  }
}

export interface TlsConnectorOptions extends OutboundTimeouts {
  readonly maxMessageSize: number;
  /** Our certificate and the CA bundle; without them the system's CAs verify and we present none. */
  readonly certificates: CertificateStore | undefined;
  readonly onError?: (err: Error) => void;
  /** Where copies of the messages sent are taken (HEP, after decryption), when capture is on. */
  readonly capture?: CaptureHook;
}

/** Where an outbound TLS connection goes, and the name its certificate must carry. */
export interface TlsHop {
  readonly address: string;
  readonly port: number;
  /** The name the address was found under (pool member or pool FQDN); an IP literal when none. */
  readonly host?: string | undefined;
}

/** Opens outbound TLS connections to pool members, verified against their names, or reuses one. */
export class TlsConnector {
  private readonly pending = new Map<string, Promise<TcpConnection>>();
  /** The name each connection we opened was verified against: a connection serves that name only. */
  private readonly verifiedName = new WeakMap<TcpConnection, string>();

  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly opts: TlsConnectorOptions,
    private readonly onMessage: MessageHandler,
    private readonly onFramingError: FramingErrorHandler,
  ) {}

  connect(hop: TlsHop): Promise<TcpConnection> {
    const name = (hop.host ?? hop.address).toLowerCase();
    const existing = this.registry.find(hop.address, hop.port);
    if (existing !== undefined && existing.transport === 'tls' && this.verifiedName.get(existing) === name) {
      return Promise.resolve(existing);
    }
    const key = `${connectionId(hop.address, hop.port)}|${name}`;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const p = new Promise<TcpConnection>((resolve, reject) => {
      const socket = tls.connect({
        ...(this.opts.certificates?.clientOptions() ?? { minVersion: 'TLSv1.2' }),
        host: hop.address,
        port: hop.port,
        // RFC 5922 §7.2: the certificate is checked against the domain the request was routed to;
        // SNI takes a name, never an IP address (RFC 6066 §3).
        ...(net.isIP(name) === 0 ? { servername: name } : {}),
        rejectUnauthorized: true,
      });
      socket.setNoDelay(true);
      const timer = setTimeout(
        () => socket.destroy(new Error(`TLS connect to ${hop.address}:${hop.port} timed out`)),
        this.opts.connectTimeoutMs,
      );
      timer.unref();
      socket.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`TLS to ${name} (${hop.address}:${hop.port}): ${err.message}`));
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.on('error', (err: Error) => this.opts.onError?.(err));
        socket.setTimeout(this.opts.idleTimeoutMs, () => socket.destroy());
        const conn = new TcpConnection(
          socket,
          this.opts.maxMessageSize,
          this.onMessage,
          this.onFramingError,
          {},
          undefined,
          this.opts.capture,
        );
        this.verifiedName.set(conn, name);
        this.registry.add(conn);
        resolve(conn);
      });
    }).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }
}
