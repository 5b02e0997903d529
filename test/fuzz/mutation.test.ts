// The mutation fuzzer's short run inside `npm test`: a few seconds of mutated RFC 4475 and SIPp
// messages over UDP and TCP at a real `serve` process (dist/, built by `npm test`). The long run is
// `npm run fuzz` (node bench/fuzz.mjs --seconds 600).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

describe('mutation fuzzer (short run)', () => {
  it.skipIf(!existsSync(resolve(ROOT, 'dist/cli/main.js')))(
    'three seconds of mutated datagrams and stream chunks: no crash, no internal error, still answering, heap flat',
    async () => {
      const child = spawn(process.execPath, ['bench/fuzz.mjs', '--seconds', '3', '--seed', '4475'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const kill = setTimeout(() => child.kill('SIGKILL'), 40_000);
      const code = await new Promise<number | null>((r) => child.once('close', r));
      clearTimeout(kill);
      expect(code, out).toBe(0);
      const summary = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as Record<
        string,
        unknown
      >;
      expect(summary).toMatchObject({
        ok: true,
        serviceExited: false,
        internalErrors: 0,
        answeringAtEnd: true,
      });
      expect(summary['sent']).toBeGreaterThan(1000);
    },
    60_000,
  );
});
