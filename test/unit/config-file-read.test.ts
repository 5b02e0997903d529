// The read rules for configuration files on real files in a temp folder: regular files only (a FIFO, a
// socket, a directory refused at once), symlinks followed only within the folder, the size limit to
// the byte, no binary; and what a refusal may quote of a file.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readConfigFile, type ReadRules } from '../../src/config/config-file.js';
import { readEndpointsFile } from '../../src/config/endpoints-editor.js';
import { ConfigError, type ConfigIssue } from '../../src/config/errors.js';
import { loadConfig, parseEndpointsConfig } from '../../src/config/load.js';
import { CertificateError, CertificateStore } from '../../src/transport/certificates.js';

let dir: string;
let outside: string;
let rules: ReadRules;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-read-'));
  outside = await mkdtemp(join(tmpdir(), 'pchat-read-out-'));
  rules = { maxFileSize: 1024, timeoutMs: 2000, root: dir };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const reason = (r: string | ConfigIssue): string => (typeof r === 'string' ? `read: ${r}` : r.reason);

describe('readConfigFile', () => {
  it('reads a file at exactly the limit; one byte more is refused with its size and the limit', async () => {
    await writeFile(join(dir, 'a.yaml'), 'x'.repeat(1024));
    expect(await readConfigFile(join(dir, 'a.yaml'), rules)).toBe('x'.repeat(1024));
    await writeFile(join(dir, 'b.yaml'), 'x'.repeat(1025));
    expect(reason(await readConfigFile(join(dir, 'b.yaml'), rules))).toBe(
      'is 1025 bytes, over the limit of 1024 bytes (config.maxFileSize): not read',
    );
  });

  it('refuses a FIFO, a socket and a directory at once, naming what each is', async () => {
    expect(spawnSync('mkfifo', [join(dir, 'fifo.yaml')]).status).toBe(0);
    await mkdir(join(dir, 'dir.yaml'));
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(join(dir, 'sock.yaml'), r));
    try {
      const t0 = performance.now();
      expect(reason(await readConfigFile(join(dir, 'fifo.yaml'), rules))).toBe(
        'is a FIFO (named pipe), not a regular file: not read',
      );
      expect(reason(await readConfigFile(join(dir, 'sock.yaml'), rules))).toBe(
        'is a socket, not a regular file: not read',
      );
      expect(reason(await readConfigFile(join(dir, 'dir.yaml'), rules))).toBe(
        'is a directory, not a regular file: not read',
      );
      expect(performance.now() - t0).toBeLessThan(1000);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('follows symlinks that stay in the folder (a ConfigMap layout), none that leave it', async () => {
    await mkdir(join(dir, '..2026_01_01'));
    await writeFile(join(dir, '..2026_01_01', 'endpoints.yaml'), 'endpoints: []\n');
    await symlink('..2026_01_01', join(dir, '..data'));
    await symlink('..data/endpoints.yaml', join(dir, 'endpoints.yaml'));
    expect(await readConfigFile(join(dir, 'endpoints.yaml'), rules)).toBe('endpoints: []\n');

    await writeFile(join(outside, 'x.yaml'), 'endpoints: []\n');
    await symlink(join(outside, 'x.yaml'), join(dir, 'abs.yaml'));
    await symlink(`../${outside.split('/').pop()!}/x.yaml`, join(dir, 'rel.yaml'));
    for (const name of ['abs.yaml', 'rel.yaml']) {
      expect(reason(await readConfigFile(join(dir, name), rules))).toMatch(
        /^resolves to .*pchat-read-out-.*\/x\.yaml, outside the configuration folder .*: symlinks are followed only within it; not read$/,
      );
    }
    // The folder itself given through a symlink is fine: what counts is where the file really is.
    await symlink(dir, join(outside, 'link-to-config'));
    expect(
      await readConfigFile(join(outside, 'link-to-config', 'endpoints.yaml'), {
        ...rules,
        root: join(outside, 'link-to-config'),
      }),
    ).toBe('endpoints: []\n');
  });

  it('refuses a file with NUL bytes as binary, and a missing one as not found', async () => {
    await writeFile(join(dir, 'bin.yaml'), Buffer.from([0x65, 0x3a, 0x00, 0x0a]));
    expect(reason(await readConfigFile(join(dir, 'bin.yaml'), rules))).toBe(
      'holds NUL bytes: not a text file',
    );
    expect(reason(await readConfigFile(join(dir, 'none.yaml'), rules))).toBe('file not found');
  });

  it('the CLI editor reads under the same rules: a FIFO fails the command at once', async () => {
    expect(spawnSync('mkfifo', [join(dir, 'endpoints.yaml')]).status).toBe(0);
    const err: unknown = await readEndpointsFile(join(dir, 'endpoints.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('is a FIFO (named pipe), not a regular file');
  });

  it('loadConfig reads endpoints.yaml under server.yaml config.maxFileSize', async () => {
    await writeFile(join(dir, 'server.yaml'), 'config:\n  maxFileSize: 4096\n');
    await writeFile(join(dir, 'endpoints.yaml'), `endpoints: []\n# ${'x'.repeat(5000)}\n`);
    const err: unknown = await loadConfig(dir).catch((e: unknown) => e);
    expect((err as ConfigError).message).toBe(
      `${join(dir, 'endpoints.yaml')}: is 5017 bytes, over the limit of 4096 bytes (config.maxFileSize): not read`,
    );
  });
});

describe('the TLS files', () => {
  it('a FIFO in place of a certificate is refused at once, not waited on', async () => {
    expect(spawnSync('mkfifo', [join(dir, 'server.crt')]).status).toBe(0);
    await writeFile(join(dir, 'server.key'), 'not read either\n');
    const t0 = performance.now();
    await expect(
      CertificateStore.load({
        config: { cert: 'server.crt', key: 'server.key', minVersion: 'TLSv1.2', sni: [] },
        baseDir: dir,
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toThrow(
      new CertificateError(
        `tls.cert: cannot read ${dir}/server.crt: is a FIFO (named pipe), not a regular file: not read`,
      ),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('what a refusal quotes', () => {
  it('a document that is one string is named as text, not quoted', () => {
    const secret = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';
    const err: unknown = (() => {
      try {
        return parseEndpointsConfig(secret, 'endpoints.yaml');
      } catch (e) {
        return e;
      }
    })();
    expect((err as ConfigError).message).toBe(
      'endpoints.yaml:1:1: expected a mapping, got text, not a YAML mapping',
    );
  });

  it('a long value the operator wrote is quoted up to 60 characters', () => {
    const long = `a${'b'.repeat(200)}`;
    const err: unknown = (() => {
      try {
        return parseEndpointsConfig(
          `endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: p.contoso.com\n    enabled: ${long}\n`,
          'endpoints.yaml',
        );
      } catch (e) {
        return e;
      }
    })();
    expect((err as ConfigError).message).toBe(
      `endpoints.yaml:4:14: endpoints[0].enabled: expected true or false, got ${JSON.stringify(long.slice(0, 60))}…`,
    );
  });

  it('an unknown key is quoted up to 60 characters too', () => {
    const key = `k${'e'.repeat(100)}`;
    const err: unknown = (() => {
      try {
        return parseEndpointsConfig(`endpoints: []\n${key}: 1\n`, 'endpoints.yaml');
      } catch (e) {
        return e;
      }
    })();
    expect((err as ConfigError).message).toContain(`unknown key ${JSON.stringify(key.slice(0, 60))}…;`);
  });

  it('lists at most 100 problems of a file, then counts the rest', () => {
    const text = `endpoints:\n${'  - colour: blue\n'.repeat(150)}`;
    const err: unknown = (() => {
      try {
        return parseEndpointsConfig(text, 'endpoints.yaml');
      } catch (e) {
        return e;
      }
    })();
    const lines = (err as ConfigError).message.split('\n');
    expect(lines).toHaveLength(101);
    // Each entry has three problems (the unknown key, no sipAddress, no poolFqdn): 450 in all.
    expect(lines[100]).toBe('endpoints.yaml: and 350 more problems not listed');
  });
});
