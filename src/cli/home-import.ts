// `pchat-endpoint home import WAVE.csv`: a migration wave applied to the user table at once (each user
// of the wave homed on their pool), with a summary of the moves; --what-if shows it and writes nothing.
import { basename, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { domainNameKey } from '../endpoints/domain-name.js';
import { readConfigFile } from '../config/config-file.js';
import { formatIssue } from '../config/errors.js';
import { checkUserTableText } from '../config/load.js';
import {
  editUsersFile,
  homeUsers,
  scanUsers,
  type HomingContext,
  type UserChange,
  type WaveRow,
} from '../config/users-editor.js';
import { editOptions, formatColumns, refusedEdit, refuseShippedExample, type EditFlags } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { addTableOptions, userTable, type TableFlags } from './home-table.js';
import type { CliIo } from './io.js';

/** The wave's users, read as a user table is read and checked as one (file:line for a bad row). */
async function readWave(ctx: HomingContext, wave: string, table: string): Promise<WaveRow[]> {
  // The wave may be anywhere (a migration plan's export); only the size and time limits apply.
  const { root: _, ...limits } = ctx.rules;
  const text = await readConfigFile(wave, limits);
  if (typeof text !== 'string') throw new CliError(EXIT.failure, formatIssue(text));
  const checked = checkUserTableText(text, wave, ctx.knownPools);
  if (checked.issues !== undefined)
    throw new CliError(
      EXIT.config,
      `refused, ${table} left unchanged:\n${checked.issues.map(formatIssue).join('\n')}`,
    );
  return scanUsers(text).rows.map((r) => ({ address: r.address, pool: r.pool }));
}

/** One line of the summary: a kind of change between two pools, and how many users it concerns. */
interface Move {
  readonly change: UserChange['kind'];
  readonly from: string | null;
  readonly to: string;
  users: number;
}

/** The changes grouped by kind and pools (pools in canonical form), in a stable order. */
export function summarizeWave(changes: readonly UserChange[]): Move[] {
  const moves = new Map<string, Move>();
  for (const c of changes) {
    const from = c.kind === 'moved' ? domainNameKey(c.from) : null;
    const to = domainNameKey(c.to);
    const key = `${c.kind} ${from ?? ''} ${to}`;
    const move = moves.get(key) ?? { change: c.kind, from, to, users: 0 };
    move.users++;
    moves.set(key, move);
  }
  const order = { added: 0, moved: 1, unchanged: 2 } as const;
  return [...moves.values()].sort(
    (a, b) =>
      order[a.change] - order[b.change] ||
      (a.from ?? '').localeCompare(b.from ?? '') ||
      a.to.localeCompare(b.to),
  );
}

function counts(changes: readonly UserChange[]): Record<UserChange['kind'], number> {
  const n = { added: 0, moved: 0, unchanged: 0 };
  for (const c of changes) n[c.kind]++;
  return n;
}

interface ImportFlags extends TableFlags, EditFlags {}

export function homeImportCommand(io: CliIo): Command {
  const cmd = new Command('import')
    .description(
      'apply a migration wave: a CSV of SipAddress,PoolFqdn rows with a header; each user is homed on their pool',
    )
    .argument('<wave>', 'the wave file, e.g. wave-2.csv')
    .option('--what-if', 'show the summary of the moves, write nothing')
    .option('--json', 'the summary as JSON, with every user')
    .addOption(
      new Option('--lock-timeout <ms>', 'how long to wait for another edit to finish').default('10000'),
    );
  addTableOptions(cmd, io);
  return cmd.action(async (waveArg: string, flags: ImportFlags) => {
    refuseShippedExample(flags);
    const { ctx, file } = await userTable(flags);
    const wave = resolve(waveArg);
    const rows = await readWave(ctx, wave, file);
    let result;
    try {
      result = await editUsersFile(ctx, file, { ...editOptions(io, flags), create: true }, (doc) => {
        const { text, changes, homed } = homeUsers(doc, rows);
        const n = counts(changes);
        const summary = `${n.added} added, ${n.moved} moved, ${n.unchanged} unchanged`;
        return { text, changes, homed, summary };
      });
    } catch (err) {
      throw refusedEdit(err, file);
    }
    const moves = summarizeWave(result.changes);
    if (flags.json === true) {
      const { changes, written } = result;
      // Named as `home get --json` names a row.
      const users = changes.map((c) => ({
        sipAddress: c.address,
        change: c.kind,
        ...(c.kind === 'moved' ? { from: c.from } : {}),
        poolFqdn: c.to,
      }));
      io.out(JSON.stringify({ file, wave, written, ...counts(changes), moves, users }, null, 2) + '\n');
      return;
    }
    const prefix = flags.whatIf === true ? 'What if: ' : result.written ? '' : 'unchanged: ';
    io.out(`${prefix}import ${basename(wave)} into ${file}: ${result.summary}\n`);
    io.out(
      formatColumns(
        ['Change', 'From', 'To', 'Users'],
        moves.map((m) => [m.change, m.from ?? '-', m.to, String(m.users)]),
      ),
    );
  });
}
