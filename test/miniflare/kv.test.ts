import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { KVNamespace, Miniflare } from "../../src/index.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { startRedisServer } from "../helpers/redis.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { IN_REQUEST_MESSAGE } from "./util.js";

/** A modules worker counting visits per path in COUNTER_NAMESPACE (the blog post's example) */
const COUNTER_WORKER = `// src/index.mjs
export async function increment(namespace, key) {
  // Get the current count from KV
  const currentValue = await namespace.get(key);
  // Increment the count, defaulting it to 0
  const newValue = parseInt(currentValue ?? "0") + 1;
  // Store and return the new count
  await namespace.put(key, newValue.toString());
  return newValue;
}

export default {
  async fetch(request, env, ctx) {
    // Use the pathname for a key
    const url = new URL(request.url);
    const key = url.pathname;
    // Increment the key
    const value = await increment(env.COUNTER_NAMESPACE, key);
    // Return the new incremented count
    return new Response(\`count for \${key} is now \${value}\`);
  },
};
`;

/** A modules worker: GET /<key> reads NS, PUT /<key> writes the body */
const READ_WRITE_HANDLER = `
  const key = new URL(request.url).pathname.substring(1);
  if (request.method === "PUT") {
    await env.NS.put(key, await request.text());
    return new Response("stored");
  }
  return new Response(String(await env.NS.get(key)));
`;

async function text(mf: Miniflare, url = "http://localhost/", init?: RequestInit): Promise<string> {
  return (await mf.dispatchFetch(url, init as any)).text();
}

// ---------------------------------------------------------------------------
// Bindings and getKVNamespace()
// ---------------------------------------------------------------------------

test("Miniflare: KV: getKVNamespace() reads and writes what the worker sees", async (t) => {
  // The "Manipulating Outside Workers" example of the KV docs
  const mf = useMiniflare(t, {
    modules: true,
    script: `
    export default {
      async fetch(request, env, ctx) {
        const value = parseInt(await env.TEST_NAMESPACE.get("count")) + 1;
        await env.TEST_NAMESPACE.put("count", value.toString());
        return new Response(value.toString());
      },
    };
    `,
    kvNamespaces: ["TEST_NAMESPACE"],
  });
  const ns = await mf.getKVNamespace("TEST_NAMESPACE");
  assert.ok(ns instanceof KVNamespace);
  await ns.put("count", "1");
  const res = await mf.dispatchFetch("http://localhost:8787/");
  assert.equal(await res.text(), "2");
  assert.equal(await ns.get("count"), "2");
});

test("Miniflare: KV: namespaces are globals in service-worker format", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.respondWith(
        Promise.all([TEST_NAMESPACE1.get("key"), TEST_NAMESPACE2.get("key")])
          .then(([one, two]) => new Response(one + "," + two + "," + typeof globalThis.TEST_NAMESPACE3))
      );
    });`,
    kvNamespaces: ["TEST_NAMESPACE1", "TEST_NAMESPACE2"],
  });
  await (await mf.getKVNamespace("TEST_NAMESPACE1")).put("key", "one");
  assert.equal(await text(mf), "one,null,undefined");
  await (await mf.getKVNamespace("TEST_NAMESPACE2")).put("key", "two");
  assert.equal(await text(mf), "one,two,undefined");
  // Bindings are the same objects getBindings() gives
  const bindings = await mf.getBindings();
  assert.ok(bindings.TEST_NAMESPACE1 instanceof KVNamespace);
  assert.ok(bindings.TEST_NAMESPACE2 instanceof KVNamespace);
});

test("Miniflare: KV: namespaces are in env in modules format", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `let global;
    try { global = String(globalThis.TEST_NAMESPACE1); }
    catch (e) { global = e.name + ": " + e.message.split("\\n")[0]; }
    return new Response(await env.TEST_NAMESPACE1.get("key") + "," + Object.keys(env).sort().join("|")
       + "," + global);`,
    { kvNamespaces: ["TEST_NAMESPACE1", "TEST_NAMESPACE2"] }
  );
  await (await mf.getKVNamespace("TEST_NAMESPACE1")).put("key", "value");
  // Not globals: using them as such is an error (as in Miniflare 2)
  assert.equal(
    await text(mf),
    "value,TEST_NAMESPACE1|TEST_NAMESPACE2,ReferenceError: TEST_NAMESPACE1 is not defined."
  );
});

test("Miniflare: KV: the blog's counter example with kv_namespaces in wrangler.toml", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `# wrangler.toml
kv_namespaces = [
  { binding = "COUNTER_NAMESPACE", id = "..." }
]

[build.upload]
format = "modules"
dir = "src"
main = "./index.mjs"
`,
    "src/index.mjs": COUNTER_WORKER,
  });
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: path.join(tmp, "wrangler.toml") });
  assert.equal(await text(mf, "http://localhost/a"), "count for /a is now 1");
  assert.equal(await text(mf, "http://localhost/a"), "count for /a is now 2");
  assert.equal(await text(mf, "http://localhost/b"), "count for /b is now 1");
  assert.equal(await text(mf, "http://localhost/a"), "count for /a is now 3");

  const ns = await mf.getKVNamespace("COUNTER_NAMESPACE");
  assert.deepEqual((await ns.list()).keys.map(({ name }) => name), ["/a", "/b"]);
  assert.equal(await ns.get("/a"), "3");

  // The exported increment() works on the namespace outside a request, as in
  // the post's unit test
  const { increment } = (await mf.getModuleExports()) as { increment: (ns: KVNamespace, key: string) => Promise<number> };
  await ns.put("a", "3");
  assert.equal(await increment(ns, "a"), 4);
  assert.equal(await ns.get("a"), "4");
});

test("Miniflare: KV: getKVNamespace() works for any name, outside requests, and isn't gated", async (t) => {
  // No globalAsyncIO: the worker's own bindings are gated, getKVNamespace()'s aren't
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (e) => e.respondWith(new Response("ok")));`,
  });
  const ns = await mf.getKVNamespace("UNBOUND");
  await ns.put("key", "value", { metadata: { m: 1 }, expirationTtl: 3600 });
  assert.deepEqual(await ns.getWithMetadata("key"), { value: "value", metadata: { m: 1 } });
  assert.equal((await ns.list()).keys.length, 1);
  // Another call gives the same data
  assert.equal(await (await mf.getKVNamespace("UNBOUND")).get("key"), "value");
  assert.equal(await (await mf.getKVNamespace("OTHER")).get("key"), null);
  await ns.delete("key");
  assert.equal(await ns.get("key"), null);
});

// ---------------------------------------------------------------------------
// Errors and global scope
// ---------------------------------------------------------------------------

test("Miniflare: KV: validation errors reach the worker as catchable errors", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const results = { instances: true };
    const attempt = async (name, f) => {
      try { await f(); results[name] = "no error"; }
      catch (e) {
        results[name] = [e.name, e.message];
        // Instances of the worker's own Error classes
        results.instances &&= e instanceof Error && (e instanceof TypeError) === (e.name === "TypeError");
      }
    };
    await env.NS.put("k", "original");
    await attempt("keyType", () => env.NS.get(1));
    await attempt("emptyKey", () => env.NS.delete(""));
    await attempt("dotKey", () => env.NS.getWithMetadata(".."));
    await attempt("longKey", () => env.NS.put("x".repeat(513), "v"));
    await attempt("value", () => env.NS.put("k", 1));
    await attempt("ttl", () => env.NS.put("k", "v", { expirationTtl: 59 }));
    await attempt("ttlRange", () => env.NS.put("k", "v", { expirationTtl: 2147483648 }));
    await attempt("expiration", () => env.NS.put("k", "v", { expiration: 1 }));
    await attempt("metadata", () => env.NS.put("k", "v", { metadata: "x".repeat(1023) }));
    await attempt("cacheTtl", () => env.NS.get("k", { cacheTtl: 59 }));
    await attempt("type", () => env.NS.get("k", "blob"));
    await attempt("limit", () => env.NS.list({ limit: 1001 }));
    results.stored = await env.NS.get("k");
    return Response.json(results);`,
    { kvNamespaces: ["NS"] }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    keyType: ["TypeError", "Failed to execute 'get' on 'KvNamespace': parameter 1 is not of type 'string'."],
    emptyKey: ["TypeError", "Key name cannot be empty."],
    dotKey: ["TypeError", '".." is not allowed as a key name.'],
    longKey: ["Error", "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."],
    value: [
      "TypeError",
      "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.",
    ],
    ttl: ["Error", "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at least 60."],
    ttlRange: ["TypeError", "Value out of range. Must be between -2147483648 and 2147483647 (inclusive)."],
    expiration: [
      "Error",
      "KV PUT failed: 400 Invalid expiration of 1. Please specify integer greater than the current number of seconds since the UNIX epoch.",
    ],
    metadata: ["Error", "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024."],
    cacheTtl: ["Error", "KV GET failed: 400 Invalid cache_ttl of 59. Cache TTL must be at least 60."],
    type: ["TypeError", 'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".'],
    limit: ["Error", "KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000."],
    stored: "original",
    instances: true,
  });
});

test("Miniflare: KV: an uncaught KV error fails the request", async (t) => {
  const { mf } = useMiniflareWithHandler(t, `await env.NS.get(""); return new Response("unreachable");`, {
    kvNamespaces: ["NS"],
  });
  await assert.rejects(mf.dispatchFetch("http://localhost/"), {
    name: "TypeError",
    message: "Key name cannot be empty.",
  });
});

test("Miniflare: KV: calls at global scope throw the in-request error", async (t) => {
  const mf = useMiniflare(t, {
    script: `
    const outcomes = [];
    for (const call of [
      () => TEST_NAMESPACE.get("key"),
      () => TEST_NAMESPACE.put("key", "global"),
      () => TEST_NAMESPACE.list(),
    ]) {
      call().then(() => outcomes.push("resolved"), (e) => outcomes.push(e.name + ": " + e.message));
    }
    addEventListener("fetch", (event) => event.respondWith((async () => {
      await TEST_NAMESPACE.put("inside", "works");
      return Response.json({ outcomes, inside: await TEST_NAMESPACE.get("inside") });
    })()));
    `,
    kvNamespaces: ["TEST_NAMESPACE"],
  });
  const inRequest = `Error: ${IN_REQUEST_MESSAGE}`;
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    outcomes: [inRequest, inRequest, inRequest],
    inside: "works",
  });
  // Nothing was written at global scope
  assert.equal(await (await mf.getKVNamespace("TEST_NAMESPACE")).get("key"), null);
});

test("Miniflare: KV: globalAsyncIO allows calls at global scope", async (t) => {
  const mf = useMiniflare(t, {
    script: `
    const written = TEST_NAMESPACE.put("key", "global").then(() => "resolved", (e) => e.message);
    addEventListener("fetch", (event) => event.respondWith(written.then((outcome) => new Response(outcome))));
    `,
    kvNamespaces: ["TEST_NAMESPACE"],
    globalAsyncIO: true,
  });
  assert.equal(await text(mf), "resolved");
  assert.equal(await (await mf.getKVNamespace("TEST_NAMESPACE")).get("key"), "global");
});

test("Miniflare: KV: request bodies can be put as streams and read back as streams", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const key = new URL(request.url).pathname.substring(1);
    if (request.method === "PUT") {
      await env.NS.put(key, request.body, { metadata: { type: request.headers.get("Content-Type") } });
      return new Response("stored");
    }
    const { value, metadata } = await env.NS.getWithMetadata(key, "stream");
    if (value === null) return new Response("not found", { status: 404 });
    return new Response(value, { headers: { "Content-Type": metadata.type } });`,
    { kvNamespaces: ["NS"] }
  );
  const body = "body ".repeat(2000);
  assert.equal(
    await text(mf, "http://localhost/file", { method: "PUT", body, headers: { "Content-Type": "text/plain" } }),
    "stored"
  );
  const res = await mf.dispatchFetch("http://localhost/file");
  assert.equal(res.headers.get("Content-Type"), "text/plain");
  assert.equal(await res.text(), body);
  assert.equal((await mf.dispatchFetch("http://localhost/missing")).status, 404);
  assert.equal(await (await mf.getKVNamespace("NS")).get("file"), body);
});

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

test("Miniflare: KV: in-memory data survives reload() and setOptions(), not a new instance", async (t) => {
  const { mf } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, { kvNamespaces: ["NS"] });
  assert.equal(await text(mf, "http://localhost/key", { method: "PUT", body: "value" }), "stored");
  assert.equal(await text(mf, "http://localhost/key"), "value");

  await mf.reload();
  assert.equal(await text(mf, "http://localhost/key"), "value");

  await mf.setOptions({ kvNamespaces: ["NS", "OTHER"] });
  assert.equal(await text(mf, "http://localhost/key"), "value");
  assert.equal(await (await mf.getKVNamespace("NS")).get("key"), "value");

  const { mf: fresh } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, { kvNamespaces: ["NS"] });
  assert.equal(await text(fresh, "http://localhost/key"), "null");
  assert.equal(await (await fresh.getKVNamespace("NS")).get("key"), null);
});

test("Miniflare: KV: kvPersist data survives dispose and a new instance", async (t) => {
  const tmp = await useTmp(t);
  const options = { kvNamespaces: ["NS"], kvPersist: "data", rootPath: tmp };
  const first = new Miniflare({
    modules: true,
    script: `export default { async fetch(request, env) { ${READ_WRITE_HANDLER} } }`,
    ...options,
  });
  try {
    assert.equal(await text(first, "http://localhost/key", { method: "PUT", body: "persisted" }), "stored");
    await (await first.getKVNamespace("NS")).put("meta", "value", { metadata: { m: 1 }, expirationTtl: 3600 });
  } finally {
    await first.dispose();
  }
  // Relative to rootPath
  await fs.access(path.join(tmp, "data"));

  const { mf: second } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, options);
  assert.equal(await text(second, "http://localhost/key"), "persisted");
  const ns = await second.getKVNamespace("NS");
  assert.deepEqual(await ns.getWithMetadata("meta"), { value: "value", metadata: { m: 1 } });
  const [meta] = (await ns.list({ prefix: "meta" })).keys;
  assert.equal(meta.name, "meta");
  assert.ok(meta.expiration! > Date.now() / 1000 + 3500);

  // An in-memory instance sees none of it
  const { mf: memory } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, { kvNamespaces: ["NS"], rootPath: tmp });
  assert.equal(await text(memory, "http://localhost/key"), "null");
});

test("Miniflare: KV: two instances persisting to the same directory see each other's writes", async (t) => {
  const tmp = await useTmp(t);
  const options = { kvNamespaces: ["NS"], kvPersist: tmp };
  const { mf: a } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, options);
  const { mf: b } = useMiniflareWithHandler(t, READ_WRITE_HANDLER, options);

  assert.equal(await text(a, "http://localhost/from-a", { method: "PUT", body: "a1" }), "stored");
  assert.equal(await text(b, "http://localhost/from-a"), "a1");
  assert.equal(await text(b, "http://localhost/from-b", { method: "PUT", body: "b1" }), "stored");
  assert.equal(await text(a, "http://localhost/from-b"), "b1");
  // Overwrites and deletes too
  assert.equal(await text(b, "http://localhost/from-a", { method: "PUT", body: "a2" }), "stored");
  assert.equal(await text(a, "http://localhost/from-a"), "a2");
  await (await a.getKVNamespace("NS")).delete("from-b");
  assert.equal(await text(b, "http://localhost/from-b"), "null");
  assert.deepEqual(
    (await (await b.getKVNamespace("NS")).list()).keys.map(({ name }) => name),
    ["from-a"]
  );
});

test("Miniflare: KV: kvPersist to a redis:// URL", async (t) => {
  const server = await startRedisServer();
  t.after(() => server.stop());
  const url = server.url;
  const options = {
    modules: true,
    script: `export default { async fetch(request, env) { ${READ_WRITE_HANDLER} } }`,
    kvNamespaces: ["NS"],
    kvPersist: url,
  };
  // Disposed in the test body, so their connections close before the server stops
  const first = new Miniflare(options);
  try {
    assert.equal(await text(first, "http://localhost/key", { method: "PUT", body: "in redis" }), "stored");
  } finally {
    await first.dispose();
  }
  const second = new Miniflare(options);
  const third = new Miniflare(options);
  try {
    // Survives a new instance
    assert.equal(await text(second, "http://localhost/key"), "in redis");
    const ns = await second.getKVNamespace("NS");
    await ns.put("meta", "value", { metadata: { m: 1 }, expirationTtl: 3600 });
    assert.deepEqual(await ns.getWithMetadata("meta"), { value: "value", metadata: { m: 1 } });
    const keys = (await ns.list()).keys;
    assert.deepEqual(keys.map(({ name }) => name), ["key", "meta"]);
    assert.ok(keys[1].expiration! > Date.now() / 1000 + 3500);
    // Shared between instances on the same URL
    assert.equal(await text(third, "http://localhost/meta"), "value");
    assert.equal(await text(third, "http://localhost/key", { method: "PUT", body: "updated" }), "stored");
    assert.equal(await text(second, "http://localhost/key"), "updated");
    await ns.delete("key");
    assert.equal(await text(third, "http://localhost/key"), "null");
  } finally {
    await Promise.all([second.dispose(), third.dispose()]);
  }
});
