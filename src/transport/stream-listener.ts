// What every connection-oriented listener (TCP, TLS, WebSocket) shares: the address it is bound to,
// the connections it holds, every socket it has accepted (handshaking or not), and a drain that takes
// no new connections but lets open ones finish.

import type { Socket } from 'node:net';
import type { BoundAddress } from './types.js';

export abstract class StreamListener<C> {
  protected readonly connections = new Set<C>();
  /** Every socket accepted and not yet closed, from accept on: a half-open handshake is one too. */
  protected readonly sockets = new Set<Socket>();
  protected bound: BoundAddress | undefined;
  private stopped: Promise<void> | undefined;

  protected constructor(
    /** Anything with net.Server's close(callback): 'close' comes once the last connection ends. */
    private readonly closable: { close(callback: () => void): unknown },
    private readonly kind: string,
  ) {}

  get address(): BoundAddress {
    if (this.bound === undefined) throw new Error(`${this.kind} listener not bound`);
    return this.bound;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Takes no new connections; those open stay open (a drain before shutdown). */
  stopAccepting(): Promise<void> {
    // Resolves once the last connection has ended too: every later caller awaits the same close.
    this.stopped ??= new Promise((resolve) => this.closable.close(() => resolve()));
    return this.stopped;
  }

  /** Keeps `socket` among those close() destroys, until it closes. */
  protected accepted(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /**
   * Takes no new connections and destroys every socket accepted, whatever its state (established,
   * in its TLS handshake, waiting for its WebSocket upgrade); resolves when the server has closed.
   */
  protected destroyAll(): Promise<void> {
    const stopped = this.stopAccepting();
    for (const s of [...this.sockets]) s.destroy();
    return stopped;
  }
}
