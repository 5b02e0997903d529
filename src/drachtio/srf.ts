// The part of drachtio-srf the engine uses, typed as the engine reads it. drachtio-srf's own typings
// miss most of what is used here (the raw message, the proxy results, the per-server agents), so
// this file states it once, from drachtio-srf 5.0 (lib/request.js, lib/srf.js, lib/dialog.js).

import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';

/** A request drachtio-server handed over (a network request) or one we sent (srf.request). */
export interface SrfRequest extends EventEmitter {
  readonly method: string;
  readonly uri: string;
  /** The request as drachtio-server received it, text. */
  readonly raw: string;
  readonly body: string;
  readonly source_address: string;
  readonly source_port: string | number;
  /** udp, tcp, tls, ws or wss. */
  readonly protocol: string;
  readonly canceled?: boolean;
  get(name: string): string | undefined;
  has(name: string): boolean;
}

export interface SrfResponse {
  readonly status: number;
  readonly finalResponseSent: boolean;
  send(status: number, reason?: string, opts?: SendOptions, cb?: (err: unknown) => void): void;
  get?(name: string): string | undefined;
}

export interface SendOptions {
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** What srf.proxyRequest resolves with (lib/request.js proxy()). */
export interface ProxyResults {
  readonly connected: boolean;
  readonly finalStatus?: number;
  readonly responses: readonly {
    readonly address: string;
    readonly port: number;
    readonly msgs: readonly { readonly status: number }[];
  }[];
}

export interface ProxyOptions {
  readonly forking: 'sequential';
  readonly recordRoute: boolean;
  readonly provisionalTimeout: string;
  readonly finalTimeout: string;
}

export interface SrfDialog extends EventEmitter {
  readonly sip: { readonly callId: string; readonly localTag: string; readonly remoteTag: string };
  readonly connected: boolean;
  request(opts: { method: string; headers?: Record<string, string>; body?: string }): Promise<SrfResponse>;
  destroy(opts?: { headers?: Record<string, string> }): Promise<unknown>;
}

export interface Srf extends EventEmitter {
  connect(opts: { host: string; port: number; secret: string; reconnect?: { retryMaxDelay?: number } }): void;
  listen(opts: { server: import('node:net').Server; secret: string }): unknown;
  disconnect(): void;
  use(handler: (req: SrfRequest, res: SrfResponse, next: () => void) => void): void;
  use(method: string, handler: (req: SrfRequest, res: SrfResponse, next: () => void) => void): void;
  proxyRequest(req: SrfRequest, destination: string[], opts: ProxyOptions): Promise<ProxyResults>;
  createUAS(
    req: SrfRequest,
    res: SrfResponse,
    opts: { localSdp?: string; headers?: Record<string, string> },
  ): Promise<SrfDialog>;
  /**
   * Sends a request outside any dialog. The callback runs as the request is handed to
   * drachtio-server, before any response can be emitted; a listener added after awaiting the
   * promise form can miss a response that comes in the same read as the send's confirmation.
   */
  request(
    uri: string,
    opts: { method: string; headers?: Record<string, string>; body?: string },
    callback: (err: unknown, req: SrfRequest) => void,
  ): void;
  /** Asks drachtio-server to send no new requests of this method (lib/srf.js). */
  unregisterForMessages(method: string): void;
  readonly idle: boolean;
}

type SrfConstructor = new () => Srf;

/** drachtio-srf is CommonJS; loaded once, when the drachtio engine starts. */
export function loadSrf(): SrfConstructor {
  return createRequire(import.meta.url)('drachtio-srf') as SrfConstructor;
}
