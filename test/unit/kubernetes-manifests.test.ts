// docs/deploy/kubernetes/, checked where no cluster runs: the manifests are parsed as kustomize would
// assemble them, the ConfigMap's files go through the service's own validation, and the Deployment,
// Services and PodDisruptionBudget are checked against that configuration and the Dockerfile. Each
// rule is a function returning what is wrong, and each is shown to find a fault planted in a copy.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { AdminGuard } from '../../src/admin/admin-server.js';
import { parseEndpointsConfig, parseServerConfig } from '../../src/config/load.js';
import type { ServerConfig } from '../../src/config/schema.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DIR = join(ROOT, 'docs/deploy/kubernetes');

/** Only the fields the checks read; everything else in a manifest is passed over. */
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Probe {
  httpGet?: { path?: string; port?: string | number };
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds?: number } } };
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}
interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels?: Record<string, string> };
  template: { metadata: { labels?: Record<string, string> }; spec: PodSpec };
}
interface ServicePort {
  name?: string;
  port: number;
  targetPort?: string | number;
  protocol?: string;
}
interface ServiceSpec {
  selector?: Record<string, string>;
  clusterIP?: string;
  ports: ServicePort[];
}
interface PdbSpec {
  minAvailable?: number;
  maxUnavailable?: number;
  selector: { matchLabels?: Record<string, string> };
}

/** What the checks are run on: the objects kustomize would emit, and the Dockerfile's text. */
interface Bundle {
  objects: Manifest[];
  dockerfile: string;
  /** The service's own pause between the drain and exit (serve-command.ts CLOSE_GRACE_MS), ms. */
  closeGraceMs: number;
}

/** The resources and generated ConfigMaps of kustomization.yaml, as `kubectl apply -k` would apply them. */
async function load(): Promise<Bundle> {
  const k = parse(await readFile(join(DIR, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
    configMapGenerator?: { name: string; files: string[]; options?: { disableNameSuffixHash?: boolean } }[];
  };
  const objects: Manifest[] = [];
  for (const file of k.resources) {
    for (const doc of parseAllDocuments(await readFile(join(DIR, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      objects.push(doc.toJS() as Manifest);
    }
  }
  for (const gen of k.configMapGenerator ?? []) {
    // With the hash suffix the Deployment's reference would be rewritten on every edit; the manifests
    // rely on the name staying as written (see kustomization.yaml).
    if (gen.options?.disableNameSuffixHash !== true) throw new Error(`${gen.name}: name hash not disabled`);
    const data: Record<string, string> = {};
    for (const f of gen.files) data[basename(f)] = await readFile(join(DIR, f), 'utf8');
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data });
  }
  const serve = await readFile(join(ROOT, 'src/cli/serve-command.ts'), 'utf8');
  const grace = /const CLOSE_GRACE_MS = (\d+);/.exec(serve)?.[1];
  if (grace === undefined) throw new Error('CLOSE_GRACE_MS not found in serve-command.ts');
  return {
    objects,
    dockerfile: await readFile(join(ROOT, 'Dockerfile'), 'utf8'),
    closeGraceMs: Number(grace),
  };
}

function one(b: Bundle, kind: string, name?: string): Manifest {
  const found = b.objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

const deployment = (b: Bundle): DeploymentSpec => one(b, 'Deployment').spec as unknown as DeploymentSpec;
const container = (b: Bundle): Container => deployment(b).template.spec.containers[0]!;

/** Every key/value of `selector` is among `labels` (an empty selector selects nothing here). */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/** The ConfigMap the Deployment mounts, and where. */
function mountedConfig(b: Bundle): { map: Manifest; mountPath: string; subPath: string | undefined } {
  const pod = deployment(b).template.spec;
  const mount = container(b).volumeMounts?.find((m) =>
    pod.volumes?.some((v) => v.name === m.name && v.configMap !== undefined),
  );
  if (mount === undefined) throw new Error('no ConfigMap volume mounted in the container');
  const volume = pod.volumes!.find((v) => v.name === mount.name)!;
  return {
    map: one(b, 'ConfigMap', volume.configMap!.name),
    mountPath: mount.mountPath,
    subPath: mount.subPath,
  };
}

/** server.yaml as the service reads it from the mounted ConfigMap (throws ConfigError when refused). */
function server(b: Bundle): ServerConfig {
  return parseServerConfig(mountedConfig(b).map.data?.['server.yaml'] ?? '', 'server.yaml');
}

/** The container port a probe or Service targetPort names (by name or by number). */
function containerPort(c: Container, port: string | number | undefined, protocol = 'TCP') {
  return c.ports?.find(
    (p) =>
      (p.protocol ?? 'TCP') === protocol &&
      (typeof port === 'number' ? p.containerPort === port : p.name === port),
  );
}

// ---------------------------------------------------------------------------------------------------
// The rules: each returns what is wrong, [] when nothing is.

function configProblems(b: Bundle): string[] {
  const out: string[] = [];
  const { map, mountPath, subPath } = mountedConfig(b);
  for (const [file, parseFile] of [
    ['server.yaml', parseServerConfig],
    ['endpoints.yaml', parseEndpointsConfig],
  ] as const) {
    const text = map.data?.[file];
    if (text === undefined) out.push(`ConfigMap ${map.metadata.name} has no ${file}`);
    else {
      try {
        parseFile(text, file);
      } catch (err) {
        out.push(`${file} refused: ${(err as Error).message}`);
      }
    }
  }
  // A subPath mount never sees the kubelet's updates: the live reload would see nothing.
  if (subPath !== undefined) out.push('ConfigMap mounted with subPath');
  const env = container(b).env?.find((e) => e.name === 'PCHAT_CONFIG_DIR')?.value;
  const imageDir = /PCHAT_CONFIG_DIR=(\S+)/.exec(b.dockerfile)?.[1];
  if (env !== mountPath) out.push(`PCHAT_CONFIG_DIR is ${env}, the ConfigMap is mounted at ${mountPath}`);
  if (imageDir !== mountPath) out.push(`the image's PCHAT_CONFIG_DIR is ${imageDir}, not ${mountPath}`);
  return out;
}

function commandProblems(b: Bundle): string[] {
  const json = (instr: string): string[] | undefined => {
    const m = new RegExp(`^${instr} (\\[.*\\])$`, 'm').exec(b.dockerfile);
    return m === null ? undefined : (JSON.parse(m[1]!) as string[]);
  };
  const image = [...(json('ENTRYPOINT') ?? []), ...(json('CMD') ?? [])];
  const c = container(b);
  const pod = [...(c.command ?? []), ...(c.args ?? [])];
  if (image.length === 0) return ['no ENTRYPOINT or CMD in the Dockerfile'];
  return JSON.stringify(pod) === JSON.stringify(image)
    ? []
    : [`container runs ${JSON.stringify(pod)}, the Dockerfile ${JSON.stringify(image)}`];
}

function probeProblems(b: Bundle): string[] {
  const out: string[] = [];
  const admin = server(b).admin;
  if (admin.listen === undefined) return ['server.yaml has no admin port'];
  const c = container(b);
  for (const [which, path] of [
    ['readinessProbe', '/readyz'],
    ['livenessProbe', '/healthz'],
  ] as const) {
    const get = c[which]?.httpGet;
    if (get?.path !== path) out.push(`${which} asks ${get?.path}, not ${path}`);
    const port = containerPort(c, get?.port);
    if (port?.containerPort !== admin.listen.port)
      out.push(
        `${which} port ${get?.port} is ${port?.containerPort}, the admin port is ${admin.listen.port}`,
      );
  }
  // The kubelet connects to the pod's address with Host: <pod IP>:<port>: the admin port must listen
  // there and its Host check accept that.
  const guard = new AdminGuard(
    {
      address: admin.listen.host,
      port: admin.listen.port,
      family: admin.listen.host.includes(':') ? 'IPv6' : 'IPv4',
    },
    { hosts: admin.hosts, allowOrigins: admin.allowOrigins, baseDir: '.' },
  );
  if (!['0.0.0.0', '::'].includes(admin.listen.host))
    out.push(`admin listens on ${admin.listen.host}, not on the pod's address`);
  if (!guard.host(`10.244.1.17:${admin.listen.port}`)) out.push('admin Host check refuses the kubelet');
  return out;
}

function graceProblems(b: Bundle): string[] {
  const pod = deployment(b).template.spec;
  const preStop = container(b).lifecycle?.preStop;
  // A preStop pause counts against the grace period too.
  const pauseS =
    preStop?.sleep?.seconds ??
    (preStop?.exec?.command?.[0] === 'sleep' ? Number(preStop.exec.command[1]) : 0);
  const needS = pauseS + server(b).shutdown.drainTime / 1000 + b.closeGraceMs / 1000;
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  return grace > needS ? [] : [`terminationGracePeriodSeconds ${grace} is not over ${needS} s`];
}

function serviceProblems(b: Bundle): string[] {
  const out: string[] = [];
  const d = deployment(b);
  const c = container(b);
  const sip = one(b, 'Service', 'pchat-endpoint').spec as unknown as ServiceSpec;
  if (!selects(sip.selector, d.template.metadata.labels)) out.push('the SIP Service selects no pod');
  const listen = server(b).listen.filter((l) => l.transport === 'udp' || l.transport === 'tcp');
  for (const transport of ['udp', 'tcp']) {
    if (!listen.some((l) => l.transport === transport)) out.push(`server.yaml has no ${transport} listener`);
  }
  for (const l of listen) {
    const protocol = l.transport.toUpperCase();
    const sp = sip.ports.find((p) => (p.protocol ?? 'TCP') === protocol && p.port === l.port);
    const target = sp && containerPort(c, sp.targetPort ?? sp.port, protocol);
    if (sp === undefined) out.push(`the SIP Service has no ${protocol} port ${l.port}`);
    else if (target?.containerPort !== l.port)
      out.push(`the SIP Service's ${protocol} ${l.port} goes to ${target?.containerPort}, not ${l.port}`);
  }
  for (const p of sip.ports) {
    const served = listen.some((l) => l.transport.toUpperCase() === (p.protocol ?? 'TCP'));
    if (!served) out.push(`the SIP Service's ${p.protocol ?? 'TCP'} ${p.port} has no listener`);
  }
  const admin = one(b, 'Service', 'pchat-endpoint-admin').spec as unknown as ServiceSpec;
  if (!selects(admin.selector, d.template.metadata.labels)) out.push('the admin Service selects no pod');
  const adminPort = containerPort(c, admin.ports[0]?.targetPort ?? admin.ports[0]?.port);
  if (adminPort?.containerPort !== server(b).admin.listen?.port)
    out.push('the admin Service misses the admin port');
  return out;
}

function replicaProblems(b: Bundle): string[] {
  const out: string[] = [];
  const d = deployment(b);
  const replicas = d.replicas ?? 1;
  if (replicas < 2) out.push(`${replicas} replica(s): one instance is a single point of failure`);
  if (!selects(d.selector.matchLabels, d.template.metadata.labels))
    out.push('the Deployment selects no pod of its own');
  const pdb = one(b, 'PodDisruptionBudget').spec as unknown as PdbSpec;
  if (!selects(pdb.selector.matchLabels, d.template.metadata.labels))
    out.push("the PodDisruptionBudget does not select the Deployment's pods");
  // At least one stays, and at least one may go (else a node drain would hang on it).
  const kept = pdb.minAvailable ?? (pdb.maxUnavailable === undefined ? 0 : replicas - pdb.maxUnavailable);
  if (kept < 1 || kept >= replicas) out.push(`the PodDisruptionBudget keeps ${kept} of ${replicas}`);
  return out;
}

const RULES = {
  configProblems,
  commandProblems,
  probeProblems,
  graceProblems,
  serviceProblems,
  replicaProblems,
};

/** A deep copy to plant a fault in. */
function copy(b: Bundle): Bundle {
  return structuredClone(b);
}

function setServerYaml(b: Bundle, edit: (text: string) => string): void {
  const map = mountedConfig(b).map;
  map.data!['server.yaml'] = edit(map.data!['server.yaml']!);
}

/** kubectl, when installed: its built-in kustomize renders the folder without a cluster. */
const KUBECTL = spawnSync('kubectl', ['version', '--client'], { timeout: 10_000 }).status === 0;
/** kubectl has no package on Ubuntu 24.04 (Debian 12's is 1.20): where it is missing, say why it skips. */
const kubectlTitle = (title: string): string =>
  KUBECTL ? title : `${title} (SKIPPED: no kubectl; install it from https://kubernetes.io/docs/tasks/tools/)`;

describe('docs/deploy/kubernetes', () => {
  it('kustomization.yaml names every manifest in the folder', async () => {
    const k = parse(await readFile(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    const files = (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...k.resources].sort()).toEqual(files.sort());
  });

  it('has a Deployment, two Services, a ConfigMap and a PodDisruptionBudget, with the API versions of today', async () => {
    const b = await load();
    expect(b.objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`).sort()).toEqual([
      'apps/v1 Deployment pchat-endpoint',
      'policy/v1 PodDisruptionBudget pchat-endpoint',
      'v1 ConfigMap pchat-endpoint-config',
      'v1 Service pchat-endpoint',
      'v1 Service pchat-endpoint-admin',
    ]);
  });

  // The objects above are assembled here as kustomize would; where kubectl is at hand, it says so too.
  it.skipIf(!KUBECTL)(kubectlTitle('kubectl kustomize renders the same objects'), async () => {
    const rendered = execFileSync('kubectl', ['kustomize', DIR], { encoding: 'utf8', timeout: 30_000 });
    const key = (o: Manifest): string => `${o.kind}/${o.metadata.name}`;
    const byKey = (list: Manifest[]) => Object.fromEntries(list.map((o) => [key(o), o]));
    const theirs = parseAllDocuments(rendered).map((d) => d.toJS() as Manifest);
    expect(byKey(theirs)).toEqual(byKey((await load()).objects));
  });

  it.each(Object.keys(RULES))('%s: none in the shipped manifests', async (rule) => {
    const b = await load();
    expect(RULES[rule as keyof typeof RULES](b)).toEqual([]);
  });

  it('the ConfigMap files are the ones the service validates: a bad edit to either is found', async () => {
    const b = await load();
    const badServer = copy(b);
    setServerYaml(badServer, (t) => t.replace('drainTime: 10000', 'drainTime: forever'));
    expect(configProblems(badServer).join('\n')).toMatch(/server\.yaml refused: .*drainTime/s);
    const badTable = copy(b);
    const map = mountedConfig(badTable).map;
    map.data!['endpoints.yaml'] +=
      '  - sipAddress: ocschat-without-scheme\n    poolFqdn: pcpool.contoso.com\n';
    expect(configProblems(badTable).join('\n')).toMatch(/endpoints\.yaml refused/);
    const subPath = copy(b);
    container(subPath).volumeMounts![0]!.subPath = 'server.yaml';
    expect(configProblems(subPath)).toContain('ConfigMap mounted with subPath');
    const elsewhere = copy(b);
    container(elsewhere).env = [{ name: 'PCHAT_CONFIG_DIR', value: '/config' }];
    expect(configProblems(elsewhere)).toContain(
      'PCHAT_CONFIG_DIR is /config, the ConfigMap is mounted at /etc/pchat-endpoint',
    );
  });

  it('the container runs what the Dockerfile runs: another command is found', async () => {
    const b = await load();
    expect(commandProblems(b)).toEqual([]);
    const other = copy(b);
    container(other).args = ['serve', '--log-level', 'debug'];
    expect(commandProblems(other)).toHaveLength(1);
    const image = copy(b);
    image.dockerfile = image.dockerfile.replace('CMD ["serve"]', 'CMD ["serve", "-c", "/config"]');
    expect(commandProblems(image)).toHaveLength(1);
  });

  it('the probes ask /readyz and /healthz on the admin port server.yaml opens, which lets the kubelet in', async () => {
    const b = await load();
    const c = container(b);
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(containerPort(c, c.readinessProbe?.httpGet?.port)?.containerPort).toBe(
      server(b).admin.listen?.port,
    );

    const moved = copy(b);
    setServerYaml(moved, (t) => t.replace('listen: 0.0.0.0:9090', 'listen: 0.0.0.0:9191'));
    expect(probeProblems(moved)).toEqual([
      'readinessProbe port admin is 9090, the admin port is 9191',
      'livenessProbe port admin is 9090, the admin port is 9191',
    ]);
    const swapped = copy(b);
    container(swapped).livenessProbe!.httpGet!.path = '/readyz';
    expect(probeProblems(swapped)).toEqual(['livenessProbe asks /readyz, not /healthz']);
    // On loopback (the shipped config/ folder's choice) the kubelet could neither connect nor pass.
    const loopback = copy(b);
    setServerYaml(loopback, (t) => t.replace('listen: 0.0.0.0:9090', 'listen: 127.0.0.1:9090'));
    expect(probeProblems(loopback)).toEqual([
      "admin listens on 127.0.0.1, not on the pod's address",
      'admin Host check refuses the kubelet',
    ]);
  });

  it('the grace period outlasts the preStop pause, shutdown.drainTime and the close', async () => {
    const b = await load();
    const drainS = server(b).shutdown.drainTime / 1000;
    expect(deployment(b).template.spec.terminationGracePeriodSeconds).toBeGreaterThan(drainS);
    const longer = copy(b);
    setServerYaml(longer, (t) => t.replace('drainTime: 10000', 'drainTime: 25000'));
    expect(graceProblems(longer)).toEqual(['terminationGracePeriodSeconds 30 is not over 32 s']);
    const noneGiven = copy(b);
    delete deployment(noneGiven).template.spec.terminationGracePeriodSeconds;
    container(noneGiven).lifecycle = { preStop: { sleep: { seconds: 20 } } };
    expect(graceProblems(noneGiven)).toEqual(['terminationGracePeriodSeconds 30 is not over 32 s']);
  });

  it('the SIP Service carries each UDP and TCP listen port of server.yaml to the pods', async () => {
    const b = await load();
    const listen = server(b).listen.map((l) => `${l.transport}:${l.port}`);
    expect(listen).toEqual(['udp:5060', 'tcp:5060']);
    const ports = (one(b, 'Service', 'pchat-endpoint').spec as unknown as ServiceSpec).ports;
    expect(ports.map((p) => `${p.protocol}:${p.port}`)).toEqual(['UDP:5060', 'TCP:5060']);

    const tcpOnly = copy(b);
    (one(tcpOnly, 'Service', 'pchat-endpoint').spec as unknown as ServiceSpec).ports.shift();
    expect(serviceProblems(tcpOnly)).toEqual(['the SIP Service has no UDP port 5060']);
    const movedListener = copy(b);
    setServerYaml(movedListener, (t) => t.replace('tcp://0.0.0.0:5060', 'tcp://0.0.0.0:5070'));
    expect(serviceProblems(movedListener)).toEqual(['the SIP Service has no TCP port 5070']);
    const wrongTarget = copy(b);
    (one(wrongTarget, 'Service', 'pchat-endpoint').spec as unknown as ServiceSpec).ports[0]!.targetPort =
      'admin';
    expect(serviceProblems(wrongTarget)).toEqual(["the SIP Service's UDP 5060 goes to undefined, not 5060"]);
    const otherPods = copy(b);
    (one(otherPods, 'Service', 'pchat-endpoint').spec as unknown as ServiceSpec).selector = { app: 'other' };
    expect(serviceProblems(otherPods)).toEqual(['the SIP Service selects no pod']);
  });

  it("the PodDisruptionBudget selects the Deployment's pods and lets one of two go", async () => {
    const b = await load();
    expect(deployment(b).replicas).toBe(2);
    const otherPods = copy(b);
    (one(otherPods, 'PodDisruptionBudget').spec as unknown as PdbSpec).selector.matchLabels = {
      'app.kubernetes.io/name': 'pchat',
    };
    expect(replicaProblems(otherPods)).toEqual([
      "the PodDisruptionBudget does not select the Deployment's pods",
    ]);
    const blocksDrain = copy(b);
    (one(blocksDrain, 'PodDisruptionBudget').spec as unknown as PdbSpec).minAvailable = 2;
    expect(replicaProblems(blocksDrain)).toEqual(['the PodDisruptionBudget keeps 2 of 2']);
    const single = copy(b);
    (one(single, 'Deployment').spec as unknown as DeploymentSpec).replicas = 1;
    expect(replicaProblems(single)).toEqual([
      '1 replica(s): one instance is a single point of failure',
      'the PodDisruptionBudget keeps 1 of 1',
    ]);
  });
});

describe('docs/deploy/kubernetes: the shared secret from a Secret', () => {
  /** The file's text with the commented lines that hold `marker` and those nested under them uncommented. */
  function uncomment(text: string, marker: RegExp): string {
    const lines = text.split('\n');
    let indent = -1;
    return lines
      .map((line) => {
        const m = /^(\s*)# ?(.*)$/.exec(line);
        if (m === null) return ((indent = -1), line);
        const starts = marker.test(m[2]!);
        if (starts) indent = m[1]!.length;
        else if (indent < 0 || m[1]!.length !== indent || !/^\s/.test(m[2]!)) return ((indent = -1), line);
        return `${m[1]}${m[2]}`;
      })
      .join('\n');
  }

  it('uncommented as the comments say, server.yaml reads the secret where the Deployment mounts the Secret', async () => {
    const serverText = uncomment(await readFile(join(DIR, 'config/server.yaml'), 'utf8'), /^security:$/);
    const cfg = parseServerConfig(serverText, 'server.yaml');
    const file = cfg.security.secretFile!;
    expect(file).toBe('/etc/pchat-endpoint-secret/secret');
    const deployment = parse(
      uncomment(await readFile(join(DIR, 'deployment.yaml'), 'utf8'), /^- name: secret$/),
    ) as { spec: DeploymentSpec };
    const pod = deployment.spec.template.spec as unknown as Omit<PodSpec, 'volumes'> & {
      volumes: { name: string; secret?: { secretName: string } }[];
    };
    const mount = pod.containers[0]!.volumeMounts!.find((m) => m.name === 'secret')!;
    expect(`${mount.mountPath}/secret`).toBe(file);
    const volume = pod.volumes.find((v) => v.name === 'secret')!;
    // The Secret the server.yaml comment's kubectl command makes, with the key `secret`.
    expect(serverText).toContain(
      `kubectl create secret generic ${volume.secret!.secretName} --from-literal=secret=`,
    );
  });
});
