import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import {
  FetchError,
  MiniflareCoreError,
  VMScriptRunnerError,
} from "../../src/index.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { caught, escapeRegExp } from "./util.js";

const NO_SCRIPT_SERVICE_WORKER = `No script defined, either:
- Pass it as a positional argument, if you're using the CLI
    $ miniflare dist/worker.js
- Set the script or scriptPath option, if you're using the API
    new Miniflare({ scriptPath: "dist/worker.js" })
- Set main in package.json
    { "main": "dist/worker.js" }
`;

const NO_SCRIPT_MODULES = `No script defined, either:
- Pass it as a positional argument, if you're using the CLI
    $ miniflare dist/worker.mjs
- Set the script or scriptPath option, if you're using the API
    new Miniflare({ scriptPath: "dist/worker.mjs" })
- Set module in package.json
    { "module": "dist/worker.mjs" }
- Set build.upload.main in wrangler.toml
    [build.upload]
    format = "modules"
    dir = "dist"
    main = "worker.mjs"
`;

test("Miniflare: errors: no script rejects with ERR_NO_SCRIPT (service-worker wording)", async (t) => {
  const mf = useMiniflare(t, {});
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    MiniflareCoreError,
    "ERR_NO_SCRIPT",
    NO_SCRIPT_SERVICE_WORKER
  );
  // Every method waits for initialisation, so every one rejects
  await assertRejectsMiniflare(mf.getPlugins(), MiniflareCoreError, "ERR_NO_SCRIPT");
  await assertRejectsMiniflare(mf.dispatchScheduled(), MiniflareCoreError, "ERR_NO_SCRIPT");
});

test("Miniflare: errors: no script rejects with ERR_NO_SCRIPT (modules wording)", async (t) => {
  const mf = useMiniflare(t, { modules: true });
  await assertRejectsMiniflare(
    mf.getGlobalScope(),
    MiniflareCoreError,
    "ERR_NO_SCRIPT",
    NO_SCRIPT_MODULES
  );
});

test("Miniflare: errors: scriptRequired: false allows no script", async (t) => {
  const mf = useMiniflare(t, { scriptRequired: false });
  const plugins = await mf.getPlugins();
  assert.ok(plugins.CorePlugin);
  assert.deepEqual({ ...(await mf.getModuleExports()) }, {});
});

test("Miniflare: errors: a missing scriptPath rejects with ENOENT", async (t) => {
  const tmp = await useTmp(t);
  const scriptPath = path.join(tmp, "missing.js");
  const mf = useMiniflare(t, { scriptPath });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.code, "ENOENT");
  assert.match(error.message, new RegExp(escapeRegExp(scriptPath)));
});

test("Miniflare: errors: a syntax error in a service worker names the file and line", async (t) => {
  const tmp = await useTmp(t);
  const scriptPath = path.join(tmp, "broken-worker.js");
  await writeFiles(tmp, {
    "broken-worker.js": `addEventListener("fetch", (event) => {\n  const x = ;\n});\n`,
  });
  const mf = useMiniflare(t, { scriptPath });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "SyntaxError");
  assert.ok(error instanceof SyntaxError || error.constructor.name === "SyntaxError");
  assert.match(error.stack, new RegExp(escapeRegExp(`${scriptPath}:2`)));
});

test("Miniflare: errors: a syntax error in a module file names the file and line", async (t) => {
  const tmp = await useTmp(t);
  const scriptPath = path.join(tmp, "broken.mjs");
  await writeFiles(tmp, {
    "broken.mjs": `export default {\n  fetch() {\n    const x = ;\n  }\n};\n`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath });
  const error = await caught(() => mf.getModuleExports());
  assert.equal(error.name, "SyntaxError");
  assert.match(String(error.stack), new RegExp(escapeRegExp(`${scriptPath}:3`)));
});

test("Miniflare: errors: a syntax error in an imported module names that module", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "entry.mjs": `import { value } from "./dep.mjs";\nexport default { fetch: () => new Response(value) };\n`,
    "dep.mjs": `// a comment\nexport const value = (;\n`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "entry.mjs") });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "SyntaxError");
  assert.match(String(error.stack), new RegExp(escapeRegExp(`${path.join(tmp, "dep.mjs")}:2`)));
});

test("Miniflare: errors: an exception thrown by a service-worker handler rejects dispatchFetch", async (t) => {
  const tmp = await useTmp(t);
  const scriptPath = path.join(tmp, "throws.js");
  await writeFiles(tmp, {
    "throws.js": `addEventListener("fetch", (event) => {\n  throw new RangeError("handler failed");\n});\n`,
  });
  const mf = useMiniflare(t, { scriptPath });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "RangeError");
  assert.equal(error.message, "handler failed");
  assert.match(error.stack, new RegExp(escapeRegExp(`${scriptPath}:2:`)));
});

test("Miniflare: errors: an exception thrown by a modules handler rejects dispatchFetch", async (t) => {
  const tmp = await useTmp(t);
  const scriptPath = path.join(tmp, "throws.mjs");
  await writeFiles(tmp, {
    "throws.mjs": `export default {\n  async fetch(request) {\n    await null;\n    throw new TypeError("module handler failed");\n  }\n};\n`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "TypeError");
  assert.equal(error.message, "module handler failed");
  assert.match(error.stack, new RegExp(escapeRegExp(`${scriptPath}:4:`)));
  // The instance is still usable afterwards
  const again = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(again.message, "module handler failed");
});

test("Miniflare: errors: an exception in an imported module's handler names that module", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "entry.mjs": `import { handle } from "./lib/handle.mjs";\nexport default { fetch: (request) => handle(request) };\n`,
    "lib/handle.mjs": `export function handle(request) {\n  // line 2\n  throw new Error("from lib");\n}\n`,
  });
  const mf = useMiniflare(t, { modules: true, scriptPath: path.join(tmp, "entry.mjs") });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.message, "from lib");
  assert.match(error.stack, new RegExp(escapeRegExp(`${path.join(tmp, "lib", "handle.mjs")}:3:`)));
});

test("Miniflare: errors: a throwing listener stops later listeners and propagates", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", () => { throw new RangeError("first"); });
      addEventListener("fetch", (event) => event.respondWith(new Response("second")));`,
  });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "RangeError");
  assert.equal(error.message, "first");
});

test("Miniflare: errors: a rejected respondWith promise rejects dispatchFetch", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => event.respondWith((async () => {
      await null;
      throw new RangeError("async failure");
    })()));`,
  });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "RangeError");
  assert.equal(error.message, "async failure");
});

test("Miniflare: errors: no fetch handler rejects with ERR_NO_HANDLER (service-worker wording)", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("scheduled", () => {});`,
  });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_NO_HANDLER",
    'No fetch handler defined and no upstream to proxy to specified.\nMake sure you\'re calling addEventListener("fetch", ...).'
  );
});

test("Miniflare: errors: no fetch handler rejects with ERR_NO_HANDLER (modules wording)", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { scheduled() {} }; export const fetch = () => new Response("named");`,
  });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_NO_HANDLER",
    "No fetch handler defined and no upstream to proxy to specified.\nMake sure you're exporting a default object containing a `fetch` function property."
  );
});

test("Miniflare: errors: listeners that never respond reject with ERR_NO_RESPONSE", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => { event.waitUntil(Promise.resolve()); });`,
  });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_NO_RESPONSE",
    "No fetch handler responded and no upstream to proxy to specified.\nMake sure you're calling `event.respondWith()` with a `Response` or `Promise<Response>` in your handler."
  );
});

test("Miniflare: errors: a service-worker handler responding with a non-Response rejects with ERR_RESPONSE_TYPE", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => event.respondWith("not a response"));`,
  });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_RESPONSE_TYPE",
    "Fetch handler didn't respond with a Response object.\nMake sure you're calling `event.respondWith()` with a `Response` or `Promise<Response>` in your handler."
  );
});

test("Miniflare: errors: a modules handler returning a non-Response rejects with ERR_RESPONSE_TYPE", async (t) => {
  const { mf } = useMiniflareWithHandler(t, `return { status: 200, body: "fake" };`);
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_RESPONSE_TYPE",
    "Fetch handler didn't respond with a Response object.\nMake sure you're returning a `Response` in your handler."
  );
});

test("Miniflare: errors: calling respondWith twice throws an InvalidStateError DOMException", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.respondWith(new Response("a"));
      event.respondWith(new Response("b"));
    });`,
  });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "InvalidStateError");
  assert.equal(
    error.message,
    "FetchEvent.respondWith() has already been called; it can only be called once."
  );
  assert.equal(error.code, 11);
  assert.equal(error.constructor.name, "DOMException");
});

test("Miniflare: errors: respondWith after the response was chosen is rejected inside the worker", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.waitUntil((async () => {
        await null;
        try { event.respondWith(new Response("late")); return "no error"; }
        catch (e) { return e.name; }
      })());
      event.respondWith(new Response("on time"));
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "on time");
  assert.deepEqual(await res.waitUntil(), ["InvalidStateError"]);
});

test("Miniflare: errors: passThroughOnException without upstream rejects with ERR_NO_UPSTREAM", async (t) => {
  const sw = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.passThroughOnException();
      throw new Error("boom");
    });`,
  });
  await assertRejectsMiniflare(
    sw.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_NO_UPSTREAM",
    "No upstream to pass-through to specified.\nMake sure you've set the `upstream` option."
  );
  const { mf: modules } = useMiniflareWithHandler(
    t,
    `ctx.passThroughOnException(); throw new Error("boom");`
  );
  await assertRejectsMiniflare(
    modules.dispatchFetch("http://localhost/"),
    FetchError,
    "ERR_NO_UPSTREAM"
  );
});

test("Miniflare: errors: an import from a string script rejects with ERR_MODULE_STRING_SCRIPT", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `import { x } from "./dep.mjs"; export default { fetch: () => new Response(x) };`,
  });
  await assertRejectsMiniflare(
    mf.dispatchFetch("http://localhost/"),
    VMScriptRunnerError,
    "ERR_MODULE_STRING_SCRIPT",
    'Unable to resolve "<script>" dependency "./dep.mjs": imports unsupported with string script'
  );
});

test("Miniflare: errors: a failed setOptions reload rejects and a later good setOptions recovers", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch: () => new Response("one") }`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "one");

  const error = await caught(() =>
    mf.setOptions({ script: `export default { fetch: () => new Response("two") ` })
  );
  assert.equal(error.name, "SyntaxError");

  // Miniflare 2 replaced the global scope before running the broken script,
  // leaving no handler until the next good reload; here the last good
  // worker keeps answering
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "one");

  await mf.setOptions({ script: `export default { fetch: () => new Response("three") }` });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "three");
});

test("Miniflare: errors: a failed setOptions (missing file) is catchable and recoverable", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "good.js": `addEventListener("fetch", (e) => e.respondWith(new Response("good")));`,
  });
  const mf = useMiniflare(t, { scriptPath: path.join(tmp, "good.js") });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "good");
  const error = await caught(() => mf.setOptions({ scriptPath: path.join(tmp, "missing.js") }));
  assert.equal(error.code, "ENOENT");
  await mf.setOptions({ scriptPath: path.join(tmp, "good.js") });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "good");
});

test("Miniflare: errors: an error thrown at the top level of the script rejects", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `throw new RangeError("top-level failure"); export default {};`,
  });
  const error = await caught(() => mf.dispatchFetch("http://localhost/"));
  assert.equal(error.name, "RangeError");
  assert.equal(error.message, "top-level failure");
});

test("Miniflare: errors: a rejected waitUntil rejects Response#waitUntil() without crashing", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.waitUntil(Promise.resolve("fine"));
     ctx.waitUntil((async () => { await null; throw new RangeError("waitUntil failed"); })());
     return new Response("still ok");`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "still ok");
  const error = await caught(() => res.waitUntil());
  assert.equal(error.name, "RangeError");
  assert.equal(error.message, "waitUntil failed");
  // And the worker keeps serving
  const again = await mf.dispatchFetch("http://localhost/");
  assert.equal(await again.text(), "still ok");
  await assert.rejects(again.waitUntil(), { message: "waitUntil failed" });
});

test("Miniflare: errors: a throwing scheduled handler or waitUntil rejects dispatchScheduled", async (t) => {
  const throws = useMiniflare(t, {
    modules: true,
    script: `export default { scheduled() { throw new RangeError("scheduled failed"); } }`,
  });
  await assert.rejects(throws.dispatchScheduled(), {
    name: "RangeError",
    message: "scheduled failed",
  });
  const rejects = useMiniflare(t, {
    script: `addEventListener("scheduled", (e) => e.waitUntil(Promise.reject(new TypeError("wu failed"))));`,
  });
  await assert.rejects(rejects.dispatchScheduled(), { name: "TypeError", message: "wu failed" });
});
