import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { dim } from "kleur/colors";
import type { Log } from "../shared/log.js";
import type { PluginSignature, PluginSignatures } from "../shared/plugin.js";
import type { Context } from "../shared/runner.js";
import type { WranglerConfig } from "../shared/wrangler.js";
import { BindingsPlugin } from "../plugins/bindings/plugin.js";
import { CorePlugin } from "../plugins/core/plugin.js";
import { MiniflareCoreError } from "../plugins/core/errors.js";
import { readWranglerConfig, unknownMiniflareKeys } from "./wrangler.js";

export type PluginEntries = [name: string, plugin: PluginSignature][];
/** Options split by plugin name: `{ CorePlugin: {...}, KVPlugin: {...} }` */
export type SplitOptions = Record<string, Context>;

/**
 * Orders plugins as given, except that CorePlugin always comes first and
 * BindingsPlugin always last, so user globals and bindings win over every
 * plugin's.
 */
export function getPluginEntries(plugins: PluginSignatures): PluginEntries {
  const entries = Object.entries(plugins);
  const core = entries.findIndex(([, plugin]) => plugin === (CorePlugin as unknown));
  if (core > 0) entries.unshift(...entries.splice(core, 1));
  const bindings = entries.findIndex(
    ([, plugin]) => plugin === (BindingsPlugin as unknown)
  );
  if (bindings !== -1 && bindings !== entries.length - 1) {
    entries.push(...entries.splice(bindings, 1));
  }
  return entries;
}

/**
 * Splits flat options by plugin. Only keys present (`in`) are copied, so an
 * explicit `undefined` still overrides (unsets) the wrangler.toml value.
 */
export function splitPluginOptions(plugins: PluginEntries, options: Context): SplitOptions {
  const result: SplitOptions = {};
  for (const [name, plugin] of plugins) {
    const pluginResult: Context = {};
    for (const key of plugin.prototype.opts?.keys() ?? []) {
      if (key in options) pluginResult[key] = options[key];
    }
    result[name] = pluginResult;
  }
  return result;
}

/** Miniflare 2 options of features this package doesn't have yet */
const NOT_YET_SUPPORTED = [
  "r2Buckets",
  "r2Persist",
  "d1Databases",
  "d1Persist",
  "queueBindings",
  "queueConsumers",
];

/** wrangler.toml sections of those features: name, the option it feeds, whether it's set */
const NOT_YET_SUPPORTED_WRANGLER: [section: string, option: string, present: (config: WranglerConfig) => unknown][] = [
  ["r2_buckets", "r2Buckets", (config) => config.r2_buckets?.length],
  ["d1_databases", "d1Databases", (config) => config.d1_databases?.length],
  ["queues", "queueBindings", (config) => config.queues?.producers?.length || config.queues?.consumers?.length],
  ["[miniflare] r2_persist", "r2Persist", (config) => config.miniflare?.r2_persist !== undefined],
  ["[miniflare] d1_persist", "d1Persist", (config) => config.miniflare?.d1_persist !== undefined],
];

function declaredOptions(plugins: PluginEntries): Set<string | symbol> {
  return new Set(plugins.flatMap(([, plugin]) => [...(plugin.prototype.opts?.keys() ?? [])]));
}

/** wrangler.toml sections set in `config` that feed options no plugin here declares */
export function unsupportedWranglerSections(plugins: PluginEntries, config: WranglerConfig): string[] {
  const declared = declaredOptions(plugins);
  return NOT_YET_SUPPORTED_WRANGLER.filter(([, option, present]) => present(config) && !declared.has(option)).map(
    ([section]) => section
  );
}

/** Keys of `options` that are Miniflare 2 options no plugin here declares */
export function unsupportedOptionKeys(plugins: PluginEntries, options: Context): string[] {
  const declared = declaredOptions(plugins);
  return NOT_YET_SUPPORTED.filter((key) => options[key] !== undefined && !declared.has(key));
}

/** API/CLI options (overrides) win over wrangler.toml, key by key */
export function splitWranglerConfig(
  plugins: PluginEntries,
  overrides: SplitOptions,
  config: WranglerConfig,
  configDir: string,
  log: Log
): SplitOptions {
  const result: SplitOptions = {};
  for (const [name, plugin] of plugins) {
    const pluginResult: Context = {};
    const pluginOverrides = overrides[name];
    for (const [key, meta] of plugin.prototype.opts?.entries() ?? []) {
      if (key in pluginOverrides) {
        pluginResult[key] = pluginOverrides[key];
      } else {
        const value = meta.fromWrangler?.(config, configDir, log);
        if (value !== undefined) pluginResult[key] = value;
      }
    }
    result[name] = pluginResult;
  }
  return result;
}

/** Deep equality of two plugins' options, including symbol keys */
export function optionsEqual(a: Context | undefined, b: Context | undefined): boolean {
  return isDeepStrictEqual(a, b);
}

export function throwNoScriptError(modules?: boolean): never {
  const execName = process.env.MINIFLARE_EXEC_NAME ?? "miniflare";
  const script = modules ? "worker.mjs" : "worker.js";
  const format = modules ? "modules" : "service-worker";
  const field = modules ? "module" : "main";
  const lines = [
    "No script defined, either:",
    "- Pass it as a positional argument, if you're using the CLI",
    dim(`    $ ${execName} dist/${script}`),
    "- Set the script or scriptPath option, if you're using the API",
    dim(`    new Miniflare({ scriptPath: "dist/${script}" })`),
    `- Set ${field} in package.json`,
    dim(`    { "${field}": "dist/${script}" }`),
  ];
  if (modules) {
    lines.push(
      "- Set build.upload.main in wrangler.toml",
      dim("    [build.upload]"),
      dim(`    format = "${format}"`),
      dim(`    dir = "dist"`),
      dim(`    main = "${script}"`)
    );
  }
  lines.push("");
  throw new MiniflareCoreError("ERR_NO_SCRIPT", lines.join("\n"));
}

export interface LoadOptionsHooks {
  log: Log;
  /** Logs a warning once per host */
  warnOnce(message: string): void;
  /** Told the absolute wrangler.toml path (or undefined) before it's read */
  onConfigPath(configPath: string | undefined): void;
}

/**
 * One worker's options: `overrides` (API or CLI) over its wrangler.toml, if
 * any, with `modules` turned on when a plugin's options need it
 */
export async function loadOptions(
  plugins: PluginEntries,
  overrides: SplitOptions,
  hooks: LoadOptionsHooks
): Promise<{ options: SplitOptions; rootPath: string }> {
  let options = overrides;
  const core = options.CorePlugin;
  const rootPath = path.resolve(core.rootPath ?? process.cwd());
  const configOption = core.wranglerConfigPath;
  const configPath = configOption === true ? "wrangler.toml" : configOption;
  hooks.onConfigPath(undefined);
  if (configPath) {
    const resolved = path.resolve(rootPath, configPath);
    hooks.onConfigPath(resolved);
    try {
      const config = await readWranglerConfig(resolved, core.wranglerConfigEnv);
      warnUnsupportedConfig(plugins, config, hooks);
      options = splitWranglerConfig(plugins, overrides, config, path.dirname(resolved), hooks.log);
    } catch (e: any) {
      // A missing default wrangler.toml is fine, an explicit one isn't
      if (!(e.code === "ENOENT" && configOption === true)) throw e;
    }
  }
  // Some options need modules (Durable Objects): on unless said otherwise
  if (options.CorePlugin.modules === undefined) {
    for (const [name, plugin] of plugins) {
      if (plugin.impliesModules?.(options[name])) {
        options = { ...options, CorePlugin: { ...options.CorePlugin, modules: true } };
        break;
      }
    }
  }
  return { options, rootPath };
}

/**
 * Sections of features not built yet, and keys in [miniflare] that nothing
 * reads (typos, mostly), are ignored, but never silently
 */
function warnUnsupportedConfig(plugins: PluginEntries, config: WranglerConfig, hooks: LoadOptionsHooks): void {
  for (const section of unsupportedWranglerSections(plugins, config)) {
    hooks.warnOnce(`wrangler.toml section "${section}" is not supported yet, and is ignored`);
  }
  for (const { table, key, suggestion } of unknownMiniflareKeys(config)) {
    const hint = suggestion === undefined ? "" : `\nDid you mean "${suggestion}"?`;
    hooks.warnOnce(`wrangler.toml ${table} key "${key}" is unknown, and is ignored${hint}`);
  }
}
