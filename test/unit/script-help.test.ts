// Every script of the repository answers --help with its usage and options, exit 0, and a wrong
// option with one line and the usage, exit 2: never a stack trace. The bench scripts are found by
// listing bench/, so a new one is held to this too.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPTS = [
  ...readdirSync(join(ROOT, 'bench'))
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => `bench/${f}`),
  'test/run.mjs',
  'native/build.mjs',
];

function run(script: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [script, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
}

/** The options a script declares to parseOptions (bench/lib/help.mjs). */
function declaredOptions(script: string): string[] {
  const source = readFileSync(join(ROOT, script), 'utf8');
  const at = source.indexOf('parseOptions({');
  if (at < 0) return [];
  const block = source.slice(at, source.indexOf('\n});', at));
  return [...block.matchAll(/^\s+'?([a-z][\w-]*)'?: \{ type:/gm)].map((m) => m[1]!);
}

describe('script --help', () => {
  it('covers the bench scripts', () => {
    expect(SCRIPTS).toEqual(expect.arrayContaining(['bench/run.mjs', 'bench/soak.mjs', 'bench/fuzz.mjs']));
  });

  it.each(SCRIPTS)('%s --help prints its usage and every option, exit 0', (script) => {
    const r = run(script, '--help');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    // The usage line names the script as it is run.
    expect(r.stdout).toMatch(new RegExp(`(^|[\\s\`(])node ${script.replace('.', '\\.')}\\b`, 'm'));
    for (const o of declaredOptions(script)) expect(r.stdout, `--${o}`).toContain(`--${o}`);
  });

  it.each(SCRIPTS.filter((s) => declaredOptions(s).length > 0))(
    '%s refuses an unknown option in one line and the usage, exit 2',
    (script) => {
      const r = run(script, '--no-such-option');
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^Unknown option '--no-such-option'/);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr).toContain(`node ${script}`);
    },
  );
});
