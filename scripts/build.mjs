#!/usr/bin/env node
// Builds the package: tsc compiles src/ and test/ to dist/ (modules, types,
// source maps: what the tests run), then esbuild bundles the public entry
// points into dist/bundle/. Loading one bundled file instead of ~60 small
// ES modules roughly halves the time to import the package, which is most
// of a cold start. Dependencies stay external.
//
// `node scripts/build.mjs` (and `npm install`'s prepare) builds from clean.
// The test command builds incrementally: tsc runs only when a source is newer
// than the last good compile (and then type-checks incrementally), outputs of
// deleted sources are removed, and the bundle is made only when asked for and
// older than the compile.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
// Written after a compile without errors: its mtime is the compile's time
const stampPath = path.join(dist, ".compiled");
const bundleEntries = { index: "dist/src/index.js", cli: "dist/src/cli/main.js" };
const bundlePath = path.join(dist, "bundle", "index.js");

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Newest mtime of the compile's inputs. Folders count too: deleting or
 * renaming a file changes its folder's mtime.
 */
function newestInput() {
  let newest = Math.max(mtime(path.join(root, "tsconfig.json")), mtime(path.join(root, "package.json")));
  const walk = (dir) => {
    newest = Math.max(newest, mtime(dir));
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".ts")) newest = Math.max(newest, mtime(full));
    }
  };
  walk(path.join(root, "src"));
  walk(path.join(root, "test"));
  return newest;
}

/** Removes what tsc emitted for sources that no longer exist */
function pruneOutputs() {
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      const base = entry.name.replace(/\.(js|js\.map|d\.ts|d\.ts\.map)$/, "");
      if (base === entry.name) continue;
      const source = path.join(root, path.relative(dist, dir), base + ".ts");
      if (!fs.existsSync(source)) fs.rmSync(full);
    }
  };
  walk(path.join(dist, "src"));
  walk(path.join(dist, "test"));
}

function compile() {
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
  fs.rmSync(stampPath, { force: true });
  const result = spawnSync(
    process.execPath,
    [tsc, "-p", "tsconfig.json", "--incremental", "--tsBuildInfoFile", path.join(dist, ".tsbuildinfo")],
    { cwd: root, stdio: "inherit" }
  );
  if (result.status !== 0) throw new Error("TypeScript compilation failed");
  pruneOutputs();
  fs.writeFileSync(stampPath, "");
}

async function bundle() {
  await build({
    absWorkingDir: root,
    entryPoints: bundleEntries,
    outdir: "dist/bundle",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    // Classes keep their names (bundling renames some, e.g. Response to
    // _Response, and workers can see Response.name)
    keepNames: true,
    logLevel: "warning",
  });
}

/**
 * Compiles (when a source changed since the last good compile, or always
 * with `clean`), then bundles (with `bundle`, when the bundle is older than
 * the compile). Returns what it did, for the caller to say.
 */
export async function buildPackage({ clean = true, bundle: wantBundle = true } = {}) {
  const done = [];
  if (clean) fs.rmSync(dist, { recursive: true, force: true });
  if (clean || mtime(stampPath) < newestInput()) {
    compile();
    done.push("compiled");
  }
  if (wantBundle && mtime(bundlePath) < mtime(stampPath)) {
    fs.rmSync(path.join(dist, "bundle"), { recursive: true, force: true });
    await bundle();
    done.push("bundled");
  }
  return done;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  console.log("Building miniflare: TypeScript to dist/, then the bundle in dist/bundle/ …");
  buildPackage().then(
    () => console.log(`Built in ${((performance.now() - start) / 1000).toFixed(1)} s`),
    (error) => {
      console.error(error.message);
      process.exit(1);
    }
  );
}
