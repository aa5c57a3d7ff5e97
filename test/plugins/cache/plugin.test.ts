import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { parseArgv } from "../../../src/cli/args.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { Miniflare } from "../../../src/index.js";
import { CacheError } from "../../../src/plugins/cache/errors.js";
import { CachePlugin, type CacheOptions } from "../../../src/plugins/cache/plugin.js";
import { CacheStorage } from "../../../src/plugins/cache/storage.js";
import { PLUGINS } from "../../../src/plugins.js";
import { fileNamespaceDirectory } from "../../../src/storage/factory.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, OptionType } from "../../../src/shared/plugin.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare, useMiniflareWithHandler } from "../../helpers/miniflare.js";
import { startRedisServer } from "../../helpers/redis.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const entries = getPluginEntries({ CachePlugin });
function fromWrangler(config: WranglerConfig, overrides: CacheOptions = {}) {
  return splitWranglerConfig(entries, splitPluginOptions(entries, overrides), config, "/project", new TestLog())
    .CachePlugin;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("CachePlugin: declares cache, cachePersist and the API-only cacheWarnUsage", () => {
  const opts = CachePlugin.prototype.opts!;
  assert.deepEqual([...opts.keys()], ["cache", "cachePersist", "cacheWarnUsage"]);
  assert.equal(opts.get("cache")!.type, OptionType.BOOLEAN);
  assert.equal(opts.get("cache")!.negatable, true);
  assert.equal(opts.get("cachePersist")!.type, OptionType.BOOLEAN_STRING);
  assert.equal(opts.get("cacheWarnUsage")!.type, OptionType.NONE);
});

test("CachePlugin: parses --cache, --no-cache and --cache-persist", () => {
  assert.equal(parseArgv(PLUGINS, ["--no-cache"]).cache, false);
  assert.equal(parseArgv(PLUGINS, ["--cache"]).cache, true);
  assert.equal(parseArgv(PLUGINS, ["--cache-persist"]).cachePersist, true);
  assert.equal(parseArgv(PLUGINS, ["--cache-persist", "./data"]).cachePersist, "./data");
  assert.equal(parseArgv(PLUGINS, ["--cache-persist", "redis://localhost:6379"]).cachePersist, "redis://localhost:6379");
  // API only
  assert.throws(() => parseArgv(PLUGINS, ["--cache-warn-usage"]), { code: "ERR_OPTION" });
});

test("CachePlugin: reads [miniflare] cache, cache_persist and workers_dev from wrangler.toml", () => {
  assert.deepEqual(fromWrangler({ miniflare: { cache: false, cache_persist: "./data" }, workers_dev: true }), {
    cache: false,
    cachePersist: "./data",
    cacheWarnUsage: true,
  });
  assert.deepEqual(fromWrangler({}), {});
  assert.deepEqual(fromWrangler({ miniflare: { cache_persist: true } }, { cachePersist: "./api" }), {
    cachePersist: "./api",
  });
});

test("CachePlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, { CachePlugin: { cache: false, cachePersist: "./data", cacheWarnUsage: true } });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), ["Options:", "- Cache: false", "- Cache Persistence: ./data"]);
});

// ---------------------------------------------------------------------------
// In a worker
// ---------------------------------------------------------------------------

const CACHE_WORKER = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    const cache = url.searchParams.has("name") ? await caches.open(url.searchParams.get("name")) : caches.default;
    const key = "http://cached" + url.pathname;
    if (request.method === "PUT") {
      await cache.put(key, new Response(await request.text(), { headers: { "Cache-Control": "max-age=3600" } }));
      return new Response("stored");
    }
    if (request.method === "DELETE") return new Response(String(await cache.delete(key)));
    const cached = await cache.match(key);
    return cached ?? new Response("miss", { status: 404 });
  }
}`;

async function call(mf: Miniflare, url: string, init?: RequestInit): Promise<[number, string]> {
  const res = await mf.dispatchFetch(url, init);
  return [res.status, await res.text()];
}

test("Miniflare: cache: caches.default and named caches are separate", async (t) => {
  const mf = useMiniflare(t, { modules: true, script: CACHE_WORKER });
  assert.deepEqual(await call(mf, "http://localhost/a", { method: "PUT", body: "default" }), [200, "stored"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one", { method: "PUT", body: "one" }), [200, "stored"]);
  assert.deepEqual(await call(mf, "http://localhost/a"), [200, "default"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one"), [200, "one"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=two"), [404, "miss"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one", { method: "DELETE" }), [200, "true"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one"), [404, "miss"]);
  const res = await mf.dispatchFetch("http://localhost/a");
  assert.equal(res.headers.get("CF-Cache-Status"), "HIT");
  await res.arrayBuffer();
});

test("Miniflare: cache: the cache survives reloads", async (t) => {
  const mf = useMiniflare(t, { modules: true, script: CACHE_WORKER });
  await call(mf, "http://localhost/a", { method: "PUT", body: "kept" });
  await mf.reload();
  assert.deepEqual(await call(mf, "http://localhost/a"), [200, "kept"]);
});

test('Miniflare: cache: open("default") throws ERR_RESERVED, and long names a TypeError', async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const results = [];
    for (const name of ["default", "x".repeat(1025)]) {
      try { await caches.open(name); results.push("opened"); }
      catch (e) { results.push(e.name + ": " + e.message + (e.code ? " " + e.code : "")); }
    }
    await caches.open("x".repeat(1024));
    return Response.json(results);`
  );
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), [
    'CacheError [ERR_RESERVED]: "default" is a reserved cache name ERR_RESERVED',
    "TypeError: Cache name is too long.",
  ]);
  const caches = await mf.getCaches();
  await assert.rejects(caches.open("default"), (error: unknown) => error instanceof CacheError);
});

test("Miniflare: cache: cache: false gives caches that store nothing", async (t) => {
  const mf = useMiniflare(t, { modules: true, script: CACHE_WORKER, cache: false });
  assert.deepEqual(await call(mf, "http://localhost/a", { method: "PUT", body: "x" }), [200, "stored"]);
  assert.deepEqual(await call(mf, "http://localhost/a"), [404, "miss"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one", { method: "PUT", body: "x" }), [200, "stored"]);
  assert.deepEqual(await call(mf, "http://localhost/a?name=one"), [404, "miss"]);
  assert.deepEqual(await call(mf, "http://localhost/a", { method: "DELETE" }), [200, "false"]);
});

test("Miniflare: cache: cacheWarnUsage warns once, at the first cache used", async (t) => {
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, script: CACHE_WORKER, cacheWarnUsage: true });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  await call(mf, "http://localhost/a");
  await call(mf, "http://localhost/a?name=one");
  await call(mf, "http://localhost/a");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Cache operations will have no impact if you deploy to a workers.dev subdomain!",
  ]);
});

test("Miniflare: cache: wrangler.toml's workers_dev and [miniflare] cache are read", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": "workers_dev = true\n[miniflare]\ncache = false\n",
    "worker.mjs": CACHE_WORKER,
  });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, rootPath: tmp, scriptPath: "worker.mjs", modules: true, wranglerConfigPath: true });
  await call(mf, "http://localhost/a", { method: "PUT", body: "x" });
  assert.deepEqual(await call(mf, "http://localhost/a"), [404, "miss"]);
  // No-op caches don't warn
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  await mf.setOptions({ cache: true });
  await call(mf, "http://localhost/a", { method: "PUT", body: "x" });
  assert.deepEqual(await call(mf, "http://localhost/a"), [200, "x"]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Cache operations will have no impact if you deploy to a workers.dev subdomain!",
  ]);
});

test("Miniflare: cache: getCaches() reaches the worker's caches outside a request", async (t) => {
  const mf = useMiniflare(t, { modules: true, script: CACHE_WORKER });
  const caches = await mf.getCaches();
  assert.ok(caches instanceof CacheStorage);
  await caches.default.put("http://cached/a", new Response("from the API", { headers: { "Cache-Control": "max-age=60" } }));
  assert.deepEqual(await call(mf, "http://localhost/a"), [200, "from the API"]);
  await call(mf, "http://localhost/b?name=named", { method: "PUT", body: "from the worker" });
  const named = await caches.open("named");
  assert.equal(await (await named.match("http://cached/b"))?.text(), "from the worker");
});

test("Miniflare: cache: outside a request, the worker's caches throw (unless globalAsyncIO)", async (t) => {
  const script = `export const result = await caches.default.match("http://localhost/").then(() => "ok", (e) => e.message);
  export default { fetch: () => new Response(result) }`;
  const blocked = useMiniflare(t, { modules: true, script });
  assert.match(await (await blocked.dispatchFetch("http://localhost/")).text(), /^Some functionality, such as asynchronous I\/O/);
  const allowed = useMiniflare(t, { modules: true, script, globalAsyncIO: true });
  assert.equal(await (await allowed.dispatchFetch("http://localhost/")).text(), "ok");
});

test("Miniflare: cache: each operation is an external subrequest (50 per request)", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `for (let i = 0; i < 50; i++) await caches.default.match("http://localhost/" + i);
    try { await caches.default.match("http://localhost/"); return new Response("no limit"); }
    catch (e) { return new Response(e.message); }`
  );
  assert.match(await (await mf.dispatchFetch("http://localhost/")).text(), /^Too many subrequests/);
});

test("Miniflare: cache: service-worker format, and the HIT/304/206 answers through the worker", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
    async function handle(request) {
      const cache = caches.default;
      let response = await cache.match(request);
      if (response) return response;
      response = new Response("0123456789", { headers: { "Cache-Control": "max-age=60", ETag: '"v1"' } });
      await cache.put(request, response.clone());
      return response;
    }`,
  });
  const first = await mf.dispatchFetch("http://localhost/page");
  assert.equal(first.headers.get("CF-Cache-Status"), null);
  assert.equal(await first.text(), "0123456789");
  const second = await mf.dispatchFetch("http://localhost/page");
  assert.equal(second.headers.get("CF-Cache-Status"), "HIT");
  assert.equal(await second.text(), "0123456789");
  const conditional = await mf.dispatchFetch("http://localhost/page", { headers: { "If-None-Match": '"v1"' } });
  assert.equal(conditional.status, 304);
  const ranged = await mf.dispatchFetch("http://localhost/page", { headers: { Range: "bytes=-2" } });
  assert.equal(ranged.status, 206);
  assert.equal(await ranged.text(), "89");
});

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

test("Miniflare: cache: cachePersist to a folder keeps entries between instances", async (t) => {
  const tmp = await useTmp(t);
  const options = { modules: true, script: CACHE_WORKER, cachePersist: path.join(tmp, "cache") };
  const first = new Miniflare(options);
  try {
    await call(first, "http://localhost/a/b?name=named", { method: "PUT", body: "on disk" });
    await call(first, "http://localhost/c:d", { method: "PUT", body: "default on disk" });
  } finally {
    await first.dispose();
  }
  const second = useMiniflare(t, options);
  assert.deepEqual(await call(second, "http://localhost/a/b?name=named"), [200, "on disk"]);
  assert.deepEqual(await call(second, "http://localhost/c:d"), [200, "default on disk"]);
  // One folder per cache
  for (const name of ["default", "named"]) await fs.access(fileNamespaceDirectory(path.join(tmp, "cache"), name));
});

test("Miniflare: cache: cachePersist: true is .mf/cache under the working directory", async (t) => {
  const tmp = await useTmp(t);
  const cwd = process.cwd();
  process.chdir(tmp);
  t.after(() => process.chdir(cwd));
  const mf = useMiniflare(t, { modules: true, script: CACHE_WORKER, cachePersist: true });
  await call(mf, "http://localhost/a", { method: "PUT", body: "x" });
  await fs.access(fileNamespaceDirectory(path.join(tmp, ".mf", "cache"), "default"));
});

test("Miniflare: cache: cachePersist to a redis:// URL", async (t) => {
  const server = await startRedisServer();
  t.after(() => server.stop());
  const options = { modules: true, script: CACHE_WORKER, cachePersist: server.url };
  const first = new Miniflare(options);
  try {
    await call(first, "http://localhost/a", { method: "PUT", body: "in redis" });
  } finally {
    await first.dispose();
  }
  const second = new Miniflare(options);
  try {
    assert.deepEqual(await call(second, "http://localhost/a"), [200, "in redis"]);
    assert.deepEqual(await call(second, "http://localhost/a", { method: "DELETE" }), [200, "true"]);
    assert.deepEqual(await call(second, "http://localhost/a"), [404, "miss"]);
  } finally {
    await second.dispose();
  }
});

test("Miniflare: cache: mounts use the parent's cachePersist", async (t) => {
  const tmp = await useTmp(t);
  const mf = useMiniflare(t, {
    modules: true,
    script: CACHE_WORKER,
    cachePersist: path.join(tmp, "cache"),
    mounts: { api: { modules: true, script: CACHE_WORKER, routes: ["api.mf/*"] } },
  });
  await call(mf, "http://api.mf/a", { method: "PUT", body: "from the mount" });
  // The same persisted cache: the parent sees the mount's entry
  assert.deepEqual(await call(mf, "http://localhost/a"), [200, "from the mount"]);
  await fs.access(fileNamespaceDirectory(path.join(tmp, "cache"), "default"));
});

// Reliability check 27: keys that a file layout could fold together stay apart
test("Miniflare: cache: keys are distinct on every backend", async (t) => {
  const long = "x".repeat(260);
  const urls = [
    "http://x.test/s?q=1",
    "http://x.test/s_q=1",
    "http://x.test/a:b",
    "http://x.test/a/b",
    `http://x.test/${long}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`,
    `http://x.test/${long}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab`,
    "http://x.test/A",
    "http://x.test/a",
  ];
  const tmp = await useTmp(t);
  const server = await startRedisServer();
  t.after(() => server.stop());
  for (const [backend, cachePersist] of [
    ["memory", undefined],
    ["files", path.join(tmp, "cache")],
    ["redis", server.url],
  ] as const) {
    const mf = new Miniflare({ modules: true, script: "export default {}", cachePersist });
    try {
      const cache = (await mf.getCaches()).default;
      for (const url of urls) {
        await cache.put(url, new Response(url, { headers: { "Cache-Control": "max-age=3600" } }));
      }
      for (const url of urls) {
        assert.equal(await (await cache.match(url))?.text(), url, `${backend}: ${url}`);
      }
    } finally {
      await mf.dispose();
    }
  }
});
