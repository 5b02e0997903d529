// What a request gets, whichever engine carries it: the Request-URI looked up in the endpoint
// table, the service's own OPTIONS, the loop check, the checks every mode shares, then the mode the
// endpoint names. Data in, a decision out (an Answer, or a Handover to `decidedBy`): the native
// router and the drachtio engine both ask this, so an endpoint gets the same answer on either.

import type { Endpoint } from '../endpoints/endpoint.js';
import type { EndpointTable } from '../endpoints/table.js';
import { HeaderBit } from '../sip/headers.js';
import { flatCopy, type SipRequest } from '../sip/message.js';
import { parseSipUri, uriScheme } from '../sip/uri.js';
import type { Source } from '../transport/types.js';
import type { Answer, Mode, ModeDecision } from './mode.js';
import { SERVICE_ALLOW, sharedChecks } from './shared-checks.js';

/** The answer to an OPTIONS for the service itself (keep-alive probes of Front Ends, RFC 3261 §11.2). */
export const SERVICE_OPTIONS: Answer = {
  status: 200,
  outcome: 'options',
  extra: SERVICE_ALLOW + 'Accept: application/sdp\r\n',
};

export class Decider {
  /** The mode the last decide() handed its request to (read at once by the caller). */
  decidedBy: Mode | undefined;
  /** Some mode holds UAS dialogs: an in-dialog request for none gets 481 rather than 404. */
  readonly keepsDialogs: boolean;
  private readonly byName = new Map<string, Mode>();
  /** The mode that routes requests naming no endpoint (in-dialog, or carrying our Route). */
  private readonly dialogRouter: Mode | undefined;
  // The last Request-URI matched, per table: a run of requests for one endpoint looks it up once.
  private lastTable: EndpointTable | undefined;
  private lastUri: string | undefined;
  private lastEndpoint: Endpoint | undefined;

  constructor(
    readonly modes: readonly Mode[],
    private readonly table: () => EndpointTable,
    private readonly wallClock: () => number = Date.now,
    /** Whether a source may name its caller in P-Asserted-Identity (server.yaml access.trustIdentity). */
    private readonly trustsIdentity: (address: string) => boolean = () => false,
  ) {
    for (const m of modes) this.byName.set(m.name, m);
    this.dialogRouter = modes.find((m) => m.route !== undefined);
    this.keepsDialogs = modes.some((m) => m.keepsDialogs === true);
  }

  /**
   * The endpoint as this caller meets it: the pool the first matching homing rule names. The caller
   * is the P-Asserted-Identity (RFC 3325) of a request from a trusted source (a Front End, which
   * asserts the user it authenticated), else the From address: anyone who can reach the service
   * directly can write any From.
   */
  private home(endpoint: Endpoint, req: SipRequest, source: Source, table: EndpointTable): Endpoint {
    const asserted = this.trustsIdentity(source.address) ? req.header('p-asserted-identity') : undefined;
    return table.homeFor(endpoint, asserted ?? req.header('from'));
  }

  /** The mode endpoints name by `name`, when it is configured. */
  mode(name: string): Mode | undefined {
    return this.byName.get(name);
  }

  /**
   * What a request gets. A hand-over is to `this.decidedBy` (set here, read at once by the caller:
   * no wrapper object per request on the path every 302 takes).
   */
  decide(req: SipRequest, source: Source): ModeDecision {
    this.decidedBy = undefined;
    const table = this.table();
    let endpoint: Endpoint | undefined;
    if (req.uri === this.lastUri && table === this.lastTable) endpoint = this.lastEndpoint;
    else {
      const scheme = uriScheme(req.uri);
      // RFC 3261 §8.2.2.1 / RFC 4475 §3.3.2: never route on To for a scheme we do not serve.
      if (scheme !== 'sip' && scheme !== 'sips') return { status: 416, outcome: 'unsupported-scheme' };
      endpoint = table.lookupUri(req.uri);
      if (endpoint !== undefined) {
        this.lastTable = table;
        this.lastUri = flatCopy(req.uri);
        this.lastEndpoint = endpoint;
      }
    }
    // Homing: the pool this caller is led to, as the endpoint they meet (src/endpoints/homing.ts).
    if (endpoint?.homing !== undefined) endpoint = this.home(endpoint, req, source, table);
    // Keep-alive probes from Front Ends and load balancers (RFC 3261 §11.2).
    if (endpoint === undefined && req.method === 'OPTIONS' && addressesService(req.uri))
      return SERVICE_OPTIONS;
    // The mode that would take it: the endpoint's, or for no endpoint the one routing dialogs.
    const mode = endpoint === undefined ? this.dialogRouter : this.byName.get(endpoint.mode);
    // RFC 3261 §16.3 item 4: a request carrying our own Via has looped back to us. Only a request
    // a mode would send on can go round again: a redirect or a lookup answer ends it here.
    if (mode?.forwards === true && mode.isLoop?.(req) === true) return { status: 482, outcome: 'loop' };
    const stop = sharedChecks(req, endpoint, mode, this.wallClock);
    if (stop !== undefined) return stop;
    if (endpoint === undefined) {
      // An in-dialog request, or one routed through us by our Record-Route.
      if (mode !== undefined && (req.toTag !== undefined || req.has(HeaderBit.route))) {
        this.decidedBy = mode;
        return mode.route!(req, source);
      }
      // RFC 3261 §12.2.2: an in-dialog request for no dialog we hold (one already over).
      if (this.keepsDialogs && req.toTag !== undefined) return { status: 481, outcome: 'no-dialog' };
      return { status: 404, outcome: 'unknown' };
    }
    if (mode === undefined) return { status: 501, outcome: `${endpoint.mode}-not-configured`, endpoint };
    this.decidedBy = mode;
    return mode.decide(req, endpoint, source);
  }
}

/** A Request-URI with no user part names the service itself. */
function addressesService(uri: string): boolean {
  try {
    return parseSipUri(uri).user === undefined;
  } catch {
    return false;
  }
}
