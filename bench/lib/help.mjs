// --help for the scripts of bench/. Each imports this module first: with --help (or -h), it prints the
// script's opening comment (what it does, its usage line and every option) and exits 0 before the
// script's own code runs (those that use dist/ import it dynamically, so --help answers before a
// build). parseOptions is node:util's parseArgs, with a wrong option told in one line and the usage,
// not a stack trace.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The opening `//` comment of a script, without the slashes. */
export function openingComment(source) {
  const lines = [];
  for (const line of source.split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join('\n');
}

const usage = () => openingComment(readFileSync(process.argv[1], 'utf8'));

if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  console.log(usage());
  process.exit(0);
}

/** parseArgs({ options }); an unknown or malformed option prints the error and the usage, exit 2. */
export function parseOptions(options) {
  try {
    return parseArgs({ options });
  } catch (err) {
    console.error(`${err.message}\n\n${usage()}`);
    process.exit(2);
  }
}
