// The Grafana dashboard and the Prometheus alerting rules of docs/deploy read what a running service
// serves: every metric their expressions select is on a real `serve` process's /metrics (after one
// request, so the labelled series exist), with the labels they match and group on; promtool (Debian's
// prometheus package) accepts the rules and passes their unit tests.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { msgOf, startServe, type ServeProcess } from '../helpers/serve-process.js';
import { startPeer, type SipPeer } from '../helpers/sip-peer.js';
import { promqlNames } from '../helpers/promql.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARD = join(ROOT, 'docs/deploy/grafana/pchat-endpoint.json');
const RULES_DIR = join(ROOT, 'docs/deploy/prometheus');
const RULES = join(RULES_DIR, 'alerts.yml');

/** Written by Prometheus itself for each scrape target, never by the service. */
const SCRAPE_SERIES = new Set(['up']);
/** Labels Prometheus attaches to every series from the scrape target. */
const TARGET_LABELS = new Set(['instance', 'job']);

interface Panel {
  readonly type: string;
  readonly id: number;
  readonly datasource?: { type: string; uid: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: readonly { expr: string; refId: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  readonly schemaVersion: number;
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { list: readonly { name: string; type: string; query: unknown }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const rules = parseYaml(readFileSync(RULES, 'utf8')) as {
  groups: {
    rules: {
      alert: string;
      expr: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }[];
  }[];
};

/** Every expression, named by where it is. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} ${t.refId}`, expr: t.expr });
  for (const g of rules.groups)
    for (const r of g.rules) out.push({ where: `alert ${r.alert}`, expr: r.expr });
  return out;
}

/** Series names and the label names each carries, from an exposition text. */
function exposed(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (m === null) continue;
    const labels = series.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_]\w*)="/g)) labels.add(l[1]!);
    series.set(m[1]!, labels);
  }
  return series;
}

const invite = (ruri: string, port: number): string => {
  const id = Math.random().toString(36).slice(2);
  return (
    `INVITE ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${id}\r\n` +
    `From: <sip:t@contoso.com>;tag=${id}\r\nTo: <${ruri}>\r\nCall-ID: ${id}@test\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:t@127.0.0.1:${port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`
  );
};

/** Sends one INVITE from a socket of its own; resolves with the status line of the first final answer. */
async function finalStatus(sipPort: number, ruri: string): Promise<string> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no final response within 5 s')), 5000);
      sock.on('message', (m) => {
        const line = m.toString('latin1').split('\r\n')[0]!;
        if (/^SIP\/2\.0 [2-6]/.test(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      sock.send(invite(ruri, sock.address().port), sipPort, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

describe('PromQL names', () => {
  it('finds the metrics an expression selects, the labels it matches and groups on', () => {
    const n = promqlNames(
      'histogram_quantile(0.99, sum by (le, outcome) (rate(a_bucket{instance=~"$instance", x="y{z}"}[$__rate_interval])))' +
        ' / ignoring (cap) sum(b_total offset 5m) > bool 0 or vector(0) and on(job) c:d',
    );
    expect(n.selectors).toEqual([
      { metric: 'a_bucket', labels: ['instance', 'x'] },
      { metric: 'b_total', labels: [] },
      { metric: 'c:d', labels: [] },
    ]);
    expect(n.grouping).toEqual(['le', 'outcome', 'cap', 'job']);
  });
});

describe('dashboard and alerting rules', () => {
  let peer: SipPeer;
  let svc: ServeProcess;
  let series: Map<string, Set<string>>;

  beforeAll(async () => {
    // A pool member that answers the health probes, so its pchat_pool_member_up series is there.
    peer = await startPeer('udp', () => [{ status: 200, reason: 'OK' }]);
    svc = await startServe(
      'listen:\n  - udp://127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n',
      `endpoints:
  - sipAddress: sip:ocschat@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: redirect
  - sipAddress: sip:proxied@contoso.com
    poolFqdn: pcpool2.contoso.com
    mode: proxy
  - sipAddress: sip:lookup@contoso.com
    poolFqdn: pcpool.contoso.com
    mode: lookup
pools:
  - fqdn: pcpool2.contoso.com
    targets:
      - uri: sip:127.0.0.1:${peer.port};transport=udp
`,
    );
    await svc.waitReadyz(200, 10_000);
    const listening = await svc.waitForLine((l) => msgOf(l) === 'listening', 5000);
    expect(await finalStatus(Number(listening['port']), 'sip:ocschat@contoso.com')).toMatch(/^SIP\/2\.0 302/);
    const res = await fetch(`http://127.0.0.1:${svc.adminPort()}/metrics`);
    series = exposed(await res.text());
  });

  afterAll(async () => {
    await svc?.stop();
    await peer?.close();
  });

  it('select only metrics the service serves, with the labels it gives them', () => {
    const missing: string[] = [];
    let selected = 0;
    for (const { where, expr } of expressions()) {
      const names = promqlNames(expr);
      const labelsOf = new Set<string>(TARGET_LABELS);
      for (const s of names.selectors) {
        selected++;
        if (SCRAPE_SERIES.has(s.metric)) continue;
        const labels = series.get(s.metric);
        if (labels === undefined) {
          missing.push(`${where}: ${s.metric}`);
          continue;
        }
        for (const l of labels) labelsOf.add(l);
        for (const l of s.labels)
          if (!labels.has(l) && !TARGET_LABELS.has(l)) missing.push(`${where}: ${s.metric}{${l}}`);
      }
      for (const l of names.grouping) if (!labelsOf.has(l)) missing.push(`${where}: by/on (${l})`);
    }
    expect(missing).toEqual([]);
    // The tokenizer found the selectors: at least one per expression.
    expect(selected).toBeGreaterThanOrEqual(expressions().length);
  });

  it("the dashboard's instance variable lists a metric the service serves", () => {
    const v = dashboard.templating.list.find((x) => x.name === 'instance');
    const m = /^label_values\((\w+), *(\w+)\)$/.exec(String(v?.query));
    expect(m?.[2]).toBe('instance');
    expect(series.has(m![1]!)).toBe(true);
  });

  it('the service reads ready and an idle event loop as about 0, not the 100 ms sampling period', async () => {
    expect([...(series.get('pchat_ready') ?? [])]).toEqual([]);
    const text = await (await fetch(`http://127.0.0.1:${svc.adminPort()}/metrics`)).text();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('pchat_ready')).toBe(1);
    expect(value('nodejs_eventloop_lag_p50_seconds')).toBeLessThan(0.02);
    expect(value('nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.1);
  });
});

describe('dashboard', () => {
  it('is a Grafana dashboard whose panels all query the DS_PROMETHEUS data source', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ds = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, `panel ${p.id}`).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource?.uid, `panel ${p.id}`).toBe('${DS_PROMETHEUS}');
      const refs = (p.targets ?? []).map((t) => t.refId);
      expect(refs.length, `panel ${p.id}`).toBeGreaterThan(0);
      expect(new Set(refs).size, `panel ${p.id}`).toBe(refs.length);
      for (const t of p.targets ?? []) expect(t.datasource?.uid).toBe('${DS_PROMETHEUS}');
    }
  });
});

const promtool = spawnSync('promtool', ['--version']).status === 0;

describe.skipIf(!promtool)('alerting rules (promtool; Debian: apt-get install prometheus)', () => {
  it('pass promtool check rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('pass their unit tests (alerts.test.yml)', () => {
    const r = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], {
      cwd: RULES_DIR,
      encoding: 'utf8',
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS/);
  });

  it('each carries a severity, a summary and a description', () => {
    for (const r of rules.groups.flatMap((g) => g.rules)) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels.severity);
      expect(r.annotations.summary, r.alert).toMatch(/\S/);
      expect(r.annotations.description, r.alert).toMatch(/\S/);
    }
  });
});
