import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { CorePlugin } from "../../../src/plugins/core/plugin.js";
import { MiniflareCoreError } from "../../../src/plugins/core/errors.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions } from "../../../src/shared/plugin.js";
import { STRING_SCRIPT_PATH } from "../../../src/shared/runner.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";
import { HostRegistry } from "../../../src/shared/registry.js";

function createPlugin(
  options: ConstructorParameters<typeof CorePlugin>[1],
  { rootPath = process.cwd(), compat = new Compatibility(), log = new TestLog() } = {}
) {
  return new CorePlugin({ log, compat, rootPath, registry: new HostRegistry() }, options);
}

const entries = getPluginEntries({ CorePlugin });
function fromWrangler(config: WranglerConfig, configDir = "/project") {
  return splitWranglerConfig(entries, splitPluginOptions(entries, {}), config, configDir, new TestLog()).CorePlugin;
}

test("CorePlugin: parses options from wrangler config", () => {
  assert.deepEqual(
    fromWrangler({
      compatibility_date: "2021-11-12",
      compatibility_flags: ["fetch_refuses_unknown_protocols"],
      usage_model: "unbound",
      build: {
        upload: {
          format: "modules",
          dir: "out",
          main: "worker.mjs",
          rules: [{ type: "Text", globs: ["**/*.txt"], fallthrough: true }],
        },
      },
      miniflare: {
        upstream: "https://example.com",
        watch: true,
        update_check: false,
        global_async_io: true,
        global_timers: true,
        global_random: true,
        actual_time: true,
        inaccurate_cpu: true,
      },
    }),
    {
      scriptPath: path.resolve("/project", "out", "worker.mjs"),
      modules: true,
      modulesRules: [{ type: "Text", include: ["**/*.txt"], fallthrough: true }],
      compatibilityDate: "2021-11-12",
      compatibilityFlags: ["fetch_refuses_unknown_protocols"],
      usageModel: "unbound",
      upstream: "https://example.com",
      watch: true,
      updateCheck: false,
      globalAsyncIO: true,
      globalTimers: true,
      globalRandom: true,
      actualTime: true,
      inaccurateCpu: true,
    }
  );
  // build.upload.dir defaults to dist; live_reload implies watch
  assert.deepEqual(fromWrangler({ build: { upload: { main: "w.js" } }, miniflare: { live_reload: true } }), {
    scriptPath: path.resolve("/project", "dist", "w.js"),
    watch: true,
  });
  assert.deepEqual(fromWrangler({ build: { upload: { format: "service-worker" } } }), { modules: false });
});

test("CorePlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, {
    CorePlugin: {
      script: "console.log('hi')",
      scriptPath: "script.js",
      wranglerConfigPath: true,
      wranglerConfigEnv: "dev",
      packagePath: "pkg.json",
      modules: true,
      modulesRules: [{ type: "ESModule", include: ["*.mjs", "*.js"] }, { type: "Text", include: ["*.txt"] }],
      compatibilityDate: "2021-11-12",
      compatibilityFlags: ["a", "b"],
      usageModel: "unbound",
      upstream: "https://example.com",
      watch: true,
      repl: true,
      rootPath: "root",
      fetchMock: {},
      globalAsyncIO: true,
      globalTimers: true,
      globalRandom: true,
      actualTime: true,
      inaccurateCpu: true,
    },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), [
    "Options:",
    "- Script Path: script.js",
    "- Wrangler Config Path: wrangler.toml",
    "- Wrangler Environment: dev",
    "- Package Path: pkg.json",
    "- Modules: true",
    "- Modules Rules: {ESModule: *.mjs, *.js}, {Text: *.txt}",
    "- Compatibility Date: 2021-11-12",
    "- Compatibility Flags: a, b",
    "- Usage Model: unbound",
    "- Upstream: https://example.com",
    "- Watch: true",
    "- REPL: true",
    "- Root Path: root",
    "- Allow Global Async I/O: true",
    "- Allow Global Timers: true",
    "- Allow Global Secure Random: true",
    "- Actual Time: true",
    "- Inaccurate CPU Time Measurements: true",
  ]);
});

test("CorePlugin: processes module rules, user rules first, finalising types", () => {
  const plugin = createPlugin({
    modules: true,
    modulesRules: [
      { type: "Text", include: ["**/*.txt"], fallthrough: true },
      { type: "Text", include: ["**/*.md"] },
      { type: "Text", include: ["**/*.ignored"] },
      { type: "CommonJS", include: ["**/*.cjs2"] },
    ],
  });
  assert.deepEqual(
    plugin.processedModuleRules.map(({ type, include }) => [type, include.toString()]),
    [
      ["Text", "**/*.txt"],
      ["Text", "**/*.md"],
      ["CommonJS", "**/*.cjs2"],
      ["ESModule", "**/*.mjs"],
    ]
  );
  assert.ok(plugin.processedModuleRules[0].include.test("/a/b/c.txt"));
  // Rules only apply in modules mode
  assert.deepEqual(createPlugin({ modulesRules: [{ type: "Text", include: ["*"] }] }).processedModuleRules, []);
});

test("CorePlugin: setup: includes web standards and shared constructors", async () => {
  const plugin = createPlugin({ script: "" });
  const { globals } = await plugin.setup();
  for (const name of [
    "console", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "queueMicrotask",
    "scheduler", "atob", "btoa", "Math", "crypto", "CryptoKey", "TextDecoder", "TextEncoder",
    "fetch", "Headers", "Request", "Response", "FormData", "Blob", "File", "URL",
    "URLSearchParams", "URLPattern", "ReadableStream", "WritableStream", "TransformStream",
    "ReadableStreamBYOBReader", "ReadableStreamDefaultReader", "WritableStreamDefaultWriter",
    "ByteLengthQueuingStrategy", "CountQueuingStrategy", "IdentityTransformStream",
    "FixedLengthStream", "CompressionStream", "DecompressionStream", "TextEncoderStream",
    "TextDecoderStream", "Event", "EventTarget", "AbortController", "AbortSignal", "FetchEvent",
    "ScheduledEvent", "DOMException", "WorkerGlobalScope", "structuredClone", "Date",
    "ArrayBuffer", "Atomics", "BigInt64Array", "BigUint64Array", "DataView", "Float32Array",
    "Float64Array", "Int8Array", "Int16Array", "Int32Array", "Map", "Set", "SharedArrayBuffer",
    "Uint8Array", "Uint8ClampedArray", "Uint16Array", "Uint32Array", "WeakMap", "WeakSet",
    "WebAssembly", "MINIFLARE",
  ]) {
    assert.ok(name in globals!, `missing global ${name}`);
  }
  // Navigator and stream controllers depend on the compatibility date
  assert.equal(globals!.navigator, undefined);
  assert.equal(globals!.ReadableStreamDefaultController, undefined);
  const modern = createPlugin({ script: "" }, { compat: new Compatibility("2022-12-01") });
  const modernGlobals = (await modern.setup()).globals!;
  assert.equal(modernGlobals.navigator.userAgent, "Cloudflare-Workers");
  assert.ok(modernGlobals.ReadableStreamDefaultController);
  assert.ok(modernGlobals.TransformStreamDefaultController);
});

test("CorePlugin: setup: uses string script with <script> or scriptPath as file path", async () => {
  let result = await createPlugin({ script: "code" }).setup();
  assert.deepEqual(result.script, { filePath: STRING_SCRIPT_PATH, code: "code" });
  result = await createPlugin({ script: "code", scriptPath: "/a/b.js" }).setup();
  assert.deepEqual(result.script, { filePath: "/a/b.js", code: "code" });
});

test("CorePlugin: setup: loads script from package.json main or module", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "package.json": JSON.stringify({ main: "sw.js", module: "mod.mjs" }),
    "sw.js": "// sw",
    "mod.mjs": "// mod",
  });
  let result = await createPlugin({ packagePath: true }, { rootPath: tmp }).setup();
  assert.deepEqual(result.script, { filePath: path.join(tmp, "sw.js"), code: "// sw" });
  assert.deepEqual(result.watch, [path.join(tmp, "package.json"), path.join(tmp, "sw.js")]);
  result = await createPlugin({ packagePath: true, modules: true }, { rootPath: tmp }).setup();
  assert.deepEqual(result.script, { filePath: path.join(tmp, "mod.mjs"), code: "// mod" });
  // scriptPath wins over package.json
  result = await createPlugin({ packagePath: true, scriptPath: "sw.js", modules: true }, { rootPath: tmp }).setup();
  assert.equal(result.script?.filePath, path.join(tmp, "sw.js"));
});

test("CorePlugin: setup: missing default package.json is ignored, explicit one throws", async (t) => {
  const tmp = await useTmp(t);
  const result = await createPlugin({ packagePath: true }, { rootPath: tmp }).setup();
  assert.equal(result.script, undefined);
  assert.deepEqual(result.watch, [path.join(tmp, "package.json")]);
  await assert.rejects(createPlugin({ packagePath: "nope.json" }, { rootPath: tmp }).setup(), { code: "ENOENT" });
  await assert.rejects(createPlugin({ scriptPath: "nope.js" }, { rootPath: tmp }).setup(), { code: "ENOENT" });
});

test("CorePlugin: warns about inaccurate CPU and rejects invalid upstream", () => {
  const log = new TestLog();
  createPlugin({ inaccurateCpu: true }, { log });
  assert.match(log.logsAtLevel(LogLevel.WARN)[0], /^CPU time measurements are experimental/);
  assert.throws(
    () => createPlugin({ upstream: "/relative" }),
    (e: any) => e instanceof MiniflareCoreError && e.code === "ERR_INVALID_UPSTREAM"
  );
  assert.equal(createPlugin({ upstream: "https://example.com/a" }).upstreamURL?.href, "https://example.com/a");
});

test("CorePlugin: runs a wrangler.toml project end to end", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
compatibility_date = "2022-12-01"
[vars]
NAME = "wrangler"
[build.upload]
format = "modules"
dir = "src"
main = "index.mjs"
`,
    "src/index.mjs": 'import { greet } from "./greet.mjs"; export default { fetch: (req, env) => new Response(greet(env.NAME) + " " + navigator.userAgent) };',
    "src/greet.mjs": "export const greet = (name) => `hello ${name}`;",
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "hello wrangler Cloudflare-Workers");
});
