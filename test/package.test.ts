// What `npm pack` would publish: only what users load (the bundle in
// dist/bundle, the types, the bin), nothing of the sources, tests or
// source maps; and everything package.json points at.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { rootPath } from "./helpers/fixtures.js";

interface PackFile {
  path: string;
  size: number;
}

function packedFiles(): string[] {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const result = spawnSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: rootPath,
    encoding: "utf8",
    shell: process.platform === "win32",
  });
  assert.equal(result.status, 0, result.stderr);
  const [{ files }] = JSON.parse(result.stdout) as [{ files: PackFile[] }];
  return files.map((file) => file.path);
}

test("package: ships the bundle, the types and the bin, and nothing else", () => {
  const files = packedFiles();
  const unexpected = files.filter(
    (file) =>
      !/^(README\.md|LICENSE|package\.json|bin\/miniflare\.js)$/.test(file) &&
      !/^dist\/bundle\/.+/.test(file) &&
      !/^dist\/src\/.+\.d\.ts$/.test(file)
  );
  assert.deepEqual(unexpected, []);
  assert.deepEqual(files.filter((file) => file.endsWith(".map")), []);

  for (const needed of [
    "dist/bundle/index.js",
    "dist/bundle/cli.js",
    // Youch's assets, read at run time beside the bundle
    "dist/bundle/public/layout/style.css",
    // The licences of what is bundled
    "dist/bundle/THIRD_PARTY_NOTICES.md",
  ]) {
    assert(files.includes(needed), `${needed} is packed`);
  }

  // Everything package.json refers to is in the package
  const pkg = JSON.parse(fs.readFileSync(path.join(rootPath, "package.json"), "utf8"));
  const referenced = [
    pkg.main,
    pkg.types,
    ...Object.values(pkg.bin as Record<string, string>),
    ...Object.values(pkg.exports as Record<string, string | Record<string, string>>).flatMap((target) =>
      typeof target === "string" ? [target] : Object.values(target)
    ),
  ];
  for (const target of referenced) {
    const file = path.posix.normalize(target);
    assert(files.includes(file), `${target} (referenced by package.json) is packed`);
  }
});

test("package: the bundled libraries' notices name each of them", () => {
  const notices = fs.readFileSync(path.join(rootPath, "dist", "bundle", "THIRD_PARTY_NOTICES.md"), "utf8");
  const pkg = JSON.parse(fs.readFileSync(path.join(rootPath, "package.json"), "utf8"));
  // The libraries src/ uses that aren't dependencies are in the bundle
  for (const name of ["yargs", "youch", "acorn", "node-forge", "source-map-support", "@iarna/toml", "dotenv"]) {
    assert.equal(pkg.dependencies[name], undefined, `${name} is not a dependency`);
    assert.match(notices, new RegExp(`^## ${name.replace(/[/.]/g, "\\$&")} \\d`, "m"));
  }
  // Nothing kept as a dependency is bundled
  for (const name of Object.keys(pkg.dependencies)) {
    assert.doesNotMatch(notices, new RegExp(`^## ${name} \\d`, "m"));
  }
});
