// Proxy mode end to end over real sockets: SIPp as the legacy client → the service → SIPp as the
// pool member, full INVITE/200/ACK/INFO/BYE dialogs over UDP and TCP, with and without Record-Route.

import { describe, it, expect, afterEach } from 'vitest';
import { startTestService, NO_DNS, type TestService } from '../helpers/service.js';
import { runSipp, requireSipp } from '../helpers/sipp.js';
import { startSippServer, type SippServer } from '../helpers/sipp-server.js';

function endpoints(targets: string[], extra = ''): string {
  return `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy${extra}
pools:
  - fqdn: pcpool.contoso.com
    targets:
${targets.map((t) => `      - uri: ${t}\n`).join('')}`;
}

let svc: TestService | undefined;
const servers: SippServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.stop();
  await svc?.stop();
  svc = undefined;
});

async function start(targets: string[], opts: { recordRoute?: boolean } = {}): Promise<TestService> {
  svc = await startTestService({
    endpoints: endpoints(targets),
    sip: 'sip:\n  t1: 100\n',
    proxy: {
      dns: NO_DNS,
      probe: false,
      ...(opts.recordRoute === undefined ? {} : { recordRoute: opts.recordRoute }),
    },
  });
  return svc;
}

describe('proxy mode with SIPp peers', () => {
  requireSipp();

  for (const transport of ['udp', 'tcp'] as const) {
    for (const recordRoute of [false, true]) {
      it(`full dialog INVITE/200/ACK/INFO/BYE over ${transport.toUpperCase()}, Record-Route ${recordRoute ? 'on' : 'off'}`, async () => {
        const uas = await startSippServer({ scenario: 'pool-uas', transport, calls: 3, timeoutMs: 20_000 });
        servers.push(uas);
        const s = await start([`sip:127.0.0.1:${uas.port};transport=${transport}`], { recordRoute });
        const uac = await runSipp({
          scenario: 'proxy-uac',
          target: { host: '127.0.0.1', port: s.port(transport) },
          transport,
          calls: 3,
          rate: 10,
          vars: { service: 'ocschat', domain: 'contoso.com' },
          timeoutMs: 20_000,
        });
        expect(uac.errors, uac.stdout.slice(-2000)).toBe('');
        expect(uac.successful).toBe(3);
        expect(uac.failed).toBe(0);
        const server = await uas.done;
        expect(server.successful).toBe(3);
        const decisions = s.lines.filter((l) => l.msg === 'decision' && l.mode === 'proxy');
        expect(decisions).toHaveLength(3);
        expect(decisions[0]).toMatchObject({
          status: 200,
          outcome: 'proxied',
          target: `${transport}:127.0.0.1:${uas.port}`,
        });
        // INFO and BYE of each dialog came through the proxy too, answered by the pool member.
        const inDialog = s.lines.filter((l) => l.msg === 'decision' && l.mode === 'in-dialog');
        expect(inDialog.map((l) => `${String(l.method)} ${String(l.status)}`).sort()).toEqual([
          ...Array(3).fill('BYE 200'),
          ...Array(3).fill('INFO 200'),
        ] as string[]);
      });
    }
  }
});
