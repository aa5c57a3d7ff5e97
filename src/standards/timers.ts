/**
 * Timers, `scheduler` and `AbortSignal.timeout`.
 *
 * Outside a request, timers throw unless `globalTimers` is set, and timer
 * callbacks are only delivered once the current input gate is open (so a
 * Durable Object doesn't see a timer fire in the middle of a storage
 * operation).
 */
import { assertInRequest } from "../shared/context.js";
import { waitForOpenInputGate } from "../shared/sync/gate.js";
import { DOMException } from "./domexception.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

/** Wraps `func` so it throws outside a request context if `assert` is set */
export function assertsInRequest<F extends AnyFunction>(func: F, assert: boolean): F {
  if (!assert) return func;
  return ((...args: Parameters<F>): ReturnType<F> => {
    assertInRequest();
    return func(...args);
  }) as F;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TimerFunction<Handle> = (callback: any, ms?: number, ...args: any[]) => Handle;

/**
 * Wraps `setTimeout` or `setInterval`: throws outside a request if
 * `blockGlobalTimers` is set, and delays each callback until the input gate
 * is open. A missing callback is passed through so Node reports it.
 */
export function createTimer<Handle>(
  func: TimerFunction<Handle>,
  blockGlobalTimers = false
): TimerFunction<Handle> {
  return (callback, ms, ...args) => {
    if (blockGlobalTimers) assertInRequest();
    const gated =
      typeof callback === "function"
        ? async (...callbackArgs: unknown[]) => {
            await waitForOpenInputGate();
            callback(...callbackArgs);
          }
        : callback;
    return func(gated, ms, ...args);
  };
}

function integerParameterError(method: string, type: string): TypeError {
  return new TypeError(
    `Failed to execute '${method}' on '${type}': parameter 1 is not of type 'integer'.`
  );
}

// `AbortSignal.timeout()` is (re)defined process-wide, as in Miniflare 2: it
// rejects a missing argument the way the Workers runtime does, and aborts
// with the default "AbortError" reason.
AbortSignal.timeout = function timeout(ms: number): AbortSignal {
  if (arguments.length === 0) throw integerParameterError("timeout", "AbortSignal");
  const controller = new AbortController();
  // Ref'd, as Miniflare 2's: code awaiting the abort keeps the process alive
  setTimeout(() => controller.abort(), ms);
  return controller.signal;
};

export interface SchedulerWaitOptions {
  signal?: AbortSignal;
}

/** The `scheduler` global: `await scheduler.wait(ms)` */
export class Scheduler {
  readonly #blockGlobalTimers: boolean;

  constructor(blockGlobalTimers = false) {
    this.#blockGlobalTimers = blockGlobalTimers;
  }

  wait(ms?: number, options?: SchedulerWaitOptions): Promise<void> {
    if (this.#blockGlobalTimers) assertInRequest();
    if (arguments.length === 0) throw integerParameterError("wait", "Scheduler");
    return new Promise((resolve, reject) => {
      const signal = options?.signal;
      const onAbort = () => {
        clearTimeout(timeout);
        reject(new DOMException("The operation was aborted", "AbortError"));
      };
      const timeout = setTimeout(() => {
        // Don't leave a listener per call on a long-lived signal
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
