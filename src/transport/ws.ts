// SIP over WebSocket (RFC 7118), plain (ws://) or over TLS (wss://): an HTTP listener that upgrades
// connections asking for the "sip" subprotocol; each WebSocket message carries one SIP message, and
// each connection is the link its responses go back on.

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { CertificateStore } from './certificates.js';
import type { ConnectionWatch, WatchedConnection } from './connection-watch.js';
import { NO_CAPTURE, type CaptureHook } from './capture.js';
import { StreamListener } from './stream-listener.js';
import type { Link, MessageHandler, Source } from './types.js';

export interface WsListenerOptions {
  readonly transport: 'ws' | 'wss';
  readonly host: string;
  readonly port: number;
  readonly maxMessageSize: number;
  /** Required for wss. */
  readonly certificates?: CertificateStore | undefined;
  readonly logger: Logger;
  /**
   * Times each connection from accept: the TLS handshake (wss) and the HTTP upgrade together, then
   * each WebSocket message from its first byte to its last, then the quiet time between messages.
   */
  readonly watch: ConnectionWatch;
  readonly onError?: (err: Error) => void;
  /** Asked about each new connection before the HTTP upgrade; false closes it at once (src/guard). */
  readonly admit?: (socket: net.Socket) => boolean;
  /** Where copies of the messages sent are taken (HEP, WebSocket framing and TLS taken off), when capture is on. */
  readonly capture?: CaptureHook;
}

/** RFC 6455 §7.4.1: 1008, "an endpoint is terminating the connection because it has received a message that violates its policy". */
export const WS_POLICY_VIOLATION = 1008;

// RFC 7118 §4.1: the client "MUST include the value 'sip' in the Sec-WebSocket-Protocol header";
// the 101 reply "MUST contain 'sip'" too.
const SUBPROTOCOL = 'sip';

const PING = '\r\n\r\n';
const PONG = Buffer.from('\r\n', 'latin1');

/**
 * A start line a SIP message can begin with: `METHOD uri SIP/x.y` or `SIP/x.y nnn`. Only this is
 * checked here; whatever else is wrong is the parser's to answer (400, 505, ...).
 */
const START_LINE = /^(?:[A-Za-z0-9!%*_+`'~.-]+ [^ \r\n]+ SIP\/\d+\.\d+\r?\n|SIP\/\d+\.\d+ \d{3}[ \r\n])/;

export function looksLikeSip(data: Buffer): boolean {
  return START_LINE.test(data.toString('latin1', 0, Math.min(data.length, 1024)));
}

export class WsConnection implements Link {
  readonly reliable = true;
  readonly source: Source;

  constructor(
    readonly transport: 'ws' | 'wss',
    private readonly ws: WebSocket,
    socket: net.Socket,
    /** Told of every message sent on the connection (HEP). */
    private readonly capture: CaptureHook = NO_CAPTURE,
  ) {
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.source = {
      link: this,
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === 'IPv6' ? 6 : 4,
    };
  }

  readonly localAddress: string;
  readonly localPort: number;

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(text: Buffer | string): void {
    if (!this.open) return;
    const tap = this.capture.tap;
    if (tap !== undefined) tap.sent(text, this, this.source.address, this.source.port);
    const data = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
    // Text frames must hold UTF-8 (RFC 6455 §5.6); a message that is not (a binary body) goes as a
    // binary frame, which RFC 7118 allows for SIP as well.
    this.ws.send(data, { binary: !isUtf8(data) });
  }

  close(code?: number, reason?: string): void {
    if (code === undefined) this.ws.terminate();
    else this.ws.close(code, reason);
  }
}

export class WsListener extends StreamListener<WsConnection> {
  private unsubscribe: () => void = () => {};
  /** Connections not yet upgraded, by peer "address|port", with their clocks. */
  private readonly upgrading = new Map<string, WatchedConnection>();

  private constructor(
    readonly transport: 'ws' | 'wss',
    private readonly server: http.Server | https.Server,
    private readonly wss: WebSocketServer,
  ) {
    super(server, 'WebSocket');
  }

  static async listen(opts: WsListenerOptions, onMessage: MessageHandler): Promise<WsListener> {
    const store = opts.certificates;
    if (opts.transport === 'wss' && store === undefined) throw new Error('wss listener without certificates');
    const server =
      opts.transport === 'wss' && store !== undefined
        ? https.createServer({
            ...store.contextOptions(),
            SNICallback: store.sniCallback,
            // The watch bounds the handshake and destroys the socket (Node's timeout only reports).
            handshakeTimeout: 0,
          })
        : http.createServer();
    // Plain HTTP requests get nothing here but the hint to upgrade.
    server.on('request', (_req, res) => {
      res.writeHead(426, { Upgrade: 'websocket', Connection: 'close', 'Content-Length': '0' });
      res.end();
    });
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxMessageSize,
      perMessageDeflate: false,
      handleProtocols: () => SUBPROTOCOL,
    });
    const l = new WsListener(opts.transport, server, wss);
    const peerOf = (socket: Duplex): { address: string | null; port: number | null } => {
      const s = socket as net.Socket;
      return { address: s.remoteAddress ?? null, port: s.remotePort ?? null };
    };

    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', (err) => opts.onError?.(err));
      // The TCP socket for ws, the TLS socket on top of it for wss: what the WebSocket reads.
      const upgraded = socket as net.Socket;
      const key = `${upgraded.remoteAddress ?? ''}|${upgraded.remotePort ?? 0}`;
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (!offered.includes(SUBPROTOCOL)) {
        opts.logger.info(
          { ...peerOf(socket), offered: req.headers['sec-websocket-protocol'] ?? null },
          'WebSocket refused: the "sip" subprotocol was not asked for',
        );
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const conn = new WsConnection(opts.transport, ws, upgraded, opts.capture);
        l.connections.add(conn);
        // Not found only if the peer address could not be read: timed from here, then.
        const timer = l.upgrading.get(key) ?? opts.watch.track(upgraded, 'idle');
        l.upgrading.delete(key);
        timer.handshakeDone();
        // Ahead of the WebSocket library's own reader: bytes start (or add to) a message, which the
        // library's 'message' (or a ping or pong) then finishes, so a trickled frame is timed from
        // its first byte.
        upgraded.prependListener('data', () => timer.received(false, true));
        const finished = (): void => timer.received(true, false);
        ws.on('ping', finished);
        ws.on('pong', finished);
        ws.on('message', finished);
        ws.on('error', (err) => opts.onError?.(err));
        ws.on('close', () => l.connections.delete(conn));
        ws.on('message', (data: RawData) => {
          const buf = toBuffer(data);
          // RFC 5626 §3.5.1 keep-alive, which SIP WebSocket clients also send: a CRLFCRLF ping gets a CRLF pong.
          if (buf.length <= 4 && buf.toString('latin1') === PING) {
            conn.send(PONG);
            return;
          }
          if (buf.length <= 2 && buf.toString('latin1') === '\r\n') return;
          if (!looksLikeSip(buf)) {
            opts.logger.warn(
              {
                address: conn.source.address,
                port: conn.source.port,
                transport: opts.transport,
                bytes: buf.length,
              },
              'WebSocket closed: a message that is not SIP',
            );
            conn.close(WS_POLICY_VIOLATION, 'not a SIP message');
            return;
          }
          // RFC 7118 §5.1: "Each SIP message MUST be carried within a single WebSocket message, and
          // a WebSocket message MUST NOT contain more than one SIP message."
          onMessage(buf, conn.source);
        });
      });
    });
    const admit = opts.admit;
    // The raw connection: before the TLS handshake (wss) and the HTTP request that asks to upgrade.
    server.on('connection', (socket: net.Socket) => {
      if (admit !== undefined && !admit(socket)) {
        socket.on('error', () => undefined);
        socket.destroy();
        return;
      }
      l.accepted(socket);
      // Found again at the upgrade by peer address (for wss the upgrade sees the TLS socket).
      const key = `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
      const timer = opts.watch.track(socket, 'handshake');
      l.upgrading.set(key, timer);
      socket.once('close', () => {
        if (l.upgrading.get(key) === timer) l.upgrading.delete(key);
      });
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    server.on('error', (err) => opts.onError?.(err));
    if (server instanceof https.Server && store !== undefined) {
      server.on('tlsClientError', (err, socket) =>
        opts.logger.info(
          { address: socket.remoteAddress ?? null, port: socket.remotePort ?? null, reason: err.message },
          `TLS handshake failed: ${err.message}`,
        ),
      );
      const s = server;
      l.unsubscribe = store.onChange(() => s.setSecureContext(store.contextOptions()));
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port, ipv6Only: net.isIPv6(opts.host) }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as net.AddressInfo;
    l.bound = {
      transport: opts.transport,
      host: a.address,
      port: a.port,
      family: a.family === 'IPv6' ? 6 : 4,
    };
    return l;
  }

  close(): Promise<void> {
    this.unsubscribe();
    for (const c of this.connections) c.close();
    this.connections.clear();
    this.wss.close();
    // Connections still in HTTP or in their TLS handshake would hold the close open: every socket
    // accepted goes, whatever its state.
    return this.destroyAll();
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
