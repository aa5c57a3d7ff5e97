// Benchmark-only tools (e.g. autocannon), installed on demand into the
// git-ignored bench/.scratch/tools/ — never into the project's package.json.
// Same approach as the harness's Miniflare 2 install (see run.mjs ensureMf2).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const TOOLS_DIR = join(BENCH_DIR, ".scratch", "tools");

/** Pinned versions of the tools scenarios may ask for. */
export const TOOL_VERSIONS = { autocannon: "8.0.0" };

function installedVersion(name) {
  try {
    return JSON.parse(readFileSync(join(TOOLS_DIR, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure `name` (at its pinned version) is installed in bench/.scratch/tools
 * and returns the resolved path of its main module. Throws an Error with the
 * tail of npm's output if the install fails. `log` gets progress messages.
 */
export function ensureTool(name, { log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const version = TOOL_VERSIONS[name];
  if (!version) throw new Error(`unknown bench tool "${name}"`);
  if (installedVersion(name) !== version) {
    mkdirSync(TOOLS_DIR, { recursive: true });
    // A package.json here stops npm from walking up and installing into the repo.
    const ownPkg = join(TOOLS_DIR, "package.json");
    if (!existsSync(ownPkg)) {
      writeFileSync(ownPkg, JSON.stringify({ name: "bench-tools-scratch", private: true }, null, 2) + "\n");
    }
    const spec = `${name}@${version}`;
    log(`installing ${spec} into ${relative(process.cwd(), TOOLS_DIR) || TOOLS_DIR}/ …`);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const args = ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", spec];
    const r = spawnSync(npm, args, { cwd: TOOLS_DIR, encoding: "utf8", timeout: 300_000 });
    if (r.error || r.status !== 0) {
      const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
      throw new Error(
        `\`npm ${args.join(" ")}\` failed in ${TOOLS_DIR}` +
          (r.error ? `: ${r.error.message}` : ` (exit ${r.status})`) + (out ? `\n${out}` : "")
      );
    }
    const got = installedVersion(name);
    if (got !== version) {
      throw new Error(`after npm install, ${name} in ${TOOLS_DIR} reports version ${got ?? "(missing)"}, expected ${version}`);
    }
  }
  return createRequire(join(TOOLS_DIR, "package.json")).resolve(name);
}

/** Installs (if needed) and loads a CommonJS tool. */
export function requireTool(name, opts) {
  const entry = ensureTool(name, opts);
  return createRequire(join(TOOLS_DIR, "package.json"))(entry);
}
