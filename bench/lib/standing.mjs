// bench/RESULTS.md holds where the project stands: one section per suite, each from the latest run of
// that suite. A run replaces its suite's section (between the markers below) and leaves the others as
// they are; the history is git's, and what was learned goes to docs/performance-notes.md by hand. The
// full report of a run (every row, every sample) is written next to the system's temporary files.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS = fileURLToPath(new URL('../RESULTS.md', import.meta.url));

const begin = (suite) => `<!-- standing:${suite} (written by the bench; a run replaces it) -->`;
const end = (suite) => `<!-- /standing:${suite} -->`;

/**
 * Puts `section` in place of the suite's section of RESULTS.md, or at the end of it when the suite
 * has none yet. Returns the file written.
 * @param {string} suite e.g. "redirect", "proxy", "soak"
 * @param {string} section markdown, starting with its "## " heading
 */
export async function recordStanding(suite, section) {
  const text = existsSync(RESULTS) ? await readFile(RESULTS, 'utf8') : '# Benchmark results\n';
  const block = `${begin(suite)}\n${section.trim()}\n${end(suite)}`;
  const from = text.indexOf(begin(suite));
  const to = text.indexOf(end(suite));
  const next =
    from >= 0 && to > from
      ? text.slice(0, from) + block + text.slice(to + end(suite).length)
      : `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(RESULTS, next);
  return RESULTS;
}

/** Keeps a run's full report out of the repository: returns the file it was written to. */
export async function saveFullReport(suite, date, report) {
  const file = join(tmpdir(), `pchat-bench-${suite}-${date.replace(/[:.]/g, '-')}.md`);
  await writeFile(file, `${report}\n`);
  return file;
}
