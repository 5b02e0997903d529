// What the SIP core sees of the network: where a message came from and how to send one back.

import type { SipParseError } from '../sip/errors.js';
import type { FramedHead } from '../sip/parser.js';

export type TransportName = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** Something bytes can be written to: a UDP socket (any peer) or one stream or WebSocket connection. */
export interface Link {
  readonly transport: TransportName;
  /** Reliable transports need no retransmission (RFC 3261 §17.1.1.2 / §17.2.1). */
  readonly reliable: boolean;
  /** Local address and port the link is bound to (for Via and Record-Route). */
  readonly localAddress: string;
  readonly localPort: number;
  /**
   * Send bytes, given as a Buffer or as latin1 text (one character per byte, as the service builds
   * its own responses); address/port are used by datagram links and ignored by connections.
   */
  send(data: Buffer | string, address: string, port: number): void;
}

/**
 * The certificate a TLS client presented and we verified (MTLS), as access policies match it.
 * `subject` is the distinguished name, most significant part first as written in the certificate
 * ("C=US, O=Contoso, CN=fe1.contoso.com"); `san` holds the subjectAltName entries with their type
 * ("DNS:fe1.contoso.com", "URI:sip:fe1.contoso.com", "IP Address:10.0.0.5").
 */
export interface PeerCertificate {
  readonly subject: string;
  /** The subject's common name alone, when it has one. */
  readonly commonName?: string;
  readonly san: readonly string[];
}

/** Where an inbound message came from. */
export interface Source {
  readonly link: Link;
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** Set only for TLS connections whose client certificate was verified. */
  readonly peerCertificate?: PeerCertificate;
}

/**
 * Called for each message received (a whole datagram, or one message framed off a stream). Stream
 * transports also hand over `head`, the header section as their framing has read it already.
 */
export type MessageHandler = (data: Buffer, source: Source, head?: FramedHead) => void;

/**
 * Called when a stream's framing is lost (bad or conflicting Content-Length, over-size message).
 * `head` holds the header section when it could be read, so that an error response can be sent
 * before the connection is closed.
 */
export type FramingErrorHandler = (error: SipParseError, head: Buffer | undefined, source: Source) => void;

/**
 * Where a listener's socket is bound, with the port the system chose for port 0. (A server.yaml
 * `listen` entry, before it is bound, is config/schema.ts's ListenAddress.)
 */
export interface BoundAddress {
  readonly transport: TransportName;
  /** An IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}
