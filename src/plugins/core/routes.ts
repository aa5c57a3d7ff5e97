// The `mounts`, `name` and `routes` options as wrangler.toml and the CLI
// give them: a mount written "path[@env]" becomes the options that load that
// folder's own wrangler.toml, package.json and .env.
import path from "node:path";
import type { WranglerRoute } from "../../shared/wrangler.js";

/**
 * Options of a mount given as `"path/to/dir"` or `"path/to/dir@env"` (the
 * last "@" separates the environment), resolved against `relativeTo` (the
 * wrangler.toml folder) if given, as Miniflare 2 did
 */
export function mountOptions(pathEnv: string, relativeTo?: string): Record<string, unknown> {
  let rootPath = pathEnv;
  let wranglerConfigEnv: string | undefined;
  const at = pathEnv.lastIndexOf("@");
  if (at !== -1) {
    wranglerConfigEnv = pathEnv.substring(at + 1);
    rootPath = pathEnv.substring(0, at);
  }
  if (relativeTo !== undefined) rootPath = path.resolve(relativeTo, rootPath);
  return {
    rootPath,
    wranglerConfigEnv,
    packagePath: true,
    envPathDefaultFallback: true,
    wranglerConfigPath: true,
  };
}

/** The fields of a wrangler.toml (or one of its `[env.*]`) that hold routes */
export interface WranglerRoutesConfig {
  route?: WranglerRoute;
  routes?: WranglerRoute[];
  miniflare?: { route?: WranglerRoute; routes?: WranglerRoute[] };
}

/** The pattern of a wrangler route: the string itself, or an object's `pattern` (zones are ignored) */
export function routePattern(route: WranglerRoute): string {
  return typeof route === "string" ? route : route.pattern;
}

/**
 * Route patterns of a (per-environment resolved) wrangler config, in
 * Miniflare 2's order: `route`, `routes`, `[miniflare] route`, `[miniflare]
 * routes`. `undefined` when there are none, so the option stays unset.
 */
export function routesFromWrangler(config: WranglerRoutesConfig): string[] | undefined {
  const routes: WranglerRoute[] = [];
  const { route, routes: list, miniflare } = config;
  // Truthiness, as Miniflare 2: an empty `route = ""` is skipped
  if (route) routes.push(route);
  if (list) routes.push(...list);
  if (miniflare?.route) routes.push(miniflare.route);
  if (miniflare?.routes) routes.push(...miniflare.routes);
  return routes.length > 0 ? routes.map(routePattern) : undefined;
}
