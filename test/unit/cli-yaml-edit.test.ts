// Comment- and layout-preserving edits of endpoints.yaml: every byte outside the edited entry stays.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { applyYamlEdits } from '../../src/config/yaml-edit.js';

// Odd spacing, comments everywhere, quoted scalars and a float written as 1.0: all must survive.
const TEXT = `# the table
endpoints:   # comment after the key
  # before the first entry
  - sipAddress: sip:ocschat@contoso.com     # lookup URI
    poolFqdn:   pcpool.contoso.com
    mode: redirect
  - sipAddress: "sip:persistentchat@contoso.com"
    poolFqdn: pcpool.contoso.com   # same pool
    displayName: 'Persistent chat'

  # commented example
  # - sipAddress: sip:chat@fabrikam.com

pools:
  - fqdn: pcpool.contoso.com
    targets:
      - uri: sip:pc1.contoso.com:5041;transport=tls
        q: 1.0
# trailing comment
`;

/** The lines of `after` with those of entry lines [from, to) of `before` removed from both ends. */
function outside(before: string, after: string): { head: boolean; tail: boolean } {
  const a = before.split('\n');
  const b = after.split('\n');
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  let j = 0;
  while (j < a.length - i && a[a.length - 1 - j] === b[b.length - 1 - j]) j++;
  return { head: i > 0, tail: j > 0 };
}

describe('YAML edits keep the file as written outside the edited entry', () => {
  it('set replaces one value and nothing else, keeping its inline comment', () => {
    const { text, preservedLayout } = applyYamlEdits(TEXT, [
      { kind: 'set', path: ['endpoints', 0], key: 'poolFqdn', value: 'pcpool2.contoso.com' },
    ]);
    expect(preservedLayout).toBe(true);
    expect(text).toBe(TEXT.replace('poolFqdn:   pcpool.contoso.com', 'poolFqdn:   pcpool2.contoso.com'));
  });

  it('set adds a missing key at the entry indentation, after its last line', () => {
    const { text } = applyYamlEdits(TEXT, [
      { kind: 'set', path: ['endpoints', 1], key: 'maintenance', value: 'on' },
    ]);
    expect(text).toBe(
      TEXT.replace(
        "displayName: 'Persistent chat'\n",
        "displayName: 'Persistent chat'\n    maintenance: on\n",
      ),
    );
    expect((parse(text) as { endpoints: { maintenance?: string }[] }).endpoints[1]?.maintenance).toBe('on');
  });

  it('delete takes the key line out and nothing more', () => {
    const { text } = applyYamlEdits(TEXT, [{ kind: 'delete', path: ['endpoints', 0], key: 'mode' }]);
    expect(text).toBe(TEXT.replace('    mode: redirect\n', ''));
  });

  it('append adds the entry after the last one, before the commented example', () => {
    const { text } = applyYamlEdits(TEXT, [
      {
        kind: 'append',
        seqKey: 'endpoints',
        entry: { sipAddress: 'sip:chat@fabrikam.com', poolFqdn: 'pcpool.fabrikam.com', enabled: false },
      },
    ]);
    const added =
      '  - sipAddress: sip:chat@fabrikam.com\n    poolFqdn: pcpool.fabrikam.com\n    enabled: false\n';
    expect(text).toBe(
      TEXT.replace("displayName: 'Persistent chat'\n", `displayName: 'Persistent chat'\n${added}`),
    );
  });

  it('append under an empty key (examples commented out) starts the list there', () => {
    const before = 'endpoints: []\npools:\n  # - fqdn: x.contoso.com\n# end\n';
    const { text, preservedLayout } = applyYamlEdits(before, [
      { kind: 'append', seqKey: 'pools', entry: { fqdn: 'pcpool.contoso.com', maintenance: 'on' } },
    ]);
    expect(preservedLayout).toBe(true);
    expect(text).toBe(
      'endpoints: []\npools:\n  - fqdn: pcpool.contoso.com\n    maintenance: on\n  # - fqdn: x.contoso.com\n# end\n',
    );
  });

  it('removeItem takes exactly the entry lines out', () => {
    const { text } = applyYamlEdits(TEXT, [{ kind: 'removeItem', seqKey: 'endpoints', index: 0 }]);
    expect(text).toBe(
      TEXT.replace(
        '  - sipAddress: sip:ocschat@contoso.com     # lookup URI\n    poolFqdn:   pcpool.contoso.com\n    mode: redirect\n',
        '',
      ),
    );
    expect(outside(TEXT, text)).toEqual({ head: true, tail: true });
  });

  it('values that need quoting are quoted', () => {
    const { text } = applyYamlEdits(TEXT, [
      { kind: 'set', path: ['endpoints', 0], key: 'displayName', value: 'Chat: #1 ' },
    ]);
    expect((parse(text) as { endpoints: { displayName?: string }[] }).endpoints[0]?.displayName).toBe(
      'Chat: #1 ',
    );
  });

  it('a shape it cannot splice falls back to the Document API, comments kept', () => {
    const flow = '# head\nendpoints: [{sipAddress: "sip:a@contoso.com", poolFqdn: p.contoso.com}]\n';
    const { text, preservedLayout } = applyYamlEdits(flow, [
      { kind: 'set', path: ['endpoints', 0], key: 'mode', value: 'redirect' },
    ]);
    expect(preservedLayout).toBe(false);
    expect(text.startsWith('# head\n')).toBe(true);
    expect(parse(text)).toEqual({
      endpoints: [{ sipAddress: 'sip:a@contoso.com', poolFqdn: 'p.contoso.com', mode: 'redirect' }],
    });
  });
});
