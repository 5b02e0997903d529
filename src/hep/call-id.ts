// The Call-ID of a message as it travels (bytes received, or the text or bytes sent), found without
// parsing it: HEP's correlation id, which Homer groups a call's messages by.

const CANONICAL = '\nCall-ID:';
// RFC 3261 §7.3.1 and §20.8: header names are case-insensitive and "i" is Call-ID's compact form;
// whitespace may come before the colon.
const ANY_SPELLING = /\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)/i;

/** The Call-ID's value, or '' when the header section has none. */
export function callIdOf(data: Buffer | string): string {
  const text = typeof data === 'string';
  const end = text ? data.indexOf('\r\n\r\n') : data.indexOf('\r\n\r\n', 0, 'latin1');
  const headEnd = end < 0 ? data.length : end + 2;
  // The spelling nearly every stack sends (ours included), found with a plain search.
  const at = text ? data.indexOf(CANONICAL) : data.indexOf(CANONICAL, 0, 'latin1');
  if (at >= 0 && at < headEnd) {
    const lineEnd = text ? data.indexOf('\r', at + 1) : data.indexOf(13, at + 1);
    const stop = lineEnd < 0 || lineEnd > headEnd ? headEnd : lineEnd;
    const value = text
      ? data.slice(at + CANONICAL.length, stop)
      : data.toString('latin1', at + CANONICAL.length, stop);
    return value.trim();
  }
  const head = text ? data.slice(0, headEnd) : data.toString('latin1', 0, headEnd);
  return ANY_SPELLING.exec(head)?.[1]?.trim() ?? '';
}
