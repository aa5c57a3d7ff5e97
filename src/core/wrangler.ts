import fs from "node:fs/promises";
import path from "node:path";
import { packageRoot } from "../shared/package.js";
import type { WranglerConfig } from "../shared/wrangler.js";

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
