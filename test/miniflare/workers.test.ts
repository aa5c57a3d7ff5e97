// The `workers` option (the multiple-workers seed's form): several workers at
// one level, the first the entry point, shared options at the top level.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { Miniflare, MiniflareCoreError, Response } from "../../src/index.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp } from "../helpers/tmp.js";

/** Runs the rest of the test in a new empty working directory */
async function useCwd(t: TestContext): Promise<string> {
  const cwd = await useTmp(t);
  const previous = process.cwd();
  process.chdir(cwd);
  t.after(() => process.chdir(previous));
  return cwd;
}

/** The seed's example, as written (its console.log becomes the result) */
async function seedExample(): Promise<string> {
  const message = "The count is ";
  const mf = new Miniflare({
    // Options shared between workers such as HTTP and persistence configuration
    // should always be defined at the top level.
    host: "0.0.0.0",
    port: 8787,
    kvPersist: true,
    workers: [
      {
        name: "worker",
        kvNamespaces: { COUNTS: "counts" },
        serviceBindings: {
          INCREMENTER: "incrementer",
          // Service bindings can also be defined as custom functions, with access
          // to anything defined outside Miniflare.
          async CUSTOM(request: Request) {
            // `request` is the incoming `Request` object.
            return new Response(message);
          },
        },
        modules: true,
        script: `export default {
          async fetch(request, env, ctx) {
            // Get the message defined outside
            const response = await env.CUSTOM.fetch("http://host/");
            const message = await response.text();

            // Increment the count 3 times
            await env.INCREMENTER.fetch("http://host/");
            await env.INCREMENTER.fetch("http://host/");
            await env.INCREMENTER.fetch("http://host/");
            const count = await env.COUNTS.get("count");

            return new Response(message + count);
          }
        }`,
      },
      {
        name: "incrementer",
        // Note we're using the same `COUNTS` namespace as before, but binding it
        // to `NUMBERS` instead.
        kvNamespaces: { NUMBERS: "counts" },
        // Worker formats can be mixed-and-matched
        script: `addEventListener("fetch", (event) => {
          event.respondWith(handleRequest());
        })
        async function handleRequest() {
          const count = parseInt((await NUMBERS.get("count")) ?? "0") + 1;
          await NUMBERS.put("count", count.toString());
          return new Response(count.toString());
        }`,
      },
    ],
  });
  try {
    const res = await mf.dispatchFetch("http://localhost");
    return await res.text();
  } finally {
    await mf.dispose();
  }
}

test("Miniflare: workers: the seed's example prints \"The count is 3\", persisting the shared namespace", async (t) => {
  const cwd = await useCwd(t);
  assert.equal(await seedExample(), "The count is 3");
  // kvPersist: true at the top level reaches both workers: one namespace
  // "counts" on files in the working directory
  assert.deepEqual(await fs.readdir(path.join(cwd, ".mf", "kv", "mfs1")), ["counts"]);
  // ... so a second run carries on from there
  assert.equal(await seedExample(), "The count is 6");
});

test("Miniflare: workers: routes pick among them, the first is the fallback, and each keeps its own format", async (t) => {
  const mf = useMiniflare(t, {
    workers: [
      { name: "main", modules: true, script: `export default { fetch: () => new Response("main") }` },
      {
        name: "api",
        routes: ["api.mf/*"],
        script: `addEventListener("fetch", (e) => e.respondWith(new Response("api " + new URL(e.request.url).pathname)))`,
      },
    ],
  });
  assert.equal(await (await mf.dispatchFetch("http://api.mf/todos/1")).text(), "api /todos/1");
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "main");
  // getKVNamespace() and friends act on the first worker; mounts by name
  assert.equal(await (await (await mf.getMount("api"))!.dispatchFetch("http://x/y")).text(), "api /y");
});

test("Miniflare: workers: a binding's namespace given by object is what getKVNamespace() opens", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    kvNamespaces: { BOUND: "shared-id" },
    script: `export default { async fetch(request, env) { await env.BOUND.put("k", "v"); return new Response("ok") } }`,
  });
  await (await mf.dispatchFetch("http://localhost/")).text();
  // By binding, or by the namespace's own name
  assert.equal(await (await mf.getKVNamespace("BOUND")).get("k"), "v");
  assert.equal(await (await mf.getKVNamespace("shared-id")).get("k"), "v");
});

test("Miniflare: workers: bad forms reject with MiniflareCoreError", async (t) => {
  const script = `export default { fetch: () => new Response("x") }`;
  const cases: [unknown, string, string][] = [
    [{ workers: [] }, "ERR_WORKERS_INVALID", 'The "workers" option must be a non-empty array of worker options'],
    [{ workers: ["./a"] }, "ERR_WORKERS_INVALID", 'The "workers" option must be a non-empty array of worker options'],
    [
      { workers: [{ modules: true, script }], mounts: { a: { script } } },
      "ERR_WORKERS_AND_MOUNTS",
      'The "workers" and "mounts" options can\'t be used together: list every worker in "workers"',
    ],
    [
      { workers: [{ modules: true, script }, { modules: true, script }] },
      "ERR_WORKER_NO_NAME",
      'Worker 1 in "workers" has no name: every worker but the first needs one, so routes and service bindings can reach it',
    ],
    [
      { workers: [{ name: "a", modules: true, script }, { name: "a", modules: true, script }] },
      "ERR_WORKER_NAME_DUPLICATE",
      'Multiple workers in "workers" are named "a"',
    ],
  ];
  for (const [options, code, message] of cases) {
    const mf = useMiniflare(t, options as any);
    await assertRejectsMiniflare(mf.getPlugins(), MiniflareCoreError, code, message);
  }
});

test("Miniflare: workers: a worker with workers or mounts of its own is a nested mount", async (t) => {
  const script = `export default { fetch: () => new Response("x") }`;
  const mf = useMiniflare(t, {
    workers: [{ modules: true, script }, { name: "b", modules: true, script, mounts: { c: { script } } }],
  });
  await assertRejectsMiniflare(mf.getPlugins(), MiniflareCoreError, "ERR_MOUNT_NESTED", "Nested mounts are unsupported");
  const withWorkers = useMiniflare(t, {
    workers: [{ modules: true, script }, { name: "b", modules: true, script, workers: [{ script }] }],
  });
  await assertRejectsMiniflare(withWorkers.getPlugins(), MiniflareCoreError, "ERR_MOUNT_NESTED", "Nested mounts are unsupported");
});
