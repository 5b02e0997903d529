// The per-deployment secret (server.yaml `security.secret`): the key of the signatures on our
// Record-Route entries and of the To tags derived for stateless answers. Instances that share it
// verify each other's signatures; without it each process draws a random one (logged at start).

import { createHmac, randomBytes } from 'node:crypto';

export interface DeploymentSecret {
  /** The key bytes (the configured text as UTF-8, or 32 random bytes). */
  readonly key: Buffer;
  /** True when none was configured and a random key was drawn for this process. */
  readonly generated: boolean;
}

export function deploymentSecret(configured: string | undefined): DeploymentSecret {
  if (configured !== undefined) return { key: Buffer.from(configured, 'utf8'), generated: false };
  return { key: randomBytes(32), generated: true };
}

/** HMAC-SHA256 of the parts (joined by NUL, so no two lists give one input), base64url. */
export function mac(key: Buffer, parts: readonly string[], length = 22): string {
  return createHmac('sha256', key).update(parts.join('\u0000')).digest('base64url').slice(0, length);
}
