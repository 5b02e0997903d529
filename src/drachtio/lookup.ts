// Lookup mode on drachtio: the legacy client's short dialog (xccos.md §3) held as a drachtio-srf UAS
// dialog. drachtio-server sends the 200 and retransmits it until the ACK, answers nothing else on
// its own, and hands the dialog's INFO and BYE to it; what each request gets is decided by the
// lookup's own decisions (src/modes/lookup/decisions.ts: the offer and session timer of the INVITE,
// the XCCOS reply with the hand-out URI), the code the native engine runs. A dialog left alone
// (idle, past its session interval, or never ACKed) is ended with BYE.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { SessionTimerAnswer } from '../modes/lookup/session-timer.js';
import { sessionTimerHeaders } from '../modes/lookup/session-timer.js';
import {
  decideInfo,
  decideInvite,
  decideSession,
  dialogLifetime,
  type Refusal,
} from '../modes/lookup/decisions.js';
import { HandoutPicker, type ProbeStates } from '../modes/lookup/handout.js';
import { LOOKUP_ALLOW, type LookupSettings } from '../modes/lookup/lookup-service.js';
import { sdpAnswer } from '../modes/lookup/sdp.js';
import type { SipRequest } from '../sip/message.js';
import { parseMessage, type ParseOptions } from '../sip/parser.js';
import { answerHeaders } from './headers.js';
import { sourceOf, type DrachtioEngine, type Handed } from './engine.js';
import type { SrfDialog, SrfRequest, SrfResponse } from './srf.js';

export interface LookupCarrierOptions {
  readonly settings: LookupSettings;
  readonly probes?: ProbeStates | undefined;
  readonly clock: Clock;
  /** RFC 3261 T1: a 2xx not ACKed within 64*T1 ends its dialog (§13.3.1.4). */
  readonly t1: number;
  readonly serverHeader: string;
  readonly parse: ParseOptions;
  readonly logger: Logger;
}

interface Held {
  readonly dialog: SrfDialog;
  readonly endpoint: Endpoint;
  session: SessionTimerAnswer;
  envid: number;
  timer: TimerHandle | undefined;
  acked: boolean;
}

export class LookupCarrier {
  private readonly held = new Set<Held>();
  private readonly picker: HandoutPicker;

  constructor(private readonly o: LookupCarrierOptions) {
    this.picker = new HandoutPicker(o.probes);
  }

  /** Dialogs held. */
  get size(): number {
    return this.held.size;
  }

  async carry(h: Handed, endpoint: Endpoint, engine: DrachtioEngine): Promise<void> {
    if (this.held.size >= this.o.settings.maxDialogs) {
      engine.answer(h, {
        status: 503,
        outcome: 'lookup-full',
        extra: 'Retry-After: 30\r\n',
        endpoint,
        warn: true,
      });
      return;
    }
    const decided = decideInvite(h.sip, this.o.settings.sessionExpires);
    if (decided.kind === 'refuse') {
      engine.answer(h, refusalAnswer(decided, endpoint));
      return;
    }
    const offer = h.sip.body.length > 0 ? h.sip.body.toString('latin1') : undefined;
    const local = localSipAddress(h.req);
    const dialog = await h.srf.createUAS(h.req, h.res, {
      localSdp: sdpAnswer(offer, local.address, local.port),
      headers: answerHeaders(dialogLines(decided.session), this.o.serverHeader),
    });
    const d: Held = {
      dialog,
      endpoint,
      session: decided.session,
      envid: randomEnvid(),
      timer: undefined,
      acked: false,
    };
    this.held.add(d);
    engine.record(h, 'info', {
      status: 200,
      outcome: 'lookup-dialog',
      endpoint: endpoint.sipAddress,
      mode: 'lookup',
    });
    // RFC 3261 §13.3.1.4: a 2xx never ACKed ends its dialog after 64*T1.
    this.arm(d, 64 * this.o.t1, 'never-acked');
    this.follow(d, h, engine, local);
  }

  /** What the dialog's own requests get, as drachtio-srf hands them to it. */
  private follow(d: Held, h: Handed, engine: DrachtioEngine, local: { address: string; port: number }): void {
    const dialog = d.dialog;
    dialog.once('ack', () => {
      d.acked = true;
      this.armLifetime(d);
    });
    dialog.on('destroy', () => this.forget(d, 'bye'));
    dialog.on('info', (req: SrfRequest, res: SrfResponse) =>
      this.safely(d, req, res, () =>
        this.info(d, { ...h, req, res, source: sourceOf(req), t0: performance.now() }, engine),
      ),
    );
    dialog.on('modify', (req: SrfRequest, res: SrfResponse) =>
      this.safely(d, req, res, () => this.refresh(d, req, res, local)),
    );
    dialog.on('update', (req: SrfRequest, res: SrfResponse) =>
      this.safely(d, req, res, () => this.refresh(d, req, res, undefined)),
    );
    dialog.on('refresh', () => this.armLifetime(d));
    dialog.on('options', (_req: SrfRequest, res: SrfResponse) =>
      res.send(200, undefined, { headers: answerHeaders(LOOKUP_ALLOW, this.o.serverHeader) }),
    );
    for (const m of ['message', 'notify', 'refer'])
      dialog.on(m, (_req: SrfRequest, res: SrfResponse) =>
        // RFC 3261 §8.2.1: a method we do not serve in this dialog gets 405 with Allow.
        res.send(405, 'Method Not Allowed', { headers: answerHeaders(LOOKUP_ALLOW, this.o.serverHeader) }),
      );
  }

  /** Forget every dialog without a word to the clients (shutdown). */
  close(): void {
    for (const d of this.held) if (d.timer !== undefined) this.o.clock.clearTimer(d.timer);
    this.held.clear();
  }

  /** An INFO: 200 (or why not), then our INFO with the XCCOS reply (xccos.md §3). */
  private info(d: Held, inb: Omit<Handed, 'sip'>, engine: DrachtioEngine): void {
    const { req, res } = inb;
    this.armLifetime(d);
    const sip = this.parse(req);
    if (sip === undefined) {
      res.send(400, 'Bad Request');
      return;
    }
    const h: Handed = { ...inb, sip };
    const fields = { endpoint: d.endpoint.sipAddress, mode: 'lookup' };
    const decided = decideInfo(sip, this.o.settings.maxBodyBytes, String(d.envid % 0x7fff_ffff), () =>
      this.picker.pick(d.endpoint),
    );
    if (decided.kind === 'refuse') {
      engine.answer(h, refusalAnswer(decided, d.endpoint));
      return;
    }
    res.send(200, undefined, { headers: answerHeaders(undefined, this.o.serverHeader) });
    if (decided.kind !== 'reply') {
      engine.record(h, 'info', { ...fields, status: 200, outcome: 'lookup-info' });
      return;
    }
    d.envid++;
    // xccos.md §3: the reply travels in a separate in-dialog INFO from us, after the 200, in
    // text/plain as real servers send it.
    d.dialog
      .request({ method: 'INFO', headers: { 'Content-Type': 'text/plain' }, body: decided.body })
      .catch((err: unknown) =>
        this.o.logger.debug({ err: String(err), callId: d.dialog.sip.callId }, 'lookup: our INFO failed'),
      );
    const { level, outcome, target, reason } = decided.line;
    engine.record(h, level, { ...fields, status: 200, outcome, target, reason });
  }

  /** A session refresh (RFC 4028 §9 and §10): re-INVITE or UPDATE, answered with the new interval. */
  private refresh(
    d: Held,
    req: SrfRequest,
    res: SrfResponse,
    local: { address: string; port: number } | undefined,
  ): void {
    const sip = this.parse(req);
    if (sip === undefined) {
      res.send(400, 'Bad Request');
      return;
    }
    const decided = decideSession(sip, this.o.settings.sessionExpires);
    if (decided.kind === 'refuse') {
      res.send(decided.status, decided.reason, {
        headers: answerHeaders(decided.extra, this.o.serverHeader),
      });
      return;
    }
    d.session = decided.session;
    this.armLifetime(d);
    const headers = answerHeaders(dialogLines(d.session), this.o.serverHeader);
    if (local === undefined) res.send(200, undefined, { headers });
    else {
      const offer = sip.body.length > 0 ? sip.body.toString('latin1') : undefined;
      res.send(200, undefined, {
        headers: { ...headers, 'Content-Type': 'application/sdp' },
        body: sdpAnswer(offer, local.address, local.port),
      });
    }
  }

  private safely(d: Held, req: SrfRequest, res: SrfResponse, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.logger.error({ err, callId: d.dialog.sip.callId, method: req.method }, 'lookup: internal error');
      if (!res.finalResponseSent) res.send(500);
    }
  }

  private parse(req: SrfRequest): SipRequest | undefined {
    // drachtio-srf decoded the message as UTF-8: encoded back, it is the bytes drachtio received.
    const parsed = parseMessage(Buffer.from(req.raw, 'utf8'), this.o.parse);
    return parsed.ok && parsed.message.kind === 'request' ? parsed.message : undefined;
  }

  /** (Re)arm the timer that ends a dialog left alone: idle, or past its session interval. */
  private armLifetime(d: Held): void {
    if (!d.acked) return;
    const life = dialogLifetime(d.session, this.o.settings.idleTimeoutMs);
    this.arm(d, life.ms, life.why);
  }

  private arm(d: Held, ms: number, why: string): void {
    if (d.timer !== undefined) this.o.clock.clearTimer(d.timer);
    d.timer = this.o.clock.setTimer(ms, () => this.end(d, why));
  }

  /** Ends a dialog of ours with BYE. */
  private end(d: Held, why: string): void {
    d.timer = undefined;
    if (!this.held.has(d)) return;
    this.forget(d, why);
    d.dialog.destroy().catch(() => undefined);
  }

  private forget(d: Held, why: string): void {
    if (!this.held.delete(d)) return;
    if (d.timer !== undefined) this.o.clock.clearTimer(d.timer);
    d.timer = undefined;
    this.o.logger.debug(
      { callId: d.dialog.sip.callId, endpoint: d.endpoint.sipAddress, why },
      'lookup dialog ended',
    );
  }
}

/** Allow, Supported and Session-Expires of our 2xx to INVITE and UPDATE (drachtio adds Contact). */
function dialogLines(session: SessionTimerAnswer): string {
  return LOOKUP_ALLOW + 'Supported: timer\r\n' + sessionTimerHeaders(session);
}

function refusalAnswer(r: Refusal, endpoint: Endpoint): Parameters<DrachtioEngine['answer']>[1] {
  return {
    status: r.status,
    reason: r.reason,
    outcome: r.outcome,
    extra: r.extra,
    endpoint,
    warn: r.level === 'warn',
  };
}

function randomEnvid(): number {
  return Math.floor(Math.random() * 0x7fff_ffff);
}

/**
 * drachtio-server's SIP address the request came in on ("udp/127.0.0.1:5060"), for the SDP answer's
 * connection line: where the client's messages for this session go.
 */
function localSipAddress(req: SrfRequest): { address: string; port: number } {
  const on = (req as unknown as { receivedOn?: string }).receivedOn ?? '';
  const m = /^[a-z]+\/\[?([^\]]*?)\]?:(\d+)$/i.exec(on);
  return m === null ? { address: '127.0.0.1', port: 5060 } : { address: m[1]!, port: Number(m[2]) };
}
