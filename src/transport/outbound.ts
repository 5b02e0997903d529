// Where requests we originate or forward leave from: a UDP listener socket (so answers come back to
// the port we listen on) or a TCP or TLS connection to the peer, opened or reused. Also says what our
// Via and Record-Route name for that transport.

import { networkInterfaces } from 'node:os';
import type { TcpConnection, TcpConnector, TcpListener } from './tcp.js';
import type { TlsConnector, TlsListener } from './tls.js';
import type { UdpListener } from './udp.js';
import type { TransportName } from './types.js';
import { ServiceError } from '../base/service-error.js';
import { hostPort } from '../sip/host-port.js';

export interface NextHop {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** The name the address was found under: a TLS peer's certificate must carry it. */
  readonly host?: string;
}

/** A way to send to one next hop. */
export interface Sender {
  readonly transport: TransportName;
  readonly reliable: boolean;
  /** sent-by for our Via: "host:port" of the listener the peer can answer to. */
  readonly sentBy: string;
  /** The connection used, for streams: its closing is a transport error (RFC 3261 §17.1.4). */
  readonly connection: TcpConnection | undefined;
  readonly send: (data: Buffer) => void;
}

export class TransportUnavailableError extends ServiceError {
  readonly code = 'PCHAT_ERR_TRANSPORT_UNAVAILABLE';
}

/** A concrete address for a listener bound to the wildcard: the first non-internal one of its family. */
function advertised(address: string, family: 4 | 6): string {
  if (address !== '0.0.0.0' && address !== '::') return address;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal && (a.family === 'IPv4' ? 4 : 6) === family) return a.address;
    }
  }
  return family === 4 ? '127.0.0.1' : '::1';
}

export class Outbound {
  /**
   * UDP senders by next hop object: a pool member's target lives as long as its resolution, and
   * each of the calls sent to it shares one sender instead of holding a copy (and a closure) of its own.
   */
  private readonly udpSenders = new WeakMap<NextHop, Sender>();
  private tls: { readonly listeners: readonly TlsListener[]; readonly connector: TlsConnector } | undefined;

  constructor(
    private readonly udp: readonly UdpListener[],
    private readonly tcp: readonly TcpListener[],
    private readonly connector: TcpConnector,
  ) {}

  /** Lets next hops be reached over TLS (once server.yaml's tls section is loaded). */
  useTls(listeners: readonly TlsListener[], connector: TlsConnector): void {
    this.tls = { listeners, connector };
  }

  /** How many listeners there are (they are added after construction). */
  get listenerCount(): number {
    return this.udp.length + this.tcp.length + (this.tls?.listeners.length ?? 0);
  }

  /** Every address:port we listen on, as Via sent-by values (for loop detection). */
  sentByValues(): string[] {
    return [...this.udp, ...this.tcp, ...(this.tls?.listeners ?? [])].map((l) =>
      hostPort(advertised(l.address.host, l.address.family), l.address.port),
    );
  }

  /**
   * A sender for a UDP next hop, at once: a request to a UDP pool member needs no promise turn.
   * Undefined for a stream transport (it may have to connect) and when no UDP listener has the hop's
   * family (`sender` says why).
   */
  readySender(hop: NextHop): Sender | undefined {
    if (hop.transport !== 'udp') return undefined;
    const known = this.udpSenders.get(hop);
    if (known !== undefined) return known;
    const l = this.udp.find((u) => u.address.family === hop.family);
    if (l === undefined) return undefined;
    const sender: Sender = {
      transport: 'udp',
      reliable: false,
      sentBy: hostPort(advertised(l.address.host, l.address.family), l.address.port),
      connection: undefined,
      send: (data) => l.send(data, hop.address, hop.port),
    };
    this.udpSenders.set(hop, sender);
    return sender;
  }

  /** A sender for a next hop; rejects with TransportUnavailableError when we cannot reach it. */
  async sender(hop: NextHop): Promise<Sender> {
    if (hop.transport === 'udp') {
      const sender = this.readySender(hop);
      if (sender === undefined) throw new TransportUnavailableError(`no UDP listener for IPv${hop.family}`);
      return sender;
    }
    if (hop.transport === 'tcp') {
      const l = this.tcp.find((t) => t.address.family === hop.family);
      if (l === undefined) throw new TransportUnavailableError(`no TCP listener for IPv${hop.family}`);
      const conn = await this.connector.connect(hop.address, hop.port);
      return {
        transport: 'tcp',
        reliable: true,
        sentBy: hostPort(advertised(l.address.host, l.address.family), l.address.port),
        connection: conn,
        send: (data) => {
          if (!conn.open)
            throw new TransportUnavailableError(`connection to ${hop.address}:${hop.port} closed`);
          conn.send(data);
        },
      };
    }
    // What is left is TLS.
    if (this.tls === undefined) {
      throw new TransportUnavailableError('TLS needs the tls section in server.yaml and a tls:// listener');
    }
    // Our Via names a TLS listener, where the peer can open a connection of its own when ours is
    // gone (RFC 3261 §18.2.2).
    const l = this.tls.listeners.find((t) => t.address.family === hop.family);
    if (l === undefined) throw new TransportUnavailableError(`no TLS listener for IPv${hop.family}`);
    const conn = await this.tls.connector.connect(hop);
    return {
      transport: 'tls',
      reliable: true,
      sentBy: hostPort(advertised(l.address.host, l.address.family), l.address.port),
      connection: conn,
      send: (data) => {
        if (!conn.open)
          throw new TransportUnavailableError(`connection to ${hop.address}:${hop.port} closed`);
        conn.send(data);
      },
    };
  }
}
