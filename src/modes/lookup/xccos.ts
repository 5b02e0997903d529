// XCCOS, the Group Chat protocol carried in SIP INFO bodies (docs/protocol/xccos.md §3): reading a
// client's envelope with a strict XML parser that refuses DTDs, and writing the server's replies.

import { SaxesParser, type SaxesTagNS } from 'saxes';
import { ServiceError } from '../../base/service-error.js';

export const XCCOS_NS = 'urn:parlano:xml:ns:xccos';

/** One `<cmd>` of an envelope: its id (e.g. `cmd:requri`) and sequence id, as the client wrote them. */
export interface XccosCommand {
  readonly id: string;
  readonly seqid: string;
}

export interface XccosEnvelope {
  readonly envid: string;
  readonly commands: readonly XccosCommand[];
}

export type XccosErrorCode =
  | 'PCHAT_ERR_XCCOS_ENCODING'
  | 'PCHAT_ERR_XCCOS_DOCTYPE'
  | 'PCHAT_ERR_XCCOS_MALFORMED_XML'
  | 'PCHAT_ERR_XCCOS_NOT_ENVELOPE'
  | 'PCHAT_ERR_XCCOS_LIMIT';

/** A body that is not an XCCOS envelope we accept; `message` is short enough for a reason phrase. */
export class XccosError extends ServiceError {
  constructor(
    readonly code: XccosErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Bounds on what one envelope may hold; real ones are a single line with one command. */
const MAX_DEPTH = 16;
const MAX_ELEMENTS = 256;
const MAX_COMMANDS = 8;
const MAX_ATTRIBUTE_LENGTH = 128;

// A fatal decoder: invalid UTF-8 is refused, not replaced, so what is echoed back is what was sent.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse an XCCOS envelope. Throws XccosError for anything but a well-formed document whose root is
 * `xccos` (in the XCCOS namespace, or in none). A document type declaration is refused outright:
 * saxes never expands entities a DTD declares, and refusing the DTD means no internal subset (the
 * billion laughs) and no external entity is even read.
 */
export function parseXccos(body: Buffer): XccosEnvelope {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new XccosError('PCHAT_ERR_XCCOS_ENCODING', 'body is not UTF-8');
  }
  const parser = new SaxesParser({ xmlns: true, position: true });
  let depth = 0;
  let elements = 0;
  let envid: string | undefined;
  let rootSeen = false;
  const commands: XccosCommand[] = [];
  parser.on('doctype', () => {
    throw new XccosError('PCHAT_ERR_XCCOS_DOCTYPE', 'DOCTYPE not allowed');
  });
  parser.on('error', (err) => {
    throw new XccosError('PCHAT_ERR_XCCOS_MALFORMED_XML', `malformed XML: ${err.message}`);
  });
  parser.on('opentag', (tag: SaxesTagNS) => {
    depth++;
    elements++;
    if (depth > MAX_DEPTH || elements > MAX_ELEMENTS)
      throw new XccosError('PCHAT_ERR_XCCOS_LIMIT', 'XCCOS envelope too deep or too large');
    if (depth === 1) {
      rootSeen = true;
      if (tag.local !== 'xccos' || (tag.uri !== XCCOS_NS && tag.uri !== ''))
        throw new XccosError('PCHAT_ERR_XCCOS_NOT_ENVELOPE', `root element is not xccos`);
      envid = attribute(tag, 'envid') ?? '';
      return;
    }
    if (depth === 2 && tag.local === 'cmd') {
      const id = attribute(tag, 'id');
      if (id === undefined || id === '')
        throw new XccosError('PCHAT_ERR_XCCOS_NOT_ENVELOPE', 'cmd without id');
      if (commands.length >= MAX_COMMANDS)
        throw new XccosError('PCHAT_ERR_XCCOS_LIMIT', 'too many commands in one envelope');
      commands.push({ id, seqid: attribute(tag, 'seqid') ?? '1' });
    }
  });
  parser.on('closetag', () => {
    depth--;
  });
  try {
    parser.write(text).close();
  } catch (err) {
    if (err instanceof XccosError) throw err;
    throw new XccosError(
      'PCHAT_ERR_XCCOS_MALFORMED_XML',
      `malformed XML: ${err instanceof Error ? err.message : 'error'}`,
    );
  }
  if (!rootSeen || envid === undefined)
    throw new XccosError('PCHAT_ERR_XCCOS_NOT_ENVELOPE', 'no root element');
  return { envid, commands };
}

function attribute(tag: SaxesTagNS, name: string): string | undefined {
  // Unprefixed attributes have no namespace (XML Namespaces §6.2): look them up by local name.
  const a = tag.attributes[name];
  if (a === undefined) return undefined;
  if (a.value.length > MAX_ATTRIBUTE_LENGTH)
    throw new XccosError('PCHAT_ERR_XCCOS_LIMIT', `attribute ${name} too long`);
  return a.value;
}

/** Is this the lookup command. sipe compares ids case-insensitively (xccos.md §3), so do we. */
export function isRequri(cmd: XccosCommand): boolean {
  return cmd.id.toLowerCase() === 'cmd:requri';
}

/** The reply id for a command id: `cmd:requri` → `rpl:requri`. */
function replyId(commandId: string): string {
  return commandId.toLowerCase().startsWith('cmd:') ? `rpl:${commandId.slice(4)}` : `rpl:${commandId}`;
}

/** XML attribute value escaping (XML 1.0 §2.4, §3.3.3: whitespace would be normalised, so escaped). */
function attr(value: string): string {
  return value.replace(/[&<>"'\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The result code and text of a reply. 200 SUCCESS_OK is the only pair seen in real traffic
 * (xccos.md §5). For a command we do not serve there is no verified code: 500 is what sipe assumes
 * when a reply carries none (xccos.md §3), so it is the one a client already treats as failure.
 */
export const SUCCESS = { code: 200, text: 'SUCCESS_OK' } as const;
export const UNSUPPORTED = { code: 500, text: 'COMMAND_NOT_SUPPORTED' } as const;

export interface XccosReply {
  readonly command: XccosCommand;
  readonly result: { readonly code: number; readonly text: string };
  /** The URI for `<data><uib uri="…"/></data>`; without it the reply carries an empty `<data/>`. */
  readonly uri?: string | undefined;
}

/**
 * A server envelope with one `rpl` per command, in the shape of a real SfB reply (xccos.md §3):
 * `<rpl id="rpl:requri" seqid="1"><commandid seqid="1" envid="E"/><resp code="200">SUCCESS_OK</resp>
 * <data><uib uri="…"/></data></rpl>`, with `commandid` echoing the command's seqid and envid.
 */
export function buildXccosReply(envid: string, commandEnvid: string, replies: readonly XccosReply[]): string {
  let out = `<xccos ver="1" envid="${attr(envid)}" xmlns="${XCCOS_NS}">`;
  for (const r of replies) {
    const seqid = attr(r.command.seqid);
    out +=
      `<rpl id="${attr(replyId(r.command.id))}" seqid="${seqid}">` +
      `<commandid seqid="${seqid}" envid="${attr(commandEnvid)}"/>` +
      `<resp code="${r.result.code}">${r.result.text}</resp>` +
      (r.uri === undefined ? '<data/>' : `<data><uib uri="${attr(r.uri)}"/></data>`) +
      '</rpl>';
  }
  return out + '</xccos>';
}
