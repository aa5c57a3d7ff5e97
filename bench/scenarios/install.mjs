// Scenario: what a user gets from `npm install miniflare`.
// Child: a fresh, empty temporary project; `npm install` of just the
// implementation's package (production dependencies only, no audit, no fund
// message), then count what landed in node_modules:
//   - packages: entries of node_modules/.package-lock.json (npm's own record
//     of the tree it installed; the package itself included),
//   - size: the bytes of every regular file under node_modules (apparent
//     size, as `du -sb` counts it; symlinks such as .bin entries don't count,
//     nor does file-system block rounding), in MB = 10^6 bytes,
//   - the install's wall time (reported only: it depends on npm, the disk
//     and the cache more than on us).
// What is installed: a package installed from the registry (Miniflare 2,
// found under node_modules) is installed again by `name@version`; a checkout
// (ours) is `npm pack`ed first (scripts skipped: the harness has built it)
// and the tarball is installed, which is exactly what publishing would ship.
// Both sides share one npm cache in bench/.scratch/npm-cache with
// --prefer-offline, so after the discarded warm-up run (which fills it)
// the figures are about the packages, not the network.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isMain, childArgs, finish, runChild, note } from "../lib/child.mjs";

const NPM_CACHE = fileURLToPath(new URL("../.scratch/npm-cache", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const MB = 1e6;

export const meta = {
  name: "install",
  order: 80,
  description:
    "`npm install --omit=dev --no-audit --no-fund` of just the package into an empty temporary " +
    "project (ours: the `npm pack` tarball of the checkout; MF2: miniflare@2.14.4 from the " +
    "registry), shared npm cache bench/.scratch/npm-cache with --prefer-offline: packages " +
    "(node_modules/.package-lock.json entries), node_modules size (bytes of regular files, " +
    "MB = 10^6 B), install time",
  runs: 3,
  warmupRuns: 1, // fills the shared npm cache
  timeoutMs: 300_000,
  params: {},
  metrics: [
    {
      key: "packages", label: "packages installed", unit: "packages",
      better: "lower", target: { op: "<=", value: 35 },
    },
    {
      key: "size_mb", label: "node_modules size", unit: "MB",
      better: "lower", target: { op: "<=", ratio: 1 },
    },
    { key: "own_mb", label: "the package's own folder", unit: "MB", better: "lower" },
    { key: "files", label: "files in node_modules", unit: "files", better: "lower" },
    { key: "install_s", label: "npm install time", unit: "s", better: "lower" },
  ],
};

/** The package folder `modulePath` belongs to: the nearest package.json above it with a name */
function packageDir(modulePath) {
  let dir = path.dirname(path.resolve(modulePath));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file) && JSON.parse(fs.readFileSync(file, "utf8")).name) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${modulePath}`);
    dir = up;
  }
}

/** Runs npm, resolving to its wall time in seconds; rejects with npm's output tail on failure */
function npm(args, cwd) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(NPM, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code === 0) return resolve({ seconds, out });
      const tail = out.trim().split("\n").slice(-8).join(" | ");
      reject(new Error(`npm ${args.join(" ")} exited ${code}: ${tail}`));
    });
  });
}

/** Bytes and count of the regular files under `dir` (symlinks not followed nor counted) */
function measure(dir) {
  let bytes = 0;
  let files = 0;
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        bytes += fs.lstatSync(full).size;
        files++;
      }
    }
  };
  walk(dir);
  return { bytes, files };
}

async function main() {
  const { modulePath } = childArgs(meta.params);
  const pkgDir = packageDir(modulePath);
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  const fromRegistry = pkgDir.split(path.sep).includes("node_modules");

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mf-bench-install-"));
  let result;
  try {
    // Its own package.json keeps npm from walking up into another project
    const project = path.join(tmp, "project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "install-bench", private: true }));
    const common = ["--cache", NPM_CACHE, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];

    let spec = `${pkg.name}@${pkg.version}`;
    if (!fromRegistry) {
      const { out } = await npm(["pack", "--ignore-scripts", "--pack-destination", tmp, ...common, pkgDir], tmp);
      const tarball = out.trim().split("\n").pop().trim();
      spec = path.join(tmp, tarball);
      if (!fs.existsSync(spec)) throw new Error(`npm pack did not leave ${spec}`);
    }
    const { seconds } = await npm(["install", "--omit=dev", ...common, spec], project);

    const nodeModules = path.join(project, "node_modules");
    const lock = JSON.parse(fs.readFileSync(path.join(nodeModules, ".package-lock.json"), "utf8"));
    const packages = Object.keys(lock.packages ?? {}).filter((k) => k.startsWith("node_modules/")).length;
    const installed = path.join(nodeModules, ...pkg.name.split("/"));
    if (!fs.existsSync(path.join(installed, "package.json"))) throw new Error(`${pkg.name} was not installed`);
    const all = measure(nodeModules);
    const own = measure(installed);

    const npmVersion = spawnSync(NPM, ["--version"], { encoding: "utf8" }).stdout.trim();
    note(`npm ${npmVersion}; installed ${fromRegistry ? spec : `npm pack of ${pkgDir}`}`);
    result = {
      packages,
      size_mb: all.bytes / MB,
      own_mb: own.bytes / MB,
      files: all.files,
      install_s: seconds,
      bytes: all.bytes,
      npm: npmVersion,
      cache: NPM_CACHE,
    };
  } finally {
    // Before finish(): removing thousands of files takes a while
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  finish(result);
}

if (isMain(import.meta.url)) await runChild(main);
