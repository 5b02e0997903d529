// End to end with SIPp as the legacy client: the real service on port 0, over UDP and TCP.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/server/server.js';
import { requireSipp, runSipp, type SippResult, type SippTransport } from '../helpers/sipp.js';

const SERVER_YAML = `listen:
  - udp://127.0.0.1:0
  - tcp://127.0.0.1:0
log:
  level: info
`;

const ENDPOINTS_YAML = `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
`;

/** SIPp's own words on a failure, so a red test says what the client saw. */
function explain(result: SippResult): string {
  return [
    `sipp exit ${result.exitCode}${result.killed ? ' (killed on timeout)' : ''}, successful ${result.successful}, failed ${result.failed}`,
    `failures: ${JSON.stringify(result.stats?.failures ?? {})}`,
    result.errors.slice(0, 2000),
    result.stderr.slice(-1000),
  ].join('\n');
}

function expectAllSuccessful(result: SippResult, calls: number): void {
  expect(
    { exitCode: result.exitCode, successful: result.successful, failed: result.failed },
    explain(result),
  ).toEqual({ exitCode: 0, successful: calls, failed: 0 });
}

describe('legacy client through SIPp', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof startServer>>;
  const ports: Partial<Record<SippTransport, number>> = {};

  beforeAll(async () => {
    // Fails, not skips, when SIPp is missing: CI installs it.
    requireSipp();
    dir = await mkdtemp(join(tmpdir(), 'pchat-sipp-'));
    await writeFile(join(dir, 'server.yaml'), SERVER_YAML);
    await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS_YAML);
    server = await startServer({ configDir: dir, logger: pino({ level: 'silent' }) });
    for (const a of server.addresses())
      if (a.transport === 'udp' || a.transport === 'tcp') ports[a.transport] = a.port;
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const target = (transport: SippTransport): { host: string; port: number } => {
    const port = ports[transport];
    if (port === undefined) throw new Error(`the service has no ${transport} listener`);
    return { host: '127.0.0.1', port };
  };

  describe.each(['udp', 'tcp'] as const)('over %s', (transport) => {
    it('INVITE to sip:ocschat@contoso.com gets 302 naming the pool, To tagged, then ACK (20 calls)', async () => {
      const result = await runSipp({
        scenario: 'redirect-uac',
        target: target(transport),
        transport,
        calls: 20,
        rate: 100,
        vars: { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' },
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 20);
      // RFC 3261 §17.2.1: the ACK ends the server transaction, so over UDP the 302 is not retransmitted.
      if (transport === 'udp') expect(result.stats?.raw['DeadCallMsgs(C)'], explain(result)).toBe('0');
    });

    it('matches the well-known user case-insensitively', async () => {
      const result = await runSipp({
        scenario: 'redirect-uac',
        target: target(transport),
        transport,
        calls: 2,
        rate: 100,
        vars: { service: 'OcsChat', domain: 'CONTOSO.com', pool: 'pcpool.contoso.com' },
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 2);
    });

    it('INVITE to an unknown URI gets 404', async () => {
      const result = await runSipp({
        scenario: 'notfound-uac',
        target: target(transport),
        transport,
        calls: 3,
        rate: 100,
        vars: { service: 'nobody', domain: 'contoso.com' },
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 3);
    });

    it('INVITE with Max-Forwards: 0 gets 483', async () => {
      const result = await runSipp({
        scenario: 'maxfwd0-uac',
        target: target(transport),
        transport,
        calls: 3,
        rate: 100,
        vars: { service: 'ocschat', domain: 'contoso.com' },
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 3);
    });

    it('a malformed request gets 400 and the next request on the same socket still gets 200', async () => {
      const result = await runSipp({
        scenario: 'malformed-uac',
        target: target(transport),
        transport,
        calls: 3,
        rate: 100,
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 3);
    });

    it('OPTIONS to the service itself gets 200', async () => {
      const result = await runSipp({
        scenario: 'options-uac',
        target: target(transport),
        transport,
        calls: 3,
        rate: 100,
        timeoutMs: 15_000,
      });
      expectAllSuccessful(result, 3);
    });
  });
});
