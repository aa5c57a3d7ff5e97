import { createRequire } from "node:module";

type Polyfill = typeof import("urlpattern-polyfill/urlpattern").URLPattern;
// Exported loosely typed: the published types then don't need the polyfill
// (it is bundled, not a dependency)
type URLPatternClass = new (...args: any[]) => object;

const require = createRequire(import.meta.url);
let loaded: Polyfill | undefined;
function load(): Polyfill {
  return (loaded ??= require("urlpattern-polyfill/urlpattern").URLPattern);
}

/**
 * The `URLPattern` global: the polyfill, loaded when a worker first uses it
 * (it costs ~6ms to load, a few percent of a cold start). Constructing,
 * statics, `prototype` and `instanceof` all go to the real class.
 */
export const URLPattern: URLPatternClass = new Proxy(function URLPattern() {} as unknown as URLPatternClass, {
  construct(_target, args, newTarget): object {
    const Real = load();
    // `new URLPattern(...)` reaches here with newTarget = the proxy
    return Reflect.construct(Real, args, newTarget === URLPattern ? Real : newTarget);
  },
  apply() {
    throw new TypeError("Class constructor URLPattern cannot be invoked without 'new'");
  },
  get(_target, key) {
    return Reflect.get(load(), key);
  },
  has(_target, key) {
    return Reflect.has(load(), key);
  },
  getPrototypeOf() {
    return Reflect.getPrototypeOf(load());
  },
});
