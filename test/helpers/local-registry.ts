// A package registry on 127.0.0.1 serving the packages of a node_modules folder, so a test can let
// npm install the project's own tarball, dependencies and all, with no network: each package's
// metadata comes from its package.json, its tarball is packed from its folder when asked for.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface LocalRegistry {
  /** http://127.0.0.1:PORT/ */
  readonly url: string;
  /** Every path asked for, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** name -> version -> folder, for every package under `nodeModules`, nested ones included. */
export function collectPackages(
  nodeModules: string,
  into = new Map<string, Map<string, string>>(),
): Map<string, Map<string, string>> {
  if (!existsSync(nodeModules)) return into;
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith('.')) continue;
    const folders = entry.startsWith('@')
      ? readdirSync(join(nodeModules, entry)).map((s) => join(nodeModules, entry, s))
      : [join(nodeModules, entry)];
    for (const folder of folders) {
      const manifest = join(folder, 'package.json');
      if (!existsSync(manifest)) continue;
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (name === undefined || version === undefined) continue;
      if (!into.has(name)) into.set(name, new Map());
      into.get(name)?.set(version, folder);
      collectPackages(join(folder, 'node_modules'), into);
    }
  }
  return into;
}

/** Numeric comparison of x.y.z versions (enough to name a `latest`). */
function newer(a: string, b: string): boolean {
  const pa = a.split(/[.+-]/).map(Number);
  const pb = b.split(/[.+-]/).map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) > (pb[i] ?? 0);
  return false;
}

function packument(name: string, versions: Map<string, string>, url: string): unknown {
  const out: Record<string, unknown> = {};
  let latest = '';
  for (const [version, folder] of versions) {
    const pkg = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as Record<string, unknown>;
    // Fields npm wrote at install time (_resolved, _integrity...) describe another registry.
    for (const k of Object.keys(pkg)) if (k.startsWith('_')) delete pkg[k];
    out[version] = { ...pkg, dist: { tarball: `${url}-/${encodeURIComponent(name)}/${version}.tgz` } };
    if (latest === '' || newer(version, latest)) latest = version;
  }
  return { name, 'dist-tags': { latest }, versions: out };
}

/** The folder as an npm tarball: its files under package/, without its own node_modules. */
function sendTarball(folder: string, res: ServerResponse): void {
  const files = readdirSync(folder).filter((f) => f !== 'node_modules');
  const tar = spawn(
    'tar',
    ['-czf', '-', '--owner=0', '--group=0', '--transform', 's,^,package/,', ...files],
    {
      cwd: folder,
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  tar.stdout.pipe(res);
}

export async function startLocalRegistry(nodeModules: string): Promise<LocalRegistry> {
  const packages = collectPackages(nodeModules);
  const requests: string[] = [];
  let url = '';
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const tarball = /^\/-\/(.+)\/([^/]+)\.tgz$/.exec(path);
    const folder = tarball ? packages.get(tarball[1] ?? '')?.get(tarball[2] ?? '') : undefined;
    const versions = packages.get(path.slice(1));
    if (folder !== undefined) sendTarball(folder, res);
    else if (versions !== undefined && tarball === null) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(packument(path.slice(1), versions, url)));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url,
    requests,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
