// Soak test: runs the built service (dist/) as a child process on loopback and drives mixed traffic at
// a steady rate for a set time — redirect, proxy to two Node pool members, lookup (SIPp legacy client),
// OPTIONS to the service, malformed messages — while endpoints.yaml is rewritten every few seconds
// (live reload) and one pool member is stopped and started again. Reports failed calls (split into
// those the stopped member caused and the rest), RSS and heap over time, and event-loop delay.
//
//   node bench/soak.mjs [--seconds 60] [--rate 40] [--lookup-rate 2] [--reload-every 3]
//     [--member-cycle 30] [--record]
//
// --reload-every: seconds between rewrites of endpoints.yaml; --member-cycle: seconds of one cycle of
// pool member A (up a third of it, stopped a third, started again for the rest).
//
// --record puts the report in place of the soak section of bench/RESULTS.md (bench/lib/standing.mjs).
// Everything stays on 127.0.0.1; every loop is bounded by --seconds; the service, SIPp and every
// socket are closed at the end.
import { parseOptions } from './lib/help.mjs'; // first: --help exits before the rest runs
import { spawn, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForSip } from './lib/net.mjs';
import { currentRssKb, machineBusyMicros, cpuMicros } from './lib/proc.mjs';
import { recordStanding } from './lib/standing.mjs';

// dist/ is imported when run, not linked with the static imports: --help answers before a build.
const { EventLoopDelay } = await import('../dist/admin/event-loop-delay.js');

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const LOOKUP_UAC = join(ROOT, 'test/sipp/lookup-uac.xml');

const { values: args } = parseOptions({
  seconds: { type: 'string', default: '60' },
  rate: { type: 'string', default: '40' },
  'lookup-rate': { type: 'string', default: '2' },
  'reload-every': { type: 'string', default: '3' },
  'member-cycle': { type: 'string', default: '30' },
  record: { type: 'boolean', default: false },
});
const SECONDS = Number(args.seconds);
const RATE = Number(args.rate);
const LOOKUP_RATE = Number(args['lookup-rate']);
const RELOAD_EVERY_S = Number(args['reload-every']);
const MEMBER_CYCLE_S = Number(args['member-cycle']);
if (!(SECONDS > 0 && SECONDS <= 24 * 3600 && RATE > 0 && RATE <= 5000)) {
  console.error(
    'usage: node bench/soak.mjs [--seconds 1..86400] [--rate 1..5000] [--lookup-rate N] [--record]',
  );
  process.exit(2);
}
// A call gets this long for its final response: longer than a failover after Timer B (64 × T1, T1 = 100 ms).
const CALL_TIMEOUT_MS = 15_000;
const T1 = 100;

// ------------------------------------------------------------------------------------------------
// Pool members: a UDP socket answering INVITE 200 (To tag, Contact), OPTIONS 200; ACK and BYE are
// absorbed. Member A is stopped and started on the same port during the run.

function response(req, status, reason, extra = '') {
  const lines = req.split('\r\n');
  const keep = lines.filter((l) => /^(via|v|from|f|call-id|i|cseq):/i.test(l));
  const to = lines.find((l) => /^(to|t):/i.test(l)) ?? 'To: <sip:unknown@invalid>';
  const tagged = /;\s*tag=/i.test(to) ? to : `${to};tag=member`;
  return Buffer.from(
    `SIP/2.0 ${status} ${reason}\r\n${keep.join('\r\n')}\r\n${tagged}\r\n${extra}Content-Length: 0\r\n\r\n`,
    'latin1',
  );
}

// INVITEs each member answered, kept across a member's restarts.
const invitesSeen = {};

async function startMember(port, name) {
  const sock = dgram.createSocket('udp4');
  const member = { name, port, sock, up: true };
  invitesSeen[name] ??= 0;
  sock.on('message', (m, rinfo) => {
    const text = m.toString('latin1');
    const method = /^([A-Z]+) /.exec(text)?.[1];
    if (method === undefined || method === 'ACK') return;
    if (method === 'INVITE') invitesSeen[name]++;
    const reply = response(
      text,
      200,
      'OK',
      method === 'INVITE' ? `Contact: <sip:${name}@127.0.0.1:${port}>\r\n` : '',
    );
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '127.0.0.1', resolve);
  });
  return member;
}

function stopMember(member) {
  member.up = false;
  return new Promise((resolve) => member.sock.close(resolve));
}

// ------------------------------------------------------------------------------------------------
// Configuration

function endpointsYaml(memberA, memberB, generation) {
  // A throwaway endpoint added and removed on alternate reloads, so that every reload changes the table.
  const extra =
    generation % 2 === 1
      ? `  - sipAddress: sip:reload${generation}@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n`
      : '';
  return `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:proxy@contoso.com
    poolFqdn: pool.soak.test
    mode: proxy
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
${extra}pools:
  - fqdn: pool.soak.test
    targets:
      - uri: sip:127.0.0.1:${memberA.port};transport=udp
        q: 1.0
      - uri: sip:127.0.0.1:${memberB.port};transport=udp
        q: 0.5
`;
}

function serverYaml(port, adminPort) {
  return `listen:
  - udp://127.0.0.1:${port}
  - tcp://127.0.0.1:${port}
log:
  level: warn
  pretty: false
sip:
  t1: ${T1}
admin:
  listen: 127.0.0.1:${adminPort}
proxy:
  holdDown: 5000
  probe:
    interval: 500
    timeout: 400
    upThreshold: 1
    downThreshold: 1
`;
}

// ------------------------------------------------------------------------------------------------
// Traffic: one UDP client socket; transactions matched by Call-ID.

const MALFORMED = [
  'INVITE sip:ocschat@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKbad\r\nContent-Length: 0\r\n\r\n',
  'NOT SIP AT ALL\r\n\r\n',
  'OPTIONS  sip:ocschat@contoso.com SIP/2.0\r\n\r\n',
  '\x00\x01\x02\x03garbage',
  'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKstray\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\n\r\n',
];

function request(kind, local, target, n) {
  const callId = `soak-${kind}-${process.pid}-${n}`;
  const branch = `z9hG4bK-soak-${n}`;
  const user = kind === 'redirect' ? 'ocschat' : kind === 'proxy' ? 'proxy' : undefined;
  const method = kind === 'options' ? 'OPTIONS' : 'INVITE';
  const ruri = user === undefined ? `sip:127.0.0.1:${target}` : `sip:${user}@contoso.com`;
  const text = [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=${branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:soak@127.0.0.1>;tag=s${n}`,
    `To: <${ruri}>`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:soak@127.0.0.1:${local}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return { callId, branch, ruri, data: Buffer.from(text, 'latin1') };
}

function ack(call, res, local, n) {
  const to = /^(?:to|t):.*$/im.exec(res)?.[0] ?? `To: <${call.ruri}>`;
  return Buffer.from(
    [
      `ACK ${call.ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=${call.branch}`,
      'Max-Forwards: 70',
      `From: <sip:soak@127.0.0.1>;tag=s${n}`,
      to,
      `Call-ID: ${call.callId}`,
      'CSeq: 1 ACK',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

// ------------------------------------------------------------------------------------------------

async function scrape(adminPort) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const metric = (name) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const sum = (name) => {
    let total = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm')))
      total += Number(m[1]);
    return total;
  };
  return {
    heapUsedMb: metric('nodejs_heap_size_used_bytes') / 1e6,
    lagP99Ms: metric('nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: metric('nodejs_eventloop_lag_max_seconds') * 1000,
    lagMeanMs: metric('nodejs_eventloop_lag_mean_seconds') * 1000,
    reloadsOk: sum('pchat_config_reloads_total\\{result="ok"\\}'),
    transactions: metric('pchat_transactions_in_flight'),
    internalErrors: metric('pchat_internal_errors_total'),
  };
}

function startLookupLoad(port, seconds) {
  if (LOOKUP_RATE <= 0) return undefined;
  try {
    execFileSync('sipp', ['-v'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // SIPp -v exits non-zero on some builds; a missing binary throws ENOENT.
    try {
      execFileSync('which', ['sipp'], { stdio: 'ignore' });
    } catch {
      console.error('sipp not found: lookup traffic skipped');
      return undefined;
    }
  }
  return (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soak-sipp-'));
    const local = await freePort(['udp', 'tcp']);
    const control = await freePort(['udp']);
    const media = await freePort(['udp'], 2);
    const calls = Math.max(1, Math.floor(LOOKUP_RATE * (seconds - 5)));
    const child = spawn(
      'sipp',
      [
        '-sf',
        LOOKUP_UAC,
        '-t',
        'u1',
        '-i',
        '127.0.0.1',
        '-p',
        String(local),
        '-ci',
        '127.0.0.1',
        '-cp',
        String(control),
        '-mp',
        String(media),
        '-s',
        'lookup',
        '-key',
        'domain',
        'contoso.com',
        '-r',
        String(LOOKUP_RATE),
        '-m',
        String(calls),
        '-timeout',
        `${seconds + 60}s`,
        '-timeout_error',
        '-nostdin',
        '-trace_stat',
        '-stf',
        join(dir, 'stat.csv'),
        '-fd',
        '5',
        '-trace_err',
        '-error_file',
        join(dir, 'errors.log'),
        `127.0.0.1:${port}`,
      ],
      { cwd: dir, stdio: 'ignore' },
    );
    const code = await new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), (seconds + 90) * 1000);
      child.once('close', (c) => {
        clearTimeout(kill);
        resolve(c);
      });
    });
    const stat = await readFile(join(dir, 'stat.csv'), 'latin1').catch(() => '');
    const lines = stat.split(/\r?\n/).filter((l) => l.trim() !== '');
    const header = (lines[0] ?? '').split(';');
    const last = (lines[lines.length - 1] ?? '').split(';');
    const col = (name) => Number(last[header.indexOf(name)] ?? NaN);
    const errors = (await readFile(join(dir, 'errors.log'), 'latin1').catch(() => '')).slice(0, 2000);
    await rm(dir, { recursive: true, force: true });
    return { code, calls, successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)'), errors };
  })();
}

async function main() {
  const port = await freePort(['udp', 'tcp']);
  const adminPort = await freePort(['tcp']);
  const memberA = await startMember(await freePort(['udp']), 'memberA');
  const memberB = await startMember(await freePort(['udp']), 'memberB');
  const dir = await mkdtemp(join(tmpdir(), 'pchat-soak-'));
  let generation = 0;
  await writeFile(join(dir, 'server.yaml'), serverYaml(port, adminPort));
  await writeFile(join(dir, 'endpoints.yaml'), endpointsYaml(memberA, memberB, generation));

  const loadBefore = loadavg();
  const busy0 = machineBusyMicros();
  const child = spawn(process.execPath, [CLI, 'serve', '--config-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let serverLog = '';
  const keepTail = (chunk) => {
    serverLog = (serverLog + chunk.toString()).slice(-64 * 1024);
  };
  child.stdout.on('data', keepTail);
  child.stderr.on('data', keepTail);
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitForSip('127.0.0.1', port);
  const cpu0 = cpuMicros([child.pid]);

  // Our own event loop too: a stalled generator would make the service look slow.
  // How late a 10 ms timer fires, as the service's own figure is measured (not perf_hooks'
  // monitorEventLoopDelay, which counts the period too).
  const ownDelay = new EventLoopDelay(10).start();

  const client = dgram.createSocket('udp4');
  await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve));
  const local = client.address().port;
  const pending = new Map();
  const counts = {};
  const count = (kind, what) => {
    counts[kind] ??= { sent: 0, ok: 0, failed: 0, failedMemberDown: 0, statuses: {} };
    counts[kind][what]++;
  };
  // Times when member A went down; a proxy call that started in [down - timeout, up + holdDown]
  // may fail because of it (it was sent to A before the probes saw A go).
  const memberWindows = [];
  const duringMemberOutage = (t) =>
    memberWindows.some((w) => t >= w.down - CALL_TIMEOUT_MS && t <= (w.up ?? Infinity) + 5000);
  client.on('message', (m) => {
    const text = m.toString('latin1');
    const callId = /^(?:call-id|i)[ \t]*:[ \t]*(\S+)/im.exec(text)?.[1];
    const status = Number(/^SIP\/2\.0 (\d{3})/.exec(text)?.[1]);
    const call = callId === undefined ? undefined : pending.get(callId);
    if (call === undefined || !(status >= 200)) return;
    pending.delete(callId);
    clearTimeout(call.timer);
    if (call.method === 'INVITE') client.send(ack(call, text, local, call.n), port, '127.0.0.1');
    counts[call.kind].statuses[status] = (counts[call.kind].statuses[status] ?? 0) + 1;
    if (status === call.expect) count(call.kind, 'ok');
    else fail(call, `status ${status}`);
  });
  const failures = [];
  const fail = (call, why) => {
    if (call.kind === 'proxy' && duringMemberOutage(call.started)) count(call.kind, 'failedMemberDown');
    else {
      count(call.kind, 'failed');
      if (failures.length < 20) failures.push(`${call.kind} ${call.callId}: ${why}`);
    }
  };

  const lookup = startLookupLoad(port, SECONDS);
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  const samples = [];
  let n = 0;
  const kinds = ['redirect', 'proxy', 'redirect', 'options', 'proxy', 'malformed'];
  const expect = { redirect: 302, proxy: 200, options: 200 };

  // Steady rate: each tick sends what the schedule says is due, so a slow tick does not lower the rate.
  const sender = setInterval(() => {
    const now = performance.now();
    const due = Math.min(end, now) - t0;
    while (n < Math.floor((due / 1000) * RATE)) {
      const kind = kinds[n % kinds.length];
      n++;
      count(kind, 'sent');
      if (kind === 'malformed') {
        client.send(Buffer.from(MALFORMED[n % MALFORMED.length], 'latin1'), port, '127.0.0.1');
        count(kind, 'ok');
        continue;
      }
      const r = request(kind, local, port, n);
      const call = {
        ...r,
        kind,
        n,
        method: kind === 'options' ? 'OPTIONS' : 'INVITE',
        expect: expect[kind],
        started: now,
      };
      call.timer = setTimeout(() => {
        pending.delete(call.callId);
        fail(call, 'no final response');
      }, CALL_TIMEOUT_MS);
      pending.set(call.callId, call);
      client.send(r.data, port, '127.0.0.1');
    }
  }, 20);

  const reloader = setInterval(() => {
    generation++;
    void writeFile(join(dir, 'endpoints.yaml'), endpointsYaml(memberA, memberB, generation));
  }, RELOAD_EVERY_S * 1000);

  // Member A: down for a third of each cycle, starting a third of the way in.
  let memberTimer;
  const cycle = async () => {
    if (performance.now() > end - MEMBER_CYCLE_S * 1000) return;
    memberTimer = setTimeout(
      async () => {
        memberWindows.push({ down: performance.now() });
        await stopMember(memberA);
        memberTimer = setTimeout(
          async () => {
            const fresh = await startMember(memberA.port, 'memberA');
            Object.assign(memberA, fresh);
            memberWindows[memberWindows.length - 1].up = performance.now();
            memberTimer = setTimeout(cycle, (MEMBER_CYCLE_S * 1000) / 3);
          },
          (MEMBER_CYCLE_S * 1000) / 3,
        );
      },
      (MEMBER_CYCLE_S * 1000) / 3,
    );
  };
  void cycle();

  const sampleEvery = Math.max(1000, Math.min(30_000, (SECONDS * 1000) / 40));
  const sampler = setInterval(async () => {
    try {
      const m = await scrape(adminPort);
      samples.push({
        s: Math.round((performance.now() - t0) / 1000),
        rssMb: currentRssKb([child.pid]) / 1024,
        ...m,
      });
    } catch (err) {
      console.error(`metrics scrape failed: ${err.message}`);
    }
  }, sampleEvery);

  while (performance.now() < end && !exited) await new Promise((r) => setTimeout(r, 200));
  clearInterval(sender);
  clearInterval(reloader);
  clearTimeout(memberTimer);
  clearInterval(sampler);
  // Let the calls in progress finish (bounded by their own timeouts).
  const waitEnd = performance.now() + CALL_TIMEOUT_MS + 1000;
  while (pending.size > 0 && performance.now() < waitEnd) await new Promise((r) => setTimeout(r, 100));
  const lookupResult = lookup === undefined ? undefined : await lookup;
  const final = await scrape(adminPort).catch(() => undefined);
  const cpu = cpuMicros([child.pid]) - cpu0;
  const otherBusy = machineBusyMicros() - busy0 - cpu;
  const crashed = exited;
  child.kill('SIGTERM');
  const exitCode = await new Promise((resolve) => {
    if (exited) resolve(child.exitCode);
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve(code);
    });
  });
  client.close();
  if (memberA.up) await stopMember(memberA);
  await stopMember(memberB);
  const ownLag = ownDelay.read();
  ownDelay.stop();
  await rm(dir, { recursive: true, force: true });

  const elapsed = (performance.now() - t0) / 1000;
  const report = {
    seconds: SECONDS,
    rate: RATE,
    lookupRate: LOOKUP_RATE,
    counts,
    failures,
    lookup: lookupResult,
    reloads: final?.reloadsOk,
    memberOutages: memberWindows.length,
    invitesToMembers: { A: invitesSeen.memberA, B: invitesSeen.memberB },
    crashed,
    exitCode,
    internalErrors: final?.internalErrors,
    cpuPercent: (cpu / (elapsed * 1e6)) * 100,
    otherCpuPercent: (otherBusy / (elapsed * 1e6 * cpus().length)) * 100,
    loadBefore,
    samples,
    soakClientLagP99Ms: ownLag.p99 * 1000,
  };
  const text = markdown(report);
  console.log(text);
  if (crashed) console.log(`service exited during the run; last output:\n${serverLog}`);
  if (args.record) console.log(`standing written to ${await recordStanding('soak', text)}`);
  const otherFailures = Object.values(counts).reduce((a, c) => a + c.failed, 0) + (lookupResult?.failed || 0);
  process.exit(crashed || otherFailures > 0 ? 1 : 0);
}

function markdown(r) {
  const first = r.samples[0];
  const last = r.samples[r.samples.length - 1];
  const max = (k) => Math.max(...r.samples.map((s) => s[k]).filter(Number.isFinite));
  const mid = r.samples[Math.floor(r.samples.length / 2)];
  const rows = Object.entries(r.counts).map(
    ([kind, c]) =>
      `| ${kind} | ${c.sent} | ${c.ok} | ${c.failed} | ${c.failedMemberDown} | ${Object.entries(c.statuses)
        .map(([s, k]) => `${s}×${k}`)
        .join(' ')} |`,
  );
  let version;
  try {
    version = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    version = 'unknown';
  }
  const lk = r.lookup;
  return `## Soak: mixed traffic, live reloads, a pool member stopped and started (run of ${new Date().toISOString()})

- Machine: \`${execFileSync('uname', ['-a'], { encoding: 'utf8' }).trim()}\`
- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores (the soak driver, SIPp, the pool members and the service share them); load average before the run: ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')}; other CPU during the run: ${r.otherCpuPercent.toFixed(0)}% of all cores
- Versions: node ${process.version}; pchat-endpoint at ${version}
- Load: \`node bench/soak.mjs --seconds ${r.seconds} --rate ${r.rate} --lookup-rate ${r.lookupRate}\`: ${r.rate} requests/s over UDP from one Node client, in turn INVITE to a redirect endpoint (302 + ACK), INVITE to a proxy endpoint (two Node pool members, 200 + ACK), OPTIONS to the service (200), a malformed or stray message (no answer expected); SIPp \`lookup-uac.xml\` at ${r.lookupRate} calls/s (INVITE/200/ACK/INFO cmd:requri/INFO rpl:requri/BYE); endpoints.yaml rewritten every ${RELOAD_EVERY_S} s (a watched reload, an endpoint added or removed each time: ${r.reloads} reloads applied); pool member A stopped for ${MEMBER_CYCLE_S / 3} s out of every ${MEMBER_CYCLE_S} s (${r.memberOutages} outages), probes every 500 ms, T1 ${T1} ms.
- Service: ${r.crashed ? '**exited during the run**' : 'ran throughout'}; internal errors ${r.internalErrors}; exit code after SIGTERM ${r.exitCode}; CPU ${r.cpuPercent.toFixed(0)}% of one core.

| traffic | sent | answered as expected | failed | failed while member A was down (before failover) | final statuses |
|---|---|---|---|---|---|
${rows.join('\n')}
| lookup (SIPp) | ${lk?.calls ?? 'skipped'} | ${lk?.successful ?? '-'} | ${lk?.failed ?? '-'} | - | SIPp exit ${lk?.code ?? '-'} |

INVITEs seen by the pool members: A ${r.invitesToMembers.A}, B ${r.invitesToMembers.B}.${r.failures.length > 0 ? `\nFirst failures: ${r.failures.join('; ')}` : ''}${lk?.errors ? `\nSIPp errors: ${lk.errors.split('\n').slice(0, 3).join(' / ')}` : ''}

Memory and event loop (service process; heap and event-loop delay from its /metrics: how late a 100 ms timer fired, over each window between two samples): RSS ${first?.rssMb.toFixed(1)} MB at the first sample, ${mid?.rssMb.toFixed(1)} mid-run, ${last?.rssMb.toFixed(1)} at the end (max ${max('rssMb').toFixed(1)}); heap used ${first?.heapUsedMb.toFixed(1)} → ${mid?.heapUsedMb.toFixed(1)} → ${last?.heapUsedMb.toFixed(1)} MB (max ${max('heapUsedMb').toFixed(1)}); event-loop delay p99 max ${max('lagP99Ms').toFixed(1)} ms, worst single delay ${max('lagMaxMs').toFixed(1)} ms. The soak client's own event-loop p99: ${r.soakClientLagP99Ms.toFixed(1)} ms.

Samples (s: RSS MB / heap MB / loop p99 ms / transactions held): ${r.samples
    .map(
      (s) =>
        `${s.s}: ${s.rssMb.toFixed(0)}/${s.heapUsedMb.toFixed(0)}/${s.lagP99Ms.toFixed(1)}/${s.transactions}`,
    )
    .join(', ')}
`;
}

await main();
