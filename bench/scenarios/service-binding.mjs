// Scenario: a worker calling a second worker through a service binding.
// Child: a parent modules worker whose fetch handler returns
// `env.BACKEND.fetch(request)`, and a mounted worker "backend" answering
// "hello"; `warmup` then `requests` sequential dispatchFetch() calls, each
// awaiting `.text()`. Both sides get the same Miniflare 2 options (mounts and
// serviceBindings), so the figure is the cost of one in-process hop.
import {
  isMain, HELLO_SCRIPT, runChild, sequentialHelloMain,
} from "../lib/child.mjs";

export const meta = {
  name: "service-binding",
  order: 25,
  description:
    "parent worker → service binding → mounted hello worker: `warmup` then `requests` " +
    "sequential await (await mf.dispatchFetch(url)).text()",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 120_000,
  params: { requests: 2000, warmup: 200 },
  metrics: [
    {
      key: "rps", label: "sequential dispatchFetch through a service binding", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    { key: "p50_us", label: "latency p50", unit: "µs", better: "lower" },
    { key: "p99_us", label: "latency p99", unit: "µs", better: "lower" },
  ],
};

const PARENT_SCRIPT =
  "export default { fetch(request, env) { return env.BACKEND.fetch(request) } }";

export function serviceBindingOptions() {
  return {
    modules: true,
    script: PARENT_SCRIPT,
    serviceBindings: { BACKEND: "backend" },
    mounts: { backend: { modules: true, script: HELLO_SCRIPT } },
  };
}

const main = () => sequentialHelloMain(meta.params, serviceBindingOptions);

if (isMain(import.meta.url)) await runChild(main);
