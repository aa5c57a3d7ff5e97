import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { LogLevel, VMScriptRunnerError } from "../../src/index.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { ADD_WASM } from "../helpers/wasm.js";

const ASSET_RULES = [
  { type: "Text" as const, include: ["**/*.txt"] },
  { type: "Data" as const, include: ["**/*.bin"] },
  { type: "CompiledWasm" as const, include: ["**/*.wasm"] },
];

test("Miniflare: modules: relative imports from disk", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "src/index.mjs": `import { greet } from "./lib/greet.mjs";
      import * as constants from "../shared/constants.mjs";
      import defaultThing, { named as renamed } from "./lib/greet.mjs";
      export default {
        fetch: () => new Response(greet(constants.NAME) + "|" + defaultThing + "|" + renamed),
      };`,
    "src/lib/greet.mjs": `export function greet(name) { return "hello " + name; }
      export default "default-export";
      export const named = "named-export";`,
    "shared/constants.mjs": `export const NAME = "world";`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "src/index.mjs") });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "hello world|default-export|named-export");
});

test("Miniflare: modules: scriptPath relative to rootPath", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { v } from "./v.mjs"; export default { fetch: () => new Response(v) };`,
    "v.mjs": `export const v = "relative";`,
  });
  const mf = useMiniflare(t, { modules: true, rootPath: tmp, scriptPath: "worker.mjs" });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "relative");
});

test("Miniflare: modules: Text, Data and CompiledWasm module rules", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import text from "./assets/message.txt";
      import data from "./assets/bytes.bin";
      import wasm from "./assets/add.wasm";
      export default {
        async fetch() {
          const instance = await WebAssembly.instantiate(wasm);
          return Response.json({
            text,
            textType: typeof text,
            dataIsArrayBuffer: data instanceof ArrayBuffer,
            data: [...new Uint8Array(data)],
            wasmIsModule: wasm instanceof WebAssembly.Module,
            sum: instance.exports.add(40, 2),
          });
        },
      };`,
    "assets/message.txt": "hello from a text module",
    "assets/bytes.bin": new Uint8Array([1, 2, 3, 255]),
    "assets/add.wasm": ADD_WASM,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    modulesRules: ASSET_RULES,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    text: "hello from a text module",
    textType: "string",
    dataIsArrayBuffer: true,
    data: [1, 2, 3, 255],
    wasmIsModule: true,
    sum: 42,
  });
});

test("Miniflare: modules: CommonJS modules via the default rules and require", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import lib from "./lib/index.js";
      import cjs from "./lib/other.cjs";
      export default { fetch: () => Response.json({ lib, cjs }) };`,
    "lib/index.js": `const helper = require("./helper.cjs");
      exports.fromIndex = "index";
      exports.helper = helper.value;
      exports.sameRequire = require("./helper.cjs") === helper;`,
    "lib/helper.cjs": `module.exports = { value: "helper" };`,
    "lib/other.cjs": `module.exports = "other";`,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    compatibilityDate: "2022-10-31",
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    lib: { fromIndex: "index", helper: "helper", sameRequire: true },
    cjs: "other",
  });
});

test("Miniflare: modules: requiring an ES module from CommonJS fails with ERR_CJS_MODULE_UNSUPPORTED", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import lib from "./lib.js"; export default { fetch: () => new Response(String(lib)) };`,
    "lib.js": `module.exports = require("./esm.mjs");`,
    "esm.mjs": `export const x = 1;`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    VMScriptRunnerError,
    "ERR_CJS_MODULE_UNSUPPORTED",
    /CommonJS modules cannot require ES modules/
  );
});

test("Miniflare: modules: dynamic import()", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { counter } from "./static.mjs";
      export default {
        async fetch(request) {
          const name = new URL(request.url).searchParams.get("m");
          const mod = await import("./dynamic/" + name + ".mjs");
          const again = await import("./static.mjs");
          return Response.json({ value: mod.value, same: again.counter === counter });
        },
      };`,
    "static.mjs": `export const counter = {};`,
    "dynamic/a.mjs": `export const value = "dynamic a";`,
    "dynamic/b.mjs": `import { counter } from "../static.mjs"; export const value = "dynamic b " + typeof counter;`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/?m=a")).json(), {
    value: "dynamic a",
    same: true,
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/?m=b")).json(), {
    value: "dynamic b object",
    same: true,
  });
});

test("Miniflare: modules: top-level await", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { config } from "./config.mjs";
      const greeting = await Promise.resolve("awaited");
      export default { fetch: () => new Response(greeting + " " + config) };`,
    "config.mjs": `export const config = await new Promise((resolve) => queueMicrotask(() => resolve("config")));`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "awaited config");
  const exports = await mf.getModuleExports();
  assert.equal(typeof exports.default.fetch, "function");
});

test("Miniflare: modules: cyclic imports", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { a, callB } from "./a.mjs";
      export default { fetch: () => new Response(a() + "," + callB()) };`,
    "a.mjs": `import { b } from "./b.mjs";
      export function a() { return "a"; }
      export function callB() { return b(); }`,
    "b.mjs": `import { a } from "./a.mjs";
      export function b() { return "b+" + a(); }`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "a,b+a");
});

test("Miniflare: modules: an import from a string script fails with ERR_MODULE_STRING_SCRIPT", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `import text from "./file.txt"; export default {};`,
    modulesRules: ASSET_RULES,
  });
  await assertRejectsMiniflare(
    mf.getModuleExports(),
    VMScriptRunnerError,
    "ERR_MODULE_STRING_SCRIPT",
    'Unable to resolve "<script>" dependency "./file.txt": imports unsupported with string script'
  );
});

test("Miniflare: modules: a string script with scriptPath can import relative files", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "dep.mjs": `export const dep = "dep";` });
  const mf = useMiniflare(t, {
    modules: true,
    script: `import { dep } from "./dep.mjs"; export default { fetch: () => new Response(dep) };`,
    scriptPath: path.join(tmp, "virtual.mjs"),
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "dep");
});

test("Miniflare: modules: an import matching no rule fails with ERR_MODULE_RULE", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import thing from "./thing.yaml"; export default {};`,
    "thing.yaml": "a: 1",
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  const error = await assertRejectsMiniflare(
    mf.getModuleExports(),
    VMScriptRunnerError,
    "ERR_MODULE_RULE"
  );
  assert.match(
    error.message,
    /dependency "\.\/thing\.yaml": no matching module rules\.\nIf you're trying to import an npm package, you'll need to bundle your Worker first\.$/
  );
});

test("Miniflare: modules: a rule with fallthrough: false finalises its type", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import text from "./a.txt"; export default { fetch: () => new Response(text) };`,
    "a.txt": "text",
    "b.md": "markdown",
  });
  // Text only for *.md: the later Text rule for *.txt is ignored
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    modulesRules: [
      { type: "Text", include: ["**/*.md"] },
      { type: "Text", include: ["**/*.txt"] },
    ],
  });
  await assertRejectsMiniflare(mf.getModuleExports(), VMScriptRunnerError, "ERR_MODULE_RULE");
  // With fallthrough, later rules of the same type still apply
  const fallthrough = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    modulesRules: [
      { type: "Text", include: ["**/*.md"], fallthrough: true },
      { type: "Text", include: ["**/*.txt"] },
    ],
  });
  assert.equal(await (await fallthrough.dispatchFetch("http://localhost/")).text(), "text");
});

test("Miniflare: modules: bundle size in the Worker reloaded info log (bytes)", async (t) => {
  const tmp = await useTmp(t);
  const entry = `import { a } from "./a.mjs"; export default { fetch: () => new Response(a) };`;
  const dep = `export const a = "a";`;
  await writeFiles(tmp, { "worker.mjs": entry, "a.mjs": dep });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  await mf.getPlugins();
  const size = Buffer.byteLength(entry) + Buffer.byteLength(dep);
  assert.ok(size < 512);
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [`Worker reloaded! (${size}B)`]);
});

test("Miniflare: modules: bundle size counts each referenced module once", async (t) => {
  const tmp = await useTmp(t);
  const entry = `import "./a.mjs"; import "./b.mjs"; import text from "./t.txt"; export default {};`;
  const a = `import "./shared.mjs"; export const a = 1;`;
  const b = `import "./shared.mjs"; export const b = 2;`;
  const shared = `export const shared = "shared";`;
  const text = "0123456789";
  await writeFiles(tmp, {
    "worker.mjs": entry,
    "a.mjs": a,
    "b.mjs": b,
    "shared.mjs": shared,
    "t.txt": text,
  });
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    modulesRules: ASSET_RULES,
  });
  await mf.getModuleExports();
  const size = [entry, a, b, shared, text].reduce((n, s) => n + Buffer.byteLength(s), 0);
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [`Worker reloaded! (${size}B)`]);
});

test("Miniflare: modules: bundle sizes from 512 bytes are shown in KiB", async (t) => {
  const tmp = await useTmp(t);
  // 600 bytes: Miniflare 2 switches to KiB at 0.5KiB, with two decimals
  const entry = `export default {};\n//` + "x".repeat(600 - 21);
  assert.equal(Buffer.byteLength(entry), 600);
  await writeFiles(tmp, { "worker.mjs": entry });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  await mf.getPlugins();
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), ["Worker reloaded! (0.59KiB)"]);
});

test("Miniflare: modules: bundle sizes from 512KiB are shown in MiB", async (t) => {
  const tmp = await useTmp(t);
  const entry = `export default {};\n//` + "x".repeat(600 * 1024 - 21);
  await writeFiles(tmp, { "worker.mjs": entry });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  await mf.getPlugins();
  // 614400 / 1048576 = 0.5859375
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), ["Worker reloaded! (0.59MiB)"]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("Miniflare: modules: bundles over 1MiB log a size warning", async (t) => {
  const tmp = await useTmp(t);
  const entry = `export default {};\n//` + "x".repeat(1024 * 1024 + 100);
  await writeFiles(tmp, { "worker.mjs": entry });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  await mf.getPlugins();
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Worker's uncompressed size exceeds the 1MiB limit! Note that your worker will be compressed during upload so you may still be able to deploy it.",
  ]);
});

test("Miniflare: modules: service-worker bundle size is the script size", async (t) => {
  const log = new TestLog();
  const script = `addEventListener("fetch", (e) => e.respondWith(new Response("")));`;
  const mf = useMiniflare(t, { log, script });
  await mf.getPlugins();
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [`Worker reloaded! (${Buffer.byteLength(script)}B)`]);
});

test("Miniflare: modules: getModuleExports returns the entry module's exports", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `export const named = "named";
      export let counter = 0;
      export function increment() { counter++; }
      export { reexported } from "./other.mjs";
      export default { fetch: () => new Response("default") };`,
    "other.mjs": `export const reexported = "other";`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  const exports = await mf.getModuleExports();
  assert.deepEqual(Object.keys(exports).sort(), [
    "counter",
    "default",
    "increment",
    "named",
    "reexported",
  ]);
  assert.equal(exports.named, "named");
  assert.equal(exports.reexported, "other");
  assert.equal(typeof exports.default.fetch, "function");
  assert.equal(exports.counter, 0);
  exports.increment();
  assert.equal(exports.counter, 1); // live binding
});

test("Miniflare: modules: getModuleExports is empty for service workers", async (t) => {
  const mf = useMiniflare(t, { script: `addEventListener("fetch", () => {});` });
  assert.deepEqual({ ...(await mf.getModuleExports()) }, {});
});

test("Miniflare: modules: each reload re-evaluates modules in a new context", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { state } from "./state.mjs";
      export default { fetch: () => new Response(String(++state.count)) };`,
    "state.mjs": `export const state = { count: 0 };`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "1");
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "2");
  await writeFiles(tmp, { "state.mjs": `export const state = { count: 100 };` });
  await mf.reload();
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "101");
});
