#!/usr/bin/env node
// Benchmark harness: our `miniflare` (dist/bundle/index.js) vs the real
// miniflare@2.14.4, side by side in one run. See bench/README.md.
//
//   node bench/run.mjs [scenario ...] [options]      (or: npm run bench -- ...)
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { checkTarget, summarize } from "./lib/stats.mjs";
import { consoleTable, fmt, fmtPass, fmtRatio, fmtTarget, markdownTable } from "./lib/report.mjs";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(BENCH_DIR, "..");
const SCENARIO_DIR = join(BENCH_DIR, "scenarios");
const SCRATCH = join(BENCH_DIR, ".scratch");
const MF2_DIR = join(SCRATCH, "mf2");
const MF2_VERSION = "2.14.4";
const CHILD_CWD = join(SCRATCH, "cwd"); // empty dir: no stray wrangler.toml/.env/package.json
const RESULTS_DIR = join(BENCH_DIR, "results");
const OURS_DEFAULT = join(REPO, "dist", "bundle", "index.js"); // the package's main entry

/** A user-facing setup problem: printed as one clean message, exit code 2. */
class BenchError extends Error {}

const HELP = `usage: node bench/run.mjs [scenario ...] [options]

Compares our miniflare (dist/bundle/index.js) with miniflare@${MF2_VERSION}.
With no scenario names, runs all of: {SCENARIOS}

options:
  --runs=N             measured runs per implementation (overrides each scenario's default)
  --only=mf2|ours      run a single implementation (no ratios)
  --ours=PATH          benchmark PATH (a module file, or a package dir with
                       dist/bundle/index.js) as "ours" instead of the repo build;
                       --ours=mf2 runs MF2 on both sides (A/A self-test).
                       Env: BENCH_OURS
  --ours-node-args=S   extra node flags for "ours" children (env BENCH_OURS_NODE_ARGS)
  --no-build           don't run tsc even if dist is missing/stale
  --no-write           don't write bench/results/latest.{json,md}
  --check              exit 1 if any target is missed
  -h, --help           this help`;

function displayPath(p) {
  const rel = relative(REPO, p);
  return rel.startsWith("..") ? p : rel;
}

function log(msg = "") {
  process.stderr.write(`${msg}\n`);
}

// ---------------------------------------------------------------------------
// Scenarios

async function loadScenarios() {
  const files = readdirSync(SCENARIO_DIR).filter((f) => f.endsWith(".mjs"));
  const scenarios = [];
  for (const f of files) {
    const file = join(SCENARIO_DIR, f);
    const mod = await import(pathToFileURL(file).href);
    if (!mod.meta) throw new BenchError(`scenario ${f} does not export \`meta\``);
    scenarios.push({
      ...mod.meta,
      name: mod.meta.name ?? f.replace(/\.mjs$/, ""),
      file,
      // Optional hooks: setup() once before the runs, notes(metrics) after them.
      setup: typeof mod.setup === "function" ? mod.setup : null,
      reportNotes: typeof mod.notes === "function" ? mod.notes : null,
    });
  }
  scenarios.sort((a, b) => (a.order ?? 1e9) - (b.order ?? 1e9) || a.name.localeCompare(b.name));
  return scenarios;
}

// ---------------------------------------------------------------------------
// Implementations

function ensureMf2() {
  const pkgJson = join(MF2_DIR, "node_modules", "miniflare", "package.json");
  let version;
  try {
    version = JSON.parse(readFileSync(pkgJson, "utf8")).version;
  } catch {}
  if (version !== MF2_VERSION) {
    mkdirSync(MF2_DIR, { recursive: true });
    // A package.json here stops npm from walking up and installing into the repo.
    const ownPkg = join(MF2_DIR, "package.json");
    if (!existsSync(ownPkg)) {
      writeFileSync(ownPkg, JSON.stringify({ name: "mf2-bench-scratch", private: true }, null, 2) + "\n");
    }
    log(`installing miniflare@${MF2_VERSION} into ${relative(REPO, MF2_DIR)}/ …`);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const args = ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", `miniflare@${MF2_VERSION}`];
    const r = spawnSync(npm, args, { cwd: MF2_DIR, encoding: "utf8", timeout: 300_000 });
    if (r.error || r.status !== 0) {
      const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
      throw new BenchError(
        `\`npm ${args.join(" ")}\` failed in ${MF2_DIR}` +
          (r.error ? `: ${r.error.message}` : ` (exit ${r.status})`) + (out ? `\n${out}` : "")
      );
    }
    try {
      version = JSON.parse(readFileSync(pkgJson, "utf8")).version;
    } catch {}
    if (version !== MF2_VERSION) {
      throw new BenchError(`after npm install, ${pkgJson} reports version ${version ?? "(missing)"}, expected ${MF2_VERSION}`);
    }
  }
  const entry = createRequire(join(MF2_DIR, "package.json")).resolve("miniflare");
  return {
    id: "mf2",
    label: `miniflare@${MF2_VERSION}`,
    version,
    entry,
    // Miniflare 2 needs vm.SourceTextModule for modules workers.
    nodeArgs: ["--experimental-vm-modules"],
  };
}

function newestMtime(path) {
  let newest = 0;
  const walk = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== "node_modules") walk(join(p, e));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  if (existsSync(path)) walk(path);
  return newest;
}

function buildOurs() {
  const [cmd, args] = [process.execPath, [join(REPO, "scripts", "build.mjs")]];
  log("building ours: node scripts/build.mjs …");
  const t = performance.now();
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: "utf8", timeout: 600_000 });
  const secs = ((performance.now() - t) / 1000).toFixed(1);
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  if (r.error) return { ok: false, summary: `could not run the build: ${r.error.message}` };
  if (r.status !== 0) {
    const lines = out.split("\n");
    const errors = lines.filter((l) => /error TS\d+/.test(l)).length;
    return {
      ok: false,
      summary: `the build exited ${r.status} after ${secs}s (${errors} error line(s)); first lines:\n` +
        lines.slice(0, 12).map((l) => `    ${l}`).join("\n"),
    };
  }
  log(`  built in ${secs}s`);
  return { ok: true };
}

const BUILD_MARKER = join(SCRATCH, "ours-build.json");
function writeBuildMarker(m) {
  try {
    mkdirSync(SCRATCH, { recursive: true });
    writeFileSync(BUILD_MARKER, JSON.stringify(m) + "\n");
  } catch {}
}
function readBuildMarker() {
  try {
    return JSON.parse(readFileSync(BUILD_MARKER, "utf8"));
  } catch {
    return null;
  }
}

function resolveOurs(opts, mf2) {
  const override = opts.ours ?? process.env.BENCH_OURS;
  const extraArgs = (opts["ours-node-args"] ?? process.env.BENCH_OURS_NODE_ARGS ?? "")
    .split(/\s+/)
    .filter(Boolean);
  if (override === "mf2") {
    if (!mf2) throw new BenchError("--ours=mf2 needs the mf2 implementation (drop --only=ours)");
    return { ...mf2, id: "ours", label: `ours → ${mf2.label} (A/A self-test)`, override: "mf2" };
  }
  if (override) {
    let entry = resolve(process.cwd(), override);
    if (existsSync(entry) && statSync(entry).isDirectory()) entry = join(entry, "dist", "bundle", "index.js");
    if (!existsSync(entry)) throw new BenchError(`--ours / BENCH_OURS points at ${entry}, which does not exist`);
    return { id: "ours", label: `ours (override: ${entry})`, version: null, entry, nodeArgs: extraArgs, override: entry };
  }

  const rel = relative(process.cwd(), OURS_DEFAULT) || OURS_DEFAULT;
  let buildNote = null;
  if (!opts["no-build"]) {
    const srcNewest = Math.max(newestMtime(join(REPO, "src")), newestMtime(join(REPO, "tsconfig.json")));
    const distMtime = existsSync(OURS_DEFAULT) ? statSync(OURS_DEFAULT).mtimeMs : 0;
    if (!existsSync(join(REPO, "src"))) {
      // nothing to build from
    } else if (distMtime === 0 || srcNewest > distMtime) {
      const b = buildOurs();
      writeBuildMarker({ ok: b.ok, srcNewest, summary: b.summary ?? null });
      if (!b.ok) {
        if (!existsSync(OURS_DEFAULT)) {
          throw new BenchError(
            `our build failed and ${rel} is missing, so there is nothing to benchmark.\n  ${b.summary}\n` +
              `  Fix the build (npm run build), or run the baseline alone with --only=mf2.`
          );
        }
        buildNote = `tsc reported errors; benchmarking the JavaScript it emitted anyway`;
        log(`warning: ${buildNote}\n  ${b.summary}`);
      }
    } else {
      // Up to date: if that build was one that failed, say so again.
      const m = readBuildMarker();
      if (m && !m.ok && m.srcNewest === srcNewest) {
        buildNote = `the last tsc build of these sources reported errors; benchmarking its emitted JavaScript anyway`;
        log(`warning: ${buildNote}\n  ${m.summary}`);
      }
    }
  }
  if (!existsSync(OURS_DEFAULT)) {
    throw new BenchError(
      `our build output ${rel} is missing.\n` +
        `  Run \`npm run build\` first (or drop --no-build), or run the baseline alone with --only=mf2.`
    );
  }
  let version = null;
  try {
    version = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version;
  } catch {}
  return { id: "ours", label: "ours (dist/bundle/index.js)", version, entry: OURS_DEFAULT, nodeArgs: extraArgs, buildNote };
}

// ---------------------------------------------------------------------------
// Running children

function runChild(impl, scenario, params, implIds) {
  return new Promise((resolvePromise) => {
    const args = [...impl.nodeArgs, scenario.file, impl.entry, JSON.stringify(params)];
    let stdout = "";
    let stderr = "";
    let exitAt = null;
    let timedOut = false;
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, args, {
      cwd: CHILD_CWD,
      stdio: ["ignore", "pipe", "pipe"],
      // Which side this child is, and which sides this run has (e.g. for a
      // reference measurement that only needs doing on one side).
      env: { ...process.env, BENCH_IMPL: impl.id, BENCH_IMPLS: implIds.join(",") },
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, scenario.timeoutMs ?? 60_000);
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("exit", () => {
      exitAt = process.hrtime.bigint();
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolvePromise({ error: `could not spawn node: ${e.message}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const wallMs = Number((exitAt ?? process.hrtime.bigint()) - start) / 1e6;
      const notes = [];
      let errorLine = null;
      for (const line of stderr.split("\n")) {
        if (line.startsWith("BENCH-NOTE: ")) notes.push(line.slice(12));
        else if (line.startsWith("BENCH-ERROR: ") && !errorLine) errorLine = line.slice(13);
      }
      if (timedOut) return resolvePromise({ error: `timed out after ${scenario.timeoutMs} ms`, notes });
      if (code !== 0 || signal) {
        const tail = stderr.trim().split("\n").filter((l) => !l.startsWith("BENCH-")).slice(-6).join("\n    ");
        return resolvePromise({
          error: (errorLine ?? `child exited with ${signal ?? `code ${code}`}`) +
            (!errorLine && tail ? `\n    ${tail}` : ""),
          notes,
        });
      }
      let result = null;
      for (const line of stdout.split("\n")) {
        const s = line.trim();
        if (!s.startsWith("{")) continue;
        try {
          result = JSON.parse(s);
        } catch {}
      }
      if (!result) return resolvePromise({ error: "child printed no JSON measurement line", notes });
      if (scenario.measureWall) result.wall_ms = wallMs;
      resolvePromise({ result, notes, wallMs });
    });
  });
}

async function runScenario(scenario, impls, opts) {
  const runs = opts.runs ?? scenario.runs ?? 5;
  const warmupRuns = scenario.warmupRuns ?? 1;
  const params = { ...(scenario.params ?? {}) };
  const samples = Object.fromEntries(impls.map((i) => [i.id, []]));
  const notes = new Map(); // "impl: text" -> count
  const started = performance.now();
  process.stderr.write(`${scenario.name}: ${warmupRuns ? `${warmupRuns} warm-up + ` : ""}${runs} runs × ${impls.length} impl `);

  const once = async (impl, keep) => {
    const r = await runChild(impl, scenario, params, impls.map((i) => i.id));
    for (const n of r.notes ?? []) {
      const key = `${impl.id}: ${n}`;
      notes.set(key, (notes.get(key) ?? 0) + 1);
    }
    if (r.error) {
      const err = new Error(`${impl.label}: ${r.error}`);
      err.benchScenario = true;
      throw err;
    }
    if (keep) samples[impl.id].push(r.result);
    process.stderr.write(keep ? "." : "w");
  };

  let error = null;
  try {
    for (let w = 0; w < warmupRuns; w++) for (const impl of impls) await once(impl, false);
    for (let i = 0; i < runs; i++) {
      // Alternate who goes first so neither side always follows the other.
      const order = i % 2 === 0 ? impls : [...impls].reverse();
      for (const impl of order) await once(impl, true);
    }
  } catch (e) {
    if (!e.benchScenario) throw e;
    error = e.message;
  }
  const secs = (performance.now() - started) / 1000;
  process.stderr.write(` ${error ? "FAILED" : "done"} (${secs.toFixed(1)}s)\n`);
  if (error) log(`  error: ${error}`);

  const metrics = scenario.metrics.map((m) => {
    const stats = {};
    for (const impl of impls) stats[impl.id] = summarize(samples[impl.id].map((s) => s[m.key]));
    // A reference metric (e.g. a ceiling measured alongside) compares nothing.
    const ratio = stats.mf2 && stats.ours && !m.reference ? stats.ours.median / stats.mf2.median : NaN;
    const pass = error ? null : checkTarget(m.target, ratio, stats.ours?.median);
    return { ...m, mf2: stats.mf2 ?? null, ours: stats.ours ?? null, ratio, pass };
  });
  const noteList = [...notes].map(([text, count]) => `${text}${count > 1 ? ` (×${count})` : ""}`);
  if (scenario.reportNotes) {
    try {
      noteList.push(...scenario.reportNotes(metrics));
    } catch (e) {
      noteList.push(`notes() failed: ${e?.message ?? e}`);
    }
  }

  return {
    name: scenario.name,
    description: scenario.description,
    runs,
    warmupRuns,
    params,
    durationMs: secs * 1000,
    error,
    notes: noteList,
    metrics,
    samples,
  };
}

// ---------------------------------------------------------------------------
// Output

function gitCommit() {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function rowsOf(results) {
  const rows = [];
  for (const s of results.scenarios) {
    if (s.error) {
      const first = s.error.split("\n")[0];
      rows.push({ scenario: s.name, error: first.length > 110 ? `${first.slice(0, 107)}…` : first });
    }
    for (const m of s.metrics) {
      if (s.error && !(m.mf2?.n || m.ours?.n)) continue;
      rows.push({
        scenario: s.name, metric: m.label, unit: m.unit,
        mf2: m.mf2?.median ?? NaN, ours: m.ours?.median ?? NaN,
        ratio: m.ratio, target: m.target, pass: m.pass,
      });
    }
  }
  return rows;
}

function markdown(results) {
  const e = results.environment;
  const lines = [
    "# Benchmark results: ours vs miniflare@" + MF2_VERSION,
    "",
    `- date: ${results.date}`,
    `- node: ${e.node} (v8 ${e.v8}), ${e.platform}/${e.arch}`,
    `- cpu: ${e.cpuCount} × ${e.cpuModel}; memory ${e.totalMemGB} GB; load avg at start ${e.loadAvgStart.join(" / ")}`,
    `- git: ${results.gitCommit ?? "(no commit)"}`,
    ...Object.values(results.implementations).map(
      (i) => `- ${i.id}: ${i.label} — \`${i.entry}\`${i.nodeArgs.length ? ` with \`node ${i.nodeArgs.join(" ")}\`` : " with plain `node`"}`
    ),
    `- command: \`${results.command}\``,
    `- total time: ${(results.durationMs / 1000).toFixed(1)} s`,
    "",
    "Values are medians over the measured runs; ratio = ours / mf2.",
    "",
    markdownTable(rowsOf(results)),
    "",
  ];
  for (const s of results.scenarios) {
    lines.push(`## ${s.name}`, "", s.description, "");
    lines.push(`runs: ${s.runs} per implementation (+${s.warmupRuns} discarded warm-up); params: \`${JSON.stringify(s.params)}\``, "");
    if (s.error) lines.push(`**error:** ${s.error}`, "");
    lines.push("| metric | impl | median | min | max | n |", "| --- | --- | ---: | ---: | ---: | ---: |");
    for (const m of s.metrics) {
      for (const id of ["mf2", "ours"]) {
        const st = m[id];
        if (!st) continue;
        lines.push(`| ${m.label} (${m.unit}) | ${id} | ${fmt(st.median, m.unit)} | ${fmt(st.min, m.unit)} | ${fmt(st.max, m.unit)} | ${st.n} |`);
      }
    }
    lines.push("");
    if (s.notes.length) lines.push("notes:", "", ...s.notes.map((n) => `- ${n}`), "");
  }
  if (results.notes.length) lines.push("## notes", "", ...results.notes.map((n) => `- ${n}`), "");
  return lines.join("\n");
}

function writeAtomic(file, text) {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

// ---------------------------------------------------------------------------

async function main() {
  const t0 = performance.now();
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        runs: { type: "string" },
        only: { type: "string" },
        ours: { type: "string" },
        "ours-node-args": { type: "string" },
        "no-build": { type: "boolean" },
        "no-write": { type: "boolean" },
        check: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new BenchError(`${e.message}\n(try --help)`);
  }
  const opts = { ...parsed.values };
  const all = await loadScenarios();
  if (opts.help) {
    console.log(HELP.replace("{SCENARIOS}", all.map((s) => s.name).join(", ")));
    return 0;
  }
  if (opts.runs !== undefined) {
    opts.runs = Number(opts.runs);
    if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new BenchError("--runs must be a positive integer");
  }
  if (opts.only && !["mf2", "ours"].includes(opts.only)) throw new BenchError("--only must be mf2 or ours");

  let selected = all;
  if (parsed.positionals.length) {
    selected = parsed.positionals.map((n) => {
      const s = all.find((x) => x.name === n);
      if (!s) throw new BenchError(`unknown scenario "${n}"; available: ${all.map((x) => x.name).join(", ")}`);
      return s;
    });
  }

  mkdirSync(CHILD_CWD, { recursive: true });
  const mf2 = opts.only === "ours" && (opts.ours ?? process.env.BENCH_OURS) !== "mf2" ? null : ensureMf2();
  const ours = opts.only === "mf2" ? null : resolveOurs(opts, mf2);
  const impls = [mf2, ours].filter(Boolean).filter((i) => !opts.only || i.id === opts.only);

  const loadAvgStart = os.loadavg().map((x) => Number(x.toFixed(2)));
  const cpus = os.cpus();
  log(`node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? "cpu"}, load avg ${loadAvgStart.join(" / ")}`);
  for (const i of impls) log(`  ${i.id}: ${i.label} (${displayPath(i.entry)}) node ${i.nodeArgs.join(" ") || "(no flags)"}`);

  const globalNotes = [];
  if (ours?.buildNote) globalNotes.push(ours.buildNote);
  if (ours?.override) globalNotes.push(`"ours" was overridden: ${ours.label}`);
  if (opts.only) globalNotes.push(`only ${opts.only} was run (no ratios)`);
  if (loadAvgStart[0] > cpus.length * 0.5) {
    globalNotes.push(`machine was busy at start (1-min load avg ${loadAvgStart[0]} on ${cpus.length} CPUs); figures may be noisy`);
  }
  if (process.env.NODE_OPTIONS) globalNotes.push(`NODE_OPTIONS was set for all children: ${process.env.NODE_OPTIONS}`);

  for (const s of selected) {
    if (!s.setup) continue;
    try {
      await s.setup({ log, scratch: SCRATCH });
    } catch (e) {
      throw new BenchError(`setup of scenario ${s.name} failed: ${e?.message ?? e}`);
    }
  }

  const scenarioResults = [];
  for (const s of selected) scenarioResults.push(await runScenario(s, impls, opts));

  const results = {
    schema: 1,
    date: new Date().toISOString(),
    command: ["node", relative(process.cwd(), fileURLToPath(import.meta.url)), ...process.argv.slice(2)].join(" "),
    gitCommit: gitCommit(),
    environment: {
      node: process.version,
      v8: process.versions.v8,
      platform: process.platform,
      arch: process.arch,
      cpuModel: cpus[0]?.model ?? "unknown",
      cpuCount: cpus.length,
      totalMemGB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
      loadAvgStart,
      loadAvgEnd: os.loadavg().map((x) => Number(x.toFixed(2))),
    },
    implementations: Object.fromEntries(
      impls.map((i) => [i.id, { id: i.id, label: i.label, version: i.version, entry: displayPath(i.entry), nodeArgs: i.nodeArgs }])
    ),
    durationMs: performance.now() - t0,
    notes: globalNotes,
    scenarios: scenarioResults,
  };
  const rows = rowsOf(results);
  const failed = rows.filter((r) => r.pass === false).length;
  const passed = rows.filter((r) => r.pass === true).length;
  const errors = scenarioResults.filter((s) => s.error).length;
  results.summary = { passed, failed, errors };

  console.log("");
  console.log(consoleTable(rows));
  console.log("");
  for (const s of scenarioResults) for (const n of s.notes) console.log(`note [${s.name}] ${n}`);
  for (const n of globalNotes) console.log(`note: ${n}`);
  console.log(
    `targets: ${passed} pass, ${failed} fail${errors ? `, ${errors} scenario error(s)` : ""}; ` +
      `total ${(results.durationMs / 1000).toFixed(1)}s`
  );

  if (!opts["no-write"]) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeAtomic(join(RESULTS_DIR, "latest.json"), JSON.stringify(results, null, 2) + "\n");
    writeAtomic(join(RESULTS_DIR, "latest.md"), markdown(results));
    console.log(`wrote ${relative(process.cwd(), join(RESULTS_DIR, "latest.json"))} and latest.md`);
  }
  if (errors) return 1;
  if (opts.check && failed) return 1;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof BenchError) {
      process.stderr.write(`\nbench: error: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`\nbench: internal error: ${e?.stack ?? e}\n`);
    process.exit(1);
  }
);
