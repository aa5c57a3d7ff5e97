import { MiniflareError } from "../shared/errors.js";

/**
 * Codes of errors raised while dispatching a fetch event to a worker:
 * - ERR_RESPONSE_TYPE: the handler responded with something other than a
 *   `Response`
 * - ERR_NO_UPSTREAM: `passThroughOnException()` was called, the handler threw,
 *   and there's no upstream to pass the request through to
 * - ERR_NO_HANDLER: no fetch handler was ever registered
 * - ERR_NO_RESPONSE: fetch handlers exist, but none of them responded
 */
export type FetchErrorCode =
  | "ERR_RESPONSE_TYPE"
  | "ERR_NO_UPSTREAM"
  | "ERR_NO_HANDLER"
  | "ERR_NO_RESPONSE";

export class FetchError extends MiniflareError<FetchErrorCode> {}
