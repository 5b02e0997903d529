// `pchat-endpoint status --admin HOST:PORT[,HOST:PORT...]`: one table for a fleet. Each instance's
// admin port is asked for GET /status at once, each with its own timeout; a row per instance says
// whether it answered, is ready, how long it has run, which table it serves (and whether that is the
// one most instances serve), what it holds in flight and its pool members up and down. Any instance
// that did not answer as a pchat-endpoint, or a table that differs, makes the exit code 1.
import { request } from 'node:http';
import { Command } from 'commander';
import { STATUS_SERVICE, type AdminStatus } from '../admin/admin-server.js';
import { hostPort } from '../sip/host-port.js';
import { CliError, EXIT, usage } from './exit-codes.js';
import type { CliIo } from './io.js';

/** An admin address from --admin. */
export interface AdminTarget {
  readonly host: string;
  readonly port: number;
  /** As shown in the table and messages: `host:port`, `[v6]:port`. */
  readonly label: string;
}

/** `host:port`, `[v6]:port`; the host an IPv4 address or a DNS name. */
const ADMIN_ITEM =
  /^(?:\[([0-9a-f:.]+)\]|((?:\d{1,3}\.){3}\d{1,3})|([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)):(\d{1,5})$/i;

/** Parses --admin; a malformed list is refused whole, naming the entry, before anything is asked. */
export function parseAdminList(text: string): AdminTarget[] {
  const expected = 'expected HOST:PORT[,HOST:PORT...], e.g. 127.0.0.1:9090,[::1]:9090';
  const items = text.split(',').map((s) => s.trim());
  const out: AdminTarget[] = [];
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    if (item === '') throw usage(`--admin: entry ${i + 1} is empty; ${expected}`);
    const m = ADMIN_ITEM.exec(item);
    const port = Number(m?.[4]);
    if (m === null || port < 1 || port > 65535)
      throw usage(`--admin: "${item}" is not HOST:PORT; ${expected}`);
    const host = (m[1] ?? m[2] ?? m[3]!).toLowerCase();
    if (m[2] !== undefined && m[2].split('.').some((b) => Number(b) > 255)) {
      throw usage(`--admin: "${item}" is not an IPv4 address and port; ${expected}`);
    }
    const label = hostPort(host, port);
    if (seen.has(label)) throw usage(`--admin: ${label} is listed twice`);
    seen.add(label);
    out.push({ host, port, label });
  }
  return out;
}

/** Why an instance gives no status. */
export type Problem = 'unreachable' | 'unauthorized' | 'refused' | 'not-pchat';

/** What one instance answered. */
export type InstanceReport =
  | ({ readonly admin: string; readonly state: 'ok' } & Omit<AdminStatus, 'service'>)
  | { readonly admin: string; readonly state: Problem; readonly error: string };

export interface AskOptions {
  readonly timeoutMs: number;
  /** Sent as `Authorization: Bearer`, for an admin port behind something that wants one. */
  readonly token?: string | undefined;
}

/** Largest answer read: a status is a few hundred bytes, and a server that is not ours may send more. */
const MAX_BODY = 64 * 1024;

/** What came back over HTTP, or the error that stopped it. */
type Answer =
  { status: number; type: string | undefined; body: string } | { error: Error & { code?: string } };

/**
 * GET /status over node:http rather than fetch: fetch refuses the ports of its "bad ports" list
 * (6000, 6665-6669, 10080, ...), and an admin port may be any. One timeout covers connecting,
 * waiting and reading; the body is read up to MAX_BODY.
 */
function get(target: AdminTarget, opts: AskOptions): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request({
      host: target.host,
      port: target.port,
      path: '/status',
      headers: {
        accept: 'application/json',
        ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
      },
      agent: false,
    });
    let settled = false;
    const done = (a: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(a);
    };
    const timer = setTimeout(() => {
      const error: Error & { code?: string } = new Error(`no answer within ${opts.timeoutMs} ms`);
      error.code = 'TIMEOUT';
      done({ error });
      req.destroy();
    }, opts.timeoutMs);
    req.on('error', (error: Error & { code?: string }) => done({ error }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size > MAX_BODY) return;
        chunks.push(chunk);
        size += chunk.length;
        // Enough to tell: ours is far smaller. The rest is not read.
        if (size > MAX_BODY) res.destroy();
      });
      const answer = (): void =>
        done({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'],
          body: Buffer.concat(chunks).toString('utf8'),
        });
      res.on('end', answer);
      res.on('close', () => (res.complete || size > MAX_BODY ? answer() : undefined));
      res.on('error', (error: Error & { code?: string }) => (size > MAX_BODY ? answer() : done({ error })));
    });
    req.end();
  });
}

/** GET /status of one instance; never throws: every failure is a report with a one-line reason. */
export async function askInstance(target: AdminTarget, opts: AskOptions): Promise<InstanceReport> {
  const admin = target.label;
  const fail = (state: Problem, error: string): InstanceReport => ({ admin, state, error });
  const res = await get(target, opts);
  if ('error' in res) {
    const code = res.error.code ?? '';
    // Connected, and what came back was not HTTP (node's parser errors are HPE_*).
    if (code.startsWith('HPE_'))
      return fail('not-pchat', 'answered something that is not HTTP: not an admin port');
    return fail('unreachable', unreachable(res.error, opts.timeoutMs));
  }
  if (res.status === 401) {
    return fail(
      'unauthorized',
      opts.token === undefined
        ? 'answered 401: it wants a bearer token (give --token or set PCHAT_ADMIN_TOKEN)'
        : 'answered 401: the token was refused',
    );
  }
  if (res.status === 421) {
    return fail(
      'refused',
      `answered 421: it does not answer to the name ${target.host} (use its listen address, or add the name to admin.hosts)`,
    );
  }
  if (res.status !== 200) {
    return fail(
      'not-pchat',
      `answered ${res.status} to GET /status: not a pchat-endpoint admin port (or one from before status)`,
    );
  }
  const status = statusFrom(res.body);
  if (status === undefined) {
    const type = (res.type ?? 'no content type').split(';')[0]!.trim();
    return fail('not-pchat', `answered 200 with ${type}, not a pchat-endpoint status`);
  }
  const { service: _service, ...rest } = status;
  return { admin, state: 'ok', ...rest };
}

/** A connection failure as a reason an operator can act on. */
function unreachable(err: Error & { code?: string }, timeoutMs: number): string {
  switch (err.code) {
    case 'TIMEOUT':
      return `unreachable: no answer within ${timeoutMs} ms`;
    case 'ECONNREFUSED':
      return 'unreachable: connection refused (no service listening there)';
    case 'ECONNRESET':
      return 'unreachable: connection closed before an answer (not an HTTP server?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unreachable: the name does not resolve';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable: no route to the host';
  }
  return `unreachable: ${err.code ?? err.message}`;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** The body as an AdminStatus, or undefined when it is not one (another server's JSON, HTML, ...). */
export function statusFrom(body: string): AdminStatus | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const s = v as Record<string, unknown>;
  const config = s['config'] as Record<string, unknown> | null | undefined;
  const pool = s['poolMembers'] as Record<string, unknown> | undefined;
  const ok =
    s['service'] === STATUS_SERVICE &&
    typeof s['ready'] === 'boolean' &&
    isCount(s['uptimeSeconds']) &&
    isCount(s['transactionsInFlight']) &&
    (config === null ||
      (typeof config === 'object' &&
        typeof config['sha256'] === 'string' &&
        /^[0-9a-f]{64}$/.test(config['sha256']) &&
        isCount(config['endpoints']))) &&
    typeof pool === 'object' &&
    pool !== null &&
    isCount(pool['up']) &&
    isCount(pool['down']);
  if (!ok) return undefined;
  return {
    service: STATUS_SERVICE,
    ready: s['ready'] as boolean,
    uptimeSeconds: s['uptimeSeconds'] as number,
    config:
      config === null
        ? null
        : { sha256: config['sha256'] as string, endpoints: config['endpoints'] as number },
    transactionsInFlight: s['transactionsInFlight'] as number,
    poolMembers: { up: pool['up'] as number, down: pool['down'] as number },
  };
}

/** Which table most instances serve, and who serves another. */
export interface Agreement {
  /** The digest more instances serve than any other; null when none does (a tie, or none answered). */
  readonly majority: string | null;
  /** How many answering instances serve the majority's table. */
  readonly majorityCount: number;
  /** Admin labels of answering instances whose digest is not the majority's (all of them on a tie). */
  readonly differs: ReadonlySet<string>;
}

/** Only instances that answered take part: an unreachable one has no say about which table is right. */
export function agreement(reports: readonly InstanceReport[]): Agreement {
  const counts = new Map<string, number>();
  const answered = reports.filter((r) => r.state === 'ok');
  // An instance that reports no digest counts as serving a table of its own.
  const digestOf = (r: (typeof answered)[number]): string => r.config?.sha256 ?? '';
  for (const r of answered) counts.set(digestOf(r), (counts.get(digestOf(r)) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  const top = ranked[0];
  // One table for all, or nobody answered: nothing to disagree about.
  if (top === undefined || ranked.length === 1) {
    const only = top === undefined || top[0] === '' ? null : top[0];
    return { majority: only, majorityCount: top?.[1] ?? 0, differs: new Set() };
  }
  const tie = ranked[1]![1] === top[1];
  const majority = tie || top[0] === '' ? null : top[0];
  const differs = new Set(answered.filter((r) => digestOf(r) !== majority).map((r) => r.admin));
  return { majority, majorityCount: majority === null ? 0 : top[1], differs };
}

/** The whole fleet: each instance's report, the agreement, and whether all is well. */
export interface FleetStatus {
  readonly instances: readonly InstanceReport[];
  readonly agreement: Agreement;
  /** Every instance answered as a pchat-endpoint and they all serve one table. */
  readonly ok: boolean;
}

export function fleetStatus(instances: readonly InstanceReport[]): FleetStatus {
  const a = agreement(instances);
  const ok = instances.every((r) => r.state === 'ok') && a.differs.size === 0;
  return { instances, agreement: a, ok };
}

/** `3d04h`, `2h05m`, `4m12s`, `37s`. */
export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${two(h)}h`;
  if (h > 0) return `${h}h${two(m)}m`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/** Digests shown in the table: 12 hex digits tell tables apart; --json has them whole. */
const SHORT = 12;
const MARK = '*';

/** The table for people: a row per instance, then a line per instance that needs a look. */
export function renderTable(fleet: FleetStatus): string {
  const { agreement: a } = fleet;
  const header = [
    'Admin',
    'Reachable',
    'Ready',
    'Uptime',
    'Table',
    'Endpoints',
    'InFlight',
    'PoolUp',
    'PoolDown',
  ];
  const rows = fleet.instances.map((r) => {
    if (r.state !== 'ok')
      return [r.admin, r.state === 'unreachable' ? 'no' : 'yes', '-', '-', '-', '-', '-', '-', '-'];
    const digest = r.config === null ? 'unknown' : r.config.sha256.slice(0, SHORT);
    return [
      r.admin,
      'yes',
      r.ready ? 'yes' : 'no',
      formatUptime(r.uptimeSeconds),
      a.differs.has(r.admin) ? `${digest} ${MARK}` : digest,
      r.config === null ? '-' : String(r.config.endpoints),
      String(r.transactionsInFlight),
      String(r.poolMembers.up),
      String(r.poolMembers.down),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  const notes: string[] = [];
  if (a.differs.size > 0) {
    const answered = fleet.instances.filter((r) => r.state === 'ok').length;
    notes.push(
      a.majority === null
        ? `${MARK} the instances serve different tables and no table is served by more of them than another`
        : `${MARK} serves another table than the ${a.majorityCount} of ${answered} answering instances on ${a.majority.slice(0, SHORT)}`,
    );
  }
  for (const r of fleet.instances) if (r.state !== 'ok') notes.push(`${r.admin}: ${r.error}`);
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n') + '\n';
}

/** The same for scripts: whole digests, `differs` per instance, the reason for each problem. */
export function renderJson(fleet: FleetStatus): string {
  const { agreement: a } = fleet;
  return (
    JSON.stringify(
      {
        ok: fleet.ok,
        majority: a.majority,
        instances: fleet.instances.map((r) =>
          r.state === 'ok'
            ? { ...r, reachable: true, differs: a.differs.has(r.admin) }
            : { ...r, reachable: r.state !== 'unreachable' },
        ),
      },
      null,
      2,
    ) + '\n'
  );
}

/** Why the exit code is 1, in one line; undefined when it is 0. */
function failureSummary(fleet: FleetStatus): string | undefined {
  const bad = fleet.instances.filter((r) => r.state !== 'ok').length;
  const parts: string[] = [];
  if (bad > 0) parts.push(`${bad} of ${fleet.instances.length} instances did not answer as a pchat-endpoint`);
  if (fleet.agreement.differs.size > 0) parts.push('the instances do not all serve the same table');
  return parts.length === 0 ? undefined : `status: ${parts.join('; ')}`;
}

interface StatusFlags {
  admin: string;
  json?: boolean;
  timeout: string;
  token?: string;
}

export function statusCommand(io: CliIo): Command {
  return new Command('status')
    .description(
      'one table for several instances: reachable, ready, uptime, table digest (those differing marked), in flight, pool members',
    )
    .requiredOption('--admin <host:port,...>', 'the admin ports to ask, comma-separated')
    .option('--json', 'JSON for scripts')
    .option('--timeout <ms>', 'how long each instance may take to answer', '2000')
    .option('--token <token>', 'bearer token sent to the admin ports (default: $PCHAT_ADMIN_TOKEN)')
    .action(async (flags: StatusFlags) => {
      const targets = parseAdminList(flags.admin);
      if (!/^\d{1,6}$/.test(flags.timeout) || Number(flags.timeout) === 0)
        throw usage(`--timeout: expected milliseconds, got "${flags.timeout}"`);
      const token = flags.token ?? io.env['PCHAT_ADMIN_TOKEN'];
      const reports = await Promise.all(
        targets.map((t) => askInstance(t, { timeoutMs: Number(flags.timeout), token })),
      );
      const fleet = fleetStatus(reports);
      io.out(flags.json === true ? renderJson(fleet) : renderTable(fleet));
      const failure = failureSummary(fleet);
      if (failure !== undefined) throw new CliError(EXIT.failure, failure);
    });
}
