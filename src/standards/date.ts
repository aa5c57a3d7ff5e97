/**
 * Frozen time: inside a request, `Date.now()` and `new Date()`
 * return the request context's current time, which only moves on after I/O
 * (see `RequestContext#advanceCurrentTime`). Outside any request, real time
 * is used.
 */
import { getRequestContext } from "../shared/context.js";

// Captured once, so replacing `Date.now` later can't affect us
const realNow = Date.now;

function requestContextNow(): number {
  return getRequestContext()?.currentTime ?? realNow();
}

/**
 * Returns the `Date` constructor for the worker's global scope: the real one
 * if `actualTime` is set, otherwise a proxy of it returning frozen time. The
 * proxy shares `Date.prototype`, so `instanceof` works both ways.
 */
export function createDate(actualTime = false): DateConstructor {
  if (actualTime) return Date;
  const proxy: DateConstructor = new Proxy(Date, {
    construct(target, args, newTarget) {
      // Only `new Date()` with no arguments reads the current time
      const dateArgs = args.length === 0 ? [requestContextNow()] : args;
      // The real class as new.target keeps construction on V8's fast path
      return Reflect.construct(target, dateArgs, newTarget === proxy ? target : newTarget);
    },
    get(target, key, receiver) {
      if (key === "now") return requestContextNow;
      return Reflect.get(target, key, receiver);
    },
  });
  return proxy;
}
