// The operator commands run in-process against real files in temp folders: output, exit codes, and
// what lands in endpoints.yaml (or does not).
import { mkdtemp, readFile, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfigDir } from '../../src/config/load.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { cliIn } from '../helpers/cli.js';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pchat-cli-'));
  file = join(dir, 'endpoints.yaml');
  await copyFile(join(defaultConfigDir(), 'endpoints.yaml'), file);
  await copyFile(join(defaultConfigDir(), 'server.yaml'), join(dir, 'server.yaml'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], opts: { interactive?: boolean; answer?: boolean } = {}) =>
  cliIn(args, { ...opts, dir });

const NEW = ['new', '--sip-address', 'sip:chat@fabrikam.com', '--pool-fqdn', 'pcpool.fabrikam.com'];

describe('new', () => {
  it('adds the entry after the last one; the rest of the file is unchanged byte for byte', async () => {
    const before = await readFile(file, 'utf8');
    const r = await cli([
      ...NEW,
      '--mode',
      'redirect',
      '--display-name',
      'Fabrikam',
      '--pass-thru',
      '--json',
    ]);
    expect(r.code, r.err).toBe(EXIT.ok);
    const after = await readFile(file, 'utf8');
    const added =
      '  - sipAddress: sip:chat@fabrikam.com\n    poolFqdn: pcpool.fabrikam.com\n    displayName: Fabrikam\n    mode: redirect\n';
    const anchor =
      '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n';
    expect(before).toContain(anchor);
    expect(after).toBe(before.replace(anchor, anchor + added));
    expect(JSON.parse(r.out.slice(r.out.indexOf('[')))).toEqual([
      expect.objectContaining({ sipAddress: 'sip:chat@fabrikam.com', mode: 'redirect', enabled: true }),
    ]);
  });

  it('refuses a duplicate address, whatever its case (exit 5), and writes nothing', async () => {
    const before = await readFile(file, 'utf8');
    const r = await cli(['new', '--sip-address', 'sip:OCSChat@contoso.com', '--pool-fqdn', 'x.contoso.com']);
    expect(r.code).toBe(EXIT.conflict);
    expect(r.err).toContain('sip:ocschat@contoso.com already exists');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it.each([
    [
      ['--sip-address', 'ocschat@contoso.com', '--pool-fqdn', 'p.contoso.com'],
      '--sip-address: ocschat@contoso.com must use the sip: prefix',
    ],
    [
      ['--sip-address', 'sip:a@localhost', '--pool-fqdn', 'p.contoso.com'],
      '--sip-address: sip:a@localhost domain "localhost"',
    ],
    [
      ['--sip-address', 'sip:a@contoso.com', '--pool-fqdn', 'sip:p.contoso.com'],
      '--pool-fqdn: must be a bare domain name',
    ],
    [
      ['--sip-address', 'sip:a@contoso.com', '--pool-fqdn', 'p.contoso.com', '--lock-timeout', 'soon'],
      '--lock-timeout: expected milliseconds',
    ],
  ])('refuses bad arguments, naming them (exit 2): %j', async (args, message) => {
    const before = await readFile(file, 'utf8');
    const r = await cli(['new', ...args]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain(message);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('--what-if prints the change and writes nothing', async () => {
    const before = await readFile(file, 'utf8');
    const mtime = (await stat(file)).mtimeMs;
    const r = await cli([...NEW, '--what-if']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('What if: add endpoint sip:chat@fabrikam.com');
    expect(r.out).toContain('+   - sipAddress: sip:chat@fabrikam.com');
    expect(await readFile(file, 'utf8')).toBe(before);
    expect((await stat(file)).mtimeMs).toBe(mtime);
  });
});

describe('get', () => {
  it('lists as a table, filters by wildcard and pool, shows one by display name, JSON for scripts', async () => {
    const all = await cli(['get']);
    expect(all.out.split('\n')[0]).toMatch(
      /^SipAddress\s+PoolFqdn\s+Mode\s+Enabled\s+Maintenance\s+RecordRoute\s+DisplayName$/,
    );
    expect(all.out).toContain('sip:persistentchat@contoso.com');
    const filtered = await cli(['get', '--filter', '*OCS*', '--json']);
    expect((JSON.parse(filtered.out) as { sipAddress: string }[]).map((e) => e.sipAddress)).toEqual([
      'sip:ocschat@contoso.com',
    ]);
    const byName = await cli(['get', 'group chat lookup (legacy clients)', '--json']);
    expect((JSON.parse(byName.out) as { sipAddress: string }[])[0]?.sipAddress).toBe(
      'sip:ocschat@contoso.com',
    );
    const none = await cli(['get', '--pool-fqdn', 'other.contoso.com', '--json']);
    expect(JSON.parse(none.out)).toEqual([]);
  });

  it('shows recordRoute, set or unset, in the table and in JSON: every field the admin port shows', async () => {
    await writeFile(
      file,
      'endpoints:\n' +
        '  - sipAddress: sip:on@contoso.com\n    poolFqdn: PCPool.Contoso.com\n    recordRoute: true\n' +
        '  - sipAddress: sip:off@contoso.com\n    poolFqdn: pcpool.contoso.com\n    recordRoute: false\n' +
        '  - sipAddress: sip:unset@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: lookup\n',
    );
    const json = await cli(['get', '--json']);
    expect(json.code, json.err).toBe(EXIT.ok);
    const views = JSON.parse(json.out) as { recordRoute: boolean | null }[];
    expect(views.map((v) => v.recordRoute)).toEqual([true, false, null]);
    // The whole view: the projection of the Endpoint the service builds, and the identity to name it by.
    expect(views[0]).toEqual({
      identity: 'sip:on@contoso.com',
      sipAddress: 'sip:on@contoso.com',
      poolFqdn: 'pcpool.contoso.com',
      displayName: null,
      mode: 'proxy',
      enabled: true,
      lookupUris: ['sip:on@pcpool.contoso.com'],
      recordRoute: true,
      maintenanceUntil: null,
      homing: null,
    });
    const table = (await cli(['get'])).out.split('\n');
    expect(table[2]).toMatch(/^sip:on@contoso\.com\s+pcpool\.contoso\.com\s+proxy\s+true\s+-\s+true$/);
    expect(table[3]).toMatch(/^sip:off@contoso\.com\s+pcpool\.contoso\.com\s+proxy\s+true\s+-\s+false$/);
    expect(table[4]).toMatch(/^sip:unset@contoso\.com\s+pcpool\.contoso\.com\s+lookup\s+true\s+-\s+-$/);
  });

  it('an unknown identity is exit 4', async () => {
    const r = await cli(['get', 'sip:nobody@contoso.com']);
    expect(r.code).toBe(EXIT.notFound);
    expect(r.err).toContain('no endpoint with address sip:nobody@contoso.com');
  });

  it('an invalid file is exit 3 with file:line', async () => {
    await writeFile(file, 'endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: 10.0.0.1\n');
    const r = await cli(['get']);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toContain(`${file}:3:15: endpoints[0].poolFqdn:`);
  });
});

describe('set', () => {
  it('changes the named fields in place, keeping comments and the other entries byte for byte', async () => {
    const before = await readFile(file, 'utf8');
    const r = await cli(['set', 'sip:persistentchat@contoso.com', '--mode', 'proxy', '--enabled', 'false']);
    expect(r.code, r.err).toBe(EXIT.ok);
    const after = await readFile(file, 'utf8');
    expect(after).toBe(
      before.replace(
        '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n',
        '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: proxy\n    enabled: false\n',
      ),
    );
  });

  it('maintenance: until a time, then on, then off; the two keys never together', async () => {
    expect(
      (await cli(['set', 'sip:ocschat@contoso.com', '--maintenance-until', '2026-12-05T06:00Z'])).code,
    ).toBe(0);
    expect(await readFile(file, 'utf8')).toContain('    maintenanceUntil: 2026-12-05T06:00Z\n');
    expect((await cli(['set', 'sip:ocschat@contoso.com', '--maintenance', 'on'])).code).toBe(0);
    let text = await readFile(file, 'utf8');
    expect(text).toContain('    enabled: true\n    maintenance: on\n');
    expect(text).not.toContain('    maintenanceUntil:');
    const shown = await cli(['get', 'sip:ocschat@contoso.com', '--json']);
    expect((JSON.parse(shown.out) as { maintenanceUntil: string }[])[0]?.maintenanceUntil).toBe('on');
    expect((await cli(['set', 'sip:ocschat@contoso.com', '--maintenance', 'off'])).code).toBe(0);
    text = await readFile(file, 'utf8');
    expect(text).toBe(await readFile(join(defaultConfigDir(), 'endpoints.yaml'), 'utf8'));
  });

  it('a pool by its FQDN takes a maintenance window (an entry is added under pools)', async () => {
    const r = await cli(['set', 'pcpool.contoso.com', '--maintenance-until', '2026-12-05T07:00+01:00']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(await readFile(file, 'utf8')).toContain(
      'pools:\n  - fqdn: pcpool.contoso.com\n    maintenanceUntil: 2026-12-05T07:00+01:00\n',
    );
    const wrong = await cli(['set', 'pcpool.contoso.com', '--mode', 'proxy']);
    expect(wrong.code).toBe(EXIT.usage);
    expect(wrong.err).toContain('is a pool');
  });

  it.each([
    [['--maintenance-until', '2026-12-05T06:00'], '--maintenance-until: has no time zone'],
    [['--maintenance-until', 'tomorrow'], '--maintenance-until: expected an ISO 8601'],
    [['--maintenance', 'maybe'], "option '--maintenance <state>' argument 'maybe' is invalid"],
    [[], 'nothing to change'],
  ])('refuses %j (exit 2)', async (args, message) => {
    const r = await cli(['set', 'sip:ocschat@contoso.com', ...args]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain(message);
  });

  it('an unknown endpoint is exit 4; a display name two endpoints share is exit 5', async () => {
    expect((await cli(['set', 'sip:nobody@contoso.com', '--mode', 'proxy'])).code).toBe(EXIT.notFound);
    await cli([
      'set',
      'sip:persistentchat@contoso.com',
      '--display-name',
      'Group Chat lookup (legacy clients)',
    ]);
    const r = await cli(['set', 'Group Chat lookup (legacy clients)', '--mode', 'proxy']);
    expect(r.code).toBe(EXIT.conflict);
    expect(r.err).toContain('name one by its SIP address');
  });
});

describe('remove', () => {
  it('never asks off a terminal, and takes exactly the entry out', async () => {
    const before = await readFile(file, 'utf8');
    const r = await cli(['remove', 'sip:persistentchat@contoso.com']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.asked).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe(
      before.replace(
        '  - sipAddress: sip:persistentchat@contoso.com\n    poolFqdn: pcpool.contoso.com\n    mode: redirect\n',
        '',
      ),
    );
  });

  it('asks on a terminal; no keeps the file (exit 7), --force does not ask', async () => {
    const before = await readFile(file, 'utf8');
    const declined = await cli(['remove', 'sip:ocschat@contoso.com'], { interactive: true, answer: false });
    expect(declined.code).toBe(EXIT.declined);
    expect(declined.asked[0]).toContain('Remove endpoint sip:ocschat@contoso.com');
    expect(await readFile(file, 'utf8')).toBe(before);
    const forced = await cli(['remove', 'sip:ocschat@contoso.com', '--force'], { interactive: true });
    expect(forced.code).toBe(EXIT.ok);
    expect(forced.asked).toEqual([]);
    expect(await readFile(file, 'utf8')).not.toContain('sip:ocschat@contoso.com\n');
  });

  it('an edit the schema would refuse writes nothing (exit 3)', async () => {
    // Removing the last endpoint leaves `endpoints:` valid, so break the file another way: a file
    // already refused is never rewritten.
    await writeFile(
      file,
      'endpoints:\n  - sipAddress: sip:a@contoso.com\n    poolFqdn: p.contoso.com\n    colour: red\n',
    );
    const before = await readFile(file, 'utf8');
    const r = await cli(['remove', 'sip:a@contoso.com']);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toContain(`${file}:4:5: endpoints[0].colour: unknown key "colour"`);
    expect(await readFile(file, 'utf8')).toBe(before);
  });
});

describe('check', () => {
  it('a valid folder is exit 0; a bad file is exit 3 with every issue at file:line:col', async () => {
    expect((await cli(['check'])).out).toContain('(2 endpoints)');
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      'endpoints:\n  - sipAddress: sips:a@contoso.com\n    poolFqdn: p.contoso.com\n    maintenanceUntil: 2026-13-01T00:00Z\n',
    );
    const r = await cli(['check', bad]);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toContain(`${bad}:2:17: endpoints[0].sipAddress: must use the sip: prefix, not sips:`);
    expect(r.err).toContain(
      `${bad}:4:23: endpoints[0].maintenanceUntil: "2026-13-01T00:00Z" is not a date and time that exists`,
    );
  });

  it('an unknown command or flag is exit 2', async () => {
    expect((await cli(['frobnicate'])).code).toBe(EXIT.usage);
    expect((await cli(['get', '--colour'])).code).toBe(EXIT.usage);
  });
});

describe('trace (static)', () => {
  it('names the endpoint, mode, pool and the answer the router gives', async () => {
    const r = await cli(['trace', 'sip:OCSChat@contoso.com;transport=tcp']);
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toContain('endpoint:    sip:ocschat@contoso.com (Group Chat lookup (legacy clients))');
    expect(r.out).toContain('mode:        redirect');
    expect(r.out).toContain('answer:      302 Moved Temporarily');
    expect(r.out).toContain('contact: <sip:ocschat@pcpool.contoso.com>');
    const unknown = await cli(['trace', 'sip:nobody@contoso.com', '--method', 'OPTIONS']);
    expect(unknown.out).toContain('endpoint:    none matches');
    expect(unknown.out).toContain('answer:      404 Not Found');
  });

  it('shows a maintenance window and the 503 it gives', async () => {
    await cli(['set', 'pcpool.contoso.com', '--maintenance', 'on']);
    const r = await cli(['trace', 'sip:ocschat@contoso.com']);
    expect(r.out).toContain('pool on (until switched off)');
    expect(r.out).toContain('answer:      503 Service Unavailable');
    expect(r.out).toContain('retry-after: 3600');
  });
});

describe('trace --from (homing)', () => {
  it('names the pool the caller is led to, the rule that chose it, and the answer that pool gives', async () => {
    await writeFile(
      file,
      'endpoints:\n  - sipAddress: sip:ocschat@contoso.com\n    poolFqdn: pc-us.contoso.com\n    mode: redirect\n' +
        '    homing:\n      - callers: "*@emea.contoso.com"\n        pool: pc-emea.contoso.com\n      - users: users.csv\n' +
        // A user table names only pools endpoints.yaml knows.
        'pools:\n  - fqdn: pc-apac.contoso.com\n',
    );
    await writeFile(
      join(dir, 'users.csv'),
      'SipAddress,PoolFqdn\nsip:akira@contoso.com,pc-apac.contoso.com\n',
    );
    const emea = await cli(['trace', 'sip:ocschat@contoso.com', '--from', 'sip:marie@emea.contoso.com']);
    expect(emea.code, emea.err).toBe(EXIT.ok);
    expect(emea.out).toContain('pool:        pc-emea.contoso.com');
    expect(emea.out).toContain('homing:      by callers *@emea.contoso.com');
    expect(emea.out).toContain('contact: <sip:ocschat@pc-emea.contoso.com>');
    const apac = await cli(['trace', 'sip:ocschat@contoso.com', '--from', 'sip:Akira@contoso.com']);
    expect(apac.out).toContain('homing:      by users users.csv');
    expect(apac.out).toContain('contact: <sip:ocschat@pc-apac.contoso.com>');
    const other = await cli(['trace', 'sip:ocschat@contoso.com', '--from', 'sip:bob@contoso.com']);
    expect(other.out).toContain('homing:      no rule names a pool for sip:bob@contoso.com: the default');
    expect(other.out).toContain('contact: <sip:ocschat@pc-us.contoso.com>');
    expect((await cli(['trace', 'sip:ocschat@contoso.com', '--from', 'bob'])).code).toBe(EXIT.usage);
  });
});

describe('serve --listen', () => {
  it('a malformed address is refused before anything starts, with the reason', async () => {
    const r = await cli(['serve', '--listen', 'udp://localhost:5060']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('host "localhost" is not an IP address');
  });
});
