// Every error class of the service derives from one base: a stable `PCHAT_ERR_` code to branch on,
// and a `name` that is the class's own, as logs and stack traces show it. The classes are found by
// importing every module of src/, so a new one that is not under the base fails here.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/base/service-error.js';
import { EditError } from '../../src/config/endpoints-editor.js';
import { LockTimeoutError } from '../../src/config/atomic-file.js';
import { ConfigError } from '../../src/config/errors.js';
import { XccosError } from '../../src/modes/lookup/xccos.js';
import { SessionTimerSyntaxError } from '../../src/modes/lookup/session-timer.js';
import { SipParseError } from '../../src/sip/errors.js';
import { CliError, EXIT } from '../../src/cli/exit-codes.js';
import { PoolError, PoolOptionError, PoolResolutionError } from '../../src/pool/errors.js';
import { CertificateError } from '../../src/transport/certificates.js';
import { TransportUnavailableError } from '../../src/transport/outbound.js';
import { IllegalTransitionError } from '../../src/transaction/server-transaction.js';
import { DuplicateTransactionError } from '../../src/transaction/client-transaction-table.js';
import { ClientTransactionArgumentError } from '../../src/transaction/client-transaction.js';

const SRC = join(import.meta.dirname, '../../src');

/** Modules that run as a program when imported: the command line and the worker threads' entries (*-worker.ts). */
const ENTRY_POINTS = new Set(['cli/main.ts', 'config/check-worker.ts']);

type ErrorClass = abstract new (...args: never[]) => Error;

/** One instance of each exported error class, as the code that throws it would make it. */
const samples = new Map<ErrorClass, () => Error>([
  [EditError, () => new EditError('PCHAT_ERR_EDIT_NOT_FOUND', 'no such endpoint')],
  [LockTimeoutError, () => new LockTimeoutError('endpoints.yaml', 10)],
  [ConfigError, () => new ConfigError([])],
  [XccosError, () => new XccosError('PCHAT_ERR_XCCOS_MALFORMED_XML', 'bad body')],
  [SessionTimerSyntaxError, () => new SessionTimerSyntaxError('Bad Session-Expires header')],
  [SipParseError, () => new SipParseError('Bad Request')],
  [CliError, () => new CliError(EXIT.usage, 'bad flag')],
  [PoolError, () => new PoolError('PCHAT_ERR_POOL_BAD_OPTION', 'bad option')],
  [PoolResolutionError, () => new PoolResolutionError('pcpool.contoso.com', new Error('SERVFAIL'))],
  [PoolOptionError, () => new PoolOptionError('bad option')],
  [CertificateError, () => new CertificateError('no key')],
  [TransportUnavailableError, () => new TransportUnavailableError('no tls listener')],
  [IllegalTransitionError, () => new IllegalTransitionError('Completed -> Trying')],
  [DuplicateTransactionError, () => new DuplicateTransactionError('z9hG4bK1')],
  [ClientTransactionArgumentError, () => new ClientTransactionArgumentError('no branch')],
]);

function sourceFiles(): string[] {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.split('\\').join('/'))
    .sort();
}

function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === 'function' && value.prototype instanceof Error;
}

/** Every error class src/ exports, with the module it was found in (first one, for re-exports). */
const exported = new Map<ErrorClass, string>();

beforeAll(async () => {
  for (const file of sourceFiles()) {
    if (ENTRY_POINTS.has(file) || file.endsWith('-worker.ts')) continue;
    const mod = (await import(pathToFileURL(join(SRC, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      if (isErrorClass(value) && value !== ServiceError && !exported.has(value)) exported.set(value, file);
    }
  }
}, 60_000);

describe('ServiceError', () => {
  it('finds the error classes src/ exports', () => {
    // The enumeration itself must work: these are known to be there.
    expect(exported.get(SipParseError)).toBe('sip/errors.ts');
    expect(exported.get(ConfigError)).toBe('config/errors.ts');
    expect(exported.size).toBeGreaterThanOrEqual(samples.size);
  });

  it('every exported error class derives from ServiceError and has a sample here', () => {
    const outside = [...exported].filter(([c]) => !(c.prototype instanceof ServiceError));
    expect(outside.map(([c, file]) => `${c.name} (${file})`)).toEqual([]);
    const unchecked = [...exported].filter(([c]) => !samples.has(c));
    expect(
      unchecked.map(([c, file]) => `${c.name} (${file}): add a sample above`),
      'every error class is checked below',
    ).toEqual([]);
  });

  it.each([...samples].map(([c, make]) => [c.name, make] as const))(
    '%s is a ServiceError named after its class, with a PCHAT_ERR_ code',
    (name, make) => {
      const err = make();
      expect(err).toBeInstanceOf(ServiceError);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe(name);
      expect((err as ServiceError).code).toMatch(/^PCHAT_ERR_[A-Z0-9_]+$/);
      expect(String(err.stack)).toContain(name);
    },
  );

  it('no class in src/ extends a built-in error but ServiceError itself', () => {
    // Classes not exported cannot be imported above; the compiler holds them to a PCHAT_ERR_ code and
    // the base gives them their name, as long as they extend ServiceError and not Error directly.
    const builtIns = Object.getOwnPropertyNames(globalThis).filter(
      (n) => n === 'Error' || isErrorClass((globalThis as Record<string, unknown>)[n]),
    );
    const direct = new RegExp(`class\\s+(\\w+)\\s+extends\\s+(?:${builtIns.join('|')})\\b`, 'g');
    const found: string[] = [];
    for (const file of sourceFiles()) {
      const text = readFileSync(join(SRC, file), 'utf8');
      for (const m of text.matchAll(direct)) found.push(`${file}: ${m[1]}`);
    }
    expect(found).toEqual(['base/service-error.ts: ServiceError']);
  });

  it('refuses, at compile time, a code without the prefix', () => {
    class Unprefixed extends ServiceError {
      // @ts-expect-error a code must start with PCHAT_ERR_
      readonly code = 'UNPREFIXED';
    }
    // At run time the class still works; `npm run typecheck` is what refuses it.
    expect(new Unprefixed('x').name).toBe('Unprefixed');
  });

  it('keeps the cause it was given', () => {
    const cause = new Error('SERVFAIL');
    expect(new PoolResolutionError('pcpool.contoso.com', cause).cause).toBe(cause);
  });
});
