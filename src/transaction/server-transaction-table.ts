// Server transactions indexed by their RFC 3261 §17.2.3 matching key.

import { flatCopy, type SipRequest } from '../sip/message.js';
import { MAGIC_COOKIE } from '../sip/via.js';
import type { Clock, TimerHandle, TimerValues } from '../base/clock.js';
import { KeyTable } from '../base/key-table.js';
import {
  CompletedNonInvite,
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
    // RFC 3261 §17.2.3: "the request matches a transaction if ... the branch parameter in the request
    // is equal to the one in the top Via header field of the request that created the transaction,
    // the sent-by value in the top Via of the request is equal to the one in the request that
    // created the transaction, and the method of the request matches". Branch alone is not enough:
    // anyone who saw a branch could then CANCEL or ACK another client's INVITE. INVITE keys carry
    // no method (ACK and CANCEL look the INVITE up with forMethod 'INVITE'); the others name theirs.
    // firstLineInviteKey (router.ts) gives the same text for a Via read off the wire (ACK fast path).
    const sentBy = `${branch}\u0000${via.host}:${via.port ?? ''}`;
    return flatCopy(method === 'INVITE' ? sentBy : `${method} ${sentBy}`);
  }
  const cseq = req.cseq.seq;
  // The ACK of a non-2xx carries the INVITE's Request-URI (RFC 3261 §17.1.1.3), so it is part of the key.
  return flatCopy(
    `2543\u0000${req.uri}\u0000${req.fromTag ?? ''}\u0000${req.callId ?? ''}\u0000${cseq}\u0000${req.topViaText ?? ''}\u0000${method}`,
  );
}

/**
 * Keys that all expire after one duration, hence in the order they were added: two flat arrays
 * consumed from `head` and one clock timer for the earliest, instead of a timer per key.
 */
export class ExpiryQueue {
  /** Keys in the order added; those consumed (before `head`) are cleared, so they are not held. */
  private keys: (string | undefined)[] = [];
  private ats: number[] = [];
  private head = 0;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly duration: number,
    /** Called for each key that is due, with the deadline it was added with. */
    private readonly expire: (key: string, at: number) => void,
  ) {}

  /**
   * Queue `key`; returns its deadline, rounded up to a whole millisecond: an integer is held as is
   * (a small integer) where a fraction is one more heap object per entry, for the whole duration.
   */
  add(key: string): number {
    const now = this.clock.now();
    const at = Math.ceil(now + this.duration);
    this.keys.push(key);
    this.ats.push(at);
    if (this.timer === undefined) this.timer = this.clock.setTimer(at - now, this.sweep);
    return at;
  }

  /** Expire every key that is due; re-armed for the next one. */
  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    const keys = this.keys;
    const ats = this.ats;
    let h = this.head;
    while (h < keys.length && ats[h]! <= now) {
      const key = keys[h]!;
      // Let go of the key now, not when the array is next compacted: up to half of it is consumed.
      keys[h] = undefined;
      this.expire(key, ats[h]!);
      h++;
    }
    if (h === keys.length) {
      this.keys = [];
      this.ats = [];
      h = 0;
    } else if (h > 4096 && h * 2 > keys.length) {
      this.keys = keys.slice(h);
      this.ats = ats.slice(h);
      h = 0;
    }
    this.head = h;
    if (h < this.keys.length) this.timer = this.clock.setTimer(this.ats[h]! - now, this.sweep);
  };

  clear(): void {
    this.keys = [];
    this.ats = [];
    this.head = 0;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}

export class ServerTransactionTable {
  /**
   * Live transactions; Confirmed and Accepted INVITE transactions as their Timer I or L deadline (a
   * number) and
   * Completed non-INVITE ones as a CompletedNonInvite, under the same key: one write turns one into
   * the other, and a lookup is one probe.
   */
  private readonly byKey = new KeyTable<
    InviteServerTransaction | NonInviteServerTransaction | CompletedNonInvite | number
  >();
  /** Timer I of Confirmed INVITE transactions (all T4). */
  private readonly confirmedInvites: ExpiryQueue;
  /** Timer J of Completed non-INVITE transactions (all 64*T1). */
  private readonly completedNonInvites: ExpiryQueue;
  /** Timer L of Accepted INVITE transactions (all 64*T1, RFC 6026 §8.6). */
  private readonly acceptedInvites: ExpiryQueue;
  private readonly hooks: TransactionHooks = {
    terminated: (t) => {
      this.byKey.deleteIf(t.key, t);
    },
    confirmed: (key) => {
      this.byKey.set(key, this.confirmedInvites.add(key));
    },
    // Held like Confirmed: the key and a deadline, which absorb INVITE retransmissions and ACKs.
    accepted: (key) => {
      this.byKey.set(key, this.acceptedInvites.add(key));
    },
    completed: (t) => {
      const response = t.finalResponse;
      if (response === undefined || this.byKey.get(t.key) !== t) return;
      this.byKey.set(t.key, new CompletedNonInvite(response, t.route, this.completedNonInvites.add(t.key)));
    },
  };

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
  ) {
    // A key reused since (a misbehaving client's branch) holds something else now: it is left alone.
    this.confirmedInvites = new ExpiryQueue(clock, timers.t4, (key, at) => {
      this.byKey.deleteIf(key, at);
    });
    this.acceptedInvites = new ExpiryQueue(clock, 64 * timers.t1, (key, at) => {
      this.byKey.deleteIf(key, at);
    });
    // RFC 3261 §17.2.2: Timer J, 64*T1 for unreliable transports.
    this.completedNonInvites = new ExpiryQueue(clock, 64 * timers.t1, (key, at) => {
      const v = this.byKey.get(key);
      if (v instanceof CompletedNonInvite && v.expiresAt === at) this.byKey.delete(key);
    });
  }

  /** Transactions held, Confirmed and Completed ones included. */
  get size(): number {
    return this.byKey.size;
  }

  get(key: string): ServerTransaction | undefined {
    const t = this.byKey.get(key);
    if (typeof t === 'number') return t > this.clock.now() ? CONFIRMED_INVITE : undefined;
    if (t instanceof CompletedNonInvite) return t.expiresAt > this.clock.now() ? t : undefined;
    return t;
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

  /** Drop every transaction (shutdown). */
  clear(): void {
    for (const t of this.byKey.values())
      if (typeof t !== 'number' && !(t instanceof CompletedNonInvite)) t.dispose();
    this.byKey.clear();
    this.confirmedInvites.clear();
    this.acceptedInvites.clear();
    this.completedNonInvites.clear();
  }
}
