// The system peers the tests run (SIPp, dnsmasq, Kamailio, the native build's compiler...), checked
// before `npm test` builds and runs anything: the packages of test/system-packages.txt whose commands
// are missing are installed with apt-get when we are root or sudo needs no password, one line saying
// what and why. PCHAT_NO_INSTALL=1 installs nothing and fails, naming the command that would.
//
// drachtio-server has no OS package: the tests find it (DRACHTIO_BIN, PATH, /opt/drachtio/bin) or,
// where the vendored copy beside the repository exists, its install.sh puts it in /opt/drachtio. Without
// one the drachtio tests are skipped, and this says so in one line.
//
//   node test/peers.mjs

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const PACKAGE_LIST = join(ROOT, 'test/system-packages.txt');
/** Where install.sh puts drachtio by default, and where the tests look last. */
export const DRACHTIO_DEFAULT = '/opt/drachtio/bin/drachtio';
export const DRACHTIO_VENDOR = resolve(ROOT, '../shared/vendor/drachtio-server/install.sh');
/** Debian keeps daemons (dnsmasq, kamailio) in sbin, which a normal user's PATH leaves out. */
export const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
/** Present where systemd runs the machine, and so starts the daemons packages install. */
export const SYSTEMD = '/run/systemd/system';

/** test/system-packages.txt's lines: `package command... [service:NAME...] # why`. */
export function parsePackageList(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [pkg, ...words] = line.split(/\s+/);
    const commands = words.filter((w) => !w.startsWith('service:'));
    const services = words.filter((w) => w.startsWith('service:')).map((w) => w.slice('service:'.length));
    out.push({ pkg, commands: commands.length > 0 ? commands : [pkg], services });
  }
  return out;
}

/** `which` as the tests see it: PATH, then the sbin folders. */
export function whichOnDisk(command, path = process.env.PATH ?? '') {
  for (const dir of [...path.split(delimiter), ...SBIN]) {
    if (dir === '') continue;
    const file = join(dir, command);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The packages with at least one command `which` does not find, each with the commands missing. */
export function missingPackages(list, which) {
  return list
    .map(({ pkg, commands }) => ({ pkg, commands: commands.filter((c) => which(c) === undefined) }))
    .filter((p) => p.commands.length > 0);
}

/** How to run a command as root here: directly, through `sudo -n`, or not at all (undefined). */
export function rootRunner({ isRoot, exec }) {
  if (isRoot) return (cmd, args) => exec(cmd, args);
  if (exec('sudo', ['-n', 'true'], { quiet: true }) === 0)
    return (cmd, args) => exec('sudo', ['-n', 'env', 'DEBIAN_FRONTEND=noninteractive', cmd, ...args]);
  return undefined;
}

/**
 * Installs what is missing. Returns the problems left (empty: every peer is there). `say` gets one
 * line per thing done; `exec(cmd, args)` returns the exit status.
 */
export function ensurePeers({ list, which, exec, isRoot, env, say, exists }) {
  const missing = missingPackages(list, which);
  if (missing.length === 0) return [];
  const pkgs = missing.map((m) => m.pkg);
  const what = missing.map((m) => `${m.commands.join(', ')} (${m.pkg})`).join('; ');
  const command = `apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  if (env.PCHAT_NO_INSTALL === '1')
    return [`missing: ${what}; PCHAT_NO_INSTALL=1, so not installing: run \`${command}\` as root`];
  if (which('apt-get') === undefined)
    return [`missing: ${what}; no apt-get here: install the equivalent packages, then run npm test again`];
  const asRoot = rootRunner({ isRoot, exec });
  if (asRoot === undefined)
    return [`missing: ${what}; not root and sudo asks for a password: run \`sudo ${command}\``];
  say(`installing ${pkgs.join(' ')}: the tests run ${what}, not found here`);
  if (asRoot('apt-get', ['update', '-qq']) !== 0) return ['apt-get update failed (see above)'];
  if (asRoot('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs]) !== 0)
    return [`\`${command}\` failed (see above)`];
  stopServices(
    list.filter((l) => pkgs.includes(l.pkg)).flatMap((l) => l.services ?? []),
    { asRoot, exists, say },
  );
  const still = missingPackages(list, which);
  return still.map((m) => `${m.pkg} installed, yet ${m.commands.join(', ')} still not found`);
}

/**
 * The tests want only a package's commands: a daemon systemd started on install (Kamailio on 5060,
 * Prometheus on 9090) would hold ports the service and the tests use. Stopped and disabled.
 */
function stopServices(services, { asRoot, exists, say }) {
  if (services.length === 0 || !exists(SYSTEMD)) return;
  say(
    `stopping and disabling ${services.join(', ')}: installed for their commands, their daemons would hold ports`,
  );
  for (const s of services) asRoot('systemctl', ['disable', '--now', s]);
}

/**
 * drachtio-server for the drachtio tests: found, else installed from the vendored copy when there is
 * one and we may, else undefined with `say` telling why the tests skip and how to get one.
 */
export function ensureDrachtio({ env, which, exists, exec, isRoot, say }) {
  if (env.DRACHTIO_BIN) return env.DRACHTIO_BIN;
  const found = which('drachtio') ?? (exists(DRACHTIO_DEFAULT) ? DRACHTIO_DEFAULT : undefined);
  if (found !== undefined) return found;
  const asRoot = env.PCHAT_NO_INSTALL === '1' ? undefined : rootRunner({ isRoot, exec });
  if (exists(DRACHTIO_VENDOR) && asRoot !== undefined) {
    say(
      `installing drachtio-server into /opt/drachtio from ${DRACHTIO_VENDOR}: the drachtio engine tests run it`,
    );
    if (asRoot(DRACHTIO_VENDOR, ['/opt/drachtio']) === 0 && exists(DRACHTIO_DEFAULT)) return DRACHTIO_DEFAULT;
  }
  say(
    'drachtio-server not found, so the drachtio engine tests will be skipped: it has no OS package; build it ' +
      'from https://github.com/drachtio/drachtio-server and put it on PATH, at /opt/drachtio/bin/drachtio, or in DRACHTIO_BIN',
  );
  return undefined;
}

function execInherit(cmd, args, { quiet = false } = {}) {
  const r = spawnSync(cmd, args, {
    stdio: quiet ? 'ignore' : ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return r.error ? 127 : (r.status ?? 1);
}

function main() {
  const say = (line) => console.log(`test peers: ${line}`);
  const io = {
    which: (c) => whichOnDisk(c),
    exec: execInherit,
    isRoot: process.getuid?.() === 0,
    env: process.env,
    say,
  };
  const exists = (f) => existsSync(f);
  const problems = ensurePeers({ ...io, exists, list: parsePackageList(readFileSync(PACKAGE_LIST, 'utf8')) });
  for (const p of problems) console.error(`test peers: ${p}`);
  if (problems.length > 0) process.exit(1);
  ensureDrachtio({ ...io, exists });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
