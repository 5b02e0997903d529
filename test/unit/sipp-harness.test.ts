// Tests the SIPp harness against a tiny UDP responder, independently of the service.
import dgram from 'node:dgram';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseStatCsv, requireSipp, runSipp } from '../helpers/sipp.js';

interface Responder {
  port: number;
  received: string[];
  close(): Promise<void>;
}

/**
 * Answers every INVITE with `status` (a 302 carries Contact: <sip:contactHost>) and absorbs the ACK.
 * Headers are copied the way RFC 3261 §8.2.6.2 says a UAS builds a response.
 */
async function startResponder(status: 302 | 404, contactHost = 'pcpool.contoso.com'): Promise<Responder> {
  const socket = dgram.createSocket('udp4');
  const received: string[] = [];
  socket.on('message', (msg, rinfo) => {
    const text = msg.toString('latin1');
    received.push(text.slice(0, text.indexOf('\r\n')));
    if (!text.startsWith('INVITE ')) return;
    const lines = text.split('\r\n');
    const header = (name: string): string[] =>
      lines.filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    const response = [
      `SIP/2.0 ${status} ${status === 302 ? 'Moved Temporarily' : 'Not Found'}`,
      ...header('Via'),
      ...header('From'),
      `${header('To')[0] ?? 'To: <sip:missing@invalid>'};tag=responder1`,
      ...header('Call-ID'),
      ...header('CSeq'),
      ...(status === 302 ? [`Contact: <sip:${contactHost};transport=tls>`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    socket.send(response, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

const redirectVars = { service: 'ocschat', domain: 'contoso.com', pool: 'pcpool.contoso.com' };

describe('runSipp', () => {
  let responder: Responder | undefined;

  beforeAll(() => {
    // Fails, not skips, when SIPp is missing: CI installs it.
    requireSipp();
  });

  afterEach(async () => {
    await responder?.close();
    responder = undefined;
  });

  it('counts redirect calls that get 302 with the expected Contact as successful, and sends the ACK', async () => {
    responder = await startResponder(302);
    const result = await runSipp({
      scenario: 'redirect-uac',
      target: { host: '127.0.0.1', port: responder.port },
      transport: 'udp',
      calls: 5,
      rate: 50,
      vars: redirectVars,
      timeoutMs: 10_000,
    });
    expect(result.errors).toBe('');
    expect(result).toMatchObject({ exitCode: 0, killed: false, successful: 5, failed: 0 });
    expect(responder.received.filter((l) => l === 'INVITE sip:ocschat@contoso.com SIP/2.0')).toHaveLength(5);
    expect(responder.received.filter((l) => l === 'ACK sip:ocschat@contoso.com SIP/2.0')).toHaveLength(5);
    const buckets = result.stats?.responseTimeBuckets ?? [];
    expect(buckets.length).toBeGreaterThan(0);
    expect(buckets.reduce((sum, b) => sum + b.count, 0)).toBe(5);
  });

  it('counts a 404 to the redirect scenario as failed', async () => {
    responder = await startResponder(404);
    const result = await runSipp({
      scenario: 'redirect-uac',
      target: { host: '127.0.0.1', port: responder.port },
      transport: 'udp',
      calls: 1,
      vars: redirectVars,
      timeoutMs: 10_000,
    });
    expect(result).toMatchObject({ exitCode: 1, successful: 0, failed: 1 });
    expect(result.stats?.failures).toMatchObject({ FailedUnexpectedMessage: 1 });
    expect(result.errors).toContain('while expecting');
  });

  it('counts a 302 naming another pool as failed', async () => {
    responder = await startResponder(302, 'elsewhere.example.net');
    const result = await runSipp({
      scenario: 'redirect-uac',
      target: { host: '127.0.0.1', port: responder.port },
      transport: 'udp',
      calls: 1,
      vars: redirectVars,
      timeoutMs: 10_000,
    });
    expect(result).toMatchObject({ exitCode: 1, successful: 0, failed: 1 });
    expect(result.stats?.failures).toMatchObject({ FailedStrcmpDoesntMatch: 1 });
  });

  it('kills SIPp and reports failure when nothing answers before the timeout', async () => {
    // A bound socket that never answers: SIPp retransmits until its global -timeout ends the run.
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const result = await runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: silent.address().port },
        transport: 'udp',
        calls: 1,
        vars: redirectVars,
        timeoutMs: 1_000,
      });
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(result.exitCode).not.toBe(0);
      expect(result.successful).toBe(0);
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('refuses bad arguments before starting anything', async () => {
    await expect(
      runSipp({
        scenario: 'redirect-uac',
        target: { host: '127.0.0.1', port: 9 },
        transport: 'udp',
        calls: 0,
        timeoutMs: 1_000,
      }),
    ).rejects.toThrow(/calls must be >= 1/);
  });
});

describe('parseStatCsv', () => {
  it('reads the last row and the response-time buckets', () => {
    const csv = [
      'SuccessfulCall(C);FailedCall(C);FailedMaxUDPRetrans(C);Retransmissions(C);ResponseTimeRepartition1;ResponseTimeRepartition1_<1;ResponseTimeRepartition1_>=1;',
      '0;0;0;0;;0;0;',
      '7;2;2;4;;6;1;',
    ].join('\n');
    const stats = parseStatCsv(csv);
    expect(stats).toMatchObject({ successful: 7, failed: 2, retransmissions: 4 });
    expect(stats.failures).toEqual({ FailedMaxUDPRetrans: 2 });
    expect(stats.responseTimeBuckets).toEqual([
      { label: '<1', count: 6 },
      { label: '>=1', count: 1 },
    ]);
  });
});
