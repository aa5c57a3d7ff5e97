// Scenario: the Cache API through a worker, on one warm instance.
// Child: `requests` sequential dispatchFetch() requests, each putting a 1 KiB
// response into caches.default (Cache-Control: max-age=3600) and matching it
// back, in memory.
import {
  isMain, childArgs, loadMiniflare, finish, runChild, measureSequential,
} from "../lib/child.mjs";

export const meta = {
  name: "cache",
  order: 35,
  description:
    "Cache API through a modules worker: `requests` sequential requests each doing " +
    "caches.default.put() of a 1 KiB response then match() (memory)",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 180_000,
  params: { requests: 2000, warmup: 1000 },
  metrics: [
    {
      key: "rps", label: "put+match of 1 KiB", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    { key: "p99_us", label: "put+match latency p99", unit: "µs", better: "lower" },
  ],
};

const VALUE = "x".repeat(1024);

const SCRIPT = `
const VALUE = ${JSON.stringify(VALUE)};
export default {
  async fetch(request) {
    const key = "http://cache.local" + new URL(request.url).pathname;
    const cache = caches.default;
    await cache.put(key, new Response(VALUE, { headers: { "Cache-Control": "max-age=3600" } }));
    const cached = await cache.match(key);
    return new Response(cached.body);
  }
}`;

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const { Miniflare } = await loadMiniflare(modulePath);
  const mf = new Miniflare({ modules: true, script: SCRIPT });
  const figures = await measureSequential({
    warmup: params.warmup,
    requests: params.requests,
    request: async (i) => (await (await mf.dispatchFetch(`http://localhost/key${i}`)).text()) === VALUE,
  });
  await mf.dispose();
  finish(figures);
}

if (isMain(import.meta.url)) await runChild(main);
