// Tests for the Request wrapper and withImmutableHeaders (spec §2.3)
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Body,
  Request,
  Response,
  _kInner,
  kFixedLength,
  withEnumerableGetters,
  withImmutableHeaders,
  withInputGating,
} from "../../src/standards/http.js";
import {
  bodyChecks,
  byobReadFirstChunk,
  cf,
  singleChunkStream,
  waitsForInputGate,
} from "../helpers/http.js";

const BaseRequest = globalThis.Request;
const postRequest = (body: BodyInit | null) => new Request("http://localhost", { method: "POST", body });

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

test("Request: constructing from BaseRequest doesn't create new BaseRequest unless required", () => {
  const controller = new AbortController();
  const base = new BaseRequest("http://localhost", {
    method: "POST",
    keepalive: true,
    headers: { "Content-Type": "text/html" },
    body: "<p>test</p>",
    redirect: "follow",
    integrity: "sha256-BpfBw7ivV8q2jLiT13fxDYAe2tJllusRSZ273h2nFSE=",
    signal: controller.signal,
  });
  let req = new Request(base);
  assert.equal(req[_kInner], base);
  assert.equal(req.headers, base.headers);
  assert.equal(req.method, base.method);
  assert.equal(req.redirect, base.redirect);
  assert.equal(req.url, base.url);
  assert.equal(req.signal, base.signal);

  req = new Request(base, { method: "PATCH" });
  assert.notEqual(req[_kInner], base);
  assert.equal(req.method, "PATCH");
});

test("Request: can construct new Request from existing Request", async () => {
  const req = new Request("http://localhost", { method: "POST", body: "body", cf });
  const req2 = new Request(req);
  assert.notEqual(req2.headers, req.headers);
  assert.notEqual(req2.body, req.body);
  assert.notEqual(req2.cf, req.cf);
  assert.equal(req2.method, "POST");
  assert.equal(await req2.text(), "body");
  assert.deepEqual(req2.cf, cf);
});

test("Request: can use existing Request as init", async () => {
  const req = new Request("http://localhost/a", {
    method: "PUT",
    headers: { "X-Key": "value" },
    body: "body",
    cf,
  });
  const req2 = new Request("http://localhost/b", req);
  assert.equal(req2.url, "http://localhost/b");
  assert.equal(req2.method, "PUT");
  assert.equal(req2.headers.get("X-Key"), "value");
  assert.deepEqual(req2.cf, cf);
  assert.equal(await req2.text(), "body");
});

test("Request: can construct new Request with stream body", async () => {
  const init = { method: "POST", body: singleChunkStream("chunk1") };
  const initClone = { ...init };
  let req = new Request("http://localhost", init);
  // init isn't mutated (duplex is set on a copy)
  assert.deepEqual(init, initClone);
  assert.equal(await req.text(), "chunk1");

  req = new Request("http://localhost", { method: "POST", body: singleChunkStream("chunk2", "bytes") });
  assert.equal(await req.text(), "chunk2");
});

test("Request: supports non-standard properties", () => {
  const req = new Request("http://localhost", { method: "POST", cf });
  assert.equal(req.method, "POST");
  assert.deepEqual(req.cf, cf);
  assert.notEqual(req.cf, cf);
  assert.notEqual(req.cf!.nested, cf.nested);
  assert.equal(new Request("http://localhost").cf, undefined);
});

test("Request: cf defaults to input.cf", () => {
  const req = new Request("http://localhost", { method: "POST", cf });
  const req2 = new Request(req);
  assert.deepEqual(req.cf, req2.cf);
  assert.notEqual(req.cf, req2.cf);
});

test("Request: init.cf overrides input.cf", () => {
  const req = new Request("http://localhost", { method: "POST", cf });
  const req2 = new Request(req, { cf: { cacheKey: "test" } });
  assert.notDeepEqual(req.cf, req2.cf);
  assert.equal(req2.cf?.cacheKey, "test");
});

test("Request: doesn't detach ArrayBuffers", () => bodyChecks.doesntDetachBuffers(postRequest));

test("Request: clone: copies cf", () => {
  const req = new Request("http://localhost", { method: "POST", cf });
  const req2 = req.clone();
  assert.equal(req2.method, "POST");
  assert.deepEqual(req2.cf, cf);
  assert.notEqual(req2.cf, req.cf);

  assert.equal(Object.getPrototypeOf(req2), Request.prototype);
  const req3 = req2.clone();
  assert.equal(req3.method, "POST");
  assert.deepEqual(req3.cf, cf);
  assert.notEqual(req3.cf, req2.cf);
});

test("Request: clones stream bodies", () => bodyChecks.clonesStreamBodies(postRequest));

test("Request: can be input gated", async () => {
  const req = withInputGating(new Request("http://localhost", { method: "POST", body: "body" }));
  assert(req instanceof Body);
  await waitsForInputGate(() => req.text());
});

test("Request: clone retains input gated option", async () => {
  const req = withInputGating(new Request("http://localhost", { method: "POST", body: "body" }));
  const clone = req.clone();
  await waitsForInputGate(() => clone.text());
});

test("Request: clone retains form data file parsing option", () =>
  bodyChecks.cloneRetainsFormDataFileOption(postRequest)
);

test("Request: getters are on the prototype by default", () => {
  const req = new Request("http://localhost");
  assert.deepEqual(Object.keys(req), []);
  assert.equal(req.url, "http://localhost/");
});

test("Request: Object.keys() returns getters with withEnumerableGetters()", () => {
  const req = withEnumerableGetters(
    new Request("http://localhost", { headers: { "X-Key": "value " } })
  );
  assert.equal(withEnumerableGetters(req), req);
  // Live getters, not copies of the values
  assert.equal(req.bodyUsed, false);
  assert.equal(req.method, "GET");
  assert.deepEqual(Object.keys(req.clone()), Object.keys(req));
  assert.deepEqual(Object.keys(req), [
    "body",
    "bodyUsed",
    "headers",
    "cf",
    "signal",
    "redirect",
    "url",
    "method",
  ]);
  assert.deepEqual(Object.getOwnPropertyNames(req).sort(), Object.keys(req).sort());
});

test("Request: can mutate forbidden headers after construction", () => {
  const forbiddenHeaderNames = [
    "accept-charset",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "connection",
    "content-length",
    "cookie",
    "cookie2",
    "date",
    "dnt",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "referer",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
  ];
  bodyChecks.forbiddenHeadersMutable(new Request("http://localhost"), forbiddenHeaderNames);
});

test("Request: can use byob reader for body", async () => {
  const { body } = new Request("https://a", { method: "POST", body: "body" });
  assert.equal(await byobReadFirstChunk(body), "body");
});

test("Request: can use byob reader when cloning", () => bodyChecks.byobReadsWhenCloning(postRequest));

test("Request: should be locked when attaching a reader", () => {
  const req = new Request("http://localhost", { method: "POST", body: "body" });
  assert(req.body instanceof ReadableStream);
  assert.equal(req.body.locked, false);
  const reader = req.body.getReader();
  assert(reader instanceof ReadableStreamDefaultReader);
  assert.equal(req.body.locked, true);
});

test("Request: should reset bodyStream when body is cloned", () =>
  bodyChecks.cloneResetsBodyStream(postRequest)
);

test("Request: access to unimplemented properties throws error", () => {
  const properties = ["context", "mode", "credentials", "integrity", "cache"];
  bodyChecks.unimplementedProperties("Request", new Request("https://a"), properties);
});

test("Request: sets Content-Length for fixed length stream bodies", () => {
  const stream = new ReadableStream();
  Object.defineProperty(stream, kFixedLength, { value: 3 });
  const req = new Request("http://localhost", { method: "POST", body: stream });
  assert.equal(req.headers.get("Content-Length"), "3");
});

test("Request: instanceof works for wrapper classes only", () => {
  const req = new Request("http://localhost");
  assert(req instanceof Request);
  assert(req instanceof Body);
  assert.equal(req instanceof Response, false);
  assert.equal(new BaseRequest("http://localhost") instanceof Request, false);
});

test("Request: throws undici's errors for invalid input", () => {
  assert.throws(() => new Request("not a url"), { name: "TypeError" });
  assert.throws(() => new Request("http://localhost", { method: "GET", body: "x" }), {
    name: "TypeError",
  });
});

// ---------------------------------------------------------------------------
// withImmutableHeaders
// ---------------------------------------------------------------------------

test("withImmutableHeaders: makes Request's headers immutable", () => {
  const req = new Request("http://localhost");
  req.headers.set("X-Key", "value");
  assert.equal(withImmutableHeaders(req), req);
  for (const mutate of [
    () => req.headers.set("X-Key", "new"),
    () => req.headers.append("X-Key", "new"),
    () => req.headers.delete("X-Key"),
  ]) {
    assert.throws(mutate, { name: "TypeError", message: "immutable" });
  }
  assert.equal(req.headers.get("X-Key"), "value");
  assert.deepEqual(Object.keys(req.headers), []);

  // Clones keep immutable headers...
  const clone = req.clone();
  assert.throws(() => clone.headers.set("X-Key", "new"), { name: "TypeError", message: "immutable" });
  assert.equal(clone.headers.get("X-Key"), "value");

  // ...but new Requests don't
  const req2 = new Request(req);
  req2.headers.set("X-Key", "new");
  assert.equal(req2.headers.get("X-Key"), "new");
});

test("withImmutableHeaders: makes Response's headers immutable", () => {
  const res = withImmutableHeaders(new Response("body", { headers: { "X-Key": "value" } }));
  assert.throws(() => res.headers.set("X-Key", "new"), { name: "TypeError", message: "immutable" });
  const res2 = new Response(res.body, res);
  res2.headers.set("X-Key", "new");
  assert.equal(res2.headers.get("X-Key"), "new");
});

test("Request: takes a Request of any undici a user installed (5, 6, 7) or Node's own, body and all", async () => {
  const { Request: Undici5 } = await import("undici-v5");
  const { Request: Undici6 } = await import("undici-v6");
  const { Request: Undici7 } = await import("undici");
  for (const [name, Foreign] of [
    ["undici 5", Undici5],
    ["undici 6", Undici6],
    ["undici 7", Undici7],
    ["Node's", globalThis.Request],
  ] as const) {
    const foreign = new (Foreign as typeof globalThis.Request)("http://localhost/path?q=1", {
      method: "PUT",
      headers: { "X-Test": name },
      body: "payload",
      redirect: "manual",
    });
    const request = new Request(foreign as any);
    assert.equal(request.url, "http://localhost/path?q=1", name);
    assert.equal(request.method, "PUT", name);
    assert.equal(request.headers.get("X-Test"), name, name);
    assert.equal(request.redirect, "manual", name);
    assert.equal(await request.text(), "payload", name);
    // The init's own keys win
    const overridden = new Request(new (Foreign as typeof globalThis.Request)("http://localhost/", { method: "POST" }) as any, { method: "GET" });
    assert.equal(overridden.method, "GET", name);
  }
});

test("Request: dispatchFetch() takes another undici's Request too", async (t) => {
  const { useMiniflare } = await import("../helpers/miniflare.js");
  const { Request: Undici5 } = await import("undici-v5");
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { async fetch(request) { return new Response(request.method + " " + request.url + " " + await request.text()); } }`,
  });
  const res = await mf.dispatchFetch(new Undici5("http://localhost/five", { method: "POST", body: "from undici 5" }) as any);
  assert.equal(await res.text(), "POST http://localhost/five from undici 5");
});
