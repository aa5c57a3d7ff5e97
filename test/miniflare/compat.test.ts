import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { FormData } from "undici";
import { LogLevel, VMScriptRunnerError } from "../../src/index.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { useServer } from "./util.js";

async function text(mf: { dispatchFetch(url: string, init?: any): Promise<any> }): Promise<string> {
  return (await mf.dispatchFetch("http://localhost/")).text();
}

const NAVIGATOR = `return new Response(typeof navigator === "undefined" ? "none" : navigator.userAgent);`;

test("Miniflare: compat: global_navigator is enabled from 2022-03-21", async (t) => {
  const before = useMiniflareWithHandler(t, NAVIGATOR, { compatibilityDate: "2022-03-20" });
  assert.equal(await text(before.mf), "none");
  const after = useMiniflareWithHandler(t, NAVIGATOR, { compatibilityDate: "2022-03-21" });
  assert.equal(await text(after.mf), "Cloudflare-Workers");
  const defaultDate = useMiniflareWithHandler(t, NAVIGATOR);
  assert.equal(await text(defaultDate.mf), "none");
});

test("Miniflare: compat: global_navigator and no_global_navigator flags beat the date", async (t) => {
  const on = useMiniflareWithHandler(t, NAVIGATOR, {
    compatibilityDate: "2021-01-01",
    compatibilityFlags: ["global_navigator"],
  });
  assert.equal(await text(on.mf), "Cloudflare-Workers");
  const off = useMiniflareWithHandler(t, NAVIGATOR, {
    compatibilityDate: "2023-01-01",
    compatibilityFlags: ["no_global_navigator"],
  });
  assert.equal(await text(off.mf), "none");
  // An explicit disable flag beats the enable flag too
  const both = useMiniflareWithHandler(t, NAVIGATOR, {
    compatibilityFlags: ["global_navigator", "no_global_navigator"],
  });
  assert.equal(await text(both.mf), "none");
});

test("Miniflare: compat: unknown flags are ignored", async (t) => {
  const { mf } = useMiniflareWithHandler(t, `return new Response("ok");`, {
    compatibilityFlags: ["not_a_real_flag", "experimental"],
  });
  assert.equal(await text(mf), "ok");
});

test("Miniflare: compat: changing the compatibility date with setOptions applies to the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(t, NAVIGATOR, { compatibilityDate: "2021-01-01" });
  const before = await mf.getPlugins();
  const beforeBindings = before.BindingsPlugin;
  assert.equal(await text(mf), "none");
  await mf.setOptions({ compatibilityDate: "2022-03-21" });
  assert.equal(await text(mf), "Cloudflare-Workers");
  // Changing the date re-creates every plugin
  assert.notEqual((await mf.getPlugins()).BindingsPlugin, beforeBindings);
});

const CONSTRUCTORS = `const result = {};
  for (const [name, create] of [
    ["ReadableStream", () => new ReadableStream()],
    ["WritableStream", () => new WritableStream()],
  ]) {
    try { create(); result[name] = "ok"; } catch (e) { result[name] = e.name + ": " + e.message; }
  }
  return Response.json(result);`;

test("Miniflare: compat: stream constructors throw before 2022-11-30", async (t) => {
  const { mf } = useMiniflareWithHandler(t, CONSTRUCTORS, { compatibilityDate: "2022-11-29" });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    ReadableStream:
      "Error: To use the new ReadableStream() constructor, enable the streams_enable_constructors feature flag.",
    WritableStream:
      "Error: To use the new WritableStream() constructor, enable the streams_enable_constructors feature flag.",
  });
});

test("Miniflare: compat: stream constructors work from 2022-11-30 or with the flag", async (t) => {
  const byDate = useMiniflareWithHandler(t, CONSTRUCTORS, { compatibilityDate: "2022-11-30" });
  assert.deepEqual(await (await byDate.mf.dispatchFetch("http://localhost/")).json(), {
    ReadableStream: "ok",
    WritableStream: "ok",
  });
  const byFlag = useMiniflareWithHandler(
    t,
    `const stream = new ReadableStream({ start(controller) { controller.enqueue("chunk"); controller.close(); } });
     const { value } = await stream.getReader().read();
     return new Response(value + ":" + typeof ReadableStreamDefaultController);`,
    { compatibilityFlags: ["streams_enable_constructors"] }
  );
  assert.equal(await text(byFlag.mf), "chunk:function");
  const disabled = useMiniflareWithHandler(t, CONSTRUCTORS, {
    compatibilityDate: "2023-01-01",
    compatibilityFlags: ["streams_disable_constructors"],
  });
  const result = (await (await disabled.mf.dispatchFetch("http://localhost/")).json()) as Record<string, string>;
  assert.match(result.ReadableStream, /enable the streams_enable_constructors feature flag/);
});

test("Miniflare: compat: TransformStream is an identity stream before 2022-11-30, warning about transformers", async (t) => {
  const { mf, log } = useMiniflareWithHandler(
    t,
    `const stream = new TransformStream({ transform(chunk, controller) { controller.enqueue(new Uint8Array([33])); } });
     const writer = stream.writable.getWriter();
     writer.write(new TextEncoder().encode("identity"));
     writer.close();
     return new Response(stream.readable, { headers: { "X-Name": stream.constructor.name } });`,
    { compatibilityDate: "2022-11-29" }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "identity");
  assert.equal(res.headers.get("X-Name"), "IdentityTransformStream");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "To use the new TransformStream() constructor with a custom transformer, enable the transformstream_enable_standard_constructor feature flag.",
  ]);
});

test("Miniflare: compat: TransformStream without a transformer doesn't warn", async (t) => {
  const { mf, log } = useMiniflareWithHandler(
    t,
    `const stream = new TransformStream();
     return new Response(stream.constructor.name);`,
    { compatibilityDate: "2022-11-29" }
  );
  assert.equal(await text(mf), "IdentityTransformStream");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("Miniflare: compat: the standard TransformStream from 2022-11-30", async (t) => {
  const { mf, log } = useMiniflareWithHandler(
    t,
    `const stream = new TransformStream({ transform(chunk, controller) { controller.enqueue(chunk.toUpperCase()); } });
     const writer = stream.writable.getWriter();
     writer.write("standard");
     writer.close();
     const { value } = await stream.readable.getReader().read();
     return new Response(value);`,
    { compatibilityDate: "2022-11-30" }
  );
  assert.equal(await text(mf), "STANDARD");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("Miniflare: compat: the standard TransformStream flag without stream constructors throws", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { new TransformStream(); return new Response("constructed"); }
     catch (e) { return new Response(e.message); }`,
    {
      compatibilityDate: "2022-11-29",
      compatibilityFlags: ["transformstream_enable_standard_constructor"],
    }
  );
  assert.equal(
    await text(mf),
    "To use the new TransformStream() constructor, enable the streams_enable_constructors feature flag."
  );
});

test("Miniflare: compat: nodejs_compat allows node: imports", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { Buffer } from "node:buffer";
      import { EventEmitter } from "node:events";
      import { AsyncLocalStorage } from "node:async_hooks";
      import assert from "node:assert";
      import util from "node:util";
      export default {
        fetch() {
          assert.strictEqual(1, 1);
          const storage = new AsyncLocalStorage();
          return Response.json({
            base64: Buffer.from("hello").toString("base64"),
            emitter: typeof EventEmitter,
            storage: storage.run("stored", () => storage.getStore()),
            format: util.format("%s=%d", "n", 1),
          });
        },
      };`,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    compatibilityFlags: ["nodejs_compat"],
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    base64: "aGVsbG8=",
    emitter: "function",
    storage: "stored",
    format: "n=1",
  });
});

test("Miniflare: compat: without nodejs_compat, node: imports fail with ERR_MODULE_RULE", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { Buffer } from "node:buffer"; export default {};`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "worker.mjs") });
  const error = await assertRejectsMiniflare(
    mf.getModuleExports(),
    VMScriptRunnerError,
    "ERR_MODULE_RULE"
  );
  // Miniflare 2 only gave the Node.js built-ins hint for specifiers in
  // require("module").builtinModules, which has no "node:"-prefixed names
  assert.match(
    error.message,
    /^Unable to resolve "[^"]*worker\.mjs" dependency "node:buffer": no matching module rules\.\nIf you're trying to import an npm package, you'll need to bundle your Worker first\.$/
  );
});

test("Miniflare: compat: nodejs_compat only provides node: spellings", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import { Buffer } from "buffer"; export default {};`,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    compatibilityFlags: ["nodejs_compat"],
  });
  const error = await assertRejectsMiniflare(
    mf.getModuleExports(),
    VMScriptRunnerError,
    "ERR_MODULE_RULE"
  );
  assert.match(
    error.message,
    /^Unable to resolve "[^"]*worker\.mjs" dependency "buffer": no matching module rules\.\nIf you're trying to import a Node\.js built-in module, or an npm package that uses Node\.js built-ins, you'll either need to:\n- Bundle your Worker, configuring your bundler to polyfill Node\.js built-ins\n- Configure your bundler to load Workers-compatible builds by changing the main fields\/conditions\n- Find an alternative package that doesn't require Node\.js built-ins$/
  );
});

test("Miniflare: compat: nodejs_compat modules can be required from CommonJS", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import lib from "./lib.cjs"; export default { fetch: () => new Response(lib) };`,
    "lib.cjs": `const { Buffer } = require("node:buffer"); module.exports = Buffer.from("cjs").toString("hex");`,
  });
  const mf = useMiniflare(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    compatibilityDate: "2022-10-31",
    compatibilityFlags: ["nodejs_compat"],
  });
  assert.equal(await text(mf), "636a73");
});

async function commonjsWorker(t: any): Promise<string> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `import lib from "./lib.js";
      export default { fetch: () => Response.json(lib) };`,
    "lib.js": `const dep = require("./dep.cjs"); module.exports = { dep };`,
    "dep.cjs": `module.exports = { value: "dep" };`,
  });
  return path.join(tmp, "worker.mjs");
}

test("Miniflare: compat: export_commonjs_default makes require return module.exports", async (t) => {
  const scriptPath = await commonjsWorker(t);
  const byDate = useMiniflare(t, { modules: true, scriptPath, compatibilityDate: "2022-10-31" });
  assert.deepEqual(await (await byDate.dispatchFetch("http://localhost/")).json(), {
    dep: { value: "dep" },
  });
  const byFlag = useMiniflare(t, {
    modules: true,
    scriptPath,
    compatibilityFlags: ["export_commonjs_default"],
  });
  assert.deepEqual(await (await byFlag.dispatchFetch("http://localhost/")).json(), {
    dep: { value: "dep" },
  });
});

test("Miniflare: compat: export_commonjs_namespace makes require return { default }", async (t) => {
  const scriptPath = await commonjsWorker(t);
  const byDate = useMiniflare(t, { modules: true, scriptPath, compatibilityDate: "2022-10-30" });
  assert.deepEqual(await (await byDate.dispatchFetch("http://localhost/")).json(), {
    dep: { default: { value: "dep" } },
  });
  const byFlag = useMiniflare(t, {
    modules: true,
    scriptPath,
    compatibilityDate: "2023-01-01",
    compatibilityFlags: ["export_commonjs_namespace"],
  });
  assert.deepEqual(await (await byFlag.dispatchFetch("http://localhost/")).json(), {
    dep: { default: { value: "dep" } },
  });
});

const FORM_DATA_HANDLER = `const form = await request.formData();
  const file = form.get("file");
  return Response.json({
    type: typeof file,
    isFile: file instanceof File,
    name: typeof file === "string" ? null : file.name,
    contents: typeof file === "string" ? file : await file.text(),
    field: form.get("field"),
  });`;

function multipart(): FormData {
  const body = new FormData();
  body.append("field", "plain value");
  body.append("file", new Blob(["file contents"], { type: "text/plain" }), "upload.txt");
  return body;
}

test("Miniflare: compat: formdata_parser_supports_files gives File objects for file fields", async (t) => {
  const { mf } = useMiniflareWithHandler(t, FORM_DATA_HANDLER, { compatibilityDate: "2021-11-03" });
  const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: multipart() as any });
  assert.deepEqual(await res.json(), {
    type: "object",
    isFile: true,
    name: "upload.txt",
    contents: "file contents",
    field: "plain value",
  });
});

test("Miniflare: compat: without formdata_parser_supports_files, file fields are strings", async (t) => {
  const { mf } = useMiniflareWithHandler(t, FORM_DATA_HANDLER, { compatibilityDate: "2021-11-02" });
  const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: multipart() as any });
  assert.deepEqual(await res.json(), {
    type: "string",
    isFile: false,
    name: null,
    contents: "file contents",
    field: "plain value",
  });
  const byFlag = useMiniflareWithHandler(t, FORM_DATA_HANDLER, {
    compatibilityDate: "2023-01-01",
    compatibilityFlags: ["formdata_parser_converts_files_to_strings"],
  });
  const flagged = await byFlag.mf.dispatchFetch("http://localhost/", {
    method: "POST",
    body: multipart() as any,
  });
  assert.equal(((await flagged.json()) as { type: string }).type, "string");
});

const FETCH_FTP = `try { const res = await fetch(env.TARGET); return new Response("fetched " + await res.text()); }
  catch (e) { return new Response(e.name + ": " + e.message); }`;

test("Miniflare: compat: fetch_refuses_unknown_protocols throws for ftp:", async (t) => {
  const { mf, log } = useMiniflareWithHandler(t, FETCH_FTP, {
    compatibilityDate: "2021-11-10",
    bindings: { TARGET: "ftp://x" },
  });
  assert.equal(await text(mf), "TypeError: Fetch API cannot load: ftp://x/");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("Miniflare: compat: without fetch_refuses_unknown_protocols, ftp: warns and is fetched as http:", async (t) => {
  const server = await useServer(t);
  const { mf, log } = useMiniflareWithHandler(t, FETCH_FTP, {
    compatibilityDate: "2021-11-09",
    bindings: { TARGET: `ftp://127.0.0.1:${server.port}/file` },
  });
  assert.equal(await text(mf), "fetched srv:/file");
  const warnings = log.logsAtLevel(LogLevel.WARN).filter((m) => m.includes("invalid URL"));
  assert.deepEqual(warnings, [
    "Worker passed an invalid URL to fetch(). URLs passed to fetch() must begin with either 'http:' or 'https:', not 'ftp:'. Due to a historical bug, any other protocol used here will be treated the same as 'http:'. We plan to correct this bug in the future, so please update your Worker to use 'http:' or 'https:' for all fetch() URLs.",
  ]);
  const byFlag = useMiniflareWithHandler(t, FETCH_FTP, {
    compatibilityDate: "2023-01-01",
    compatibilityFlags: ["fetch_treats_unknown_protocols_as_http"],
    bindings: { TARGET: `ftp://127.0.0.1:${server.port}/flag` },
  });
  assert.equal(await text(byFlag.mf), "fetched srv:/flag");
});

const FLAG_LINE = /^- [a-z0-9_]+$/;

test("Miniflare: compat: enabled flags are logged at debug level", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, {
    log,
    script: "// empty",
    compatibilityDate: "2022-03-21",
    compatibilityFlags: ["nodejs_compat"],
  });
  await mf.getPlugins();
  const debug = log.logsAtLevel(LogLevel.DEBUG);
  const start = debug.indexOf("Enabled Compatibility Flags:");
  assert.notEqual(start, -1);
  assert.deepEqual(debug.slice(start + 1, start + 7), [
    "- nodejs_compat",
    "- global_navigator",
    "- durable_object_fetch_requires_full_url",
    "- fetch_refuses_unknown_protocols",
    "- formdata_parser_supports_files",
    "- workers_api_getters_setters_on_prototype",
  ]);
  assert.doesNotMatch(debug[start + 7] ?? "", FLAG_LINE);
});

test("Miniflare: compat: no enabled flags are logged as <none>", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, { log, script: "// empty" });
  await mf.getPlugins();
  const debug = log.logsAtLevel(LogLevel.DEBUG);
  const start = debug.indexOf("Enabled Compatibility Flags: <none>");
  assert.notEqual(start, -1);
  assert.equal(debug.includes("Enabled Compatibility Flags:"), false);
  assert.doesNotMatch(debug[start + 1] ?? "", FLAG_LINE);
});

test("Miniflare: compat: every flag on by 2022-11-30 is logged for that date", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, { log, script: "// empty", compatibilityDate: "2022-11-30" });
  await mf.getPlugins();
  const debug = log.logsAtLevel(LogLevel.DEBUG);
  const start = debug.indexOf("Enabled Compatibility Flags:");
  assert.notEqual(start, -1);
  assert.deepEqual(debug.slice(start + 1, start + 10), [
    "- streams_enable_constructors",
    "- transformstream_enable_standard_constructor",
    "- export_commonjs_default",
    "- r2_list_honor_include",
    "- global_navigator",
    "- durable_object_fetch_requires_full_url",
    "- fetch_refuses_unknown_protocols",
    "- formdata_parser_supports_files",
    "- workers_api_getters_setters_on_prototype",
  ]);
  assert.doesNotMatch(debug[start + 10] ?? "", FLAG_LINE);
});

test("Miniflare: compat: getters are own properties before 2022-01-31, as in Miniflare 2", async (t) => {
  const handler = `
    const response = new Response("body");
    return Response.json({ request: Object.keys(request), response: Object.keys(response) });
  `;
  const { mf } = useMiniflareWithHandler(t, handler, { compatibilityDate: "2022-01-30" });
  const keys = await (await mf.dispatchFetch("http://localhost/")).json();
  assert.deepEqual(keys, {
    request: ["body", "bodyUsed", "headers", "cf", "signal", "redirect", "url", "method"],
    // Miniflare 2's order
    response: ["body", "bodyUsed", "headers", "webSocket", "url", "redirected", "ok", "statusText", "status"],
  });
});

test("Miniflare: compat: getters are on the prototype from 2022-01-31, as in production", async (t) => {
  const handler = `
    return Response.json({ request: Object.keys(request), response: Object.keys(new Response("")) });
  `;
  const { mf } = useMiniflareWithHandler(t, handler, { compatibilityDate: "2022-01-31" });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), { request: [], response: [] });
  const { mf: onInstance } = useMiniflareWithHandler(t, handler, {
    compatibilityDate: "2022-11-30",
    compatibilityFlags: ["workers_api_getters_setters_on_instance"],
  });
  const keys = await (await onInstance.dispatchFetch("http://localhost/")).json();
  assert.equal(keys.request.length, 8);
  assert.equal(keys.response.length, 9);
});
