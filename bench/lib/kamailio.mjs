// Generates and runs the Kamailio baselines: the stateless redirect server (bench/kamailio/redirect.cfg.tmpl)
// and the stateful proxy (bench/kamailio/proxy.cfg.tmpl); and the dispatcher front of the fleet suite
// (bench/kamailio/fleet.cfg.tmpl).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TEMPLATE = fileURLToPath(new URL('../kamailio/redirect.cfg.tmpl', import.meta.url));
const PROXY_TEMPLATE = fileURLToPath(new URL('../kamailio/proxy.cfg.tmpl', import.meta.url));
const FLEET_TEMPLATE = fileURLToPath(new URL('../kamailio/fleet.cfg.tmpl', import.meta.url));
const MODULE_DIRS = [
  '/usr/lib/x86_64-linux-gnu/kamailio/modules',
  '/usr/lib/kamailio/modules',
  '/usr/local/lib64/kamailio/modules',
];

/** Kamailio's configuration strings are double-quoted; refuse anything that would need escaping. */
function literal(value) {
  if (!/^[A-Za-z0-9._:@;=<>+-]+$/.test(value)) throw new Error(`value not safe for kamailio.cfg: ${value}`);
  return value;
}

/** A file path for a double-quoted modparam: letters, digits and . _ - / only. */
function safePath(value) {
  if (!/^[A-Za-z0-9._/-]+$/.test(value)) throw new Error(`path not safe for kamailio.cfg: ${value}`);
  return value;
}

function decisionLog(logDecisions, code) {
  // One line per decision, like the service's info-level log, so the "info" comparison is like for like.
  return logDecisions
    ? `xlog("L_INFO", "decision=${code} method=$rm ruri=$ru callId=$ci\\n");`
    : '# per-decision log off (warn level)';
}

function moduleDir() {
  const dir = MODULE_DIRS.find((d) => existsSync(join(d, 'tm.so')));
  if (!dir) throw new Error(`Kamailio modules not found in ${MODULE_DIRS.join(', ')}`);
  return dir;
}

/** The template with every {{NAME}} replaced; a placeholder without a value is an error, not a blank. */
async function fill(file, values) {
  const template = await readFile(file, 'utf8');
  return template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, name) => {
    if (!(name in values)) throw new Error(`unknown placeholder {{${name}}} in ${file}`);
    return values[name];
  });
}

/**
 * The script lines that answer a request for an endpoint with its 302, the way Kamailio users write a
 * redirect server: the targets go into the destination set and sl_send_reply() builds the Contact from
 * it for a 3xx. One target without a q-value rewrites the Request-URI; otherwise each target is added
 * as a branch with its q-value (the script cannot give the Request-URI a q-value, and a Request-URI
 * left as it came is not part of the set). With append_to_reply and no destination set, Kamailio
 * logs "print_dset(): no r-uri or branches" at warn for every 302: a line per call ours does not write.
 * @param {Array<{ uri: string, q?: string }>} targets
 */
function redirectTo(targets) {
  if (targets.length === 0) throw new Error('an endpoint needs at least one redirect target');
  if (targets.length === 1 && targets[0].q === undefined) return [`$ru = "${literal(targets[0].uri)}";`];
  return targets.map((t) =>
    t.q === undefined
      ? `append_branch("${literal(t.uri)}");`
      : `append_branch("${literal(t.uri)}", "${literal(t.q)}");`,
  );
}

/**
 * siptrace mirroring every SIP message Kamailio receives or sends to a HEP3 collector, through the
 * core's events (trace_mode 1: no sip_trace() call in the script), as the service's `hep` does:
 * the reference for what HEP export costs (`--suite redirect --hep`).
 * @param {{ port: number, id: number } | undefined} hep
 */
function hepMirror(hep) {
  if (hep === undefined) return '';
  return [
    'loadmodule "siptrace.so"',
    // No database: siptrace binds one (db_mysql by default) unless told it does not trace to one.
    'modparam("siptrace", "trace_to_database", 0)',
    `modparam("siptrace", "duplicate_uri", "sip:127.0.0.1:${hep.port}")`,
    'modparam("siptrace", "hep_mode_on", 1)',
    'modparam("siptrace", "hep_version", 3)',
    `modparam("siptrace", "hep_capture_id", ${hep.id})`,
    'modparam("siptrace", "trace_on", 1)',
    'modparam("siptrace", "trace_mode", 1)',
  ].join('\n');
}

/**
 * @param {{ host: string, port: number, children: number, tcpChildren: number, logDecisions: boolean,
 *   endpoints: Array<{ user: string, domain: string, targets: Array<{ uri: string, q?: string }> }>,
 *   hep?: { port: number, id: number } }} opts
 */
export async function renderKamailioConfig(opts) {
  const routes = opts.endpoints
    .map(
      (e) =>
        `\tif ($(rU{s.tolower}) == "${literal(e.user.toLowerCase())}" && $(rd{s.tolower}) == "${literal(e.domain.toLowerCase())}") {\n` +
        [
          decisionLog(opts.logDecisions, 302),
          ...redirectTo(e.targets),
          'sl_send_reply("302", "Moved Temporarily");',
          'exit;',
        ]
          .map((line) => `\t\t${line}\n`)
          .join('') +
        '\t}',
    )
    .join('\n');
  const values = {
    DEBUG: opts.logDecisions ? '2' : '0', // 2 = L_INFO, 0 = L_WARN
    CHILDREN: String(opts.children),
    TCP_CHILDREN: String(opts.tcpChildren),
    HOST: literal(opts.host),
    PORT: String(opts.port),
    MODULE_DIR: moduleDir(),
    ENDPOINT_ROUTES: routes,
    LOG_DECISION_483: decisionLog(opts.logDecisions, 483),
    LOG_DECISION_200: decisionLog(opts.logDecisions, 200),
    LOG_DECISION_404: decisionLog(opts.logDecisions, 404),
    HEP_MIRROR: hepMirror(opts.hep),
  };
  return fill(TEMPLATE, values);
}

/**
 * The stateful proxy: requests for `user@domain` relayed with tm to `target` (a UDP address), in-dialog
 * requests relayed only to that address, optional record_route().
 * @param {{ host: string, port: number, children: number, logDecisions: boolean, recordRoute: boolean,
 *   user: string, domain: string, target: { host: string, port: number } }} opts
 */
export async function renderKamailioProxyConfig(opts) {
  // One line per relayed request, like the service's info-level "decision" line.
  const log = (mode) =>
    opts.logDecisions
      ? `xlog("L_INFO", "decision mode=${mode} method=$rm ruri=$ru callId=$ci\\n");`
      : '# per-decision log off (warn level)';
  return fill(PROXY_TEMPLATE, {
    DEBUG: opts.logDecisions ? '2' : '0',
    CHILDREN: String(opts.children),
    HOST: literal(opts.host),
    PORT: String(opts.port),
    MODULE_DIR: moduleDir(),
    USER: literal(opts.user.toLowerCase()),
    DOMAIN: literal(opts.domain.toLowerCase()),
    TARGET_HOST: literal(opts.target.host),
    TARGET_PORT: String(opts.target.port),
    TARGET_URI: literal(`sip:${opts.target.host}:${opts.target.port};transport=udp`),
    RECORD_ROUTE: opts.recordRoute ? 'record_route();' : '# record_route() off, like the service by default',
    LOG_PROXY: log('proxy'),
    LOG_IN_DIALOG: log('in-dialog'),
  });
}

/**
 * The dispatcher front: out-of-dialog requests hashed over Call-ID to `instances` (UDP addresses, set
 * 1 of the dispatcher list written to `listFile`), failover on timeout or 503, OPTIONS probing.
 * Returns the configuration and the list's text; the caller writes the list to `listFile`.
 * @param {{ host: string, port: number, children: number, listFile: string, frTimerMs: number,
 *   pingIntervalS: number, instances: Array<{ host: string, port: number }> }} opts
 */
export async function renderKamailioFleetConfig(opts) {
  const list = opts.instances.map((i) => `1 sip:${literal(i.host)}:${i.port};transport=udp 0 0\n`).join('');
  const config = await fill(FLEET_TEMPLATE, {
    CHILDREN: String(opts.children),
    HOST: literal(opts.host),
    PORT: String(opts.port),
    MODULE_DIR: moduleDir(),
    LIST_FILE: safePath(opts.listFile),
    FR_TIMER: String(opts.frTimerMs),
    PING_INTERVAL: String(opts.pingIntervalS),
  });
  return { config, list };
}

/**
 * Starts Kamailio in the foreground (-DD: the creator stays attached, children are forked) with its
 * runtime dir and pid file inside `dir`, logging to dir/kamailio.log. `shmMb`: shared memory, where tm keeps
 * its transactions (the proxy needs more than the stateless redirect).
 * @returns {Promise<{ child: import('node:child_process').ChildProcess, pid: number, logFile: string }>}
 */
export async function startKamailio(dir, config, { shmMb = 64 } = {}) {
  const runDir = join(dir, 'run');
  await mkdir(runDir, { recursive: true });
  const cfgFile = join(dir, 'kamailio.cfg');
  await writeFile(cfgFile, config);
  const logFile = join(dir, 'kamailio.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(
    'kamailio',
    [
      '-f',
      cfgFile,
      '-DD',
      '-E',
      '-Y',
      runDir,
      '-P',
      join(runDir, 'kamailio.pid'),
      '-m',
      String(shmMb),
      '-M',
      '8',
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return { child, pid: child.pid, logFile };
}

export function kamailioVersion() {
  const r = spawnSync('kamailio', ['-v'], { encoding: 'utf8' });
  return (
    (r.stdout ?? '')
      .split('\n')[0]
      ?.replace(/^version:\s*/, '')
      .trim() || 'unknown'
  );
}
