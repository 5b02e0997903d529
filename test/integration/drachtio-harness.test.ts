// The drachtio test harness (test/helpers/drachtio.ts) proved on its own, with a bare drachtio-srf
// app and no project code: what drachtio answers with no app, inbound and outbound connections, a
// restart on the same ports, and a stop that leaves nothing running.
import dgram from 'node:dgram';
import type { EventEmitter } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import Srf from 'drachtio-srf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drachtioAvailable, drachtioTitle, startDrachtio, type DrachtioHandle } from '../helpers/drachtio.js';
import { requireSipp, runSipp, type SippResult } from '../helpers/sipp.js';

const bin = drachtioAvailable();
const title = drachtioTitle('drachtio-server test harness', bin);

const POOL_CONTACT = '<sip:pcpool.contoso.com;transport=tls>';

/** A UDP SIP client on 127.0.0.1 that keeps every datagram it receives. */
class UdpClient {
  readonly received: string[] = [];
  private readonly waiters = new Set<() => void>();
  private constructor(private readonly sock: dgram.Socket) {
    sock.on('message', (m) => {
      this.received.push(m.toString('latin1'));
      for (const w of this.waiters) w();
    });
  }
  static async open(): Promise<UdpClient> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    return new UdpClient(sock);
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(text: string, port: number): void {
    this.sock.send(Buffer.from(text, 'latin1'), port, '127.0.0.1');
  }
  /** Waits for a datagram whose first line matches, counting from index `from` of `received`. */
  async next(firstLine: RegExp, timeoutMs = 3_000, from = 0): Promise<string> {
    const find = (): string | undefined =>
      this.received.slice(from).find((m) => firstLine.test(m.slice(0, m.indexOf('\r\n'))));
    const found = find();
    if (found) return found;
    return new Promise((resolveMsg, rejectMsg) => {
      const done = (): void => {
        const m = find();
        if (!m) return;
        clearTimeout(timer);
        this.waiters.delete(done);
        resolveMsg(m);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        rejectMsg(
          new Error(`no ${firstLine} within ${timeoutMs} ms; got:\n${this.received.join('\n---\n')}`),
        );
      }, timeoutMs);
      this.waiters.add(done);
    });
  }
  close(): void {
    this.sock.close();
  }
}

let seq = 0;
/** A request to sip:ocschat@contoso.com; `branch: false` gives an RFC 2543 Via without a branch. */
function request(
  method: string,
  client: UdpClient,
  opts: { branch?: boolean; callId?: string; toTag?: string } = {},
) {
  const n = ++seq;
  const callId = opts.callId ?? `harness-${process.pid}-${n}@127.0.0.1`;
  const via = `SIP/2.0/UDP 127.0.0.1:${client.port}${opts.branch === false ? '' : `;branch=z9hG4bK-h${process.pid}-${n}`}`;
  const text = [
    `${method} sip:ocschat@contoso.com SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    `From: <sip:legacy@contoso.com>;tag=f${n}`,
    `To: <sip:ocschat@contoso.com>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:legacy@127.0.0.1:${client.port}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return { text, callId, via };
}

function header(msg: string, name: string): string | undefined {
  const re = new RegExp(`^${name}:\\s*(.*)$`, 'im');
  return re.exec(msg)?.[1]?.trim();
}

/** A bare drachtio-srf app answering every INVITE with 302 to the pool. */
function redirectApp(): { srf: Srf; invites: Srf.SrfRequest[] } {
  const srf = new Srf();
  const invites: Srf.SrfRequest[] = [];
  srf.invite((req, res) => {
    invites.push(req);
    res.send(302, { headers: { Contact: POOL_CONTACT } });
  });
  // Without an 'error' listener drachtio-srf's socket errors (ECONNREFUSED while drachtio is down)
  // are thrown as uncaught exceptions.
  srf.on('error', () => undefined);
  return { srf, invites };
}

/** The next 'connect' (authenticated) of an inbound app, or its error. */
function connected(srf: Srf, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolveConn, rejectConn) => {
    const timer = setTimeout(
      () => rejectConn(new Error(`app not connected within ${timeoutMs} ms`)),
      timeoutMs,
    );
    srf.once('connect', (err: Error | null, hostport: string) => {
      clearTimeout(timer);
      if (err) rejectConn(err);
      else resolveConn(hostport);
    });
  });
}

/**
 * Ends an inbound app for good. drachtio-srf reconnects on its own after a close, and its retry timer
 * is not cleared by disconnect() (which also throws when no socket is up), so the timer is cleared
 * here through its internals; otherwise the app would reconnect to a later test's drachtio.
 */
function closeInbound(srf: Srf): void {
  const wp = (
    srf as unknown as {
      _app: { wp?: { closing: boolean; reconnectVars?: { retryTimer?: NodeJS.Timeout | null } } };
    }
  )._app.wp;
  if (wp) {
    wp.closing = true;
    if (wp.reconnectVars?.retryTimer) clearTimeout(wp.reconnectVars.retryTimer);
  }
  try {
    srf.disconnect();
  } catch {
    // not connected at the moment
  }
}

function explain(result: SippResult): string {
  return [
    `sipp exit ${result.exitCode}${result.killed ? ' (killed on timeout)' : ''}, successful ${result.successful}, failed ${result.failed}`,
    `failures: ${JSON.stringify(result.stats?.failures ?? {})}`,
    result.errors.slice(0, 2000),
  ].join('\n');
}

describe.skipIf(!bin)(title, () => {
  describe('inbound connection (the app connects to the admin port)', () => {
    let d: DrachtioHandle;
    let app: ReturnType<typeof redirectApp>;
    let client: UdpClient;

    beforeAll(async () => {
      d = await startDrachtio();
      client = await UdpClient.open();
    });

    afterAll(async () => {
      if (app) closeInbound(app.srf);
      client?.close();
      await d?.stop();
    });

    it('starts on loopback ports of its own and says so in its log', async () => {
      expect(d.sipUri).toBe(`127.0.0.1:${d.sipPort}`);
      expect(d.adminPort).not.toBe(d.sipPort);
      await d.waitForLog(
        new RegExp(`starting sip stack on sip:127\\.0\\.0\\.1:${d.sipPort};transport=udp,tcp`),
      );
      await d.waitForLog(new RegExp(`listening for applications on tcp port ${d.adminPort}`));
    });

    it('with no app connected, answers OPTIONS 503 and INVITE 100 then 503', async () => {
      const from = client.received.length;
      const options = request('OPTIONS', client);
      client.send(options.text, d.sipPort);
      const o = await client.next(new RegExp('^SIP/2.0 \\d+'), 3_000, from);
      expect(o.slice(0, o.indexOf('\r\n'))).toBe('SIP/2.0 503 Service Unavailable');
      expect(header(o, 'Call-ID')).toBe(options.callId);

      const afterOptions = client.received.length;
      const invite = request('INVITE', client);
      client.send(invite.text, d.sipPort);
      const final = await client.next(/^SIP\/2\.0 [2-6]\d\d/, 3_000, afterOptions);
      expect(final.startsWith('SIP/2.0 503 ')).toBe(true);
      expect(header(final, 'Call-ID')).toBe(invite.callId);
      const trying = client.received.find((m) => m.startsWith('SIP/2.0 100') && m.includes(invite.callId));
      expect(trying, 'a 100 Trying before the 503').toBeDefined();
      // RFC 3261 §17.1.1.3: the client ACKs the non-2xx final, or drachtio retransmits it.
      client.send(
        invite.text
          .replace(/^INVITE /, 'ACK ')
          .replace('CSeq: 1 INVITE', 'CSeq: 1 ACK')
          .replace(/^To: .*$/m, `To: ${header(final, 'To')}`),
        d.sipPort,
      );
    });

    it('a drachtio-srf app connected with srf.connect answers INVITE with 302 (SIPp over UDP and TCP)', async () => {
      requireSipp();
      app = redirectApp();
      const up = connected(app.srf);
      // Typed as returning a Promise, srf.connect returns nothing; 'connect' events tell the outcome.
      void app.srf.connect({ host: '127.0.0.1', port: d.adminPort, secret: d.secret });
      // drachtio tells the app the SIP addresses it listens on.
      expect(await up).toContain(`127.0.0.1:${d.sipPort}`);
      for (const transport of ['udp', 'tcp'] as const) {
        const result = await runSipp({
          scenario: 'redirect-uac',
          target: { host: '127.0.0.1', port: d.sipPort },
          transport,
          calls: 10,
          rate: 50,
          vars: { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' },
          timeoutMs: 15_000,
        });
        expect(
          { transport, exitCode: result.exitCode, successful: result.successful, failed: result.failed },
          explain(result),
        ).toEqual({ transport, exitCode: 0, successful: 10, failed: 0 });
      }
      expect(app.invites.length).toBe(20);
    });

    it('hands an RFC 2543 INVITE (Via without branch) to the app, and its ACK stops the 302 retransmissions', async () => {
      const from = client.received.length;
      const invite = request('INVITE', client, { branch: false });
      client.send(invite.text, d.sipPort);
      const redirect = await client.next(/^SIP\/2\.0 302/, 3_000, from);
      expect(header(redirect, 'Call-ID')).toBe(invite.callId);
      expect(header(redirect, 'Contact')).toBe(POOL_CONTACT);
      // The app saw the Via as sent: no branch added on the way.
      const seen = app.invites.find((r) => r.get('Call-ID') === invite.callId);
      expect(seen?.get('Via')).toMatch(
        new RegExp(`^SIP/2.0/UDP 127\\.0\\.0\\.1:${client.port}(;rport=\\d+)?$`),
      );

      // RFC 2543 §17: the ACK for a non-2xx matches the INVITE by Call-ID, From, To tag, CSeq and top Via.
      client.send(
        invite.text
          .replace(/^INVITE /, 'ACK ')
          .replace('CSeq: 1 INVITE', 'CSeq: 1 ACK')
          .replace(/^To: .*$/m, `To: ${header(redirect, 'To')}`),
        d.sipPort,
      );
      // Timer G (T1 = 500 ms) would resend the 302 at 0.5 s and 1.5 s if the ACK was not matched.
      await new Promise((r) => setTimeout(r, 1_800));
      const redirects = client.received
        .slice(from)
        .filter((m) => m.startsWith('SIP/2.0 302') && m.includes(invite.callId));
      expect(redirects.length, 'the 302 was retransmitted: the branch-less ACK was not matched').toBe(1);
    });

    it('restart() keeps the ports, and the drachtio-srf app reconnects by itself and answers again', async () => {
      const { adminPort, sipPort, pid } = d;
      const reconnecting: unknown[] = [];
      (app.srf as unknown as EventEmitter).on('reconnecting', (info: unknown) => reconnecting.push(info));
      const back = connected(app.srf, 15_000);
      await d.restart();
      expect({ adminPort: d.adminPort, sipPort: d.sipPort }).toEqual({ adminPort, sipPort });
      expect(d.pid).not.toBe(pid);
      expect(await back).toContain(`127.0.0.1:${sipPort}`);
      expect(reconnecting.length).toBeGreaterThan(0);

      const from = client.received.length;
      const invite = request('INVITE', client);
      client.send(invite.text, d.sipPort);
      const redirect = await client.next(/^SIP\/2\.0 302/, 3_000, from);
      expect(header(redirect, 'Call-ID')).toBe(invite.callId);
    });
  });

  describe('outbound connection (drachtio asks an HTTP URL, then connects to the app)', () => {
    let d: DrachtioHandle;
    let srf: Srf;
    let appServer: net.Server;
    let httpServer: http.Server;
    const asked: string[] = [];
    const invites: string[] = [];

    beforeAll(async () => {
      srf = new Srf();
      srf.invite((req, res) => {
        invites.push(req.get('Call-ID'));
        res.send(302, { headers: { Contact: POOL_CONTACT } });
      });
      srf.on('error', () => undefined);
      // Typed as Promise<void>, srf.listen returns the net.Server it listens with.
      appServer = srf.listen({
        host: '127.0.0.1',
        port: 0,
        secret: 'outbound-secret',
      }) as unknown as net.Server;
      await new Promise<void>((r) => (appServer.listening ? r() : appServer.once('listening', () => r())));
      const appPort = (appServer.address() as net.AddressInfo).port;

      httpServer = http.createServer((req, res) => {
        asked.push(req.url ?? '');
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ action: 'route', data: { uri: `127.0.0.1:${appPort}` } }));
      });
      await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
      const httpPort = (httpServer.address() as net.AddressInfo).port;
      d = await startDrachtio({
        secret: 'outbound-secret',
        requestHandlerUrl: `http://127.0.0.1:${httpPort}/route`,
      });
    });

    afterAll(async () => {
      // drachtio first: it holds connections to the app server, which would keep close() waiting.
      await d?.stop();
      await new Promise((r) => appServer?.close(r));
      await new Promise((r) => httpServer?.close(r));
    });

    it('an INVITE is routed by the HTTP answer to the srf.listen app, whose 302 reaches the client', async () => {
      const client = await UdpClient.open();
      try {
        const invite = request('INVITE', client);
        client.send(invite.text, d.sipPort);
        const redirect = await client.next(/^SIP\/2\.0 302/, 5_000);
        expect(header(redirect, 'Call-ID')).toBe(invite.callId);
        expect(header(redirect, 'Contact')).toBe(POOL_CONTACT);
        expect(invites).toEqual([invite.callId]);
        // drachtio appends "/?method=...&..." to the configured URL.
        expect(asked.length).toBe(1);
        const url = new URL(asked[0] ?? '', 'http://127.0.0.1');
        expect(url.pathname).toBe('/route/');
        expect(url.searchParams.get('method')).toBe('INVITE');
        expect(url.searchParams.get('uriUser')).toBe('ocschat');
        expect(url.searchParams.get('source_address')).toBe('127.0.0.1');
      } finally {
        client.close();
      }
    });
  });

  describe('configuration', () => {
    it('DRACHTIO_* variables of the test process do not override the written config', async () => {
      // drachtio prefers DRACHTIO_LOGLEVEL to the config file; the harness keeps such variables away.
      process.env['DRACHTIO_LOGLEVEL'] = 'debug';
      let d: DrachtioHandle | undefined;
      try {
        d = await startDrachtio({ logLevel: 'notice' });
        await d.waitForLog(/Logging threshold:\s+1\b/);
      } finally {
        delete process.env['DRACHTIO_LOGLEVEL'];
        await d?.stop();
      }
    });
  });

  describe('stop()', () => {
    it('ends the process and frees its ports', async () => {
      const d = await startDrachtio();
      const { pid, sipPort } = d;
      await d.stop();
      expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r, j) => {
        sock.once('error', j);
        sock.bind(sipPort, '127.0.0.1', r);
      });
      sock.close();
    });

    it('kill("SIGKILL") ends it at once; stop() afterwards still resolves', async () => {
      const d = await startDrachtio();
      const pid = d.pid;
      d.kill('SIGKILL');
      await d.exited();
      expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
      await d.stop();
    });
  });
});
