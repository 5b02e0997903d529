// The drachtio engine: the service as a drachtio-srf application. drachtio-server (C++, sofia-sip)
// owns SIP: sockets, transactions, retransmissions, the proxy core and dialog state. It hands each
// new request over; this engine parses the request's text with the service's own parser, asks the
// same Decider the native router asks (src/modes/decider.ts), and carries the decision out through
// drachtio-srf: an answer with res.send, a proxy plan with srf.proxyRequest, a lookup dialog with
// srf.createUAS. The endpoint table, its reload, the access policy, the decision line and the
// metrics are the service's, shared with the native engine.

import type { Logger } from 'pino';
import type { DecisionFields } from '../base/log.js';
import type { DrachtioConfig } from '../config/schema.js';
import type { ListenerGuard } from '../guard/guard.js';
import type { Decider } from '../modes/decider.js';
import type { Answer, Handover } from '../modes/mode.js';
import { hostPort } from '../sip/host-port.js';
import type { SipRequest } from '../sip/message.js';
import { parseMessage, type ParseOptions } from '../sip/parser.js';
import { validateRequest } from '../sip/validate.js';
import type { Link, Source, TransportName } from '../transport/types.js';
import { answerHeaders } from './headers.js';
import { DrachtioLinks, type LinkView } from './links.js';
import type { LookupCarrier } from './lookup.js';
import type { ProxyCarrier } from './proxy.js';
import type { Srf, SrfRequest, SrfResponse } from './srf.js';

/** The methods drachtio-server is asked to hand over (outside dialogs; in-dialog ones go to the dialog). */
const METHODS = [
  'invite',
  'options',
  'info',
  'message',
  'subscribe',
  'notify',
  'register',
  'refer',
  'publish',
  'update',
  'bye',
];

/**
 * How long a drain still counts as busy after asking drachtio-server for no new requests: one it
 * handed over before it read our remove_route is still on its way (a round trip), and must find this
 * instance connected.
 */
const DRAIN_SETTLE_MS = 200;

export interface DrachtioEngineOptions {
  readonly config: DrachtioConfig;
  readonly logger: Logger;
  readonly decider: Decider;
  /** The access policy and rate limit, as for a listener none of the access rules names. */
  readonly guard: ListenerGuard;
  readonly record: (level: 'info' | 'warn', fields: DecisionFields) => void;
  readonly serverHeader: string;
  readonly parse: ParseOptions;
  /** Retry-After (s) of the 503 answered while draining. */
  readonly retryAfter: number;
  readonly proxy?: ProxyCarrier | undefined;
  readonly lookup?: LookupCarrier | undefined;
  /** Where the counts go: the router's, so /metrics counts requests on either engine alike. */
  readonly stats?: DrachtioStats;
}

/** One request drachtio-server handed over, as the carriers take it. */
export interface Handed {
  readonly srf: Srf;
  readonly req: SrfRequest;
  readonly res: SrfResponse;
  readonly sip: SipRequest;
  readonly source: Source;
  readonly t0: number;
}

export interface DrachtioStats {
  requests: number;
  parseErrors: number;
  internalErrors: number;
  drainRejected: number;
}

export class DrachtioEngine {
  readonly stats: DrachtioStats;
  readonly links: DrachtioLinks;
  private draining = false;
  private inFlightCount = 0;
  /** performance.now() until which a drain waits for requests already on their way. */
  private settleUntil = 0;

  constructor(private readonly opts: DrachtioEngineOptions) {
    this.links = new DrachtioLinks(opts.config, opts.logger);
    this.stats = opts.stats ?? { requests: 0, parseErrors: 0, internalErrors: 0, drainRejected: 0 };
  }

  /** Connects to the drachtio-servers (or listens for them); see DrachtioLinks.open. */
  async start(): Promise<void> {
    await this.links.open((srf) => {
      for (const m of METHODS) srf.use(m, (req, res) => this.onRequest(srf, req, res));
    });
  }

  ready(): boolean {
    return !this.draining && this.links.ready();
  }

  views(): LinkView[] {
    return this.links.views();
  }

  /** The lookup dialogs held now (pchat_dialogs_held). */
  lookupDialogs(): number {
    return this.opts.lookup?.size ?? 0;
  }

  /** Requests taken and not yet ended (a proxy waiting for its final, a lookup dialog held). */
  inFlight(): number {
    const settling = performance.now() < this.settleUntil ? 1 : 0;
    return this.inFlightCount + (this.opts.lookup?.size ?? 0) + settling;
  }

  /**
   * Stops taking new requests: drachtio-server is asked to send them to other applications (it
   * forgets this one for new requests). Those it handed over before it read that are served; the
   * drain waits DRAIN_SETTLE_MS for them.
   */
  drain(): void {
    this.draining = true;
    this.settleUntil = performance.now() + DRAIN_SETTLE_MS;
    for (const srf of this.links.apps()) {
      for (const m of METHODS) {
        try {
          srf.unregisterForMessages(m);
        } catch {
          // Not registered on this link yet (never connected): nothing to take back.
        }
      }
    }
  }

  close(): void {
    this.opts.lookup?.close();
    this.links.close();
  }

  private onRequest(srf: Srf, req: SrfRequest, res: SrfResponse): void {
    const t0 = performance.now();
    this.stats.requests++;
    try {
      this.handle(srf, req, res, t0);
    } catch (err) {
      this.stats.internalErrors++;
      this.opts.logger.error({ err, method: req.method }, 'internal error handling a request from drachtio');
      if (!res.finalResponseSent) res.send(500);
    }
  }

  private handle(srf: Srf, req: SrfRequest, res: SrfResponse, t0: number): void {
    const source = sourceOf(req);
    // drachtio-server holds every request it hands over until the application answers, so a
    // request the policy would drop is refused here rather than left unanswered.
    if (this.opts.guard.admit(source) !== 'pass') {
      res.send(403, 'Forbidden');
      return;
    }
    // drachtio-srf decoded the message as UTF-8: encoded back, it is the bytes drachtio received.
    const parsed = parseMessage(Buffer.from(req.raw, 'utf8'), this.opts.parse);
    const sip = parsed.ok && parsed.message.kind === 'request' ? parsed.message : undefined;
    const invalid = sip === undefined ? (parsed.ok ? undefined : parsed.error) : validateRequest(sip);
    if (sip === undefined || invalid !== undefined) {
      this.stats.parseErrors++;
      const reason = invalid?.reason ?? 'Bad Request';
      res.send(400, reason.slice(0, 120));
      this.opts.logger.warn(
        { peer: hostPort(source.address, source.port), reason },
        'malformed request from drachtio',
      );
      return;
    }
    const handed: Handed = { srf, req, res, sip, source, t0 };
    // Inbound, drachtio-server sends nothing new once it has read our remove_route: a request that
    // arrives while draining was handed to this instance before, no other will get it, and refusing
    // it would fail a call. Outbound, drachtio-server's request-handler chose us: 503, Retry-After.
    if (this.draining && this.opts.config.servers === undefined) {
      this.stats.drainRejected++;
      this.answer(handed, {
        status: 503,
        outcome: 'draining',
        extra: `Retry-After: ${this.opts.retryAfter}\r\n`,
      });
      return;
    }
    const decider = this.opts.decider;
    const decision = decider.decide(sip, source);
    if (decision.handover === undefined) this.answer(handed, decision);
    else this.carry(handed, decider.decidedBy!.name, decision);
  }

  /** An answer of the service's own: the same status and header lines as the native engine's. */
  answer(h: Handed, a: Answer): void {
    h.res.send(a.status, a.reason, { headers: answerHeaders(a.extra, this.opts.serverHeader) });
    this.record(h, a.warn === true ? 'warn' : 'info', {
      status: a.status,
      outcome: a.outcome,
      endpoint: a.endpoint?.sipAddress,
      mode: a.endpoint?.mode,
      pool: a.endpoint?.homedBy === undefined ? undefined : a.endpoint.poolFqdn,
      homing: a.endpoint?.homedBy,
      reason: a.reason,
    });
  }

  /** A decision line for a request handed over, with what its carrier found. */
  record(
    h: Handed,
    level: 'info' | 'warn',
    f: Pick<
      DecisionFields,
      'status' | 'outcome' | 'endpoint' | 'mode' | 'reason' | 'target' | 'pool' | 'homing'
    >,
  ): void {
    const { sip, source } = h;
    this.opts.record(level, {
      callId: sip.callId,
      branch: sip.topVia.branch,
      method: sip.method,
      ruri: sip.uri,
      ...f,
      ...(level === 'warn' ? { peer: hostPort(source.address, source.port) } : {}),
      latencyUs: Math.round((performance.now() - h.t0) * 1000),
    });
  }

  /** A hand-over to the mode `mode` names: its drachtio carrier takes it on. */
  private carry(h: Handed, mode: string, decision: Handover): void {
    const carrier = mode === 'proxy' ? this.opts.proxy : mode === 'lookup' ? this.opts.lookup : undefined;
    if (carrier === undefined) {
      this.answer(h, { status: 501, outcome: `${mode}-not-carried`, endpoint: decision.endpoint });
      return;
    }
    this.inFlightCount++;
    // The plan is the one this mode decided (ModeDecision<Plan>): the carrier of the same name reads it.
    carrier.carry(h, decision.plan as never, this).then(
      () => this.inFlightCount--,
      (err: unknown) => {
        this.inFlightCount--;
        this.stats.internalErrors++;
        this.opts.logger.error({ err, mode }, 'internal error carrying a request through drachtio');
        if (!h.res.finalResponseSent) h.res.send(500);
      },
    );
  }
}

/** Where drachtio-server received the request from, as the access policy and the modes read it. */
export function sourceOf(req: SrfRequest): Source {
  const transport = (req.protocol || 'udp').toLowerCase() as TransportName;
  const address = req.source_address;
  return {
    link: drachtioLink(transport),
    address,
    port: Number(req.source_port),
    family: address.includes(':') ? 6 : 4,
  };
}

const LINKS = new Map<TransportName, Link>();

/**
 * drachtio-server sends everything itself: a Source's link stands for the transport the request came
 * over, and sending on it is a fault of ours.
 */
function drachtioLink(transport: TransportName): Link {
  let link = LINKS.get(transport);
  if (link === undefined) {
    link = {
      transport,
      reliable: transport !== 'udp',
      localAddress: '',
      localPort: 0,
      send: () => {
        throw new Error('the drachtio engine sends through drachtio-server, never on a link');
      },
    };
    LINKS.set(transport, link);
  }
  return link;
}
