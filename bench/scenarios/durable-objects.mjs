// Scenario: Durable Objects through a worker, on one warm instance.
// Child, three phases, each through sequential dispatchFetch(); every request
// increments a counter kept in the object's storage and returns the new value:
//   1. one object: `warmup` requests to object "warm", then `requests` requests
//      to object "one" (bodies must be 1, 2, …, requests);
//   2. round-robin: `requests` requests, request i to object `rr${i % objects}`
//      (body must be floor(i / objects) + 1);
//   3. on files (durableObjectsPersist = a fresh temporary folder):
//      `fileRequests` requests to one object.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  isMain, childArgs, loadMiniflare, finish, runChild, percentile,
} from "../lib/child.mjs";

export const meta = {
  name: "durable-objects",
  order: 40,
  description:
    "Durable Objects through a modules worker, each request incrementing a counter " +
    "in the object's storage (get + put): `warmup` then `requests` sequential requests " +
    "to one object; `requests` requests round-robin over `objects` objects; " +
    "`fileRequests` requests to one object with durableObjectsPersist on a temporary folder",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 120_000,
  params: { requests: 2000, warmup: 500, objects: 100, fileRequests: 500 },
  metrics: [
    {
      key: "rps", label: "one object, memory", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 1.5 },
    },
    { key: "p99_us", label: "one object latency p99", unit: "µs", better: "lower" },
    {
      key: "rps_rr", label: "round-robin over 100 objects", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 1.5 },
    },
    { key: "p99_rr_us", label: "round-robin latency p99", unit: "µs", better: "lower" },
    { key: "file_rps", label: "one object, files", unit: "req/s", better: "higher" },
  ],
};

const SCRIPT = `
export class Counter {
  constructor(state, env) {
    this.storage = state.storage;
  }
  async fetch(request) {
    const v = ((await this.storage.get("n")) ?? 0) + 1;
    await this.storage.put("n", v);
    return new Response(String(v));
  }
}
export default {
  async fetch(request, env) {
    const name = new URL(request.url).pathname.substring(1);
    return env.COUNTER.get(env.COUNTER.idFromName(name)).fetch(request);
  }
}`;

function options(extra = {}) {
  return { modules: true, script: SCRIPT, durableObjects: { COUNTER: "Counter" }, ...extra };
}

/**
 * Sends `n` sequential requests; request i goes to object `nameOf(i)` and must
 * answer `String(expected(i))`. Returns total time and per-request latencies.
 */
async function increments(mf, n, nameOf, expected) {
  const lat = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const name = nameOf(i);
    const s = performance.now();
    const body = await (await mf.dispatchFetch(`http://localhost/${name}`)).text();
    lat[i] = performance.now() - s;
    const want = String(expected(i));
    if (body !== want) {
      throw new Error(
        `request ${i} to object "${name}": expected body ${want}, got ${JSON.stringify(body.slice(0, 80))}`
      );
    }
  }
  return { totalMs: performance.now() - start, lat };
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const { Miniflare } = await loadMiniflare(modulePath);
  const n = params.requests;
  const objects = params.objects;

  // 1. one object in memory (warmed up on another object first)
  const mf = new Miniflare(options());
  await increments(mf, params.warmup, () => "warm", (i) => i + 1);
  const one = await increments(mf, n, () => "one", (i) => i + 1);

  // 2. round-robin over `objects` objects, same instance
  const rr = await increments(mf, n, (i) => `rr${i % objects}`, (i) => Math.floor(i / objects) + 1);
  await mf.dispose();

  // 3. one object on files
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mf-bench-do-"));
  let fileMs;
  try {
    const onFiles = new Miniflare(options({ durableObjectsPersist: dir }));
    await increments(onFiles, 50, () => "warm", (i) => i + 1);
    fileMs = (await increments(onFiles, params.fileRequests, () => "one", (i) => i + 1)).totalMs;
    await onFiles.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  one.lat.sort();
  rr.lat.sort();
  finish({
    requests: n,
    total_ms: one.totalMs,
    rps: n / (one.totalMs / 1000),
    p50_us: percentile(one.lat, 50) * 1000,
    p99_us: percentile(one.lat, 99) * 1000,
    rps_rr: n / (rr.totalMs / 1000),
    p99_rr_us: percentile(rr.lat, 99) * 1000,
    file_rps: params.fileRequests / (fileMs / 1000),
  });
}

if (isMain(import.meta.url)) await runChild(main);
