/**
 * Makes reading a guarded global (see `kGlobalGuards`) inside a worker's
 * context throw the guard's own error, on every Node version.
 *
 * The global scope already defines a throwing getter for each guarded name,
 * and up to Node 20 that was enough: the context's global reads names from
 * the scope object, and the getter's error reached worker code. From Node 22
 * (the new V8 interceptor API), an error thrown by a getter on the scope
 * object is swallowed and the read falls through to the context's own
 * global, so worker code saw V8's bare "KEY is not defined".
 *
 * Errors from the context's own prototype chain do reach worker code, so the
 * getters are also installed on an object inserted between the context's
 * global and its `Object.prototype`. Node 20 still throws from the scope
 * object's getter first; 22 and later throw from this one; the error is the
 * same either way. `typeof KEY` throws as well, as in Miniflare 2.
 */
import vm from "node:vm";
import { type Context, type GlobalGuards, kGlobalGuards } from "../shared/runner.js";

const guardScript = new vm.Script(
  `(function (names, getters) {
  "use strict";
  const ObjectConstructor = ({}).constructor;
  const { create, defineProperty, getPrototypeOf, setPrototypeOf } = ObjectConstructor;
  const guard = create(getPrototypeOf(globalThis));
  for (let i = 0; i < names.length; i++) {
    defineProperty(guard, names[i], { get: getters[i] });
  }
  setPrototypeOf(globalThis, guard);
})`,
  { filename: "<miniflare:guards>" }
);

// Contexts whose guards are in place: the REPL reuses the runner's context
const guardedContexts = new WeakSet<vm.Context>();

/**
 * Installs `globalScope`'s guarded globals in `context` (made from that
 * scope). Does nothing if the scope has none, or if they're already there.
 */
export function defineGlobalGuards(context: vm.Context, globalScope: Context): void {
  const guards: GlobalGuards | undefined = globalScope[kGlobalGuards];
  if (guards === undefined || guards.size === 0) return;
  if (guardedContexts.has(context)) return;
  guardedContexts.add(context);
  guardScript.runInContext(context)([...guards.keys()], [...guards.values()]);
}
