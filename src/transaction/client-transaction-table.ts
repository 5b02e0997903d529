// Client transactions indexed by their RFC 3261 §17.1.3 matching key, and responses dispatched to them.

import type { SipResponse } from '../sip/message.js';
import type { Clock, TimerValues } from './clock.js';
import { KeyTable } from './key-table.js';
import {
  InviteClientTransaction,
  NonInviteClientTransaction,
  clientTransactionKey,
  type ClientTransaction,
  type ClientTransactionOptions,
  type ForgetHook,
} from './client-transaction.js';

/** A second live transaction on one key: its responses could not be told apart. */
export class DuplicateTransactionError extends Error {
  readonly code = 'TRANSACTION_DUPLICATE_KEY';
}

export type ClientTransactionRequest = Omit<ClientTransactionOptions, 'clock' | 'timers'>;

export class ClientTransactionTable {
  private readonly byKey = new KeyTable<ClientTransaction>();
  private readonly forget: ForgetHook = (t) => {
    this.byKey.deleteIf(t.key, t);
  };

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerValues,
  ) {}

  /** Live transactions, those in Completed (waiting for Timer D or K) included. */
  get size(): number {
    return this.byKey.size;
  }

  /** A new INVITE transaction, registered under its key; the caller then calls start(). */
  createInvite(opts: ClientTransactionRequest): InviteClientTransaction {
    return this.add(new InviteClientTransaction(this.options(opts), this.forget));
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
   * branches are unique across space and time and carry 48 random bits (branch.ts), so no other
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
  match(res: SipResponse): ClientTransaction | undefined {
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
    for (const t of this.byKey.values()) t.dispose();
    this.byKey.clear();
  }
}
