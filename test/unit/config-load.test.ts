// loadConfig: the shipped config/ folder, real files in a temporary folder, both files' problems at once.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import {
  defaultConfigDir,
  loadConfig,
  loadIfChanged,
  parseEndpointsConfig,
  parseServerConfig,
} from '../../src/config/load.js';

describe('the shipped config/ folder', () => {
  it('loads: exactly the two contoso endpoints, in redirect mode, to pcpool.contoso.com', async () => {
    const loaded = await loadConfig(defaultConfigDir());
    expect(loaded.warnings).toEqual([]);
    expect(loaded.files).toEqual({
      server: join(defaultConfigDir(), 'server.yaml'),
      endpoints: join(defaultConfigDir(), 'endpoints.yaml'),
    });
    expect(loaded.endpoints).toEqual({
      endpoints: [
        {
          sipAddress: 'sip:ocschat@contoso.com',
          poolFqdn: 'pcpool.contoso.com',
          displayName: 'Group Chat lookup (legacy clients)',
          mode: 'redirect',
          enabled: true,
        },
        {
          sipAddress: 'sip:persistentchat@contoso.com',
          poolFqdn: 'pcpool.contoso.com',
          mode: 'redirect',
          enabled: true,
        },
      ],
      pools: [],
    });
    expect(loaded.table.size).toBe(2);
    for (const e of loaded.table) {
      expect(e.mode).toBe('redirect');
      expect(e.enabled).toBe(true);
      expect(e.pool).toEqual({ fqdn: 'pcpool.contoso.com', targets: [] });
    }
    expect(loaded.table.lookupUri('sip:OCSChat@contoso.com')?.key).toBe('ocschat@contoso.com');
  });

  it('server.yaml shows the defaults, as its first comment says (the admin port aside)', async () => {
    const text = await readFile(join(defaultConfigDir(), 'server.yaml'), 'utf8');
    expect(parseServerConfig(text, 'server.yaml')).toEqual({
      ...parseServerConfig('', 'server.yaml'),
      admin: { listen: { host: '127.0.0.1', port: 9090 }, hosts: [], allowOrigins: [] },
    });
  });

  it('the commented examples in endpoints.yaml are valid once uncommented', async () => {
    const text = await readFile(join(defaultConfigDir(), 'endpoints.yaml'), 'utf8');
    // Example lines are the indented ones whose comment starts a list item or continues one.
    const uncommented = text.replace(/^ {2}# (?=- | {2})/gm, '  ');
    expect(uncommented).not.toBe(text);
    const cfg = parseEndpointsConfig(uncommented, 'endpoints.yaml');
    expect(cfg.endpoints.map((e) => e.mode)).toEqual(['redirect', 'redirect', 'proxy', 'lookup']);
    expect(cfg.endpoints[3]?.lookupUris).toEqual(['sip:pcpool.fabrikam.com']);
    expect(cfg.pools).toEqual([
      {
        fqdn: 'pcpool.contoso.com',
        targets: [
          { uri: 'sip:pc1.contoso.com:5041;transport=tls', q: 1 },
          { uri: 'sip:pc2.contoso.com:5041;transport=tls', q: 0.5 },
        ],
      },
    ]);
  });

  it('its commented homing rule, once uncommented, loads with the shipped users.csv', async () => {
    const text = await readFile(join(defaultConfigDir(), 'endpoints.yaml'), 'utf8');
    const uncommented = text.replace(/^ {4}# (?=homing:| {2}- | {4}pool:)/gm, '    ');
    expect(
      uncommented.match(/^ {4}homing:\n {6}- callers: .*\n {8}pool: .*\n {6}- users: users\.csv$/gm),
    ).toHaveLength(1);
    const dir = await mkdtemp(join(tmpdir(), 'pchat-example-'));
    try {
      await writeFile(join(dir, 'endpoints.yaml'), uncommented);
      for (const f of ['server.yaml', 'users.csv'])
        await writeFile(join(dir, f), await readFile(join(defaultConfigDir(), f), 'utf8'));
      const { table } = await loadConfig(dir);
      const ocschat = table.lookupUri('sip:ocschat@contoso.com')!;
      const poolOf = (caller: string) => table.homeFor(ocschat, caller).poolFqdn;
      expect(poolOf('<sip:marie@contoso.com>')).toBe('pc-emea.contoso.com');
      expect(poolOf('<sip:anna@emea.contoso.com>')).toBe('pc-emea.contoso.com');
      expect(poolOf('<sip:akira@contoso.com>')).toBe('pcpool.contoso.com');
      expect(poolOf('<sip:bob@contoso.com>')).toBe('pcpool.contoso.com');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('loadConfig from a folder', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function refusal(): Promise<ConfigError> {
    const err: unknown = await loadConfig(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }

  it('security.secretFile: read at load (relative or absolute), a final line break dropped; a missing, short or doubled one refused', async () => {
    const ENDPOINTS = 'endpoints: []\n';
    await writeFile(join(dir, 'endpoints.yaml'), ENDPOINTS);
    await writeFile(join(dir, 'secret'), 'a-shared-secret-of-some-length\n');
    await writeFile(join(dir, 'server.yaml'), 'security:\n  secretFile: secret\n');
    expect((await loadConfig(dir)).server.security).toEqual({ secret: 'a-shared-secret-of-some-length' });
    await writeFile(join(dir, 'server.yaml'), `security:\n  secretFile: ${join(dir, 'secret')}\n`);
    expect((await loadConfig(dir)).server.security.secret).toBe('a-shared-secret-of-some-length');
    await writeFile(join(dir, 'server.yaml'), 'security:\n  secretFile: nothing-here\n');
    expect((await refusal()).message).toMatch(/security\.secretFile .*nothing-here: file not found/);
    await writeFile(join(dir, 'secret'), 'too short\n');
    await writeFile(join(dir, 'server.yaml'), 'security:\n  secretFile: secret\n');
    expect((await refusal()).message).toContain('holds no secret of 16 characters or more');
    await writeFile(
      join(dir, 'server.yaml'),
      'security:\n  secret: a-shared-secret-of-some-length\n  secretFile: secret\n',
    );
    expect((await refusal()).message).toContain('give secret or secretFile, not both');
  });

  it('returns warnings formatted like issues', async () => {
    await writeFile(join(dir, 'server.yaml'), '');
    await writeFile(
      join(dir, 'endpoints.yaml'),
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\npools:\n  - fqdn: old.contoso.com\n',
    );
    const loaded = await loadConfig(dir);
    expect(loaded.warnings).toEqual([
      `${join(dir, 'endpoints.yaml')}:5:11: pools[0].fqdn: pool old.contoso.com is not used by any endpoint`,
    ]);
    expect(loaded.server.listen).toHaveLength(2);
  });

  it('reports the problems of both files in one error, server.yaml first', async () => {
    await writeFile(join(dir, 'server.yaml'), 'listen:\n  - tls://0.0.0.0:5061\n');
    await writeFile(
      join(dir, 'endpoints.yaml'),
      'endpoints:\n  - sipAddress: ocschat@contoso.com\n    poolFqdn: pcpool\n',
    );
    const err = await refusal();
    expect(err.issues.map((i) => [i.file, i.line, i.column, i.path])).toEqual([
      [join(dir, 'server.yaml'), 2, 5, 'listen[0]'],
      [join(dir, 'endpoints.yaml'), 2, 17, 'endpoints[0].sipAddress'],
      [join(dir, 'endpoints.yaml'), 3, 15, 'endpoints[0].poolFqdn'],
    ]);
    expect(err.message.split('\n')).toHaveLength(3);
  });

  it('names a missing file', async () => {
    await writeFile(join(dir, 'server.yaml'), '');
    const err = await refusal();
    expect(err.message).toBe(`${join(dir, 'endpoints.yaml')}: file not found`);
  });

  it('a user table rewritten with the same bytes is no change; one byte more is one, its rows checked', async () => {
    await writeFile(join(dir, 'server.yaml'), '');
    await writeFile(
      join(dir, 'endpoints.yaml'),
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    homing:\n      - users: users.csv\n',
    );
    const users = 'SipAddress,PoolFqdn\nsip:akira@contoso.com,pcpool.contoso.com\n';
    await writeFile(join(dir, 'users.csv'), users);
    const first = await loadIfChanged(dir, {}, undefined);
    expect(first.result).not.toBeInstanceOf(ConfigError);
    expect(first.seen[2]?.get('users.csv')).toEqual({ bytes: Buffer.from(users) });
    await writeFile(join(dir, 'users.csv'), users);
    expect((await loadIfChanged(dir, {}, first.seen)).result).toBeUndefined();
    await writeFile(join(dir, 'users.csv'), `${users}sip:bob@contoso.com,nowhere.contoso.com\n`);
    const changed = await loadIfChanged(dir, {}, first.seen);
    expect(changed.result).toBeInstanceOf(ConfigError);
    expect((changed.result as ConfigError).issues.map((i) => `${i.line}:${i.column}`)).toEqual(['3:21']);
  });
});
