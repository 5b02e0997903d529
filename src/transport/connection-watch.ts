// Times every inbound stream connection (TCP, TLS, WebSocket) from the moment it is accepted: its
// handshake (TLS, WebSocket upgrade) within one bound, each SIP message from its first byte to its
// last within another, and the quiet time between messages within a third. A connection that
// overstays its phase is destroyed, whatever it is doing: one that never finishes its handshake, or
// trickles a byte now and then, would otherwise hold a socket (and a per-source slot) for ever.
//
// Deadlines are checked by one sweep for every connection, a few times per bound, so the receive
// path only writes a number; a connection is closed at most one sweep period past its deadline.

import type { Socket } from 'node:net';

export type ConnectionPhase = 'handshake' | 'message' | 'idle';

export interface ConnectionTimeouts {
  /** From accept until the TLS handshake or WebSocket upgrade is done, ms. */
  readonly handshakeMs: number;
  /** From the first byte of a SIP message until its last, ms; more bytes do not extend it. */
  readonly messageMs: number;
  /** Between messages (a CRLF keep-alive counts as one), ms. */
  readonly idleMs: number;
}

/** Told of each connection destroyed for overstaying a phase (to log it). */
export type TimeoutHandler = (socket: Socket, phase: ConnectionPhase, limitMs: number) => void;

/** What the metrics read. */
export interface ConnectionWatchStats {
  readonly timedOut: Readonly<Record<ConnectionPhase, number>>;
  /** Connections watched now: every inbound connection open, handshaking or not. */
  readonly open: number;
}

/** One connection's phase and the time it must leave it by. */
export class WatchedConnection {
  /** performance.now() time by which the phase must end. */
  deadline: number;

  constructor(
    private readonly watch: ConnectionWatch,
    readonly socket: Socket,
    public phase: ConnectionPhase,
  ) {
    const t = watch.timeouts;
    this.deadline = watch.now() + (phase === 'handshake' ? t.handshakeMs : t.idleMs);
  }

  /** The TLS handshake or the WebSocket upgrade is done: the connection waits for its first message. */
  handshakeDone(): void {
    this.phase = 'idle';
    this.deadline = this.watch.now() + this.watch.timeouts.idleMs;
  }

  /**
   * Bytes arrived. `completed`: they finished at least one message (or keep-alive); `partial`: a
   * message is left unfinished after them. Until a message is finished, its deadline stays where
   * its first byte put it.
   */
  received(completed: boolean, partial: boolean): void {
    if (!completed && this.phase === 'message') return;
    const t = this.watch.timeouts;
    if (partial) {
      this.phase = 'message';
      this.deadline = this.watch.now() + t.messageMs;
    } else {
      this.phase = 'idle';
      this.deadline = this.watch.now() + t.idleMs;
    }
  }
}

export class ConnectionWatch implements ConnectionWatchStats {
  readonly timedOut: Record<ConnectionPhase, number> = { handshake: 0, message: 0, idle: 0 };
  private readonly watched = new Set<WatchedConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly periodMs: number;
  readonly now: () => number;

  constructor(
    readonly timeouts: ConnectionTimeouts,
    private readonly onTimeout?: TimeoutHandler,
    now?: () => number,
  ) {
    const { handshakeMs, messageMs, idleMs } = timeouts;
    if (!(handshakeMs > 0 && messageMs > 0 && idleMs > 0))
      throw new RangeError(`bad connection timeouts: ${JSON.stringify(timeouts)}`);
    this.now = now ?? (() => performance.now());
    // About a tenth of the shortest bound: a connection outlives its deadline by at most that much.
    this.periodMs = Math.min(1000, Math.max(20, Math.floor(Math.min(handshakeMs, messageMs, idleMs) / 10)));
  }

  get open(): number {
    return this.watched.size;
  }

  /** Starts timing an accepted connection: from its handshake, or (plain TCP) from its first message. */
  track(socket: Socket, phase: 'handshake' | 'idle'): WatchedConnection {
    const w = new WatchedConnection(this, socket, phase);
    this.watched.add(w);
    socket.once('close', () => {
      this.watched.delete(w);
      if (this.watched.size === 0) this.stop();
    });
    // Only while there is something to time: an idle service wakes for nothing.
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(this.now()), this.periodMs);
      this.sweeper.unref();
    }
    return w;
  }

  /** Destroys every connection past its deadline. */
  sweep(now: number): void {
    for (const w of this.watched) {
      if (now < w.deadline) continue;
      this.watched.delete(w);
      this.timedOut[w.phase]++;
      const t = this.timeouts;
      this.onTimeout?.(
        w.socket,
        w.phase,
        w.phase === 'handshake' ? t.handshakeMs : w.phase === 'message' ? t.messageMs : t.idleMs,
      );
      w.socket.destroy();
    }
    if (this.watched.size === 0) this.stop();
  }

  /** Stops the sweep (the connections themselves belong to their listeners). */
  stop(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
