// The metric and label names a PromQL expression reads, found by a small tokenizer: enough for the
// expressions of docs/deploy (selectors, functions, aggregations with by/without, binary operators,
// ranges, Grafana's $variables), not a PromQL parser.

/** A metric the expression selects, with the label names its matchers name. */
export interface Selector {
  readonly metric: string;
  readonly labels: readonly string[];
}

export interface PromqlNames {
  readonly selectors: readonly Selector[];
  /** Label names in by (…), without (…), on (…), ignoring (…), group_left (…), group_right (…). */
  readonly grouping: readonly string[];
}

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2', ...GROUPING]);

// One token at a time: strings, a range or subquery, label matchers, a Grafana variable, a number
// or duration, an identifier, anything else one character.
const TOKEN =
  /\s*(?:("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)|(\[[^\]]*\])|(\{[^}]*\})|(\$\{[^}]*\}|\$\w+)|(\d[\w.]*)|([A-Za-z_:][\w:]*)|(\S))/y;

/** Label names of a `{…}` matcher list (their values, in strings, are skipped). */
function matcherLabels(braces: string): string[] {
  const inner = braces.slice(1, -1).replace(/"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`/g, '""');
  return [...inner.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!);
}

export function promqlNames(expr: string): PromqlNames {
  const tokens: { kind: 'braces' | 'ident' | 'other'; text: string }[] = [];
  let at = 0;
  for (;;) {
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(expr);
    if (m === null) break;
    at = TOKEN.lastIndex;
    if (m[3] !== undefined) tokens.push({ kind: 'braces', text: m[3] });
    else if (m[6] !== undefined) tokens.push({ kind: 'ident', text: m[6] });
    else tokens.push({ kind: 'other', text: (m[7] ?? m[1] ?? m[2] ?? m[4] ?? m[5])! });
  }
  if (expr.slice(at).trim() !== '') throw new Error(`cannot tokenize ${JSON.stringify(expr.slice(at))}`);
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const next = tokens[i + 1];
    if (t.kind !== 'ident') continue;
    if (GROUPING.has(t.text) && next?.text === '(') {
      // The label list, up to its closing parenthesis.
      for (i += 2; i < tokens.length && tokens[i]!.text !== ')'; i++)
        if (tokens[i]!.kind === 'ident') grouping.push(tokens[i]!.text);
      continue;
    }
    // A function call, an aggregation written `sum by (…) (…)`, or a keyword: not a metric.
    if (next?.text === '(' || next?.text === 'by' || next?.text === 'without' || KEYWORDS.has(t.text))
      continue;
    const labels = next?.kind === 'braces' ? matcherLabels(next.text) : [];
    selectors.push({ metric: t.text, labels });
  }
  return { selectors, grouping };
}
