// Changes to endpoints.yaml as the operator commands make them: find an entry by identity, plan the
// edit, check the whole result against the schema, and only then write it, under the edit lock.
import { dirname } from 'node:path';
import { aorKeyFromText } from '../sip/uri.js';
import { domainNameKey } from '../endpoints/domain-name.js';
import { withFileLock, writeFileAtomic, type AtomicWriteHooks } from './atomic-file.js';
import { DEFAULT_READ_TIMEOUT, MAX_FILE_SIZE_CEILING, readConfigFile } from './config-file.js';
import { ConfigError } from './errors.js';
import { checkEndpointsConfig } from './load.js';
import type { EndpointConfig, EndpointsConfig, PoolConfig } from './schema.js';
import { applyYamlEdits, type YamlEdit } from './yaml-edit.js';
import { ServiceError } from '../base/service-error.js';

/** Why an edit was not made, with a stable code the command line turns into an exit code. */
export class EditError extends ServiceError {
  constructor(
    readonly code: 'PCHAT_ERR_EDIT_NOT_FOUND' | 'PCHAT_ERR_EDIT_CONFLICT',
    message: string,
  ) {
    super(message);
  }
}

/** The file as it stands, validated: what a plan is made from. */
export interface CurrentFile {
  readonly file: string;
  readonly text: string;
  readonly config: EndpointsConfig;
}

export interface EditPlan {
  readonly edits: readonly YamlEdit[];
  /** One line for the operator: what the edit does. */
  readonly summary: string;
}

export interface EditResult {
  readonly before: string;
  readonly after: string;
  readonly summary: string;
  /** The validated configuration after the edit (what the service will load). */
  readonly config: EndpointsConfig;
  readonly written: boolean;
  /** False when the file had to be re-rendered as a whole (its comments kept, its layout normalised). */
  readonly preservedLayout: boolean;
}

export interface EditOptions {
  /** Plan and validate, print, but never write. */
  readonly whatIf: boolean;
  readonly lockTimeoutMs: number;
  readonly hooks?: AtomicWriteHooks;
}

/** Reads and validates the endpoints file; throws ConfigError when it is refused. */
export async function readEndpointsFile(file: string): Promise<CurrentFile> {
  // The service's read rules, so a FIFO or device in its place fails the command instead of hanging
  // it; the size is the operator's to choose in server.yaml, so only its ceiling applies here.
  const text = await readConfigFile(file, {
    maxFileSize: MAX_FILE_SIZE_CEILING,
    timeoutMs: DEFAULT_READ_TIMEOUT,
    root: dirname(file),
  });
  if (typeof text !== 'string') throw new ConfigError([text]);
  return { file, text, config: checkEndpointsConfig(text, file).config };
}

/**
 * Makes one planned edit under the lock: the file is read, planned against, validated and replaced
 * while no other edit can come between. A result the schema refuses throws ConfigError and writes nothing.
 */
export async function editEndpointsFile(
  file: string,
  opts: EditOptions,
  plan: (current: CurrentFile) => EditPlan,
): Promise<EditResult> {
  const run = async (): Promise<EditResult> => {
    const current = await readEndpointsFile(file);
    const { edits, summary } = plan(current);
    const { text: after, preservedLayout } = applyYamlEdits(current.text, edits);
    const { config } = checkEndpointsConfig(after, file);
    const written = !opts.whatIf && after !== current.text;
    if (written) await writeFileAtomic(file, after, opts.hooks ?? {});
    return { before: current.text, after, summary, config, written, preservedLayout };
  };
  // What-if takes no lock: it writes nothing, so it cannot lose anyone's change.
  return opts.whatIf ? run() : withFileLock(file, opts.lockTimeoutMs, run);
}

/** The index of the endpoint `identity` names: its SIP address (any case), else its display name. */
export function findEndpoint(config: EndpointsConfig, identity: string): number {
  const key = /^sips?:/i.test(identity) ? aorKeyFromText(identity) : undefined;
  if (key !== undefined) {
    const index = config.endpoints.findIndex((e) => aorKeyFromText(e.sipAddress) === key);
    if (index >= 0) return index;
    throw new EditError('PCHAT_ERR_EDIT_NOT_FOUND', `no endpoint with address ${identity}`);
  }
  const byName = config.endpoints
    .map((e, i) => ({ e, i }))
    .filter(({ e }) => e.displayName !== undefined && e.displayName.toLowerCase() === identity.toLowerCase());
  if (byName.length === 1) return byName[0]!.i;
  if (byName.length > 1) {
    throw new EditError(
      'PCHAT_ERR_EDIT_CONFLICT',
      `display name "${identity}" is shared by ${byName.map(({ e }) => e.sipAddress).join(', ')}: name one by its SIP address`,
    );
  }
  throw new EditError('PCHAT_ERR_EDIT_NOT_FOUND', `no endpoint with address or display name "${identity}"`);
}

/** The index of the pool `fqdn` under pools, or -1 when it is only used by endpoints (or unknown). */
export function findPool(config: EndpointsConfig, fqdn: string): number {
  const key = domainNameKey(fqdn);
  return config.pools.findIndex((p: PoolConfig) => domainNameKey(p.fqdn) === key);
}

/** Whether any endpoint leads to the pool `fqdn`. */
export function poolInUse(config: EndpointsConfig, fqdn: string): boolean {
  const key = domainNameKey(fqdn);
  return config.endpoints.some((e: EndpointConfig) => domainNameKey(e.poolFqdn) === key);
}
