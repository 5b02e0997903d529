// test/peers.mjs, the step of `npm test` that installs the system peers the tests run: its decisions
// driven with an injected `which` and `exec` (nothing is installed), and the package list it reads.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DRACHTIO_DEFAULT,
  DRACHTIO_VENDOR,
  PACKAGE_LIST,
  SYSTEMD,
  ensureDrachtio,
  ensurePeers,
  parsePackageList,
  whichOnDisk,
  type PackageLine,
} from '../peers.mjs';

const LIST: PackageLine[] = [
  { pkg: 'sip-tester', commands: ['sipp'], services: [] },
  { pkg: 'kamailio', commands: ['kamailio', 'kamcmd'], services: ['kamailio'] },
];

/** A machine with `present` commands; apt-get install adds the commands of the packages it is given. */
function machine(present: string[], { sudo = false, installWorks = true, systemd = false } = {}) {
  const have = new Set([...present, 'apt-get']);
  const calls: string[] = [];
  const said: string[] = [];
  const which = (c: string): string | undefined => (have.has(c) ? `/usr/bin/${c}` : undefined);
  const exec = (cmd: string, args: readonly string[]): number => {
    calls.push([cmd, ...args].join(' '));
    if (cmd === 'sudo' && args.join(' ') === '-n true') return sudo ? 0 : 1;
    const argv = cmd === 'sudo' ? args.slice(3) : [cmd, ...args];
    if (argv[0] === 'apt-get' && argv[1] === 'install' && installWorks)
      for (const l of LIST) if (argv.includes(l.pkg)) l.commands.forEach((c) => have.add(c));
    return 0;
  };
  const exists = (f: string): boolean => systemd && f === SYSTEMD;
  return { which, exec, exists, calls, said, say: (l: string) => said.push(l) };
}

describe('test/system-packages.txt', () => {
  it('names the Debian packages of every peer the tests run, with their commands', async () => {
    const list = parsePackageList(await readFile(PACKAGE_LIST, 'utf8'));
    const byPkg = Object.fromEntries(list.map((l) => [l.pkg, l.commands]));
    expect(byPkg['sip-tester']).toEqual(['sipp']);
    expect(byPkg['dnsmasq-base']).toEqual(['dnsmasq']);
    expect(byPkg['kamailio']).toEqual(['kamailio', 'kamcmd']);
    expect(list.find((l) => l.pkg === 'kamailio')?.services).toEqual(['kamailio']);
    expect(Object.keys(byPkg)).toEqual(expect.arrayContaining(['g++', 'make', 'python3']));
  });

  it('is the only list: .ci/run installs through test/peers.mjs and names no package of its own', async () => {
    const ci = await readFile(join(import.meta.dirname, '../../.ci/run'), 'utf8');
    expect(ci).toMatch(/^node test\/peers\.mjs$/m);
    expect(ci).not.toMatch(/apt-get install/);
  });

  it('npm test checks the peers before it builds and runs anything', async () => {
    const pkg = JSON.parse(await readFile(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['test']).toMatch(/^node test\/peers\.mjs && /);
  });

  it('reads a command-less line as the package naming its own command, and skips comments', () => {
    expect(parsePackageList('# x\n\nmake   # why\nkamailio kamailio kamcmd service:kamailio\n')).toEqual([
      { pkg: 'make', commands: ['make'], services: [] },
      { pkg: 'kamailio', commands: ['kamailio', 'kamcmd'], services: ['kamailio'] },
    ]);
  });
});

describe('ensurePeers', () => {
  it('does nothing when every command is there', () => {
    const m = machine(['sipp', 'kamailio', 'kamcmd']);
    expect(ensurePeers({ ...m, list: LIST, isRoot: true, env: {} })).toEqual([]);
    expect(m.calls).toEqual([]);
    expect(m.said).toEqual([]);
  });

  it('as root: installs only the packages with a command missing, saying what and why in one line', () => {
    const m = machine(['sipp', 'kamailio']);
    expect(ensurePeers({ ...m, list: LIST, isRoot: true, env: {} })).toEqual([]);
    expect(m.calls).toEqual([
      'apt-get update -qq',
      'apt-get install -y -qq --no-install-recommends kamailio',
    ]);
    expect(m.said).toEqual(['installing kamailio: the tests run kamcmd (kamailio), not found here']);
  });

  it('under systemd: stops and disables the daemon of a package it installed (it would hold a port), not of others', () => {
    const m = machine(['sipp'], { systemd: true });
    expect(ensurePeers({ ...m, list: LIST, isRoot: true, env: {} })).toEqual([]);
    expect(m.calls).toEqual([
      'apt-get update -qq',
      'apt-get install -y -qq --no-install-recommends kamailio',
      'systemctl disable --now kamailio',
    ]);
    expect(m.said[1]).toMatch(/^stopping and disabling kamailio: /);
    const other = machine(['kamailio', 'kamcmd'], { systemd: true });
    ensurePeers({ ...other, list: LIST, isRoot: true, env: {} });
    expect(other.calls).not.toContain('systemctl disable --now kamailio');
  });

  it('not root: installs through sudo when it asks for no password', () => {
    const m = machine([], { sudo: true });
    expect(ensurePeers({ ...m, list: LIST, isRoot: false, env: {} })).toEqual([]);
    expect(m.calls).toEqual([
      'sudo -n true',
      'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq',
      'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sip-tester kamailio',
    ]);
  });

  it('not root and sudo wants a password: installs nothing and says which command to run', () => {
    const m = machine(['kamailio', 'kamcmd']);
    const problems = ensurePeers({ ...m, list: LIST, isRoot: false, env: {} });
    expect(m.calls).toEqual(['sudo -n true']);
    expect(problems).toEqual([
      'missing: sipp (sip-tester); not root and sudo asks for a password: run `sudo apt-get install -y --no-install-recommends sip-tester`',
    ]);
  });

  it('PCHAT_NO_INSTALL=1: runs nothing, fails naming what is missing', () => {
    const m = machine(['kamailio']);
    const problems = ensurePeers({ ...m, list: LIST, isRoot: true, env: { PCHAT_NO_INSTALL: '1' } });
    expect(m.calls).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('missing: sipp (sip-tester); kamcmd (kamailio); PCHAT_NO_INSTALL=1');
    expect(problems[0]).toContain('apt-get install -y --no-install-recommends sip-tester kamailio');
  });

  it('an install that leaves a command missing is a problem, not a pass', () => {
    const m = machine([], { installWorks: false });
    expect(ensurePeers({ ...m, list: LIST, isRoot: true, env: {} })).toEqual([
      'sip-tester installed, yet sipp still not found',
      'kamailio installed, yet kamailio, kamcmd still not found',
    ]);
  });

  it('no apt-get: names the missing commands and installs nothing', () => {
    const m = machine([]);
    const which = (c: string) => (c === 'apt-get' ? undefined : m.which(c));
    const problems = ensurePeers({ ...m, which, list: LIST, isRoot: true, env: {} });
    expect(m.calls).toEqual([]);
    expect(problems[0]).toMatch(/no apt-get here/);
  });
});

describe('ensureDrachtio', () => {
  const none = () => undefined;
  it('DRACHTIO_BIN, then PATH, then /opt/drachtio/bin/drachtio; nothing run', () => {
    const m = machine([]);
    const io = { ...m, isRoot: true, exists: (f: string) => f === DRACHTIO_DEFAULT };
    expect(ensureDrachtio({ ...io, env: { DRACHTIO_BIN: '/x/drachtio' } })).toBe('/x/drachtio');
    expect(ensureDrachtio({ ...io, env: {}, which: (c) => `/p/${c}` })).toBe('/p/drachtio');
    expect(ensureDrachtio({ ...io, env: {}, which: none })).toBe(DRACHTIO_DEFAULT);
    expect(m.calls).toEqual([]);
  });

  it('installs from the vendored copy beside the repository when there is one', () => {
    const m = machine([]);
    let installed = false;
    const exec = (cmd: string, args: readonly string[]) => {
      m.calls.push([cmd, ...args].join(' '));
      installed = true;
      return 0;
    };
    const exists = (f: string) => f === DRACHTIO_VENDOR || (installed && f === DRACHTIO_DEFAULT);
    expect(ensureDrachtio({ ...m, exec, which: none, exists, isRoot: true, env: {} })).toBe(DRACHTIO_DEFAULT);
    expect(m.calls).toEqual([`${DRACHTIO_VENDOR} /opt/drachtio`]);
    expect(m.said).toHaveLength(1);
  });

  it('none to be had: one line saying the drachtio tests skip and how to get one', () => {
    const cases = [
      { env: {}, exists: () => false },
      { env: { PCHAT_NO_INSTALL: '1' }, exists: (f: string) => f === DRACHTIO_VENDOR },
    ];
    for (const { env, exists } of cases) {
      const m = machine([]);
      expect(ensureDrachtio({ ...m, which: none, exists, isRoot: true, env })).toBeUndefined();
      expect(m.calls).toEqual([]);
      expect(m.said).toHaveLength(1);
      expect(m.said[0]).toMatch(/drachtio engine tests will be skipped/);
      expect(m.said[0]).toMatch(/github\.com\/drachtio\/drachtio-server.*DRACHTIO_BIN/);
    }
  });
});

describe('whichOnDisk', () => {
  let dir = '';
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });
  it('finds an executable on PATH, not a plain file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pchat-which-'));
    await writeFile(join(dir, 'peer-x'), '#!/bin/sh\n');
    await chmod(join(dir, 'peer-x'), 0o755);
    await writeFile(join(dir, 'peer-y'), 'not runnable');
    expect(whichOnDisk('peer-x', dir)).toBe(join(dir, 'peer-x'));
    expect(whichOnDisk('peer-y', dir)).toBeUndefined();
  });
});
