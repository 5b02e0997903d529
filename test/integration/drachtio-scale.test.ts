// Scale-out and resilience of the drachtio engine with real processes: `pchat-endpoint serve`
// (dist/, `npm run build` first) connected to real drachtio-servers, loaded by real SIPp. Two
// instances share one drachtio-server; one stopped with SIGTERM mid-run drains (lookup dialogs, or
// proxied INVITEs, in flight) and loses no call; one killed with SIGKILL loses at most what it held; one instance serves two drachtio-servers;
// the connection lost, refused, or never there at start; and drachtio's outbound connections.

import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { drachtioAvailable, drachtioTitle, startDrachtio, type DrachtioHandle } from '../helpers/drachtio.js';
import { CLI, msgOf, startServe, type LogLine, type ServeProcess } from '../helpers/serve-process.js';
import { requireSipp, runSipp, type SippResult } from '../helpers/sipp.js';
import { startSippServer, type SippServer } from '../helpers/sipp-server.js';

const bin = drachtioAvailable();

const ENDPOINTS = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:pcpool.contoso.com:5061;transport=tls
`;

/** ENDPOINTS and a proxy endpoint whose one pool member listens on `port` (UDP). */
const withProxy = (port: number): string =>
  ENDPOINTS.replace(
    'pools:\n',
    `  - sipAddress: sip:proxied@contoso.com
    poolFqdn: proxpool.contoso.com
    mode: proxy
    # drachtio-server stays in the dialog: the ACK, INFO and BYE go through it.
    recordRoute: true
pools:
  - fqdn: proxpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${port};transport=udp
`,
  );

const REDIRECT = { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' };
const LOOKUP = { service: 'lookup', domain: 'contoso.com' };
/** How long lookup-hold-uac.xml holds each dialog before its BYE, ms. */
const HOLD_MS = 1500;

interface YamlOptions {
  servers?: readonly { adminPort: number; secret: string }[];
  listen?: { port: number; secret: string };
  reconnectMax?: number;
}

/** server.yaml for the drachtio engine, the admin port on a port the system picks, JSON logs at info. */
function serverYaml(o: YamlOptions): string {
  const servers =
    o.servers === undefined
      ? ''
      : `  servers:\n${o.servers.map((s) => `    - { host: 127.0.0.1, port: ${s.adminPort}, secret: ${s.secret} }\n`).join('')}`;
  const listen =
    o.listen === undefined
      ? ''
      : `  listen: { address: 127.0.0.1, port: ${o.listen.port}, secret: ${o.listen.secret} }\n`;
  return (
    `engine: drachtio\ndrachtio:\n${servers}${listen}` +
    `  reconnect: { max: ${o.reconnectMax ?? 500} }\n` +
    `admin:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  pretty: false\n` +
    // SIPp pool members take only the calls of their scenario: no OPTIONS probes.
    `proxy:\n  probe:\n    enabled: false\n` +
    `shutdown:\n  drainTime: 8000\n`
  );
}

function explain(r: SippResult): string {
  return `${JSON.stringify(r.stats?.failures ?? {})}\n${r.errors.slice(-1500)}\n${r.stdout.slice(-800)}`;
}

const msg = msgOf;

/** pchat_drachtio_connected for one inbound server, from the admin port's /metrics. */
async function connectedGauge(s: ServeProcess, server: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${s.adminPort()}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('pchat_drachtio_connected{') && l.includes(`server="${server}"`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe.skipIf(bin === undefined || !existsSync(CLI))(
  drachtioTitle(
    'drachtio engine scale-out and resilience (serve processes, real drachtio-server, SIPp)',
    bin,
  ),
  () => {
    const drachtios: DrachtioHandle[] = [];
    const serves: ServeProcess[] = [];
    const servers: Server[] = [];
    const uases: SippServer[] = [];

    beforeAll(() => {
      requireSipp();
    });
    afterEach(async () => {
      for (const s of serves.splice(0)) await s.stop();
      for (const u of uases.splice(0)) u.stop();
      for (const h of servers.splice(0)) h.close();
      for (const d of drachtios.splice(0)) await d.stop();
    });

    async function drachtio(): Promise<DrachtioHandle> {
      const d = await startDrachtio();
      drachtios.push(d);
      return d;
    }

    /** A `serve` process, its admin port known (so /readyz can be asked). */
    async function serve(o: YamlOptions, endpoints = ENDPOINTS): Promise<ServeProcess> {
      const s = await startServe(serverYaml(o), endpoints);
      serves.push(s);
      await s.waitForLine((l) => msg(l).startsWith('admin port on'), 10_000);
      return s;
    }

    /** Both decision counts once `total` decisions are logged between them (logs flush within 1 s). */
    async function settledDecisions(
      a: ServeProcess,
      b: ServeProcess,
      total: number,
    ): Promise<[number, number]> {
      const deadline = Date.now() + 4000;
      while (a.decisions().length + b.decisions().length < total && Date.now() < deadline) await sleep(100);
      return [a.decisions().length, b.decisions().length];
    }

    it('two instances on one drachtio-server share a redirect load of 200 calls/s: both decide, none fails', async () => {
      const d = await drachtio();
      const a = await serve({ servers: [d] });
      const b = await serve({ servers: [d] });
      await Promise.all([a.waitReadyz(200, 10_000), b.waitReadyz(200, 10_000)]);
      const calls = 600;
      const r = await runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls,
        rate: 200,
        vars: REDIRECT,
        timeoutMs: 20_000,
      });
      expect(r.successful, explain(r)).toBe(calls);
      expect(r.failed).toBe(0);
      const [na, nb] = await settledDecisions(a, b, calls);
      // One decision line per INVITE, each logged by exactly one of the two.
      expect(na + nb).toBe(calls);
      // drachtio-server hands requests to its apps in turn: each gets a real share, not a stray call.
      expect(na).toBeGreaterThan(calls / 4);
      expect(nb).toBeGreaterThan(calls / 4);
    });

    it('one of two stopped with SIGTERM mid-run drains the dialogs it holds, exits 0, and no call fails', async ({
      annotate,
    }) => {
      const d = await drachtio();
      const a = await serve({ servers: [d] });
      const b = await serve({ servers: [d] });
      await Promise.all([a.waitReadyz(200, 10_000), b.waitReadyz(200, 10_000)]);
      const calls = 200;
      const load = runSipp({
        scenario: 'lookup-hold-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls,
        rate: 50,
        vars: LOOKUP,
        timeoutMs: 25_000,
      });
      // Two seconds in, each instance holds about rate × HOLD_MS / 2 dialogs.
      await sleep(2000);
      a.child.kill('SIGTERM');
      const { code } = await Promise.race([a.exit, sleep(12_000).then(() => ({ code: -1, signal: null }))]);
      const r = await load;
      expect(r.successful, explain(r)).toBe(calls);
      expect(r.failed).toBe(0);
      expect(code, a.stderr()).toBe(0);
      const draining = a.lines.find((l) => msg(l).startsWith('draining'));
      // It held dialogs when asked to stop, and waited for their BYEs.
      expect(draining?.['inFlight']).toBeGreaterThan(0);
      const drained = a.lines.find((l) => msg(l) === 'drained: no transaction in flight');
      // Drained when the last held dialog's BYE came, well before shutdown.drainTime (8 s).
      expect(Number(drained?.['elapsedMs'])).toBeLessThan(HOLD_MS + 1500);
      expect(a.lines.map(msg).slice(-1)).toEqual(['stopped']);
      // None of its callers was turned away with 503 while it drained.
      expect(a.decisions().filter((l) => l['outcome'] === 'draining')).toEqual([]);
      await annotate(
        `SIGTERM mid-run: held ${String(draining?.['inFlight'])} lookup dialogs, drained in ${String(drained?.['elapsedMs'])} ms, ${r.failed} of ${calls} calls failed`,
      );
      // The other took the rest: every call's dialog was opened by one of them.
      const opened = (s: ServeProcess): number =>
        s.decisions().filter((l) => l['outcome'] === 'lookup-dialog').length;
      const deadline = Date.now() + 3000;
      while (opened(a) + opened(b) < calls && Date.now() < deadline) await sleep(100);
      expect(opened(a) + opened(b)).toBe(calls);
      const after = b
        .decisions()
        .filter((l) => l['outcome'] === 'lookup-dialog' && Number(l['time']) > Number(draining?.['time']));
      expect(after.length).toBeGreaterThan(0);
    });

    it('proxy mode: one of two stopped with SIGTERM waits for the INVITEs it is proxying, and no call fails', async ({
      annotate,
    }) => {
      const calls = 90;
      const member = await startSippServer({
        scenario: 'pool-slow-uas',
        transport: 'udp',
        calls,
        timeoutMs: 20_000,
      });
      uases.push(member);
      const d = await drachtio();
      const a = await serve({ servers: [d] }, withProxy(member.port));
      const b = await serve({ servers: [d] }, withProxy(member.port));
      await Promise.all([a.waitReadyz(200, 10_000), b.waitReadyz(200, 10_000)]);
      const load = runSipp({
        scenario: 'proxy-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls,
        rate: 30,
        vars: { service: 'proxied', domain: 'contoso.com' },
        timeoutMs: 20_000,
      });
      // The member answers each INVITE after 1 s: each instance has about 15 in flight.
      await sleep(1500);
      a.child.kill('SIGTERM');
      const { code } = await Promise.race([a.exit, sleep(12_000).then(() => ({ code: -1, signal: null }))]);
      const r = await load;
      expect(r.successful, explain(r)).toBe(calls);
      expect(r.failed).toBe(0);
      expect((await member.done).successful).toBe(calls);
      expect(code, a.stderr()).toBe(0);
      const draining = a.lines.find((l) => msg(l).startsWith('draining'));
      expect(draining?.['inFlight']).toBeGreaterThan(0);
      const drained = a.lines.find((l) => msg(l) === 'drained: no transaction in flight');
      // The last INVITE it proxied was answered about 1 s after the stop.
      expect(Number(drained?.['elapsedMs'])).toBeGreaterThan(500);
      expect(Number(drained?.['elapsedMs'])).toBeLessThan(3000);
      expect(a.decisions().filter((l) => l['outcome'] === 'draining')).toEqual([]);
      await annotate(
        `SIGTERM mid-run (proxy): ${String(draining?.['inFlight'])} INVITEs in flight, drained in ${String(drained?.['elapsedMs'])} ms, ${r.failed} of ${calls} calls failed`,
      );
      // Every INVITE was proxied by one of the two, and answered 200.
      const proxied = (s: ServeProcess): number =>
        s.decisions().filter((l) => l['method'] === 'INVITE' && l['status'] === 200).length;
      const deadline = Date.now() + 3000;
      while (proxied(a) + proxied(b) < calls && Date.now() < deadline) await sleep(100);
      expect(proxied(a) + proxied(b)).toBe(calls);
    });

    it('one of two killed with SIGKILL mid-run: only the calls it held fail, the other takes the rest', async ({
      annotate,
    }) => {
      const d = await drachtio();
      const a = await serve({ servers: [d] });
      const b = await serve({ servers: [d] });
      await Promise.all([a.waitReadyz(200, 10_000), b.waitReadyz(200, 10_000)]);
      const calls = 200;
      const rate = 50;
      const load = runSipp({
        scenario: 'lookup-hold-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls,
        rate,
        vars: LOOKUP,
        timeoutMs: 25_000,
        keepArtifacts: true,
        // A call whose dialog died with the instance fails within 2.5 s instead of at the run's end;
        // longer than SIPp's 1 s statistics period, so the calls it held are still open in the
        // sample that follows the kill.
        extraArgs: ['-recv_timeout', '2500'],
      });
      await sleep(2000);
      a.child.kill('SIGKILL');
      const r = await load;
      const dir = r.artifactsDir!;
      const stat = await readFile(join(dir, 'stat.csv'), 'latin1');
      await rm(dir, { recursive: true, force: true });
      // What it could have held at that moment is bounded by the calls open then, both instances'
      // together: the most SIPp counted open in any one-second sample (each held call stays open
      // past the next sample, see -recv_timeout).
      const rows = stat.trim().split('\n');
      const head = rows[0]!.split(';');
      const col = head.indexOf('CurrentCall');
      const openMax = Math.max(...rows.slice(1).map((row) => Number(row.split(';')[col])));
      expect(openMax).toBeGreaterThan(0);
      expect(r.successful + r.failed, explain(r)).toBe(calls);
      expect(r.failed, explain(r)).toBeLessThanOrEqual(openMax);
      // And never more than the one instance's share of the calls open: rate × hold, with slack.
      expect(r.failed, explain(r)).toBeLessThanOrEqual(Math.ceil((rate * (HOLD_MS + 500)) / 1000));
      // Reported with the test's result (the reporters show annotations) for the closing note.
      await annotate(
        `SIGKILL mid-run: ${r.failed} of ${calls} calls failed ${JSON.stringify(r.stats?.failures ?? {})} (at most ${openMax} open at once, lookup dialogs held ${HOLD_MS} ms at ${rate} calls/s)`,
      );
      const { signal } = await a.exit;
      expect(signal).toBe('SIGKILL');
      // Everything after the kill went to the other one.
      expect(b.decisions().filter((l) => l['outcome'] === 'lookup-dialog').length).toBeGreaterThan(calls / 2);
    });

    it('one instance connected to two drachtio-servers serves both', async () => {
      const d1 = await drachtio();
      const d2 = await drachtio();
      const s = await serve({ servers: [d1, d2] });
      await s.waitForLine((l) => msg(l) === `connected to drachtio-server 127.0.0.1:${d1.adminPort}`, 10_000);
      await s.waitForLine((l) => msg(l) === `connected to drachtio-server 127.0.0.1:${d2.adminPort}`, 10_000);
      const results = await Promise.all(
        [d1, d2].map((d) =>
          runSipp({
            scenario: 'redirect-uac',
            target: { host: '127.0.0.1', port: d.sipPort },
            transport: 'udp',
            calls: 50,
            rate: 100,
            vars: REDIRECT,
            timeoutMs: 15_000,
          }),
        ),
      );
      for (const r of results) {
        expect(r.successful, explain(r)).toBe(50);
        expect(r.failed).toBe(0);
      }
      const deadline = Date.now() + 3000;
      while (s.decisions().length < 100 && Date.now() < deadline) await sleep(100);
      expect(s.decisions().filter((l) => l['status'] === 302)).toHaveLength(100);
    });

    it('drachtio-server restarted: /readyz 503 while the connection is lost, then the service reconnects by itself', async () => {
      const d = await drachtio();
      const s = await serve({ servers: [d] });
      await s.waitReadyz(200, 10_000);
      const server = `127.0.0.1:${d.adminPort}`;
      const before = s.lines.length;
      d.kill('SIGTERM');
      await Promise.race([d.exited(), sleep(5000)]);
      await s.waitForLine((l) => msg(l) === `connection to drachtio-server ${server} lost`, 5000, before);
      await s.waitReadyz(503, 3000);
      expect(await connectedGauge(s, server)).toBe(0);
      // Still 503 a little later: nothing to connect to.
      await sleep(300);
      expect(await s.readyz()).toBe(503);
      const lost = s.lines.length;
      await d.restart();
      await s.waitReadyz(200, 5000);
      await s.waitForLine((l) => msg(l) === `connected to drachtio-server ${server}`, 3000, lost);
      expect(await connectedGauge(s, server)).toBe(1);
      // And it serves again through the restarted server.
      const r = await runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls: 5,
        rate: 50,
        vars: REDIRECT,
        timeoutMs: 10_000,
      });
      expect(r.successful, explain(r)).toBe(5);
    });

    it('drachtio unreachable at start: the service runs, 503, one line per back-off step up to reconnect.max, then connects once drachtio is there', async () => {
      const d = await drachtio();
      // Its ports, with nothing listening on them: a drachtio-server that is not there yet.
      d.kill('SIGTERM');
      await Promise.race([d.exited(), sleep(5000)]);
      const max = 600;
      const s = await serve({ servers: [d], reconnectMax: max });
      expect(await s.readyz()).toBe(503);
      const server = `127.0.0.1:${d.adminPort}`;
      const steps = (): LogLine[] =>
        s.lines.filter((l) => msg(l).startsWith(`drachtio-server ${server} not reachable: trying again in `));
      const deadline = Date.now() + 5000;
      while (steps().filter((l) => l['delayMs'] === max).length < 3 && Date.now() < deadline)
        await sleep(100);
      const seen = steps();
      expect(await s.readyz()).toBe(503);
      const delays = seen.map((l) => Number(l['delayMs']));
      // Growing delays, capped by drachtio.reconnect.max, each also in the message.
      expect(delays.length).toBeGreaterThanOrEqual(4);
      expect(delays[0]).toBeLessThan(max);
      for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
      expect(Math.max(...delays)).toBe(max);
      for (const l of seen)
        expect(msg(l)).toBe(
          `drachtio-server ${server} not reachable: trying again in ${String(l['delayMs'])} ms`,
        );
      // Once per step, not once per failed socket event: each line at least its delay after the last.
      for (let i = 1; i < seen.length; i++)
        expect(Number(seen[i]!['time']) - Number(seen[i - 1]!['time'])).toBeGreaterThanOrEqual(
          delays[i - 1]! - 20,
        );
      await d.restart();
      await s.waitReadyz(200, 5000);
      await s.waitForLine((l) => msg(l) === `connected to drachtio-server ${server}`, 3000);
    });

    it('a wrong secret: a clear error naming the server, logged once however often it retries, /readyz 503', async () => {
      const d = await drachtio();
      // A relay in front of drachtio's admin port counts the service's attempts to connect.
      let attempts = 0;
      const relay = createServer((client) => {
        attempts++;
        const up = connect(d.adminPort, '127.0.0.1');
        client.pipe(up).pipe(client);
        client.on('error', () => up.destroy());
        up.on('error', () => client.destroy());
      });
      servers.push(relay);
      await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
      const relayPort = (relay.address() as AddressInfo).port;
      const s = await serve({ servers: [{ adminPort: relayPort, secret: 'not-the-secret' }] });
      const server = `127.0.0.1:${relayPort}`;
      const refused = await s.waitForLine(
        (l) => msg(l).startsWith(`drachtio-server ${server} refused the connection`),
        5000,
      );
      expect(msg(refused)).toMatch(/check drachtio\.servers\[\]\.secret/);
      expect(refused['level']).toBe(50);
      // drachtio-server closes the connection after each refusal and drachtio-srf connects again:
      // several attempts in the next 2 s, still one error line.
      const before = attempts;
      await sleep(2000);
      expect(attempts - before).toBeGreaterThanOrEqual(3);
      expect(await s.readyz()).toBe(503);
      const errors = s.lines.filter((l) => msg(l).includes('refused the connection'));
      expect(errors).toHaveLength(1);
      // The server is reachable: its retries are not reported as "not reachable" either.
      expect(s.lines.filter((l) => msg(l).includes('not reachable')).map(msg)).toEqual([]);
    });

    it('SIGTERM under a heavy redirect load: every request drachtio-server already handed over is answered, none 503', async () => {
      const d = await drachtio();
      const b = await serve({ servers: [d] });
      await b.waitReadyz(200, 10_000);
      // The race is a request or two wide (handed over before drachtio-server read the remove_route),
      // so it is run a few times at a high rate.
      const rounds: string[] = [];
      for (let round = 0; round < 3; round++) {
        const a = await serve({ servers: [d] });
        await a.waitReadyz(200, 10_000);
        const load = runSipp({
          scenario: 'redirect-uac',
          target: { host: '127.0.0.1', port: d.sipPort },
          transport: 'udp',
          calls: 1500,
          rate: 1000,
          vars: REDIRECT,
          timeoutMs: 6000,
        });
        await sleep(700);
        a.child.kill('SIGTERM');
        const r = await load;
        await Promise.race([a.exit, sleep(5000)]);
        const refused = a.decisions().filter((l) => l['outcome'] === 'draining').length;
        rounds.push(
          `ok ${r.successful} failed ${r.failed} unanswered ${1500 - r.successful - r.failed} refused ${refused}`,
        );
      }
      expect(rounds).toEqual(Array(3).fill('ok 1500 failed 0 unanswered 0 refused 0'));
    });

    it('outbound: drachtio-server connects to the listening service per request, and an INVITE is answered 302', async () => {
      // The service listens on a port the system picks; its log says which.
      const s = await serve({ listen: { port: 0, secret: 'cymru' } });
      const listening = await s.waitForLine(
        (l) => msg(l).startsWith('waiting for drachtio-server connections on'),
        5000,
      );
      const uri = String(listening['listen']);
      expect(uri).toMatch(/^127\.0\.0\.1:\d+$/);
      await s.waitReadyz(200, 3000);
      // drachtio-server asks its request-handler URL where to send each new request: the service's
      // admin port answers with the address it listens on.
      const routeUrl = `http://127.0.0.1:${s.adminPort()}/drachtio/route`;
      const answer = await fetch(`${routeUrl}/?method=INVITE`);
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ action: 'route', data: { uri } });
      const d = await startDrachtio({ requestHandlerUrl: routeUrl });
      drachtios.push(d);
      const r = await runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: d.sipPort },
        transport: 'udp',
        calls: 3,
        rate: 10,
        vars: REDIRECT,
        timeoutMs: 10_000,
      });
      expect(r.successful, explain(r)).toBe(3);
      expect(r.failed).toBe(0);
      const deadline = Date.now() + 3000;
      while (s.decisions().length < 3 && Date.now() < deadline) await sleep(100);
      expect(s.decisions().map((l) => [l['status'], l['outcome']])).toEqual([
        [302, 'redirect'],
        [302, 'redirect'],
        [302, 'redirect'],
      ]);
    });
  },
);
