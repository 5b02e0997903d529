// What the SIP core sees of the network: where a message came from and how to send one back.

import type { SipParseError } from '../sip/errors.js';

export type TransportName = 'udp' | 'tcp';

/** Something bytes can be written to: a UDP socket (any peer) or one stream connection. */
export interface Link {
  readonly transport: TransportName;
  /** Reliable transports need no retransmission (RFC 3261 §17.1.1.2 / §17.2.1). */
  readonly reliable: boolean;
  /** Local address and port the link is bound to (for Via and Record-Route). */
  readonly localAddress: string;
  readonly localPort: number;
  /** Send bytes; address/port are used by datagram links and ignored by connections. */
  send(data: Buffer, address: string, port: number): void;
}

/** Where an inbound message came from. */
export interface Source {
  readonly link: Link;
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** Called for each message received (a whole datagram, or one message framed off a stream). */
export type MessageHandler = (data: Buffer, source: Source) => void;

/**
 * Called when a stream's framing is lost (bad or conflicting Content-Length, over-size message).
 * `head` holds the header section when it could be read, so that an error response can be sent
 * before the connection is closed.
 */
export type FramingErrorHandler = (error: SipParseError, head: Buffer | undefined, source: Source) => void;

export interface ListenAddress {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
}

export interface BoundAddress extends ListenAddress {
  readonly family: 4 | 6;
}
