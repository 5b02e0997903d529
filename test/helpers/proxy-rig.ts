// An in-memory proxy for unit tests: a Router with one proxy-mode endpoint
// (sip:ocschat@contoso.com) whose pool is one UDP member, on a fake clock. The client side is a
// MemoryLink; what the proxy sends to the member is kept as text in `toMember`.

import { buildModes } from '../../src/modes/registry.js';
import { pino } from 'pino';
import { Router } from '../../src/router/router.js';
import { EndpointTable } from '../../src/endpoints/table.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { ClientTransactionTable } from '../../src/transaction/client-transaction-table.js';
import type { Outbound, Sender } from '../../src/transport/outbound.js';
import type { Target } from '../../src/pool/index.js';
import { FakeClock } from './fake-clock.js';
import { MemoryLink } from './memory-link.js';
import { defaultSettings } from './settings.js';

export const RIG_TIMERS = { t1: 500, t2: 4000, t4: 5000 };

export const RIG_MEMBER: Target = {
  transport: 'udp',
  host: '10.0.0.9',
  address: '10.0.0.9',
  port: 5060,
  family: 4,
  id: 'udp:10.0.0.9:5060',
  source: 'static',
};

export function proxyRig() {
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
  const clientTxns = new ClientTransactionTable(clock, RIG_TIMERS);
  const router = new Router({
    table: () => table,
    logger: pino({ level: 'silent' }),
    clock,
    timers: RIG_TIMERS,
    maxMessageSize: 65535,
    serverHeader: 'pchat-endpoint',
    modes: buildModes({
      proxy: {
        clientTxns,
        targets: { resolve: () => Promise.resolve([RIG_MEMBER]), cached: () => [RIG_MEMBER] },
        health: { order: (t) => [...t], markFailed: () => undefined, markSucceeded: () => undefined },
        outbound,
        timersT1: RIG_TIMERS.t1,
        settings: defaultSettings().proxy,
      },
    }),
    limits: defaultSettings().router,
  });
  return { clock, client, router, clientTxns, toMember };
}
