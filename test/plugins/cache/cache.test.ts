import assert from "node:assert/strict";
import { test } from "node:test";
import { Cache, type CachedMeta, NoOpCache } from "../../../src/plugins/cache/cache.js";
import { CacheError } from "../../../src/plugins/cache/errors.js";
import { IN_REQUEST_ERROR_MESSAGE, RequestContext } from "../../../src/shared/context.js";
import { OutputGate } from "../../../src/shared/sync/gate.js";
import { Request, Response, WebSocketPair } from "../../../src/index.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { TestClock } from "../../helpers/clock.js";
import { waitsForInputGate } from "../../helpers/http.js";
import { deferred, flushTurns, timeMovesOn, track } from "../../helpers/sync.js";

const URL_TEST = "http://localhost:8787/test";

function setup(options: { blockGlobalAsyncIO?: boolean; formDataFiles?: boolean } = {}) {
  const clock = new TestClock();
  const storage = new MemoryStorage(new Map(), clock.clock);
  const cache = new Cache(storage, { clock: clock.clock, ...options });
  return { clock, storage, cache };
}

function cacheable(body: string | null = "value", headers: Record<string, string> = {}, status = 200): Response {
  return new Response(body, { status, headers: { "Cache-Control": "max-age=3600", ...headers } });
}

// ---------------------------------------------------------------------------
// put
// ---------------------------------------------------------------------------

for (const [kind, key] of [
  ["string", () => URL_TEST],
  ["URL", () => new URL(URL_TEST)],
  ["Request", () => new Request(URL_TEST)],
  ["Node's Request", () => new globalThis.Request(URL_TEST)],
] as const) {
  test(`Cache: put stores the status, headers and body under the URL (${kind} key)`, async () => {
    const { cache, storage, clock } = setup();
    await cache.put(key(), cacheable("value", { "X-Key": "a" }, 203));
    const stored = await storage.get<CachedMeta>(URL_TEST);
    assert.ok(stored);
    assert.equal(stored.expiration, clock.now / 1000 + 3600);
    assert.deepEqual(stored.metadata, {
      status: 203,
      headers: [
        ["cache-control", "max-age=3600"],
        ["content-type", "text/plain;charset=UTF-8"],
        ["x-key", "a"],
      ],
    });
    assert.equal(new TextDecoder().decode(stored.value), "value");
    const match = await cache.match(key());
    assert.equal(match?.status, 203);
    assert.equal(await match?.text(), "value");
  });
}

test("Cache: put refuses WebSocket upgrades, non-GET requests, 206 and Vary: *", async () => {
  const { cache, storage } = setup();
  const [client] = Object.values(new WebSocketPair());
  await assert.rejects(cache.put(URL_TEST, new Response(null, { status: 101, webSocket: client })), {
    name: "TypeError",
    message: "Cannot cache WebSocket upgrade response.",
  });
  for (const method of ["POST", "PUT", "HEAD", "DELETE"]) {
    await assert.rejects(cache.put(new Request(URL_TEST, { method }), cacheable()), {
      name: "TypeError",
      message: "Cannot cache response to non-GET request.",
    });
  }
  await assert.rejects(cache.put(URL_TEST, cacheable("v", {}, 206)), {
    name: "TypeError",
    message: "Cannot cache response to a range request (206 Partial Content).",
  });
  for (const vary of ["*", "Accept-Encoding, *"]) {
    await assert.rejects(cache.put(URL_TEST, cacheable("v", { Vary: vary })), {
      name: "TypeError",
      message: "Cannot cache response with 'Vary: *' header.",
    });
  }
  assert.equal((await storage.list()).keys.length, 0);
});

test("Cache: the key is cf.cacheKey when set", async () => {
  const { cache } = setup();
  await cache.put(new Request(URL_TEST, { cf: { cacheKey: "one" } }), cacheable("value1"));
  await cache.put(new Request(URL_TEST, { cf: { cacheKey: "two" } }), cacheable("value2"));
  assert.equal(await (await cache.match(new Request(URL_TEST, { cf: { cacheKey: "one" } })))?.text(), "value1");
  assert.equal(await (await cache.match(new Request(URL_TEST, { cf: { cacheKey: "two" } })))?.text(), "value2");
  assert.equal(await cache.match(URL_TEST), undefined);
});

test("Cache: relative or invalid URLs are refused", async () => {
  const { cache } = setup();
  await assert.rejects(cache.put("/relative", cacheable()), TypeError);
  await assert.rejects(cache.match("not a url"), TypeError);
});

test("Cache: Workers Sites' paths are never stored", async () => {
  const { cache, storage } = setup();
  await cache.put("http://localhost/$__MINIFLARE_SITES__$/index.html", cacheable());
  assert.equal((await storage.list()).keys.length, 0);
  // Elsewhere in a path, the segment is an ordinary one
  await cache.put("http://localhost/a/$__MINIFLARE_SITES__$/index.html", cacheable());
  assert.equal((await storage.list()).keys.length, 1);
});

// ---------------------------------------------------------------------------
// Freshness
// ---------------------------------------------------------------------------

async function expiresAfter(headers: Record<string, string>, seconds: number): Promise<void> {
  const { cache, clock } = setup();
  const withExpires = { ...headers };
  if ("Expires" in withExpires) withExpires.Expires = new Date(clock.now + seconds * 1000).toUTCString();
  await cache.put(URL_TEST, new Response("value", { headers: withExpires }));
  clock.advance(seconds * 1000 - 1000);
  assert.equal(await (await cache.match(URL_TEST))?.text(), "value", JSON.stringify(headers));
  clock.advance(1000);
  assert.equal(await cache.match(URL_TEST), undefined, JSON.stringify(headers));
}

test("Cache: Expires, max-age and s-maxage set the expiration", async () => {
  await expiresAfter({ Expires: "" }, 60);
  await expiresAfter({ "Cache-Control": "max-age=120" }, 120);
  // A shared cache prefers s-maxage
  await expiresAfter({ "Cache-Control": "max-age=120, s-maxage=30" }, 30);
  await expiresAfter({ "Cache-Control": "public, max-age=90" }, 90);
});

async function isStored(
  headers: Record<string, string>,
  { status = 200, requestHeaders = {} }: { status?: number; requestHeaders?: Record<string, string> } = {}
): Promise<boolean> {
  const { cache } = setup();
  await cache.put(new Request(URL_TEST, { headers: requestHeaders }), new Response("value", { status, headers }));
  return (await cache.match(URL_TEST)) !== undefined;
}

test("Cache: private, no-store, no-cache and Set-Cookie responses aren't stored", async () => {
  assert.equal(await isStored({ "Cache-Control": "private, max-age=3600" }), false);
  assert.equal(await isStored({ "Cache-Control": "no-store, max-age=3600" }), false);
  assert.equal(await isStored({ "Cache-Control": "no-cache, max-age=3600" }), false);
  assert.equal(await isStored({ "Cache-Control": "max-age=3600", "Set-Cookie": "a=1" }), false);
  // Without freshness information, nothing is kept
  assert.equal(await isStored({}), false);
  assert.equal(await isStored({ "Cache-Control": "max-age=0" }), false);
});

test("Cache: the request's Cache-Control is ignored", async () => {
  for (const value of ["no-store", "no-cache", "max-age=0"]) {
    assert.equal(await isStored({ "Cache-Control": "max-age=3600" }, { requestHeaders: { "Cache-Control": value } }), true);
  }
});

test("Cache: 429 and 503 responses are stored as a 200 would be", async () => {
  assert.equal(await isStored({ "Cache-Control": "max-age=3600" }, { status: 429 }), true);
  assert.equal(await isStored({ "Cache-Control": "max-age=3600" }, { status: 503 }), true);
  // A status an HTTP cache understands is stored; others aren't, whatever their headers
  assert.equal(await isStored({ "Cache-Control": "max-age=3600" }, { status: 404 }), true);
  assert.equal(await isStored({ "Cache-Control": "max-age=3600" }, { status: 500 }), false);
});

test("Cache: private=set-cookie stores the response without its Set-Cookie", async () => {
  const { cache, storage } = setup();
  const headers = new Headers({ "Cache-Control": "private=set-cookie, max-age=3600", "X-Key": "kept" });
  headers.append("Set-Cookie", "a=1");
  headers.append("Set-Cookie", "b=2");
  await cache.put(URL_TEST, new Response("value", { headers }));
  const stored = await storage.get<CachedMeta>(URL_TEST);
  assert.ok(stored?.metadata);
  assert.deepEqual(
    stored.metadata.headers.map(([name]) => name),
    ["cache-control", "content-type", "x-key"]
  );
  const match = await cache.match(URL_TEST);
  assert.equal(match?.headers.get("Set-Cookie"), null);
  assert.deepEqual(match?.headers.getSetCookie(), []);
  assert.equal(match?.headers.get("X-Key"), "kept");
  assert.equal(match?.headers.get("Cache-Control"), "private=set-cookie, max-age=3600");
});

// ---------------------------------------------------------------------------
// match
// ---------------------------------------------------------------------------

test("Cache: match adds CF-Cache-Status: HIT and returns immutable headers", async () => {
  const { cache } = setup();
  await cache.put(URL_TEST, cacheable("value", { "Content-Type": "text/html" }));
  const match = await cache.match(URL_TEST);
  assert.ok(match instanceof Response);
  assert.equal(match.headers.get("CF-Cache-Status"), "HIT");
  assert.equal(match.headers.get("Content-Type"), "text/html");
  assert.throws(() => match.headers.set("X-Key", "value"), { name: "TypeError", message: "immutable" });
  // Matching again gives a fresh response
  assert.equal(await (await cache.match(URL_TEST))?.text(), "value");
});

test("Cache: match and delete ignore non-GET requests unless ignoreMethod", async () => {
  const { cache } = setup();
  await cache.put(URL_TEST, cacheable());
  const post = new Request(URL_TEST, { method: "POST" });
  assert.equal(await cache.match(post), undefined);
  assert.equal(await (await cache.match(post, { ignoreMethod: true }))?.text(), "value");
  assert.equal(await cache.delete(post), false);
  assert.equal(await cache.delete(post, { ignoreMethod: true }), true);
  assert.equal(await cache.match(URL_TEST), undefined);
  assert.equal(await cache.delete(URL_TEST), false);
});

test("Cache: match answers If-None-Match with 304 (weak comparison, *)", async () => {
  const { cache } = setup();
  await cache.put(URL_TEST, cacheable("value", { ETag: 'W/"abc"' }));
  const match = (ifNoneMatch: string) => cache.match(new Request(URL_TEST, { headers: { "If-None-Match": ifNoneMatch } }));
  for (const value of ['"abc"', 'W/"abc"', ' "x", W/"abc" ', "*"]) {
    const res = await match(value);
    assert.equal(res?.status, 304, value);
    assert.equal(await res?.text(), "");
    assert.equal(res?.headers.get("ETag"), 'W/"abc"');
  }
  assert.equal((await match('"other"'))?.status, 200);
  assert.equal((await match("abc"))?.status, 200);
});

test("Cache: match answers If-Modified-Since with 304 for RFC 1123 dates only", async () => {
  const { cache } = setup();
  const lastModified = new Date("2022-01-01T12:00:00Z");
  await cache.put(URL_TEST, cacheable("value", { "Last-Modified": lastModified.toUTCString() }));
  const match = (since: string) => cache.match(new Request(URL_TEST, { headers: { "If-Modified-Since": since } }));
  assert.equal((await match(new Date("2022-01-01T11:59:59Z").toUTCString()))?.status, 200);
  assert.equal((await match(lastModified.toUTCString()))?.status, 304);
  assert.equal((await match(new Date("2023-01-01T00:00:00Z").toUTCString()))?.status, 304);
  // Other date formats never match
  assert.equal((await match("2023-01-01T00:00:00Z"))?.status, 200);
  assert.equal((await match("Sunday, 01-Jan-23 00:00:00 GMT"))?.status, 200);
});

test("Cache: match answers Range with 206 or 416", async () => {
  const { cache } = setup();
  await cache.put(URL_TEST, cacheable("0123456789"));
  const match = (range: string) => cache.match(new Request(URL_TEST, { headers: { Range: range } }));
  const partial = await match("bytes=2-4");
  assert.equal(partial?.status, 206);
  assert.equal(partial?.headers.get("Content-Range"), "bytes 2-4/10");
  assert.equal(partial?.headers.get("Content-Length"), "3");
  assert.equal(partial?.headers.get("CF-Cache-Status"), "HIT");
  assert.equal(await partial?.text(), "234");
  const unsatisfiable = await match("bytes=10-");
  assert.equal(unsatisfiable?.status, 416);
  assert.equal(unsatisfiable?.headers.get("Content-Range"), "bytes */10");
  const multipart = await match("bytes=0-0,-1");
  assert.equal(multipart?.status, 206);
  assert.match(multipart!.headers.get("Content-Type")!, /^multipart\/byteranges; boundary=miniflare-boundary-\d{16}$/);
});

test("Cache: a stored response without metadata (Miniflare 1's format) throws ERR_DESERIALIZATION", async () => {
  const { cache, storage } = setup();
  await storage.put(URL_TEST, { value: new TextEncoder().encode("old") });
  await assert.rejects(cache.match(URL_TEST), (error: unknown) => {
    assert.ok(error instanceof CacheError);
    assert.equal(error.code, "ERR_DESERIALIZATION");
    assert.equal(
      error.message,
      "Unable to deserialize stored cached data due to missing metadata.\n" +
        "The cached data storage format changed in Miniflare 2. You cannot load cached data created with Miniflare 1 and must delete it."
    );
    return true;
  });
});

test("Cache: formDataFiles off gives files of matched responses as strings", async () => {
  const form = new FormData();
  form.append("file", new File(["content"], "a.txt"));
  for (const formDataFiles of [true, false]) {
    const { cache } = setup({ formDataFiles });
    const body = new Response(form);
    await cache.put(URL_TEST, cacheable(await body.text(), { "Content-Type": body.headers.get("Content-Type")! }));
    const entry = (await (await cache.match(URL_TEST))!.formData()).get("file");
    if (formDataFiles) assert.ok(entry instanceof File);
    else assert.equal(entry, "content");
  }
});

// ---------------------------------------------------------------------------
// Request context and gates
// ---------------------------------------------------------------------------

test("Cache: each operation counts an external subrequest", async () => {
  const { cache } = setup();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    await cache.put(URL_TEST, cacheable());
    assert.equal(ctx.externalSubrequests, 1);
    await cache.match(URL_TEST);
    assert.equal(ctx.externalSubrequests, 2);
    await cache.delete(URL_TEST);
    assert.equal(ctx.externalSubrequests, 3);
  });
});

test("Cache: operations advance the request's frozen time", async () => {
  const { cache } = setup();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    const before = ctx.currentTime;
    await timeMovesOn(before);
    assert.equal(ctx.currentTime, before);
    await cache.match(URL_TEST);
    assert.ok(ctx.currentTime > before);
  });
});

test("Cache: results wait for the input gate", async () => {
  const { cache } = setup();
  assert.equal(await waitsForInputGate(() => cache.match(URL_TEST)), undefined);
  await waitsForInputGate(() => cache.put(URL_TEST, cacheable()));
  const hit = await waitsForInputGate(() => cache.match(URL_TEST));
  assert.equal(hit?.status, 200);
  assert.equal(await waitsForInputGate(() => cache.delete(URL_TEST)), true);
});

test("Cache: put and delete wait for the output gate before writing", async () => {
  const { cache, storage } = setup();
  for (const op of ["put", "delete"] as const) {
    const gate = new OutputGate();
    const pending = deferred();
    await gate.runWith(async () => {
      gate.waitUntil(pending.promise);
      const promise = op === "put" ? cache.put(URL_TEST, cacheable()) : cache.delete(URL_TEST);
      const state = track(promise);
      await flushTurns();
      assert.equal(state.settled, false);
      assert.equal(await storage.has(URL_TEST), op === "delete");
      pending.resolve();
      await promise;
      assert.equal(await storage.has(URL_TEST), op === "put");
    });
  }
});

test("Cache: blockGlobalAsyncIO: operations outside a request throw", async () => {
  const { cache } = setup({ blockGlobalAsyncIO: true });
  await assert.rejects(cache.put(URL_TEST, cacheable()), { message: IN_REQUEST_ERROR_MESSAGE });
  await assert.rejects(cache.match(URL_TEST), { message: IN_REQUEST_ERROR_MESSAGE });
  await assert.rejects(cache.delete(URL_TEST), { message: IN_REQUEST_ERROR_MESSAGE });
  await new RequestContext().runWith(async () => {
    await cache.put(URL_TEST, cacheable());
    assert.equal(await (await cache.match(URL_TEST))?.text(), "value");
  });
});

test("Cache: only put, match and delete are visible", () => {
  const { cache } = setup();
  assert.deepEqual(Object.getOwnPropertyNames(Object.getPrototypeOf(cache)).sort(), ["constructor", "delete", "match", "put"]);
  assert.deepEqual(Object.keys(cache), []);
});

test("NoOpCache: stores nothing and matches nothing", async () => {
  const cache = new NoOpCache();
  assert.equal(await cache.put(URL_TEST, cacheable()), undefined);
  assert.equal(await cache.match(URL_TEST), undefined);
  assert.equal(await cache.delete(URL_TEST), false);
});
