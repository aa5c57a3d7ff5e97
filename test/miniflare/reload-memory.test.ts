// Reloads must not keep old versions of the worker alive (demand #11): a
// long --watch session with a big bundle used to grow by the bundle's size
// at every reload, through V8's compilation cache.
//
// Measuring the whole heap after `gc()` flaked: V8 optimises hot functions
// on a background thread, and a queued job holds what it compiles (old
// versions' scopes included) until that thread gets to it, which on a
// loaded machine was most of the reloads. So the child runs with V8's
// `--single-threaded` (no background compiles or GC tasks) and `--expose-gc`,
// and asserts two things that don't depend on timing:
// - each old version's global scope is collected (a FinalizationRegistry
//   hears of every one within a bounded number of GC rounds);
// - no old version's source is kept: each is a distinct 1 MiB string, so it
//   lives in V8's large-object space, which must not grow by even one source
//   over the reloads (the compilation cache kept every one, and no scope).
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { rootPath } from "../helpers/fixtures.js";
import { runNode } from "../helpers/process.js";

const miniflareModule = pathToFileURL(path.join(rootPath, "dist", "src", "miniflare.js")).href;
const RELOADS = 20;
const SOURCE_BYTES = 1024 * 1024; /* 1 MiB */

interface Retained {
  /** Versions whose global scope is still alive after collecting */
  alive: number[];
  /** Growth of the large-object space (bytes) from the first version to the last */
  grown: number;
}

async function retainedAfterReloads(t: any, modules: boolean): Promise<Retained> {
  const script = `
    import { setImmediate as macrotask } from "node:timers/promises";
    import v8 from "node:v8";
    import { Miniflare } from ${JSON.stringify(miniflareModule)};
    const padding = "// " + "x".repeat(${SOURCE_BYTES}) + "\\n";
    const modules = ${modules};
    const source = (n) => padding + (modules
      ? \`export default { fetch() { return new Response("v\${n}"); } }\`
      : \`addEventListener("fetch", (e) => e.respondWith(new Response("v\${n}")));\`);

    const alive = new Set();
    const registry = new FinalizationRegistry((n) => alive.delete(n));
    async function serve(n) {
      const body = await (await mf.dispatchFetch("http://localhost/")).text();
      if (body !== "v" + n) throw new Error("version " + n + " served " + body);
      registry.register(await mf.getGlobalScope(), n);
      alive.add(n);
    }
    // Finalizers run in tasks of their own: a macrotask between collections
    // lets them report. Bounded by rounds, not time; one is usually enough.
    async function collect() {
      for (let round = 0; round < 10 && alive.size > 1; round++) {
        gc();
        await macrotask();
      }
      gc();
      return v8.getHeapSpaceStatistics()
        .filter((space) => space.space_name.endsWith("large_object_space"))
        .reduce((sum, space) => sum + space.space_used_size, 0);
    }

    const mf = new Miniflare({ modules, script: source(0) });
    await serve(0);
    const first = await collect();
    for (let n = 1; n <= ${RELOADS}; n++) {
      await mf.setOptions({ script: source(n) });
      await serve(n);
    }
    const last = await collect();
    await mf.dispose();
    console.log(JSON.stringify({ alive: [...alive], grown: last - first }));
  `;
  const run = runNode(t, ["--expose-gc", "--single-threaded", "--input-type=module", "-e", script]);
  assert.equal(await run.exited, 0, run.output());
  return JSON.parse(run.stdout().trim().split("\n").pop()!);
}

for (const modules of [true, false]) {
  const kind = modules ? "modules" : "service worker";
  test(`Miniflare: ${RELOADS} reloads of a 1 MiB ${kind} script keep no old versions`, async (t) => {
    const { alive, grown } = await retainedAfterReloads(t, modules);
    assert.deepEqual(alive, [RELOADS], "global scopes of old versions are still alive");
    // Keeping the sources would add RELOADS MiB
    assert.ok(grown < SOURCE_BYTES, `large-object space grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });
}
