#!/usr/bin/env node
// Builds the package: tsc compiles src/ and test/ to dist/ (modules, types,
// source maps: what the tests run), then esbuild bundles the public entry
// points into dist/bundle/. Loading one bundled file instead of ~60 small
// ES modules roughly halves the time to import the package, which is most
// of a cold start. Dependencies stay external.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function buildPackage({ clean = true } = {}) {
  if (clean) fs.rmSync(path.join(root, "dist"), { recursive: true, force: true });
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error("TypeScript compilation failed");

  await build({
    absWorkingDir: root,
    entryPoints: {
      index: "dist/src/index.js",
      cli: "dist/src/cli/main.js",
    },
    outdir: "dist/bundle",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    sourcemap: true,
    // Classes keep their names (bundling renames some, e.g. Response to
    // _Response, and workers can see Response.name)
    keepNames: true,
    logLevel: "warning",
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildPackage().catch((error) => {
    console.error(error.message);
    process.exit(1);
  });
}
