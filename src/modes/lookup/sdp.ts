// The SDP answer of the lookup dialog (RFC 3264): the client offers `m=message <port> sip null`
// (xccos.md §1) and nobody parses the answer (§2), but it must still be a valid one.

/**
 * An answer to `offer` from `address`:`port` (our SIP listener, which is what the `message` media's
 * port names). RFC 3264 §6: "The answer MUST contain exactly the same number of "m=" lines as the
 * offer", so every m-line but the first `message` one is declined with port 0. Without an offer
 * (an INVITE with no body) this is our offer, answered in the ACK, which we do not need to read.
 */
export function sdpAnswer(offer: string | undefined, address: string, port: number): string {
  const ip = address.includes(':') ? 'IP6' : 'IP4';
  let out = `v=0\r\no=- 0 0 IN ${ip} ${address}\r\ns=session\r\nc=IN ${ip} ${address}\r\nt=0 0\r\n`;
  const ours = `m=message ${port} sip null\r\na=accept-types:text/plain\r\n`;
  const mlines = offer === undefined ? [] : offer.split(/\r?\n/).filter((l) => l.startsWith('m='));
  let accepted = false;
  for (const m of mlines) {
    const [media = '', , proto = '', ...fmts] = m.slice(2).trim().split(/\s+/);
    if (!accepted && media === 'message') {
      accepted = true;
      out += ours;
    } else {
      // RFC 3264 §6: "An offered stream MAY be rejected in the answer, for any reason", with port zero.
      out += `m=${media} 0 ${proto} ${fmts.length > 0 ? fmts.join(' ') : 'null'}\r\n`;
    }
  }
  if (mlines.length === 0) out += ours;
  return out;
}
