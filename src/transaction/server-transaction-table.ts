// Server transactions indexed by their RFC 3261 §17.2.3 matching key.

import { flatCopy, type SipRequest } from '../sip/message.js';
import { MAGIC_COOKIE } from '../sip/via.js';
import type { Clock, TimerHandle, TimerValues } from './clock.js';
import { KeyTable } from './key-table.js';
import {
  CONFIRMED_INVITE,
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ResponseRoute,
  type ServerTransaction,
  type TransactionHooks,
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
    if (method === 'INVITE') return flatCopy(branch);
    return flatCopy(`${method} ${branch}\u0000${via.host}:${via.port ?? ''}`);
  }
  const cseq = req.cseq.seq;
  // The ACK of a non-2xx carries the INVITE's Request-URI (RFC 3261 §17.1.1.3), so it is part of the key.
  return flatCopy(
    `2543\u0000${req.uri}\u0000${req.fromTag ?? ''}\u0000${req.callId ?? ''}\u0000${cseq}\u0000${req.topViaText ?? ''}\u0000${method}`,
  );
}

export class ServerTransactionTable {
  /**
   * Live transactions, and Confirmed INVITE transactions as their Timer I deadline (a number) under
   * the same key: the ACK turns one into the other with a single write, and a lookup is one probe.
   */
  private readonly byKey = new KeyTable<InviteServerTransaction | NonInviteServerTransaction | number>();
  /** The same keys in deadline order (all share one duration, T4), consumed from `head`. */
  private queueKeys: string[] = [];
  private queueAt: number[] = [];
  private head = 0;
  private sweepTimer: TimerHandle | undefined;
  private readonly hooks: TransactionHooks = {
    terminated: (key) => {
      this.byKey.delete(key);
    },
    confirmed: (key) => {
      const at = this.clock.now() + this.timers.t4;
      this.byKey.set(key, at);
      this.queueKeys.push(key);
      this.queueAt.push(at);
      if (this.sweepTimer === undefined) this.sweepTimer = this.clock.setTimer(this.timers.t4, this.sweep);
    },
  };

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
  ) {}

  /** Transactions held, Confirmed ones included. */
  get size(): number {
    return this.byKey.size;
  }

  get(key: string): ServerTransaction | undefined {
    const t = this.byKey.get(key);
    if (typeof t !== 'number') return t;
    return t > this.clock.now() ? CONFIRMED_INVITE : undefined;
  }

  createInvite(key: string, route: ResponseRoute): InviteServerTransaction {
    const t = new InviteServerTransaction(key, route, this.clock, this.timers, this.hooks);
    this.byKey.set(key, t);
    return t;
  }

  createNonInvite(key: string, route: ResponseRoute): NonInviteServerTransaction {
    const t = new NonInviteServerTransaction(key, route, this.clock, this.timers, this.hooks);
    this.byKey.set(key, t);
    return t;
  }

  /** Timer I for every Confirmed transaction that is due; re-armed for the next one. */
  private readonly sweep = (): void => {
    this.sweepTimer = undefined;
    const now = this.clock.now();
    const keys = this.queueKeys;
    const ats = this.queueAt;
    let h = this.head;
    while (h < keys.length && ats[h]! <= now) {
      const key = keys[h]!;
      // A key reused since (a misbehaving client's branch) holds something else now: leave it.
      if (this.byKey.get(key) === ats[h]) this.byKey.delete(key);
      h++;
    }
    if (h === keys.length) {
      this.queueKeys = [];
      this.queueAt = [];
      h = 0;
    } else if (h > 4096 && h * 2 > keys.length) {
      this.queueKeys = keys.slice(h);
      this.queueAt = ats.slice(h);
      h = 0;
    }
    this.head = h;
    if (h < this.queueKeys.length) this.sweepTimer = this.clock.setTimer(this.queueAt[h]! - now, this.sweep);
  };

  /** Drop every transaction (shutdown). */
  clear(): void {
    for (const t of this.byKey.values()) if (typeof t !== 'number') t.dispose();
    this.byKey.clear();
    this.queueKeys = [];
    this.queueAt = [];
    this.head = 0;
    if (this.sweepTimer !== undefined) this.clock.clearTimer(this.sweepTimer);
    this.sweepTimer = undefined;
  }
}
