// Scenario: memory under a long steady load (does it reach a plateau?).
// Child, two parts:
//   a. dispatch: in this process, one hello-world modules worker answers
//      `dispatches` sequential dispatchFetch() calls (every body read and
//      checked); the process's memory is sampled `samples` times, evenly.
//   b. http: the implementation's CLI serves the hello worker from a
//      temporary project folder, in its own process started through
//      bench/lib/memory-probe.mjs (the CLI runs unchanged; the probe answers
//      memory samples over IPC); autocannon, here in this child, sends
//      `requests` requests in `samples` equal batches (`connections`
//      connections, fresh ones per batch, every body checked), and the
//      server's memory is sampled after each batch.
// Every sample is process.memoryUsage() after two full collections (gc got
// through v8.setFlagsFromString("--expose-gc"), as in reload-memory.mjs, so no
// flag changes how the implementation runs). Reported per part: RSS and heap
// used at the midpoint and at the end, and the growth between them (over the
// last half of the load). A simulator that keeps something per request grows
// linearly; one that has reached its plateau grows by ~0.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import { setTimeout as sleep } from "node:timers/promises";
import {
  isMain, childArgs, loadMiniflare, helloOptions, HELLO_SCRIPT, HELLO_BODY, finish, runChild, note, fail,
} from "../lib/child.mjs";
import { freePort, resolveCli } from "../lib/cli.mjs";
import { ensureTool, requireTool } from "../lib/tools.mjs";

const PROBE = fileURLToPath(new URL("../lib/memory-probe.mjs", import.meta.url));
const LIMIT_MB = 2;

export const meta = {
  name: "soak",
  order: 70,
  description:
    "memory plateau: (a) `dispatches` sequential dispatchFetch() on one hello modules worker, " +
    "memory of that process; (b) `requests` HTTP requests (autocannon, `connections` connections, " +
    "in `samples` batches) to the CLI serving the hello worker, memory of the server process " +
    "(through bench/lib/memory-probe.mjs). RSS and heap used after two full GCs, sampled every " +
    "1/`samples` of the load; growth = end − midpoint",
  runs: 2, // ~3.5 min idle on the 2-core dev machine; 3 would pass 5 min
  warmupRuns: 0, // the first half of each part is its own warm-up
  timeoutMs: 600_000,
  params: {
    dispatches: 100_000, requests: 50_000, samples: 10, connections: 10,
    settleMs: 100, startTimeoutMs: 20_000, killGraceMs: 3_000,
  },
  // Growths are judged on their own (near 0, either sign): `reference` drops
  // their ours/mf2 ratio; the < 2 MB target applies to each side's figure.
  metrics: [
    { key: "d_rss_mid_mb", label: "dispatchFetch: RSS at 50%", unit: "MB", better: "lower" },
    { key: "d_rss_end_mb", label: "dispatchFetch: RSS at 100%", unit: "MB", better: "lower" },
    {
      key: "d_rss_growth_mb", label: "dispatchFetch: RSS growth, last half", unit: "MB",
      better: "lower", target: { op: "<", value: LIMIT_MB }, reference: true,
    },
    { key: "d_heap_mid_mb", label: "dispatchFetch: heap used at 50%", unit: "MB", better: "lower" },
    { key: "d_heap_end_mb", label: "dispatchFetch: heap used at 100%", unit: "MB", better: "lower" },
    { key: "d_heap_growth_mb", label: "dispatchFetch: heap growth, last half", unit: "MB", better: "lower", reference: true },
    { key: "h_rss_mid_mb", label: "HTTP server: RSS at 50%", unit: "MB", better: "lower" },
    { key: "h_rss_end_mb", label: "HTTP server: RSS at 100%", unit: "MB", better: "lower" },
    {
      key: "h_rss_growth_mb", label: "HTTP server: RSS growth, last half", unit: "MB",
      better: "lower", target: { op: "<", value: LIMIT_MB }, reference: true,
    },
    { key: "h_heap_mid_mb", label: "HTTP server: heap used at 50%", unit: "MB", better: "lower" },
    { key: "h_heap_end_mb", label: "HTTP server: heap used at 100%", unit: "MB", better: "lower" },
    { key: "h_heap_growth_mb", label: "HTTP server: heap growth, last half", unit: "MB", better: "lower", reference: true },
    { key: "d_seconds", label: "dispatchFetch part took", unit: "s", better: "lower" },
    { key: "h_seconds", label: "HTTP part took", unit: "s", better: "lower" },
  ],
};

/** The parent calls this once before any run: autocannon's install isn't timed. */
export function setup({ log }) {
  ensureTool("autocannon", { log });
}

/**
 * The growth target is checked by the harness on ours' median only; here it is
 * checked for every side and every run ("where it runs": MF2 too).
 */
export function notes(metrics) {
  const out = [];
  for (const [key, part] of [["d_rss_growth_mb", "dispatchFetch"], ["h_rss_growth_mb", "HTTP server"]]) {
    const m = metrics.find((x) => x.key === key);
    for (const id of ["mf2", "ours"]) {
      const st = m?.[id];
      if (!st?.n) continue;
      const verdict = st.max < LIMIT_MB ? "PASS" : st.median < LIMIT_MB ? "PASS (median; not every run)" : "FAIL";
      out.push(
        `${id} ${part} RSS growth over the last half: median ${st.median.toFixed(2)} MB ` +
          `(runs ${st.min.toFixed(2)} … ${st.max.toFixed(2)}), target < ${LIMIT_MB} MB: ${verdict}`
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

const MB = 1e6;

function summary(prefix, samples, seconds) {
  const mid = samples[samples.length >> 1];
  const end = samples[samples.length - 1];
  return {
    [`${prefix}_rss_mid_mb`]: mid.rss / MB,
    [`${prefix}_rss_end_mb`]: end.rss / MB,
    [`${prefix}_rss_growth_mb`]: (end.rss - mid.rss) / MB,
    [`${prefix}_heap_mid_mb`]: mid.heapUsed / MB,
    [`${prefix}_heap_end_mb`]: end.heapUsed / MB,
    [`${prefix}_heap_growth_mb`]: (end.heapUsed - mid.heapUsed) / MB,
    [`${prefix}_seconds`]: seconds,
    // every sample, for the raw results: [requests done, rss MB, heap used MB]
    [`${prefix}_samples`]: samples.map((s) => [s.done, +(s.rss / MB).toFixed(3), +(s.heapUsed / MB).toFixed(3)]),
  };
}

// a. dispatchFetch in this process ------------------------------------------

async function dispatchPart(modulePath, params) {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc");
  v8.setFlagsFromString("--no-expose-gc"); // worker contexts made later get no `gc`
  const sampleSelf = async (done) => {
    await new Promise(setImmediate); // let anything the last request scheduled run
    gc();
    gc();
    const { rss, heapUsed } = process.memoryUsage();
    return { done, rss, heapUsed };
  };

  const { Miniflare } = await loadMiniflare(modulePath);
  const mf = new Miniflare(helloOptions());
  const url = "http://localhost/";
  const n = params.dispatches;
  const samples = [];
  const start = performance.now();
  for (let i = 1; i <= n; i++) {
    const body = await (await mf.dispatchFetch(url)).text();
    if (body !== HELLO_BODY) throw new Error(`dispatchFetch ${i} answered ${JSON.stringify(body)}`);
    if (i === 1 || (i * params.samples) % n === 0) samples.push(await sampleSelf(i));
  }
  const seconds = (performance.now() - start) / 1000;
  await mf.dispose();
  return summary("d", samples, seconds);
}

// b. the CLI's HTTP server in its own process ---------------------------------

const servers = new Set();
const tempDirs = new Set();

function cleanupSync() {
  for (const s of servers) {
    try {
      s.kill("SIGKILL");
    } catch {}
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
}

function logTail(file, n = 8) {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-n).join(" | ") || "(empty)";
  } catch {
    return "(unreadable)";
  }
}

async function httpPart(modulePath, params) {
  const autocannon = requireTool("autocannon");
  const cli = resolveCli(modulePath);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "mf-bench-soak-"));
  tempDirs.add(work);
  const project = path.join(work, "hello");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "worker.mjs"), `${HELLO_SCRIPT}\n`);
  const logFile = path.join(work, "server.log");
  const fd = fs.openSync(logFile, "w");
  const port = await freePort();
  // Same node flags as this child (MF2: --experimental-vm-modules), as in http.mjs.
  const child = spawn(
    process.execPath,
    [...process.execArgv, PROBE, cli, "worker.mjs", "--modules", "--port", String(port),
      "--no-update-check", "--no-cf-fetch"],
    { cwd: project, stdio: ["ignore", fd, fd, "ipc"] }
  );
  fs.closeSync(fd);
  servers.add(child);
  let exit = null;
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
      servers.delete(child);
      resolve();
    });
    child.on("error", (e) => {
      exit = `failed to start: ${e.message}`;
      servers.delete(child);
      resolve();
    });
  });
  const waiting = new Map(); // sample id → resolve
  child.on("message", (m) => {
    if (m?.type === "sample") waiting.get(m.id)?.(m);
  });
  let nextId = 0;
  const sampleServer = async (done) => {
    await sleep(params.settleMs); // closed connections finish closing
    const id = nextId++;
    const reply = new Promise((resolve, reject) => {
      waiting.set(id, resolve);
      exited.then(() => reject(new Error(`server ${exit} while sampling: ${logTail(logFile)}`)));
    });
    child.send({ type: "sample", id });
    const m = await reply;
    waiting.delete(id);
    return { done, rss: m.rss, heapUsed: m.heapUsed };
  };

  const url = `http://127.0.0.1:${port}/`;
  try {
    // Wait until it answers.
    const t0 = performance.now();
    let last = "no answer";
    for (;;) {
      if (exit) throw new Error(`server ${exit} before answering: ${logTail(logFile)}`);
      try {
        const res = await fetch(url);
        const body = await res.text();
        if (res.status === 200 && body === HELLO_BODY) break;
        last = `${res.status} ${JSON.stringify(body.slice(0, 80))}`;
      } catch (e) {
        last = e?.cause?.code ?? e?.message ?? String(e);
      }
      if (performance.now() - t0 > params.startTimeoutMs) {
        throw new Error(`server did not answer within ${params.startTimeoutMs} ms (last: ${last}); log: ${logTail(logFile)}`);
      }
      await sleep(20);
    }

    const batch = params.requests / params.samples;
    if (!Number.isInteger(batch)) throw new Error("requests must be a multiple of samples");
    const samples = [await sampleServer(0)];
    let done = 0;
    const start = performance.now();
    for (let b = 0; b < params.samples; b++) {
      const r = await autocannon({
        url, connections: params.connections, amount: batch, expectBody: HELLO_BODY,
      });
      const bad = r.errors + r.timeouts + r.non2xx + r.mismatches;
      if (bad || r["2xx"] !== batch) {
        throw new Error(
          `batch ${b + 1}: ${r["2xx"]} good answers of ${batch}; ${r.errors} errors, ${r.timeouts} timeouts, ` +
            `${r.non2xx} non-2xx, ${r.mismatches} wrong bodies; log: ${logTail(logFile)}`
        );
      }
      done += batch;
      if (exit) throw new Error(`server ${exit} during the load: ${logTail(logFile)}`);
      samples.push(await sampleServer(done));
    }
    const seconds = (performance.now() - start) / 1000;
    return summary("h", samples, seconds);
  } finally {
    if (!exit) {
      child.kill("SIGINT");
      const timer = setTimeout(() => {
        note(`server did not exit within ${params.killGraceMs} ms of SIGINT; sent SIGKILL`);
        child.kill("SIGKILL");
      }, params.killGraceMs);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(work, { recursive: true, force: true });
    tempDirs.delete(work);
  }
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  // Never outlive the harness's timeout with a server still running.
  const deadline = setTimeout(() => {
    cleanupSync();
    fail(`scenario still running after ${meta.timeoutMs - 5000} ms; server killed`);
  }, meta.timeoutMs - 5000);
  deadline.unref();

  const dispatch = await dispatchPart(modulePath, params);
  const http = await httpPart(modulePath, params);
  clearTimeout(deadline);
  finish({ ...dispatch, ...http });
}

if (isMain(import.meta.url)) {
  await runChild(main, { cleanupSync });
}
