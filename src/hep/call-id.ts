// The Call-ID of a message as it travels (bytes received, or the text or bytes sent), found without
// parsing it: HEP's correlation id, which Homer groups a call's messages by. Found as a range of the
// message in one pass over its header lines, so the encoder copies it from there with no string made
// on the way.

/** Where the Call-ID's value lies in a message: [start, end) in bytes (latin1 characters for text). */
export type Range = readonly [number, number];

const LF = 10;
const CR = 13;
const SP = 32;
const HTAB = 9;
const COLON = 58;
// "call-id" in lower case; RFC 3261 §7.3.1: header names are case-insensitive.
const NAME = [99, 97, 108, 108, 45, 105, 100];
// RFC 3261 §20.8: "i" is Call-ID's compact form.
const COMPACT = 105;

/** Where the Call-ID's value is, or undefined when the header section has none. */
export function callIdRange(data: Buffer | string): Range | undefined {
  // Two copies of one scan, each indexing its own kind directly: one scan through an accessor
  // function costs several times more per byte.
  return typeof data === 'string' ? scanText(data) : scanBytes(data);
}

function scanBytes(b: Buffer): Range | undefined {
  const n = b.length;
  for (let i = b.indexOf(LF); i >= 0 && i < n; i = b.indexOf(LF, i + 1)) {
    let j = i + 1;
    const first = b[j]! | 0x20;
    // An empty line ends the header section: a body is not searched.
    if (b[j] === CR) return undefined;
    if (first === NAME[0]) {
      let k = 0;
      while (k < NAME.length && (b[j + k]! | 0x20) === NAME[k]) k++;
      if (k < NAME.length) continue;
      j += NAME.length;
    } else if (first === COMPACT) j += 1;
    else continue;
    while (b[j] === SP || b[j] === HTAB) j++;
    if (b[j] !== COLON) continue;
    let end = j + 1;
    while (end < n && b[end] !== CR && b[end] !== LF) end++;
    let start = j + 1;
    while (start < end && (b[start] === SP || b[start] === HTAB)) start++;
    while (end > start && (b[end - 1] === SP || b[end - 1] === HTAB)) end--;
    return end > start ? [start, end] : undefined;
  }
  return undefined;
}

function scanText(t: string): Range | undefined {
  const n = t.length;
  for (let i = t.indexOf('\n'); i >= 0 && i < n; i = t.indexOf('\n', i + 1)) {
    let j = i + 1;
    const first = t.charCodeAt(j) | 0x20;
    if (t.charCodeAt(j) === CR) return undefined;
    if (first === NAME[0]) {
      let k = 0;
      while (k < NAME.length && (t.charCodeAt(j + k) | 0x20) === NAME[k]) k++;
      if (k < NAME.length) continue;
      j += NAME.length;
    } else if (first === COMPACT) j += 1;
    else continue;
    while (t.charCodeAt(j) === SP || t.charCodeAt(j) === HTAB) j++;
    if (t.charCodeAt(j) !== COLON) continue;
    let end = j + 1;
    while (end < n && t.charCodeAt(end) !== CR && t.charCodeAt(end) !== LF) end++;
    let start = j + 1;
    while (start < end && (t.charCodeAt(start) === SP || t.charCodeAt(start) === HTAB)) start++;
    while (end > start && (t.charCodeAt(end - 1) === SP || t.charCodeAt(end - 1) === HTAB)) end--;
    return end > start ? [start, end] : undefined;
  }
  return undefined;
}

/** The Call-ID's value as text, or '' when there is none. */
export function callIdOf(data: Buffer | string): string {
  const r = callIdRange(data);
  if (r === undefined) return '';
  return typeof data === 'string' ? data.slice(r[0], r[1]) : data.toString('latin1', r[0], r[1]);
}
