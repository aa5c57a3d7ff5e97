import assert from "node:assert/strict";
import { test } from "node:test";
import {
  parseRoute,
  Router,
  RouterError,
  routePattern,
  routesFromWrangler,
  type RouterErrorCode,
} from "../../src/core/router.js";
import { MiniflareError } from "../../src/shared/errors.js";

function routerWith(...workers: [target: string, routes: string[]][]): Router {
  const router = new Router();
  router.update(new Map(workers));
  return router;
}

function matchUrl(router: Router, url: string): string | null {
  return router.match(new URL(url));
}

function assertRouterError(fn: () => unknown, code: RouterErrorCode, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof RouterError, `expected RouterError, got ${error}`);
    assert.ok(error instanceof MiniflareError);
    assert.equal(error.code, code);
    assert.equal(error.name, `RouterError [${code}]`);
    assert.equal(error.message, message);
    return true;
  });
}

// Route syntax: what each form parses to
type Parsed = [route: string, protocol: string | undefined, prefix: boolean, hostname: string, path: string, suffix: boolean];
const PARSED: Parsed[] = [
  ["example.com", undefined, false, "example.com", "/", false],
  ["example.com/", undefined, false, "example.com", "/", false],
  ["example.com/*", undefined, false, "example.com", "/", true],
  ["example.com/api", undefined, false, "example.com", "/api", false],
  ["example.com/api*", undefined, false, "example.com", "/api", true],
  ["example.com/api/*", undefined, false, "example.com", "/api/", true],
  ["http://example.com/*", "http:", false, "example.com", "/", true],
  ["https://example.com/a", "https:", false, "example.com", "/a", false],
  ["HTTPS://EXAMPLE.com/A*", "https:", false, "example.com", "/A", true],
  ["ftp://example.com/*", "ftp:", false, "example.com", "/", true],
  ["*.example.com/*", undefined, true, ".example.com", "/", true],
  ["*example.com/a", undefined, true, "example.com", "/a", false],
  ["https://*.example.com/a*", "https:", true, ".example.com", "/a", true],
  ["*", undefined, true, "", "/", false],
  ["*/*", undefined, true, "", "/", true],
  ["http://*/api*", "http:", true, "", "/api", true],
  ["example.com:8787/*", undefined, false, "example.com", "/", true],
  ["localhost:8787/api*", undefined, false, "localhost", "/api", true],
  ["http://127.0.0.1:8787/", "http:", false, "127.0.0.1", "/", false],
  ["[::1]/*", undefined, false, "[::1]", "/", true],
  ["ñ.com/*", undefined, false, "xn--ida.com", "/", true],
  ["*.ñ.com/*", undefined, true, ".xn--ida.com", "/", true],
  ["*ñ.com/*", undefined, true, "xn--ida.com", "/", true],
  ["example.com/a b*", undefined, false, "example.com", "/a%20b", true],
  ["example.com/a/../b", undefined, false, "example.com", "/b", false],
  ["example.com/a/..*", undefined, false, "example.com", "/", true],
  ["example.com/?", undefined, false, "example.com", "/", false],
  ["example.com/a#b", undefined, false, "example.com", "/a", false],
  ["*/a*b", undefined, true, "", "/a*b", false],
];

for (const [route, protocol, allowHostnamePrefix, hostname, path, allowPathSuffix] of PARSED) {
  test(`parseRoute: parses ${JSON.stringify(route)}`, () => {
    assert.deepEqual(
      { ...parseRoute("worker", route) },
      { target: "worker", route, protocol, allowHostnamePrefix, hostname, path, allowPathSuffix }
    );
  });
}

// Route syntax: which URLs each form matches
const MATCHES: [route: string, matching: string[], notMatching: string[]][] = [
  ["example.com", ["https://example.com/", "http://example.com"], ["https://example.com/a", "https://example.com/?a=1"]],
  [
    "example.com/api",
    ["https://example.com/api"],
    ["https://example.com/api/", "https://example.com/Api", "https://example.com/api?x=1", "https://example.org/api"],
  ],
  [
    "example.com/api*",
    ["https://example.com/api", "https://example.com/api/x", "https://example.com/apix", "https://example.com/api?x=1"],
    ["https://example.com/ap", "https://example.com/API", "https://example.com/?api", "https://sub.example.com/api"],
  ],
  ["example.com/*", ["https://example.com/", "https://example.com/a/b?c=d"], ["https://www.example.com/"]],
  [
    "*.example.com/*",
    ["https://sub.example.com/", "https://a.b.example.com/x"],
    ["https://example.com/", "https://badexample.com/"],
  ],
  [
    "*example.com/*",
    ["https://example.com/", "https://sub.example.com/x", "https://badexample.com/"],
    ["https://example.org/", "https://example.com.evil/"],
  ],
  ["*", ["https://example.com/", "http://localhost:8787/"], ["https://example.com/a", "https://example.com/?a"]],
  ["*/*", ["https://example.com/", "http://localhost:8787/a/b?c", "https://1.2.3.4/"], []],
  ["*/a*b", ["https://example.com/a*b"], ["https://example.com/axb", "https://example.com/a*bc"]],
  ["http://example.com/*", ["http://example.com/", "HTTP://example.com/a"], ["https://example.com/"]],
  ["https://example.com/*", ["https://example.com/a"], ["http://example.com/a"]],
  ["HTTP://EXAMPLE.COM/*", ["http://example.com/a", "http://Example.Com/a"], ["https://example.com/a"]],
  // Ports are ignored, on both sides
  [
    "example.com:8787/*",
    ["https://example.com/", "http://example.com:8787/", "http://example.com:1234/a"],
    ["https://example.org:8787/"],
  ],
  ["localhost/*", ["http://localhost:8787/", "http://localhost:1/a"], ["http://127.0.0.1:8787/"]],
  ["http://127.0.0.1:9999/api*", ["http://127.0.0.1:8787/api/x"], ["http://127.0.0.1:8787/", "https://127.0.0.1/api"]],
  ["[::1]/*", ["http://[::1]:8787/x"], ["http://127.0.0.1/x"]],
  // Internationalised hosts match in either spelling
  ["ñ.com/*", ["https://ñ.com/x", "https://xn--ida.com/"], ["https://n.com/"]],
  ["*.ñ.com/*", ["https://a.ñ.com/", "https://a.xn--ida.com/"], ["https://ñ.com/"]],
  ["*ñ.com/*", ["https://ñ.com/"], ["https://n.com/"]],
  ["example.com/a b*", ["https://example.com/a b", "https://example.com/a%20bc"], ["https://example.com/a"]],
  ["example.com/?", ["https://example.com/", "https://example.com/?"], ["https://example.com/?a"]],
];

for (const [route, matching, notMatching] of MATCHES) {
  test(`Router: match: ${JSON.stringify(route)} matches its URLs only`, () => {
    const router = routerWith(["worker", [route]]);
    for (const url of matching) assert.equal(matchUrl(router, url), "worker", `${route} should match ${url}`);
    for (const url of notMatching) assert.equal(matchUrl(router, url), null, `${route} shouldn't match ${url}`);
  });
}

// Specificity: [more specific, less specific, a URL both match]
const MORE_SPECIFIC: [string, string, string][] = [
  // A scheme beats everything else, even a wildcard host against an exact one
  ["https://example.com/*", "example.com/*", "https://example.com/a"],
  ["https://*/*", "example.com/a", "https://example.com/a"],
  // Then an exact host beats a wildcard one, whatever the paths
  ["example.com/*", "*example.com/a", "https://example.com/a"],
  ["example.com/*", "*/*", "https://example.com/"],
  // Then an exact path beats a path prefix
  ["example.com/a", "example.com/a*", "https://example.com/a"],
  ["*.example.com/a", "*.example.com/*", "https://sub.example.com/a"],
  // Then a path not ending in "/" beats one that does, despite fewer segments
  ["example.com/api*", "example.com/api/*", "https://example.com/api/users"],
  ["example.com/a*", "example.com/*", "https://example.com/a"],
  // Then more path segments (and so a longer path)
  ["example.com/a/b*", "example.com/a*", "https://example.com/a/bc"],
  ["example.com/api/v1/*", "example.com/api/*", "https://example.com/api/v1/x"],
  // Then a longer path
  ["example.com/abc*", "example.com/ab*", "https://example.com/abcd"],
  // Then a longer host
  ["*b.example.com/*", "*example.com/*", "https://sub.example.com/"],
  ["*.sub.example.com/*", "*.example.com/*", "https://a.sub.example.com/"],
];

for (const [more, less, url] of MORE_SPECIFIC) {
  test(`Router: match: ${JSON.stringify(more)} is more specific than ${JSON.stringify(less)}`, () => {
    // Both orders, so neither the order of workers nor of routes decides it
    assert.equal(matchUrl(routerWith(["more", [more]], ["less", [less]]), url), "more");
    assert.equal(matchUrl(routerWith(["less", [less]], ["more", [more]]), url), "more");
    assert.equal(matchUrl(routerWith(["x", [less, more]]), url), "x");
    // ...and each matches on its own, so the other one really was passed over
    assert.equal(matchUrl(routerWith(["less", [less]]), url), "less");
  });
}

// Ties: equally specific routes; the one given first wins
const TIES: [string, string, string][] = [
  ["example.com/*", "example.com/*", "https://example.com/a"],
  ["example.com/*", "EXAMPLE.COM:8787/*", "https://example.com/a"],
  ["https://example.com/a", "HTTPS://example.com:443/a", "https://example.com/a"],
  ["*.example.com/*", "*.example.com:1/*", "https://sub.example.com/"],
];

for (const [first, second, url] of TIES) {
  test(`Router: match: ${JSON.stringify(first)} and ${JSON.stringify(second)} tie, first given wins`, () => {
    assert.equal(matchUrl(routerWith(["a", [first]], ["b", [second]]), url), "a");
    assert.equal(matchUrl(routerWith(["b", [second]], ["a", [first]]), url), "b");
  });
}

test("Router: match: ties within a worker's routes keep the given order", () => {
  const router = routerWith(["a", ["example.com/x", "example.com/*"]], ["b", ["example.com/*"]]);
  assert.deepEqual(
    router.routes.map(({ target, route }) => `${target} ${route}`),
    ["a example.com/x", "a example.com/*", "b example.com/*"]
  );
  assert.equal(matchUrl(router, "https://example.com/y"), "a");
});

test("Router: routes: lists every route most specific first", () => {
  const router = routerWith(
    ["any", ["*/*"]],
    ["sub", ["*.example.com/*"]],
    ["api", ["example.com/api/*", "example.com/api*"]],
    ["deep", ["example.com/a/b*", "example.com/abcdef*"]],
    ["exact", ["example.com/exact"]],
    ["http", ["http://*/*"]]
  );
  assert.deepEqual(
    router.routes.map(({ route }) => route),
    [
      "http://*/*", // scheme
      "example.com/exact", // exact host, exact path
      "example.com/a/b*", // 3 segments, beats a longer path with 2
      "example.com/abcdef*",
      "example.com/api*", // not ending in "/", beats more segments
      "example.com/api/*",
      "*.example.com/*", // wildcard host: the longer host first
      "*/*",
    ]
  );
});

test("Router: match: no matching route gives null", () => {
  const router = routerWith(["a", ["example.com/api*"]], ["b", ["https://*.example.org/*"]]);
  assert.equal(matchUrl(router, "https://example.com/other"), null);
  assert.equal(matchUrl(router, "http://sub.example.org/"), null);
  assert.equal(matchUrl(router, "https://localhost/"), null);
  assert.equal(matchUrl(new Router(), "https://example.com/"), null);
  assert.deepEqual(new Router().routes, []);
});

test("Router: match: workers with no routes are never matched", () => {
  const router = routerWith(["none", []], ["api", ["example.com/*"]]);
  assert.equal(matchUrl(router, "https://example.com/"), "api");
  assert.deepEqual(
    router.routes.map(({ target }) => target),
    ["api"]
  );
});

// Rejected routes
const QUERY_STRINGS = ["example.com/?a=1", "example.com/*?a=1", "https://*.example.com/a?b", "*/a?x", "example.com/?*"];
const INFIX_WILDCARDS = [
  "example.com/*/a",
  "example.com/a*b",
  "ex*ample.com/",
  "example.com*",
  "**.example.com/",
  "*.*.com/*",
  "sub.*.example.com/*",
  "example.com/a#*",
  "u*@example.com/",
  "https://example.com/**",
  "ñ*.com/*",
];

for (const route of QUERY_STRINGS) {
  test(`parseRoute: rejects query string in ${JSON.stringify(route)}`, () => {
    assertRouterError(
      () => parseRoute("api", route),
      "ERR_QUERY_STRING",
      `Route "${route}" for "api" contains a query string. This is not allowed.`
    );
  });
}

for (const route of INFIX_WILDCARDS) {
  test(`parseRoute: rejects infix wildcard in ${JSON.stringify(route)}`, () => {
    assertRouterError(
      () => parseRoute("api", route),
      "ERR_INFIX_WILDCARD",
      `Route "${route}" for "api" contains an infix wildcard. This is not allowed.`
    );
  });
}

for (const route of ["", "http://", "example.com:abc/", " example.com/", "*1.2.3.4/*"]) {
  test(`parseRoute: a route that isn't a URL, ${JSON.stringify(route)}, throws URL's TypeError`, () => {
    assert.throws(() => parseRoute("api", route), { name: "TypeError", code: "ERR_INVALID_URL" });
  });
}

test("Router: update: RouterError names the route and its worker", () => {
  const router = new Router();
  assertRouterError(
    () => router.update(new Map([["ok", ["example.com/*"]], ["bad", ["example.com/a", "example.com/*/b"]]])),
    "ERR_INFIX_WILDCARD",
    'Route "example.com/*/b" for "bad" contains an infix wildcard. This is not allowed.'
  );
});

test("Router: update: an invalid route leaves the previous routes in place", () => {
  const router = routerWith(["old", ["example.com/*"]]);
  assert.throws(() => router.update(new Map([["new", ["example.org/*", "example.org/?q"]]])), RouterError);
  assert.throws(() => router.update(new Map([["new", ["example.org/*", ""]]])), TypeError);
  assert.equal(matchUrl(router, "https://example.com/"), "old");
  assert.equal(matchUrl(router, "https://example.org/"), null);
  assert.deepEqual(
    router.routes.map(({ route }) => route),
    ["example.com/*"]
  );
});

test("Router: update: replaces all previous routes", () => {
  const router = routerWith(["a", ["example.com/*"]], ["b", ["*.example.com/*"]]);
  assert.equal(matchUrl(router, "https://example.com/"), "a");
  assert.equal(matchUrl(router, "https://sub.example.com/"), "b");

  router.update(new Map([["c", ["example.org/*"]]]));
  assert.equal(matchUrl(router, "https://example.com/"), null);
  assert.equal(matchUrl(router, "https://sub.example.com/"), null);
  assert.equal(matchUrl(router, "https://example.org/"), "c");

  // Same worker, new routes
  router.update(new Map([["c", ["example.net/*"]]]));
  assert.equal(matchUrl(router, "https://example.org/"), null);
  assert.equal(matchUrl(router, "https://example.net/"), "c");

  router.update(new Map());
  assert.equal(matchUrl(router, "https://example.net/"), null);
  assert.deepEqual(router.routes, []);
});

test("Router: update: takes any iterable of [worker, routes] pairs", () => {
  const router = new Router();
  router.update([
    ["a", ["example.com/a*"]],
    ["b", ["example.com/*"]],
  ]);
  assert.equal(matchUrl(router, "https://example.com/ab"), "a");
  assert.equal(matchUrl(router, "https://example.com/b"), "b");
});

test("Router: routes: entries are read-only", () => {
  const router = routerWith(["a", ["example.com/*"]]);
  assert.throws(() => {
    (router.routes as unknown as unknown[]).push({});
  }, TypeError);
  assert.throws(() => {
    (router.routes[0] as { target: string }).target = "b";
  }, TypeError);
  assert.equal(matchUrl(router, "https://example.com/"), "a");
});

// The first route of `routes` that matches, checked naively: what match()
// must give, however it finds it
function firstMatch(router: Router, url: URL): string | null {
  const path = url.pathname + url.search;
  for (const route of router.routes) {
    if (route.protocol !== undefined && route.protocol !== url.protocol) continue;
    if (route.allowHostnamePrefix ? !url.hostname.endsWith(route.hostname) : url.hostname !== route.hostname) continue;
    if (route.allowPathSuffix ? path.startsWith(route.path) : path === route.path) return route.target;
  }
  return null;
}

test("Router: match: many workers, each on its own host, plus overlapping wildcards", () => {
  const workers: [string, string[]][] = [];
  for (let i = 0; i < 40; i++) {
    workers.push([`worker${i}`, [`w${i}.example.com/*`, `https://example.com/w${i}/*`, `example.com/w${i}`]]);
  }
  workers.push(["subdomains", ["*.example.com/*"]]);
  workers.push(["api", ["*.example.com/api*", "http://*/api/v2/*"]]);
  workers.push(["fallback", ["*/*"]]);
  const router = routerWith(...workers);
  assert.equal(router.routes.length, 40 * 3 + 4);

  for (let i = 0; i < 40; i++) {
    assert.equal(matchUrl(router, `https://w${i}.example.com/`), `worker${i}`);
    // An exact host beats a wildcard one, even with a shorter path
    assert.equal(matchUrl(router, `https://w${i}.example.com/api`), `worker${i}`);
    assert.equal(matchUrl(router, `http://w${i}.example.com/api/v2/x`), "api");
    assert.equal(matchUrl(router, `https://example.com/w${i}/x`), `worker${i}`);
    assert.equal(matchUrl(router, `http://example.com/w${i}`), `worker${i}`);
  }
  assert.equal(matchUrl(router, "https://w99.example.com/"), "subdomains");
  assert.equal(matchUrl(router, "http://example.com/w1/x"), "fallback");
  assert.equal(matchUrl(router, "https://localhost/"), "fallback");

  // Whatever the host index does, it agrees with trying routes in order
  const hosts = ["example.com", "w0.example.com", "w39.example.com", "w40.example.com", "localhost", "xexample.com"];
  const paths = ["/", "/w0", "/w0/", "/w39/x?y", "/api", "/api/v2/z", "/w1?x"];
  for (const protocol of ["http:", "https:"]) {
    for (const host of hosts) {
      for (const path of paths) {
        const url = new URL(`${protocol}//${host}${path}`);
        assert.equal(router.match(url), firstMatch(router, url), url.href);
      }
    }
  }
});

test("routePattern: takes strings and objects' patterns, ignoring zones", () => {
  assert.equal(routePattern("example.com/*"), "example.com/*");
  assert.equal(routePattern({ pattern: "example.com/a*", zone_id: "id" }), "example.com/a*");
  assert.equal(routePattern({ pattern: "example.com/b*", zone_name: "example.com" }), "example.com/b*");
});

test("routesFromWrangler: collects route, routes and [miniflare] route(s) in order", () => {
  assert.deepEqual(
    routesFromWrangler({
      route: "a.com/*",
      routes: ["b.com/*", { pattern: "c.com/*", zone_id: "id" }, { pattern: "d.com/*", zone_name: "d.com" }],
      miniflare: { route: "e.com/*", routes: ["f.com/*", { pattern: "g.com/*" }] },
    }),
    ["a.com/*", "b.com/*", "c.com/*", "d.com/*", "e.com/*", "f.com/*", "g.com/*"]
  );
  assert.deepEqual(routesFromWrangler({ route: { pattern: "a.com/*", zone_name: "a.com" } }), ["a.com/*"]);
  assert.deepEqual(routesFromWrangler({ miniflare: { routes: ["f.com/*"] } }), ["f.com/*"]);
});

test("routesFromWrangler: no routes gives undefined", () => {
  assert.equal(routesFromWrangler({}), undefined);
  assert.equal(routesFromWrangler({ routes: [], miniflare: { routes: [] } }), undefined);
  // An empty `route` is skipped, as Miniflare 2 did
  assert.equal(routesFromWrangler({ route: "", miniflare: {} }), undefined);
  assert.deepEqual(routesFromWrangler({ route: "", routes: ["a.com/*"] }), ["a.com/*"]);
});
