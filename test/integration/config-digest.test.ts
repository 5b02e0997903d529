// The table digest of a real in-process instance: pchat_config_info{sha256,endpoints}, /endpoints and
// /status carry the SHA-256 of endpoints.yaml as loaded; two instances reading the same file agree; an
// applied reload replaces the one series, a refused one leaves it (and /endpoints) on the last good table.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';

const ADMIN = 'admin:\n  listen: 127.0.0.1:0\n';

const TABLE = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

const running: TestService[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function start(endpoints: string): Promise<TestService> {
  const s = await startTestService({ endpoints, sip: ADMIN });
  running.push(s);
  return s;
}

function url(s: TestService, path: string): string {
  const a = s.server.adminAddress()!;
  return `http://${a.host}:${a.port}${path}`;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The pchat_config_info sample lines of a scrape, as they are. */
async function configInfo(s: TestService): Promise<string[]> {
  const text = await (await fetch(url(s, '/metrics'))).text();
  return text.split('\n').filter((l) => l.startsWith('pchat_config_info'));
}

async function endpointsDigest(s: TestService): Promise<unknown> {
  const body = (await (await fetch(url(s, '/endpoints'))).json()) as { config: unknown };
  return body.config;
}

describe('table digest', () => {
  it('is the sha256 of endpoints.yaml, the same on two instances reading the same file, on /metrics, /endpoints and /status', async () => {
    const a = await start(TABLE);
    // Another folder, another server.yaml (its own ports), the same endpoints.yaml.
    const b = await start(TABLE);
    const digest = sha256(TABLE);
    for (const s of [a, b]) {
      expect(await configInfo(s)).toEqual([`pchat_config_info{sha256="${digest}",endpoints="1"} 1`]);
      expect(await endpointsDigest(s)).toEqual({ sha256: digest, endpoints: 1 });
      const status = (await (await fetch(url(s, '/status'))).json()) as Record<string, unknown>;
      expect(status).toMatchObject({
        service: 'pchat-endpoint',
        ready: true,
        config: { sha256: digest, endpoints: 1 },
        transactionsInFlight: 0,
        poolMembers: { up: 0, down: 0 },
      });
      expect(status['uptimeSeconds']).toBeGreaterThanOrEqual(0);
    }
    // A comment is an edit too: the digest is of the file, not of the table built from it.
    const c = await start(`# edited\n${TABLE}`);
    expect(await endpointsDigest(c)).toEqual({ sha256: sha256(`# edited\n${TABLE}`), endpoints: 1 });
  });

  it('an applied reload replaces the one series; a refused reload leaves it and /endpoints as they were', async () => {
    const s = await start(TABLE);
    const next = `${TABLE}  - sipAddress: sip:persistentchat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;
    await writeFile(join(s.dir, 'endpoints.yaml'), next);
    expect((await s.server.reload()).ok).toBe(true);
    const applied = [`pchat_config_info{sha256="${sha256(next)}",endpoints="2"} 1`];
    expect(await configInfo(s)).toEqual(applied);
    expect(await endpointsDigest(s)).toEqual({ sha256: sha256(next), endpoints: 2 });

    await writeFile(join(s.dir, 'endpoints.yaml'), `${next}  - sipAddress: not-a-sip-uri\n`);
    const refused = await s.server.reload();
    expect(refused.ok).toBe(false);
    expect(await configInfo(s)).toEqual(applied);
    expect(await endpointsDigest(s)).toEqual({ sha256: sha256(next), endpoints: 2 });

    // A reload of server.yaml alone keeps the table, so the digest stays.
    await writeFile(join(s.dir, 'endpoints.yaml'), next);
    await writeFile(
      join(s.dir, 'server.yaml'),
      `listen:\n  - udp://127.0.0.1:0\n  - tcp://127.0.0.1:0\nlog:\n  level: info\n${ADMIN}`,
    );
    expect((await s.server.reload()).ok).toBe(true);
    expect(await configInfo(s)).toEqual(applied);
  });
});
