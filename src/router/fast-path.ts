// Reading the few fields the ACK fast path needs straight off the message text, before (and instead
// of) a full parse: for the layout nearly every message has, and undefined for anything else.

/**
 * The branch of the first value of the first Via line of a message (compact form too): the rule
 * firstLineViaBranch reads quickly, for the layout nearly every message has.
 */
export const ACK_BRANCH = /\n(?:Via|v)[ \t]*:[^\r\n,]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)/i;

/**
 * The branch of a Via written the usual way on the line after the Request-Line
 * ("Via: SIP/2.0/UDP host;…;branch=…", the branch in its first value), found with a few string
 * searches; undefined for anything else, which the full parse then reads.
 */
export function firstLineViaBranch(head: string): string | undefined {
  const line = head.indexOf('\n') + 1;
  if (line === 0 || !head.startsWith('Via: ', line)) return undefined;
  // The line must end in CRLF, with no other CR in it. One cut off where the text ends may go on:
  // not read here.
  const lineEnd = head.indexOf('\n', line) - 1;
  if (lineEnd < line || head.indexOf('\r', line) !== lineEnd) return undefined;
  const at = head.indexOf(';branch=', line);
  if (at < 0 || at > lineEnd) return undefined;
  // A comma before it: the branch is not the first value's.
  const comma = head.indexOf(',', line);
  if (comma >= 0 && comma < at) return undefined;
  // An earlier parameter that may be a branch written otherwise ("; branch", "BRANCH =").
  for (let semi = head.indexOf(';', line); semi < at; semi = head.indexOf(';', semi + 1)) {
    let c = head.charCodeAt(semi + 1);
    for (let k = semi + 2; c === 0x20 || c === 0x09; k++) c = head.charCodeAt(k);
    if ((c | 0x20) === 0x62) return undefined;
  }
  const start = at + 8;
  let end = start;
  // The value ends where ACK_BRANCH's [^;,\s]+ does (latin1: \s is also VT, FF and NBSP).
  for (; end < lineEnd; end++) {
    const c = head.charCodeAt(end);
    if (c === 0x3b || c === 0x2c || c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0) break;
  }
  return end === start ? undefined : head.slice(start, end);
}

/**
 * The INVITE server transaction key (serverTransactionKey) of a message whose top Via is written the
 * usual way on the line after the Request-Line, read off the text: branch (firstLineViaBranch) and
 * sent-by. Undefined whenever the sent-by is not in the one form the parser would give back as
 * written (no white space, a port without leading zeros): the full path then decides.
 */
export function firstLineInviteKey(head: string): string | undefined {
  const branch = firstLineViaBranch(head);
  if (branch === undefined) return undefined;
  // firstLineViaBranch checked the line: "Via: ", CRLF-terminated, the branch in its first value.
  const line = head.indexOf('\n') + 1;
  const semi = head.indexOf(';', line);
  const space = head.indexOf(' ', line + 5);
  if (space < 0 || space > semi) return undefined;
  // sent-protocol (SIP/2.0/UDP) with no white space in it, then one space.
  for (let k = line + 5; k < space; k++) {
    const c = head.charCodeAt(k);
    if (c === 0x09 || c === 0x20) return undefined;
  }
  const start = space + 1;
  let k = start;
  if (head.charCodeAt(k) === 0x5b) {
    // [IPv6 reference]
    k = head.indexOf(']', k);
    if (k < 0 || k > semi) return undefined;
    k++;
  } else {
    for (; k < semi; k++) {
      const c = head.charCodeAt(k) | 0x20;
      if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d)) break;
    }
    if (k === start) return undefined;
  }
  if (k === semi) return `${branch}\u0000${head.slice(start, semi)}:`;
  if (head.charCodeAt(k) !== 0x3a) return undefined;
  const digits = semi - k - 1;
  if (digits < 1 || digits > 5 || (digits > 1 && head.charCodeAt(k + 1) === 0x30)) return undefined;
  let port = 0;
  for (let d = k + 1; d < semi; d++) {
    const c = head.charCodeAt(d);
    if (c < 0x30 || c > 0x39) return undefined;
    port = port * 10 + c - 0x30;
  }
  if (port > 65535) return undefined;
  return `${branch}\u0000${head.slice(start, semi)}`;
}

/**
 * Does the To header of this message text carry a tag starting `needle` (";tag=" and the prefix of
 * our derived tags), on a line of its own ("To:" or "t:", any case). Folded or otherwise unusual
 * lines are not recognised here; the full path reads them.
 */
export function toTagStartsWith(head: string, needle: string): boolean {
  for (let at = head.indexOf(needle); at >= 0; at = head.indexOf(needle, at + 1)) {
    const line = head.lastIndexOf('\n', at) + 1;
    if (line === 0 || (head.charCodeAt(line) | 0x20) !== 0x74) continue;
    let k = line + 1;
    if ((head.charCodeAt(k) | 0x20) === 0x6f) k++;
    while (head.charCodeAt(k) === 0x20 || head.charCodeAt(k) === 0x09) k++;
    if (head.charCodeAt(k) === 0x3a) return true;
  }
  return false;
}
