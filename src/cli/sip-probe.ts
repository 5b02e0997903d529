// A one-request SIP user agent client over UDP for `trace --live`: sends OPTIONS or INVITE to the
// running service, retransmits as RFC 3261 §17.1 asks, acknowledges the final response, and records
// every message each way with its time for the ladder diagram.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { hostPort } from '../sip/host-port.js';
import { parseMessage } from '../sip/parser.js';
import type { SipResponse } from '../sip/message.js';

export interface LadderEvent {
  readonly direction: 'out' | 'in';
  /** ms since the first message was sent. */
  readonly at: number;
  /** The start line, e.g. `INVITE sip:ocschat@contoso.com` or `302 Moved Temporarily`. */
  readonly label: string;
  /** Headers worth showing under the arrow (Contact, Retry-After, ...). */
  readonly details: readonly string[];
  /** The whole message as sent or received. */
  readonly text: string;
  readonly retransmission: boolean;
}

export interface ProbeResult {
  readonly local: { host: string; port: number };
  readonly events: LadderEvent[];
  /** The final response to the request, if one came. */
  readonly final: SipResponse | undefined;
}

export interface ProbeOptions {
  readonly host: string;
  readonly port: number;
  readonly method: 'OPTIONS' | 'INVITE';
  readonly uri: string;
  readonly timeoutMs: number;
  /** The caller the request is from (trace --from); a name of the trace's own otherwise. */
  readonly from?: string | undefined;
}

// RFC 3261 §17.1.1.1 / §17.1.2.2 timer values.
const T1 = 500;
const T2 = 4000;
const SHOWN_HEADERS = ['contact', 'retry-after', 'warning', 'reason', 'unsupported', 'server'];

const token = (): string => randomBytes(6).toString('hex');

function details(res: SipResponse): string[] {
  const out: string[] = [];
  for (const name of SHOWN_HEADERS) {
    for (const line of res.headerLines(name))
      out.push(`${name.replace(/(^|-)(\w)/g, (_m, d: string, c: string) => d + c.toUpperCase())}: ${line}`);
  }
  return out;
}

export async function probe(opts: ProbeOptions): Promise<ProbeResult> {
  const family = isIP(opts.host) === 6 ? 6 : 4;
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, family === 6 ? '::1' : '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const local = { host: socket.address().address, port: socket.address().port };
  const viaHost = family === 6 ? `[${local.host}]` : local.host;
  const callId = `trace-${token()}@pchat-endpoint`;
  const fromTag = token();
  const events: LadderEvent[] = [];
  const t0 = performance.now();
  const sendRaw = (text: string, label: string, retransmission = false): void => {
    socket.send(Buffer.from(text, 'utf8'), opts.port, opts.host);
    events.push({ direction: 'out', at: performance.now() - t0, label, details: [], text, retransmission });
  };
  const request = (method: string, branch: string, cseq: number, to: string, extra = ''): string =>
    [
      `${method} ${opts.uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${viaHost}:${local.port};branch=z9hG4bK${branch};rport`,
      `From: <${opts.from ?? 'sip:trace@pchat-endpoint.invalid'}>;tag=${fromTag}`,
      `To: ${to}`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} ${method}`,
      'Max-Forwards: 70',
      'User-Agent: pchat-endpoint-trace',
      ...(extra === '' ? [] : [extra]),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');

  const branch = token();
  const firstTo = `<${opts.uri}>`;
  const contact = `Contact: <sip:trace@${viaHost}:${local.port}>`;
  const first = request(opts.method, branch, 1, firstTo, opts.method === 'INVITE' ? contact : '');

  let final: SipResponse | undefined;
  try {
    final = await new Promise<SipResponse | undefined>((resolve) => {
      let interval = T1;
      let retransmit: NodeJS.Timeout | undefined;
      let answered = false;
      const schedule = (): void => {
        retransmit = setTimeout(() => {
          if (answered) return;
          sendRaw(first, `${opts.method} ${opts.uri}`, true);
          // INVITE doubles without a cap until a provisional arrives; non-INVITE caps at T2.
          interval = opts.method === 'INVITE' ? interval * 2 : Math.min(interval * 2, T2);
          schedule();
        }, interval);
      };
      const deadline = setTimeout(() => {
        clearTimeout(retransmit);
        resolve(undefined);
      }, opts.timeoutMs);
      socket.on('message', (data) => {
        const parsed = parseMessage(data);
        if (!parsed.ok || parsed.message.kind !== 'response') return;
        const res = parsed.message;
        const isFinalForFirst = res.cseq.method === opts.method && res.status >= 200;
        events.push({
          direction: 'in',
          at: performance.now() - t0,
          label: `${res.status} ${res.reason}`,
          details: details(res),
          text: data.toString('utf8'),
          retransmission: answered && res.cseq.method === opts.method,
        });
        if (res.cseq.method !== opts.method || answered) return;
        if (res.status < 200) {
          // RFC 3261 §17.1.1.2: a provisional response stops INVITE retransmissions.
          if (opts.method === 'INVITE') clearTimeout(retransmit);
          return;
        }
        if (isFinalForFirst) {
          answered = true;
          clearTimeout(retransmit);
          clearTimeout(deadline);
          resolve(res);
        }
      });
      sendRaw(first, `${opts.method} ${opts.uri}`);
      schedule();
    });

    if (final !== undefined && opts.method === 'INVITE') {
      const to = final.header('to') ?? firstTo;
      if (final.status >= 300) {
        // RFC 3261 §17.1.1.3: the ACK for a non-2xx final reuses the INVITE's branch and takes To from the response.
        sendRaw(request('ACK', branch, 1, to), `ACK ${opts.uri}`);
      } else {
        // A 2xx set up a dialog: acknowledge it end to end, then end it so nothing is left behind.
        sendRaw(request('ACK', token(), 1, to), `ACK ${opts.uri}`);
        const byeBranch = token();
        sendRaw(request('BYE', byeBranch, 2, to), `BYE ${opts.uri}`);
        await new Promise<void>((resolve) => {
          const stop = setTimeout(resolve, Math.min(opts.timeoutMs, 2 * T1));
          socket.on('message', (data) => {
            const parsed = parseMessage(data);
            if (parsed.ok && parsed.message.kind === 'response' && parsed.message.cseq.method === 'BYE') {
              clearTimeout(stop);
              resolve();
            }
          });
        });
      }
    }
  } finally {
    socket.close();
  }
  return { local, events, final };
}

/** The ladder diagram of a probe: time down the side, one arrow per message. */
export function ladder(
  result: ProbeResult,
  service: { host: string; port: number },
  showFull: boolean,
): string {
  const left = `trace ${hostPort(result.local.host, result.local.port)}`;
  const right = `pchat-endpoint ${hostPort(service.host, service.port)}`;
  const width = Math.max(44, ...result.events.map((e) => e.label.length + 8));
  const pad = ' '.repeat(10);
  const lines: string[] = [];
  lines.push(`${pad}${left.padEnd(width + 1)}${right}`);
  lines.push(`${pad}|${' '.repeat(width)}|`);
  for (const e of result.events) {
    const label = ` ${e.label}${e.retransmission ? ' (again)' : ''} `;
    const fill = Math.max(1, width - label.length - 2);
    const arrow =
      e.direction === 'out' ? `|--${label}${'-'.repeat(fill - 1)}>|` : `|<${'-'.repeat(fill - 1)}${label}--|`;
    lines.push(`${`${e.at.toFixed(1)} ms`.padStart(9)} ${arrow}`);
    for (const d of e.details) lines.push(`${pad}|   ${d}`);
    if (showFull) for (const l of e.text.trimEnd().split(/\r?\n/)) lines.push(`${pad}|     ${l}`);
  }
  lines.push(`${pad}|${' '.repeat(width)}|`);
  return lines.join('\n') + '\n';
}
