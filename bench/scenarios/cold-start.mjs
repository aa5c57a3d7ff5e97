// Scenario: cold start of a whole process.
// Child: import the implementation, construct a hello-world modules worker,
// await the first dispatchFetch response body, print it, dispose, exit.
// The parent measures wall time spawn → exit; the child reports its own
// import and first-response timings.
import {
  isMain, childArgs, loadMiniflare, helloOptions, HELLO_BODY, finish, runChild,
} from "../lib/child.mjs";

export const meta = {
  name: "cold-start",
  order: 10,
  description:
    "fresh `node` process: spawn → import → new Miniflare(hello modules worker) → " +
    "first dispatchFetch().text() → dispose() → exit",
  runs: 15,
  warmupRuns: 1,
  timeoutMs: 30_000,
  measureWall: true, // parent adds `wall_ms` (spawn → exit) to every sample
  params: {},
  metrics: [
    {
      key: "wall_ms", label: "spawn → response → exit", unit: "ms",
      better: "lower", target: { op: "<=", ratio: 0.6 },
    },
    { key: "import_ms", label: "await import(pkg)", unit: "ms", better: "lower" },
    {
      key: "first_response_ms", label: "new Miniflare → 1st response", unit: "ms",
      better: "lower",
    },
  ],
};

async function main() {
  const scriptStartMs = performance.now(); // ms since process time origin
  const { modulePath } = childArgs(meta.params);
  const { Miniflare, importMs } = await loadMiniflare(modulePath);

  const t0 = performance.now();
  const mf = new Miniflare(helloOptions());
  const res = await mf.dispatchFetch("http://localhost/");
  const body = await res.text();
  const t1 = performance.now();
  if (body !== HELLO_BODY) throw new Error(`unexpected response body: ${JSON.stringify(body)}`);
  process.stdout.write(`${body}\n`);

  await mf.dispose();
  const t2 = performance.now();

  finish({
    body,
    script_start_ms: scriptStartMs,
    import_ms: importMs,
    first_response_ms: t1 - t0,
    response_at_ms: t1,
    dispose_ms: t2 - t1,
  });
}

if (isMain(import.meta.url)) await runChild(main);
