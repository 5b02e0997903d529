// The seam between the router and the modes. The router parses, matches transactions and runs the
// checks every mode shares (src/modes/shared-checks.ts); then it hands the request to the mode its
// endpoint names, through this interface alone. It names no mode: a mode is a folder under
// src/modes/, a line in src/modes/registry.ts and a fragment of the schema.
//
// A mode has two halves. `decide` is its policy: given the request and the endpoint, what answer,
// or which plan to carry out (data, no socket, no transaction, no timer). `carry` is the native
// engine's execution of that plan. The optional hooks are how the native engine's traffic that names
// no endpoint (in-dialog requests, ACKs of 2xx, CANCEL, responses) reaches the mode that owns it.

import type { Logger } from 'pino';
import type { DecisionFields } from '../base/log.js';
import type { Clock, TimerValues } from '../base/clock.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { SipRequest } from '../sip/message.js';
import type { Via } from '../sip/via.js';
import type { TagFactory } from '../dialog/tags.js';
import type { ClientTransactionTable } from '../transaction/client-transaction-table.js';
import type {
  InviteServerTransaction,
  NonInviteServerTransaction,
} from '../transaction/server-transaction.js';
import type { Source } from '../transport/types.js';

/** An answer of the service's own, sent statelessly by whoever carries the decision out. */
export interface Answer {
  readonly status: number;
  /** The decision's name in the log line and metrics (`redirect`, `no-live-member`, ...). */
  readonly outcome: string;
  readonly reason?: string | undefined;
  /** Extra header lines, each formatted and ending in CRLF (Contact, Retry-After, Allow, ...). */
  readonly extra?: string | undefined;
  readonly endpoint?: Endpoint | undefined;
  /** Logged at warn (with the peer) rather than info. */
  readonly warn?: boolean | undefined;
  readonly handover?: undefined;
}

/**
 * The mode takes the request on. `transaction`: the router creates the server transaction (it
 * absorbs retransmissions and sends the mode's responses); `direct`: the mode answers at once on the
 * request's route and keeps whatever state it needs itself (a UAS dialog's 2xx).
 */
export interface Handover<Plan = unknown> {
  readonly handover: 'transaction' | 'direct';
  /** What `carry` is to do: the mode's own data (pool targets, a forwarding verdict, an endpoint). */
  readonly plan: Plan;
  readonly endpoint?: Endpoint | undefined;
}

export type ModeDecision<Plan = unknown> = Answer | Handover<Plan>;

/** Sends a response on the request's route: a server transaction, or the route itself. */
export interface Responder {
  respond(status: number, data: Buffer | string): void;
}

export type ServerTxn = InviteServerTransaction | NonInviteServerTransaction;

/** One request as the router hands it to a mode. */
export interface Inbound<Txn extends Responder = ServerTxn> {
  readonly req: SipRequest;
  readonly source: Source;
  readonly via: Via;
  readonly txn: Txn;
  /** When the request arrived (performance.now()), for the decision line's latency. */
  readonly t0: number;
  /**
   * The bytes the request was parsed from. With them, a proxied request waiting for its answer
   * keeps only a slim copy and is parsed again if it must go to another member.
   */
  readonly raw?: Buffer;
  /** The server transaction key (RFC 3261 §17.2.3), when the request has a transaction. */
  readonly key?: string;
}

/** Whether a request belongs to a dialog a mode holds (RFC 3261 §12.2.2), and from which flow. */
export type Claim = 'flow' | 'other-flow' | undefined;

/** What every mode is built with: the router's shared services. */
export interface ModeContext {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly serverHeader: string;
  readonly tags: TagFactory;
  /** The per-deployment secret (server.yaml `security.secret`). */
  readonly secret: Buffer;
  /** One decision: its log line and metrics. */
  readonly record: (level: 'info' | 'warn', fields: DecisionFields) => void;
  /** A response whose next Via names the service was dropped as a loop (the router counts them). */
  readonly onResponseLoop: () => void;
}

export interface Mode<Plan = unknown> {
  /** The `mode` value endpoints name it by (endpoints.yaml). */
  readonly name: string;
  /**
   * Sends requests on (RFC 3261 §16): the loop check applies, and Proxy-Require is read rather than
   * Require (§16.3 item 5 against §8.2.2.3).
   */
  readonly forwards: boolean;
  /** Option tags it supports in Require, as a UAS (RFC 3261 §8.2.2.3); none when unset. */
  readonly supported?: ReadonlySet<string> | undefined;
  /** Holds UAS dialogs: an in-dialog request matching none gets 481 (RFC 3261 §12.2.2), not 404. */
  readonly keepsDialogs?: boolean | undefined;
  /** The client transactions its own requests are matched in, when it sends any. */
  readonly clientTxns?: ClientTransactionTable | undefined;

  /** The policy: a request for one of its endpoints, enabled and outside any maintenance window. */
  decide(req: SipRequest, endpoint: Endpoint, source: Source): ModeDecision<Plan>;
  /** The native engine carries a hand-over out; false when it was not taken after all (481). */
  carry(inb: Inbound<Responder>, plan: Plan): boolean;

  // --- traffic that names no endpoint (each hook optional) --------------------------------------
  /** RFC 3261 §16.3 item 4: the request already carries our Via. */
  isLoop?(req: SipRequest): boolean;
  /** A request in one of its dialogs, before any routing by Request-URI. */
  claim?(req: SipRequest, source: Source): Claim;
  /** A claimed request ('flow'), with its server transaction. */
  inDialog?(inb: Inbound): void;
  /** A request that names no endpoint but is in a dialog or carries a Route: what it gets. */
  route?(req: SipRequest, source: Source): ModeDecision<Plan>;
  /** An ACK matching no server transaction (the ACK of a 2xx): true when the mode took it. */
  ack?(req: SipRequest, source: Source): boolean;
  /** A CANCEL for an INVITE server transaction it holds: true when it cancelled work of its own. */
  cancel?(inviteKey: string): boolean;
  /** The service stops: forget what is held without a word to the peers. */
  close?(): void;
}

/** Builds a mode from the router's shared services. */
export type ModeFactory = (ctx: ModeContext) => Mode;
