// Reloads must not keep old versions of the worker alive (demand #11): a
// long --watch session with a big bundle used to grow by the bundle's size
// at every reload, through V8's compilation cache. Run in a child process
// with --expose-gc, so the heap can be measured after full collections.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { rootPath } from "../helpers/fixtures.js";
import { runNode } from "../helpers/process.js";

const miniflareModule = pathToFileURL(path.join(rootPath, "dist", "src", "miniflare.js")).href;

/** Heap used (MB) after `first` and after `last` reloads of a 1 MiB worker */
async function heapAfterReloads(t: any, modules: boolean, first: number, last: number) {
  const script = `
    import { Miniflare } from ${JSON.stringify(miniflareModule)};
    const padding = "// " + "x".repeat(1024 * 1024) + "\\n";
    const modules = ${modules};
    const source = (n) => padding + (modules
      ? \`export default { fetch() { return new Response("v\${n}"); } }\`
      : \`addEventListener("fetch", (e) => e.respondWith(new Response("v\${n}")));\`);
    const mf = new Miniflare({ modules, script: source(0) });
    const heap = {};
    for (let n = 1; n <= ${last}; n++) {
      await mf.setOptions({ script: source(n) });
      const body = await (await mf.dispatchFetch("http://localhost/")).text();
      if (body !== "v" + n) throw new Error("reload " + n + " served " + body);
      if (n === ${first} || n === ${last}) {
        gc(); gc();
        heap[n] = process.memoryUsage().heapUsed / 1e6;
      }
    }
    await mf.dispose();
    console.log(JSON.stringify(heap));
  `;
  const run = runNode(t, ["--expose-gc", "--input-type=module", "-e", script]);
  assert.equal(await run.exited, 0, run.output());
  const heap = JSON.parse(run.output().trim().split("\n").pop()!);
  return { first: heap[first] as number, last: heap[last] as number };
}

for (const modules of [true, false]) {
  test(`Miniflare: 60 reloads of a 1 MiB ${modules ? "modules" : "service worker"} script keep no old versions`, async (t) => {
    const { first, last } = await heapAfterReloads(t, modules, 10, 60);
    // Keeping each version would add at least 50 MB (1 MiB x 50 reloads)
    assert.ok(last - first < 10, `heap grew from ${first.toFixed(1)} MB to ${last.toFixed(1)} MB`);
  });
}
