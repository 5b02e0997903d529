// An in-memory link for unit tests of the layers above the transport: records what is sent.

import type { Link, Source, TransportName } from '../../src/transport/types.js';

export class MemoryLink implements Link {
  readonly sent: { data: Buffer; address: string; port: number }[] = [];
  constructor(
    readonly transport: TransportName = 'udp',
    readonly reliable = transport !== 'udp',
    readonly localAddress = '127.0.0.1',
    readonly localPort = 5060,
  ) {}
  send(data: Buffer | string, address: string, port: number): void {
    // Latin1 text is recorded as the bytes it stands for, as a real link would send them.
    this.sent.push({ data: typeof data === 'string' ? Buffer.from(data, 'latin1') : data, address, port });
  }
  /** Texts of everything sent so far, and forget them. */
  take(): string[] {
    return this.sent.splice(0).map((s) => s.data.toString('latin1'));
  }
  source(address = '127.0.0.1', port = 40000): Source {
    return { link: this, address, port, family: 4 };
  }
}
