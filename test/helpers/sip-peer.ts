// A scriptable SIP peer on loopback (UDP or TCP) for tests: a pool member that answers each request
// the way a test says, recording everything it receives.

import dgram from 'node:dgram';
import net from 'node:net';
import { parseMessage } from '../../src/sip/parser.js';
import { StreamFramer } from '../../src/sip/framer.js';
import type { SipRequest } from '../../src/sip/message.js';

export type Reply = { status: number; reason?: string; headers?: string; delayMs?: number } | 'close';

export interface SipPeer {
  readonly port: number;
  readonly received: SipRequest[];
  close(): Promise<void>;
}

/** A response to `req` with its Via/From/To/Call-ID/CSeq copied and a To tag added. */
export function reply(req: SipRequest, status: number, reason = 'Reason', headers = ''): Buffer {
  const lines = req.headers
    .filter((h) => ['via', 'from', 'call-id', 'cseq', 'record-route'].includes(h.name))
    .map((h) => `${h.wire}: ${h.value}`);
  const to = req.header('to') ?? '';
  const toLine = `To: ${to}${/;\s*tag=/i.test(to) || status === 100 ? '' : ';tag=peer1'}`;
  return Buffer.from(
    `SIP/2.0 ${status} ${reason}\r\n${lines.join('\r\n')}\r\n${toLine}\r\nContact: <sip:peer@127.0.0.1>\r\n${headers}Content-Length: 0\r\n\r\n`,
    'latin1',
  );
}

export async function startPeer(
  transport: 'udp' | 'tcp',
  onRequest: (req: SipRequest, answer: (to: SipRequest, status: number) => void) => Reply[],
): Promise<SipPeer> {
  const received: SipRequest[] = [];
  // Delayed replies still pending when the peer is closed are dropped, not sent on a closed socket.
  const pending = new Set<NodeJS.Timeout>();
  const later = (fn: () => void, ms: number): void => {
    const t = setTimeout(() => {
      pending.delete(t);
      fn();
    }, ms);
    pending.add(t);
  };
  const cancelPending = (): void => {
    for (const t of pending) clearTimeout(t);
    pending.clear();
  };
  const handle = (data: Buffer, send: (b: Buffer) => void, close: () => void): void => {
    const r = parseMessage(data, { stream: transport === 'tcp' });
    if (!r.ok || r.message.kind !== 'request') return;
    const req = r.message;
    received.push(req);
    let delay = 0;
    const answer = (to: SipRequest, status: number): void => send(reply(to, status));
    for (const rep of onRequest(req, answer)) {
      if (rep === 'close') {
        later(close, delay);
        continue;
      }
      delay += rep.delayMs ?? 0;
      const data = reply(req, rep.status, rep.reason, rep.headers);
      if (delay === 0) send(data);
      else later(() => send(data), delay);
    }
  };
  if (transport === 'udp') {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    sock.on('message', (m, rinfo) =>
      handle(
        m,
        (b) => sock.send(b, rinfo.port, rinfo.address),
        () => undefined,
      ),
    );
    return {
      port: sock.address().port,
      received,
      close: () =>
        new Promise((r) => {
          cancelPending();
          sock.close(() => r());
        }),
    };
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const framer = new StreamFramer(65535);
    s.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk))
        if (ev.type === 'message')
          handle(
            ev.data,
            (b) => s.write(b),
            () => s.destroy(),
          );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise((r) => {
        cancelPending();
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
