import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { BindingsPlugin, Fetcher, kWranglerBindings } from "../../../src/plugins/bindings/plugin.js";
import { MiniflareCoreError } from "../../../src/plugins/core/errors.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, type PluginContext } from "../../../src/shared/plugin.js";
import { Request, Response } from "../../../src/standards/index.js";
import { assertRejectsMiniflare } from "../../helpers/errors.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";
import { ADD_WASM } from "../../helpers/wasm.js";
import { readWranglerConfig } from "../../../src/core/wrangler.js";
import { getPluginEntries, splitWranglerConfig, splitPluginOptions } from "../../../src/core/options.js";
import { HostRegistry } from "../../../src/shared/registry.js";

function pluginContext(rootPath: string, log = new TestLog()): PluginContext {
  return { log, compat: new Compatibility(), rootPath, registry: new HostRegistry() };
}

test("BindingsPlugin: parses options from wrangler config", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
[vars]
A = "a"
N = 42
B = true
[wasm_modules]
WASM = "add.wasm"
[text_blobs]
TEXT = "text.txt"
[data_blobs]
DATA = "data.bin"
[miniflare]
env_path = ".env.test"
[miniflare.globals]
G = "g"
`,
  });
  const log = new TestLog();
  const config = await readWranglerConfig(path.join(tmp, "wrangler.toml"));
  const entries = getPluginEntries({ BindingsPlugin });
  const options = splitWranglerConfig(entries, splitPluginOptions(entries, {}), config, tmp, log);
  assert.deepEqual(options.BindingsPlugin, {
    envPath: ".env.test",
    [kWranglerBindings]: { A: "a", N: "42", B: "true" },
    globals: { G: "g" },
    wasmBindings: { WASM: "add.wasm" },
    textBlobBindings: { TEXT: "text.txt" },
    dataBlobBindings: { DATA: "data.bin" },
  });
});

test("BindingsPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(getPluginEntries({ BindingsPlugin }), log, {
    BindingsPlugin: {
      envPath: ".env.test",
      [kWranglerBindings]: { A: "a" },
      bindings: { B: "b", C: "c" },
      globals: { G: "g" },
      wasmBindings: { WASM: "add.wasm" },
      textBlobBindings: { TEXT: "text.txt" },
      dataBlobBindings: { DATA: "data.bin" },
      serviceBindings: { SERVICE: "other" },
    },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), [
    "Options:",
    "- Env Path: .env.test",
    "- Wrangler Variables: A",
    "- Custom Bindings: B, C",
    "- Custom Globals: G",
    "- WASM Bindings: WASM",
    "- Text Blob Bindings: TEXT",
    "- Data Blob Bindings: DATA",
    "- Service Bindings: SERVICE",
  ]);
});

test("BindingsPlugin: loads bindings from all sources, in priority order", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    ".env": "ENV=env\nOVERRIDE=env\n",
    "add.wasm": ADD_WASM,
    "text.txt": "text ✓",
    "data.bin": new Uint8Array([1, 2, 3]),
  });
  const plugin = new BindingsPlugin(pluginContext(tmp), {
    [kWranglerBindings]: { VAR: "var", OVERRIDE: "var" },
    envPath: true,
    wasmBindings: { WASM: "add.wasm" },
    textBlobBindings: { TEXT: "text.txt", OVERRIDE: "text.txt" },
    dataBlobBindings: { DATA: "data.bin" },
    bindings: { CUSTOM: "custom", TEXT: "custom" },
    globals: { GLOBAL: 1 },
  });
  const result = await plugin.setup();
  const bindings = result.bindings!;
  assert.equal(bindings.VAR, "var");
  assert.equal(bindings.ENV, "env");
  assert.equal(bindings.OVERRIDE, "text ✓"); // text blob beats .env beats vars
  assert.ok(bindings.WASM instanceof WebAssembly.Module);
  const instance = new WebAssembly.Instance(bindings.WASM);
  assert.equal((instance.exports.add as (a: number, b: number) => number)(2, 3), 5);
  assert.equal(bindings.TEXT, "custom"); // custom bindings win
  assert.ok(bindings.DATA instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(bindings.DATA)], [1, 2, 3]);
  assert.equal(bindings.CUSTOM, "custom");
  assert.deepEqual(result.globals, { GLOBAL: 1 });
  assert.deepEqual(
    new Set(result.watch),
    new Set(["add.wasm", "text.txt", "data.bin", ".env"].map((f) => path.join(tmp, f)))
  );
});

test("BindingsPlugin: missing default .env is ignored, explicit path throws", async (t) => {
  const tmp = await useTmp(t);
  let plugin = new BindingsPlugin(pluginContext(tmp), { envPath: true });
  assert.deepEqual((await plugin.setup()).bindings, {});
  plugin = new BindingsPlugin(pluginContext(tmp), { envPathDefaultFallback: true });
  assert.equal(plugin.envPath, true);
  plugin = new BindingsPlugin(pluginContext(tmp), { envPath: "missing.env" });
  await assert.rejects(plugin.setup(), { code: "ENOENT" });
});

test("BindingsPlugin: bindings are globals in service-worker mode and env in modules mode", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { ".env": "SECRET=shh" });
  const sw = useMiniflare(t, {
    rootPath: tmp,
    envPath: true,
    bindings: { KEY: "value" },
    globals: { GREETING: "hi" },
    script: 'addEventListener("fetch", (e) => e.respondWith(new Response(`${GREETING} ${KEY} ${SECRET}`)))',
  });
  assert.equal(await (await sw.dispatchFetch("http://localhost/")).text(), "hi value shh");

  const modules = useMiniflare(t, {
    rootPath: tmp,
    envPath: true,
    modules: true,
    bindings: { KEY: "value" },
    globals: { GREETING: "hi" },
    script: `export default { fetch(req, env) {
      let error;
      try { KEY; } catch (e) { error = e; }
      return new Response(\`\${GREETING} \${env.KEY} \${env.SECRET} \${error.constructor.name}: \${error.message}\`);
    } }`,
  });
  assert.equal(
    await (await modules.dispatchFetch("http://localhost/")).text(),
    "hi value shh ReferenceError: KEY is not defined.\nAttempted to access binding using global in modules.\nYou must use the 2nd `env` parameter passed to exported handlers/Durable Object constructors, or `context.env` with Pages Functions."
  );
});

test("BindingsPlugin: service binding to a function", async (t) => {
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    modules: true,
    serviceBindings: {
      async CUSTOM(request: Request) {
        return new Response(`custom ${request.url}`);
      },
    },
    script: 'export default { fetch: (req, env) => env.CUSTOM.fetch("http://host/path") }',
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "custom http://host/path");
  assert.ok(
    log.logsAtLevel(LogLevel.WARN).includes(
      "Service bindings are experimental. There may be breaking changes in the future."
    )
  );
  const { CUSTOM } = await mf.getBindings();
  assert.ok(CUSTOM instanceof Fetcher);
  await assert.rejects(CUSTOM.fetch.call({}, "http://x/"), new TypeError("Illegal invocation"));
});

test("BindingsPlugin: service binding to an unknown worker throws ERR_SERVICE_NOT_MOUNTED", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    serviceBindings: { AUTH: "auth" },
    script: "export default { fetch: () => new Response() }",
  });
  await assertRejectsMiniflare(
    mf.getPlugins(),
    MiniflareCoreError,
    "ERR_SERVICE_NOT_MOUNTED",
    'Service "auth" for binding "AUTH" not found.\nMake sure "auth" is mounted so Miniflare knows where to find it.'
  );
});

test("BindingsPlugin: parses wrangler services and their errors", async () => {
  const log = new TestLog();
  const config = {
    services: [{ binding: "A", service: "a", environment: "dev" }],
    experimental_services: [{ name: "B", service: "b" }],
  };
  const entries = getPluginEntries({ BindingsPlugin });
  const options = splitWranglerConfig(entries, { BindingsPlugin: {} }, config, "", log);
  assert.deepEqual(options.BindingsPlugin.serviceBindings, {
    A: { service: "a", environment: "dev" },
    B: { service: "b", environment: undefined },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Using the `experimental_services` key is deprecated. This key should be renamed to `services`.",
    'Service "b" declared using deprecated syntax.\nThe `name` key should be removed and renamed to `binding`.',
  ]);
  assert.throws(
    () => splitWranglerConfig(entries, { BindingsPlugin: {} }, { services: [{ service: "c" }] }, "", log),
    (e: any) =>
      e instanceof MiniflareCoreError &&
      e.code === "ERR_SERVICE_NO_NAME" &&
      e.message === 'Service "c" declared with neither `binding` nor `name` keys.\nThe `binding` key should be used to define binding names.'
  );
  assert.throws(
    () =>
      splitWranglerConfig(
        entries,
        { BindingsPlugin: {} },
        { services: [{ service: "d", name: "X", binding: "Y" }] },
        "",
        log
      ),
    (e: any) => e instanceof MiniflareCoreError && e.code === "ERR_SERVICE_NAME_MISMATCH"
  );
});

test("BindingsPlugin: wrangler vars are stringified and .env beats them", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": '[vars]\nNUM = 1\nSHARED = "vars"\n',
    ".env": "SHARED=env\n",
    "worker.js": 'addEventListener("fetch", (e) => e.respondWith(new Response(`${typeof NUM}:${NUM}:${SHARED}`)))',
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    envPathDefaultFallback: true,
    scriptPath: "worker.js",
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "string:1:env");
});
