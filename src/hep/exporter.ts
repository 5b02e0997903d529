// HEP export: a copy of every SIP message the service receives or sends, as a HEP3 datagram to each
// collector server.yaml's `hep.targets` names (Homer, sngrep -L). Fire and forget: a collector that
// is down or unreachable costs a counter and nothing else, and nothing here throws into the SIP path.

import dgram from 'node:dgram';
import type { MessageTap } from '../transport/capture.js';
import type { Link, Source, TransportName } from '../transport/types.js';
import { callIdRange } from './call-id.js';
import {
  encodeHep3Into,
  HEP_MAX_LENGTH,
  HepAgent,
  hepLength,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type HepMessage,
} from './encode.js';

/** A collector: where HEP datagrams go (UDP). */
export interface HepTarget {
  /** As written in server.yaml, for logs. */
  readonly url: string;
  /** An IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface HepSettings {
  readonly targets: readonly HepTarget[];
  /** The capture agent id every datagram carries (Homer shows it as the capture node). */
  readonly captureId: number;
  /** The auth key chunk (a collector's password); none when undefined. */
  readonly password: string | undefined;
}

/** What was exported, for /metrics. */
export interface HepStats {
  /** Datagrams handed to a socket, one per message and collector. */
  sent: number;
  /** Datagrams the socket refused, and messages too large for a HEP3 datagram (one per collector). */
  sendErrors: number;
}

/** A socket that sends a datagram without capturing it: a native UDP listener of the service's. */
export interface UncapturedSender {
  /** 0 when sent or queued, a negative errno when refused. */
  sendUncaptured(data: Buffer, address: string, port: number): number;
}

/**
 * Where datagrams for a collector leave from: one of the service's own UDP sockets when one can
 * reach it (its sends made while a batch of received datagrams is handled go out with the batch's
 * answers in one system call), else (undefined) a socket of the exporter's own.
 */
export type SenderFor = (target: HepTarget) => UncapturedSender | undefined;

/** A collector with the socket chosen for it. */
interface Route {
  readonly target: HepTarget;
  readonly via: UncapturedSender | undefined;
}

// Shorter than any SIP message: a CRLF keep-alive or its answer (RFC 5626 §3.5.1), not worth a datagram.
const MIN_SIP_LENGTH = 16;

export class HepExporter implements MessageTap {
  readonly stats: HepStats = { sent: 0, sendErrors: 0 };
  private routes: readonly Route[] = [];
  private agent: HepAgent;
  private readonly own = new Map<4 | 6, dgram.Socket>();
  /** Where each datagram is written: the service's sockets copy it before they return. */
  private readonly scratch = Buffer.allocUnsafe(HEP_MAX_LENGTH);

  constructor(
    settings: HepSettings,
    private readonly senderFor: SenderFor,
  ) {
    this.agent = agentOf(settings);
    this.update(settings);
  }

  /** Applies a reload's settings: collectors added or removed, a new agent id or password. */
  update(settings: HepSettings): void {
    this.agent = agentOf(settings);
    this.routes = settings.targets.map((target) => ({ target, via: this.senderFor(target) }));
  }

  received(data: Buffer, source: Source): void {
    const link = source.link;
    this.export(
      data,
      link.transport,
      source.family,
      source.address,
      source.port,
      link.localAddress,
      link.localPort,
    );
  }

  sent(data: Buffer | string, link: Link, address: string, port: number): void {
    const family = address.includes(':') ? 6 : 4;
    this.export(data, link.transport, family, link.localAddress, link.localPort, address, port);
  }

  /** Closes the sockets of the exporter's own (the service's listeners close with the service). */
  close(): void {
    for (const s of this.own.values()) s.close();
    this.own.clear();
  }

  private export(
    payload: Buffer | string,
    transport: TransportName,
    family: 4 | 6,
    sourceAddress: string,
    sourcePort: number,
    destinationAddress: string,
    destinationPort: number,
  ): void {
    if (payload.length < MIN_SIP_LENGTH) return;
    const routes = this.routes;
    try {
      // Wall-clock time with microseconds, monotonic within the process: messages keep their order.
      const now = performance.timeOrigin + performance.now();
      const seconds = Math.floor(now / 1000);
      const m: HepMessage = {
        family,
        protocol: transport === 'udp' ? IPPROTO_UDP : IPPROTO_TCP,
        sourceAddress,
        sourcePort,
        destinationAddress,
        destinationPort,
        seconds,
        microseconds: Math.floor((now - seconds * 1000) * 1000),
        payload,
        correlation: callIdRange(payload),
      };
      const length = hepLength(m, this.agent);
      if (length > HEP_MAX_LENGTH) {
        this.stats.sendErrors += routes.length;
        return;
      }
      encodeHep3Into(this.scratch, m, this.agent, length);
      const datagram = this.scratch.subarray(0, length);
      for (const r of routes) this.transmit(datagram, r);
    } catch {
      // Encoding trusts nothing it was given to be well formed; whatever went wrong, the message
      // itself goes on.
      this.stats.sendErrors += routes.length;
    }
  }

  private transmit(datagram: Buffer, r: Route): void {
    const t = r.target;
    if (r.via !== undefined) {
      if (r.via.sendUncaptured(datagram, t.host, t.port) === 0) this.stats.sent++;
      else this.stats.sendErrors++;
      return;
    }
    // dgram sends after this returns: a copy of its own, as the scratch buffer is written again.
    this.socket(t.family).send(Buffer.from(datagram), t.port, t.host);
    this.stats.sent++;
  }

  /** The exporter's own socket for a family: its send errors arrive as 'error' events, counted. */
  private socket(family: 4 | 6): dgram.Socket {
    let s = this.own.get(family);
    if (s === undefined) {
      s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      s.on('error', () => {
        this.stats.sendErrors++;
      });
      // Never what keeps a stopping process alive.
      s.unref();
      this.own.set(family, s);
    }
    return s;
  }
}

function agentOf(s: HepSettings): HepAgent {
  return new HepAgent(s.captureId, s.password === undefined ? undefined : Buffer.from(s.password, 'utf8'));
}
