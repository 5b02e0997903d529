// The listeners server.yaml's `listen` entries ask for, opened from one table of transports: each
// entry says what the transport needs and how to open it. The listeners are kept by kind, because
// outbound sends leave by a listener of the transport they use (src/transport/outbound.ts).

import type net from 'node:net';
import type { Logger } from 'pino';
import { listenerId, type ListenAddress, type ListenTransport } from '../config/schema.js';
import type { Guard } from '../guard/guard.js';
import type { Admit } from '../router/router.js';
import type { FramedHead } from '../sip/parser.js';
import type { CaptureHook } from '../transport/capture.js';
import type { CertificateStore } from '../transport/certificates.js';
import type { ConnectionWatch } from '../transport/connection-watch.js';
import { TcpListener, type ConnectionRegistry } from '../transport/tcp.js';
import { TlsListener } from '../transport/tls.js';
import type { BoundAddress, FramingErrorHandler, MessageHandler, Source } from '../transport/types.js';
import { listenUdp, type UdpListener } from '../transport/udp.js';
import type { WsListener } from '../transport/ws.js';
import type { TransportSettings } from './settings.js';

/** What every listener hands its messages to, and what it is opened with. */
export interface ListenerDeps {
  readonly transport: TransportSettings;
  readonly logger: Logger;
  /** Access policy and flood checks, per listener. */
  readonly guard: Guard;
  /** Times every inbound connection from accept. */
  readonly watch: ConnectionWatch;
  /** Undefined without server.yaml's tls section. */
  readonly certificates: CertificateStore | undefined;
  /** Inbound connections are kept here too, so a response or a request can go back on them. */
  readonly connections: ConnectionRegistry;
  readonly onMessage: (data: Buffer, source: Source, head: FramedHead | undefined, admit: Admit) => void;
  readonly onFramingError: FramingErrorHandler;
  /** Where copies of the messages sent are taken (HEP), when capture is on. */
  readonly capture: CaptureHook;
}

/** One listener about to be opened: its address, with the listener's own guard bound in. */
interface Opening {
  readonly at: ListenAddress;
  readonly deps: ListenerDeps;
  readonly onMessage: MessageHandler;
  /** Asked about each new connection (stream transports). */
  readonly admit: (socket: net.Socket) => boolean;
  readonly onError: (err: Error) => void;
}

/** How a transport is opened, and what it needs beyond an address. */
type TransportEntry =
  | { readonly needs: 'address'; open(o: Opening, into: Listeners): Promise<void> }
  | {
      readonly needs: 'certificates';
      open(o: Opening, certificates: CertificateStore, into: Listeners): Promise<void>;
    };

const TRANSPORTS: { readonly [T in ListenTransport]: TransportEntry } = {
  udp: {
    needs: 'address',
    async open(o, into) {
      const { logger } = o.deps;
      into.udp.push(
        await listenUdp(
          {
            host: o.at.host,
            port: o.at.port,
            engine: o.deps.transport.udpEngine,
            onError: o.onError,
            capture: o.deps.capture,
            onFallback: (why) => logger.info({ why }, 'UDP: native engine not available, using node:dgram'),
          },
          o.onMessage,
        ),
      );
    },
  },
  tcp: {
    needs: 'address',
    async open(o, into) {
      into.tcp.push(
        await TcpListener.listen(
          { ...stream(o), admit: o.admit, logger: o.deps.logger, onError: o.onError },
          o.onMessage,
          o.deps.onFramingError,
          o.deps.connections,
        ),
      );
    },
  },
  tls: {
    needs: 'certificates',
    async open(o, certificates, into) {
      into.tls.push(
        await TlsListener.listen(
          { ...stream(o), admit: o.admit, certificates, logger: o.deps.logger, onError: o.onError },
          o.onMessage,
          o.deps.onFramingError,
          o.deps.connections,
        ),
      );
    },
  },
  ws: { needs: 'address', open: (o, into) => openWs(o, undefined, into) },
  wss: { needs: 'certificates', open: (o, certificates, into) => openWs(o, certificates, into) },
};

/** What every stream listener takes alike. */
function stream(o: Opening) {
  return {
    host: o.at.host,
    port: o.at.port,
    maxMessageSize: o.deps.transport.maxMessageSize,
    watch: o.deps.watch,
    capture: o.deps.capture,
  };
}

async function openWs(
  o: Opening,
  certificates: CertificateStore | undefined,
  into: Listeners,
): Promise<void> {
  // Loaded only when a WebSocket listener is configured: the ws package and its code weigh about
  // 2 MB of heap in every process that would never use them.
  const { WsListener } = await import('../transport/ws.js');
  into.ws.push(
    await WsListener.listen(
      {
        ...stream(o),
        transport: o.at.transport === 'wss' ? 'wss' : 'ws',
        admit: o.admit,
        certificates,
        logger: o.deps.logger,
        onError: o.onError,
      },
      o.onMessage,
    ),
  );
}

/** The service's listeners, by kind; empty until open() fills them. */
export class Listeners {
  readonly udp: UdpListener[] = [];
  readonly tcp: TcpListener[] = [];
  readonly tls: TlsListener[] = [];
  readonly ws: WsListener[] = [];

  /** Opens one listener per entry, in order; on a failure the ones already open stay for close(). */
  async open(listen: readonly ListenAddress[], deps: ListenerDeps): Promise<void> {
    const onError = (err: Error): void => deps.logger.warn({ err }, 'transport error');
    const handle = deps.onMessage;
    for (const at of listen) {
      // Each listener's access policy and flood checks ride along with every message it receives.
      const lg = deps.guard.forListener(listenerId(at));
      const o: Opening = {
        at,
        deps,
        onMessage: (data, source, head) => handle(data, source, head, lg.admit),
        admit: lg.admitConnection,
        onError,
      };
      const entry = TRANSPORTS[at.transport];
      if (entry.needs === 'address') await entry.open(o, this);
      // The schema refuses a tls:// or wss:// listener without the tls section.
      else if (deps.certificates === undefined)
        throw new Error(`${at.transport}:// listener without the tls section`);
      else await entry.open(o, deps.certificates, this);
    }
  }

  /** Where the listeners are bound, with the ports the system chose for port 0. */
  addresses(): BoundAddress[] {
    return [
      ...this.udp.map((u) => u.address),
      ...this.tcp.map((t) => t.address),
      ...this.tls.map((t) => t.address),
      ...this.ws.map((w) => w.address),
    ];
  }

  /** Logs each listener's address (and the UDP engine it got). */
  logListening(logger: Logger): void {
    for (const u of this.udp) {
      const a = u.address;
      logger.info({ transport: a.transport, host: a.host, port: a.port, engine: u.engine }, 'listening');
    }
    for (const l of [...this.tcp, ...this.tls, ...this.ws]) {
      const a = l.address;
      logger.info({ transport: a.transport, host: a.host, port: a.port, engine: undefined }, 'listening');
    }
  }

  /** Stream listeners take no new connection (before a shutdown); UDP has none to refuse. */
  stopAccepting(): void {
    for (const l of [...this.tcp, ...this.tls, ...this.ws]) void l.stopAccepting();
  }

  async close(): Promise<void> {
    await Promise.all([
      ...this.udp.map((u) => u.close()),
      ...this.tcp.map((t) => t.close()),
      ...this.tls.map((t) => t.close()),
      ...this.ws.map((w) => w.close()),
    ]);
  }
}
