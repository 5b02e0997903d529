// `pchat-endpoint home`: the homing user table (which pool each user is led to), in the cmdlets' style:
// `home get` lists its rows, `home set` homes one user, `home remove` deletes one, `home import` moves a
// whole migration wave. Edits keep the file's layout and comments and are locked and atomic like the
// endpoint edits; the service's live reload applies them.
import { Command } from 'commander';
import { domainNameKey } from '../endpoints/domain-name.js';
import { parseUserTable, userKey } from '../endpoints/user-table.js';
import { EditError } from '../config/endpoints-editor.js';
import { poolFqdnProblem } from '../config/schema.js';
import {
  checkUsersText,
  csvCell,
  editUsersFile,
  findUser,
  homeUsers,
  readUsersFile,
  removeUser,
  scanUsers,
  type HomingContext,
  type UserChange,
  type UserRow,
} from '../config/users-editor.js';
import {
  addEditOptions,
  asCliError,
  editOptions,
  formatColumns,
  lineDiff,
  plainArgument,
  refusedEdit,
  refuseShippedExample,
  type EditFlags,
} from './common.js';
import { CliError, EXIT, usage } from './exit-codes.js';
import { homeImportCommand } from './home-import.js';
import { addTableOptions, userTable, type TableFlags } from './home-table.js';
import type { CliIo } from './io.js';

/** A user as the command line names them, refused here as the table would refuse the row. */
function userArgument(value: string): string {
  const user = plainArgument('<user>', value).trim();
  const parsed = parseUserTable(`SipAddress,PoolFqdn\n${csvCell(user)},pool.example.com\n`);
  if (!parsed.ok) throw usage(`<user>: ${parsed.issues[0]!.reason}`);
  return user;
}

function poolArgument(ctx: HomingContext, value: string): string {
  const pool = plainArgument('--pool', value).trim();
  const problem = poolFqdnProblem(pool);
  if (problem !== undefined) throw usage(`--pool: ${problem}`);
  if (!ctx.knownPools.has(domainNameKey(pool)))
    throw new CliError(
      EXIT.notFound,
      `no endpoint, pools entry or homing rule in endpoints.yaml names pool ${pool}: add it there first`,
    );
  return pool;
}

/** Rows for people (with the line each is on) or for scripts. */
export function formatUsers(rows: readonly UserRow[], json: boolean): string {
  if (json)
    return (
      JSON.stringify(
        rows.map((r) => ({ sipAddress: r.address, poolFqdn: r.pool, line: r.line })),
        null,
        2,
      ) + '\n'
    );
  return formatColumns(
    ['SipAddress', 'PoolFqdn', 'Line'],
    rows.map((r) => [r.address, r.pool, String(r.line)]),
  );
}

interface GetFlags extends TableFlags {
  pool?: string;
  json?: boolean;
}

function getCommand(io: CliIo): Command {
  const cmd = new Command('get')
    .description("list the user table's rows; a user's SIP address shows theirs")
    .argument('[user]', "a user's SIP address, e.g. sip:alice@contoso.com")
    .option('--pool <fqdn>', 'the users homed on this pool')
    .option('--json', 'JSON for scripts');
  addTableOptions(cmd, io);
  return cmd.action(async (userArg: string | undefined, flags: GetFlags) => {
    const user = userArg === undefined ? undefined : userArgument(userArg);
    const { ctx, file } = await userTable(flags);
    let rows: readonly UserRow[];
    try {
      const doc = await readUsersFile(ctx, file);
      checkUsersText(ctx, file, doc.text);
      rows = doc.rows;
    } catch (err) {
      throw asCliError(err) ?? err;
    }
    if (user !== undefined) {
      const key = userKey(user);
      rows = rows.filter((r) => userKey(r.address) === key);
      if (rows.length === 0)
        throw new CliError(
          EXIT.notFound,
          `${user} is not in ${file}: the endpoint's other rules or its pool lead them`,
        );
    }
    if (flags.pool !== undefined) {
      const pool = domainNameKey(flags.pool);
      rows = rows.filter((r) => domainNameKey(r.pool) === pool);
    }
    io.out(formatUsers(rows, flags.json === true));
  });
}

/** One line for the operator on what a change does. */
export function describeChange(change: UserChange): string {
  switch (change.kind) {
    case 'added':
      return `add ${change.address} on ${change.to}`;
    case 'moved':
      return `move ${change.address} from ${change.from} to ${change.to}`;
    case 'unchanged':
      return `${change.address} is on ${change.to} already`;
  }
}

/** Reports an edit as the endpoint edits do: a diff with --what-if, else one line. */
function reportEdit(
  io: CliIo,
  flags: EditFlags,
  file: string,
  result: { summary: string; before: string; text: string; written: boolean },
): void {
  if (flags.whatIf === true) {
    io.out(`What if: ${result.summary} in ${file}\n`);
    // The file's own line breaks stay in the file; the diff shows lines.
    const lines = (t: string) => t.replace(/\r\n?/g, '\n');
    io.out(lineDiff(lines(result.before), lines(result.text)));
  } else {
    io.out(`${result.written ? '' : 'unchanged: '}${result.summary} in ${file}\n`);
  }
}

interface SetFlags extends TableFlags, EditFlags {
  pool: string;
}

function setCommand(io: CliIo): Command {
  const cmd = new Command('set')
    .description('home a user on a pool: their row is changed in place, or added at the end')
    .argument('<user>', "the user's SIP address, e.g. sip:alice@contoso.com")
    .requiredOption('--pool <fqdn>', 'the pool, one endpoints.yaml knows');
  addTableOptions(cmd, io);
  addEditOptions(cmd);
  return cmd.action(async (userArg: string, flags: SetFlags) => {
    const user = userArgument(userArg);
    refuseShippedExample(flags);
    const { ctx, file } = await userTable(flags);
    const pool = poolArgument(ctx, flags.pool);
    let result;
    try {
      result = await editUsersFile(ctx, file, { ...editOptions(io, flags), create: true }, (doc) => {
        const { text, changes, homed } = homeUsers(doc, [{ address: user, pool }]);
        return { text, homed, summary: describeChange(changes[0]!) };
      });
    } catch (err) {
      throw refusedEdit(err, file);
    }
    reportEdit(io, flags, file, result);
    if (flags.passThru === true) {
      const row = findUser(scanUsers(result.text), user);
      if (row !== undefined) io.out(formatUsers([row], flags.json === true));
    }
  });
}

interface RemoveFlags extends TableFlags, EditFlags {
  force?: boolean;
}

function removeCommand(io: CliIo): Command {
  const cmd = new Command('remove')
    .description("delete a user's row: the endpoint's other rules or its pool lead them from then on")
    .argument('<user>', "the user's SIP address")
    .option('-f, --force', 'do not ask for confirmation');
  addTableOptions(cmd, io);
  addEditOptions(cmd);
  return cmd.action(async (userArg: string, flags: RemoveFlags) => {
    const user = userArgument(userArg);
    // Before the question: a "yes" must not be answered with a refusal.
    refuseShippedExample(flags);
    const { ctx, file } = await userTable(flags);
    const notListed = () => new EditError('PCHAT_ERR_EDIT_NOT_FOUND', `${user} is not in ${file}`);
    if (flags.force !== true && flags.whatIf !== true && io.interactive) {
      // Asked before the lock is taken, so a person thinking holds up no other edit; the row is
      // looked up again under the lock.
      let row: UserRow | undefined;
      try {
        row = findUser(await readUsersFile(ctx, file), user);
      } catch (err) {
        throw asCliError(err) ?? err;
      }
      if (row === undefined) throw new CliError(EXIT.notFound, notListed().message);
      if (!(await io.confirm(`Remove ${row.address} (homed on ${row.pool}) from ${file}?`)))
        throw new CliError(EXIT.declined, 'not removed: declined');
    }
    let result;
    try {
      result = await editUsersFile(ctx, file, editOptions(io, flags), (doc) => {
        const removed = removeUser(doc, user);
        if (removed === undefined) throw notListed();
        return {
          text: removed.text,
          removed: [user],
          summary: `remove ${removed.row.address} (on ${removed.row.pool})`,
        };
      });
    } catch (err) {
      throw refusedEdit(err, file);
    }
    reportEdit(io, flags, file, result);
  });
}

export function homeCommand(io: CliIo): Command {
  const home = new Command('home').description(
    'the homing user table (SipAddress,PoolFqdn rows): list, home a user, remove one, import a wave',
  );
  for (const make of [getCommand, setCommand, removeCommand, homeImportCommand]) {
    home.addCommand(
      make(io)
        .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
        .exitOverride(),
    );
  }
  return home;
}
