import v8 from "node:v8";
import vm from "node:vm";

/**
 * Compiles worker code as a `vm.Script`, bypassing V8's compilation cache.
 *
 * The cache keeps every script source it has seen, for good: in Node 20
 * (V8 11.3) entries are never dropped, whatever the memory pressure. Each
 * reload compiles a new version of the worker, so with the cache a long
 * `--watch` session kept every version's source (a 5 MiB bundle reloaded
 * 200 times held about 1 GiB). Workers change between compilations, so the
 * cache would rarely have hit anyway.
 *
 * The cache is turned off only while the script compiles (V8 reads the
 * flag at each lookup and insertion), so code outside Miniflare keeps it.
 * If the process was started without it, it's left off. (V8's flags are
 * per process: worker threads compiling workers at the same moment could
 * re-enable it under each other, costing only that leak's protection.)
 */
export function compileScript(code: string, options: vm.ScriptOptions): vm.Script {
  if (cacheOffAlready) return new vm.Script(code, options);
  v8.setFlagsFromString("--no-compilation-cache");
  try {
    return new vm.Script(code, options);
  } finally {
    v8.setFlagsFromString("--compilation-cache");
  }
}

const cacheOffAlready = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some(
  (arg) => arg === "--no-compilation-cache" || arg === "--no-compilation_cache"
);
