// Plain TCP connections read into one shared buffer. This is the only file that leans on node:net's
// internals to do it: the socket fields behind net.connect's `onread` option (kBuffer, kBufferCb,
// found by their descriptions) and the handle's useUserBuffer(). A Node release that renames them
// turns the trick off, never the connection: sharedReadBuffer() says at start-up whether it is on
// (TcpListener logs it once), and a socket it cannot take delivers 'data' events as usual.
//
// What it buys: without it, each read allocates a 64 KiB buffer, shrinks it to what was read and
// pushes it through the Readable machinery. Measured when it came in (85e258c, the service alone,
// one SIPp TCP connection at 10,000 redirects/s, four alternated rounds, together with the framer
// change of the same commit): 17.0 → 16.0 µs CPU per call (docs/performance-notes.md, TCP).

import net from 'node:net';

/**
 * The buffer every plain TCP connection reads into. A read is handled to the end before the next
 * one starts, so one buffer serves every connection.
 */
const SHARED = Buffer.allocUnsafe(64 * 1024);

interface OnreadFields {
  readonly buffer: symbol;
  readonly callback: symbol;
}

/** The socket's `onread` fields, found once by their names on a socket that is never connected. */
let fields: OnreadFields | undefined;
let problem: string | undefined;

function probe(): void {
  if (fields !== undefined || problem !== undefined) return;
  const symbols = Object.getOwnPropertySymbols(new net.Socket());
  const buffer = symbols.find((s) => s.description === 'kBuffer');
  const callback = symbols.find((s) => s.description === 'kBufferCb');
  if (buffer !== undefined && callback !== undefined) fields = { buffer, callback };
  else problem = `node:net sockets have no kBuffer/kBufferCb fields in Node ${process.version}`;
}

export type SharedReadBufferState =
  { readonly active: true } | { readonly active: false; readonly why: string };

/** Whether plain TCP connections read into the shared buffer in this Node, and why not when not. */
export function sharedReadBuffer(): SharedReadBufferState {
  probe();
  return problem === undefined ? { active: true } : { active: false, why: problem };
}

let reported = false;

/** Logs, once per process, whether the shared read buffer is in use (the UDP engine's line's peer). */
export function reportSharedReadBuffer(log: { info(fields: object, message: string): void }): void {
  if (reported) return;
  reported = true;
  const state = sharedReadBuffer();
  if (state.active) log.info({ readBuffer: 'shared' }, 'TCP: connections read into one shared buffer');
  else
    log.info(
      { readBuffer: 'per-read', why: state.why },
      'TCP: shared read buffer not available, each read allocates',
    );
}

/**
 * Have `socket` read into the shared buffer and hand each read to `receive` as a chunk of its own:
 * what net.connect's `onread` option does, which a socket that net.Server accepted cannot be given,
 * so its fields are set here, before the first read. Returns false, and changes nothing, when the
 * fields or the handle's useUserBuffer are missing, or the socket reads into a buffer already: the
 * caller then listens to 'data' as usual.
 */
export function readThroughShared(socket: net.Socket, receive: (chunk: Buffer) => void): boolean {
  probe();
  if (fields === undefined) return false;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (typeof handle?.useUserBuffer !== 'function') return false;
  const own = socket as unknown as Record<symbol, unknown>;
  if (own[fields.buffer] !== null || own[fields.callback] !== null) return false;
  own[fields.buffer] = SHARED;
  // The bytes are copied out: the next read of any connection reuses the buffer. (A 64 KiB slab
  // to copy into would save 60-90 ns a read, but a kept partial message would then pin 64 KiB.)
  own[fields.callback] = (n: number): void => {
    const chunk = Buffer.allocUnsafe(n);
    SHARED.copy(chunk, 0, 0, n);
    receive(chunk);
  };
  handle.useUserBuffer(SHARED);
  return true;
}
