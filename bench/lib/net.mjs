// Free loopback ports and a SIP OPTIONS probe used to wait until a server under test answers.
import dgram from 'node:dgram';
import net from 'node:net';

function bind(kind, port) {
  return new Promise((resolve, reject) => {
    if (kind === 'udp') {
      const sock = dgram.createSocket('udp4');
      sock.once('error', reject);
      sock.bind(port, '127.0.0.1', () => {
        const bound = sock.address().port;
        sock.close(() => resolve(bound));
      });
    } else {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        const bound = server.address().port;
        server.close(() => resolve(bound));
      });
    }
  });
}

/** A port free on 127.0.0.1 for every protocol in `kinds` (and, with `span`, the next span-1 ports too). */
export async function freePort(kinds = ['udp', 'tcp'], span = 1) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await bind(kinds[0], 0);
    if (port + span > 65535) continue;
    let ok = true;
    for (let p = port; p < port + span && ok; p++) {
      for (const kind of kinds) {
        if (p === port && kind === kinds[0]) continue;
        ok = await bind(kind, p).then(
          () => true,
          () => false,
        );
        if (!ok) break;
      }
    }
    if (ok) return port;
  }
  throw new Error(`no free port for ${kinds.join('+')}`);
}

/**
 * Sends OPTIONS over UDP every 100 ms until a final response whose status line `accept` matches (any
 * final one by default) arrives or `timeoutMs` passes, from a socket on `localAddress`.
 */
export function waitForSip(
  host,
  port,
  timeoutMs = 15_000,
  localAddress = '127.0.0.1',
  accept = /^SIP\/2\.0 [2-6]\d\d/,
) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    let n = 0;
    const deadline = setTimeout(
      () => finish(new Error(`no SIP answer matching ${accept} from ${host}:${port} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const timer = setInterval(send, 100);
    function finish(err) {
      clearTimeout(deadline);
      clearInterval(timer);
      sock.close();
      if (err) reject(err);
      else resolve();
    }
    function send() {
      n++;
      const local = sock.address();
      const msg = [
        `OPTIONS sip:${host}:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${localAddress}:${local.port};branch=z9hG4bK-bench-probe-${n}`,
        'Max-Forwards: 70',
        `From: <sip:bench@127.0.0.1>;tag=probe${n}`,
        `To: <sip:${host}:${port}>`,
        `Call-ID: bench-probe-${process.pid}-${n}`,
        `CSeq: ${n} OPTIONS`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      sock.send(msg, port, host);
    }
    sock.on('message', (m) => {
      if (accept.test(m.toString('latin1'))) finish();
    });
    sock.bind(0, localAddress, send);
  });
}
