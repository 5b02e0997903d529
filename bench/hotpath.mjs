// In-process micro-benchmark of the redirect hot path (parse → validate → transaction → route →
// serialise), without sockets: CPU time per request of the SIP core alone.
// Usage: npm run build && node bench/hotpath.mjs [requests]
// Each ACK carries the To tag of the 302 it acknowledges, read back from what was sent (the ACK of a
// stateless answer is recognised by that tag): that reading and the ACK's bytes are made inside the
// measured loop, a cost (about half a microsecond) that is the same for every version compared.

import './lib/help.mjs'; // first: --help exits before the rest runs
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';

// dist/ is imported when run, not linked with the static imports: --help answers before a build.
const { Router } = await import('../dist/router/router.js');
const { EndpointTable } = await import('../dist/endpoints/table.js');
const { parseEndpointsConfig, parseServerConfig } = await import('../dist/config/load.js');
const settings = await import('../dist/server/settings.js');
const { TimerWheel } = await import('../dist/base/timer-wheel.js');

const N = Number(process.argv[2] ?? 200_000);
const table = EndpointTable.fromConfig(
  parseEndpointsConfig(
    'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n',
    'bench',
  ),
);
let sent = 0;
// The last response sent: its To tag goes into the ACK, as SIPp's [last_To:] does.
let last = '';
const link = {
  transport: 'udp',
  reliable: false,
  localAddress: '127.0.0.1',
  localPort: 5060,
  send(data) {
    sent++;
    last = data;
  },
};
const source = { link, address: '127.0.0.1', port: 5070, family: 4 };
const level = process.env.LOG_LEVEL ?? 'warn';
// Virtual time at the offered rate, so transactions end as they would under real load (Timer I).
const RATE = Number(process.env.RATE ?? 20_000);
let virtualMs = 0;
const wheel = new TimerWheel(() => virtualMs);
const router = new Router({
  table: () => table,
  logger: pino({ level }, pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 })),
  clock: wheel,
  timers: { t1: 500, t2: 4000, t4: 5000 },
  maxMessageSize: 65535,
  serverHeader: 'pchat-endpoint',
  secret: randomBytes(32),
  limits: settings.routerLimitsFrom(parseServerConfig('', 'server.yaml')),
});

function invite(i) {
  return Buffer.from(
    `INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-${i}\r\nFrom: sipp <sip:sipp@127.0.0.1:5070>;tag=${i}\r\n` +
      `To: <sip:ocschat@contoso.com>\r\nCall-ID: ${i}-bench@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:sipp@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n` +
      `Subject: Performance Test\r\nContent-Type: application/sdp\r\nContent-Length: 129\r\n\r\n` +
      'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain\r\n',
  );
}
function ack(i, tag) {
  return Buffer.from(
    `ACK sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-${i}\r\nFrom: sipp <sip:sipp@127.0.0.1:5070>;tag=${i}\r\n` +
      `To: <sip:ocschat@contoso.com>;tag=${tag}\r\nCall-ID: ${i}-bench@127.0.0.1\r\nCSeq: 1 ACK\r\nContact: <sip:sipp@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n` +
      `Subject: Performance Test\r\nContent-Length: 0\r\n\r\n`,
  );
}
// Each call is INVITE → 302 → ACK, as SIPp's redirect scenario sends it.
const msgs = Array.from({ length: N }, (_, i) => invite(i));
/** The To tag of the last response (the 302), found the way a client would. */
function lastTag() {
  const text = typeof last === 'string' ? last : last.toString('latin1');
  const to = text.indexOf('\r\nTo: ');
  const at = text.indexOf(';tag=', to);
  return text.slice(at + 5, text.indexOf('\r\n', at));
}
function call(i) {
  router.onMessage(msgs[i], source);
  router.onMessage(ack(i, lastTag()), source);
  virtualMs = (i * 1000) / RATE;
  if (i % Math.max(1, RATE / 100) === 0) wheel.advance();
}
for (let i = 0; i < 20_000; i++) call(i); // warm-up
const t0 = process.cpuUsage();
const w0 = performance.now();
for (let i = 20_000; i < N; i++) call(i);
const cpu = process.cpuUsage(t0);
const wall = performance.now() - w0;
const n = N - 20_000;
console.log(
  `${n} calls: ${((cpu.user + cpu.system) / n).toFixed(2)} µs CPU/call (INVITE+ACK), ${((wall * 1000) / n).toFixed(2)} µs wall/call, log level ${level}, ${RATE} calls/s virtual, sent ${sent}, ACKs absorbed ${router.stats.acksAbsorbed}, live transactions ${router.transactions.size}`,
);
msgs.length = 0;
if (globalThis.gc) {
  globalThis.gc();
  const heap = process.memoryUsage().heapUsed;
  console.log(
    `heap after GC: ${(heap / 1048576).toFixed(1)} MiB for ${router.transactions.size} live transactions`,
  );
}
router.transactions.clear();
