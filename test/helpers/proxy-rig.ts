// An in-memory proxy for unit tests: a Router with one proxy-mode endpoint
// (sip:ocschat@contoso.com) whose pool is one UDP member (or the members given), on a fake clock.
// The client side is a MemoryLink; what the proxy sends to the members is kept as text in
// `toMember`, and with the member's address in `sent`. The decision log lines are in `lines`.

import { buildModes } from '../../src/modes/registry.js';
import { pino } from 'pino';
import { Router } from '../../src/router/router.js';
import { EndpointTable } from '../../src/endpoints/table.js';
import { parseEndpointsConfig } from '../../src/config/load.js';
import { ClientTransactionTable } from '../../src/transaction/client-transaction-table.js';
import type { ProxySettings } from '../../src/modes/proxy/proxy.js';
import type { NextHop, Outbound, Sender } from '../../src/transport/outbound.js';
import type { Target } from '../../src/pool/index.js';
import { FakeClock } from './fake-clock.js';
import { MemoryLink } from './memory-link.js';
import { jsonLines } from './log-lines.js';
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

export interface ProxyRigOptions {
  /** The pool's members, in the order the pool gives them (default: RIG_MEMBER alone). */
  readonly members?: readonly Target[];
  /** Proxy settings over the defaults. */
  readonly settings?: Partial<ProxySettings>;
  /** The pool's targets are not known at once: they come from this promise. */
  readonly resolve?: () => Promise<readonly Target[]>;
  /** Members whose connection the test opens (`connect`) or refuses (`refuse`), by address. */
  readonly connecting?: readonly string[];
}

export function proxyRig(opts: ProxyRigOptions = {}) {
  const clock = new FakeClock();
  const client = new MemoryLink('udp');
  const table = EndpointTable.fromConfig(
    parseEndpointsConfig(
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: proxy\n',
      'endpoints.yaml',
    ),
  );
  const members = opts.members ?? [RIG_MEMBER];
  const toMember: string[] = [];
  const sent: { to: string; text: string }[] = [];
  const senderFor = (hop: NextHop): Sender => ({
    transport: 'udp',
    reliable: false,
    sentBy: '127.0.0.1:5060',
    connection: undefined,
    send: (data) => {
      const text = data.toString('latin1');
      toMember.push(text);
      sent.push({ to: hop.address, text });
    },
  });
  const senders = new Map<NextHop, Sender>();
  /** Connections being opened, by member address: open or refuse. */
  const opening = new Map<string, { open: () => void; refuse: () => void }>();
  const outbound = {
    listenerCount: 1,
    sentByValues: () => ['127.0.0.1:5060'],
    readySender: (hop: NextHop) => {
      if (opts.connecting?.includes(hop.address) === true) return undefined;
      let s = senders.get(hop);
      if (s === undefined) senders.set(hop, (s = senderFor(hop)));
      return s;
    },
    sender: (hop: NextHop) =>
      new Promise<Sender>((resolve, reject) =>
        opening.set(hop.address, {
          open: () => resolve(senderFor(hop)),
          refuse: () => reject(new Error('connection refused')),
        }),
      ),
  } as unknown as Outbound;
  const settle = (address: string, how: 'open' | 'refuse'): void => {
    const p = opening.get(address);
    if (p === undefined) throw new Error(`no connection to ${address} is opening`);
    opening.delete(address);
    p[how]();
  };
  const lines: Record<string, unknown>[] = [];
  const clientTxns = new ClientTransactionTable(clock, RIG_TIMERS);
  const router = new Router({
    table: () => table,
    logger: pino({ level: 'info' }, jsonLines(lines)),
    clock,
    timers: RIG_TIMERS,
    maxMessageSize: 65535,
    serverHeader: 'pchat-endpoint',
    modes: buildModes({
      proxy: {
        clientTxns,
        targets: {
          resolve: opts.resolve ?? (() => Promise.resolve(members)),
          cached: () => (opts.resolve === undefined ? members : undefined),
        },
        health: { order: (t) => [...t], markFailed: () => undefined, markSucceeded: () => undefined },
        outbound,
        timersT1: RIG_TIMERS.t1,
        settings: { ...defaultSettings().proxy, ...opts.settings },
      },
    }),
    limits: defaultSettings().router,
  });
  return {
    clock,
    client,
    router,
    clientTxns,
    toMember,
    sent,
    lines,
    /** The connection to the member at `address` opens. */
    connect: (address: string) => settle(address, 'open'),
    /** The connection to the member at `address` is refused. */
    refuse: (address: string) => settle(address, 'refuse'),
  };
}
