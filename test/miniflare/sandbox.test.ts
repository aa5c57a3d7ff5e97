import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { ADD_WASM } from "../helpers/wasm.js";

const WASM_BYTES = `new Uint8Array([${ADD_WASM.join(",")}])`;

test("Miniflare: sandbox: eval throws EvalError inside the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { eval("1 + 1"); return new Response("allowed"); }
     catch (e) { return Response.json([e instanceof EvalError, e.name, e.message]); }`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), [
    true,
    "EvalError",
    "Code generation from strings disallowed for this context",
  ]);
});

test("Miniflare: sandbox: new Function throws EvalError inside the worker", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      let result;
      try { new Function("return 1"); result = "allowed"; }
      catch (e) { result = [e instanceof EvalError, e.name, e.message]; }
      event.respondWith(Response.json(result));
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), [
    true,
    "EvalError",
    "Code generation from strings disallowed for this context",
  ]);
});

test("Miniflare: sandbox: eval is refused at the top level of the script too", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `let result;
      try { eval("1"); result = "allowed"; } catch (e) { result = e.name; }
      export { result };
      export default {};`,
  });
  assert.equal((await mf.getModuleExports()).result, "EvalError");
});

test("Miniflare: sandbox: new WebAssembly.Module(bytes) is refused inside the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { new WebAssembly.Module(${WASM_BYTES}); return new Response("compiled"); }
     catch (e) { return Response.json([e.name, e.message]); }`
  );
  const [name, message] = await (await mf.dispatchFetch("http://localhost/")).json() as [string, string];
  assert.equal(name, "CompileError");
  assert.match(message, /disallowed/);
});

test("Miniflare: sandbox: WebAssembly.compile(bytes) is refused inside the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { await WebAssembly.compile(${WASM_BYTES}); return new Response("compiled"); }
     catch (e) { return Response.json([e.name, e.message]); }`
  );
  const [name, message] = await (await mf.dispatchFetch("http://localhost/")).json() as [string, string];
  assert.equal(name, "CompileError");
  assert.match(message, /disallowed/);
});

test("Miniflare: sandbox: a wasm binding is a WebAssembly.Module that instantiates", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "add.wasm": ADD_WASM });
  const { mf } = useMiniflareWithHandler(
    t,
    `const isModule = env.ADD instanceof WebAssembly.Module;
     const instance = new WebAssembly.Instance(env.ADD);
     const { instance: instance2 } = await WebAssembly.instantiate(env.ADD).then((i) => ({ instance: i }));
     return Response.json([isModule, instance.exports.add(1, 2), instance2.exports.add(20, 22)]);`,
    { rootPath: tmp, wasmBindings: { ADD: "add.wasm" } }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), [true, 3, 42]);
});

test("Miniflare: sandbox: a wasm binding in service-worker format is a global Module", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "add.wasm": ADD_WASM });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    wasmBindings: { ADD: "add.wasm" },
    script: `addEventListener("fetch", (event) => {
      const instance = new WebAssembly.Instance(ADD);
      event.respondWith(new Response(String(ADD instanceof WebAssembly.Module) + ":" + instance.exports.add(2, 3)));
    });`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "true:5");
});

test("Miniflare: sandbox: a CompiledWasm module is a WebAssembly.Module that instantiates", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import wasm from "./add.wasm";
      export default {
        fetch() {
          const instance = new WebAssembly.Instance(wasm);
          return Response.json([wasm instanceof WebAssembly.Module, instance.exports.add(4, 5)]);
        },
      };`,
    "add.wasm": ADD_WASM,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), [true, 9]);
});

test("Miniflare: sandbox: values from outside pass instanceof checks inside", async (t) => {
  class Custom {}
  const { mf } = useMiniflareWithHandler(
    t,
    `return Response.json({
       array: env.ARR instanceof Array,
       isArray: Array.isArray(env.ARR),
       object: env.OBJ instanceof Object,
       error: env.ERR instanceof Error,
       typeError: env.ERR instanceof TypeError,
       rangeError: env.ERR instanceof RangeError,
       fn: env.FN instanceof Function,
       fnObject: env.FN instanceof Object,
       promise: env.PROMISE instanceof Promise,
       regexp: env.RE instanceof RegExp,
       arrayIsObject: env.ARR instanceof Object,
       notArray: env.OBJ instanceof Array,
       notError: env.OBJ instanceof Error,
       customIsObject: env.CUSTOM instanceof Object,
       primitive: 1 instanceof Object,
       nullProto: Object.create(null) instanceof Object,
       inside: [] instanceof Array && new TypeError() instanceof Error,
     });`,
    {
      bindings: {
        ARR: [1],
        OBJ: {},
        ERR: new TypeError("x"),
        FN: () => {},
        PROMISE: Promise.resolve(),
        RE: /x/,
        CUSTOM: new Custom(),
      },
    }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    array: true,
    isArray: true,
    object: true,
    error: true,
    typeError: true,
    rangeError: false,
    fn: true,
    fnObject: true,
    promise: true,
    regexp: true,
    arrayIsObject: true,
    notArray: false,
    notError: false,
    customIsObject: true,
    primitive: false,
    nullProto: false,
    inside: true,
  });
});

test("Miniflare: sandbox: service-worker bindings pass instanceof checks as globals", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => event.respondWith(Response.json([
      ARR instanceof Array, OBJ instanceof Object, ERR instanceof Error, ERR instanceof TypeError, ERR instanceof RangeError,
    ])));`,
    bindings: { ARR: [1], OBJ: {}, ERR: new TypeError("x") },
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), [
    true,
    true,
    true,
    true,
    false,
  ]);
});

test("Miniflare: sandbox: MINIFLARE, self, global and globalThis", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => event.respondWith(Response.json({
      MINIFLARE: MINIFLARE === true,
      self: self === globalThis,
      global: global === globalThis,
      selfAddEventListener: self.addEventListener === addEventListener,
      listeners: [typeof removeEventListener, typeof dispatchEvent],
    })));`,
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    MINIFLARE: true,
    self: true,
    global: true,
    selfAddEventListener: true,
    listeners: ["function", "function"],
  });
  const globalScope = await mf.getGlobalScope();
  assert.equal(globalScope.MINIFLARE, true);
  assert.equal(globalScope.self, globalScope);
});

test("Miniflare: sandbox: modules see the same global scope objects", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export const values = [MINIFLARE, self === globalThis, global === globalThis, typeof addEventListener];
      export default {};`,
  });
  assert.deepEqual([...(await mf.getModuleExports()).values], [true, true, true, "function"]);
});

// §2.1: always present, whatever the compatibility date
const ALWAYS = {
  object: [
    "console",
    "scheduler",
    "Math",
    "crypto",
    "Atomics",
    "WebAssembly",
  ],
  function: [
    "setTimeout",
    "setInterval",
    "clearTimeout",
    "clearInterval",
    "queueMicrotask",
    "atob",
    "btoa",
    "CryptoKey",
    "TextDecoder",
    "TextEncoder",
    "fetch",
    "Headers",
    "Request",
    "Response",
    "FormData",
    "Blob",
    "File",
    "URL",
    "URLSearchParams",
    "URLPattern",
    "ReadableStream",
    "WritableStream",
    "TransformStream",
    "ReadableStreamBYOBReader",
    "ReadableStreamDefaultReader",
    "WritableStreamDefaultWriter",
    "ByteLengthQueuingStrategy",
    "CountQueuingStrategy",
    "IdentityTransformStream",
    "FixedLengthStream",
    "CompressionStream",
    "DecompressionStream",
    "TextEncoderStream",
    "TextDecoderStream",
    "Event",
    "EventTarget",
    "AbortController",
    "AbortSignal",
    "FetchEvent",
    "ScheduledEvent",
    "DOMException",
    "WorkerGlobalScope",
    "structuredClone",
    "Date",
    "ArrayBuffer",
    "BigInt64Array",
    "BigUint64Array",
    "DataView",
    "Float32Array",
    "Float64Array",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Map",
    "Set",
    "SharedArrayBuffer",
    "Uint8Array",
    "Uint8ClampedArray",
    "Uint16Array",
    "Uint32Array",
    "WeakMap",
    "WeakSet",
    "Object",
    "Function",
    "Array",
    "Promise",
    "RegExp",
    "Error",
    "TypeError",
  ],
  // Node-only globals that must not leak into the worker
  undefined: ["process", "require", "Buffer", "setImmediate", "module", "exports", "__dirname"],
};

const CONDITIONAL = [
  "navigator",
  "Navigator",
  "ReadableByteStreamController",
  "ReadableStreamBYOBRequest",
  "ReadableStreamDefaultController",
  "WritableStreamDefaultController",
  "TransformStreamDefaultController",
];

function typeofScript(names: string[]): string {
  return `globalThis.TYPES = {};
    for (const name of ${JSON.stringify(names)}) TYPES[name] = typeof globalThis[name];
    addEventListener("fetch", (event) => event.respondWith(Response.json(TYPES)));`;
}

test("Miniflare: sandbox: the global scope contains the standard globals", async (t) => {
  const names = [...ALWAYS.object, ...ALWAYS.function, ...ALWAYS.undefined];
  const mf = useMiniflare(t, { script: typeofScript(names) });
  const types = (await (await mf.dispatchFetch("http://localhost/")).json()) as Record<string, string>;
  const expected: Record<string, string> = {};
  for (const [type, list] of Object.entries(ALWAYS)) for (const name of list) expected[name] = type;
  assert.deepEqual(types, expected);
});

test("Miniflare: sandbox: conditional globals depend on the compatibility date", async (t) => {
  const before = useMiniflare(t, { script: typeofScript(CONDITIONAL), compatibilityDate: "2021-01-01" });
  assert.deepEqual(
    await (await before.dispatchFetch("http://localhost/")).json(),
    Object.fromEntries(CONDITIONAL.map((name) => [name, "undefined"]))
  );
  const after = useMiniflare(t, { script: typeofScript(CONDITIONAL), compatibilityDate: "2022-11-30" });
  assert.deepEqual(await (await after.dispatchFetch("http://localhost/")).json(), {
    navigator: "object",
    Navigator: "function",
    ReadableByteStreamController: "function",
    ReadableStreamBYOBRequest: "function",
    ReadableStreamDefaultController: "function",
    WritableStreamDefaultController: "function",
    TransformStreamDefaultController: "function",
  });
});

test("Miniflare: sandbox: globals from getGlobalScope() match those inside", async (t) => {
  const mf = useMiniflare(t, { script: "// empty" });
  const globalScope = await mf.getGlobalScope();
  for (const name of ["fetch", "Request", "Response", "crypto", "console", "atob", "scheduler"]) {
    assert.notEqual(globalScope[name], undefined, name);
  }
  assert.equal(typeof globalScope.addEventListener, "function");
  assert.equal(globalScope.process, undefined);
});

test("Miniflare: sandbox: each reload gets a fresh global scope", async (t) => {
  const mf = useMiniflare(t, {
    script: `globalThis.count = (globalThis.count ?? 0) + 1;
      addEventListener("fetch", (event) => event.respondWith(new Response(String(count))));`,
  });
  const first = await mf.getGlobalScope();
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "1");
  await mf.reload();
  const second = await mf.getGlobalScope();
  assert.notEqual(first, second);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "1");
});

test("Miniflare: sandbox: worker globals don't leak into the host", async (t) => {
  const mf = useMiniflare(t, {
    script: `globalThis.LEAKED_FROM_WORKER = true; Array.prototype.leaked = true;`,
  });
  await mf.getPlugins();
  assert.equal((globalThis as any).LEAKED_FROM_WORKER, undefined);
  assert.equal((Array.prototype as any).leaked, undefined);
});

test("Miniflare: sandbox: URLPattern works, including subclasses and instanceof", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch() {
      const pattern = new URLPattern({ pathname: "/books/:id" });
      const match = pattern.exec("https://example.com/books/123");
      class Sub extends URLPattern {}
      const sub = new Sub({ pathname: "/x" });
      let callError;
      try { URLPattern({ pathname: "/" }); } catch (e) { callError = e.constructor.name; }
      return Response.json({
        id: match.pathname.groups.id,
        test: pattern.test("https://a.com/books/1"),
        instance: pattern instanceof URLPattern,
        subInstance: sub instanceof URLPattern && sub instanceof Sub,
        name: URLPattern.name,
        callError,
      });
    } }`,
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    id: "123",
    test: true,
    instance: true,
    subInstance: true,
    name: "URLPattern",
    callError: "TypeError",
  });
});
