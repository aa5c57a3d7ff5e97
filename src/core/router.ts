// Picks which of many workers in one instance handles a request, from each
// worker's routes. Route syntax and the order routes are tried in follow
// Miniflare 2.14.4, which follows Cloudflare's matching behaviour:
// https://developers.cloudflare.com/workers/platform/routes#matching-behavior
//
// A route is `[scheme://]host[/path]`:
// - the scheme is optional (any protocol matches without one);
// - the host may start with `*`: `*.example.com` (subdomains), `*example.com`
//   (any host ending so) or `*` alone (every host);
// - the path may end with `*` (prefix match); without one the path, plus the
//   request's query string, must be equal; a missing path means `/`;
// - ports are ignored, hosts are case-insensitive and paths case-sensitive,
//   because both sides go through WHATWG URL parsing.
//
// Everything is worked out in `update()`: routes are parsed, sorted most
// specific first and bucketed by exact host, so `match()` only walks the
// routes for the request's host and the wildcard-host ones.

import { domainToUnicode } from "node:url";
import { MiniflareError } from "../shared/errors.js";

export type RouterErrorCode =
  | "ERR_QUERY_STRING" // a route has a query string ("example.com/?a=1")
  | "ERR_INFIX_WILDCARD"; // a `*` somewhere other than the host's start or the path's end

export class RouterError extends MiniflareError<RouterErrorCode> {}

/** A parsed route, with the fields Miniflare 2's `Router#routes` entries have */
export interface Route {
  /** Name of the worker this route sends requests to */
  readonly target: string;
  /** The route as written */
  readonly route: string;
  /** `"http:"`, `"https:"`, …, or `undefined` if the route had no scheme */
  readonly protocol?: string;
  /** Whether the host started with `*`: request hosts need only end with `hostname` */
  readonly allowHostnamePrefix: boolean;
  /** Punycoded host without its leading `*`; `""` for a route on every host */
  readonly hostname: string;
  /** Path without its trailing `*`, percent-encoded as URL does */
  readonly path: string;
  /** Whether the path ended with `*`: request paths need only start with `path` */
  readonly allowPathSuffix: boolean;
}

/** A worker's name and its route patterns, e.g. a `Map` entry */
export type TargetRoutes = readonly [target: string, routes: readonly string[]];

// A scheme as URL would accept it, followed by "//" (so "localhost:8787/" has none)
const SCHEME_PATTERN = /^[a-z0-9+\-.]+:\/\//i;

function routeError(code: RouterErrorCode, route: string, target: string, problem: string): RouterError {
  return new RouterError(code, `Route "${route}" for "${target}" contains ${problem}. This is not allowed.`);
}

/**
 * Parses and validates one route of worker `target`. Throws a `RouterError`
 * for a query string or a misplaced `*`, and URL's `TypeError` if the route
 * isn't a URL at all (e.g. `""`), as Miniflare 2 did.
 */
export function parseRoute(target: string, route: string): Route {
  const hasScheme = SCHEME_PATTERN.test(route);
  // Without a scheme, parse as https: every special scheme parses host and path alike
  const url = new URL(hasScheme ? route : `https://${route}`);

  const anyHostname = url.hostname === "*";
  let allowHostnamePrefix = anyHostname;
  if (!anyHostname) {
    // A `*` joined to a non-ASCII label is punycoded with it ("*ñ" is
    // "xn--*-rga"), so look for it in the Unicode form of those hosts
    const hostname = url.hostname.startsWith("xn--*") ? domainToUnicode(url.hostname) : url.hostname;
    if (hostname.startsWith("*")) {
      allowHostnamePrefix = true;
      // The setter punycodes again, and leaves the host alone if what's left
      // is invalid, so the `*` then counts as an infix wildcard below
      url.hostname = hostname.slice(1);
    }
  }

  const allowPathSuffix = url.pathname.endsWith("*");
  // Through the setter, so dot segments the `*` was hiding resolve ("/a/..*" is "/")
  if (allowPathSuffix) url.pathname = url.pathname.slice(0, -1);

  // `search` is "" for a bare "?", which Miniflare 2 therefore allowed
  if (url.search !== "") throw routeError("ERR_QUERY_STRING", route, target, "a query string");
  // Miniflare 2 skipped this check for routes on every host, so the path of
  // "*/a*b" is the literal "/a*b"
  if (!anyHostname && url.href.includes("*")) {
    throw routeError("ERR_INFIX_WILDCARD", route, target, "an infix wildcard");
  }

  return Object.freeze({
    target,
    route,
    protocol: hasScheme ? url.protocol : undefined,
    allowHostnamePrefix,
    hostname: anyHostname ? "" : url.hostname,
    path: url.pathname,
    allowPathSuffix,
  });
}

/**
 * Sort key of a route, compared element by element, smaller first. In order:
 * a scheme, an exact host and an exact path each beat their absence; then a
 * path not ending in "/" (Miniflare 2 quirk: "/api*" beats "/api/*"), more
 * path segments, a longer path and a longer host. Equal keys keep the order
 * routes were given in (workers in order, then each worker's routes).
 */
function specificityKey(route: Route): number[] {
  const segments = route.path.split("/");
  return [
    route.protocol === undefined ? 1 : 0,
    route.allowHostnamePrefix ? 1 : 0,
    route.allowPathSuffix ? 1 : 0,
    segments[segments.length - 1] === "" ? 1 : 0,
    -segments.length,
    -route.path.length,
    -route.hostname.length,
  ];
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

/** A route with its position in the most-specific-first order */
interface RankedRoute {
  readonly route: Route;
  readonly rank: number;
}

const NO_ROUTES: readonly RankedRoute[] = [];

function pathMatches(route: Route, path: string): boolean {
  return route.allowPathSuffix ? path.startsWith(route.path) : path === route.path;
}

/**
 * Routes requests to workers by URL. Pure: holds no I/O and logs nothing.
 *
 * @example
 * const router = new Router();
 * router.update(new Map([["api", ["example.com/api/*"]], ["site", ["*.example.com/*"]]]));
 * router.match(new URL("https://example.com/api/users")); // "api"
 * router.match(new URL("https://localhost/")); // null
 */
export class Router {
  #routes: readonly Route[] = [];
  // Routes on one exact host, keyed by that host, most specific first
  #exactHost = new Map<string, RankedRoute[]>();
  // Routes whose host starts with `*` (or is `*`), most specific first
  #prefixHost: readonly RankedRoute[] = NO_ROUTES;

  /** Every route, most specific first (for logging the routing table) */
  get routes(): readonly Route[] {
    return this.#routes;
  }

  /**
   * Replaces all routes with `allRoutes`: each worker's name with its route
   * patterns. Validates everything first, so a `RouterError` (or URL's
   * `TypeError`) leaves the previous routes in place.
   */
  update(allRoutes: Iterable<TargetRoutes>): void {
    const keyed: { route: Route; key: number[] }[] = [];
    for (const [target, patterns] of allRoutes) {
      for (const pattern of patterns) {
        const route = parseRoute(target, pattern);
        keyed.push({ route, key: specificityKey(route) });
      }
    }
    // Array#sort is stable, which is what breaks ties by the given order
    keyed.sort((a, b) => compareKeys(a.key, b.key));

    const exactHost = new Map<string, RankedRoute[]>();
    const prefixHost: RankedRoute[] = [];
    keyed.forEach(({ route }, rank) => {
      const ranked = { route, rank };
      if (route.allowHostnamePrefix) {
        prefixHost.push(ranked);
      } else {
        let bucket = exactHost.get(route.hostname);
        if (bucket === undefined) exactHost.set(route.hostname, (bucket = []));
        bucket.push(ranked);
      }
    });

    this.#routes = Object.freeze(keyed.map(({ route }) => route));
    this.#exactHost = exactHost;
    this.#prefixHost = prefixHost;
  }

  /** Name of the worker whose route matches `url` most specifically, or `null` */
  match(url: URL): string | null {
    const { protocol, hostname } = url;
    // Routes without a `*` suffix must equal the path and query string together
    const path = url.pathname + url.search;
    const exact = this.#exactHost.get(hostname) ?? NO_ROUTES;
    const prefix = this.#prefixHost;
    // Merge the two lists by rank, so the first route that matches is the most specific
    let i = 0;
    let j = 0;
    while (i < exact.length || j < prefix.length) {
      const takeExact = j === prefix.length || (i < exact.length && exact[i].rank < prefix[j].rank);
      const { route } = takeExact ? exact[i++] : prefix[j++];
      if (route.protocol !== undefined && route.protocol !== protocol) continue;
      if (!takeExact && !hostname.endsWith(route.hostname)) continue;
      if (pathMatches(route, path)) return route.target;
    }
    return null;
  }
}

// Reading routes from wrangler.toml belongs to the option (CorePlugin), which
// plugins/ may not import from core/: re-exported for the router's users
export { type WranglerRoutesConfig, routePattern, routesFromWrangler } from "../plugins/core/routes.js";
