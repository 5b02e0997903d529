// The command line's commands, built afresh for each run so tests can run them in-process with their
// own output buffers and read the exit code back.
import { Command, CommanderError } from 'commander';
import { asCliError } from './common.js';
import { checkCommand } from './check-command.js';
import { EXIT } from './exit-codes.js';
import { getCommand } from './get-command.js';
import { initCommand } from './init-command.js';
import type { CliIo } from './io.js';
import { newCommand } from './new-command.js';
import { removeCommand } from './remove-command.js';
import { serveCommand } from './serve-command.js';
import { setCommand } from './set-command.js';
import { statusCommand } from './status-command.js';
import { traceCommand } from './trace-command.js';

export function buildProgram(io: CliIo): Command {
  const program = new Command()
    .name('pchat-endpoint')
    .description('Leads legacy Group Chat clients from well-known SIP addresses to a Persistent Chat pool')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  for (const make of [
    serveCommand,
    initCommand,
    newCommand,
    getCommand,
    setCommand,
    removeCommand,
    checkCommand,
    traceCommand,
    statusCommand,
  ]) {
    program.addCommand(
      make(io)
        .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
        .exitOverride(),
    );
  }
  return program;
}

/** Runs the command line on `args` (without node and the script) and returns the exit code. */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...args], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end the run with code 0; everything else commander refuses is a usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const mapped = asCliError(err);
    if (mapped !== undefined) {
      io.err(`pchat-endpoint: ${mapped.message}\n`);
      return mapped.exitCode;
    }
    io.err(`pchat-endpoint: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}
