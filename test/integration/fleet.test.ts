// A fleet behind the Kamailio front of docs/deploy/kamailio (real Kamailio from Debian, real `serve`
// processes from dist/ — `npm run build` first —, real SIPp, loopback only): three instances on
// 127.0.0.2, .3 and .4 share the load; one killed or stopped loses no call, because Kamailio fails
// the request over and its probes take the instance out and put it back; the front answers its own
// keep-alives. Three more instances watching one shared folder (so one server.yaml: 127.0.0.1, a port
// each) all take an edit made with the CLI, and all keep the last good table when an edit is
// refused; `status` over them agrees.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  msgOf,
  serveFolder,
  startServe,
  type LogLine,
  type ServeProcess,
} from '../helpers/serve-process.js';
import { freePort, requireSipp, runSipp, type SippResult } from '../helpers/sipp.js';
import { startSippServer, type SippServer } from '../helpers/sipp-server.js';

const KAMAILIO_DIR = resolve(import.meta.dirname, '../../docs/deploy/kamailio');
const KAMAILIO_CFG = join(KAMAILIO_DIR, 'kamailio.cfg');

/** Fails, saying how to get it, where Kamailio 5 or kamcmd is missing (`npm test` installs them). */
function requireKamailio(): void {
  const probe = spawnSync('kamailio', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const kamcmd = spawnSync('kamcmd', ['-V'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error === undefined && /kamailio 5\./.test(probe.stdout) && kamcmd.error === undefined) return;
  throw new Error(
    `Kamailio 5 and kamcmd not found (${(probe.error ?? kamcmd.error)?.message ?? probe.stdout.trim()}): ` +
      "install Debian's kamailio package (npm test does, from test/system-packages.txt)",
  );
}

const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
/** Probing as the front's test run uses it: one OPTIONS a second, out after 2 failures, back after 2 answers. */
const PING_INTERVAL_S = 1;
const PROBE_THRESHOLD = 2;
/** ms an instance may stay silent before the front tries the next one. */
const FR_TIMER_MS = 1000;

/**
 * The table every instance serves: a redirect, a lookup and two proxy endpoints, one to \`poolPort\`
 * (a SIPp pool member that takes the call), one to \`slowPort\` (one that turns it down after 1 s).
 */
const endpointsYaml = (poolPort: number, slowPort: number): string => `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: proxpool.contoso.com
    mode: proxy
    # A SIPp pool member answers the in-dialog requests to the address the INVITE came from: with the
    # instance on the path, that is where the front sends them too.
    recordRoute: true
  - sipAddress: sip:slow@contoso.com
    poolFqdn: slowpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:pcpool.contoso.com:5061;transport=tls
  - fqdn: proxpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${poolPort};transport=udp
  - fqdn: slowpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${slowPort};transport=udp
`;

/** server.yaml of one instance: SIP on `listen`, the admin port picked by the system, JSON logs. */
const serverYaml = (listen: string): string =>
  `listen:\n  - ${listen}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n` +
  // SIPp pool members take only the calls of their scenario: no OPTIONS probes.
  `proxy:\n  probe:\n    enabled: false\n` +
  `shutdown:\n  drainTime: 3000\n`;

const REDIRECT = { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' };
const LOOKUP = { service: 'lookup', domain: 'contoso.com' };
const PROXY = { service: 'proxied', domain: 'contoso.com' };
const SLOW = { service: 'slow', domain: 'contoso.com' };

interface Front {
  readonly port: number;
  readonly logFile: string;
  /** Each instance's URI as in dispatcher.list, to its flags (A active, I inactive, P probing...). */
  state(): Map<string, string>;
  /** Polls state() until `uri`'s flags satisfy `ok`; the time it took, ms; throws after `timeoutMs`. */
  waitFor(uri: string, ok: (flags: string) => boolean, timeoutMs: number): Promise<number>;
  log(): string;
  stop(): Promise<void>;
}

/** dispatcher.list of docs/deploy/kamailio with its three example instances replaced by `targets`. */
function dispatcherList(targets: ReadonlyArray<{ host: string; port: number }>): string {
  const text = readFileSync(join(KAMAILIO_DIR, 'dispatcher.list'), 'utf8');
  const lines = text.split('\n').filter((l) => l.startsWith('1 sip:'));
  expect(lines).toHaveLength(3);
  return (
    text
      .split('\n')
      .filter((l) => !l.startsWith('1 sip:'))
      .join('\n')
      .trimEnd() +
    '\n' +
    targets.map((t, i) => lines[i]!.replace(/sip:[\d.]+:\d+/, `sip:${t.host}:${t.port}`)).join('\n') +
    '\n'
  );
}

const uriOf = (t: { host: string; port: number }): string => `sip:${t.host}:${t.port};transport=udp`;

/**
 * Kamailio with docs/deploy/kamailio/kamailio.cfg as it is, its settings given with -A on the command
 * line (the way the file says an operator can): loopback addresses, a free port, a control socket
 * and runtime folder of its own, probing once a second. Resolves once every instance is active.
 */
async function startFront(targets: ReadonlyArray<{ host: string; port: number }>): Promise<Front> {
  const dir = await mkdtemp(join(tmpdir(), 'pchat-front-'));
  const run = join(dir, 'run');
  await mkdir(run);
  await writeFile(join(dir, 'dispatcher.list'), dispatcherList(targets));
  const port = await freePort(['udp', 'tcp']);
  const ctl = `unix:${join(dir, 'ctl')}`;
  const logFile = join(dir, 'kamailio.log');
  const fd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(
    'kamailio',
    [
      '-f',
      KAMAILIO_CFG,
      // -DD: no daemon, children stay attached (killed with it); -E: log to stderr (the file).
      '-DD',
      '-E',
      '-Y',
      run,
      '-P',
      join(run, 'kamailio.pid'),
      '-m',
      '64',
      '-M',
      '8',
      '-A',
      'FRONT_ADDR=127.0.0.1',
      '-A',
      `FRONT_PORT=${port}`,
      '-A',
      `DISPATCHER_LIST="${join(dir, 'dispatcher.list')}"`,
      '-A',
      `CTL_SOCKET="${ctl}"`,
      '-A',
      `PING_INTERVAL=${PING_INTERVAL_S}`,
      '-A',
      `PROBE_DOWN=${PROBE_THRESHOLD}`,
      '-A',
      `PROBE_UP=${PROBE_THRESHOLD}`,
      '-A',
      `FR_TIMER=${FR_TIMER_MS}`,
      // One SIP worker: an instance's 200 and its next request reach SIPp in the order sent (the
      // lookup scenario expects the 200 to its INFO before the service's rpl:requri INFO).
      '-A',
      'CHILDREN=1',
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  // As for `serve` (test/helpers/serve-process.ts): a shell blocked reading a pipe from us stops
  // Kamailio (its main process takes its children with it) if vitest ends this worker with a signal
  // no listener sees.
  const watchdog = spawn('sh', ['-c', 'read _line; kill -TERM "$0" 2>/dev/null', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.stdin?.on('error', () => undefined);
  child.once('exit', () => watchdog.kill('SIGKILL'));
  const log = (): string => readFileSync(logFile, 'utf8');
  const state = (): Map<string, string> => {
    const r = spawnSync('kamcmd', ['-s', ctl, 'dispatcher.list'], { encoding: 'utf8', timeout: 5000 });
    const flags = new Map<string, string>();
    let uri: string | undefined;
    for (const line of (r.stdout ?? '').split('\n')) {
      const u = /^\s*URI: (\S+)/.exec(line);
      if (u) uri = u[1];
      const f = /^\s*FLAGS: (\S+)/.exec(line);
      if (f && uri !== undefined) flags.set(uri, f[1]!);
    }
    return flags;
  };
  const front: Front = {
    port,
    logFile,
    state,
    log,
    async waitFor(uri, ok, timeoutMs) {
      const start = Date.now();
      let last: string | undefined;
      while (Date.now() - start < timeoutMs) {
        last = state().get(uri);
        if (last !== undefined && ok(last)) return Date.now() - start;
        await sleep(100);
      }
      throw new Error(`${uri}: flags ${last} after ${timeoutMs} ms\n${log().slice(-1500)}`);
    },
    async stop() {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const t of targets) await front.waitFor(uriOf(t), (f) => f.startsWith('A'), 10_000);
  } catch (err) {
    await front.stop();
    throw err;
  }
  return front;
}

/** INVITE decision lines of one mode an instance logged. */
const invites = (s: ServeProcess, mode?: string): LogLine[] =>
  s.decisions().filter((l) => l['method'] === 'INVITE' && (mode === undefined || l['mode'] === mode));

/** Waits until the instances' logs hold `total` INVITE decisions of `mode` between them (logs flush within 1 s). */
async function settled(instances: readonly ServeProcess[], mode: string, total: number): Promise<number[]> {
  const deadline = Date.now() + 4000;
  const counts = (): number[] => instances.map((s) => invites(s, mode).length);
  while (counts().reduce((a, b) => a + b, 0) < total && Date.now() < deadline) await sleep(100);
  return counts();
}

function explain(r: SippResult): string {
  return `${JSON.stringify(r.stats?.failures ?? {})}\n${r.errors.slice(-1500)}\n${r.stdout.slice(-600)}`;
}

/** GET /endpoints of an instance: the SIP addresses of its table and the digest of the file it came from. */
async function tableOf(s: ServeProcess): Promise<{ addresses: string[]; sha256: string }> {
  const body = (await (await fetch(`http://127.0.0.1:${s.adminPort()}/endpoints`)).json()) as {
    endpoints: Array<{ sipAddress: string }>;
    config: { sha256: string };
  };
  return { addresses: body.endpoints.map((e) => e.sipAddress), sha256: body.config.sha256 };
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

const runnable = existsSync(CLI);

describe.skipIf(!runnable)(
  'a fleet of three instances behind the Kamailio front of docs/deploy/kamailio (SIPp, loopback)',
  () => {
    let sipPort = 0;
    let endpoints = '';
    let pool: SippServer | undefined;
    let slowPool: SippServer | undefined;
    let front: Front | undefined;
    const instances: ServeProcess[] = [];
    const stopped: ServeProcess[] = [];

    /** A `serve` on `host`:sipPort with its own folder, its listener and admin port up. */
    async function instance(host: string): Promise<ServeProcess> {
      const s = await startServe(serverYaml(`udp://${host}:${sipPort}`), endpoints);
      stopped.push(s);
      await s.waitForLine((l) => msgOf(l).startsWith('admin port on'), 10_000);
      return s;
    }

    beforeAll(async () => {
      requireSipp();
      requireKamailio();
      // The proxy endpoint's pool member: a SIPp UAS taking every proxied call of the file.
      pool = await startSippServer({ scenario: 'pool-uas', transport: 'udp', calls: 150, timeoutMs: 80_000 });
      slowPool = await startSippServer({
        scenario: 'pool-slow-busy-uas',
        transport: 'udp',
        calls: 40,
        timeoutMs: 80_000,
      });
      endpoints = endpointsYaml(pool.port, slowPool.port);
      // One port free on every address: the three instances listen on the same port, as on three hosts.
      sipPort = await freePort(['udp']);
      for (const h of HOSTS) instances.push(await instance(h));
      front = await startFront(HOSTS.map((host) => ({ host, port: sipPort })));
    }, 30_000);

    afterAll(async () => {
      await front?.stop();
      for (const s of stopped) await s.stop();
      pool?.stop();
      slowPool?.stop();
    });

    const target = (): { host: string; port: number } => ({ host: '127.0.0.1', port: front!.port });

    it('spreads redirect, lookup and proxy calls over the three instances, each taking at least a fifth', async () => {
      const runs: Array<{
        mode: string;
        scenario: string;
        vars: Record<string, string>;
        calls: number;
        rate: number;
      }> = [
        { mode: 'redirect', scenario: 'redirect-uac', vars: REDIRECT, calls: 300, rate: 200 },
        { mode: 'lookup', scenario: 'lookup-uac', vars: LOOKUP, calls: 150, rate: 100 },
        { mode: 'proxy', scenario: 'proxy-uac', vars: PROXY, calls: 150, rate: 100 },
      ];
      const results = await Promise.all(
        runs.map((r) =>
          runSipp({
            scenario: r.scenario,
            target: target(),
            transport: 'udp',
            calls: r.calls,
            rate: r.rate,
            vars: r.vars,
            timeoutMs: 20_000,
          }),
        ),
      );
      for (const [i, r] of results.entries()) {
        expect(r.failed, `${runs[i]!.mode}: ${explain(r)}`).toBe(0);
        expect(r.successful).toBe(runs[i]!.calls);
      }
      for (const r of runs) {
        const counts = await settled(instances, r.mode, r.calls);
        // Each call's INVITE reached exactly one instance (no retransmission relayed twice)...
        expect(
          counts.reduce((a, b) => a + b, 0),
          `${r.mode}: ${counts.join(' ')}`,
        ).toBe(r.calls);
        // ...and the Call-ID hash spread them.
        for (const c of counts)
          expect(c, `${r.mode}: ${counts.join(' ')}`).toBeGreaterThanOrEqual(r.calls / 5);
      }
      // Lookup dialogs stayed on their instance: every INFO and BYE of a lookup call reached the
      // instance its INVITE reached (the front's Record-Route, then the instance's Contact).
      const lookupCalls = new Set(instances.flatMap((s) => invites(s, 'lookup').map((l) => l['callId'])));
      let checked = 0;
      for (const s of instances) {
        const mine = new Set(invites(s, 'lookup').map((l) => l['callId']));
        const strays: unknown[] = [];
        for (const other of instances) {
          if (other === s) continue;
          for (const l of other.lines)
            if (msgOf(l) === 'decision' && l['method'] !== 'INVITE' && mine.has(l['callId'])) strays.push(l);
        }
        expect(strays).toEqual([]);
        checked += s.lines.filter(
          (l) => msgOf(l) === 'decision' && l['method'] === 'BYE' && mine.has(l['callId']),
        ).length;
      }
      // Each lookup call's BYE was logged by its own instance.
      expect(checked).toBe(lookupCalls.size);
    }, 40_000);

    it('the front answers keep-alive OPTIONS addressed to itself, without passing them on', async () => {
      const r = await runSipp({
        scenario: 'options-uac',
        target: target(),
        transport: 'udp',
        calls: 20,
        rate: 50,
        timeoutMs: 10_000,
      });
      expect(r.failed, explain(r)).toBe(0);
      expect(r.successful).toBe(20);
      // Instances log every OPTIONS they answer (the front's probes among them): none was this one.
      await sleep(1200);
      const ruri = `sip:127.0.0.1:${front!.port}`;
      for (const s of instances)
        expect(s.decisions().filter((l) => l['method'] === 'OPTIONS' && l['ruri'] === ruri)).toEqual([]);
      // The probes themselves did reach every instance, so the check above could have seen one.
      for (const s of instances) expect(s.decisions().some((l) => l['method'] === 'OPTIONS')).toBe(true);
    });

    it('SIGKILL of one instance at 200 calls/s: no call fails, the front marks it down within the probing thresholds, and up again once it is back', async () => {
      const victim = instances[1]!;
      const uri = uriOf({ host: HOSTS[1], port: sipPort });
      const run = runSipp({
        scenario: 'redirect-uac',
        target: target(),
        transport: 'udp',
        calls: 1200,
        rate: 200,
        vars: REDIRECT,
        timeoutMs: 30_000,
      });
      await sleep(2000);
      const before = invites(victim, 'redirect').length;
      victim.child.kill('SIGKILL');
      await victim.exit;
      // Down by the first request it leaves unanswered (FR_TIMER) or by PROBE_THRESHOLD failed probes.
      const downAfter = await front!.waitFor(uri, (f) => f.startsWith('I'), 5000);
      expect(downAfter).toBeLessThanOrEqual(
        PING_INTERVAL_S * 1000 * (PROBE_THRESHOLD + 1) + FR_TIMER_MS + 500,
      );
      const r = await run;
      expect(r.failed, explain(r)).toBe(0);
      expect(r.successful).toBe(1200);
      // It did take calls before it was killed, and the front logged the failover of its share.
      expect(before).toBeGreaterThan(0);
      expect(front!.log()).toMatch(new RegExp(`${uri.replace(/[.;]/g, '\\$&')} did not answer INVITE`));
      expect(front!.log()).toContain(`instance down ${uri}`);

      // Restarted on the same address: up after PROBE_THRESHOLD answered probes, and hashed calls again.
      const back = await instance(HOSTS[1]);
      instances[1] = back;
      const upAfter = await front!.waitFor(uri, (f) => f.startsWith('A'), 6000);
      expect(upAfter).toBeLessThanOrEqual(PING_INTERVAL_S * 1000 * (PROBE_THRESHOLD + 2));
      const again = await runSipp({
        scenario: 'redirect-uac',
        target: target(),
        transport: 'udp',
        calls: 300,
        rate: 200,
        vars: REDIRECT,
        timeoutMs: 20_000,
      });
      expect(again.failed, explain(again)).toBe(0);
      const counts = await settled([back], 'redirect', 300 / 5);
      expect(counts[0]).toBeGreaterThanOrEqual(300 / 5);
    }, 40_000);

    it('SIGTERM of one instance: its drain finishes the calls it holds and answers 503 to new ones, the front moves on, no call fails', async () => {
      const leaving = instances[2]!;
      const uri = uriOf({ host: HOSTS[2], port: sipPort });
      const redirects = runSipp({
        scenario: 'redirect-uac',
        target: target(),
        transport: 'udp',
        calls: 1000,
        rate: 200,
        vars: REDIRECT,
        timeoutMs: 30_000,
      });
      // Proxied INVITEs the pool member holds 1 s each: what the drain waits for, new requests
      // meanwhile getting 503.
      const held = runSipp({
        scenario: 'busy-uac',
        target: target(),
        transport: 'udp',
        calls: 40,
        rate: 20,
        vars: SLOW,
        timeoutMs: 30_000,
      });
      await sleep(1000);
      const from = leaving.lines.length;
      leaving.child.kill('SIGTERM');
      await front!.waitFor(uri, (f) => f.startsWith('I'), 5000);
      const [r, h] = await Promise.all([redirects, held]);
      expect(r.failed, explain(r)).toBe(0);
      expect(r.successful).toBe(1000);
      expect(h.failed, explain(h)).toBe(0);
      expect(h.successful).toBe(40);
      expect((await leaving.exit).code).toBe(0);
      const after = leaving.lines.slice(from);
      // It held proxied INVITEs when the signal came, and answered them before it exited...
      const draining = after.find((l) => msgOf(l).startsWith('draining'));
      expect(Number(draining?.['inFlight']), JSON.stringify(draining)).toBeGreaterThan(0);
      expect(after.some((l) => msgOf(l) === 'drained: no transaction in flight')).toBe(true);
      // ...while the requests it refused went to the next instance instead of back to the client.
      const refused = after.filter((l) => l['method'] === 'INVITE' && l['status'] === 503).length;
      expect(refused, front!.log().slice(-1500)).toBeGreaterThan(0);
      expect(front!.log()).toMatch(new RegExp(`${uri.replace(/[.;]/g, '\\$&')} answered 503 to INVITE`));
    }, 40_000);
  },
);

describe.skipIf(!runnable)(
  'three instances watching one shared configuration folder (behind the Kamailio front, SIPp)',
  () => {
    let shared = '';
    let front: Front | undefined;
    const instances: ServeProcess[] = [];

    beforeAll(async () => {
      requireSipp();
      requireKamailio();
      // One folder, one server.yaml for all, as on separate hosts; on this one each instance is
      // given its own address with `serve --listen`, 127.0.0.2, .3 and .4 on one port.
      shared = await mkdtemp(join(tmpdir(), 'pchat-shared-'));
      await writeFile(join(shared, 'server.yaml'), serverYaml('udp://127.0.0.1:0'));
      await writeFile(join(shared, 'endpoints.yaml'), endpointsYaml(9, 9));
      const port = await freePort(['udp']);
      for (const host of HOSTS) {
        const s = serveFolder(shared, { args: ['--listen', `udp://${host}:${port}`] });
        instances.push(s);
        await s.waitForLine((l) => msgOf(l).startsWith('admin port on'), 10_000);
      }
      const listening = instances.map((s) => s.lines.find((x) => msgOf(x) === 'listening'));
      expect(listening.map((l) => `${String(l?.['host'])}:${String(l?.['port'])}`)).toEqual(
        HOSTS.map((h) => `${h}:${port}`),
      );
      front = await startFront(HOSTS.map((host) => ({ host, port })));
    }, 30_000);

    afterAll(async () => {
      await front?.stop();
      for (const s of instances) await s.stop();
      if (shared !== '') await rm(shared, { recursive: true, force: true });
    });

    it('an edit with the CLI reaches every instance (the same digest) within 2 s while calls run; a refused edit leaves every instance on the last good table, and status sees them agree', async () => {
      const run = runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: front!.port },
        transport: 'udp',
        calls: 1000,
        rate: 200,
        vars: REDIRECT,
        timeoutMs: 30_000,
      });
      await sleep(1000);
      const added = 'sip:persistentchat@contoso.com';
      const edit = spawnSync(
        process.execPath,
        [
          CLI,
          'new',
          '--sip-address',
          added,
          '--pool-fqdn',
          'pcpool.contoso.com',
          '--mode',
          'redirect',
          '--config-dir',
          shared,
        ],
        { encoding: 'utf8', timeout: 15_000 },
      );
      expect(edit.status, edit.stderr).toBe(0);
      const edited = Date.now();
      // The digest of the file as the CLI left it: what every instance must serve.
      const good = await readFile(join(shared, 'endpoints.yaml'), 'utf8');
      const digest = sha256(good);
      const reachedAfter: number[] = [];
      for (const s of instances) {
        while ((await tableOf(s)).sha256 !== digest && Date.now() - edited < 5000) await sleep(50);
        reachedAfter.push(Date.now() - edited);
      }
      for (const t of reachedAfter)
        expect(t, `reached after ${reachedAfter.join(', ')} ms`).toBeLessThan(2000);
      for (const s of instances) expect((await tableOf(s)).addresses).toContain(added);

      // A bad edit by hand: every instance refuses it and keeps serving the table it had.
      const from = instances.map((s) => s.lines.length);
      await writeFile(join(shared, 'endpoints.yaml'), good.replace('mode: redirect', 'mode: teleport'));
      for (const [i, s] of instances.entries())
        await s.waitForLine(
          (l) => msgOf(l).startsWith('reload refused, still serving the last good table'),
          4000,
          from[i],
        );
      for (const s of instances) {
        const table = await tableOf(s);
        expect(table.sha256).toBe(digest);
        expect(table.addresses).toContain(added);
      }
      // `status` over the three agrees: every one reachable, ready and on the same table.
      const status = spawnSync(
        process.execPath,
        [CLI, 'status', '--json', '--admin', instances.map((s) => `127.0.0.1:${s.adminPort()}`).join(',')],
        { encoding: 'utf8', timeout: 15_000 },
      );
      expect(status.status, `${status.stdout}${status.stderr}`).toBe(0);
      expect(status.stdout).toContain(digest);

      const r = await run;
      expect(r.failed, explain(r)).toBe(0);
      expect(r.successful).toBe(1000);
      // Every instance took part of the load while the table changed under it.
      for (const s of instances) expect(invites(s, 'redirect').length).toBeGreaterThan(0);
    }, 40_000);
  },
);
