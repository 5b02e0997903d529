// A YAML configuration file held with its syntax tree, so a field path found wrong by the schema can be
// reported at the line and column where the operator wrote it.
import {
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
} from 'yaml';
import type { ConfigIssue } from './errors.js';

export type ConfigPath = readonly PropertyKey[];

/** `endpoints[1].sipAddress`: the path as an operator would name the field. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else {
      const name = String(segment);
      if (/^[A-Za-z_$][\w$]*$/.test(name)) out += out === '' ? name : `.${name}`;
      else out += `[${JSON.stringify(name)}]`;
    }
  }
  return out;
}

interface Position {
  line: number;
  column: number;
}

/** Where a path points in the file: at the value, or at the key that introduces it. */
export type Anchor = 'value' | 'key';

export class YamlSource {
  readonly file: string;
  /** The document as plain data: what the schema validates. */
  readonly data: unknown;
  private readonly doc: Document.Parsed;
  private readonly lines: LineCounter;

  private constructor(file: string, doc: Document.Parsed, lines: LineCounter, data: unknown) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
    this.data = data;
  }

  /**
   * Parses `text`; on a syntax error returns the issues instead, since checking fields of a document
   * the parser had to guess at would only add noise. An empty document reads as an empty mapping.
   */
  static parse(text: string, file: string): YamlSource | ConfigIssue[] {
    const lines = new LineCounter();
    // uniqueKeys: a key written twice is refused rather than silently taking the last value.
    const doc = parseDocument(text, {
      lineCounter: lines,
      keepSourceTokens: true,
      prettyErrors: false,
      uniqueKeys: true,
    });
    const at = (offset: number, reason: string): ConfigIssue => {
      const { line, col } = lines.linePos(offset);
      return { file, line, column: col, path: '', reason };
    };
    const issues = doc.errors.map((e) => at(e.pos[0], `YAML syntax error: ${e.message}`));
    // An alias to an anchor that is not defined only fails when the data is built; name its spot.
    visit(doc, {
      Alias(_key, node) {
        if (node.resolve(doc) === undefined) {
          issues.push(
            at(node.range?.[0] ?? 0, `YAML syntax error: no anchor &${node.source} before this alias`),
          );
        }
      },
    });
    if (issues.length > 0) return issues;
    let data: unknown;
    try {
      data = doc.contents === null ? {} : doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      return [at(0, `YAML error: ${err instanceof Error ? err.message : String(err)}`)];
    }
    return new YamlSource(file, doc, lines, data ?? {});
  }

  /** An issue at `path`; a path that does not exist in the file points at its nearest ancestor. */
  issue(path: ConfigPath, reason: string, anchor: Anchor = 'value'): ConfigIssue {
    return { file: this.file, ...this.position(path, anchor), path: formatPath(path), reason };
  }

  /** The line (1-based) a path starts on, for messages that refer back to an earlier entry. */
  lineOf(path: ConfigPath, anchor: Anchor = 'value'): number {
    return this.position(path, anchor).line;
  }

  position(path: ConfigPath, anchor: Anchor = 'value'): Position {
    let node: unknown = this.doc.contents;
    let offset = this.start(node) ?? 0;
    for (const [i, segment] of path.entries()) {
      node = this.deref(node);
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
        if (pair === undefined) break;
        const keyStart = this.start(pair.key);
        if (last && anchor === 'key' && keyStart !== undefined) {
          offset = keyStart;
          break;
        }
        node = pair.value;
        // An empty value (`poolFqdn:`) has no text of its own to point at; its key does.
        offset = this.start(node) ?? keyStart ?? offset;
        if (isScalar(node) && node.value === null && keyStart !== undefined && node.source === '')
          offset = keyStart;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item: unknown = node.items[segment];
        if (item === undefined) break;
        node = item;
        offset = this.start(node) ?? offset;
      } else {
        break;
      }
    }
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  private start(node: unknown): number | undefined {
    if (isScalar(node) || isCollection(node) || isAlias(node)) return node.range?.[0];
    return undefined;
  }
}
