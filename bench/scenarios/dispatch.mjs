// Scenario: sequential dispatchFetch throughput on one warm instance.
// Child: one hello-world modules worker, `warmup` requests, then `requests`
// sequential dispatchFetch() calls, each awaiting `.text()`.
import {
  isMain, childArgs, loadMiniflare, helloOptions, HELLO_BODY, finish, runChild, percentile,
} from "../lib/child.mjs";

export const meta = {
  name: "dispatch",
  order: 20,
  description:
    "one instance, hello modules worker: `warmup` then `requests` sequential " +
    "await (await mf.dispatchFetch(url)).text()",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 120_000,
  params: { requests: 2000, warmup: 200 },
  metrics: [
    {
      key: "rps", label: "sequential dispatchFetch", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 1.5 },
    },
    { key: "p50_us", label: "latency p50", unit: "µs", better: "lower" },
    { key: "p99_us", label: "latency p99", unit: "µs", better: "lower" },
  ],
};

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const { Miniflare, importMs } = await loadMiniflare(modulePath);
  const mf = new Miniflare(helloOptions());
  const url = "http://localhost/";

  for (let i = 0; i < params.warmup; i++) {
    const body = await (await mf.dispatchFetch(url)).text();
    if (body !== HELLO_BODY) throw new Error(`unexpected response body: ${JSON.stringify(body)}`);
  }

  const n = params.requests;
  const lat = new Float64Array(n);
  let bad = 0;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const body = await (await mf.dispatchFetch(url)).text();
    lat[i] = performance.now() - s;
    if (body !== HELLO_BODY) bad++;
  }
  const totalMs = performance.now() - start;
  if (bad) throw new Error(`${bad}/${n} responses had an unexpected body`);

  const rss = process.memoryUsage().rss;
  await mf.dispose();

  lat.sort();
  finish({
    requests: n,
    warmup: params.warmup,
    total_ms: totalMs,
    rps: n / (totalMs / 1000),
    p50_us: percentile(lat, 50) * 1000,
    p99_us: percentile(lat, 99) * 1000,
    max_us: lat[n - 1] * 1000,
    rss_mb: rss / 1048576,
    import_ms: importMs,
  });
}

if (isMain(import.meta.url)) await runChild(main);
