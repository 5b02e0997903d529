// trace shows pool member health as the running service reports it on its admin port.

import { describe, it, expect } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { liveHealth } from '../../src/cli/trace-command.js';
import type { LoadedConfig } from '../../src/config/load.js';

function configWithAdmin(port: number | undefined): LoadedConfig {
  return {
    server: { admin: { listen: port === undefined ? undefined : { host: '127.0.0.1', port } } },
  } as unknown as LoadedConfig;
}

describe('trace: live pool member health', () => {
  it('reads pchat_pool_member_up from /metrics', async () => {
    const server = http.createServer((_req, res) => {
      res.end(
        '# TYPE pchat_pool_member_up gauge\n' +
          'pchat_pool_member_up{pool="127.0.0.1",target="udp:127.0.0.1:5070"} 1\n' +
          'pchat_pool_member_up{pool="pc2.contoso.com",target="tls:10.0.0.2:5061"} 0\n',
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const health = await liveHealth(configWithAdmin((server.address() as AddressInfo).port));
    server.close();
    expect(health).toEqual(
      new Map([
        ['udp:127.0.0.1:5070', true],
        ['tls:10.0.0.2:5061', false],
      ]),
    );
  });

  it('is unknown when the admin port is off or nobody answers', async () => {
    expect(await liveHealth(configWithAdmin(undefined))).toBeUndefined();
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    expect(await liveHealth(configWithAdmin(port), 300)).toBeUndefined();
  });
});
