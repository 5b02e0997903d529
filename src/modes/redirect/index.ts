// Redirect mode: 302 Moved Temporarily naming the endpoint's pool. Its decision is its whole work:
// the router sends the answer statelessly.

import type { Mode, ModeFactory } from '../mode.js';
import { redirectContact } from './redirect.js';

const REDIRECT: Mode<never> = {
  name: 'redirect',
  forwards: false,
  decide: (_req, endpoint) => ({
    status: 302,
    outcome: 'redirect',
    extra: redirectContact(endpoint),
    endpoint,
  }),
  carry: () => false,
};

/** Redirect needs nothing configured: it is always there. */
export function redirectMode(): ModeFactory {
  return () => REDIRECT;
}
