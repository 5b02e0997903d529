// Where a copy of every SIP message received or sent can be taken (HEP export to Homer or sngrep):
// each link holds its service's hook, and with capture off the hook is empty, so a message costs one
// check. Sends are seen as they leave the link (after TLS or WebSocket framing is taken off, before
// encryption), receives as they reach the router.

import type { Link, Source } from './types.js';

/** Told of each message; must not throw and must not send through the link it is told about. */
export interface MessageTap {
  received(data: Buffer, source: Source): void;
  /** `address` and `port` are where a datagram goes; a connection's own peer otherwise. */
  sent(data: Buffer | string, link: Link, address: string, port: number): void;
}

/** One service's capture switch: set `tap` to start capturing, undefined to stop. */
export class CaptureHook {
  tap: MessageTap | undefined = undefined;
}

/** The hook of links made without one (tests, the trace command): frozen, so it stays off. */
export const NO_CAPTURE: CaptureHook = Object.freeze(new CaptureHook());
