// The service's own log destination (stdout, buffered): a line shows within about a second even
// when nothing else is logged, and a burst larger than the buffer arrives whole and in order.
// Runs dist/ (npm test builds it first).

import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const LOG = fileURLToPath(new URL('../../dist/base/log.js', import.meta.url));

/** Runs `body` in a child with `logger` made by createLogger; resolves with its stdout lines and when each came. */
function run(body: string): Promise<{ lines: string[]; at: number[]; code: number | null }> {
  const script =
    `import { createLogger, flushLogger } from ${JSON.stringify(LOG)};\n` +
    `const logger = createLogger({ level: 'info', pretty: false });\n${body}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const started = Date.now();
    const lines: string[] = [];
    const at: number[] = [];
    let rest = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop()!;
      for (const p of parts) {
        lines.push(p);
        at.push(Date.now() - started);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ lines, at, code }));
  });
}

describe('log destination', () => {
  it('shows a lone line within about a second, long before the process ends', async () => {
    const { lines, at, code } = await run(
      `setTimeout(() => logger.info({ n: 1 }, 'lone'), 200);\nsetTimeout(() => process.exit(0), 4000);`,
    );
    expect(code).toBe(0);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ n: 1, msg: 'lone' });
    expect(at[0]!).toBeLessThan(3000);
  });

  it('delivers a burst far larger than its buffer whole and in order, flushed before exit', async () => {
    const { lines, code } = await run(
      `for (let n = 0; n < 5000; n++) logger.info({ n }, 'burst ' + 'x'.repeat(n % 200));\n` +
        `flushLogger(logger);\nprocess.exit(0);`,
    );
    expect(code).toBe(0);
    expect(lines).toHaveLength(5000);
    lines.forEach((l, n) => expect((JSON.parse(l) as { n: number }).n).toBe(n));
  });
});
