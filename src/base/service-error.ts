// The root of the service's own errors: each has a stable `code` a caller can branch on, and its
// `name` is its class's own (what logs and stack traces show), set here once for all of them.

/** Every code starts with this prefix, so a log reader can tell the service's errors from Node's (`ENOENT`). */
export type ServiceErrorCode = `PCHAT_ERR_${string}`;

export abstract class ServiceError extends Error {
  abstract readonly code: ServiceErrorCode;

  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}
