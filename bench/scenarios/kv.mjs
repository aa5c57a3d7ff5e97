// Scenario: Workers KV through a worker, on one warm instance.
// Child, three phases, each through sequential dispatchFetch():
//   1. in memory: `requests` requests, each a put then a get of a 100-byte value,
//      without a compatibility date (Miniflare 2's default, 1970-01-01), then
//      again with compatibilityDate 2022-11-30 (Request/Response getters on the
//      prototype, as in production since 2022-01-31; Miniflare 2 ignores it);
//   2. list: 1,000 keys seeded, then `lists` requests each listing them all;
//   3. on files (kvPersist = a fresh temporary folder): `fileRequests` put+get
//      requests.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  isMain, childArgs, loadMiniflare, finish, runChild, percentile,
} from "../lib/child.mjs";

export const meta = {
  name: "kv",
  order: 30,
  description:
    "KV through a modules worker: `requests` sequential requests each doing put+get " +
    "of 100 bytes (memory); `lists` requests each listing 1,000 keys; `fileRequests` " +
    "put+get requests with kvPersist on a temporary folder",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 180_000,
  params: { requests: 2000, warmup: 1000, lists: 50, fileRequests: 1000 },
  metrics: [
    {
      key: "rps", label: "put+get, memory", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 1.5 },
    },
    { key: "p99_us", label: "put+get latency p99", unit: "µs", better: "lower" },
    {
      key: "rps_dated", label: "put+get, memory, compat 2022-11-30", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 1.5 },
    },
    {
      key: "list_ms", label: "list of 1,000 keys", unit: "ms",
      better: "lower", target: { op: "<=", ratio: 0.7 },
    },
    { key: "file_rps", label: "put+get, files", unit: "req/s", better: "higher" },
  ],
};

const VALUE = "x".repeat(100);

const SCRIPT = `
const VALUE = ${JSON.stringify(VALUE)};
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/list") {
      const { keys } = await env.NS.list();
      return new Response(String(keys.length));
    }
    const key = url.pathname.substring(1);
    await env.NS.put(key, VALUE);
    return new Response(await env.NS.get(key));
  }
}`;

async function putGet(mf, n, prefix) {
  const lat = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const body = await (await mf.dispatchFetch(`http://localhost/${prefix}${i}`)).text();
    lat[i] = performance.now() - s;
    if (body !== VALUE) throw new Error(`unexpected body: ${JSON.stringify(body.slice(0, 50))}`);
  }
  return { totalMs: performance.now() - start, lat };
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const { Miniflare } = await loadMiniflare(modulePath);

  // 1. put+get in memory: both instances warmed up first, then measured
  const mf = new Miniflare({ modules: true, script: SCRIPT, kvNamespaces: ["NS"] });
  const dated = new Miniflare({
    modules: true, script: SCRIPT, kvNamespaces: ["NS"], compatibilityDate: "2022-11-30",
  });
  await putGet(mf, params.warmup, "warm");
  await putGet(dated, params.warmup, "warm");
  const { totalMs, lat } = await putGet(mf, params.requests, "key");
  const datedMs = (await putGet(dated, params.requests, "key")).totalMs;
  await mf.dispose();
  await dated.dispose();

  // 2. list over 1,000 keys (a fresh instance holding exactly those)
  const listing = new Miniflare({ modules: true, script: SCRIPT, kvNamespaces: ["NS"] });
  const ns = await listing.getKVNamespace("NS");
  for (let i = 0; i < 1000; i++) await ns.put(`item:${String(i).padStart(4, "0")}`, VALUE);
  for (let i = 0; i < 5; i++) await (await listing.dispatchFetch("http://localhost/list")).text();
  const listStart = performance.now();
  for (let i = 0; i < params.lists; i++) {
    const body = await (await listing.dispatchFetch("http://localhost/list")).text();
    if (body !== "1000") throw new Error(`list returned ${body} keys`);
  }
  const listMs = (performance.now() - listStart) / params.lists;
  await listing.dispose();

  // 3. put+get on files
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mf-bench-kv-"));
  let fileMs;
  try {
    const onFiles = new Miniflare({ modules: true, script: SCRIPT, kvNamespaces: ["NS"], kvPersist: dir });
    await putGet(onFiles, 50, "warm");
    fileMs = (await putGet(onFiles, params.fileRequests, "key")).totalMs;
    await onFiles.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  lat.sort();
  const n = params.requests;
  finish({
    requests: n,
    total_ms: totalMs,
    rps: n / (totalMs / 1000),
    p50_us: percentile(lat, 50) * 1000,
    p99_us: percentile(lat, 99) * 1000,
    rps_dated: n / (datedMs / 1000),
    list_ms: listMs,
    file_rps: params.fileRequests / (fileMs / 1000),
  });
}

if (isMain(import.meta.url)) await runChild(main);
