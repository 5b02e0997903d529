// Where the command line's output goes and how it asks a question: the process's own streams when run
// as a program, buffers in tests.
import { createInterface } from 'node:readline/promises';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Both standard input and output are a terminal: a person is there to answer. */
  readonly interactive: boolean;
  /** Asks a yes/no question; only called when `interactive`. */
  confirm(question: string): Promise<boolean>;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function processIo(): CliIo {
  // The reader went away (`get | head`): the output is no longer wanted, so stop as a pipeline's
  // programs do, quietly, instead of dying on an unhandled EPIPE with a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    interactive: process.stdin.isTTY && process.stdout.isTTY,
    async confirm(question) {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        const answer = await rl.question(`${question} [y/N] `);
        return /^y(es)?$/i.test(answer.trim());
      } finally {
        rl.close();
      }
    },
    env: process.env,
  };
}
