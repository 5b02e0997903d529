// Lookup mode: the service answers the legacy client's INVITE as the Group Chat Lookup service did
// (a short UAS dialog, then XCCOS rpl:requri naming the pool). lookup-service.ts holds the dialogs;
// this is its face towards the router.

import type { Endpoint } from '../../endpoints/endpoint.js';
import type { SipRequest } from '../../sip/message.js';
import type { Source } from '../../transport/types.js';
import type {
  Answer,
  Claim,
  Inbound,
  Mode,
  ModeContext,
  ModeDecision,
  ModeFactory,
  Responder,
} from '../mode.js';
import { SERVICE_ALLOW } from '../shared-checks.js';
import { LOOKUP_ALLOW, LookupService, type LookupDeps } from './lookup-service.js';

/** What lookup mode is configured with; the rest is the router's ModeContext. */
export type LookupModeOptions = Omit<LookupDeps, keyof ModeContext>;

/** Option tags the lookup service supports in Require (RFC 4028 session timers). */
const SUPPORTED: ReadonlySet<string> = new Set(['timer']);

export class LookupMode implements Mode<Endpoint> {
  readonly name = 'lookup';
  readonly forwards = false;
  readonly supported = SUPPORTED;
  readonly keepsDialogs = true;
  readonly service: LookupService;

  constructor(options: LookupModeOptions, ctx: ModeContext) {
    this.service = new LookupService({ ...options, ...ctx });
  }

  get clientTxns(): LookupDeps['clientTxns'] {
    return this.service.clientTxns;
  }

  decide(req: SipRequest, endpoint: Endpoint, source: Source): ModeDecision<Endpoint> {
    if (req.method === 'INVITE') {
      // Over maxDialogs, or over the source's budget of un-ACKed 200s: one stateless answer, no state.
      const refused = this.service.admit(req, source);
      if (refused !== undefined) return { ...refused, endpoint, warn: true } satisfies Answer;
      // Answered at once (a 2xx the dialog retransmits itself, or a rejection): no server
      // transaction, as for any answer of ours.
      return { handover: 'direct', plan: endpoint, endpoint };
    }
    if (req.method === 'OPTIONS') return { status: 200, outcome: 'options', extra: SERVICE_ALLOW, endpoint };
    // RFC 3261 §12.2.2: a request with a To tag for a dialog we do not hold.
    if (req.toTag !== undefined) return { status: 481, outcome: 'no-dialog', endpoint };
    // RFC 3261 §8.2.1: outside a dialog the Lookup service serves INVITE alone.
    return {
      status: 405,
      reason: 'Method Not Allowed',
      outcome: 'lookup-method',
      extra: LOOKUP_ALLOW,
      endpoint,
    };
  }

  carry(inb: Inbound<Responder>, endpoint: Endpoint): boolean {
    this.service.invite(inb, endpoint);
    return true;
  }

  claim(req: SipRequest, source: Source): Claim {
    return this.service.owns(req, source);
  }

  inDialog(inb: Inbound): void {
    this.service.inDialog(inb);
  }

  ack(req: SipRequest, source: Source): boolean {
    return this.service.ack(req, source);
  }

  close(): void {
    this.service.close();
  }
}

export function lookupMode(options: LookupModeOptions | undefined): ModeFactory | undefined {
  return options === undefined ? undefined : (ctx) => new LookupMode(options, ctx);
}
