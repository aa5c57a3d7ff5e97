// Durable Object ids, namespaces, stubs and per-object state, driven through
// DurableObjectsPlugin with classes defined in this (host) realm
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test, type TestContext } from "node:test";
import {
  DurableObjectError,
  DurableObjectId,
  DurableObjectNamespace,
  DurableObjectState,
  DurableObjectStorage,
  DurableObjectStub,
  DurableObjectsPlugin,
} from "../../../src/plugins/durable-objects/index.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { getRequestContext, RequestContext } from "../../../src/shared/context.js";
import { LogLevel } from "../../../src/shared/log.js";
import type { PluginContext } from "../../../src/shared/plugin.js";
import { Request, Response } from "../../../src/standards/http.js";
import { PluginStorageFactory, VariedStorageFactory } from "../../../src/storage/factory.js";
import { assertRejectsMiniflare } from "../../helpers/errors.js";
import { TestLog } from "../../helpers/log.js";
import { deferred, flushTurns, track } from "../../helpers/sync.js";
import { DEPTH_MESSAGE, OBJ_SUFFIX, OBJ_TEST_ID, OBJ_UNICODE_ID } from "./helpers.js";
import { HostRegistry } from "../../../src/shared/registry.js";

const UNUSED_FACTORY = async (): Promise<DurableObjectState> => {
  throw new Error("no object should be constructed");
};

function namespace(objectName = "OBJ"): DurableObjectNamespace {
  return new DurableObjectNamespace(objectName, UNUSED_FACTORY);
}

type ObjectClass = new (state: DurableObjectState, env: any) => any;

interface Harness {
  plugin: DurableObjectsPlugin;
  factory: PluginStorageFactory;
  env: Record<string, DurableObjectNamespace>;
  log: TestLog;
  ctx: PluginContext;
}

/**
 * A DurableObjectsPlugin binding each key of `classes` to the class (the
 * class is exported under the binding's name), set up and reloaded as
 * Miniflare would, disposed after the test
 */
async function useObjects(
  t: TestContext,
  classes: Record<string, ObjectClass>,
  { compat = new Compatibility() }: { compat?: Compatibility } = {}
): Promise<Harness> {
  const log = new TestLog();
  const ctx: PluginContext = { log, compat, rootPath: process.cwd(), registry: new HostRegistry() };
  const durableObjects = Object.fromEntries(Object.keys(classes).map((name) => [name, name]));
  const plugin = new DurableObjectsPlugin(ctx, { durableObjects });
  const inner = new VariedStorageFactory();
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  t.after(async () => {
    plugin.dispose();
    await inner.dispose();
  });
  const result = await plugin.setup(factory);
  const env = result.bindings as Record<string, DurableObjectNamespace>;
  plugin.beforeReload();
  await plugin.reload(env, classes, new Map());
  return { plugin, factory, env, log, ctx };
}

/** A class answering `<constructions>:<requests to this instance>` */
function countingClass(counts: { constructed: number }): ObjectClass {
  return class {
    requests = 0;
    constructor() {
      counts.constructed++;
    }
    fetch() {
      this.requests++;
      return new Response(`${counts.constructed}:${this.requests}`);
    }
  };
}

function hexBytes(hex: string): Buffer {
  return Buffer.from(hex, "hex");
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

test("DurableObjectNamespace: idFromName: byte-exact with Miniflare 2.14.4", () => {
  const ns = namespace("OBJ");
  const id = ns.idFromName("test");
  assert.ok(id instanceof DurableObjectId);
  assert.equal(id.toString(), OBJ_TEST_ID);
  assert.equal(String(id), OBJ_TEST_ID);
  assert.equal(`${id}`, OBJ_TEST_ID);
  // Names are hashed as UTF-8
  assert.equal(ns.idFromName("ünï").toString(), OBJ_UNICODE_ID);
  // The same name always gives the same id, in any namespace of that binding
  assert.equal(ns.idFromName("test").toString(), OBJ_TEST_ID);
  assert.equal(namespace("OBJ").idFromName("test").toString(), OBJ_TEST_ID);
});

test("DurableObjectNamespace: idFromName: structure of named ids", () => {
  const ns = namespace("OBJ");
  // The class suffix is the first 8 bytes of SHA-256 of the binding name
  assert.equal(createHash("sha256").update("OBJ").digest("hex").substring(0, 16), OBJ_SUFFIX);
  for (const name of ["", "a", "test", "ünï", "🙂", "x".repeat(1000), "with space"]) {
    const hex = ns.idFromName(name).toString();
    assert.match(hex, /^[0-9a-f]{64}$/);
    assert.ok(hex.endsWith(OBJ_SUFFIX), hex);
    // Top bit set: named ids never collide with unique ids (first byte 0)
    assert.ok(hexBytes(hex)[0] >= 0x80, hex);
    // The first 24 bytes are SHA-256(binding name ‖ name), top bit forced
    const hash = createHash("sha256").update("OBJ" + name).digest();
    hash[0] |= 0x80;
    assert.equal(hex.substring(0, 48), hash.subarray(0, 24).toString("hex"));
  }
  // Different names give different ids, different bindings different suffixes
  assert.notEqual(ns.idFromName("a").toString(), ns.idFromName("b").toString());
  const other = namespace("OTHER").idFromName("test").toString();
  assert.notEqual(other, OBJ_TEST_ID);
  assert.ok(other.endsWith(createHash("sha256").update("OTHER").digest("hex").substring(0, 16)));
  assert.ok(!other.endsWith(OBJ_SUFFIX));
});

test("DurableObjectNamespace: idFromName: the id carries its name", () => {
  const ns = namespace();
  const id = ns.idFromName("test");
  assert.equal(id.name, "test");
  assert.equal(ns.idFromName("ünï").name, "ünï");
  assert.equal(ns.idFromName("").name, "");
});

test("DurableObjectNamespace: newUniqueId: 0, time, randomness, class suffix", () => {
  const ns = namespace("OBJ");
  const before = Date.now();
  const id = ns.newUniqueId();
  const after = Date.now();
  const hex = id.toString();
  assert.match(hex, /^00[0-9a-f]{62}$/);
  assert.ok(hex.endsWith(OBJ_SUFFIX));
  const time = Number(hexBytes(hex).readBigUInt64BE(1));
  assert.ok(before <= time && time <= after, `${before} <= ${time} <= ${after}`);
  // Unique ids have no name (the property is there, undefined, as in Miniflare 2)
  assert.equal(id.name, undefined);
  assert.ok(Object.hasOwn(id, "name"));
  // Never the same twice, even within one millisecond
  const ids = new Set(Array.from({ length: 100 }, () => ns.newUniqueId().toString()));
  assert.equal(ids.size, 100);
  // The random bytes differ
  const randoms = new Set([...ids].map((unique) => unique.substring(18, 48)));
  assert.equal(randoms.size, 100);
});

test("DurableObjectNamespace: newUniqueId: jurisdictions", () => {
  const ns = namespace();
  for (const jurisdiction of ["eu", "fedramp"]) {
    const hex = ns.newUniqueId({ jurisdiction }).toString();
    assert.match(hex, /^00[0-9a-f]{62}$/);
    assert.ok(hex.endsWith(OBJ_SUFFIX));
  }
  assert.match(ns.newUniqueId({}).toString(), /^00[0-9a-f]{62}$/);
  for (const jurisdiction of ["us", "EU", "", "bad"]) {
    assert.throws(() => ns.newUniqueId({ jurisdiction }), {
      name: "TypeError",
      message: `newUniqueId called with an unsupported jurisdiction: "${jurisdiction}"`,
    });
  }
});

test("DurableObjectNamespace: jurisdiction: eu and fedramp only, ids unchanged", () => {
  const ns = namespace();
  for (const name of ["eu", "fedramp"]) {
    const sub = ns.jurisdiction(name);
    assert.ok(sub instanceof DurableObjectNamespace);
    assert.equal(sub.idFromName("test").toString(), OBJ_TEST_ID);
    assert.ok(sub.newUniqueId().toString().endsWith(OBJ_SUFFIX));
    // Ids of either are accepted by the other
    assert.equal(ns.get(sub.idFromName("test")).id.toString(), OBJ_TEST_ID);
  }
  for (const name of ["us", "EU", "", "mars"]) {
    assert.throws(() => ns.jurisdiction(name), {
      name: "TypeError",
      message: `jurisdiction called with an unsupported jurisdiction: "${name}"`,
    });
  }
});

test("DurableObjectNamespace: idFromString: round trips both kinds of id", () => {
  const ns = namespace();
  const named = ns.idFromName("test");
  const fromNamed = ns.idFromString(named.toString());
  assert.equal(fromNamed.toString(), OBJ_TEST_ID);
  assert.ok(fromNamed.equals(named));
  assert.ok(named.equals(fromNamed));
  // Parsed ids don't know their name
  assert.equal(fromNamed.name, undefined);

  const unique = ns.newUniqueId();
  const fromUnique = ns.idFromString(unique.toString());
  assert.equal(fromUnique.toString(), unique.toString());
  assert.ok(fromUnique.equals(unique));
});

test("DurableObjectNamespace: idFromString: rejects malformed and foreign ids", () => {
  const ns = namespace();
  const malformed = {
    name: "TypeError",
    message: "Invalid Durable Object ID. Durable Object IDs must be 64 hex digits.",
  };
  for (const hex of ["", "abc", OBJ_TEST_ID.substring(1), OBJ_TEST_ID + "0", "g" + OBJ_TEST_ID.substring(1), ` ${OBJ_TEST_ID.substring(1)}`, "z".repeat(64)]) {
    assert.throws(() => ns.idFromString(hex), malformed, JSON.stringify(hex));
  }
  const foreign = namespace("OTHER").idFromName("test").toString();
  assert.throws(() => ns.idFromString(foreign), {
    name: "TypeError",
    message: "Invalid Durable Object ID. The ID does not match this Durable Object class.",
  });
  // Our own id in upper case is foreign too, as in Miniflare 2
  assert.throws(() => ns.idFromString(OBJ_TEST_ID.toUpperCase()), {
    name: "TypeError",
    message: "Invalid Durable Object ID. The ID does not match this Durable Object class.",
  });
  // A suffix one digit off is still foreign
  const tampered = OBJ_TEST_ID.substring(0, 63) + (OBJ_TEST_ID[63] === "0" ? "1" : "0");
  assert.throws(() => ns.idFromString(tampered), {
    message: "Invalid Durable Object ID. The ID does not match this Durable Object class.",
  });
});

test("DurableObjectId: equals and toString", () => {
  const ns = namespace();
  const a = ns.idFromName("a");
  assert.ok(a.equals(ns.idFromName("a")));
  assert.ok(a.equals(a));
  assert.ok(!a.equals(ns.idFromName("b")));
  assert.ok(!a.equals(ns.newUniqueId()));
  // Not equal to anything that isn't an id, even with the same string
  const hexOnly = { toString: () => a.toString() } as unknown as DurableObjectId;
  assert.equal(a.equals(hexOnly), false);
  assert.equal(a.toString(), a.toString().toLowerCase());
  assert.equal(a.toString(), ns.idFromName("a").toString());
});

test("DurableObjectNamespace: get: refuses ids of another binding", () => {
  const ns = namespace("OBJ");
  const other = namespace("OTHER");
  const message = { name: "TypeError", message: "ID is not for this Durable Object class." };
  assert.throws(() => ns.get(other.idFromName("test")), message);
  assert.throws(() => ns.get(other.newUniqueId()), message);
  assert.throws(() => other.get(ns.idFromName("test")), message);
  // Something that just looks like an id
  assert.throws(() => ns.get({ toString: () => OBJ_TEST_ID } as unknown as DurableObjectId), message);
  // Its own ids are fine, and get() constructs nothing by itself
  const stub = ns.get(ns.idFromName("test"));
  assert.ok(stub instanceof DurableObjectStub);
});

test("DurableObjectStub: id and name", () => {
  const ns = namespace();
  const named = ns.get(ns.idFromName("test"));
  assert.equal(named.id.toString(), OBJ_TEST_ID);
  assert.equal(named.name, "test");
  const unique = ns.get(ns.newUniqueId());
  assert.equal(unique.name, undefined);
  const parsed = ns.get(ns.idFromString(OBJ_TEST_ID));
  assert.equal(parsed.name, undefined);
  assert.ok(parsed.id.equals(named.id));
});

// ---------------------------------------------------------------------------
// Stub fetch
// ---------------------------------------------------------------------------

test("DurableObjectStub: fetch delivers the request and returns the response", async (t) => {
  const seen: { method: string; url: string; header: string | null; body: string }[] = [];
  const { env } = await useObjects(t, {
    OBJ: class {
      async fetch(request: Request) {
        seen.push({
          method: request.method,
          url: request.url,
          header: request.headers.get("X-Test"),
          body: await request.text(),
        });
        return new Response("reply", { status: 201, headers: { "X-Reply": "yes" } });
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  const res = await stub.fetch("http://localhost/path?q=1", {
    method: "POST",
    headers: { "X-Test": "value" },
    body: "payload",
  });
  assert.ok(res instanceof Response);
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("X-Reply"), "yes");
  assert.equal(await res.text(), "reply");
  // A Request object works too
  await stub.fetch(new Request("https://example.com/r", { headers: { "X-Test": "req" } }));
  assert.deepEqual(seen, [
    { method: "POST", url: "http://localhost/path?q=1", header: "value", body: "payload" },
    { method: "GET", url: "https://example.com/r", header: "req", body: "" },
  ]);
});

test("DurableObjectStub: relative URLs resolve against https://fake-host by default", async (t) => {
  const urls: string[] = [];
  const { env } = await useObjects(t, {
    OBJ: class {
      fetch(request: Request) {
        urls.push(request.url);
        return new Response("ok");
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  assert.equal(await (await stub.fetch("/path?q=1")).text(), "ok");
  assert.equal(await (await stub.fetch("other")).text(), "ok");
  assert.deepEqual(urls, ["https://fake-host/path?q=1", "https://fake-host/other"]);
});

test("DurableObjectStub: durable_object_fetch_requires_full_url refuses relative URLs", async (t) => {
  for (const compat of [
    new Compatibility(undefined, ["durable_object_fetch_requires_full_url"]),
    // On by default from 2021-11-10
    new Compatibility("2021-11-10"),
  ]) {
    let delivered = 0;
    const { env } = await useObjects(
      t,
      {
        OBJ: class {
          fetch() {
            delivered++;
            return new Response("ok");
          }
        },
      },
      { compat }
    );
    const stub = env.OBJ.get(env.OBJ.idFromName("a"));
    await assert.rejects(stub.fetch("/path"), { name: "TypeError" });
    assert.equal(delivered, 0);
    // Full URLs still work
    assert.equal(await (await stub.fetch("http://localhost/path")).text(), "ok");
    assert.equal(delivered, 1);
  }
  // ...unless switched back off
  const { env } = await useObjects(
    t,
    { OBJ: class { fetch(request: Request) { return new Response(request.url); } } },
    { compat: new Compatibility("2021-11-10", ["durable_object_fetch_allows_relative_url"]) }
  );
  const res = await env.OBJ.get(env.OBJ.idFromName("a")).fetch("/p");
  assert.equal(await res.text(), "https://fake-host/p");
});

test("DurableObjectStub: unknown protocols warn, or throw with fetch_refuses_unknown_protocols", async (t) => {
  const urls: string[] = [];
  const objects = {
    OBJ: class {
      fetch(request: Request) {
        urls.push(request.url);
        return new Response("ok");
      }
    },
  };
  const { env, log } = await useObjects(t, objects);
  const res = await env.OBJ.get(env.OBJ.idFromName("a")).fetch("ftp://example.com/file");
  assert.equal(await res.text(), "ok");
  // The URL is kept as it is
  assert.deepEqual(urls, ["ftp://example.com/file"]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Worker passed an invalid URL to fetch(). URLs passed to fetch() must begin with either " +
      "'http:' or 'https:', not 'ftp:'. Due to a historical bug, any other protocol used here " +
      "will be treated the same as 'http:'. We plan to correct this bug in the future, so please " +
      "update your Worker to use 'http:' or 'https:' for all fetch() URLs.",
  ]);
  // http(s) doesn't warn
  log.clear();
  await env.OBJ.get(env.OBJ.idFromName("a")).fetch("https://example.com/");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);

  const refusing = await useObjects(t, objects, {
    compat: new Compatibility(undefined, ["fetch_refuses_unknown_protocols"]),
  });
  urls.length = 0;
  await assert.rejects(refusing.env.OBJ.get(refusing.env.OBJ.idFromName("a")).fetch("ftp://example.com/file"), {
    name: "TypeError",
    message: "Fetch API cannot load: ftp://example.com/file",
  });
  assert.deepEqual(urls, []);
  assert.deepEqual(refusing.log.logsAtLevel(LogLevel.WARN), []);
});

test("DurableObjectStub: a handler not returning a Response is ERR_RESPONSE_TYPE", async (t) => {
  const { env } = await useObjects(t, {
    OBJ: class {
      fetch(request: Request) {
        const kind = new URL(request.url).pathname;
        if (kind === "/string") return "not a response";
        if (kind === "/undefined") return undefined;
        return { status: 200, body: "fake" };
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  for (const path of ["/string", "/undefined", "/object"]) {
    await assertRejectsMiniflare(
      stub.fetch(`http://localhost${path}`),
      DurableObjectError,
      "ERR_RESPONSE_TYPE",
      "Durable Object fetch handler didn't respond with a Response object"
    );
  }
});

test("DurableObjectStub: a class without fetch() is ERR_NO_HANDLER", async (t) => {
  let constructed = 0;
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor() {
        constructed++;
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  await assertRejectsMiniflare(
    stub.fetch("http://localhost/"),
    DurableObjectError,
    "ERR_NO_HANDLER",
    "No fetch handler defined in Durable Object"
  );
  // The object was constructed, and stays
  await assert.rejects(stub.fetch("http://localhost/"), { code: "ERR_NO_HANDLER" });
  assert.equal(constructed, 1);
});

test("DurableObjectStub: request and response headers are immutable", async (t) => {
  let requestError: unknown;
  const { env } = await useObjects(t, {
    OBJ: class {
      fetch(request: Request) {
        try {
          request.headers.set("X-Added", "1");
        } catch (e) {
          requestError = e;
        }
        return new Response("ok", { headers: { "X-Reply": "1" } });
      }
    },
  });
  const res = await env.OBJ.get(env.OBJ.idFromName("a")).fetch("http://localhost/", {
    headers: { "X-Sent": "1" },
  });
  assert.ok(requestError instanceof TypeError, String(requestError));
  assert.equal((requestError as TypeError).message, "immutable");
  assert.throws(() => res.headers.set("X-Reply", "2"), { name: "TypeError", message: "immutable" });
  assert.throws(() => res.headers.append("X-Other", "2"), { name: "TypeError", message: "immutable" });
  assert.throws(() => res.headers.delete("X-Reply"), { name: "TypeError", message: "immutable" });
  assert.equal(res.headers.get("X-Reply"), "1");
  // A copy can be changed
  const copy = new Response(res.body, res);
  copy.headers.set("X-Reply", "2");
  assert.equal(copy.headers.get("X-Reply"), "2");
});

test("DurableObjectStub: fetch runs in a new request context one level deeper", async (t) => {
  const contexts: { depth?: number; durableObject?: boolean }[] = [];
  const { env } = await useObjects(t, {
    OBJ: class {
      fetch() {
        const ctx = getRequestContext();
        contexts.push({ depth: ctx?.requestDepth, durableObject: ctx?.durableObject });
        return new Response("ok");
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  await stub.fetch("http://localhost/");
  const parent = new RequestContext({ requestDepth: 3 });
  await parent.runWith(async () => {
    await stub.fetch("http://localhost/");
    await stub.fetch("http://localhost/");
  });
  assert.deepEqual(contexts, [
    { depth: 1, durableObject: true },
    { depth: 4, durableObject: true },
    { depth: 4, durableObject: true },
  ]);
  // Each fetch is one of the caller's internal subrequests
  assert.equal(parent.internalSubrequests, 2);
  assert.equal(parent.externalSubrequests, 0);
});

test("DurableObjectStub: an object fetching itself stops at depth 16", async (t) => {
  let calls = 0;
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor(readonly state: DurableObjectState, readonly env: Record<string, DurableObjectNamespace>) {}
      fetch() {
        calls++;
        return this.env.OBJ.get(this.state.id).fetch("http://localhost/");
      }
    },
  });
  await assert.rejects(env.OBJ.get(env.OBJ.idFromName("loop")).fetch("http://localhost/"), {
    name: "Error",
    message: DEPTH_MESSAGE,
  });
  // Depths 1 to 16 ran, the 17th was refused
  assert.equal(calls, 16);
});

// ---------------------------------------------------------------------------
// Instances and state
// ---------------------------------------------------------------------------

test("DurableObjectsPlugin: one instance per id, across requests and stubs", async (t) => {
  const counts = { constructed: 0 };
  const { env } = await useObjects(t, { OBJ: countingClass(counts) });
  const ns = env.OBJ;
  // Nothing is constructed until a request arrives
  const stubA = ns.get(ns.idFromName("a"));
  assert.equal(counts.constructed, 0);
  assert.equal(await (await stubA.fetch("http://localhost/")).text(), "1:1");
  assert.equal(await (await stubA.fetch("http://localhost/")).text(), "1:2");
  // Another stub for the same id (by name or by string) reaches the same instance
  const stubA2 = ns.get(ns.idFromName("a"));
  assert.equal(await (await stubA2.fetch("http://localhost/")).text(), "1:3");
  const stubA3 = ns.get(ns.idFromString(stubA.id.toString()));
  assert.equal(await (await stubA3.fetch("http://localhost/")).text(), "1:4");
  // Many concurrent requests: still one instance
  const texts = await Promise.all(
    Array.from({ length: 20 }, async () => (await stubA2.fetch("http://localhost/")).text())
  );
  assert.equal(counts.constructed, 1);
  assert.deepEqual(texts.map((text) => Number(text.split(":")[1])).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 5));
  // A different id is a different instance
  assert.equal(await (await ns.get(ns.idFromName("b")).fetch("http://localhost/")).text(), "2:1");
  // A namespace built again for the same binding shares instances
  assert.equal(await (await env.OBJ.get(env.OBJ.idFromName("a")).fetch("http://localhost/")).text(), "2:25");
});

test("DurableObjectsPlugin: concurrent first requests construct once", async (t) => {
  const counts = { constructed: 0 };
  const { env } = await useObjects(t, { OBJ: countingClass(counts) });
  const ns = env.OBJ;
  await Promise.all(
    Array.from({ length: 10 }, () => ns.get(ns.idFromName("same")).fetch("http://localhost/"))
  );
  assert.equal(counts.constructed, 1);
});

test("DurableObjectsPlugin: getObjects lists constructed objects of a binding", async (t) => {
  const counts = { constructed: 0 };
  const { plugin, factory, env } = await useObjects(t, { OBJ: countingClass(counts), OTHER: countingClass(counts) });
  assert.deepEqual(plugin.getObjects(factory, "OBJ"), []);
  const a = env.OBJ.idFromName("a");
  const b = env.OBJ.newUniqueId();
  await env.OBJ.get(a).fetch("http://localhost/");
  await env.OBJ.get(b).fetch("http://localhost/");
  await env.OTHER.get(env.OTHER.idFromName("a")).fetch("http://localhost/");
  const ids = plugin.getObjects(factory, "OBJ").map(String).sort();
  assert.deepEqual(ids, [a.toString(), b.toString()].sort());
  assert.deepEqual(plugin.getObjects(factory, "OTHER").map(String), [env.OTHER.idFromName("a").toString()]);
  assert.deepEqual(plugin.getObjects(factory, "NONE"), []);
});

test("DurableObjectState: id (without name), storage, waitUntil, env", async (t) => {
  const states: DurableObjectState[] = [];
  const envs: unknown[] = [];
  const { plugin, factory, env } = await useObjects(t, {
    OBJ: class {
      constructor(state: DurableObjectState, env: unknown) {
        states.push(state);
        envs.push(env);
      }
      async fetch() {
        return new Response("ok");
      }
    },
  });
  const id = env.OBJ.idFromName("test");
  await env.OBJ.get(id).fetch("http://localhost/");
  assert.equal(states.length, 1);
  const [state] = states;
  assert.ok(state instanceof DurableObjectState);
  assert.ok(state.id instanceof DurableObjectId);
  assert.equal(state.id.toString(), OBJ_TEST_ID);
  assert.ok(state.id.equals(id));
  // The id the object receives has no name (an own property, undefined, as in Miniflare 2)
  assert.equal(state.id.name, undefined);
  assert.ok(Object.hasOwn(state.id, "name"));
  assert.ok(state.storage instanceof DurableObjectStorage);
  // The same storage the plugin hands out for the id
  assert.equal(plugin.getStorage(factory, id), state.storage);
  // waitUntil is accepted and does nothing
  assert.equal(typeof state.waitUntil, "function");
  assert.equal(state.waitUntil(Promise.resolve()), undefined);
  // env is the bindings
  assert.equal(envs[0], env);
});

test("DurableObjectState: storage is shared by requests to one object and separate per id", async (t) => {
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch(request: Request) {
        const storage = this.state.storage;
        if (request.method === "PUT") await storage.put("key", await request.text());
        return new Response(String(await storage.get("key")));
      }
    },
  });
  const a = env.OBJ.get(env.OBJ.idFromName("a"));
  const b = env.OBJ.get(env.OBJ.idFromName("b"));
  assert.equal(await (await a.fetch("http://localhost/", { method: "PUT", body: "A" })).text(), "A");
  assert.equal(await (await a.fetch("http://localhost/")).text(), "A");
  assert.equal(await (await b.fetch("http://localhost/")).text(), "undefined");
});

test("DurableObjectState: blockConcurrencyWhile in the constructor holds back requests", async (t) => {
  const events: string[] = [];
  const release = deferred();
  const { env } = await useObjects(t, {
    OBJ: class {
      value?: string;
      constructor(state: DurableObjectState) {
        void state.blockConcurrencyWhile(async () => {
          events.push("block start");
          await release.promise;
          this.value = "initialised";
          events.push("block end");
        });
      }
      fetch(request: Request) {
        events.push(`fetch ${new URL(request.url).pathname}`);
        return new Response(this.value);
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  const first = stub.fetch("http://localhost/1");
  const second = stub.fetch("http://localhost/2");
  const firstState = track(first);
  await flushTurns(20);
  assert.deepEqual(events, ["block start"]);
  assert.equal(firstState.settled, false);
  release.resolve();
  const texts = await Promise.all([first, second].map(async (res) => (await res).text()));
  assert.deepEqual(texts, ["initialised", "initialised"]);
  assert.deepEqual(events, ["block start", "block end", "fetch /1", "fetch /2"]);
});

test("DurableObjectState: blockConcurrencyWhile in a request holds back other requests", async (t) => {
  const events: string[] = [];
  const release = deferred();
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch(request: Request) {
        const path = new URL(request.url).pathname;
        events.push(`start ${path}`);
        if (path === "/block") {
          const result = await this.state.blockConcurrencyWhile(async () => {
            await release.promise;
            events.push("block end");
            return 42;
          });
          events.push(`result ${result}`);
        }
        events.push(`end ${path}`);
        return new Response(path);
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  const blocking = stub.fetch("http://localhost/block");
  await flushTurns();
  const other = stub.fetch("http://localhost/other");
  await flushTurns(20);
  assert.deepEqual(events, ["start /block"]);
  release.resolve();
  await Promise.all([blocking, other]);
  assert.equal(events.indexOf("block end") < events.indexOf("start /other"), true, events.join(","));
  assert.deepEqual(events.slice(0, 2), ["start /block", "block end"]);
  assert.ok(events.includes("result 42"));
  assert.ok(events.includes("end /other"));
});

test("DurableObjectState: blockConcurrencyWhile returns the closure's result and rethrows", async (t) => {
  const results: unknown[] = [];
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch() {
        results.push(await this.state.blockConcurrencyWhile(async () => "async"));
        results.push(await this.state.blockConcurrencyWhile(() => "sync"));
        return new Response("ok");
      }
    },
  });
  await env.OBJ.get(env.OBJ.idFromName("a")).fetch("http://localhost/");
  assert.deepEqual(results, ["async", "sync"]);
});

test("DurableObjectState: a fetch to another object inside blockConcurrencyWhile doesn't deadlock", { timeout: 10_000 }, async (t) => {
  const { env } = await useObjects(t, {
    A: class {
      fromB?: string;
      constructor(state: DurableObjectState, env: Record<string, DurableObjectNamespace>) {
        void state.blockConcurrencyWhile(async () => {
          const res = await env.B.get(env.B.idFromName("b")).fetch("http://localhost/from-a");
          this.fromB = await res.text();
        });
      }
      fetch() {
        return new Response(`A saw ${this.fromB}`);
      }
    },
    B: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch(request: Request) {
        // B's own storage closes B's gate, not A's
        await this.state.storage.put("last", request.url);
        return new Response(`B got ${new URL(request.url).pathname}`);
      }
    },
  });
  const res = await env.A.get(env.A.idFromName("a")).fetch("http://localhost/");
  assert.equal(await res.text(), "A saw B got /from-a");
});

test("DurableObjectState: blockConcurrencyWhile throwing resets the object (check 22)", async (t) => {
  let constructed = 0;
  let handled = 0;
  const release = deferred();
  const { plugin, factory, env } = await useObjects(t, {
    OBJ: class {
      readonly instance: number;
      constructor(state: DurableObjectState) {
        this.instance = ++constructed;
        if (this.instance === 1) {
          void state.blockConcurrencyWhile(async () => {
            await release.promise;
            throw new Error("initialisation failed");
          });
        }
      }
      fetch() {
        handled++;
        return new Response(`instance ${this.instance}`);
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  // Requests waiting on the failed gate get the error; none reaches the handler
  const waiting = [stub.fetch("http://localhost/1"), stub.fetch("http://localhost/2")];
  await flushTurns(20);
  assert.equal(handled, 0);
  release.resolve();
  for (const promise of waiting) {
    await assert.rejects(promise, { message: "initialisation failed" });
  }
  assert.equal(handled, 0);
  assert.equal(constructed, 1);
  // The reset object is forgotten...
  assert.deepEqual(plugin.getObjects(factory, "OBJ"), []);
  // ...and the next request constructs a fresh instance
  assert.equal(await (await stub.fetch("http://localhost/3")).text(), "instance 2");
  assert.equal(await (await stub.fetch("http://localhost/4")).text(), "instance 2");
  assert.equal(constructed, 2);
  assert.equal(handled, 2);
});

test("DurableObjectState: a synchronously throwing blockConcurrencyWhile closure resets too", async (t) => {
  let constructed = 0;
  const rejections: unknown[] = [];
  const { env } = await useObjects(t, {
    OBJ: class {
      readonly instance: number;
      constructor(readonly state: DurableObjectState) {
        this.instance = ++constructed;
      }
      async fetch(request: Request) {
        if (new URL(request.url).pathname === "/throw") {
          try {
            await this.state.blockConcurrencyWhile(() => {
              throw new RangeError("sync failure");
            });
          } catch (e) {
            rejections.push(e);
          }
        }
        return new Response(`instance ${this.instance}`);
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  assert.equal(await (await stub.fetch("http://localhost/throw")).text(), "instance 1");
  assert.equal(rejections.length, 1);
  assert.ok(rejections[0] instanceof RangeError);
  assert.equal(await (await stub.fetch("http://localhost/")).text(), "instance 2");
});

test("DurableObjectsPlugin: a constructor that throws is retried on the next request", async (t) => {
  let attempts = 0;
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor() {
        if (++attempts === 1) throw new Error("constructor failed");
      }
      fetch() {
        return new Response(`attempt ${attempts}`);
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  await assert.rejects(stub.fetch("http://localhost/"), { message: "constructor failed" });
  assert.equal(await (await stub.fetch("http://localhost/")).text(), "attempt 2");
  assert.equal(await (await stub.fetch("http://localhost/")).text(), "attempt 2");
});

test("DurableObjectsPlugin: storage operations serialise concurrent requests (gates)", async (t) => {
  const { env } = await useObjects(t, {
    OBJ: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch() {
        const value = ((await this.state.storage.get("n")) as number | undefined ?? 0) + 1;
        await this.state.storage.put("n", value);
        return new Response(String(value));
      }
    },
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("counter"));
  const replies = await Promise.all(
    Array.from({ length: 50 }, async () => Number(await (await stub.fetch("http://localhost/")).text()))
  );
  assert.deepEqual(replies.sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
});
