// pchat_pool_member_up follows the table: a member a reload removes loses its series (it is neither
// up nor down any more), a member it adds gets one.
import dgram from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { NO_DNS, startTestService, type TestService } from '../helpers/service.js';

let svc: TestService | undefined;
const sockets: dgram.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await svc?.stop();
  svc = undefined;
});

const table = (port: number): string => `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${port};transport=udp
`;

async function silentPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s.address().port;
}

it('a pool member removed by a reload leaves pchat_pool_member_up; the new one appears', async () => {
  const [a, b] = [await silentPort(), await silentPort()];
  svc = await startTestService({
    endpoints: table(a),
    sip: 'admin:\n  listen: 127.0.0.1:0\n',
    proxy: { dns: NO_DNS, probe: { intervalMs: 60_000, timeoutMs: 1000, upThreshold: 1, downThreshold: 1 } },
  });
  const admin = svc.server.adminAddress()!;
  const members = async (): Promise<string[]> =>
    (await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('pchat_pool_member_up{'))
      .map((l) => /target="([^"]+)"/.exec(l)![1]!);
  const t0 = Date.now();
  while ((await members()).length === 0 && Date.now() - t0 < 3000)
    await new Promise((r) => setTimeout(r, 50));
  expect(await members()).toEqual([`udp:127.0.0.1:${a}`]);
  await writeFile(join(svc.dir, 'endpoints.yaml'), table(b));
  expect((await svc.server.reload('test')).ok).toBe(true);
  const t1 = Date.now();
  while (!(await members()).includes(`udp:127.0.0.1:${b}`) && Date.now() - t1 < 3000)
    await new Promise((r) => setTimeout(r, 50));
  expect(await members()).toEqual([`udp:127.0.0.1:${b}`]);
});

it('pchat_pool_member_up names the pool by its FQDN, and a member of two pools has a series in each', async () => {
  const port = await silentPort();
  svc = await startTestService({
    endpoints: `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: proxy
  - sipAddress: sip:chat2@contoso.com
    poolFqdn: pcpool2.contoso.com
    mode: proxy
pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:127.0.0.1:${port};transport=udp
  - fqdn: pcpool2.contoso.com
    targets:
      - uri: sip:127.0.0.1:${port};transport=udp
`,
    sip: 'admin:\n  listen: 127.0.0.1:0\n',
    proxy: { dns: NO_DNS, probe: { intervalMs: 60_000, timeoutMs: 1000, upThreshold: 1, downThreshold: 1 } },
  });
  const admin = svc.server.adminAddress()!;
  const series = async (): Promise<string[]> =>
    (await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('pchat_pool_member_up{'))
      .map((l) => l.replace(/ \d+$/, ''))
      .sort();
  const t0 = Date.now();
  while ((await series()).length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 50));
  expect(await series()).toEqual([
    `pchat_pool_member_up{pool="pcpool.contoso.com",target="udp:127.0.0.1:${port}"}`,
    `pchat_pool_member_up{pool="pcpool2.contoso.com",target="udp:127.0.0.1:${port}"}`,
  ]);
});
