// Builds the UDP binding (native/udp.c) with node-gyp, which npm ships. Run by `npm ci` (the
// package's install script) and by `npm run build:native`. The service works without the binding
// (it falls back to node:dgram), so a failed build is reported and does not fail the install.
//   node native/build.mjs [--if-missing]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const addon = join(here, 'build/Release/pchat_udp.node');

const USAGE = `usage: node native/build.mjs [--if-missing]

Builds the UDP binding (native/udp.c) with node-gyp; without it the service uses node:dgram.
--if-missing: do nothing when the binding is already built.`;
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}

if (process.platform !== 'linux') {
  console.log(`native UDP binding: not built on ${process.platform}; node:dgram will be used`);
  process.exit(0);
}
if (process.argv.includes('--if-missing') && existsSync(addon)) process.exit(0);

// npm passes node-gyp's path to scripts it runs; otherwise use the copy bundled with npm.
const gyp =
  process.env.npm_config_node_gyp ??
  join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
const args = [gyp, 'rebuild', '--directory', here];
// Build against the headers installed with this Node (Debian's /usr, the official images' /usr/local)
// when there are some: nothing to download.
const prefix = dirname(dirname(process.execPath));
if (process.env.npm_config_nodedir === undefined && existsSync(join(prefix, 'include/node/node_api.h')))
  args.push(`--nodedir=${prefix}`);
const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (run.status === 0 && existsSync(addon)) {
  console.log(`native UDP binding built: ${addon}`);
} else {
  console.warn(
    'native UDP binding: build failed (see above); the service will use node:dgram for UDP. ' +
      'Fix the build and run `npm run build:native` to get batched UDP reads.',
  );
}
