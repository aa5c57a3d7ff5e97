import assert from "node:assert/strict";
import path from "node:path";
import { test, type TestContext } from "node:test";
import {
  BindingsPlugin,
  CorePlugin,
  MiniflareCoreError,
  Request,
  Response,
  type ReloadEvent,
} from "../../src/index.js";
import { LogLevel } from "../../src/shared/log.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { ADD_WASM } from "../helpers/wasm.js";
import { caught } from "./util.js";

/** A modules worker that responds with a JSON description of env and some globals */
const DESCRIBE_MODULES = `export default {
  fetch(request, env) {
    const describe = (value) =>
      value instanceof WebAssembly.Module ? "[WebAssembly.Module]"
      : value instanceof ArrayBuffer ? "[ArrayBuffer " + [...new Uint8Array(value)].join(",") + "]"
      : value !== null && typeof value === "object" && typeof value.fetch === "function" ? "[Fetcher]"
      : value;
    const g = (name) => (typeof globalThis[name] === "undefined" ? null : globalThis[name]);
    return Response.json({
      env: Object.fromEntries(Object.entries(env).map(([key, value]) => [key, describe(value)])),
      globals: { G1: g("G1"), G2: g("G2") },
      navigator: typeof navigator !== "undefined",
    });
  },
};`;

interface Description {
  env: Record<string, unknown>;
  globals: { G1: unknown; G2: unknown };
  navigator: boolean;
}

async function describe(mf: { dispatchFetch(url: string): Promise<Response> }): Promise<Description> {
  return (await (await mf.dispatchFetch("http://localhost/")).json()) as Description;
}

test("Miniflare: options: reload events, initial first, with the plugin instances", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (e) => e.respondWith(new Response(String(VALUE))));`,
    bindings: { VALUE: 1 },
  });
  const events: ReloadEvent<any>[] = [];
  mf.addEventListener("reload", (event) => events.push(event));
  const plugins = await mf.getPlugins();
  assert.equal(events.length, 1);
  assert.equal(events[0].type, "reload");
  assert.equal(events[0].initial, true);
  assert.equal(events[0].plugins, plugins);
  assert.ok(events[0].plugins.CorePlugin instanceof CorePlugin);
  assert.ok(events[0].plugins.BindingsPlugin instanceof BindingsPlugin);

  await mf.setOptions({ bindings: { VALUE: 2 } });
  assert.equal(events.length, 2);
  assert.equal(events[1].initial, false);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "2");

  await mf.reload();
  assert.equal(events.length, 3);
  assert.equal(events[2].initial, false);
});

test("Miniflare: options: removeEventListener stops reload events", async (t) => {
  const mf = useMiniflare(t, { script: "// empty" });
  let count = 0;
  const listener = () => count++;
  mf.addEventListener("reload", listener);
  await mf.getPlugins();
  assert.equal(count, 1);
  mf.removeEventListener("reload", listener);
  await mf.reload();
  assert.equal(count, 1);
});

test("Miniflare: options: setOptions re-creates only the plugins whose options changed", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (e) => e.respondWith(new Response(String(VALUE))));`,
    bindings: { VALUE: "a" },
  });
  const first = { ...(await mf.getPlugins()) };

  // Only BindingsPlugin's options changed
  await mf.setOptions({ bindings: { VALUE: "b" } });
  const second = { ...(await mf.getPlugins()) };
  assert.equal(second.CorePlugin, first.CorePlugin);
  assert.equal(second.BuildPlugin, first.BuildPlugin);
  assert.notEqual(second.BindingsPlugin, first.BindingsPlugin);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "b");

  // Only CorePlugin's options changed; setOptions merges shallowly, so the
  // bindings stay
  await mf.setOptions({
    script: `addEventListener("fetch", (e) => e.respondWith(new Response("new:" + VALUE)));`,
  });
  const third = { ...(await mf.getPlugins()) };
  assert.notEqual(third.CorePlugin, second.CorePlugin);
  assert.equal(third.BindingsPlugin, second.BindingsPlugin);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "new:b");

  // Nothing changed: nothing re-created, but the worker still reloads
  let reloaded = false;
  mf.addEventListener("reload", () => (reloaded = true));
  await mf.setOptions({ bindings: { VALUE: "b" } });
  const fourth = { ...(await mf.getPlugins()) };
  assert.equal(fourth.CorePlugin, third.CorePlugin);
  assert.equal(fourth.BindingsPlugin, third.BindingsPlugin);
  assert.equal(reloaded, true);
});

test("Miniflare: options: reload() re-creates every plugin and re-reads files", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (e) => e.respondWith(new Response("v1:" + TEXT)));`,
    "text.txt": "one",
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    scriptPath: "worker.js",
    textBlobBindings: { TEXT: "text.txt" },
  });
  const before = { ...(await mf.getPlugins()) };
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "v1:one");
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (e) => e.respondWith(new Response("v2:" + TEXT)));`,
    "text.txt": "two",
  });
  await mf.reload();
  const after = await mf.getPlugins();
  for (const name of Object.keys(before) as (keyof typeof before)[]) {
    assert.notEqual(after[name], before[name], name);
  }
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "v2:two");
});

test("Miniflare: options: wrangler.toml vars, build.upload, compatibility_date and globals", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
compatibility_date = "2022-03-21"

[vars]
STRING = "string"
NUMBER = 42
BOOLEAN = true

[build.upload]
format = "modules"
dir = "out"
main = "./worker.mjs"

[miniflare]
globals = { G1 = "global one", G2 = 2 }
`,
    "out/worker.mjs": DESCRIBE_MODULES,
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  assert.deepEqual(await describe(mf), {
    env: { STRING: "string", NUMBER: "42", BOOLEAN: "true" },
    globals: { G1: "global one", G2: 2 },
    navigator: true,
  });
  const plugins = await mf.getPlugins();
  assert.equal(plugins.CorePlugin.modules, true);
  assert.equal(plugins.CorePlugin.compatibilityDate, "2022-03-21");
});

test("Miniflare: options: wrangler.toml build.upload.dir defaults to dist", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `[build.upload]\nformat = "modules"\nmain = "./index.mjs"\n`,
    "dist/index.mjs": `export default { fetch: () => new Response("from dist") };`,
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "from dist");
});

test("Miniflare: options: wrangler.toml at an explicit path, relative to rootPath", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "config/custom.toml": `[vars]\nFROM = "custom"\n[build.upload]\nformat = "modules"\ndir = "."\nmain = "worker.mjs"\n`,
    "config/worker.mjs": DESCRIBE_MODULES,
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: "config/custom.toml" });
  assert.deepEqual((await describe(mf)).env, { FROM: "custom" });
});

test("Miniflare: options: a missing default wrangler.toml is ignored, an explicit one is an error", async (t) => {
  const tmp = await useTmp(t);
  const ok = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    script: `addEventListener("fetch", (e) => e.respondWith(new Response("ok")));`,
  });
  assert.equal(await (await ok.dispatchFetch("http://localhost/")).text(), "ok");
  const missing = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: "missing.toml",
    script: "// empty",
  });
  const error = await caught(() => missing.getPlugins());
  assert.equal(error.code, "ENOENT");
});

test("Miniflare: options: wranglerConfigEnv selects an [env.<name>] section", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
compatibility_date = "2022-03-21"
[vars]
SHARED = "top"
TOP_ONLY = "top"
[build.upload]
format = "modules"
dir = "."
main = "worker.mjs"

[env.staging]
compatibility_date = "2021-01-01"
[env.staging.vars]
SHARED = "staging"
`,
    "worker.mjs": DESCRIBE_MODULES,
  });
  const top = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  assert.deepEqual(await describe(top), {
    env: { SHARED: "top", TOP_ONLY: "top" },
    globals: { G1: null, G2: null },
    navigator: true,
  });
  // The env's tables replace the top-level ones wholesale
  const staging = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    wranglerConfigEnv: "staging",
  });
  assert.deepEqual(await describe(staging), {
    env: { SHARED: "staging" },
    globals: { G1: null, G2: null },
    navigator: false,
  });
  // An unknown env is ignored
  const unknown = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    wranglerConfigEnv: "nope",
  });
  assert.deepEqual((await describe(unknown)).env, { SHARED: "top", TOP_ONLY: "top" });
});

test("Miniflare: options: wrangler.toml build.upload.rules", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
[build.upload]
format = "modules"
dir = "src"
main = "worker.mjs"

[[build.upload.rules]]
type = "Text"
globs = ["**/*.md"]
`,
    "src/worker.mjs": `import readme from "./README.md"; export default { fetch: () => new Response(readme) };`,
    "src/README.md": "# readme",
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "# readme");
});

test("Miniflare: options: wrangler.toml wasm_modules, text_blobs and data_blobs resolve against rootPath", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "config/wrangler.toml": `
[wasm_modules]
WASM = "assets/add.wasm"
[text_blobs]
TEXT = "assets/text.txt"
[data_blobs]
DATA = "assets/data.bin"
`,
    "assets/add.wasm": ADD_WASM,
    "assets/text.txt": "text blob",
    "assets/data.bin": new Uint8Array([7, 8, 9]),
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: "config/wrangler.toml",
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(mf)).env, {
    WASM: "[WebAssembly.Module]",
    TEXT: "text blob",
    DATA: "[ArrayBuffer 7,8,9]",
  });
});

test("Miniflare: options: API options beat wrangler.toml, key by key", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
compatibility_date = "2022-03-21"
[vars]
VAR = "wrangler"
[build.upload]
format = "modules"
dir = "."
main = "worker.mjs"
[miniflare]
globals = { G1 = "wrangler one", G2 = "wrangler two" }
`,
    "worker.mjs": DESCRIBE_MODULES,
    "other.mjs": `export default { fetch: () => new Response("other script") };`,
  });
  const overridden = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    compatibilityDate: "2021-01-01",
    // Object options are replaced, not merged
    globals: { G1: "api one" },
    bindings: { VAR: "api" },
  });
  assert.deepEqual(await describe(overridden), {
    env: { VAR: "api" },
    globals: { G1: "api one", G2: null },
    navigator: false,
  });
  const otherScript = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    scriptPath: "other.mjs",
  });
  assert.equal(await (await otherScript.dispatchFetch("http://localhost/")).text(), "other script");
});

test("Miniflare: options: an explicit undefined unsets the wrangler.toml value", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
compatibility_date = "2022-03-21"
[build.upload]
format = "modules"
dir = "."
main = "worker.mjs"
[miniflare]
globals = { G1 = "wrangler one" }
`,
    "worker.mjs": DESCRIBE_MODULES,
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    compatibilityDate: undefined,
    globals: undefined,
  });
  assert.deepEqual(await describe(mf), {
    env: {},
    globals: { G1: null, G2: null },
    navigator: false,
  });
  assert.equal((await mf.getPlugins()).CorePlugin.compatibilityDate, undefined);
});

test("Miniflare: options: wrangler.toml edits are picked up by reload()", async (t) => {
  const tmp = await useTmp(t);
  const toml = (value: string) =>
    `[vars]\nVALUE = "${value}"\n[build.upload]\nformat = "modules"\ndir = "."\nmain = "worker.mjs"\n`;
  await writeFiles(tmp, { "wrangler.toml": toml("one"), "worker.mjs": DESCRIBE_MODULES });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true });
  assert.deepEqual((await describe(mf)).env, { VALUE: "one" });
  await writeFiles(tmp, { "wrangler.toml": toml("two") });
  await mf.reload();
  assert.deepEqual((await describe(mf)).env, { VALUE: "two" });
});

test("Miniflare: options: package.json main in service-worker format", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "package.json": JSON.stringify({ main: "dist/sw.js", module: "dist/mod.mjs" }),
    "dist/sw.js": `addEventListener("fetch", (e) => e.respondWith(new Response("main")));`,
    "dist/mod.mjs": `export default { fetch: () => new Response("module") };`,
  });
  const sw = useMiniflare(t, { rootPath: tmp, packagePath: true });
  assert.equal(await (await sw.dispatchFetch("http://localhost/")).text(), "main");
  const modules = useMiniflare(t, { rootPath: tmp, packagePath: true, modules: true });
  assert.equal(await (await modules.dispatchFetch("http://localhost/")).text(), "module");
});

test("Miniflare: options: package.json at an explicit path resolves relative to its directory", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "pkg/package.json": JSON.stringify({ main: "worker.js" }),
    "pkg/worker.js": `addEventListener("fetch", (e) => e.respondWith(new Response("pkg main")));`,
  });
  const mf = useMiniflare(t, { rootPath: tmp, packagePath: "pkg/package.json" });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "pkg main");
});

test("Miniflare: options: a missing default package.json is ignored, an explicit one is an error", async (t) => {
  const tmp = await useTmp(t);
  const noScript = useMiniflare(t, { rootPath: tmp, packagePath: true });
  await assertRejectsMiniflare(noScript.getPlugins(), MiniflareCoreError, "ERR_NO_SCRIPT");
  const missing = useMiniflare(t, { rootPath: tmp, packagePath: "missing/package.json" });
  const error = await caught(() => missing.getPlugins());
  assert.equal(error.code, "ENOENT");
});

test("Miniflare: options: script sources in order: script, scriptPath, wrangler main, package.json", async (t) => {
  const tmp = await useTmp(t);
  const respond = (text: string) =>
    `addEventListener("fetch", (e) => e.respondWith(new Response(${JSON.stringify(text)})));`;
  await writeFiles(tmp, {
    "wrangler.toml": `[build.upload]\ndir = "."\nmain = "wrangler.js"\n`,
    "package.json": JSON.stringify({ main: "package.js" }),
    "wrangler.js": respond("wrangler"),
    "package.js": respond("package"),
    "path.js": respond("path"),
  });
  const base = { rootPath: tmp, wranglerConfigPath: true, packagePath: true };
  const all = useMiniflare(t, { ...base, script: respond("script"), scriptPath: "path.js" });
  assert.equal(await (await all.dispatchFetch("http://localhost/")).text(), "script");
  const scriptPath = useMiniflare(t, { ...base, scriptPath: "path.js" });
  assert.equal(await (await scriptPath.dispatchFetch("http://localhost/")).text(), "path");
  const wrangler = useMiniflare(t, base);
  assert.equal(await (await wrangler.dispatchFetch("http://localhost/")).text(), "wrangler");
  const pkg = useMiniflare(t, { rootPath: tmp, packagePath: true });
  assert.equal(await (await pkg.dispatchFetch("http://localhost/")).text(), "package");
});

test("Miniflare: options: .env with envPath true and an explicit path", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    ".env": "FROM_ENV=default file\nQUOTED=\"quoted value\"\n# comment\n",
    "custom.env": "FROM_ENV=custom file\n",
  });
  const defaultPath = useMiniflare(t, {
    rootPath: tmp,
    envPath: true,
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(defaultPath)).env, {
    FROM_ENV: "default file",
    QUOTED: "quoted value",
  });
  const customPath = useMiniflare(t, {
    rootPath: tmp,
    envPath: "custom.env",
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(customPath)).env, { FROM_ENV: "custom file" });
  // Without envPath, .env isn't read
  const none = useMiniflare(t, { rootPath: tmp, modules: true, script: DESCRIBE_MODULES });
  assert.deepEqual((await describe(none)).env, {});
});

test("Miniflare: options: a missing default .env is ignored, a missing explicit one is an error", async (t) => {
  const tmp = await useTmp(t);
  const ignored = useMiniflare(t, {
    rootPath: tmp,
    envPath: true,
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(ignored)).env, {});
  const missing = useMiniflare(t, { rootPath: tmp, envPath: "missing.env", script: "// empty" });
  const error = await caught(() => missing.getBindings());
  assert.equal(error.code, "ENOENT");
  assert.match(error.message, /missing\.env/);
});

test("Miniflare: options: envPathDefaultFallback reads .env unless wrangler.toml sets env_path", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    ".env": "SOURCE=default\n",
    "wrangler-env.env": "SOURCE=wrangler env_path\n",
    "with-env-path.toml": `[miniflare]\nenv_path = "wrangler-env.env"\n`,
    "without.toml": `[vars]\nVAR = "var"\n`,
  });
  const fallback = useMiniflare(t, {
    rootPath: tmp,
    envPathDefaultFallback: true,
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(fallback)).env, { SOURCE: "default" });
  const wranglerWins = useMiniflare(t, {
    rootPath: tmp,
    envPathDefaultFallback: true,
    wranglerConfigPath: "with-env-path.toml",
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(wranglerWins)).env, { SOURCE: "wrangler env_path" });
  const withoutEnvPath = useMiniflare(t, {
    rootPath: tmp,
    envPathDefaultFallback: true,
    wranglerConfigPath: "without.toml",
    modules: true,
    script: DESCRIBE_MODULES,
  });
  assert.deepEqual((await describe(withoutEnvPath)).env, { VAR: "var", SOURCE: "default" });
});

test("Miniflare: options: text, data and wasm bindings from the API", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "text.txt": "héllo text",
    "data.bin": new Uint8Array([0, 1, 255]),
    "add.wasm": ADD_WASM,
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    modules: true,
    script: DESCRIBE_MODULES,
    textBlobBindings: { TEXT: "text.txt" },
    dataBlobBindings: { DATA: "data.bin" },
    wasmBindings: { WASM: "add.wasm" },
  });
  assert.deepEqual((await describe(mf)).env, {
    WASM: "[WebAssembly.Module]",
    TEXT: "héllo text",
    DATA: "[ArrayBuffer 0,1,255]",
  });
  const bindings = await mf.getBindings();
  assert.equal(bindings.TEXT, "héllo text");
  assert.equal(bindings.DATA.byteLength, 3);
});

test("Miniflare: options: a missing blob file is an error", async (t) => {
  const tmp = await useTmp(t);
  const mf = useMiniflare(t, {
    rootPath: tmp,
    script: "// empty",
    textBlobBindings: { TEXT: "missing.txt" },
  });
  const error = await caught(() => mf.getBindings());
  assert.equal(error.code, "ENOENT");
});

test("Miniflare: options: globals are globals, not bindings", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: DESCRIBE_MODULES,
    globals: { G1: "api global", G2: { nested: true } },
  });
  assert.deepEqual(await describe(mf), {
    env: {},
    globals: { G1: "api global", G2: { nested: true } },
    navigator: false,
  });
  const globalScope = await mf.getGlobalScope();
  assert.equal(globalScope.G1, "api global");
});

test("Miniflare: options: service-worker bindings win over globals of the same name", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (e) => e.respondWith(new Response(SAME + "," + ONLY_GLOBAL)));`,
    globals: { SAME: "global", ONLY_GLOBAL: "only global" },
    bindings: { SAME: "binding" },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "binding,only global");
});

test("Miniflare: options: binding priority: vars < .env < wasm < text < data < services < bindings", async (t) => {
  const tmp = await useTmp(t);
  const keys = ["K1", "K2", "K3", "K4", "K5", "K6", "K7"];
  const from = (n: number, value: string) =>
    Object.fromEntries(keys.slice(n).map((key) => [key, value]));
  await writeFiles(tmp, {
    "wrangler.toml": `[vars]\n${keys.map((key) => `${key} = "vars"`).join("\n")}\n`,
    ".env": keys.slice(1).map((key) => `${key}=env`).join("\n"),
    "add.wasm": ADD_WASM,
    "text.txt": "text",
    "data.bin": new Uint8Array([1]),
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    wranglerConfigPath: true,
    envPath: true,
    modules: true,
    script: DESCRIBE_MODULES,
    wasmBindings: from(2, "add.wasm"),
    textBlobBindings: from(3, "text.txt"),
    dataBlobBindings: from(4, "data.bin"),
    serviceBindings: Object.fromEntries(
      keys.slice(5).map((key) => [key, async () => new Response("service")])
    ),
    bindings: { K7: "custom" },
  });
  assert.deepEqual((await describe(mf)).env, {
    K1: "vars",
    K2: "env",
    K3: "[WebAssembly.Module]",
    K4: "text",
    K5: "[ArrayBuffer 1]",
    K6: "[Fetcher]",
    K7: "custom",
  });
});

test("Miniflare: options: a service binding given as a function stubs another worker", async (t) => {
  const received: string[] = [];
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      async fetch(request, env) {
        const res = await env.AUTH.fetch("http://auth/check", { headers: { "X-Token": "t" } });
        return new Response("auth said " + await res.text());
      }
    }`,
    serviceBindings: {
      AUTH: async (request: Request) => {
        received.push(`${request.url} ${request.headers.get("X-Token")}`);
        return new Response("yes");
      },
    },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "auth said yes");
  assert.deepEqual(received, ["http://auth/check t"]);
});

test("Miniflare: options: rootPath resolves scriptPath and binding paths", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "project/src/worker.js": `addEventListener("fetch", (e) => e.respondWith(new Response(TEXT)));`,
    "project/text.txt": "relative to root",
  });
  const mf = useMiniflare(t, {
    rootPath: path.join(tmp, "project"),
    scriptPath: "src/worker.js",
    textBlobBindings: { TEXT: "text.txt" },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "relative to root");
});

test("Miniflare: options: dispose can be called more than once", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch: () => new Response("") }`,
  });
  await mf.dispatchFetch("http://localhost/");
  await mf.dispose();
  await mf.dispose();
});

test("Miniflare: options: log is the Log in use", async (t) => {
  const mf = useMiniflare(t, { script: "// empty" });
  assert.equal(typeof mf.log.info, "function");
  assert.equal(mf.log.constructor.name, "NoOpLog");
});

test("Miniflare: options of Miniflare 2 features not built yet are ignored with a warning, once each", async (t) => {
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    script: 'addEventListener("fetch", (e) => e.respondWith(new Response("served")))',
    d1Databases: ["DB"],
    kvNamespaces: ["NS"],
  } as any);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "served");
  await mf.setOptions({ r2Buckets: ["BUCKET"] } as any);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    'Option "d1Databases" is not supported yet, and is ignored',
    'Option "r2Buckets" is not supported yet, and is ignored',
  ]);
});

/**
 * The warnings logged by an instance reading `wranglerToml` (serving a
 * worker, then reloaded: each warning must come once)
 */
async function warningsServing(t: TestContext, wranglerToml: string): Promise<string[]> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": wranglerToml,
    "worker.js": 'addEventListener("fetch", (e) => e.respondWith(new Response("served")))',
  });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, rootPath: tmp, scriptPath: "worker.js", wranglerConfigPath: true });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "served");
  await mf.reload();
  return log.logsAtLevel(LogLevel.WARN);
}

test("Miniflare: wrangler.toml sections of features not built yet are ignored with a warning", async (t) => {
  assert.deepEqual(await warningsServing(t, `
      [[d1_databases]]
      binding = "DB"
      [[r2_buckets]]
      binding = "BUCKET"
    `), [
    'wrangler.toml section "r2_buckets" is not supported yet, and is ignored',
    'wrangler.toml section "d1_databases" is not supported yet, and is ignored',
  ]);
});

test("Miniflare: unknown keys in wrangler.toml's [miniflare] are ignored with a warning, once each", async (t) => {
  assert.deepEqual(await warningsServing(t, `
      [miniflare]
      kv_persists = true
      kvNamespaces = ["NS"]
      not_an_option = 1
      [miniflare.https]
      passphase = "secret"
    `), [
    'wrangler.toml [miniflare] key "kv_persists" is unknown, and is ignored\nDid you mean "kv_persist"?',
    'wrangler.toml [miniflare] key "kvNamespaces" is unknown, and is ignored',
    'wrangler.toml [miniflare] key "not_an_option" is unknown, and is ignored',
    'wrangler.toml [miniflare.https] key "passphase" is unknown, and is ignored\nDid you mean "passphrase"?',
  ]);
});
