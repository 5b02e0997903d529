// In-process micro-benchmark of the proxy path: full calls (INVITE, 200, ACK, BYE, 200) through the
// Router to an in-memory pool member, in virtual time at RATE calls/s (default 2000), so Accepted
// INVITEs (RFC 6026, 64*T1) and Timer J/K pile up as under real load. Prints CPU µs per call and the
// heap the calls leave held. `rr` record-routes (signed Record-Route, verified on ACK and BYE).
// Usage: npm run build && [OUTBOUND=real] [RATE=2000] node bench/proxy-hotpath.mjs [dist folder] [calls] [rr]
import './lib/help.mjs'; // first: --help exits before the rest runs
import { pino } from 'pino';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const dist = new URL(process.argv[2] ?? '../dist', import.meta.url).href.replace(/\/$/, '');
const N = Number(process.argv[3] ?? 50000);
const RR = process.argv[4] === 'rr';
const { Router } = await import(`${dist}/router/router.js`);
const { EndpointTable } = await import(`${dist}/endpoints/table.js`);
const { parseEndpointsConfig, parseServerConfig } = await import(`${dist}/config/load.js`);
const { TimerWheel } = await import(`${dist}/base/timer-wheel.js`).catch(
  () => import(`${dist}/transaction/timer-wheel.js`),
);
const { ClientTransactionTable } = await import(`${dist}/transaction/client-transaction-table.js`);
const { ConnectionRegistry } = await import(`${dist}/transport/tcp.js`);
// The schema's settings, as an empty server.yaml gives them. A build from before src/server/settings.ts
// and the mode registry (given as the dist folder, to compare) takes its own defaults and `proxy:`.
const settings = await import(`${dist}/server/settings.js`).catch(() => undefined);
const registry = await import(`${dist}/modes/registry.js`).catch(() => undefined);
const emptyServer = parseServerConfig('', 'server.yaml');
const proxySettings =
  settings?.proxyOptionsFrom(emptyServer) ?? (await import(`${dist}/router/proxy.js`)).DEFAULT_PROXY_SETTINGS;
const table = EndpointTable.fromConfig(
  parseEndpointsConfig(
    'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: proxy\n',
    'b',
  ),
);
const MEMBER = {
  transport: 'udp',
  host: '10.0.0.9',
  address: '10.0.0.9',
  port: 5060,
  family: 4,
  id: 'udp:10.0.0.9:5060',
  source: 'static',
};
let toClient = 0;
let lastToMember;
const link = {
  transport: 'udp',
  reliable: false,
  localAddress: '127.0.0.1',
  localPort: 5060,
  send() {
    toClient++;
  },
};
const sender = {
  transport: 'udp',
  reliable: false,
  sentBy: '127.0.0.1:5060',
  connection: undefined,
  send: (d) => {
    lastToMember = d;
  },
};
// OUTBOUND=real: the service's Outbound over one in-memory UDP listener, so the senders it keeps per
// next hop are made and held as in the service (the in-dialog hop cache shows in the numbers).
const { Outbound } = await import(`${dist}/transport/outbound.js`);
const outbound =
  process.env.OUTBOUND === 'real'
    ? new Outbound([{ address: { host: '127.0.0.1', port: 5060, family: 4 }, send: sender.send }], [], {})
    : {
        listenerCount: 1,
        sentByValues: () => ['127.0.0.1:5060'],
        readySender: () => sender,
        sender: () => Promise.resolve(sender),
      };
let virtualMs = 0;
const wheel = new TimerWheel(() => virtualMs);
const T = { t1: 500, t2: 4000, t4: 5000 };
const proxyDeps = {
  clientTxns: new ClientTransactionTable(wheel, T),
  targets: { resolve: () => Promise.resolve([MEMBER]), cached: () => [MEMBER] },
  health: { order: (t) => [...t], markFailed() {}, markSucceeded() {} },
  outbound,
  connections: new ConnectionRegistry(),
  timersT1: T.t1,
  settings: { ...proxySettings, recordRoute: RR },
};
const router = new Router({
  table: () => table,
  logger: pino({ level: 'warn' }, pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 })),
  clock: wheel,
  timers: T,
  maxMessageSize: 65535,
  serverHeader: 'pchat-endpoint',
  ...(registry === undefined ? { proxy: proxyDeps } : { modes: registry.buildModes({ proxy: proxyDeps }) }),
  ...(settings === undefined ? {} : { limits: settings.routerLimitsFrom(emptyServer) }),
  secret: Buffer.from('bench secret bench secret'),
});
const client = { link, address: '127.0.0.1', port: 40000, family: 4 };
const member = { link, address: '10.0.0.9', port: 5060, family: 4 };
const RATE = Number(process.env.RATE ?? 2000);
function call(i) {
  const cid = `bench-${i}`;
  router.onMessage(
    Buffer.from(
      `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-i${i}\r\nMax-Forwards: 70\r\nFrom: <sip:a@contoso.com>;tag=a${i}\r\nTo: <sip:ocschat@contoso.com>\r\nCall-ID: ${cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:40000>\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    ),
    client,
  );
  const fwd = lastToMember.toString('latin1');
  const vias = fwd.match(/^Via: .*$/gm).join('\r\n');
  const rr = /^Record-Route: (.*)\r$/m.exec(fwd)?.[1];
  router.onMessage(
    Buffer.from(
      `SIP/2.0 200 OK\r\n${vias}\r\n${rr ? `Record-Route: ${rr}\r\n` : ''}From: <sip:a@contoso.com>;tag=a${i}\r\nTo: <sip:ocschat@contoso.com>;tag=m${i}\r\nCall-ID: ${cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:m@10.0.0.9:5060>\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    ),
    member,
  );
  // The Route of the request's Record-Route (form 1 when signed, which verifies as form 2 does): the
  // same harness runs against builds without signing.
  const route = rr ? `Route: ${rr}\r\n` : '';
  router.onMessage(
    Buffer.from(
      `ACK sip:m@10.0.0.9:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-a${i}\r\n${route}Max-Forwards: 70\r\nFrom: <sip:a@contoso.com>;tag=a${i}\r\nTo: <sip:ocschat@contoso.com>;tag=m${i}\r\nCall-ID: ${cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    ),
    client,
  );
  router.onMessage(
    Buffer.from(
      `BYE sip:m@10.0.0.9:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-b${i}\r\n${route}Max-Forwards: 70\r\nFrom: <sip:a@contoso.com>;tag=a${i}\r\nTo: <sip:ocschat@contoso.com>;tag=m${i}\r\nCall-ID: ${cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    ),
    client,
  );
  const fb = lastToMember.toString('latin1');
  const bv = fb.match(/^Via: .*$/gm).join('\r\n');
  router.onMessage(
    Buffer.from(
      `SIP/2.0 200 OK\r\n${bv}\r\nFrom: <sip:a@contoso.com>;tag=a${i}\r\nTo: <sip:ocschat@contoso.com>;tag=m${i}\r\nCall-ID: ${cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n`,
      'latin1',
    ),
    member,
  );
}
for (let i = 0; i < 2000; i++) call(-i - 1);
gc();
const h0 = process.memoryUsage().heapUsed;
const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) {
  call(i);
  virtualMs = (i * 1000) / RATE;
  if (i % Math.max(1, RATE / 100) === 0) wheel.advance();
}
const c = process.cpuUsage(c0);
gc();
const h1 = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify({
    rr: RR,
    calls: N,
    usPerCall: +((c.user + c.system) / N).toFixed(2),
    toClient: toClient,
    clientTxns: (router.mode?.('proxy').proxy ?? router.proxy).deps.clientTxns.size,
    serverTxns: router.transactions.size,
    heapGrowthMB: +((h1 - h0) / 1e6).toFixed(1),
    stats: router.stats,
  }),
);
