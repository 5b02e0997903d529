// drachtio-server for the drachtio columns of the benchmark (`--engine drachtio`): finds the binary,
// writes its configuration (admin and SIP on 127.0.0.1, notice logging) and starts it.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { freePort } from './net.mjs';

/** Where install.sh (../shared/vendor/drachtio-server) puts it on the bench machine. */
const INSTALLED = '/opt/drachtio/bin/drachtio';

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** DRACHTIO_BIN, else `drachtio` on PATH, else the installed one; an error naming all three. */
export function drachtioBin() {
  const fromEnv = process.env.DRACHTIO_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!executable(fromEnv)) throw new Error(`DRACHTIO_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, 'drachtio'))) return join(dir, 'drachtio');
  }
  if (executable(INSTALLED)) return INSTALLED;
  throw new Error(
    'drachtio-server not found: set DRACHTIO_BIN, put drachtio on PATH, or install it with ' +
      '../shared/vendor/drachtio-server/install.sh /opt/drachtio',
  );
}

export function drachtioVersion() {
  try {
    const r = spawnSync(drachtioBin(), ['--version'], { encoding: 'utf8', timeout: 5000 });
    return `drachtio-server ${(r.stdout ?? '').trim() || 'unknown'}`;
  } catch {
    return 'drachtio-server not installed';
  }
}

/**
 * The configuration file. Logging stays at notice in every run, whatever the app's level: at info
 * drachtio-server logs every SIP message (about 2 kB per call), which is what then limits it, and a
 * deployment that cares for its CPU does not run it so. Sofia's own log is off; no CDRs.
 * @param {{ adminPort: number, secret: string, sipPort: number, tcp: boolean }} opts
 */
export function renderDrachtioConfig({ adminPort, secret, sipPort, tcp }) {
  if (!/^[A-Za-z0-9]+$/.test(secret)) throw new Error('drachtio secret: letters and digits only');
  return [
    '<drachtio>',
    `  <admin port="${adminPort}" secret="${secret}">127.0.0.1</admin>`,
    '  <sip>',
    `    <contacts><contact>sip:127.0.0.1:${sipPort};transport=${tcp ? 'udp,tcp' : 'udp'}</contact></contacts>`,
    '  </sip>',
    '  <cdrs>false</cdrs>',
    '  <logging>',
    '    <console/>',
    '    <loglevel>notice</loglevel>',
    '    <sofia-loglevel>0</sofia-loglevel>',
    '  </logging>',
    '</drachtio>',
    '',
  ].join('\n');
}

/**
 * The environment drachtio-server runs with: the benchmark's own, less DRACHTIO_* (each of the ~40
 * drachtio reads overrides the config file: DRACHTIO_LOGLEVEL, DRACHTIO_SECRET...).
 */
function childEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRACHTIO_')));
}

/** Resolves once something accepts a TCP connection on 127.0.0.1:`port`; polls every 50 ms. */
function waitForTcp(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() >= deadline)
          reject(new Error(`drachtio admin port ${port} not open in ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/**
 * drachtio-server on free loopback ports (SIP over UDP, and TCP unless `tcp` is false; the admin port
 * over TCP) with a fresh secret, its log in dir/drachtio.log. Resolves once the admin port accepts
 * connections, so the app's first connection attempt succeeds.
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, pid: number, port: number,
 *   adminPort: number, secret: string, logFile: string }>}
 */
export async function startDrachtio(dir, { tcp = true } = {}) {
  const bin = drachtioBin();
  const port = await freePort(tcp ? ['udp', 'tcp'] : ['udp']);
  const adminPort = await freePort(['tcp']);
  const secret = randomBytes(12).toString('hex');
  const cfgFile = join(dir, 'drachtio.conf.xml');
  await writeFile(cfgFile, renderDrachtioConfig({ adminPort, secret, sipPort: port, tcp }));
  const logFile = join(dir, 'drachtio.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, ['-f', cfgFile], { cwd: dir, stdio: ['ignore', fd, fd], env: childEnv() });
  closeSync(fd);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  try {
    await waitForTcp(adminPort, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, pid: child.pid, port, adminPort, secret, logFile };
}
