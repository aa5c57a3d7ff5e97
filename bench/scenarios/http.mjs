// Scenario: the HTTP server, through each implementation's CLI.
// Child, three phases, each server in its own process (autocannon and the
// polling client run here, in the child):
//   1. ceiling: a bare node:http server (plain `node`) answering "hello" —
//      only in ours' runs (or in every run when ours isn't run, or when the
//      child is run by hand): it is the same server for both sides, and
//      measuring it in every run would cost another 6 s per run;
//   2. throughput: the CLI serving the hello-world modules worker from a
//      temporary project folder (`<cli> worker.mjs --modules --port P`);
//      for both 1 and 2: `warmup` s of autocannon, then `duration` s measured
//      with `connections` connections on 127.0.0.1 (every body is checked);
//   3. reload: the CLI with `--watch` on a small worker answering "v0"; then
//      `reloads` times: write a new version answering "v<i>" and poll with
//      fetch() every `pollMs` ms until the new body shows; time write → body.
// The CLI is found from the implementation's module path (its package.json
// "bin") and run with the same node flags as this child (e.g. MF2's
// --experimental-vm-modules). Every server gets SIGINT at the end, SIGKILL if
// it hasn't exited after `killGraceMs`; temporary folders are removed.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  isMain, childArgs, HELLO_SCRIPT, HELLO_BODY, finish, runChild, note, percentile, fail,
} from "../lib/child.mjs";
import { median } from "../lib/stats.mjs";
import { ensureTool, requireTool } from "../lib/tools.mjs";
import { freePort, resolveCli } from "../lib/cli.mjs";

export const meta = {
  name: "http",
  order: 50,
  description:
    "the CLI's HTTP server (`<cli> worker.mjs --modules --port P`, hello modules worker): " +
    "autocannon, `connections` connections on 127.0.0.1, `warmup` s then `duration` s; " +
    "a bare node:http server measured the same way in ours' runs as the ceiling; " +
    "then `--watch`: `reloads` × (write a new worker version → first fetch() showing " +
    "its body, polled every `pollMs` ms)",
  runs: 3,
  warmupRuns: 0, // each run warms its servers up itself (`warmup` s of load)
  timeoutMs: 90_000,
  params: {
    duration: 5, warmup: 1, connections: 10,
    reloads: 10, pollMs: 5, settleMs: 100, jitterMs: 250,
    startTimeoutMs: 20_000, reloadTimeoutMs: 10_000, killGraceMs: 3_000,
  },
  metrics: [
    {
      key: "rps", label: "CLI server, 10 connections", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    {
      key: "p99_ms", label: "CLI server latency p99", unit: "ms",
      better: "lower", target: { op: "<=", ratio: 1 },
    },
    {
      key: "bare_rps", label: "bare node:http (ceiling, in ours' runs)", unit: "req/s",
      better: "higher", reference: true,
    },
    {
      key: "reload_ms", label: "--watch: write → new body", unit: "ms",
      better: "lower", target: { op: "<", value: 150 },
    },
    { key: "reload_max_ms", label: "--watch: slowest reload of the run", unit: "ms", better: "lower" },
  ],
};

/** The parent calls this once before any run: autocannon's install isn't timed. */
export function setup({ log }) {
  ensureTool("autocannon", { log });
}

/** Extra report notes from the medians (metric key → { mf2, ours } stats). */
export function notes(metrics) {
  const out = [];
  const rps = metrics.find((m) => m.key === "rps");
  const bare = metrics.find((m) => m.key === "bare_rps");
  const b = bare?.ours?.n ? bare.ours.median : bare?.mf2?.median;
  for (const id of ["ours", "mf2"]) {
    const r = rps?.[id]?.median;
    if (Number.isFinite(r) && Number.isFinite(b) && b > 0) {
      out.push(`${id}/bare node:http req/s = ${(r / b).toFixed(2)} (${Math.round(r)} / ${Math.round(b)})`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

const BARE_SERVER = `
const port = Number(process.argv[1]);
require("node:http")
  .createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain;charset=UTF-8" });
    res.end(${JSON.stringify(HELLO_BODY)});
  })
  .listen(port, "127.0.0.1");
`;

/** Low-discrepancy sequence in [0, 1): fractional parts of i × golden ratio. */
const jitter = (i) => (i * 0.6180339887498949) % 1;

const versionScript = (i) => `export default { fetch() { return new Response("v${i}") } }\n`;

/** Whether this child measures the bare node:http ceiling (see the header). */
function measuresBare() {
  const impl = process.env.BENCH_IMPL;
  if (!impl) return true; // run by hand
  const all = (process.env.BENCH_IMPLS ?? "").split(",");
  return all.includes("ours") ? impl === "ours" : true;
}

// Everything started here, so that any exit path can clean up.
const servers = new Set();
const tempDirs = new Set();

function cleanupSync() {
  for (const s of servers) {
    try {
      s.child.kill("SIGKILL");
    } catch {}
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
}

function makeTempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Starts a server process; its output goes to a log file (cheap to write, and
 * quoted when something fails). `stop()`: SIGINT, then SIGKILL after `graceMs`.
 */
function startServer(label, args, { cwd, logDir, graceMs }) {
  const logFile = path.join(logDir, `${label.replace(/\W+/g, "-")}.log`);
  const fd = fs.openSync(logFile, "w");
  const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  const server = { label, child, logFile, exited: null };
  server.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      server.exit = { code, signal };
      servers.delete(server);
      resolve(server.exit);
    });
    child.on("error", (e) => {
      server.exit = { error: e };
      servers.delete(server);
      resolve(server.exit);
    });
  });
  servers.add(server);
  server.logTail = (n = 8) => {
    try {
      return fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-n).join(" | ") || "(empty)";
    } catch {
      return "(unreadable)";
    }
  };
  server.stop = async () => {
    if (server.exit) return server.exit;
    child.kill("SIGINT");
    const timer = setTimeout(() => {
      note(`${label} did not exit within ${graceMs} ms of SIGINT; sent SIGKILL`);
      child.kill("SIGKILL");
    }, graceMs);
    const exit = await server.exited;
    clearTimeout(timer);
    return exit;
  };
  return server;
}

function describeExit(exit) {
  if (!exit) return "running";
  if (exit.error) return `failed to start: ${exit.error.message}`;
  return exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

async function fetchText(url) {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** Polls `url` until it answers 200 with `body`; throws if the server exits or time runs out. */
async function waitForBody(server, url, body, timeoutMs, intervalMs) {
  const start = performance.now();
  let last = "no answer";
  for (;;) {
    if (server.exit) {
      throw new Error(`${server.label} ${describeExit(server.exit)} before answering: ${server.logTail()}`);
    }
    try {
      const r = await fetchText(url);
      if (r.status === 200 && r.body === body) return performance.now() - start;
      last = `${r.status} ${JSON.stringify(r.body.slice(0, 80))}`;
    } catch (e) {
      last = e?.cause?.code ?? e?.message ?? String(e);
    }
    if (performance.now() - start > timeoutMs) {
      throw new Error(
        `${server.label} did not answer ${JSON.stringify(body)} on ${url} within ${timeoutMs} ms ` +
          `(last: ${last}); log: ${server.logTail()}`
      );
    }
    await sleep(intervalMs);
  }
}

/** One autocannon run; returns req/s and latency percentiles (µs resolution, from every response). */
async function cannon(autocannon, url, seconds, connections) {
  const lat = [];
  const instance = autocannon({ url, connections, duration: seconds, expectBody: HELLO_BODY });
  // autocannon's own histogram is in whole ms; the response event has hrtime ms.
  instance.on("response", (_client, _status, _bytes, ms) => lat.push(ms));
  const result = await instance;
  const bad = result.errors + result.timeouts + result.non2xx + result.mismatches;
  if (bad) {
    throw new Error(
      `${url}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx, ` +
        `${result.mismatches} wrong bodies out of ${result.requests.sent} requests`
    );
  }
  lat.sort((a, b) => a - b);
  return {
    rps: result["2xx"] / result.duration,
    p50_ms: percentile(lat, 50),
    p99_ms: percentile(lat, 99),
    requests: result["2xx"],
  };
}

async function measureServer(autocannon, server, port, params) {
  const url = `http://127.0.0.1:${port}/`;
  const readyMs = await waitForBody(server, url, HELLO_BODY, params.startTimeoutMs, 20);
  await cannon(autocannon, url, params.warmup, params.connections);
  const r = await cannon(autocannon, url, params.duration, params.connections);
  if (server.exit) throw new Error(`${server.label} ${describeExit(server.exit)} during the load: ${server.logTail()}`);
  return { ...r, readyMs };
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const autocannon = requireTool("autocannon");
  const cli = resolveCli(modulePath);
  const cliFlags = ["--no-update-check", "--no-cf-fetch"]; // no network at startup
  const work = makeTempDir("mf-bench-http-");
  const graceMs = params.killGraceMs;

  // Never outlive the harness's timeout with servers still running.
  const deadline = setTimeout(() => {
    cleanupSync();
    fail(`scenario still running after ${meta.timeoutMs - 5000} ms; servers killed`);
  }, meta.timeoutMs - 5000);
  deadline.unref();

  // 1. bare node:http (plain node)
  let port, server, bare;
  if (measuresBare()) {
    port = await freePort();
    server = startServer("bare node:http", ["-e", BARE_SERVER, String(port)], { cwd: work, logDir: work, graceMs });
    try {
      bare = await measureServer(autocannon, server, port, params);
    } finally {
      await server.stop();
    }
  }

  // 2. the CLI serving the hello worker
  const project = path.join(work, "hello");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "worker.mjs"), `${HELLO_SCRIPT}\n`);
  port = await freePort();
  server = startServer(
    "CLI",
    [...process.execArgv, cli, "worker.mjs", "--modules", "--port", String(port), ...cliFlags],
    { cwd: project, logDir: work, graceMs }
  );
  let ours;
  try {
    ours = await measureServer(autocannon, server, port, params);
  } finally {
    await server.stop();
  }

  // 3. --watch reloads
  const watched = path.join(work, "watched");
  fs.mkdirSync(watched);
  const workerFile = path.join(watched, "worker.mjs");
  fs.writeFileSync(workerFile, versionScript(0));
  port = await freePort();
  server = startServer(
    "CLI --watch",
    [...process.execArgv, cli, "worker.mjs", "--modules", "--watch", "--port", String(port), ...cliFlags],
    { cwd: watched, logDir: work, graceMs }
  );
  const reloads = [];
  try {
    const url = `http://127.0.0.1:${port}/`;
    await waitForBody(server, url, "v0", params.startTimeoutMs, 20);
    for (let i = 1; i <= params.reloads; i++) {
      // Let the previous reload (and any echo of it) finish, then wait a bit
      // more, spread evenly over `jitterMs`: file watchers that poll would
      // otherwise lock into one phase relative to the writes (always the same
      // latency, rather than the average a user sees).
      await sleep(params.settleMs + jitter(i) * params.jitterMs);
      const t0 = performance.now();
      fs.writeFileSync(workerFile, versionScript(i));
      await waitForBody(server, url, `v${i}`, params.reloadTimeoutMs, params.pollMs);
      reloads.push(performance.now() - t0);
    }
  } finally {
    await server.stop();
  }

  clearTimeout(deadline);
  removeTempDir(work);
  const sortedReloads = [...reloads].sort((a, b) => a - b);
  finish({
    rps: ours.rps,
    p50_ms: ours.p50_ms,
    p99_ms: ours.p99_ms,
    requests: ours.requests,
    ready_ms: ours.readyMs,
    bare_rps: bare?.rps,
    bare_p99_ms: bare?.p99_ms,
    reload_ms: median(reloads),
    reload_max_ms: sortedReloads[sortedReloads.length - 1],
    reloads_ms: reloads,
    cli: path.relative(process.cwd(), cli),
  });
}

if (isMain(import.meta.url)) {
  await runChild(main, { cleanupSync });
}
