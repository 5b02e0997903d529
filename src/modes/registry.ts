// Every mode, one line each. The order is the order the router asks the modes' hooks: a mode that
// holds dialogs before one that forwards, so the ACK or BYE of a dialog of ours is never sent on.
// `satisfies` makes a mode named in ENDPOINT_MODES without a line here a compile error.

import type { EndpointMode } from '../endpoints/endpoint.js';
import type { ModeFactory } from './mode.js';
import { redirectMode } from './redirect/index.js';
import { lookupMode, type LookupModeOptions } from './lookup/index.js';
import { proxyMode, type ProxyModeOptions } from './proxy/index.js';

/** Each mode's options; a mode whose options are left out is not built (its endpoints get 501). */
export interface ModeOptions {
  readonly lookup?: LookupModeOptions | undefined;
  readonly proxy?: ProxyModeOptions | undefined;
}

const REGISTRY = {
  redirect: () => redirectMode(),
  lookup: (o: ModeOptions) => lookupMode(o.lookup),
  proxy: (o: ModeOptions) => proxyMode(o.proxy),
} satisfies Record<EndpointMode, (options: ModeOptions) => ModeFactory | undefined>;

/** The modes to build, in the registry's order. */
export function buildModes(options: ModeOptions = {}): ModeFactory[] {
  const factories: ModeFactory[] = [];
  for (const make of Object.values(REGISTRY)) {
    const factory = make(options);
    if (factory !== undefined) factories.push(factory);
  }
  return factories;
}
