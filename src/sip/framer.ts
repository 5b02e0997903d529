// Cuts a byte stream (TCP, TLS) into SIP messages by the blank line and Content-Length (RFC 3261 §18.3).

import { SipParseError } from './errors.js';
import { findHeaderEnd } from './parser.js';

export type FrameEvent =
  | {
      readonly type: 'message';
      readonly data: Buffer;
      /** The message's header section through its blank line, as latin1 text (for parseMessage). */
      readonly head: string;
    }
  /** A CRLFCRLF keep-alive ping between messages (RFC 5626 §3.5.1). */
  | { readonly type: 'ping' }
  /** Framing is lost: the stream must be closed after answering `data` if it can be read. */
  | { readonly type: 'error'; readonly error: SipParseError; readonly data: Buffer | undefined };

// Content-Length or its compact form "l" at the start of a header line; the value may be folded.
const CONTENT_LENGTH = /(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*(?:\r?\n[ \t]+)?([^\r\n]*)/gi;

const EMPTY = Buffer.alloc(0);
const CR = 13;
const LF = 10;

export class StreamFramer {
  private pending: Buffer = EMPTY;
  private failed = false;

  constructor(private readonly maxMessageSize: number) {}

  /** Bytes received but not yet framed. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Feed bytes; returns the events they complete, in order. After an error, nothing more is framed. */
  push(chunk: Buffer): FrameEvent[] {
    if (this.failed) return [];
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const events: FrameEvent[] = [];
    const buf = this.pending;
    const len = buf.length;
    let pos = 0;
    for (;;) {
      // Keep-alives and stray CRLFs between messages (RFC 3261 §7.5).
      let skip = pos;
      while (skip < len) {
        const c = buf[skip];
        if (c !== CR && c !== LF) break;
        skip++;
      }
      if (
        skip - pos >= 4 &&
        buf[pos] === CR &&
        buf[pos + 1] === LF &&
        buf[pos + 2] === CR &&
        buf[pos + 3] === LF
      )
        events.push({ type: 'ping' });
      // A lone CR or LF at the end may be the start of a ping: keep it until more arrives.
      if (skip === len) {
        pos = skip - pos >= 4 || skip === pos ? skip : pos;
        break;
      }
      pos = skip;
      // The blank line is found in the bytes; only then is the header section decoded, once, and
      // that text goes on with the message so that the parser need not decode it again.
      const ends = findHeaderEnd(buf, pos);
      if (ends === undefined) {
        if (len - pos > this.maxMessageSize)
          return this.fail(events, new SipParseError('Message Too Large', 513));
        break;
      }
      const bodyStart = ends[1];
      const head = buf.toString('latin1', pos, bodyStart);
      let length = 0;
      let seen = false;
      CONTENT_LENGTH.lastIndex = 0;
      for (let m = CONTENT_LENGTH.exec(head); m !== null; m = CONTENT_LENGTH.exec(head)) {
        const value = (m[1] ?? '').trim();
        if (!/^[0-9]{1,10}$/.test(value))
          return this.fail(events, new SipParseError('Bad Content-Length'), buf.subarray(pos, bodyStart));
        const n = Number(value);
        if (seen && n !== length)
          return this.fail(
            events,
            new SipParseError('Conflicting Content-Length'),
            buf.subarray(pos, bodyStart),
          );
        seen = true;
        length = n;
      }
      const total = bodyStart - pos + length;
      if (total > this.maxMessageSize)
        return this.fail(events, new SipParseError('Message Too Large', 513), buf.subarray(pos, bodyStart));
      if (len < bodyStart + length) break;
      events.push({ type: 'message', data: buf.subarray(pos, bodyStart + length), head });
      pos = bodyStart + length;
    }
    this.pending = pos >= len ? EMPTY : pos === 0 ? buf : buf.subarray(pos);
    return events;
  }

  private fail(events: FrameEvent[], error: SipParseError, data?: Buffer): FrameEvent[] {
    this.failed = true;
    this.pending = EMPTY;
    events.push({ type: 'error', error, data });
    return events;
  }
}
