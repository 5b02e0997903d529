// Mutation fuzzer: runs the built service (dist/) as a child process on loopback and sends it mutated
// SIP messages — the RFC 4475 torture corpus (test/fixtures/rfc4475) and the messages of our
// SIPp scenarios (test/sipp) — as UDP datagrams and as TCP stream chunks split at random offsets,
// for a bounded time and count. Passes when the service never exits, still answers OPTIONS at the
// end, logged no internal error or unhandled rejection, its heap stayed flat, and nothing it sent
// went anywhere but back to the sender or to its pool member (the egress oracle below).
//
//   node bench/fuzz.mjs [--seconds 10] [--max-messages 100000000] [--seed 1] [--quiet]
//   npm run fuzz (--seconds 600); --quiet prints the summary only when the run fails
//
// Every message's top Via is rewritten to the fuzzer's own loopback socket before it is mutated, so
// the answers come back here rather than to the addresses written in the corpus.
//
// Egress oracle: the service runs with bench/lib/egress-observer.mjs preloaded, which reports every
// destination it sends a datagram to or opens a connection to. The service listens on 127.0.0.1, the
// fuzzer sends from 127.0.0.6, and the proxy-mode endpoints' one pool member is a UDP socket of the
// fuzzer on 127.0.0.4. Any destination other than 127.0.0.6 (the sender's host, at any port: RFC 3261
// §18.2.2 sends a UDP response to the source address at the Via's port) or that pool member is a
// violation, the service's own address included (a loop). The sender has a host of its own so that
// an answer to a Via naming the service goes to the sender's host, as it would in a deployment. A
// share of the messages are built to lure the service into relaying: Request-URIs, Routes and Vias
// naming "trap" addresses on 127.0.0.2 and 127.0.0.3 behind a Route naming the service, stray
// responses whose next Via names a trap or the service. Each names its own trap port, so a violation
// is reported with the message that named it; real trap sockets listen on some of those ports too
// and must never receive anything.
import { parseOptions } from './lib/help.mjs'; // first: --help exits before the rest runs
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, waitForSip } from './lib/net.mjs';
import { currentRssKb } from './lib/proc.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const RFC4475 = join(ROOT, 'test/fixtures/rfc4475');
const SIPP = join(ROOT, 'test/sipp');
const OBSERVER = pathToFileURL(join(ROOT, 'bench/lib/egress-observer.mjs')).href;
/** Loopback addresses no message may make the service reach. */
const TRAP_HOSTS = ['127.0.0.2', '127.0.0.3'];
/** Where the fuzzer sends from: the only host answers may go to. */
const FUZZ_HOST = '127.0.0.6';
/** Where the proxy-mode endpoints' pool member listens. */
const POOL_HOST = '127.0.0.4';

const { values: args } = parseOptions({
  seconds: { type: 'string', default: '10' },
  'max-messages': { type: 'string', default: '100000000' },
  seed: { type: 'string', default: '1' },
  quiet: { type: 'boolean', default: false },
});
const SECONDS = Number(args.seconds);
const MAX_MESSAGES = Number(args['max-messages']);
if (!(SECONDS > 0 && SECONDS <= 86_400 && MAX_MESSAGES > 0)) {
  console.error('usage: node bench/fuzz.mjs [--seconds 1..86400] [--max-messages N] [--seed N]');
  process.exit(2);
}

// A small deterministic generator (mulberry32): a run is repeated exactly with the same --seed.
let state = Number(args.seed) >>> 0 || 1;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const int = (n) => Math.floor(random() * n);

// ------------------------------------------------------------------------------------------------
// Corpus

/** Every message a SIPp scenario sends, with its [keywords] filled in plausibly. */
function sippMessages() {
  const out = [];
  for (const f of readdirSync(SIPP).filter((x) => x.endsWith('.xml'))) {
    const xml = readFileSync(join(SIPP, f), 'utf8');
    for (const m of xml.matchAll(/<send[^>]*>\s*<!\[CDATA\[([\s\S]*?)\]\]>/g)) {
      let text = (m[1] ?? '').replace(/^\s*\n/, '').replace(/\n\s*$/, '');
      const values = {
        service: 'ocschat',
        domain: 'contoso.com',
        local_ip: '127.0.0.1',
        remote_ip: '127.0.0.1',
        local_port: '5070',
        remote_port: '5060',
        transport: 'UDP',
        pid: '4242',
        call_number: String(out.length),
        call_id: `fuzz-${out.length}@127.0.0.1`,
        branch: `z9hG4bK-fuzz-${out.length}`,
        next_url: 'sip:ocschat@contoso.com',
        routes: '',
      };
      text = text.replace(
        /\[([a-z_]+)(?:-\d+)?\]/g,
        (all, name) => values[name] ?? (name === 'len' ? all : 'x'),
      );
      text = text.replace(/\[\$[a-z_]+\]/gi, 'x');
      // SIPp scenarios are written with bare LF lines; the wire wants CRLF.
      const [head, ...bodyParts] = text.split(/\n\s*\n/);
      const body = bodyParts.join('\r\n\r\n').replace(/\r?\n\s*/g, '\r\n');
      const lines = head
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '');
      let msg = lines.join('\r\n') + '\r\n\r\n' + body;
      msg = msg.replace('[len]', String(Buffer.byteLength(body, 'latin1')));
      out.push(Buffer.from(msg, 'latin1'));
    }
  }
  return out;
}

function corpus() {
  const messages = [];
  if (existsSync(RFC4475)) {
    for (const f of readdirSync(RFC4475).filter((x) => x.endsWith('.dat')))
      messages.push(readFileSync(join(RFC4475, f)));
  } else console.error(`no RFC 4475 corpus at ${RFC4475}: SIPp messages only`);
  messages.push(...sippMessages());
  return messages;
}

/** Rewrites the sent-by of the first Via line so that any answer comes back to `port` on loopback. */
function withOurVia(buf, port) {
  const text = buf.toString('latin1');
  const re = /^((?:Via|v)[ \t]*:[ \t]*SIP[ \t]*\/[ \t]*2\.0[ \t]*\/[ \t]*)([A-Za-z]+)[ \t]+[^;,\r\n]+/im;
  if (!re.test(text)) return buf;
  return Buffer.from(
    text.replace(re, (_all, pre, transport) => `${pre}${transport} ${FUZZ_HOST}:${port}`),
    'latin1',
  );
}

// ------------------------------------------------------------------------------------------------
// Mutations

const INTERESTING = [
  0x00, 0xff, 0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x3b, 0x2c, 0x3c, 0x3e, 0x22, 0x25, 0x40, 0x5b, 0x5d, 0x3d, 0x30,
  0x39,
];
const TOKENS = [
  '\r\n',
  '\r\n\r\n',
  '\n',
  '\r',
  ':',
  ';',
  '%',
  '%0',
  '<',
  '>',
  '"',
  '\\',
  'Content-Length: 99999\r\n',
  'l: -1\r\n',
  'Via: SIP/2.0/UDP [::1\r\n',
  ' ',
  '\t',
  '\u00ff\u00fe',
  'sip:',
  'tag=',
  ';branch=z9hG4bK',
  '0'.repeat(20),
];

function mutate(input, corpusList) {
  let b = Buffer.from(input);
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : int(b.length);
    switch (int(10)) {
      case 0: // flip a bit
        if (b.length > 0) b[at] ^= 1 << int(8);
        break;
      case 1: // an interesting byte
        if (b.length > 0) b[at] = pick(INTERESTING);
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(32)))]);
        break;
      case 3: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + int(64)), b.subarray(at)]);
        break;
      case 4: // insert a token
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(TOKENS), 'latin1'), b.subarray(at)]);
        break;
      case 5: // truncate
        b = b.subarray(0, at);
        break;
      case 6: {
        // repeat one header line many times (header count limits)
        const text = b.toString('latin1');
        const lines = text.split('\r\n');
        const i = 1 + int(Math.max(1, Math.min(lines.length - 1, 12)));
        const line = lines[i] ?? 'X: y';
        lines.splice(i, 0, ...Array.from({ length: 1 + int(400) }, () => line));
        b = Buffer.from(lines.join('\r\n'), 'latin1');
        break;
      }
      case 7: // a very long line
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.alloc(1 + int(20_000), pick([0x61, 0x20, 0x25, 0x3b])),
          b.subarray(at),
        ]);
        break;
      case 8: {
        // splice with another corpus message
        const other = pick(corpusList);
        const cut = int(other.length + 1);
        b = Buffer.concat([b.subarray(0, at), other.subarray(cut)]);
        break;
      }
      default: // random bytes
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256))),
          b.subarray(at),
        ]);
    }
  }
  // UDP datagrams above 65507 bytes cannot be sent.
  return b.length > 60_000 ? b.subarray(0, 60_000) : b;
}

// ------------------------------------------------------------------------------------------------
// Lures: messages shaped like the abuses of an open relay, each naming a trap host:port of its own

const RELAY_METHODS = ['INVITE', 'MESSAGE', 'ACK', 'OPTIONS', 'BYE', 'CANCEL', 'INFO', 'SUBSCRIBE'];
const STATUSES = [
  '100 Trying',
  '180 Ringing',
  '200 OK',
  '302 Moved Temporarily',
  '486 Busy Here',
  '503 Service Unavailable',
];

/**
 * Builds one lure. `service` is the service's host:port, `via` our sent-by and its transport, `trap`
 * the host and port it names. Returns the message text.
 */
function lure(service, via, trap) {
  const id = `${int(1e9).toString(36)}${int(1e9).toString(36)}`;
  const t = `${trap.host}:${trap.port}`;
  const tcp = pick(['', ';transport=tcp', ';transport=udp', ';transport=TCP']);
  const method = pick(RELAY_METHODS);
  const ourVia = `Via: SIP/2.0/${via.transport} ${via.sentBy};branch=z9hG4bK${id}${pick([';rport', ''])}`;
  const dialog = (m, toTag) => [
    `Max-Forwards: ${pick(['70', '1', '0'])}`,
    `From: <sip:fuzz@127.0.0.1>;tag=f${id}`,
    `To: <sip:victim@${trap.host}>${toTag ? `;tag=t${id}` : ''}`,
    `Call-ID: lure-${id}@127.0.0.1`,
    `CSeq: ${1 + int(5)} ${m}`,
    `Contact: <sip:fuzz@${via.sentBy}>`,
  ];
  const end = (lines) => [...lines, 'Content-Length: 0', '', ''].join('\r\n');
  switch (int(7)) {
    case 0: // out of dialog, first Route naming the service, Request-URI naming the trap
    case 1:
      return end([
        `${method} sip:victim@${t}${tcp} SIP/2.0`,
        ourVia,
        `Route: <sip:${pick([service, `${service};lr`, `${service};transport=udp;lr`])}${pick([';lr', ''])}>`,
        ...dialog(method, random() < 0.3),
      ]);
    case 2: // the Route names the service, then the trap; the Request-URI is a proxy endpoint
      return end([
        `${method} sip:${pick(['proxied', 'ocschat'])}@contoso.com SIP/2.0`,
        ourVia,
        `Route: <sip:${service};lr>, <sip:${t}${tcp};lr>`,
        ...dialog(method, random() < 0.5),
      ]);
    case 3: // a proxy endpoint's request whose only Route names the trap
      return end([
        `${method} sip:proxied@contoso.com SIP/2.0`,
        ourVia,
        `Route: <sip:${t}${tcp};lr>`,
        ...dialog(method, random() < 0.5),
      ]);
    case 4: // in-dialog in appearance (To tag), no Route, Request-URI naming the trap
      return end([`${method} sip:victim@${t}${tcp} SIP/2.0`, ourVia, ...dialog(method, true)]);
    case 5: {
      // a stray response: top Via the service, next Via the trap (as received/rport or sent-by)
      const next = pick([
        `Via: SIP/2.0/UDP ${t};branch=z9hG4bK${id}x`,
        `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK${id}x;received=${trap.host};rport=${trap.port}`,
        `Via: SIP/2.0/TCP ${t};branch=z9hG4bK${id}x`,
      ]);
      const m = pick(RELAY_METHODS);
      return end([
        `SIP/2.0 ${pick(STATUSES)}`,
        `Via: SIP/2.0/${pick(['UDP', 'TCP'])} ${service};branch=z9hG4bK${id}`,
        next,
        ...dialog(m, true).slice(1),
      ]);
    }
    default: {
      // a stray response looping through the service: Vias naming it again, then the trap
      const self = `Via: SIP/2.0/UDP ${service};branch=z9hG4bK${id}`;
      return end([
        `SIP/2.0 ${pick(STATUSES)}`,
        ...Array.from({ length: 2 + int(4) }, (_, i) => `${self}${i};rport`),
        `Via: SIP/2.0/UDP ${t};branch=z9hG4bK${id}t`,
        ...dialog(pick(RELAY_METHODS), true).slice(1),
      ]);
    }
  }
}

/** The proxy-mode endpoints' pool member: answers each request (486 to INVITE, 200 otherwise). */
function poolResponder(sock) {
  sock.on('message', (msg, rinfo) => {
    const text = msg.toString('latin1');
    const first = text.slice(0, text.indexOf('\r\n'));
    if (first.startsWith('SIP/2.0') || /^ACK /.test(first)) return;
    const head = text.split('\r\n\r\n', 1)[0].split('\r\n');
    const keep = head.filter((l) => /^(via|v|from|f|call-id|i|cseq)[ \t]*:/i.test(l));
    const to = head.find((l) => /^(to|t)[ \t]*:/i.test(l));
    if (to === undefined || keep.length < 4) return;
    const status = first.startsWith('INVITE ') ? '486 Busy Here' : '200 OK';
    const reply = [
      `SIP/2.0 ${status}`,
      ...keep,
      /;tag=/i.test(to) ? to : `${to};tag=pool`,
      'Content-Length: 0',
      '',
      '',
    ];
    sock.send(Buffer.from(reply.join('\r\n'), 'latin1'), rinfo.port, rinfo.address);
  });
}

/** Real sockets on the trap hosts (UDP and TCP, one port each): anything that reaches them is a violation. */
async function openTraps(hits) {
  const traps = [];
  for (const host of TRAP_HOSTS) {
    const udp = dgram.createSocket('udp4');
    await new Promise((r) => udp.bind(0, host, r));
    const port = udp.address().port;
    udp.on('message', (m) => hits.push({ kind: 'udp', host, port, first: m.toString('latin1', 0, 200) }));
    udp.on('error', () => undefined);
    const server = net.createServer((c) => {
      const hit = { kind: 'tcp', host, port: server.address().port, first: '' };
      hits.push(hit);
      c.on('data', (d) => (hit.first ||= d.toString('latin1', 0, 200)));
      c.on('error', () => undefined);
      setTimeout(() => c.destroy(), 200).unref();
    });
    await new Promise((r) => server.listen(0, host, r));
    traps.push({ host, udpPort: port, tcpPort: server.address().port, udp, server });
  }
  return traps;
}

async function metrics(adminPort) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const metric = (name) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heapMb: metric('nodejs_heap_size_used_bytes') / 1e6,
    internalErrors: metric('pchat_internal_errors_total'),
    parseErrors: metric('pchat_parse_errors_total'),
    transactions: metric('pchat_transactions_in_flight'),
  };
}

async function main() {
  const port = await freePort(['udp', 'tcp']);
  const adminPort = await freePort(['tcp']);
  const dir = await mkdtemp(join(tmpdir(), 'pchat-fuzz-'));
  await writeFile(
    join(dir, 'server.yaml'),
    `listen:\n  - udp://127.0.0.1:${port}\n  - tcp://127.0.0.1:${port}\nlog:\n  level: error\n  pretty: false\n` +
      `admin:\n  listen: 127.0.0.1:${adminPort}\nshutdown:\n  drainTime: 0\nproxy:\n  probe:\n    enabled: false\n  dns:\n    servers: ["127.0.0.1:9"]\n`,
  );
  // The pool member: a UDP socket of ours, the one place besides the sender the service may send to.
  const pool = dgram.createSocket('udp4');
  await new Promise((r) => pool.bind(0, POOL_HOST, r));
  const poolPort = pool.address().port;
  pool.on('error', () => undefined);
  poolResponder(pool);
  const trapHits = [];
  const traps = await openTraps(trapHits);
  // Redirect and proxy endpoints (one Record-Routing); no lookup dialog, which would send INFO to a
  // Contact in the corpus.
  await writeFile(
    join(dir, 'endpoints.yaml'),
    'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n' +
      '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n' +
      '  - sipAddress: sip:proxied@contoso.com\n    poolFqdn: pool.fuzz.invalid\n    mode: proxy\n' +
      '  - sipAddress: sip:routed@contoso.com\n    poolFqdn: pool.fuzz.invalid\n    mode: proxy\n    recordRoute: true\n' +
      `pools:\n  - fqdn: pool.fuzz.invalid\n    targets:\n      - uri: sip:${POOL_HOST}:${poolPort};transport=udp\n`,
  );
  const child = spawn(process.execPath, ['--import', OBSERVER, CLI, 'serve', '--config-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  // Egress: every distinct destination the observer reports, judged as it arrives.
  const egress = { observed: 0, destinations: 0, violations: [] };
  const lures = new Map();
  // The sender's host, at any port, and the pool member: nothing else, the service itself included.
  const allowed = (kind, host, p) =>
    (host === FUZZ_HOST && p !== 0) || (kind === 'udp' && host === POOL_HOST && p === poolPort);
  child.on('message', (m) => {
    if (!Array.isArray(m?.egress)) return;
    egress.observed = Math.max(egress.observed, m.observed);
    for (const { key, sent } of m.egress) {
      egress.destinations++;
      const [kind, host, p] = key.split(' ');
      if (allowed(kind, host, Number(p))) continue;
      const own =
        Number(p) === port ? 'the service itself' : Number(p) === adminPort ? 'the admin port' : undefined;
      egress.violations.push({
        destination: key,
        ...(own && host === '127.0.0.1' ? { own } : {}),
        namedBy: lures.get(`${host}:${p}`),
        sent,
      });
    }
  });
  let output = '';
  const keep = (c) => (output = (output + c.toString()).slice(-256 * 1024));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  child.once('exit', () => (exited = true));

  const udp = dgram.createSocket('udp4');
  await new Promise((r) => udp.bind(0, FUZZ_HOST, r));
  const ourPort = udp.address().port;
  let answers = 0;
  udp.on('message', () => answers++);
  udp.on('error', () => undefined);

  let exitCode = null;
  const closeAll = async () => {
    udp.close();
    pool.close();
    for (const t of traps) {
      t.udp.close();
      t.server.close();
    }
    if (!exited) {
      // SIGTERM, so the service flushes its log (where an unhandled rejection would show) and exits.
      const done = new Promise((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      exitCode = await done;
      clearTimeout(kill);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForSip('127.0.0.1', port, 15_000, FUZZ_HOST);
  } catch (err) {
    await closeAll();
    console.error(`service output (tail):\n${output.slice(-4000)}`);
    throw err;
  }

  const base = corpus().map((m) => withOurVia(m, ourPort));
  const service = `127.0.0.1:${port}`;
  let trapSeq = 0;
  /** A lure naming its own trap port (a real trap's now and then), remembered to explain a violation. */
  const nextLure = (transport) => {
    const t = traps[trapSeq % traps.length];
    const real = random() < 0.25;
    const trap = {
      host: t.host,
      port: real ? (random() < 0.5 ? t.udpPort : t.tcpPort) : 20_000 + (trapSeq % 40_000),
    };
    trapSeq++;
    const text = lure(service, { transport, sentBy: `${FUZZ_HOST}:${ourPort}` }, trap);
    // A real trap's port is named by many lures: what reached it is in the trap's own record.
    if (!real) {
      lures.delete(`${trap.host}:${trap.port}`);
      lures.set(`${trap.host}:${trap.port}`, text);
      if (lures.size > 5000) lures.delete(lures.keys().next().value);
    }
    const msg = Buffer.from(text, 'latin1');
    // Mostly whole, so the lure keeps its shape; now and then mutated like the rest.
    return random() < 0.2 ? mutate(msg, base) : msg;
  };
  let lured = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let sent = 0;
  let datagrams = 0;
  let chunks = 0;
  let connections = 0;
  const samples = [];
  const tcp = { sock: undefined };

  const openTcp = () => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: FUZZ_HOST });
    sock.on('error', () => undefined);
    sock.on('data', () => answers++);
    sock.once('close', () => {
      if (tcp.sock === sock) tcp.sock = undefined;
    });
    connections++;
    tcp.sock = sock;
    return sock;
  };

  const sampler = setInterval(
    async () => {
      try {
        samples.push({
          s: (performance.now() - t0) / 1000,
          rssMb: currentRssKb([child.pid]) / 1024,
          ...(await metrics(adminPort)),
        });
      } catch {
        // A busy service may miss one scrape; the final check is strict.
      }
    },
    Math.max(500, Math.min(10_000, (SECONDS * 1000) / 30)),
  );

  // Bounded by time and count; yields to the event loop every batch so answers are read and the
  // send queue does not grow without bound.
  // A violation ends the run early: its first example is the counterexample.
  const violated = () => egress.violations.length > 0 || trapHits.length > 0;
  while (performance.now() < end && sent < MAX_MESSAGES && !exited && !violated()) {
    for (let i = 0; i < 200 && sent < MAX_MESSAGES; i++) {
      const overUdp = random() < 0.8;
      const isLure = random() < 0.2;
      const msg = isLure ? nextLure(overUdp ? 'UDP' : 'TCP') : mutate(pick(base), base);
      if (isLure) lured++;
      sent++;
      if (overUdp) {
        datagrams++;
        udp.send(msg, port, '127.0.0.1');
      } else {
        const sock =
          tcp.sock !== undefined && !tcp.sock.destroyed && tcp.sock.writable ? tcp.sock : openTcp();
        // Stream chunks split at random offsets, as a slow or odd peer would write them.
        let from = 0;
        while (from < msg.length) {
          const to = Math.min(msg.length, from + 1 + int(msg.length));
          sock.write(msg.subarray(from, to));
          chunks++;
          from = to;
        }
        // Now and then a connection is abandoned mid-message.
        if (random() < 0.02) sock.destroy();
      }
    }
    await new Promise((r) => setImmediate(r));
    if (udp.getSendQueueCount() > 1000) await new Promise((r) => setTimeout(r, 5));
  }
  clearInterval(sampler);
  tcp.sock?.destroy();

  // Still alive and answering?
  let alive = false;
  if (!exited) {
    alive = await waitForSip('127.0.0.1', port, 10_000, FUZZ_HOST).then(
      () => true,
      () => false,
    );
  }
  const final = exited ? undefined : await metrics(adminPort).catch(() => undefined);
  const crashed = exited;
  // Sends the service makes late (retransmissions, timers) still count: give them a moment.
  await new Promise((r) => setTimeout(r, 500));
  await closeAll();
  const unhandled = /unhandled|UnhandledPromiseRejection/i.test(output);

  const elapsed = (performance.now() - t0) / 1000;
  const quarter = Math.max(1, Math.floor(samples.length / 4));
  const early = samples.slice(0, quarter).map((s) => s.heapMb);
  const late = samples.slice(-quarter).map((s) => s.heapMb);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const heapGrowth = median(late) - median(early);
  // Heap is flat when the late median is within 32 MB of the early one (GC timing alone moves it ~10 MB).
  const flat = samples.length < 4 || !(heapGrowth > 32);
  const internal = final?.internalErrors ?? NaN;
  const ok = !crashed && alive && flat && !unhandled && internal === 0 && exitCode === 0 && !violated();
  const summary = {
    ok,
    seconds: Math.round(elapsed),
    corpus: base.length,
    sent,
    perSecond: Math.round(sent / elapsed),
    datagrams,
    streamChunks: chunks,
    tcpConnections: connections,
    answers,
    serviceExited: crashed,
    exitCodeAfterSigterm: exitCode,
    answeringAtEnd: alive,
    internalErrors: internal,
    unhandledRejections: unhandled,
    parseErrors: final?.parseErrors,
    transactionsHeld: final?.transactions,
    heapMb: {
      early: +median(early).toFixed(1),
      late: +median(late).toFixed(1),
      growth: +heapGrowth.toFixed(1),
      flat,
    },
    rssMb: {
      first: +(samples[0]?.rssMb ?? NaN).toFixed(1),
      last: +(samples.at(-1)?.rssMb ?? NaN).toFixed(1),
    },
    egress: {
      lures: lured,
      sendsObserved: egress.observed,
      destinations: egress.destinations,
      violations: egress.violations.length,
      trapHits: trapHits.length,
      // The first few, each with the lure that named its address (when a lure did).
      examples: egress.violations.slice(0, 3),
      trapExamples: trapHits.slice(0, 3),
    },
  };
  if (!args.quiet || !ok) console.log(JSON.stringify(summary, null, 2));
  if (!ok) console.log(`service output (tail):\n${output.slice(-4000)}`);
  process.exit(ok ? 0 : 1);
}

await main();
