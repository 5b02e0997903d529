// Mutation fuzzer: runs the built service (dist/) as a child process on loopback and sends it mutated
// SIP messages — the RFC 4475 torture corpus (../shared/fixtures/rfc4475) and the messages of our
// SIPp scenarios (test/sipp) — as UDP datagrams and as TCP stream chunks split at random offsets,
// for a bounded time and count. Passes when the service never exits, still answers OPTIONS at the
// end, logged no internal error or unhandled rejection, and its heap stayed flat.
//
//   node bench/fuzz.mjs [--seconds 600] [--max-messages 100000000] [--seed 1]     (npm run fuzz)
//
// Every message's top Via is rewritten to the fuzzer's own loopback socket before it is mutated, so
// the answers come back here rather than to the addresses written in the corpus. The service runs with
// redirect endpoints only: nothing it does sends anything anywhere but back to 127.0.0.1.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, waitForSip } from './lib/net.mjs';
import { currentRssKb } from './lib/proc.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const RFC4475 = join(ROOT, '../shared/fixtures/rfc4475');
const SIPP = join(ROOT, 'test/sipp');

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    'max-messages': { type: 'string', default: '100000000' },
    seed: { type: 'string', default: '1' },
    quiet: { type: 'boolean', default: false },
  },
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
    text.replace(re, (_all, pre, transport) => `${pre}${transport} 127.0.0.1:${port}`),
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
  // Redirect only: no pool to reach, no lookup dialog that would send INFO to a Contact in the corpus.
  await writeFile(
    join(dir, 'endpoints.yaml'),
    'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n' +
      '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n',
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (c) => (output = (output + c.toString()).slice(-256 * 1024));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  child.once('exit', () => (exited = true));

  const udp = dgram.createSocket('udp4');
  await new Promise((r) => udp.bind(0, '127.0.0.1', r));
  const ourPort = udp.address().port;
  let answers = 0;
  udp.on('message', () => answers++);
  udp.on('error', () => undefined);

  let exitCode = null;
  const closeAll = async () => {
    udp.close();
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
    await waitForSip('127.0.0.1', port);
  } catch (err) {
    await closeAll();
    throw err;
  }

  const base = corpus().map((m) => withOurVia(m, ourPort));
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let sent = 0;
  let datagrams = 0;
  let chunks = 0;
  let connections = 0;
  const samples = [];
  const tcp = { sock: undefined };

  const openTcp = () => {
    const sock = net.connect(port, '127.0.0.1');
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
  while (performance.now() < end && sent < MAX_MESSAGES && !exited) {
    for (let i = 0; i < 200 && sent < MAX_MESSAGES; i++) {
      const msg = mutate(pick(base), base);
      sent++;
      if (random() < 0.8) {
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
    alive = await waitForSip('127.0.0.1', port, 10_000).then(
      () => true,
      () => false,
    );
  }
  const final = exited ? undefined : await metrics(adminPort).catch(() => undefined);
  const crashed = exited;
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
  const ok = !crashed && alive && flat && !unhandled && internal === 0 && exitCode === 0;
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
  };
  if (!args.quiet || !ok) console.log(JSON.stringify(summary, null, 2));
  if (!ok) console.log(`service output (tail):\n${output.slice(-4000)}`);
  process.exit(ok ? 0 : 1);
}

await main();
