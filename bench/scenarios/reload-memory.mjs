// Scenario: memory kept across reloads.
// Child: a service-worker script padded to 5 MiB is reloaded 200 times with
// setOptions({ script }), each version answering one request. The heap is
// measured after full collections at reload 10 and reload 200: a simulator
// that keeps old versions grows by the bundle's size at every reload.
import v8 from "node:v8";
import vm from "node:vm";
import { isMain, childArgs, loadMiniflare, finish, runChild } from "../lib/child.mjs";

export const meta = {
  name: "reload-memory",
  order: 60,
  description:
    "setOptions({ script }) 200 times with a 5 MiB service-worker script, one request per " +
    "version; heap used after full GCs at reload 10 and 200",
  runs: 3,
  warmupRuns: 0,
  timeoutMs: 300_000,
  params: { reloads: 200, early: 10, paddingMiB: 5 },
  metrics: [
    { key: "heap_early_mb", label: "heap after 10 reloads", unit: "MB", better: "lower" },
    { key: "heap_late_mb", label: "heap after 200 reloads", unit: "MB", better: "lower" },
    { key: "growth_mb", label: "growth from reload 10 to 200", unit: "MB", better: "lower" },
  ],
};

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  // A full collection without --expose-gc on the command line
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc");
  const heapMB = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed / 1e6;
  };

  const { Miniflare } = await loadMiniflare(modulePath);
  const padding = `// ${"x".repeat(params.paddingMiB * 1024 * 1024)}\n`;
  const source = (n) =>
    `${padding}addEventListener("fetch", (e) => e.respondWith(new Response("v${n}")));`;
  const mf = new Miniflare({ script: source(0) });
  let early = NaN;
  for (let n = 1; n <= params.reloads; n++) {
    await mf.setOptions({ script: source(n) });
    const body = await (await mf.dispatchFetch("http://localhost/")).text();
    if (body !== `v${n}`) throw new Error(`reload ${n} served ${JSON.stringify(body)}`);
    if (n === params.early) early = heapMB();
  }
  const late = heapMB();
  await mf.dispose();
  finish({ heap_early_mb: early, heap_late_mb: late, growth_mb: late - early });
}

if (isMain(import.meta.url)) await runChild(main);
