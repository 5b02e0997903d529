// Cuts a byte stream (TCP, TLS) into SIP messages by the blank line and Content-Length (RFC 3261 §18.3).

import { SipParseError } from './errors.js';
import { digitsValue, isWsp } from './header-values.js';
import {
  contentLength,
  findHeaderEndInText,
  parseHeaderLines,
  type FramedHead,
  type ParseOptions,
} from './parser.js';

export type FrameEvent =
  | {
      readonly type: 'message';
      readonly data: Buffer;
      /** The message's header section, as text and (for parseMessage) read into lines. */
      readonly head: FramedHead;
    }
  /** A CRLFCRLF keep-alive ping between messages (RFC 5626 §3.5.1). */
  | { readonly type: 'ping' }
  /** Framing is lost: the stream must be closed after answering `data` if it can be read. */
  | { readonly type: 'error'; readonly error: SipParseError; readonly data: Buffer | undefined };

const EMPTY = Buffer.alloc(0);
// Every blank line (CRLF CRLF, or LF LF) contains one of these.
const LF_LF = Buffer.from('\n\n', 'latin1');
const LF_CRLF = Buffer.from('\n\r\n', 'latin1');
const CR = 13;
const LF = 10;

export class StreamFramer {
  private pending: Buffer = EMPTY;
  private failed = false;
  /** The length of the message at the start of `pending` once its header section has been read. */
  private awaiting = 0;
  /** Bytes at the start of `pending` searched already: they hold no blank line. */
  private searched = 0;
  /** The header section of the message at the start of `pending` while `awaiting` its body. */
  private held: FramedHead | undefined;
  private heldLength = 0;

  constructor(private readonly maxMessageSize: number) {}

  /** Bytes received but not yet framed. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * True when the bytes held begin a message: not when they are only the CR or LF (up to three)
   * kept back in case a keep-alive ping is arriving.
   */
  get midMessage(): boolean {
    const p = this.pending;
    const n = p.length;
    if (n === 0) return false;
    if (n > 3) return true;
    for (let i = 0; i < n; i++) if (p[i] !== CR && p[i] !== LF) return true;
    return false;
  }

  /** Feed bytes; returns the events they complete, in order. After an error, nothing more is framed. */
  push(chunk: Buffer): FrameEvent[] {
    if (this.failed) return [];
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const buf = this.pending;
    const len = buf.length;
    // The body of a message already measured is still arriving: nothing to read again yet.
    if (len < this.awaiting) return [];
    this.awaiting = 0;
    const held = this.held;
    this.held = undefined;
    // A header section still incomplete: only the new bytes (and the three before them, where a
    // blank line may begin) are searched, in the bytes, before anything is decoded again.
    if (this.searched > 0) {
      const from = Math.max(0, this.searched - 3);
      if (buf.indexOf(LF_LF, from) < 0 && buf.indexOf(LF_CRLF, from) < 0) {
        if (len > this.maxMessageSize) return this.fail([], new SipParseError('Message Too Large', 513));
        this.searched = len;
        return [];
      }
      this.searched = 0;
    }
    const events: FrameEvent[] = [];
    // The bytes as latin1 text (one char per byte, so offsets are the same), decoded once: the blank
    // line is found by string search, and each message's header section is a slice of this text.
    const text = buf.toString('latin1', 0, len);
    let pos = 0;
    for (;;) {
      // Keep-alives and stray CRLFs between messages (RFC 3261 §7.5).
      let skip = pos;
      while (skip < len) {
        const c = text.charCodeAt(skip);
        if (c !== CR && c !== LF) break;
        skip++;
      }
      if (skip - pos >= 4 && text.startsWith('\r\n\r\n', pos)) events.push({ type: 'ping' });
      // A lone CR or LF at the end may be the start of a ping: keep it until more arrives.
      if (skip === len) {
        pos = skip - pos >= 4 || skip === pos ? skip : pos;
        break;
      }
      pos = skip;
      let head: FramedHead;
      let length: number | SipParseError;
      if (pos === 0 && held !== undefined) {
        // The message whose body was awaited: its header section has been read.
        head = held;
        length = this.heldLength;
      } else {
        const ends = findHeaderEndInText(text, pos);
        if (ends === undefined) {
          if (len - pos > this.maxMessageSize)
            return this.fail(events, new SipParseError('Message Too Large', 513));
          this.searched = len - pos;
          break;
        }
        ({ head, length } = readFramedHead(text, pos, ends[0], ends[1]));
      }
      const bodyStart = pos + head.text.length;
      if (typeof length !== 'number') return this.fail(events, length, buf.subarray(pos, bodyStart));
      const total = bodyStart - pos + length;
      if (total > this.maxMessageSize)
        return this.fail(events, new SipParseError('Message Too Large', 513), buf.subarray(pos, bodyStart));
      if (len < bodyStart + length) {
        this.awaiting = total;
        this.held = head;
        this.heldLength = length;
        break;
      }
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

/** Options under which parseHeaderLines stops at nothing: the limits are applied afterwards. */
const NO_LIMITS: ParseOptions = { maxLineLength: Infinity, maxHeaders: Infinity };

/**
 * The header section a stream's framing found in text[start, bodyStart), blank line at `end`, and the
 * body length it announces (RFC 3261 §18.3), or why that length cannot be read. The lines are read
 * here once, for the framing's Content-Length and for parseMessage after it, except in an ACK: most
 * ACKs are matched to their transaction by the top Via alone, without the rest of a parse.
 */
export function readFramedHead(
  text: string,
  start: number,
  end: number,
  bodyStart: number,
): { head: FramedHead; length: number | SipParseError } {
  const headText = text.slice(start, bodyStart);
  const headEnd = end - start;
  if (text.startsWith('ACK ', start)) {
    return {
      head: { text: headText, end: headEnd, lines: undefined },
      length: streamContentLength(text, start, bodyStart),
    };
  }
  // Read in the whole text rather than in the slice: indexing into a slice costs each access a step.
  const firstLf = text.indexOf('\n', start);
  const lines = parseHeaderLines(text, firstLf < end ? firstLf + 1 : end, NO_LIMITS, end);
  let length: number | SipParseError | undefined;
  if (lines.defect === undefined) {
    try {
      length = contentLength(lines.headers) ?? 0;
    } catch {
      // A value the strict reading refuses: the framing's own, more lenient reading decides (below).
    }
  }
  // Lines that are not headers, or a value that is not plain digits: read the section as the framing
  // reads any other, so that what is framed does not depend on how well the lines parse.
  length ??= streamContentLength(text, start, bodyStart);
  return { head: { text: headText, end: headEnd, lines }, length };
}

const CONTENT_LENGTH = 'content-length';

/**
 * The body length a header section announces for stream framing (RFC 3261 §18.3): its Content-Length
 * (or "l") headers, in any case and possibly folded, 0 when there is none; an error when a value is
 * not 1 to 10 digits or two values differ (RFC 4475 §3.3.9). Reads the text line by line, without a
 * regular expression: this runs for every message on every stream.
 */
export function streamContentLength(
  head: string,
  /** Where the header section is in `head`: read in place, since indexing into a slice costs more. */
  from = 0,
  n = head.length,
): number | SipParseError {
  let length = 0;
  let seen = false;
  let p = from;
  while (p < n) {
    // A header name at the start of the text or of a line.
    const c = head.charCodeAt(p) | 0x20;
    let q = c === 0x6c ? p + 1 : c === 0x63 && isContentLengthAt(head, p) ? p + CONTENT_LENGTH.length : -1;
    if (q >= 0) {
      while (q < n && isWsp(head.charCodeAt(q))) q++;
      if (q < n && head.charCodeAt(q) === 0x3a) {
        q++;
        while (q < n && isWsp(head.charCodeAt(q))) q++;
        // The value may start on a continuation line.
        let f = q < n && head.charCodeAt(q) === CR ? q + 1 : q;
        if (f + 1 < n && head.charCodeAt(f) === LF && isWsp(head.charCodeAt(f + 1))) {
          f += 2;
          while (f < n && isWsp(head.charCodeAt(f))) f++;
          q = f;
        }
        let e = q;
        while (e < n) {
          const d = head.charCodeAt(e);
          if (d === CR || d === LF) break;
          e++;
        }
        let value = digitsValue(head, q, e);
        if (value < 0) {
          // Not plain digits: other white space around them (trim() knows it all), or bad.
          const text = head.slice(q, e).trim();
          if (!/^[0-9]{1,10}$/.test(text)) return new SipParseError('Bad Content-Length');
          value = Number(text);
        }
        if (seen && value !== length) return new SipParseError('Conflicting Content-Length');
        seen = true;
        length = value;
        p = e;
      }
    }
    const nl = head.indexOf('\n', p);
    if (nl < 0) break;
    p = nl + 1;
  }
  return length;
}

/** "content-length" in any case at `at`. */
function isContentLengthAt(text: string, at: number): boolean {
  if (text.length - at < CONTENT_LENGTH.length) return false;
  for (let i = 0; i < CONTENT_LENGTH.length; i++) {
    const want = CONTENT_LENGTH.charCodeAt(i);
    const got = text.charCodeAt(at + i);
    // '-' exactly; letters either case (CR | 0x20 would pass for '-').
    if (want === 0x2d ? got !== want : (got | 0x20) !== want) return false;
  }
  return true;
}
