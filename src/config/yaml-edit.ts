// Edits to a YAML configuration file that leave every byte outside the edited entry as the operator
// wrote it: comments, blank lines, key order, quoting and indentation. Each edit is spliced into the
// text at the positions the parser reports; the result is checked against the same edit made through
// the yaml Document API, and only if the two disagree is the Document API's rendering used instead
// (comments still kept, formatting normalised).
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, isSeq, parseDocument, stringify, type Document, type YAMLMap } from 'yaml';

export type EditValue = string | number | boolean;

/** One change to a document; paths run from the root, e.g. ['endpoints', 1]. */
export type YamlEdit =
  | {
      readonly kind: 'set';
      readonly path: readonly (string | number)[];
      readonly key: string;
      readonly value: EditValue;
    }
  | { readonly kind: 'delete'; readonly path: readonly (string | number)[]; readonly key: string }
  | { readonly kind: 'append'; readonly seqKey: string; readonly entry: Readonly<Record<string, EditValue>> }
  | { readonly kind: 'removeItem'; readonly seqKey: string; readonly index: number };

export interface EditOutcome {
  readonly text: string;
  /** False when the text could not be spliced and the Document API's rendering of the whole file was used. */
  readonly preservedLayout: boolean;
}

const parse = (text: string): Document.Parsed => parseDocument(text, { keepSourceTokens: true });

/** Applies `edits` in order to `text`. Throws when the text is not YAML or a path does not exist. */
export function applyYamlEdits(text: string, edits: readonly YamlEdit[]): EditOutcome {
  const reference = parse(text);
  if (reference.errors.length > 0) throw new Error(`not valid YAML: ${reference.errors[0]?.message ?? ''}`);
  for (const edit of edits) applyToDocument(reference, edit);
  const expected: unknown = reference.toJS();

  let spliced: string | undefined = text;
  for (const edit of edits) {
    spliced = splice(spliced, edit);
    if (spliced === undefined) break;
  }
  if (spliced !== undefined) {
    const check = parse(spliced);
    if (check.errors.length === 0 && isDeepStrictEqual(check.toJS(), expected)) {
      return { text: spliced, preservedLayout: true };
    }
  }
  return { text: reference.toString({ lineWidth: 0 }), preservedLayout: false };
}

function applyToDocument(doc: Document.Parsed, edit: YamlEdit): void {
  switch (edit.kind) {
    case 'set':
      doc.setIn([...edit.path, edit.key], edit.value);
      return;
    case 'delete':
      doc.deleteIn([...edit.path, edit.key]);
      return;
    case 'append': {
      const seq = doc.get(edit.seqKey, true);
      const node = doc.createNode({ ...edit.entry });
      if (isSeq(seq)) seq.items.push(node);
      else doc.set(edit.seqKey, doc.createNode([{ ...edit.entry }]));
      return;
    }
    case 'removeItem':
      doc.deleteIn([edit.seqKey, edit.index]);
      return;
  }
}

/** The offset just past the end of the line holding `offset - 1` (the start of the next line). */
function lineEndAfter(text: string, offset: number): number {
  if (offset > 0 && text[offset - 1] === '\n') return offset;
  const nl = text.indexOf('\n', offset);
  return nl < 0 ? text.length : nl + 1;
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

function column(text: string, offset: number): number {
  return offset - lineStart(text, offset);
}

/** Inserts `lines` (each ending in \n) at `at`, which is a line start or the end of a file with no final newline. */
function insertLines(text: string, at: number, lines: string): string {
  const prefix = at > 0 && text[at - 1] !== '\n' ? '\n' : '';
  return text.slice(0, at) + prefix + lines + text.slice(at);
}

function scalarText(value: EditValue): string | undefined {
  const out = stringify(value, { lineWidth: 0 }).replace(/\n$/, '');
  // A value that needs more than one line would need its own indentation rules; leave it to the fallback.
  return out.includes('\n') ? undefined : out;
}

function mapAt(doc: Document.Parsed, path: readonly (string | number)[]): YAMLMap | undefined {
  const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
  return isMap(node) && node.flow !== true ? node : undefined;
}

/** Renders `entry` as block-sequence item lines: the first after `dash`, the rest at `indent`. */
function itemLines(
  entry: Readonly<Record<string, EditValue>>,
  dash: string,
  indent: number,
): string | undefined {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(entry)) {
    const v = scalarText(value);
    const k = scalarText(key);
    if (v === undefined || k === undefined) return undefined;
    lines.push(`${k}: ${v}`);
  }
  if (lines.length === 0) return undefined;
  return lines.map((l, i) => (i === 0 ? dash + l : ' '.repeat(indent) + l)).join('\n') + '\n';
}

/** The edit applied to the text itself, or undefined when its shape is one this cannot splice. */
function splice(text: string, edit: YamlEdit): string | undefined {
  const doc = parse(text);
  if (doc.errors.length > 0) return undefined;
  switch (edit.kind) {
    case 'set': {
      const map = mapAt(doc, edit.path);
      const value = scalarText(edit.value);
      if (map === undefined || value === undefined) return undefined;
      const pair = map.items.find((p) => isScalar(p.key) && p.key.value === edit.key);
      if (pair !== undefined) {
        // Replace the value's own characters only: an inline comment after it stays where it was.
        if (!isScalar(pair.value) || pair.value.range == null) return undefined;
        const [start, end] = pair.value.range;
        if (start === end) {
          // `key:` with nothing after it: the value goes after the key's colon.
          if (!isScalar(pair.key) || pair.key.range == null) return undefined;
          const colon = text.indexOf(':', pair.key.range[1]);
          if (colon < 0) return undefined;
          return `${text.slice(0, colon + 1)} ${value}${text.slice(colon + 1)}`;
        }
        return text.slice(0, start) + value + text.slice(end);
      }
      // A new key goes on its own line after the map's last line, at the indentation of its first key.
      const first = map.items[0]?.key;
      const last = map.items.at(-1);
      if (!isScalar(first) || first.range == null || last === undefined) return undefined;
      const lastNode = last.value ?? last.key;
      const end = (lastNode as { range?: [number, number, number] | null }).range?.[1];
      if (end === undefined) return undefined;
      const key = scalarText(edit.key);
      if (key === undefined) return undefined;
      const indent = ' '.repeat(column(text, first.range[0]));
      return insertLines(text, lineEndAfter(text, end), `${indent}${key}: ${value}\n`);
    }
    case 'delete': {
      const map = mapAt(doc, edit.path);
      if (map === undefined) return undefined;
      const index = map.items.findIndex((p) => isScalar(p.key) && p.key.value === edit.key);
      if (index < 0) return text;
      // The last key of an entry cannot go by lines without taking the entry's dash with it.
      if (map.items.length === 1) return undefined;
      const pair = map.items[index];
      const keyNode = pair?.key;
      const valueNode = (pair?.value ?? keyNode) as { range?: [number, number, number] | null } | undefined;
      if (!isScalar(keyNode) || keyNode.range == null || valueNode?.range == null) return undefined;
      const from = lineStart(text, keyNode.range[0]);
      // The first key shares its line with the entry's dash; that case is left to the fallback.
      if (text.slice(from, keyNode.range[0]).trim() !== '') return undefined;
      return text.slice(0, from) + text.slice(lineEndAfter(text, valueNode.range[1]));
    }
    case 'append': {
      const pair = isMap(doc.contents)
        ? doc.contents.items.find((p) => isScalar(p.key) && p.key.value === edit.seqKey)
        : undefined;
      if (pair === undefined || !isScalar(pair.key) || pair.key.range == null) return undefined;
      const seq = pair.value;
      if (isSeq(seq) && seq.flow !== true && seq.items.length > 0) {
        const firstItem = seq.items[0] as { range?: [number, number, number] | null };
        const lastItem = seq.items.at(-1) as { range?: [number, number, number] | null };
        if (firstItem.range == null || lastItem.range == null) return undefined;
        const at = firstItem.range[0];
        const dash = text.slice(lineStart(text, at), at);
        if (!/^ *- +$/.test(dash)) return undefined;
        const lines = itemLines(edit.entry, dash, dash.length);
        return lines === undefined
          ? undefined
          : insertLines(text, lineEndAfter(text, lastItem.range[1]), lines);
      }
      // `pools:` left empty (its examples commented out): the first entry goes under the key.
      if (isScalar(seq) && seq.value === null && seq.source === '') {
        const indent = column(text, pair.key.range[0]) + 2;
        const lines = itemLines(edit.entry, `${' '.repeat(indent)}- `, indent + 2);
        return lines === undefined
          ? undefined
          : insertLines(text, lineEndAfter(text, pair.key.range[1]), lines);
      }
      return undefined;
    }
    case 'removeItem': {
      const seq = doc.get(edit.seqKey, true);
      if (!isSeq(seq) || seq.flow === true) return undefined;
      const item = seq.items[edit.index] as { range?: [number, number, number] | null } | undefined;
      if (item?.range == null) return undefined;
      const from = lineStart(text, item.range[0]);
      if (!/^ *- +$/.test(text.slice(from, item.range[0]))) return undefined;
      return text.slice(0, from) + text.slice(lineEndAfter(text, item.range[1]));
    }
  }
}
