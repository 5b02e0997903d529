// Log capture for tests: the JSON lines a pino logger writes, parsed, in order.

import { Writable } from 'node:stream';

/** A stream for pino that parses every line written to it and appends it to `lines`. */
export function jsonLines(lines: Record<string, unknown>[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
}
