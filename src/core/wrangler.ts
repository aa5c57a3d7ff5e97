import fs from "node:fs/promises";
import path from "node:path";
import { packageRoot } from "../shared/package.js";
import type { WranglerConfig, WranglerMiniflareConfig } from "../shared/wrangler.js";

/**
 * Reads wrangler.toml. With an environment, `[env.<name>]` is shallowly
 * assigned over the top level (as Wrangler 1 did): a table defined in the
 * environment replaces the top-level one whole. Unknown environments are
 * ignored.
 */
export async function readWranglerConfig(
  configPath: string,
  env?: string
): Promise<WranglerConfig> {
  const data = await fs.readFile(configPath, "utf8");
  const { default: toml } = await import("@iarna/toml");
  const config = toml.parse(data) as WranglerConfig;
  if (env && config.env && env in config.env) {
    Object.assign(config, config.env[env]);
  }
  populateBuildConfig(config, path.dirname(configPath), env);
  return config;
}

function rustScriptPath(): string {
  return path.join(packageRoot(), "dist", "src", "plugins", "build", "rust.js");
}

/**
 * Wrangler 1 "webpack" and "rust" project types have no [build] section:
 * synthesise the build Wrangler 1 would have run.
 */
export function populateBuildConfig(
  config: WranglerConfig,
  configDir: string,
  env?: string
): void {
  if (config.build || (config.type !== "webpack" && config.type !== "rust")) return;
  const envFlag = env ? ` --env ${env}` : "";
  const upload: NonNullable<NonNullable<WranglerConfig["build"]>["upload"]> = { dir: "" };
  config.build = { cwd: configDir, upload };
  if (config.type === "webpack") {
    const packageDir = config.site ? config.site["entry-point"] ?? "workers-site" : "";
    config.build.command = `wrangler build${envFlag}`;
    upload.main = path.join(packageDir, "worker", "script.js");
    config.miniflare ??= {};
    config.miniflare.build_watch_dirs = ["src", "index.js"];
  } else {
    config.build.command = `wrangler build${envFlag} && ${process.execPath} ${rustScriptPath()}`;
    upload.main = path.join("worker", "generated", "script.js");
    config.wasm_modules ??= {};
    config.wasm_modules.wasm = path.join(configDir, "worker", "generated", "script.wasm");
  }
}

// The keys Miniflare 2 reads in [miniflare]: typed so a key added to
// WranglerMiniflareConfig must be added here too
const MINIFLARE_KEYS: { [K in keyof WranglerMiniflareConfig]-?: true } = {
  globals: true,
  upstream: true,
  watch: true,
  build_watch_dirs: true,
  kv_persist: true,
  d1_persist: true,
  r2_persist: true,
  cache: true,
  cache_persist: true,
  durable_objects_persist: true,
  durable_objects_alarms: true,
  env_path: true,
  host: true,
  port: true,
  open: true,
  cf_fetch: true,
  https: true,
  live_reload: true,
  update_check: true,
  mounts: true,
  route: true,
  routes: true,
  global_async_io: true,
  global_timers: true,
  global_random: true,
  actual_time: true,
  inaccurate_cpu: true,
};
// [miniflare.https], when it's a table ([miniflare.globals] and
// [miniflare.mounts] take any names)
const HTTPS_KEYS = ["key", "cert", "ca", "pfx", "passphrase"];

export interface UnknownKey {
  /** "[miniflare]" or "[miniflare.https]" */
  table: string;
  key: string;
  /** A known key it may be a typo of, or the camelCase of */
  suggestion?: string;
}

/** Keys in wrangler.toml's [miniflare] table (and [miniflare.https]) that Miniflare doesn't read */
export function unknownMiniflareKeys(config: WranglerConfig): UnknownKey[] {
  const miniflare: unknown = config.miniflare;
  if (!isTable(miniflare)) return [];
  const unknown = unknownKeys("[miniflare]", miniflare, Object.keys(MINIFLARE_KEYS));
  if (isTable(miniflare.https)) unknown.push(...unknownKeys("[miniflare.https]", miniflare.https, HTTPS_KEYS));
  return unknown;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function unknownKeys(table: string, values: Record<string, unknown>, known: string[]): UnknownKey[] {
  return Object.keys(values)
    .filter((key) => !known.includes(key))
    .map((key) => ({ table, key, suggestion: suggestKey(key, known) }));
}

/** The known key closest to `key` (within 2 edits), trying its snake_case spelling first */
function suggestKey(key: string, known: string[]): string | undefined {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/-/g, "_");
  if (known.includes(snake)) return snake;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(snake, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/** Levenshtein distance: the fewest insertions, deletions and substitutions from `a` to `b` */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min(previous[j] + 1, row[j - 1] + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length];
}
