// The service on the drachtio engine against a real drachtio-server and real SIPp: every mode over
// UDP and TCP, failover from a member answering 503, the legacy lookup exchange, bad input, and a
// reload under load. drachtio-server owns SIP here; the service decides.

import dgram from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { drachtioAvailable, drachtioTitle, startDrachtio, type DrachtioHandle } from '../helpers/drachtio.js';
import { startDrachtioService, waitFor, type DrachtioService } from '../helpers/drachtio-service.js';
import { NO_DNS } from '../helpers/service.js';
import { requireSipp, runSipp, type SippResult, type SippTransport } from '../helpers/sipp.js';
import { startSippServer, type SippServer } from '../helpers/sipp-server.js';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';

const bin = drachtioAvailable();

const ENDPOINTS = (members: string[] = []) => `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:closed@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
    maintenance: on
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: proxpool.contoso.com
    mode: proxy
    # drachtio-server stays in the dialog: SIPp sends the ACK, INFO and BYE to drachtio, not to the member.
    recordRoute: true
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:pcpool.contoso.com:5061;transport=tls
  - fqdn: proxpool.contoso.com
    targets:
${(members.length > 0 ? members : ['sip:127.0.0.1:9;transport=udp']).map((m) => `      - uri: ${m}\n`).join('')}`;

function explain(r: SippResult): string {
  return `${r.errors}\n${r.stdout.slice(-1500)}`;
}

/** One request over UDP from a loopback socket; the first final response's text. */
async function udpRequest(port: number, text: string, timeoutMs = 3000): Promise<string> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const local = sock.address().port;
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no final response')), timeoutMs);
      sock.on('message', (m) => {
        const s = m.toString('latin1');
        if (/^SIP\/2\.0 [2-6]\d\d /.test(s)) {
          clearTimeout(timer);
          resolve(s);
        }
      });
      sock.send(text.replaceAll('LOCALPORT', String(local)), port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

function invite(ruri: string, extra = ''): string {
  const id = Math.random().toString(36).slice(2);
  return (
    `INVITE ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK${id}\r\n` +
    `From: <sip:t@contoso.com>;tag=${id}\r\nTo: <${ruri}>\r\nCall-ID: ${id}@test\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:t@127.0.0.1:LOCALPORT>\r\nMax-Forwards: 70\r\n${extra}Content-Length: 0\r\n\r\n`
  );
}

describe.skipIf(bin === undefined)(drachtioTitle('drachtio engine (real drachtio-server, SIPp)', bin), () => {
  let drachtio: DrachtioHandle;
  let svc: DrachtioService | undefined;
  const uas: SippServer[] = [];

  beforeAll(async () => {
    requireSipp();
    drachtio = await startDrachtio();
  });
  afterAll(async () => {
    await drachtio?.stop();
  });
  afterEach(async () => {
    for (const s of uas.splice(0)) s.stop();
    await svc?.stop();
    svc = undefined;
  });

  const target = () => ({ host: '127.0.0.1', port: drachtio.sipPort });

  for (const transport of ['udp', 'tcp'] as SippTransport[]) {
    it(`redirect: 302 naming the pool over ${transport.toUpperCase()}, one decision line per call`, async () => {
      svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS() });
      const r = await runSipp({
        scenario: 'redirect-uac',
        target: target(),
        transport,
        calls: 10,
        rate: 50,
        vars: { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' },
        timeoutMs: 15_000,
      });
      expect(r.successful, explain(r)).toBe(10);
      expect(r.failed).toBe(0);
      const d = svc.decisions().filter((l) => l['outcome'] === 'redirect');
      expect(d).toHaveLength(10);
      expect(d[0]).toMatchObject({
        method: 'INVITE',
        mode: 'redirect',
        status: 302,
        endpoint: 'sip:ocschat@contoso.com',
      });
    });

    it(`lookup: the legacy exchange (branch-less INVITE, 200 with SDP and Session-Expires, ACK, INFO cmd:requri, our INFO rpl:requri, BYE) over ${transport.toUpperCase()}`, async () => {
      svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS() });
      const r = await runSipp({
        scenario: 'lookup-uac',
        target: target(),
        transport,
        calls: 2,
        rate: 10,
        vars: { service: 'lookup', domain: 'contoso.com' },
        timeoutMs: 20_000,
      });
      expect(r.successful, explain(r)).toBe(2);
      expect(r.failed).toBe(0);
      const handouts = svc.decisions().filter((l) => l['outcome'] === 'lookup-handout');
      expect(handouts).toHaveLength(2);
      expect(handouts[0]).toMatchObject({ method: 'INFO', target: 'sip:lookup@pcpool.contoso.com' });
      // The client's BYE ended both dialogs: nothing is left held.
      await waitFor(() => svc!.server.engine()!.inFlight() === 0, 3000, 'lookup dialogs ended');
    });

    it(`proxy: a member answering 503 is failed over to the next, which answers and gets the Ms-* header unchanged, over ${transport.toUpperCase()}`, async () => {
      const busy = await startSippServer({ scenario: 'busy-uas', transport, calls: 1, timeoutMs: 20_000 });
      const good = await startSippServer({ scenario: 'pool-uas-ms', transport, calls: 1, timeoutMs: 20_000 });
      uas.push(busy, good);
      const members = [busy, good].map((s) => `sip:127.0.0.1:${s.port};transport=${transport}`);
      svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS(members) });
      const r = await runSipp({
        scenario: 'proxy-uac',
        target: target(),
        transport,
        calls: 1,
        vars: { service: 'proxied', domain: 'contoso.com' },
        timeoutMs: 20_000,
      });
      expect(r.successful, explain(r)).toBe(1);
      expect((await busy.done).successful).toBe(1);
      // pool-uas-ms fails its call when Ms-Client-Diagnostics did not arrive as sent.
      expect((await good.done).successful).toBe(1);
      const d = svc.decisions().find((l) => l['method'] === 'INVITE' && l['mode'] === 'proxy');
      expect(d).toMatchObject({
        status: 200,
        outcome: 'proxied',
        target: `${transport}:127.0.0.1:${good.port}`,
      });
      // The 503 held the first member down, as the native engine does: the next INVITE skips it.
      expect(
        svc.lines.some(
          (l) => l['msg'] === 'pool member held down' && String(l['target']).endsWith(`:${busy.port}`),
        ),
      ).toBe(true);
    });
  }

  it('proxy: a member that does not answer is passed over after drachtio.provisionalTimeout and held down', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    const good = await startSippServer({
      scenario: 'pool-uas',
      transport: 'udp',
      calls: 1,
      timeoutMs: 20_000,
    });
    uas.push(good);
    try {
      const members = [silent.address().port, good.port].map((p) => `sip:127.0.0.1:${p};transport=udp`);
      svc = await startDrachtioService({
        servers: [drachtio],
        endpoints: ENDPOINTS(members),
        drachtio: 'provisionalTimeout: 500',
      });
      const r = await runSipp({
        scenario: 'proxy-uac',
        target: target(),
        transport: 'udp',
        calls: 1,
        vars: { service: 'proxied', domain: 'contoso.com' },
        timeoutMs: 20_000,
      });
      expect(r.successful, explain(r)).toBe(1);
      (await import('node:fs')).writeFileSync(
        '/tmp/to.json',
        JSON.stringify(svc.lines.filter((l) => /proxy results|held down|decision/.test(String(l['msg'])))),
      );
      const d = svc.decisions().find((l) => l['method'] === 'INVITE' && l['mode'] === 'proxy');
      expect(d).toMatchObject({ status: 200, target: `udp:127.0.0.1:${good.port}` });
      expect(
        svc.lines.some(
          (l) =>
            l['msg'] === 'pool member held down' && String(l['target']).endsWith(`:${silent.address().port}`),
        ),
      ).toBe(true);
    } finally {
      silent.close();
    }
  });

  it('answers as the native engine does: 404 unknown, 483 Max-Forwards 0, 503 with Retry-After in maintenance, 200 to OPTIONS for the service, 420 for an unknown Require', async () => {
    svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS() });
    const port = drachtio.sipPort;
    expect(await udpRequest(port, invite('sip:nobody@contoso.com'))).toMatch(/^SIP\/2\.0 404 /);
    expect(
      await udpRequest(
        port,
        invite('sip:ocschat@contoso.com').replace('Max-Forwards: 70', 'Max-Forwards: 0'),
      ),
    ).toMatch(/^SIP\/2\.0 483 /);
    const closed = await udpRequest(port, invite('sip:closed@contoso.com'));
    expect(closed).toMatch(/^SIP\/2\.0 503 /);
    expect(closed).toMatch(/\r\nRetry-After: 3600\r\n/i);
    const options = await udpRequest(port, invite(`sip:127.0.0.1:${port}`).replace(/INVITE/g, 'OPTIONS'));
    expect(options).toMatch(/^SIP\/2\.0 200 /);
    expect(options).toMatch(/\r\nAllow: INVITE, ACK, CANCEL, OPTIONS/);
    const required = await udpRequest(port, invite('sip:ocschat@contoso.com', 'Require: x-nothing\r\n'));
    expect(required).toMatch(/^SIP\/2\.0 420 /);
    expect(required).toMatch(/\r\nUnsupported: x-nothing\r\n/);
    const outcomes = svc.decisions().map((l) => l['outcome']);
    expect(outcomes).toEqual(['unknown', 'too-many-hops', 'maintenance', 'options', 'bad-extension']);
  });

  it('a request with UTF-8 in its body is read as the bytes drachtio received (Content-Length counts bytes)', async () => {
    svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS() });
    const text = invite('sip:ocschat@contoso.com', 'Content-Type: text/plain\r\n').replace(
      'Content-Length: 0\r\n\r\n',
      'Content-Length: 6\r\n\r\nZoë ✓'.replace('6', String(Buffer.byteLength('Zoë ✓'))),
    );
    expect(await udpRequest(drachtio.sipPort, text)).toMatch(/^SIP\/2\.0 302 /);
  });

  it('lookup: a bad XCCOS body gets the native answer (400, the dialog goes on)', async () => {
    svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS() });
    const r = await runSipp({
      scenario: 'lookup-badxml-uac',
      target: target(),
      transport: 'tcp',
      calls: 1,
      vars: { service: 'lookup', domain: 'contoso.com' },
      timeoutMs: 15_000,
    });
    expect(r.successful, explain(r)).toBe(1);
    expect(svc.decisions().find((l) => l['outcome'] === 'xccos-refused')).toMatchObject({
      level: 40,
      status: 400,
    });
  });

  it('the access policy applies to the source drachtio-server saw: a network outside the allow list gets 403', async () => {
    svc = await startDrachtioService({
      servers: [drachtio],
      endpoints: ENDPOINTS(),
      serverYaml: 'access:\n  allow:\n    - networks: [192.0.2.0/24]\n',
    });
    expect(await udpRequest(drachtio.sipPort, invite('sip:ocschat@contoso.com'))).toMatch(/^SIP\/2\.0 403 /);
  });

  it('a reload under load loses no call: 302s go on while endpoints.yaml is rewritten, and the new table answers', async () => {
    svc = await startDrachtioService({ servers: [drachtio], endpoints: ENDPOINTS(), watch: true });
    const file = join(svc.dir, 'endpoints.yaml');
    const load = runSipp({
      scenario: 'redirect-uac',
      target: target(),
      transport: 'udp',
      calls: 400,
      rate: 200,
      vars: { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' },
      timeoutMs: 20_000,
    });
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 250));
      await writeFile(
        file,
        ENDPOINTS().replace('    mode: redirect\n', `    mode: redirect\n    displayName: version ${i}\n`),
      );
    }
    const r = await load;
    expect(r.successful, explain(r)).toBe(400);
    expect(r.failed).toBe(0);
    const reloads = svc.lines.filter((l) => String(l['msg']).startsWith('reload applied'));
    expect(reloads.length).toBeGreaterThan(0);
    // A new endpoint answers at once after its reload.
    await writeFile(
      file,
      ENDPOINTS()
        .replace('sip:closed@contoso.com', 'sip:newcomer@contoso.com')
        .replace('    maintenance: on\n', ''),
    );
    await waitFor(
      () =>
        svc!.server.table().size === 4 &&
        svc!.server.table().lookupUri('sip:newcomer@contoso.com') !== undefined,
      5000,
      'reload',
    );
    expect(await udpRequest(drachtio.sipPort, invite('sip:newcomer@contoso.com'))).toMatch(/^SIP\/2\.0 302 /);
  });

  it('the admin port shows the engine: /readyz, pchat_drachtio_connected, /drachtio with its SIP addresses; trace --live goes through drachtio', async () => {
    svc = await startDrachtioService({
      servers: [drachtio],
      endpoints: ENDPOINTS(),
      serverYaml: 'admin:\n  listen: 127.0.0.1:0\n',
    });
    const admin = svc.server.adminAddress()!;
    const base = `http://127.0.0.1:${admin.port}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain(
      `pchat_drachtio_connected{server="127.0.0.1:${drachtio.adminPort}",direction="inbound"} 1`,
    );
    const links = (await (await fetch(`${base}/drachtio`)).json()) as {
      links: { state: string; sip: string[] }[];
    };
    expect(links.links[0]).toMatchObject({ state: 'connected' });
    expect(links.links[0]!.sip).toContain(`udp/127.0.0.1:${drachtio.sipPort}`);
    // A request drachtio-server passes on but the service's parser refuses (an empty URI parameter
    // in Contact, RFC 3261 §19.1.1): 400, counted with the native engine's parse errors.
    expect(
      await udpRequest(
        drachtio.sipPort,
        invite('sip:ocschat@contoso.com').replace(/Contact: <[^>]*>/, 'Contact: <sip:t@127.0.0.1;;>'),
      ),
    ).toMatch(/^SIP\/2\.0 400 /);
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^pchat_parse_errors_total 1$/m);
    // Inbound: drachtio-servers are not routed to this instance by URL.
    expect((await fetch(`${base}/drachtio/route/?method=INVITE`)).status).toBe(404);
    // trace --live finds drachtio's SIP address through the admin port and draws the 302.
    await writeFile(
      join(svc.dir, 'server.yaml'),
      (await import('node:fs'))
        .readFileSync(join(svc.dir, 'server.yaml'), 'utf8')
        .replace('127.0.0.1:0', `127.0.0.1:${admin.port}`),
    );
    let out = '';
    const io: CliIo = {
      out: (t) => void (out += t),
      err: (t) => void (out += t),
      interactive: false,
      confirm: () => Promise.resolve(false),
      env: {},
    };
    const code = await runCli(
      ['trace', 'sip:ocschat@contoso.com', '--live', '--timeout', '2000', '--config-dir', svc.dir],
      io,
    );
    expect(out).toContain('302');
    expect(code, out).toBe(0);
    expect(svc.decisions().some((l) => l['outcome'] === 'redirect')).toBe(true);
  });

  it('pool members are probed with OPTIONS sent through drachtio-server: the one answering is up, the silent one down', async () => {
    // Member A answers every OPTIONS 200 and notes where it came from; member B's port is silent.
    const a = dgram.createSocket('udp4');
    const b = dgram.createSocket('udp4');
    await Promise.all([a, b].map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))));
    const vias: string[] = [];
    a.on('message', (m, rinfo) => {
      const text = m.toString('latin1');
      if (!text.startsWith('OPTIONS ')) return;
      vias.push(/^Via: (.*)$/im.exec(text)?.[1] ?? '');
      const head = text.split('\r\n\r\n')[0]!.split('\r\n');
      const keep = head
        .filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
        .map((l) => (/^To:/i.test(l) ? `${l};tag=up` : l));
      a.send(
        `SIP/2.0 200 OK\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`,
        rinfo.port,
        rinfo.address,
      );
    });
    try {
      const members = [a, b].map((s) => `sip:127.0.0.1:${s.address().port};transport=udp`);
      svc = await startDrachtioService({
        servers: [drachtio],
        endpoints: ENDPOINTS(members),
        serverYaml: 'admin:\n  listen: 127.0.0.1:0\n',
        proxy: { dns: NO_DNS, probe: { intervalMs: 200, timeoutMs: 300, upThreshold: 1, downThreshold: 1 } },
      });
      const base = `http://127.0.0.1:${svc.server.adminAddress()!.port}`;
      const up = (port: number, metrics: string): string | undefined =>
        new RegExp(`pchat_pool_member_up\\{[^}]*target="udp:127\\.0\\.0\\.1:${port}"[^}]*\\} (\\d)`).exec(
          metrics,
        )?.[1];
      let metrics = '';
      const t0 = Date.now();
      while (Date.now() - t0 < 5000) {
        metrics = await (await fetch(`${base}/metrics`)).text();
        if (up(a.address().port, metrics) === '1' && up(b.address().port, metrics) === '0') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(up(a.address().port, metrics), metrics.slice(0, 3000)).toBe('1');
      expect(up(b.address().port, metrics)).toBe('0');
      // The probes left through drachtio-server's own SIP port, not a socket of the service.
      expect(vias[0]).toContain(`127.0.0.1:${drachtio.sipPort}`);
    } finally {
      a.close();
      b.close();
    }
  });

  it('lookup: a dialog the client abandons after the ACK is ended with BYE when idle', async () => {
    svc = await startDrachtioService({
      servers: [drachtio],
      endpoints: ENDPOINTS(),
      lookup: { idleTimeoutMs: 800 },
    });
    const r = await runSipp({
      scenario: 'lookup-abandon-uac',
      target: target(),
      transport: 'udp',
      calls: 2,
      vars: { service: 'lookup', domain: 'contoso.com' },
      timeoutMs: 15_000,
    });
    expect(r.successful, explain(r)).toBe(2);
    expect(svc.lines.filter((l) => l['msg'] === 'lookup dialog ended' && l['why'] === 'idle')).toHaveLength(
      2,
    );
    expect(svc.server.engine()!.inFlight()).toBe(0);
  });

  it('outbound: once the instance drains, /drachtio/route tells drachtio-server to answer new requests 503 itself', async () => {
    svc = await startDrachtioService({
      listen: { port: 0, secret: 'cymru' },
      endpoints: ENDPOINTS(),
      serverYaml: 'admin:\n  listen: 127.0.0.1:0\n',
      waitReady: false,
    });
    const routeUrl = `http://127.0.0.1:${svc.server.adminAddress()!.port}/drachtio/route`;
    const routed = (await (await fetch(`${routeUrl}/?method=INVITE`)).json()) as { action: string };
    expect(routed.action).toBe('route');
    const d = await startDrachtio({ requestHandlerUrl: routeUrl });
    try {
      expect(await udpRequest(d.sipPort, invite('sip:ocschat@contoso.com'))).toMatch(/^SIP\/2\.0 302 /);
      await svc.server.drain(1000);
      expect(await (await fetch(`${routeUrl}/?method=INVITE`)).json()).toEqual({
        action: 'reject',
        data: { status: 503, reason: 'Service Unavailable' },
      });
      expect(await udpRequest(d.sipPort, invite('sip:ocschat@contoso.com'))).toMatch(/^SIP\/2\.0 503 /);
    } finally {
      await d.stop();
    }
  });

  it('lookup: a 200 never ACKed ends its dialog with BYE after 64*T1', async () => {
    svc = await startDrachtioService({
      servers: [drachtio],
      endpoints: ENDPOINTS(),
      serverYaml: 'sip:\n  t1: 20\n',
    });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const got: string[] = [];
    sock.on('message', (m, rinfo) => {
      const text = m.toString('latin1');
      got.push(text.split('\r\n')[0]!);
      // The BYE is answered (RFC 3261 §15.1.2); the 200 to the INVITE never is.
      if (text.startsWith('BYE ')) {
        const keep = text
          .split('\r\n\r\n')[0]!
          .split('\r\n')
          .filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
        sock.send(
          `SIP/2.0 200 OK\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`,
          rinfo.port,
          rinfo.address,
        );
      }
    });
    try {
      const port = sock.address().port;
      const id = Math.random().toString(36).slice(2);
      sock.send(
        `INVITE sip:lookup@contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${id}\r\n` +
          `From: <sip:legacy@contoso.com>;tag=${id}\r\nTo: <sip:lookup@contoso.com>\r\nCall-ID: ${id}@test\r\n` +
          `CSeq: 1 INVITE\r\nContact: <sip:legacy@127.0.0.1:${port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
        drachtio.sipPort,
        '127.0.0.1',
      );
      await waitFor(() => got.some((l) => l.startsWith('SIP/2.0 200')), 3000, 'the 200');
      // Held until it is ended: pchat_dialogs_held counts the drachtio engine's lookup dialogs too.
      expect(await svc.server.metrics.text()).toMatch(/^pchat_dialogs_held 1$/m);
      await waitFor(() => got.some((l) => l.startsWith('BYE ')), 8000, 'our BYE');
      expect(got.find((l) => l.startsWith('SIP/2.0 200'))).toBeDefined();
      expect(svc.lines.find((l) => l['msg'] === 'lookup dialog ended')).toMatchObject({ why: 'never-acked' });
      await waitFor(() => svc!.server.engine()!.inFlight() === 0, 2000, 'dialog forgotten');
      expect(await svc.server.metrics.text()).toMatch(/^pchat_dialogs_held 0$/m);
    } finally {
      sock.close();
    }
  });
});
