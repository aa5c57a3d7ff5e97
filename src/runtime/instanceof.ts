/**
 * Cross-realm `instanceof` for worker contexts.
 *
 * Each worker runs in its own vm context, which is a separate realm with its
 * own `Object`, `Array`, `Error`, ... But many values worker code sees are
 * made by the host realm: the arrays, objects and promises returned by
 * bindings (KV list results, `fetch()`, `request.json()`), errors thrown by
 * Miniflare's implementations of Workers APIs. In a real Worker there is one
 * realm, so code like `value instanceof Array`, `body instanceof Object` or
 * `catch (e) { if (e instanceof TypeError) ... }` works, and libraries rely
 * on it (lodash, zod, itty-router...). Across realms, plain `instanceof`
 * would say no, since the host's `Array.prototype` is not the context's.
 *
 * So in each context, `Object`, `Function`, `Array`, `Promise`, `RegExp`
 * and `Error` get a `Symbol.hasInstance` that also accepts instances of the
 * matching host constructor. `EvalError`, `RangeError`, `ReferenceError`,
 * `SyntaxError`, `TypeError` and `URIError` inherit Error's (their
 * constructors' prototype is `Error`); the method looks at `this` to pick
 * the host counterpart, so a host TypeError is `instanceof TypeError` and
 * `instanceof Error`, but not `instanceof RangeError`. Classes declared by
 * worker code inherit the method too, but have no host counterpart, so for
 * them it's the ordinary check. Counterparts are matched by identity, not
 * by name, so a worker class called "TypeError" gets no special treatment.
 *
 * What this doesn't fix: `value.constructor === Array` or
 * `Object.getPrototypeOf(value) === Object.prototype` are still false for
 * host values, and host code checking context values with host classes
 * still fails (pass Node's classes in as globals if that matters).
 */
import vm from "node:vm";

const HOST_CONSTRUCTORS: [string, AnyConstructor][] = Object.entries({
  Object,
  Function,
  Array,
  Promise,
  RegExp,
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
});

type AnyConstructor = abstract new (...args: any[]) => unknown;

const PATCHED = ["Object", "Function", "Array", "Promise", "RegExp", "Error"];

const defineHasInstancesScript = new vm.Script(
  `(function (hostConstructors, patched, hasInstanceSymbol) {
  "use strict";
  const ObjectConstructor = ({}).constructor;
  const { defineProperty, getPrototypeOf, hasOwn } = ObjectConstructor;
  const global = globalThis;

  // [context constructor, host constructor] pairs. A global that already is
  // the host's constructor (passed in as a custom global) needs no pairing,
  // and mustn't be patched: that would change the host's own instanceof.
  const pairs = [];
  for (const [name, host] of hostConstructors) {
    const inside = global[name];
    if (typeof inside === "function" && inside !== host) pairs.push([inside, host]);
  }
  function hostCounterpart(constructor) {
    for (const pair of pairs) if (pair[0] === constructor) return pair[1];
    return undefined;
  }

  // https://tc39.es/ecma262/#sec-ordinaryhasinstance (bound functions
  // never reach here: they don't inherit static methods)
  function ordinaryHasInstance(C, O) {
    if (typeof C !== "function") return false;
    if (O === null || (typeof O !== "object" && typeof O !== "function")) return false;
    const P = C.prototype;
    if (P === null || (typeof P !== "object" && typeof P !== "function")) {
      throw new TypeError("Function has non-object prototype '" + P + "' in instanceof check");
    }
    while ((O = getPrototypeOf(O)) !== null) if (O === P) return true;
    return false;
  }

  // \`this\` is the right-hand side of instanceof: a patched constructor, or
  // anything inheriting from one (Error subclasses, worker classes)
  function hasInstance(value) {
    if (ordinaryHasInstance(this, value)) return true;
    const host = hostCounterpart(this);
    return host !== undefined && ordinaryHasInstance(host, value);
  }

  for (const name of patched) {
    const inside = global[name];
    if (hostCounterpart(inside) === undefined) continue;
    // Define once per context: the property is non-configurable
    if (hasOwn(inside, hasInstanceSymbol)) continue;
    defineProperty(inside, hasInstanceSymbol, { value: hasInstance });
  }
})`,
  { filename: "<miniflare:instanceof>" }
);

/**
 * Makes `instanceof` with the context's `Object`, `Function`, `Array`,
 * `Promise`, `RegExp` and `Error` (and Error's subclasses) accept host
 * instances too. Safe to call more than once for the same context.
 */
export function defineHasInstances(context: vm.Context): void {
  defineHasInstancesScript.runInContext(context)(
    HOST_CONSTRUCTORS,
    PATCHED,
    Symbol.hasInstance
  );
}
