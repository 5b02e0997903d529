// `pchat-endpoint trace`: what the service does with a request for an address. Always from the
// configuration (which endpoint, mode, pool targets in order, and the answer the router's own code
// gives); with --live, a real request through the running service, drawn as a SIP ladder.
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { ConfigError } from '../config/errors.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { callerKey } from '../endpoints/homing.js';
import { Router } from '../router/router.js';
import { maintenanceRetryAfter } from '../modes/shared-checks.js';
import { hostPort } from '../sip/host-port.js';
import { parseMessage } from '../sip/parser.js';
import { isSipScheme } from '../sip/uri.js';
import { TimerWheel } from '../base/timer-wheel.js';
import { serviceSettingsFrom } from '../server/settings.js';
import type { Link } from '../transport/types.js';
import { addConfigDirOption, type ConfigDirOptions } from './common.js';
import { CliError, EXIT, usage } from './exit-codes.js';
import type { CliIo } from './io.js';
import { ladder, probe } from './sip-probe.js';

interface TraceFlags extends ConfigDirOptions {
  method: 'INVITE' | 'OPTIONS';
  live?: boolean;
  target?: string;
  timeout: string;
  full?: boolean;
  from?: string;
}

/** The answer the router gives `method uri`, worked out by the router itself over an in-memory link. */
export function staticAnswer(
  config: LoadedConfig,
  method: string,
  uri: string,
  now: number,
  from = 'sip:trace@pchat-endpoint.invalid',
): string[] {
  const sent: Buffer[] = [];
  const link: Link = {
    transport: 'udp',
    reliable: false,
    localAddress: '127.0.0.1',
    localPort: 5060,
    send: (data) => void sent.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : data),
  };
  const clock = new TimerWheel();
  const settings = serviceSettingsFrom(config.server);
  const router = new Router({
    table: () => config.table,
    logger: pino({ level: 'silent' }),
    clock,
    timers: settings.timers,
    maxMessageSize: settings.transport.maxMessageSize,
    serverHeader: settings.serverHeader,
    limits: settings.router,
    wallClock: () => now,
  });
  const branch = randomBytes(6).toString('hex');
  const request = [
    `${method} ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK${branch};rport`,
    `From: <${from}>;tag=${branch}`,
    `To: <${uri}>`,
    `Call-ID: trace-${branch}`,
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  try {
    router.onMessage(Buffer.from(request, 'utf8'), { link, address: '127.0.0.1', port: 5999, family: 4 });
  } finally {
    router.transactions.clear();
  }
  const first = sent[0];
  if (first === undefined) return ['(no answer: the request would be dropped)'];
  const parsed = parseMessage(first);
  if (!parsed.ok || parsed.message.kind !== 'response') return ['(unreadable answer)'];
  const res = parsed.message;
  const out = [`${res.status} ${res.reason}`];
  for (const name of ['contact', 'retry-after', 'unsupported']) {
    for (const line of res.headerLines(name)) out.push(`${name}: ${line}`);
  }
  return out;
}

function describeWindow(ms: number | undefined, now: number): string {
  if (ms === undefined || ms <= now) return 'none';
  if (ms === Infinity) return 'on (until switched off)';
  return `until ${new Date(ms).toISOString()}`;
}

/**
 * Pool member health as the running service reports it on its admin port (pchat_pool_member_up), by
 * target id (`transport:address:port`); undefined when the admin port is off or does not answer.
 */
export async function liveHealth(
  config: LoadedConfig,
  timeoutMs = 1000,
): Promise<Map<string, boolean> | undefined> {
  const admin = config.server.admin.listen;
  if (admin === undefined) return undefined;
  const host = admin.host === '0.0.0.0' ? '127.0.0.1' : admin.host === '::' ? '::1' : admin.host;
  const url = `http://${hostPort(host, admin.port)}/metrics`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    const health = new Map<string, boolean>();
    for (const m of (await res.text()).matchAll(
      /^pchat_pool_member_up\{[^}]*target="([^"]+)"[^}]*\} (\d+)/gm,
    )) {
      health.set(m[1]!, m[2] === '1');
    }
    return health;
  } catch {
    return undefined;
  }
}

/** The UDP SIP address of the drachtio-server the running service is connected to (GET /drachtio). */
async function drachtioSip(config: LoadedConfig): Promise<{ host: string; port: number }> {
  const admin = config.server.admin.listen;
  const fix = "give --target udp://host:port (drachtio-server's SIP address)";
  if (admin === undefined) throw usage(`--live: engine drachtio and no admin port to ask; ${fix}`);
  const host = admin.host === '0.0.0.0' ? '127.0.0.1' : admin.host === '::' ? '::1' : admin.host;
  let body: { links?: { state: string; sip: string[] }[] } | undefined;
  try {
    const res = await fetch(`http://${hostPort(host, admin.port)}/drachtio`, {
      signal: AbortSignal.timeout(2000),
    });
    if (res.ok) body = (await res.json()) as typeof body;
  } catch {
    body = undefined;
  }
  for (const l of body?.links ?? []) {
    if (l.state !== 'connected') continue;
    for (const s of l.sip) {
      const m = /^udp\/\[?([^\]]*?)\]?:(\d+)$/i.exec(s);
      if (m !== null) return { host: m[1]!, port: Number(m[2]) };
    }
  }
  throw usage(`--live: the service's admin port names no connected drachtio-server with UDP; ${fix}`);
}

/** The health shown next to a static target: matched by its id when the target is an IP literal. */
function healthOf(uri: string, health: Map<string, boolean> | undefined): string {
  if (health === undefined) return 'health: unknown (service or admin port not reachable)';
  const m = /^sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;]+)(?::(\d+))?(?:.*;transport=(\w+))?/i.exec(uri);
  const host = (m?.[1] ?? '').replace(/^\[|\]$/g, '');
  const transport = (m?.[3] ?? (uri.startsWith('sips:') ? 'tls' : 'udp')).toLowerCase();
  const port = m?.[2] ?? (transport === 'tls' ? '5061' : '5060');
  const up = health.get(`${transport}:${host}:${port}`);
  if (up === undefined) {
    const byHost = [...health.entries()].filter(([id]) => id.includes(`:${host}:`));
    if (byHost.length === 0) return 'health: not probed';
    return `health: ${byHost.map(([id, u]) => `${id} ${u ? 'up' : 'down'}`).join(', ')}`;
  }
  return `health: ${up ? 'up' : 'down'}`;
}

/** The endpoint as a caller `from` meets it (homing), or as configured when no rule names a pool. */
function homedFor(
  config: LoadedConfig,
  endpoint: Endpoint | undefined,
  from: string | undefined,
): Endpoint | undefined {
  return endpoint === undefined || from === undefined ? endpoint : config.table.homeFor(endpoint, from);
}

function staticReport(
  config: LoadedConfig,
  method: string,
  uri: string,
  now: number,
  health?: Map<string, boolean>,
  from?: string,
): string {
  const endpoint = homedFor(config, config.table.lookupUri(uri), from);
  const lines: string[] = [
    `trace ${method} ${uri}${from === undefined ? '' : ` from ${from}`}`,
    `  config:      ${config.files.endpoints}`,
  ];
  if (endpoint === undefined) {
    lines.push('  endpoint:    none matches');
  } else {
    lines.push(
      `  endpoint:    ${endpoint.sipAddress}${endpoint.displayName === undefined ? '' : ` (${endpoint.displayName})`}`,
      `  mode:        ${endpoint.mode}`,
      `  enabled:     ${String(endpoint.enabled)}`,
      `  maintenance: endpoint ${describeWindow(endpoint.maintenanceUntil, now)}; pool ${describeWindow(endpoint.pool.maintenanceUntil, now)}`,
    );
    const retryAfter = maintenanceRetryAfter(endpoint, now);
    if (retryAfter !== undefined) lines.push(`               requests get 503, Retry-After ${retryAfter} s`);
    lines.push(`  pool:        ${endpoint.pool.fqdn}`);
    if (endpoint.homing !== undefined)
      lines.push(
        `  homing:      ${endpoint.homedBy === undefined ? `no rule names a pool for ${from ?? 'this caller (give --from)'}: the default` : `by ${endpoint.homedBy}`}`,
      );
    // Highest q first, as the redirect's Contacts and the proxy's failover order have them.
    const targets = endpoint.pool.targets
      .map((t, i) => ({ t, i }))
      .sort((a, b) => (b.t.q ?? 1) - (a.t.q ?? 1) || a.i - b.i);
    if (targets.length === 0) {
      lines.push('  targets:     none configured: found through DNS (NAPTR/SRV/A) in proxy mode');
    }
    for (const [n, { t }] of targets.entries()) {
      lines.push(
        `  ${n === 0 ? 'targets:' : '        '}     ${n + 1}. ${t.uri}${t.q === undefined ? '' : `  q=${t.q}`}  ${healthOf(t.uri, health)}`,
      );
    }
  }
  const answer = staticAnswer(config, method, uri, now, from);
  lines.push(`  answer:      ${answer[0] ?? ''}`, ...answer.slice(1).map((l) => `               ${l}`));
  return lines.join('\n') + '\n';
}

/**
 * Where --live sends: --target, else the first UDP listener of server.yaml (a wildcard means
 * loopback); on the drachtio engine, the UDP address of the drachtio-server the service is connected
 * to, as its admin port tells.
 */
async function liveTarget(
  config: LoadedConfig,
  target: string | undefined,
): Promise<{ host: string; port: number }> {
  if (target !== undefined) {
    const m = /^(?:udp:\/\/)?(?:\[([^\]]+)\]|([^:/]+)):(\d{1,5})$/.exec(target);
    const port = Number(m?.[3]);
    if (m === null || port < 1 || port > 65535) {
      throw usage(`--target: expected udp://host:port (e.g. udp://127.0.0.1:5060), got "${target}"`);
    }
    return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
  }
  if (config.server.engine === 'drachtio') return drachtioSip(config);
  const udp = config.server.listen.find((l) => l.transport === 'udp');
  if (udp === undefined)
    throw usage(`--live: ${config.files.server} has no udp listener; give --target udp://host:port`);
  if (udp.port === 0)
    throw usage(`--live: ${config.files.server} listens on port 0 (any); give --target udp://host:port`);
  const host = udp.host === '0.0.0.0' ? '127.0.0.1' : udp.host === '::' ? '::1' : udp.host;
  return { host, port: udp.port };
}

export function traceCommand(io: CliIo): Command {
  const cmd = new Command('trace')
    .description('show which endpoint, mode and pool targets a request meets and what it is answered')
    .argument('<sip-uri>', 'the Request-URI, e.g. sip:ocschat@contoso.com')
    .addOption(
      new Option('--method <method>', 'request method').choices(['INVITE', 'OPTIONS']).default('INVITE'),
    )
    .option('--live', 'also send the request to the running service over UDP and draw what came back')
    .option(
      '--target <udp://host:port>',
      'with --live: where the service listens (default: from server.yaml)',
    )
    .option('--timeout <ms>', 'with --live: how long to wait for the final answer', '4000')
    .option('--full', 'with --live: print each message whole under its arrow')
    .option('--from <sip-uri>', "the caller (homing: the pool this caller's requests are led to)");
  addConfigDirOption(cmd, io);
  return cmd.action(async (uri: string, flags: TraceFlags) => {
    if (!isSipScheme(uri)) throw usage(`<sip-uri>: expected a sip: or sips: URI, got "${uri}"`);
    if (!/^\d{1,6}$/.test(flags.timeout))
      throw usage(`--timeout: expected milliseconds, got "${flags.timeout}"`);
    let config: LoadedConfig;
    try {
      config = await loadConfig(flags.configDir);
    } catch (err) {
      if (err instanceof ConfigError)
        throw new CliError(EXIT.config, `configuration refused:\n${err.message}`);
      throw err;
    }
    if (flags.from !== undefined && callerKey(flags.from) === undefined)
      throw usage(
        `--from: expected the caller's SIP address, e.g. sip:alice@contoso.com, got "${flags.from}"`,
      );
    const endpoint = homedFor(config, config.table.lookupUri(uri), flags.from);
    // Member health lives in the running service: asked of its admin port, when it has one.
    const health =
      endpoint !== undefined && endpoint.pool.targets.length > 0 ? await liveHealth(config) : undefined;
    io.out(staticReport(config, flags.method, uri, Date.now(), health, flags.from));
    if (flags.live !== true) return;
    const service = await liveTarget(config, flags.target);
    const result = await probe({
      ...service,
      method: flags.method,
      uri,
      timeoutMs: Number(flags.timeout),
      from: flags.from,
    });
    io.out('\nlive:\n' + ladder(result, service, flags.full === true));
    if (result.final === undefined) {
      throw new CliError(
        EXIT.failure,
        `no final answer from udp://${hostPort(service.host, service.port)} within ${flags.timeout} ms: is the service running there?`,
      );
    }
  });
}
