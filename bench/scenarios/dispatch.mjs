// Scenario: sequential dispatchFetch throughput on one warm instance.
// Child: one hello-world modules worker, `warmup` requests, then `requests`
// sequential dispatchFetch() calls, each awaiting `.text()`.
import {
  isMain, helloOptions, runChild, sequentialHelloMain,
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

const main = () => sequentialHelloMain(meta.params, helloOptions);

if (isMain(import.meta.url)) await runChild(main);
