/**
 * Helpers that run inside a worker's vm context, so the objects and functions
 * the module system hands to worker code (namespaces, `import.meta`,
 * `require`, CommonJS `module` objects, export getters) belong to the
 * worker's realm rather than the host's: `ns.constructor`, `require
 * instanceof Function` and friends then behave as they would in a real
 * Worker, and don't lead straight back to the host's `Function`. (This
 * narrows, but doesn't close, the ways out of the sandbox: see README.)
 */
import vm from "node:vm";

type Getter = () => unknown;
type AnyFunction = (...args: any[]) => any;

export interface RealmHelpers {
  /** An empty, null-prototype object to become a namespace */
  namespace(): object;
  /** Defines a namespace's exports (names sorted), tags it and seals it */
  defineExports(namespace: object, names: string[], getters: Getter[]): void;
  /** A getter always returning `value` */
  constant(value: unknown): Getter;
  /** A getter reading `object[key]` */
  property(object: object, key: PropertyKey): Getter;
  /** An empty, null-prototype object to hold a module's import accessors */
  imports(): object;
  /** Setter for import accessors: imported bindings are constant */
  readonlySetter: (value: unknown) => never;
  /** A module's `import.meta` */
  meta(url?: string): object;
  /** The `__mf_runtime__` object a transformed module uses */
  runtime(
    init: AnyFunction,
    dynamicImport: (specifier: string) => Promise<object>,
    meta: object
  ): object;
  /**
   * An error of the worker's realm standing for a host one: the same
   * constructor by name (Error for others, keeping their name), message,
   * stack and code
   */
  adoptError(name: string, message: string, stack: string | undefined, code: unknown): Error;
  /** Wraps a host `require` implementation */
  require(hostRequire: (specifier: string) => unknown): AnyFunction;
  /** A fresh CommonJS `module` object */
  commonJsModule(): { exports: unknown };
  /**
   * Miniflare 2's `require()` result without `export_commonjs_default`: an
   * object whose enumerable `default` getter reads the module's exports
   */
  commonJsNamespace(get: Getter): object;
}

const helpersScript = new vm.Script(
  `(function (toStringTag) {
  "use strict";
  // Take intrinsics from syntax, not from globals, which the global scope
  // may replace with host values
  const ObjectConstructor = ({}).constructor;
  const { create, defineProperty, freeze, preventExtensions, getOwnPropertyDescriptor, is, keys } = ObjectConstructor;
  const globalObject = globalThis;
  // Captured before any worker code runs, so these are the realm's own
  const errorConstructors = { __proto__: null, Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
  const isObject = (value) => (typeof value === "object" && value !== null) || typeof value === "function";
  const ProxyConstructor = Proxy;
  const ReflectObject = Reflect;
  // A namespace is an exotic object (ECMA-262 10.4.6): a Proxy whose target
  // holds every export as a non-configurable data property (so the Proxy's
  // invariants hold), the values coming from the exporting modules' getters,
  // which throw a ReferenceError while a binding is uninitialised
  const targets = new WeakMap();
  const exportsOf = new WeakMap();
  function describe(exports, key) {
    const get = exports.get(key);
    if (get === undefined) return undefined;
    return { value: get(), writable: true, enumerable: true, configurable: false };
  }
  function namespaceHandler(exports) {
    return {
      getPrototypeOf: () => null,
      setPrototypeOf: (target, proto) => proto === null,
      isExtensible: (target) => ReflectObject.isExtensible(target),
      preventExtensions: (target) => (preventExtensions(target), true),
      getOwnPropertyDescriptor(target, key) {
        if (typeof key === "symbol") return getOwnPropertyDescriptor(target, key);
        return describe(exports, key);
      },
      defineProperty(target, key, desc) {
        if (typeof key === "symbol") return ReflectObject.defineProperty(target, key, desc);
        const current = describe(exports, key);
        if (current === undefined) return false;
        if (desc.configurable === true || desc.enumerable === false) return false;
        if ("get" in desc || "set" in desc) return false;
        if (desc.writable === false) return false;
        if ("value" in desc) return is(desc.value, current.value);
        return true;
      },
      has(target, key) {
        if (typeof key === "symbol") return ReflectObject.has(target, key);
        return exports.has(key);
      },
      get(target, key) {
        if (typeof key === "symbol") return target[key];
        const get = exports.get(key);
        return get === undefined ? undefined : get();
      },
      set: () => false,
      deleteProperty(target, key) {
        if (typeof key === "symbol") return ReflectObject.deleteProperty(target, key);
        return !exports.has(key);
      },
      ownKeys: (target) => ReflectObject.ownKeys(target),
    };
  }
  return freeze({
    namespace() {
      const target = create(null);
      const exports = new Map();
      const namespace = new ProxyConstructor(target, namespaceHandler(exports));
      targets.set(namespace, target);
      exportsOf.set(namespace, exports);
      return namespace;
    },
    defineExports(namespace, names, getters) {
      const target = targets.get(namespace);
      const exports = exportsOf.get(namespace);
      for (let i = 0; i < names.length; i++) {
        exports.set(names[i], getters[i]);
        defineProperty(target, names[i], { value: undefined, writable: true, enumerable: true, configurable: false });
      }
      defineProperty(target, toStringTag, { value: "Module" });
      preventExtensions(target);
    },
    constant: (value) => () => value,
    property: (object, key) => () => object[key],
    imports: () => create(null),
    readonlySetter() {
      throw new TypeError("Assignment to constant variable.");
    },
    meta(url) {
      const meta = create(null);
      if (url !== undefined) meta.url = url;
      return meta;
    },
    runtime: (init, dynamicImport, meta) => freeze({
      init: (getters, defaultFunction) => init(getters, defaultFunction),
      // import() converts its specifier to a string, then checks its
      // options, rejecting (with V8's messages) on failure. No import
      // attribute is supported: JSON modules are refused, as by Workers
      import: async (specifier, options) => {
        const string = \`\${specifier}\`;
        if (options !== undefined) {
          if (!isObject(options)) throw new TypeError("The second argument to import() must be an object");
          const attributes = options.with;
          if (attributes !== undefined) {
            if (!isObject(attributes)) throw new TypeError("The 'with' option must be an object");
            // (index loops: user code may have replaced Array iterators)
            const names = keys(attributes);
            const values = [];
            for (let i = 0; i < names.length; i++) {
              const value = attributes[names[i]];
              if (typeof value !== "string") throw new TypeError("Import attribute value must be a string");
              values[i] = value;
            }
            if (names.length > 0) {
              throw new TypeError(\`Import attribute "\${names[0]}" with value "\${values[0]}" is not supported\`);
            }
          }
        }
        return dynamicImport(string);
      },
      // \`arguments\` at a module's top level is looked up on the global object
      globalArguments(forTypeof) {
        if ("arguments" in globalObject) return globalObject.arguments;
        if (forTypeof) return undefined;
        throw new ReferenceError("arguments is not defined");
      },
      meta,
    }),
    adoptError(name, message, stack, code) {
      const Constructor = errorConstructors[name] ?? errorConstructors.Error;
      const error = new Constructor(message);
      if (error.name !== name) defineProperty(error, "name", { value: name, writable: true, configurable: true });
      if (stack !== undefined) defineProperty(error, "stack", { value: stack, writable: true, configurable: true });
      if (code !== undefined) error.code = code;
      return error;
    },
    require: (hostRequire) => function require(specifier) {
      return hostRequire(specifier);
    },
    commonJsModule: () => ({ exports: {} }),
    commonJsNamespace: (get) => defineProperty({}, "default", { get, enumerable: true }),
  });
})`,
  { filename: "<miniflare:modules>" }
);

export interface Realm {
  readonly context: vm.Context;
  readonly helpers: RealmHelpers;
}

export function createRealm(context: vm.Context): Realm {
  const helpers = helpersScript.runInContext(context)(Symbol.toStringTag);
  return { context, helpers };
}
