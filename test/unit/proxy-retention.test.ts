// What a proxied request leaves behind once it has its answer: the client transaction waits out
// Timer K (RFC 3261 §17.1.2.2) and the server transaction Timer J (§17.2.2), but neither may keep
// the request, its bytes or its response context alive for those seconds.

import { describe, it, expect } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { Router } from '../../src/router/router.js';
import { EndpointTable } from '../../src/endpoints/table.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { ClientTransactionTable } from '../../src/transaction/client-transaction-table.js';
import { DEFAULT_PROXY_SETTINGS } from '../../src/router/proxy.js';
import { ConnectionRegistry } from '../../src/transport/tcp.js';
import type { Outbound, Sender } from '../../src/transport/outbound.js';
import type { Target } from '../../src/pool/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryLink } from '../helpers/memory-link.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const T = { t1: 500, t2: 4000, t4: 5000 };
const MEMBER: Target = {
  transport: 'udp',
  host: '10.0.0.9',
  address: '10.0.0.9',
  port: 5060,
  family: 4,
  id: 'udp:10.0.0.9:5060',
  source: 'static',
};

function rig() {
  const clock = new FakeClock();
  const client = new MemoryLink('udp');
  const table = EndpointTable.fromConfig(
    parseEndpointsConfig(
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: proxy\n',
      'endpoints.yaml',
    ),
  );
  const toMember: string[] = [];
  const sender: Sender = {
    transport: 'udp',
    reliable: false,
    sentBy: '127.0.0.1:5060',
    connection: undefined,
    send: (data) => toMember.push(data.toString('latin1')),
  };
  const outbound = {
    listenerCount: 1,
    sentByValues: () => ['127.0.0.1:5060'],
    readySender: () => sender,
    sender: () => Promise.resolve(sender),
  } as unknown as Outbound;
  const clientTxns = new ClientTransactionTable(clock, T);
  const router = new Router({
    table: () => table,
    logger: pino({ level: 'silent' }),
    clock,
    timers: T,
    maxMessageSize: 65535,
    serverHeader: 'pchat-endpoint',
    proxy: {
      clientTxns,
      targets: { resolve: () => Promise.resolve([MEMBER]), cached: () => [MEMBER] },
      health: { order: (t) => [...t], markFailed: () => undefined, markSucceeded: () => undefined },
      outbound,
      connections: new ConnectionRegistry(),
      timersT1: T.t1,
      settings: DEFAULT_PROXY_SETTINGS,
    },
  });
  return { clock, client, router, clientTxns, toMember };
}

const BYE =
  'BYE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye1\r\n' +
  'From: <sip:alice@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>;tag=p1\r\nMax-Forwards: 70\r\n' +
  'Call-ID: retained-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n';

/** The request's bytes go to the router from here, so no frame of the test holds them. */
function sendBye(r: ReturnType<typeof rig>): WeakRef<Buffer> {
  const data = Buffer.from(BYE, 'latin1');
  r.router.onMessage(data, r.client.source('127.0.0.1', 40000));
  return new WeakRef(data);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('proxied non-INVITE: nothing of the request is held after its final response', () => {
  it('§17.1.2.2/§17.2.2: during Timer K and Timer J the request bytes are collectable; retransmissions are still answered', async () => {
    const r = rig();
    const bytes = sendBye(r);
    await nextTurn();
    expect(r.toMember).toHaveLength(1);
    const forwarded = r.toMember[0]!;
    const ours = /^Via: (SIP\/2\.0\/UDP 127\.0\.0\.1:5060;branch=[^\r]+)\r\n/m.exec(forwarded)![1]!;
    const ok =
      `SIP/2.0 200 OK\r\nVia: ${ours}\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye1\r\n` +
      'From: <sip:alice@contoso.com>;tag=a1\r\nTo: <sip:ocschat@contoso.com>;tag=p1\r\n' +
      'Call-ID: retained-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n';
    const member = { link: r.client, address: '10.0.0.9', port: 5060, family: 4 as const };
    r.router.onMessage(Buffer.from(ok, 'latin1'), member);
    const upstream = r.client.take();
    expect(upstream).toHaveLength(1);
    expect(upstream[0]).toMatch(/^SIP\/2\.0 200 OK\r\n/);
    // Timer K holds the client transaction, Timer J the server one.
    expect(r.clientTxns.size).toBe(1);
    expect(r.router.transactions.size).toBe(1);
    await nextTurn();
    gc();
    expect(bytes.deref()).toBeUndefined();
    // The client's retransmission still gets the same 200, and the member's is absorbed.
    r.router.onMessage(Buffer.from(BYE, 'latin1'), r.client.source('127.0.0.1', 40000));
    expect(r.client.take()).toEqual(upstream);
    r.router.onMessage(Buffer.from(ok, 'latin1'), member);
    expect(r.client.take()).toEqual([]);
    expect(r.toMember).toHaveLength(1);
    r.clock.advance(T.t4);
    expect(r.clientTxns.size).toBe(0);
    r.clock.advance(64 * T.t1 - T.t4);
    expect(r.router.transactions.size).toBe(0);
  });
});
