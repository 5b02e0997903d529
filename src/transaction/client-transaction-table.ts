// Client transactions indexed by their RFC 3261 §17.1.3 matching key, and responses dispatched to them.

import type { SipResponse } from '../sip/message.js';
import type { Clock, TimerValues } from '../base/clock.js';
import { KeyTable } from '../base/key-table.js';
import { ExpiryQueue } from './server-transaction-table.js';
import {
  ClientTransactionState,
  InviteClientTransaction,
  NonInviteClientTransaction,
  clientTransactionKey,
  type AcceptedHook,
  type ClientTransaction,
  type ClientTransactionOptions,
  type ClientTransactionUser,
  type ForgetHook,
} from './client-transaction.js';
import { ServiceError } from '../base/service-error.js';

/**
 * An INVITE client transaction in Accepted (RFC 6026 §8.4), as the table holds it under its key
 * until Timer M: "Any 2xx responses that match this client transaction and that are received while
 * in the "Accepted" state MUST be passed up to the TU"; anything else is absorbed. Nothing is ever
 * sent. It holds nothing of the transaction (the key and Timer M are the table's), so transactions
 * with one peer and one TU share one: a proxy's calls through one flow hold just their key.
 */
export class AcceptedInvite {
  constructor(
    readonly peer: string | undefined,
    readonly user: ClientTransactionUser,
  ) {}

  get kind(): 'invite' {
    return 'invite';
  }

  get state(): ClientTransactionState.Accepted {
    return ClientTransactionState.Accepted;
  }

  receive(res: SipResponse): void {
    if (res.status >= 200 && res.status < 300) this.user.onResponse(res);
  }
}

/** What a response is matched to: a live transaction, or an Accepted INVITE held compactly. */
export type MatchedClientTransaction = ClientTransaction | AcceptedInvite;

/** A second live transaction on one key: its responses could not be told apart. */
export class DuplicateTransactionError extends ServiceError {
  readonly code = 'PCHAT_ERR_TRANSACTION_DUPLICATE_KEY';
}

export type ClientTransactionRequest = Omit<ClientTransactionOptions, 'clock' | 'timers'>;

export class ClientTransactionTable {
  private readonly byKey = new KeyTable<MatchedClientTransaction>();
  private readonly forget: ForgetHook = (t) => {
    this.byKey.deleteIf(t.key, t);
  };
  /** Timer M of Accepted INVITE transactions (all 64*T1, RFC 6026 §8.4). */
  private readonly acceptedInvites: ExpiryQueue;
  /** The Accepted record made last, for the next transaction with the same peer and TU. */
  private lastAccepted: AcceptedInvite | undefined;
  private readonly accepted: AcceptedHook = (key, peer, user) => {
    let held = this.lastAccepted;
    if (held === undefined || held.peer !== peer || held.user !== user) {
      held = new AcceptedInvite(peer, user);
      this.lastAccepted = held;
    }
    this.byKey.set(key, held);
    this.acceptedInvites.add(key);
  };

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
  ) {
    // An Accepted entry leaves the table only here (or in clear(), which empties the queue too), and
    // a live transaction cannot take its key meanwhile (add refuses it): an Accepted entry found
    // under a key due is the one queued.
    this.acceptedInvites = new ExpiryQueue(clock, 64 * timers.t1, (key) => {
      const t = this.byKey.get(key);
      if (!(t instanceof AcceptedInvite)) return;
      this.byKey.delete(key);
      // Timer M fired: the TU hears the end of this transaction.
      t.user.onTerminated?.();
    });
  }

  /** Live transactions, those in Completed (waiting for Timer D or K) included. */
  get size(): number {
    return this.byKey.size;
  }

  /** A new INVITE transaction, registered under its key; the caller then calls start(). */
  createInvite(opts: ClientTransactionRequest): InviteClientTransaction {
    return this.add(new InviteClientTransaction(this.options(opts), this.forget, this.accepted));
  }

  /** A new non-INVITE transaction (CANCEL, OPTIONS, BYE, …), registered under its key. */
  createNonInvite(opts: ClientTransactionRequest): NonInviteClientTransaction {
    return this.add(new NonInviteClientTransaction(this.options(opts), this.forget));
  }

  /** The caller's options with the table's clock and timers, as one object of one shape. */
  private options(opts: ClientTransactionRequest): ClientTransactionOptions {
    return {
      request: opts.request,
      branch: opts.branch,
      send: opts.send,
      reliable: opts.reliable,
      peer: opts.peer,
      clock: this.clock,
      timers: this.timers,
      user: opts.user,
    };
  }

  private add<T extends ClientTransaction>(t: T): T {
    if (this.byKey.has(t.key)) {
      throw new DuplicateTransactionError(`a client transaction is already live for ${t.key}`);
    }
    this.byKey.set(t.key, t);
    return t;
  }

  /**
   * Hand a response to the transaction it belongs to. RFC 3261 §17.1.3: the top Via branch and the
   * CSeq method identify it (a CANCEL shares its INVITE's branch). Sent-by is not compared: our
   * branches are unique across space and time and carry 72 random bits (branch.ts), so no other
   * element's response can carry one by accident.
   * Returns false when nothing matched (unknown branch, transaction over, malformed Via or CSeq):
   * the caller drops and counts it. RFC 6026 §7.3: "The proxy MUST NOT forward the response if there
   * is no matching transaction state machine" (2xx retransmissions match the Accepted transaction).
   */
  dispatch(res: SipResponse): boolean {
    const t = this.match(res);
    if (t === undefined) return false;
    t.receive(res);
    return true;
  }

  /** The transaction a response belongs to (see dispatch), not handed to it. */
  match(res: SipResponse): MatchedClientTransaction | undefined {
    let key: string;
    try {
      const branch = res.topVia.branch;
      if (branch === undefined) return undefined;
      key = clientTransactionKey(branch, res.cseq.method);
    } catch {
      return undefined;
    }
    return this.byKey.get(key);
  }

  /** Drop every transaction silently (shutdown): no callbacks, no timers left. */
  clear(): void {
    for (const t of this.byKey.values()) if (!(t instanceof AcceptedInvite)) t.dispose();
    this.byKey.clear();
    this.acceptedInvites.clear();
    this.lastAccepted = undefined;
  }
}
