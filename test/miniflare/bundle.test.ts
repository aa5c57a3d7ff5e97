// The published bundle (dist/bundle, what bin/miniflare.js and importers
// load) must behave as the compiled sources the other tests use. Bundling
// renames clashing classes (Response to _Response, ...), and workers can
// see a class's name.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { rootPath } from "../helpers/fixtures.js";

const bundle = pathToFileURL(path.join(rootPath, "dist", "bundle", "index.js")).href;

test("bundle: every global class and binding object in a worker has its own name", async (t) => {
  const { Miniflare } = await import(bundle);
  const mf = new Miniflare({
    modules: true,
    compatibilityDate: "2022-11-30",
    durableObjects: { NS: "O" },
    kvNamespaces: ["KV"],
    script: `
      export class O {}
      export default {
        fetch(request, env, ctx) {
          const renamed = [];
          for (const key of Object.getOwnPropertyNames(globalThis)) {
            const value = globalThis[key];
            if (typeof value === "function" && /^[A-Z]/.test(key) && value.name !== key) {
              renamed.push(key + " is " + value.name);
            }
          }
          const id = env.NS.idFromName("a");
          const objects = [id, ctx, env.NS.get(id), env.NS, env.KV, request, new Response(), new Headers()];
          return Response.json({ renamed, names: objects.map((o) => o.constructor.name) });
        },
      };`,
  });
  t.after(() => mf.dispose());
  const result = await (await mf.dispatchFetch("http://localhost/")).json();
  assert.deepEqual(result.renamed, []);
  assert.deepEqual(result.names, [
    "DurableObjectId",
    "ExecutionContext",
    "DurableObjectStub",
    "DurableObjectNamespace",
    "KVNamespace",
    "Request",
    "Response",
    "Headers",
  ]);
  // The host side too
  const exported = await import(bundle);
  for (const name of ["Miniflare", "Request", "Response", "MiniflareError", "DurableObjectId", "KVNamespace", "WebSocket"]) {
    assert.equal(exported[name].name, name);
  }
});
