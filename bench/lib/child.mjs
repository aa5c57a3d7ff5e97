// Helpers for scenario child scripts (bench/scenarios/*.mjs).
//
// Protocol between bench/run.mjs (parent) and a scenario child:
//   node [impl node flags] bench/scenarios/<name>.mjs <abs module path> [params JSON]
//   - stdout: exactly one line that is a JSON object of measurements (other
//     non-JSON lines are allowed and ignored; the last JSON line wins).
//   - stderr lines starting with "BENCH-NOTE: " are collected as notes.
//   - stderr line "BENCH-ERROR: <message>" + non-zero exit = failed run.
import { pathToFileURL } from "node:url";
import { realpathSync } from "node:fs";

/** The hello-world modules worker every basic scenario uses. */
export const HELLO_SCRIPT =
  'export default { fetch() { return new Response("hello") } }';
export const HELLO_BODY = "hello";
export function helloOptions() {
  return { modules: true, script: HELLO_SCRIPT };
}

/** True when the module with this import.meta.url is the process entry point. */
export function isMain(metaUrl) {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === metaUrl;
  } catch {
    return false;
  }
}

/** Parses `<module path> [params JSON]` from argv, merging params over defaults. */
export function childArgs(defaults = {}) {
  const modulePath = process.argv[2];
  if (!modulePath) fail("usage: node <scenario>.mjs <implementation module path> [params JSON]");
  let params = { ...defaults };
  if (process.argv[3]) {
    try {
      params = { ...params, ...JSON.parse(process.argv[3]) };
    } catch {
      fail(`params argument is not valid JSON: ${process.argv[3]}`);
    }
  }
  return { modulePath, params };
}

/**
 * Imports the implementation and returns its Miniflare class plus how long the
 * `await import()` took (ms). The caller should take `performance.now()` as the
 * very first thing if it wants process-relative timings.
 */
export async function loadMiniflare(modulePath) {
  const url = modulePath.startsWith("file:") ? modulePath : pathToFileURL(modulePath).href;
  const start = performance.now();
  let mod;
  try {
    mod = await import(url);
  } catch (e) {
    fail(`could not import ${modulePath}: ${e?.message ?? e}`, e);
  }
  const importMs = performance.now() - start;
  const Miniflare = mod.Miniflare ?? mod.default?.Miniflare;
  if (typeof Miniflare !== "function") {
    fail(`${modulePath} does not export a Miniflare class`);
  }
  return { Miniflare, importMs };
}

export function note(message) {
  process.stderr.write(`BENCH-NOTE: ${message}\n`);
}

/** Reports a failed run and exits non-zero. */
export function fail(message, error) {
  process.stderr.write(`BENCH-ERROR: ${String(message).split("\n")[0]}\n`);
  if (error?.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}

/**
 * Prints the measurement line, then lets the process exit on its own (so any
 * teardown cost is part of the wall time). If something keeps the event loop
 * alive for longer than `graceMs` after dispose(), notes it and forces exit.
 */
export function finish(result, { graceMs = 1000 } = {}) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  setTimeout(() => {
    note(
      `process did not exit by itself within ${graceMs} ms after dispose() ` +
        `(open handles: ${describeHandles()}); forced exit`
    );
    process.exit(0);
  }, graceMs).unref();
}

function describeHandles() {
  try {
    const counts = {};
    for (const t of process.getActiveResourcesInfo?.() ?? []) counts[t] = (counts[t] ?? 0) + 1;
    const parts = Object.entries(counts)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k}×${v}`);
    return parts.length ? `${parts.join(", ")}; stdio pipes included` : "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * Runs a scenario's main(), turning any throw into a clean BENCH-ERROR.
 * `cleanupSync` (servers it started, temporary folders) runs however the
 * child ends: at exit, and on SIGINT/SIGTERM before exiting with 1.
 */
export async function runChild(main, { cleanupSync } = {}) {
  if (cleanupSync !== undefined) {
    process.on("exit", cleanupSync);
    for (const sig of ["SIGINT", "SIGTERM"]) {
      process.on(sig, () => {
        cleanupSync();
        process.exit(1);
      });
    }
  }
  try {
    await main();
  } catch (e) {
    fail(e?.message ?? String(e), e);
  }
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

/**
 * Sends `warmup` then `requests` requests one after another: `request(i)`
 * resolves true when the i-th answer was the right one. Throws `what` if any
 * answer was wrong. Returns the standard throughput and latency figures.
 */
export async function measureSequential({ warmup, requests, request, what = "responses had an unexpected body" }) {
  for (let i = 0; i < warmup; i++) {
    if (!(await request(i))) throw new Error(`warm-up request ${i}: ${what}`);
  }
  const lat = new Float64Array(requests);
  let bad = 0;
  const start = performance.now();
  for (let i = 0; i < requests; i++) {
    const s = performance.now();
    const ok = await request(i);
    lat[i] = performance.now() - s;
    if (!ok) bad++;
  }
  const totalMs = performance.now() - start;
  if (bad) throw new Error(`${bad}/${requests} ${what}`);
  lat.sort();
  return {
    requests,
    warmup,
    total_ms: totalMs,
    rps: requests / (totalMs / 1000),
    p50_us: percentile(lat, 50) * 1000,
    p99_us: percentile(lat, 99) * 1000,
    max_us: lat[requests - 1] * 1000,
  };
}

/**
 * A scenario child that builds one instance from `options()` (answering
 * HELLO_BODY at http://localhost/), times sequential dispatchFetch() calls
 * with measureSequential, and finishes with those figures, RSS and import time
 */
export async function sequentialHelloMain(defaults, options) {
  const { modulePath, params } = childArgs(defaults);
  const { Miniflare, importMs } = await loadMiniflare(modulePath);
  const mf = new Miniflare(options());
  const url = "http://localhost/";
  const figures = await measureSequential({
    warmup: params.warmup,
    requests: params.requests,
    request: async () => (await (await mf.dispatchFetch(url)).text()) === HELLO_BODY,
  });
  const rss = process.memoryUsage().rss;
  await mf.dispose();
  finish({ ...figures, rss_mb: rss / 1048576, import_ms: importMs });
}
