#!/usr/bin/env node
// The one test command (`npm test`): builds (scripts/build.mjs), then
// runs every dist/test/**/*.test.js with Node's test runner. Node 20 takes
// paths, not globs, and would otherwise treat fixtures as tests, so the file
// list is collected here. Arguments filter files by substring:
// `npm test -- runtime kv` runs only files whose path contains one of them.
//
// The build is incremental: tsc runs only when a source changed since the
// last good compile, and the bundle (dist/bundle/) is made only when a chosen
// test loads it: through the `miniflare` command (runBin, binPath) or the
// package's own name (import "miniflare"), or by naming dist/bundle.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildPackage } from "./build.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const filters = process.argv.slice(2);

try {
  await buildPackage({ clean: false, bundle: false });
} catch (error) {
  console.error(error.message);
  process.exit(1);
}

function collect(dir) {
  const files = [];
  if (!fs.existsSync(dir)) return files;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...collect(full));
    else if (entry.name.endsWith(".test.js")) files.push(full);
  }
  return files;
}

let files = collect(path.join(root, "dist", "test")).sort();
if (filters.length > 0) {
  files = files.filter((file) => filters.some((f) => file.includes(f)));
}
if (files.length === 0) {
  console.error("No test files matched");
  process.exit(1);
}

const loadsBundle = /\b(runBin|binPath)\b|(import|require)\(["']miniflare["']\)|from ["']miniflare["']|dist\/bundle|\bbundle\//;
if (files.some((file) => loadsBundle.test(fs.readFileSync(file, "utf8")))) {
  try {
    await buildPackage({ clean: false, bundle: true });
  } catch (error) {
    console.error(error.message);
    process.exit(1);
  }
}

// The spec reporter repeats every failure at the end of its output, where a
// CI log's tail shows it
const result = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { cwd: root, stdio: "inherit", env: { ...process.env, NODE_ENV: "test" } }
);
process.exit(result.status ?? 1);
