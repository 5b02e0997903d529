// Every error class of the service derives from one base: a stable `code` to branch on, and a
// `name` that is the class's own, as logs and stack traces show it.

import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/base/service-error.js';
import { EditError } from '../../src/config/endpoints-editor.js';
import { LockTimeoutError } from '../../src/config/atomic-file.js';
import { ConfigError } from '../../src/config/errors.js';
import { XccosError } from '../../src/modes/lookup/xccos.js';
import { SessionTimerSyntaxError } from '../../src/modes/lookup/session-timer.js';
import { SipGrammarError } from '../../src/sip/grammar-error.js';
import { SipParseError } from '../../src/sip/errors.js';
import { CliError, EXIT } from '../../src/cli/exit-codes.js';
import { PoolOptionError, PoolResolutionError } from '../../src/pool/errors.js';
import { CertificateError } from '../../src/transport/certificates.js';
import { TransportUnavailableError } from '../../src/transport/outbound.js';
import { IllegalTransitionError } from '../../src/transaction/server-transaction.js';
import { DuplicateTransactionError } from '../../src/transaction/client-transaction-table.js';
import { ClientTransactionArgumentError } from '../../src/transaction/client-transaction.js';

const cases: Array<[string, ServiceError]> = [
  ['EditError', new EditError('NOT_FOUND', 'no such endpoint')],
  ['LockTimeoutError', new LockTimeoutError('endpoints.yaml', 10)],
  ['ConfigError', new ConfigError([])],
  ['XccosError', new XccosError('XCCOS_MALFORMED_XML', 'bad body')],
  ['SessionTimerSyntaxError', new SessionTimerSyntaxError('Bad Session-Expires header')],
  ['SipGrammarError', new SipGrammarError('bad URI')],
  ['SipParseError', new SipParseError('Bad Request')],
  ['CliError', new CliError(EXIT.usage, 'bad flag')],
  ['PoolResolutionError', new PoolResolutionError('pcpool.contoso.com', new Error('SERVFAIL'))],
  ['PoolOptionError', new PoolOptionError('bad option')],
  ['CertificateError', new CertificateError('no key')],
  ['TransportUnavailableError', new TransportUnavailableError('no tls listener')],
  ['IllegalTransitionError', new IllegalTransitionError('Completed -> Trying')],
  ['DuplicateTransactionError', new DuplicateTransactionError('z9hG4bK1')],
  ['ClientTransactionArgumentError', new ClientTransactionArgumentError('no branch')],
];

describe('ServiceError', () => {
  it.each(cases)('%s derives from ServiceError, is named after its class and has a code', (name, err) => {
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe(name);
    expect(err.code).toMatch(/^[A-Za-z_-]+$/);
    expect(String(err.stack)).toContain(name);
  });

  it('keeps the cause it was given', () => {
    const cause = new Error('SERVFAIL');
    expect(new PoolResolutionError('pcpool.contoso.com', cause).cause).toBe(cause);
  });
});
