// The mutation fuzzer's short run inside `npm test`: a few seconds of mutated RFC 4475 and SIPp
// messages, and of lures shaped like open-relay abuse, over UDP and TCP at a real `serve` process
// (dist/, built by `npm test`), with every destination the service sends to recorded by a preloaded
// observer (bench/lib/egress-observer.mjs). The long run is `npm run fuzz` (node bench/fuzz.mjs
// --seconds 600).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

describe('mutation fuzzer (short run)', () => {
  it.skipIf(!existsSync(resolve(ROOT, 'dist/cli/main.js')))(
    'three seconds of mutated datagrams and stream chunks: no crash, no internal error, still answering, heap flat, nothing sent to an address that is neither the sender nor a pool member',
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
      const summary = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as Record<
        string,
        unknown
      >;
      // First, so a failure shows the counterexample: the destination and the message that named it.
      expect(summary['egress'], out).toMatchObject({ violations: 0, trapHits: 0 });
      expect(code, out).toBe(0);
      expect(summary).toMatchObject({
        ok: true,
        serviceExited: false,
        internalErrors: 0,
        answeringAtEnd: true,
      });
      expect(summary['sent']).toBeGreaterThan(1000);
      // The oracle saw the service's sends, and the lures were among what was sent.
      const egress = summary['egress'] as { lures: number; sendsObserved: number; destinations: number };
      expect(egress.lures).toBeGreaterThan(100);
      expect(egress.sendsObserved).toBeGreaterThan(100);
      expect(egress.destinations).toBeGreaterThan(1);
    },
    60_000,
  );
});
