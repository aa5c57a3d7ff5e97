import { setImmediate, setTimeout as setTimeoutPromise } from "node:timers/promises";

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason?: unknown) => void;
}

/** A promise together with the functions that settle it */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets `turns` event-loop iterations pass (each one a setImmediate), so any
 * work that is ready to run has run. Used to assert something has *not*
 * happened yet without relying on wall-clock durations.
 */
export async function flushTurns(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await setImmediate();
}

/** Tracks whether a promise has settled yet */
export function track<T>(promise: Promise<T>): { readonly settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true)
  );
  return state;
}

/**
 * `promise`, or a failure naming `what` if it hasn't settled within `ms`.
 * Only a generous bound for a test that would otherwise hang: the wait ends
 * with the event. The pending timer also keeps the event loop alive while
 * the awaited work waits on unref'd timers (e.g. real-time alarms).
 */
export async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms}ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until `condition()` holds (or resolves true), checking it every
 * event-loop turn at first, then every few milliseconds: for things that
 * have no event to wait on (a counter, a log line, a socket's state). `ms`
 * only bounds a failure, naming `what`.
 */
export async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let checks = 1; !(await condition()); checks++) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms}ms`);
    // Every turn at first; then every few milliseconds, so a long wait
    // doesn't spin a core the awaited work (a child process, say) needs
    if (checks < 50) await setImmediate();
    else await setTimeoutPromise(Math.min(checks - 49, 10));
  }
}

/**
 * Resolves once a timer set now for `ms` has fired. Node fires timers of the
 * same delay in the order they were set, so a timer under test set earlier
 * for `ms` has fired (or was cancelled) by then, however slow the machine:
 * a test waits for "the timer would have fired", not a guessed duration.
 */
export function timerDue(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits, without assuming a duration, until `Date.now()` has moved past `since` */
export async function timeMovesOn(since = Date.now()): Promise<void> {
  while (Date.now() <= since) await setImmediate();
}
