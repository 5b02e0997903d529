// Server transactions indexed by their RFC 3261 §17.2.3 matching key.

import type { SipRequest } from '../sip/message.js';
import { MAGIC_COOKIE } from '../sip/via.js';
import type { Clock, TimerValues } from './clock.js';
import {
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ResponseRoute,
  type ServerTransaction,
} from './server-transaction.js';

/**
 * The key a request matches server transactions by. ACK and CANCEL map onto the INVITE they refer to
 * when `forMethod` is given ('INVITE').
 * RFC 3261 §17.2.3: with the magic cookie, branch + sent-by + method identify the transaction;
 * otherwise (RFC 2543 clients, such as Group Chat clients that send no branch) the Request-URI,
 * From tag, Call-ID, CSeq number and top Via are compared.
 */
export function serverTransactionKey(req: SipRequest, forMethod: string = req.method): string {
  const via = req.topVia;
  const branch = via.branch;
  const method = forMethod === 'ACK' ? 'INVITE' : forMethod;
  if (branch !== undefined && branch.length > MAGIC_COOKIE.length && branch.startsWith(MAGIC_COOKIE)) {
    // RFC 3261 §8.1.1.7 makes the branch unique across space and time, so for INVITE (and its ACK)
    // the branch alone is the key: no string to build, flatten and hash per request. Only a client
    // breaking that rule (reusing another's branch) could collide. Everything else keeps sent-by and
    // the method in the key: CANCEL shares the INVITE's branch.
    if (method === 'INVITE') return branch;
    return `${method} ${branch}\u0000${via.host}:${via.port ?? ''}`;
  }
  const cseq = req.cseq.seq;
  // The ACK of a non-2xx carries the INVITE's Request-URI (RFC 3261 §17.1.1.3), so it is part of the key.
  return `2543\u0000${req.uri}\u0000${req.fromTag ?? ''}\u0000${req.callId ?? ''}\u0000${cseq}\u0000${req.topViaText ?? ''}\u0000${method}`;
}

export class ServerTransactionTable {
  private readonly byKey = new Map<string, ServerTransaction>();
  private readonly release = (key: string): void => {
    this.byKey.delete(key);
  };

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): ServerTransaction | undefined {
    return this.byKey.get(key);
  }

  createInvite(key: string, route: ResponseRoute): InviteServerTransaction {
    const t = new InviteServerTransaction(key, route, this.clock, this.timers, this.release);
    this.byKey.set(key, t);
    return t;
  }

  createNonInvite(key: string, route: ResponseRoute): NonInviteServerTransaction {
    const t = new NonInviteServerTransaction(key, route, this.clock, this.timers, this.release);
    this.byKey.set(key, t);
    return t;
  }

  /** Drop every transaction (shutdown). */
  clear(): void {
    for (const t of [...this.byKey.values()]) t.dispose();
    this.byKey.clear();
  }
}
