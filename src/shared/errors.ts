/**
 * Base class of every host-side Miniflare error. The `name` carries the code
 * so it shows in stack traces, e.g. `MiniflareCoreError [ERR_NO_SCRIPT]`.
 * Errors thrown *to worker code* (KV validation, etc.) are plain
 * `TypeError`/`Error`s instead, with the production messages.
 */
export class MiniflareError<
  Code extends string | number = string | number,
> extends Error {
  readonly code: Code;
  declare readonly cause?: Error;

  constructor(code: Code, message?: string, cause?: Error) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.name = `${new.target.name} [${code}]`;
  }
}

/**
 * Returns a view of `error` whose `stack` starts with `prefix: `, used to log
 * causes ("Cause: ...") without mutating the original error.
 */
export function prefixError(prefix: string, error: any): Error {
  if (error?.stack) {
    return new Proxy(error, {
      get(target, key, receiver) {
        if (key === "stack") return `${prefix}: ${target.stack}`;
        return Reflect.get(target, key, receiver);
      },
    });
  }
  return error;
}
