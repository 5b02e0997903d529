// `pchat-endpoint init DIR` in process, and the rule that makes the example folder read-only in an
// installed package but leaves a checkout as it was (npm start serves config/, the CLI edits it).
// The installed case end to end: test/integration/npm-package.test.ts.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isShippedExample } from '../../src/cli/common.js';
import type { CliIo } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { defaultConfigDir, isInstalledPackage } from '../../src/config/load.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-init-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    interactive: false,
    confirm: () => Promise.resolve(false),
    env: {},
  };
  const code = await runCli(args, io);
  return { code, out, err };
}

const example = (name: string): Promise<string> => readFile(join(defaultConfigDir(), name), 'utf8');

describe('init', () => {
  it('writes the example server.yaml and endpoints.yaml, comments and all, into a new folder', async () => {
    const target = join(dir, 'a', 'b');
    const r = await cli(['init', target]);
    expect(r.code, r.err).toBe(0);
    expect(await readFile(join(target, 'server.yaml'), 'utf8')).toBe(await example('server.yaml'));
    expect(await readFile(join(target, 'endpoints.yaml'), 'utf8')).toBe(await example('endpoints.yaml'));
    expect(await example('endpoints.yaml')).toMatch(/^# /);
    expect(r.out).toContain(`pchat-endpoint serve --config-dir ${target}`);
  });

  it('refuses a folder with anything in it (exit 5), writing nothing; --force replaces the two files only', async () => {
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await writeFile(join(dir, 'server.yaml'), 'old');
    const r = await cli(['init', dir]);
    expect(r.code).toBe(5);
    expect(r.err).toContain(
      `${dir} is not empty (notes.txt, server.yaml): name a new or empty folder, or add --force`,
    );
    expect(await readFile(join(dir, 'server.yaml'), 'utf8')).toBe('old');
    expect((await cli(['init', dir, '--force'])).code).toBe(0);
    expect(await readFile(join(dir, 'server.yaml'), 'utf8')).toBe(await example('server.yaml'));
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('an empty folder is fine; a file where the folder should be is refused (exit 1)', async () => {
    await mkdir(join(dir, 'empty'));
    expect((await cli(['init', join(dir, 'empty')])).code).toBe(0);
    await writeFile(join(dir, 'file'), '');
    const r = await cli(['init', join(dir, 'file')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('exists and is not a folder');
  });
});

describe('the example folder: read-only only in an installed package', () => {
  it('a package under node_modules is installed; a checkout (this one) is not', () => {
    expect(isInstalledPackage('/usr/lib/node_modules/pchat-endpoint')).toBe(true);
    expect(isInstalledPackage('/srv/app/node_modules/pchat-endpoint')).toBe(true);
    expect(isInstalledPackage('/home/me/src/pchat-endpoint')).toBe(false);
    expect(isInstalledPackage()).toBe(false);
  });

  it('only the shipped example, and only when installed, is refused', () => {
    expect(isShippedExample(defaultConfigDir(), true)).toBe(true);
    expect(isShippedExample(join(defaultConfigDir(), '.'), true)).toBe(true);
    expect(isShippedExample(dir, true)).toBe(false);
    expect(isShippedExample(defaultConfigDir())).toBe(false);
  });

  it('in the checkout an edit of config/ is not refused (--what-if: nothing written)', async () => {
    const before = await example('endpoints.yaml');
    const r = await cli([
      'new',
      '--sip-address',
      'sip:x@contoso.com',
      '--pool-fqdn',
      'pcpool.contoso.com',
      '--what-if',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^What if: add endpoint sip:x@contoso.com in .*config\/endpoints\.yaml/);
    expect(await example('endpoints.yaml')).toBe(before);
  });
});
