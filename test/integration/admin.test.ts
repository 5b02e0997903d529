// The admin HTTP port of the real service on loopback port 0: health, readiness, Prometheus metrics
// scraped and parsed, the live table, POST /reload; and a cutover window whose Retry-After counts down
// on an injected wall clock and ends by itself.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { probe } from '../../src/cli/sip-probe.js';
import { startServer, type RunningServer } from '../../src/server/server.js';

let dir: string;
let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(endpoints: string, wallClock?: () => number): Promise<RunningServer> {
  dir = await mkdtemp(join(tmpdir(), 'pchat-admin-'));
  await writeFile(
    join(dir, 'server.yaml'),
    'listen:\n  - udp://127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n',
  );
  await writeFile(join(dir, 'endpoints.yaml'), endpoints);
  server = await startServer({
    configDir: dir,
    logger: pino({ level: 'silent' }),
    watch: false,
    ...(wallClock === undefined ? {} : { wallClock }),
  });
  return server;
}

function url(s: RunningServer, path: string): string {
  const a = s.adminAddress()!;
  return `http://${a.host}:${a.port}${path}`;
}

async function invite(s: RunningServer, user: string) {
  const udp = s.addresses().find((a) => a.transport === 'udp')!;
  const r = await probe({
    host: '127.0.0.1',
    port: udp.port,
    method: 'INVITE',
    uri: `sip:${user}@contoso.com`,
    timeoutMs: 2000,
  });
  return r.final;
}

/** Prometheus text format, sample lines only: `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const TABLE = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

describe('admin HTTP', () => {
  it('healthz, readyz, endpoints; 404 and 405 for anything else', async () => {
    const s = await start(TABLE);
    expect(s.adminAddress()?.host).toBe('127.0.0.1');
    expect((await fetch(url(s, '/healthz'))).status).toBe(200);
    expect(await (await fetch(url(s, '/readyz'))).text()).toBe('ready\n');
    const table = (await (await fetch(url(s, '/endpoints'))).json()) as {
      endpoints: { sipAddress: string; mode: string }[];
    };
    expect(table.endpoints).toEqual([
      expect.objectContaining({ sipAddress: 'sip:ocschat@contoso.com', mode: 'redirect' }),
    ]);
    expect((await fetch(url(s, '/nothing'))).status).toBe(404);
    const wrong = await fetch(url(s, '/reload'));
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });

  it('metrics count decisions by method, endpoint, mode and outcome, with latencies, parse errors and reloads', async () => {
    const s = await start(TABLE);
    expect((await invite(s, 'ocschat'))?.status).toBe(302);
    expect((await invite(s, 'ocschat'))?.status).toBe(302);
    expect((await invite(s, 'nobody'))?.status).toBe(404);
    const udp = s.addresses().find((a) => a.transport === 'udp')!;
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    await new Promise<void>((r) =>
      sock.send(Buffer.from('garbage\r\n\r\n'), udp.port, '127.0.0.1', () => r()),
    );
    sock.close();
    const res = await fetch(url(s, '/reload'), { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, trigger: 'http', endpoints: 1 });

    const scrape = await fetch(url(s, '/metrics'));
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    let m = samples(await scrape.text());
    // The garbage datagram is counted once the router has seen it.
    for (
      let i = 0;
      i < 20 && (m.get('pchat_dropped_messages_total') ?? 0) + (m.get('pchat_parse_errors_total') ?? 0) === 0;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
      m = samples(await (await fetch(url(s, '/metrics'))).text());
    }
    expect(
      m.get(
        'pchat_requests_total{method="INVITE",endpoint="sip:ocschat@contoso.com",mode="redirect",outcome="redirect",status="302"}',
      ),
    ).toBe(2);
    expect(
      m.get('pchat_requests_total{method="INVITE",endpoint="",mode="",outcome="unknown",status="404"}'),
    ).toBe(1);
    expect(m.get('pchat_response_time_seconds_count{method="INVITE",outcome="redirect"}')).toBe(2);
    expect(m.get('pchat_response_time_seconds_bucket{le="+Inf",method="INVITE",outcome="redirect"}')).toBe(2);
    expect(m.get('pchat_config_reloads_total{result="ok"}')).toBe(1);
    expect(m.get('pchat_config_reloads_total{result="refused"}')).toBe(0);
    expect(m.get('pchat_endpoints')).toBe(1);
    expect(m.has('pchat_transactions_in_flight')).toBe(true);
    expect(
      (m.get('pchat_parse_errors_total') ?? 0) + (m.get('pchat_dropped_messages_total') ?? 0),
    ).toBeGreaterThanOrEqual(1);
  });

  it('POST /reload of a refused config answers 409 with the issues', async () => {
    const s = await start(TABLE);
    await writeFile(
      join(dir, 'endpoints.yaml'),
      'endpoints:\n  - sipAddress: ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n',
    );
    const res = await fetch(url(s, '/reload'), { method: 'POST' });
    expect(res.status).toBe(409);
    const body = (await res.json()) as { ok: boolean; issues: string[] };
    expect(body.issues[0]).toContain(
      'endpoints.yaml:2:17: endpoints[0].sipAddress: must use the sip: prefix',
    );
    expect((await invite(s, 'ocschat'))?.status).toBe(302);
  });
});

describe('cutover window', () => {
  it('503 with a Retry-After counting down on the wall clock, then service resumes by itself', async () => {
    const end = Date.parse('2026-12-05T06:00:00Z');
    let now = end - 90_000;
    const s = await start(`${TABLE}    maintenanceUntil: 2026-12-05T06:00Z\n`, () => now);
    const first = await invite(s, 'ocschat');
    expect(first?.status).toBe(503);
    expect(first?.header('retry-after')).toBe('90');
    now = end - 2_500;
    const later = await invite(s, 'ocschat');
    expect(later?.status).toBe(503);
    expect(later?.header('retry-after')).toBe('3');
    now = end;
    expect((await invite(s, 'ocschat'))?.status).toBe(302);
  });

  it('a pool switched on for maintenance covers its endpoints until switched off', async () => {
    const s = await start(`${TABLE}pools:\n  - fqdn: pcpool.contoso.com\n    maintenance: on\n`, () =>
      Date.now(),
    );
    const r = await invite(s, 'ocschat');
    expect(r?.status).toBe(503);
    expect(r?.header('retry-after')).toBe('3600');
    await writeFile(
      join(dir, 'endpoints.yaml'),
      `${TABLE}pools:\n  - fqdn: pcpool.contoso.com\n    maintenance: off\n`,
    );
    expect((await s.reload()).modified).toEqual(['sip:ocschat@contoso.com']);
    expect((await invite(s, 'ocschat'))?.status).toBe(302);
  });

  it('a reload that changes only recordRoute reports the endpoint modified, and /endpoints shows it', async () => {
    const proxied = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
`;
    const s = await start(proxied);
    await writeFile(
      join(dir, 'endpoints.yaml'),
      `${proxied}    recordRoute: true
`,
    );
    const result = await s.reload();
    expect(result.modified).toEqual(['sip:ocschat@contoso.com']);
    const table = (await (await fetch(url(s, '/endpoints'))).json()) as {
      endpoints: { sipAddress: string; recordRoute: boolean | null }[];
    };
    expect(table.endpoints).toEqual([
      expect.objectContaining({ sipAddress: 'sip:ocschat@contoso.com', recordRoute: true }),
    ]);
  });
});
