// Scenario: requests routed over many mounted workers.
// Child: a parent hello worker and `mounts` mounted modules workers, mount i
// named "w<i>" with the route "w<i>.mf/*" and answering its own name;
// `warmup` then `requests` sequential dispatchFetch() calls to
// http://w<i % mounts>.mf/..., each body checked against the mount it must
// reach. Same Miniflare 2 options on both sides.
import { isMain, childArgs, loadMiniflare, HELLO_SCRIPT, finish, runChild, measureSequential } from "../lib/child.mjs";

export const meta = {
  name: "routed",
  order: 26,
  description:
    "`mounts` mounted workers with routes w<i>.mf/*, requests spread round-robin over them: " +
    "`warmup` then `requests` sequential await (await mf.dispatchFetch(url)).text()",
  runs: 7,
  warmupRuns: 1,
  timeoutMs: 120_000,
  params: { mounts: 20, requests: 2000, warmup: 200 },
  metrics: [
    {
      key: "rps", label: "sequential dispatchFetch over routed mounts", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    { key: "p50_us", label: "latency p50", unit: "µs", better: "lower" },
    { key: "p99_us", label: "latency p99", unit: "µs", better: "lower" },
    { key: "startup_ms", label: "new Miniflare → first routed response", unit: "ms", better: "lower" },
  ],
};

export function routedOptions(count) {
  const mounts = {};
  for (let i = 0; i < count; i++) {
    mounts[`w${i}`] = {
      modules: true,
      script: `export default { fetch() { return new Response("w${i}") } }`,
      routes: [`w${i}.mf/*`],
    };
  }
  return { modules: true, script: HELLO_SCRIPT, mounts };
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const { Miniflare, importMs } = await loadMiniflare(modulePath);
  const count = params.mounts;
  const urls = Array.from({ length: count }, (_, i) => `http://w${i}.mf/path?n=${i}`);
  const check = async (i) => {
    const body = await (await mf.dispatchFetch(urls[i % count])).text();
    return body === `w${i % count}`;
  };

  const startupStart = performance.now();
  const mf = new Miniflare(routedOptions(count));
  if (!(await check(0))) throw new Error("the first routed request reached the wrong worker");
  const startupMs = performance.now() - startupStart;

  const figures = await measureSequential({
    warmup: params.warmup,
    requests: params.requests,
    request: check,
    what: "requests reached the wrong worker",
  });

  const rss = process.memoryUsage().rss;
  await mf.dispose();

  finish({
    ...figures,
    mounts: count,
    startup_ms: startupMs,
    rss_mb: rss / 1048576,
    import_ms: importMs,
  });
}

if (isMain(import.meta.url)) await runChild(main);
