// The connection watch's phases on a virtual clock: a handshake bound from accept, a message bound
// from a message's first byte that more bytes do not extend, an idle bound that a finished message
// (or keep-alive) restarts; an expired connection is destroyed and counted once.

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionWatch } from '../../src/transport/connection-watch.js';
import { StreamFramer } from '../../src/sip/framer.js';

class FakeSocket extends EventEmitter {
  destroyed = false;
  remoteAddress = '127.0.0.1';
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

let now = 0;
const watches: ConnectionWatch[] = [];
afterEach(() => {
  for (const w of watches.splice(0)) w.stop();
  now = 0;
});

function watch(): ConnectionWatch {
  const w = new ConnectionWatch({ handshakeMs: 100, messageMs: 200, idleMs: 1000 }, undefined, () => now);
  watches.push(w);
  return w;
}

function track(
  w: ConnectionWatch,
  phase: 'handshake' | 'idle',
): { socket: FakeSocket; timer: ReturnType<ConnectionWatch['track']> } {
  const socket = new FakeSocket();
  return { socket, timer: w.track(socket as unknown as Socket, phase) };
}

describe('connection watch', () => {
  it('destroys a connection whose handshake is not done within handshakeMs, and counts it once', () => {
    const w = watch();
    const { socket } = track(w, 'handshake');
    now = 99;
    w.sweep(now);
    expect(socket.destroyed).toBe(false);
    now = 100;
    w.sweep(now);
    w.sweep(now + 1);
    expect(socket.destroyed).toBe(true);
    expect(w.timedOut).toEqual({ handshake: 1, message: 0, idle: 0 });
    expect(w.open).toBe(0);
  });

  it('a trickle does not move the message deadline; a finished message does', () => {
    const w = watch();
    const { socket, timer } = track(w, 'idle');
    timer.received(false, true); // first byte of a message at 0
    for (now = 20; now < 200; now += 20) {
      timer.received(false, true);
      w.sweep(now);
    }
    expect(socket.destroyed).toBe(false);
    now = 200;
    w.sweep(now);
    expect(socket.destroyed).toBe(true);
    expect(w.timedOut.message).toBe(1);

    const b = track(w, 'idle');
    b.timer.received(false, true); // at 200
    now = 350;
    b.timer.received(true, true); // the message ends and the next begins: its own 200 ms from here
    now = 500;
    w.sweep(now);
    expect(b.socket.destroyed).toBe(false);
    now = 550;
    w.sweep(now);
    expect(b.socket.destroyed).toBe(true);
  });

  it('idle: restarted by every finished message, closed idleMs after the last', () => {
    const w = watch();
    const { socket, timer } = track(w, 'handshake');
    now = 50;
    timer.handshakeDone();
    now = 900;
    timer.received(true, false);
    now = 1899;
    w.sweep(now);
    expect(socket.destroyed).toBe(false);
    now = 1900;
    w.sweep(now);
    expect(socket.destroyed).toBe(true);
    expect(w.timedOut).toEqual({ handshake: 0, message: 0, idle: 1 });
  });

  it('a connection closed by its peer is forgotten', () => {
    const w = watch();
    const { socket } = track(w, 'idle');
    expect(w.open).toBe(1);
    socket.emit('close');
    expect(w.open).toBe(0);
  });
});

describe('framer: midMessage', () => {
  it('is false for nothing held and for CR/LF kept back for a ping, true once a message has begun', () => {
    const f = new StreamFramer(65535);
    expect(f.midMessage).toBe(false);
    f.push(Buffer.from('\r\n'));
    expect(f.midMessage).toBe(false);
    f.push(Buffer.from('O'));
    expect(f.midMessage).toBe(true);
  });
});
