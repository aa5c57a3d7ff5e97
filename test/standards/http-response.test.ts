// Tests for the Response wrapper (spec §2.3)
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Body,
  Request,
  Response,
  _kInner,
  kFixedLength,
  withEnumerableGetters,
  withInputGating,
  withWaitUntil,
} from "../../src/standards/http.js";
import {
  bodyChecks,
  byobReadFirstChunk,
  singleChunkStream,
  waitsForInputGate,
} from "../helpers/http.js";

const BaseResponse = globalThis.Response;
const response = (body: BodyInit | null) => new Response(body);

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

test("Response.redirect: creates redirect response", () => {
  let res = Response.redirect("http://localhost/", 307);
  assert(res instanceof Response);
  assert.equal(res.status, 307);
  assert.equal(res.headers.get("Location"), "http://localhost/");
  // Headers are mutable, unlike undici's
  res.headers.set("X-Key", "value");
  assert.equal(res.headers.get("X-Key"), "value");

  res = Response.redirect(new URL("http://localhost/"));
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("Location"), "http://localhost/");

  assert.throws(() => Response.redirect("http://localhost/", 200), { name: "RangeError" });
});

test("Response.json: creates JSON response", async () => {
  const res = Response.json({ a: 1 }, { headers: { "X-Key": "value" } });
  assert(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("Content-Type"), "application/json");
  assert.equal(res.headers.get("X-Key"), "value");
  assert.deepEqual(await res.json(), { a: 1 });
  assert.equal("error" in Response, false);
});

test("Response.json: rejects what Node's Response.json() rejects, with its errors", () => {
  const cases: [unknown, ResponseInit?][] = [[undefined], [1n], [{}, { status: 204 }], [{}, { status: 600 }]];
  for (const [data, init] of cases) {
    let expected: any;
    try {
      BaseResponse.json(data, init);
    } catch (e) {
      expected = e;
    }
    assert.ok(expected instanceof TypeError || expected instanceof RangeError);
    assert.throws(() => Response.json(data, init), { name: expected.name, message: expected.message });
  }
});

test("Response: constructing from BaseResponse doesn't create new BaseResponse unless required", async () => {
  const base = new BaseResponse("<p>test</p>", {
    status: 404,
    statusText: "Not Found",
    headers: { "Content-Type": "text/html" },
  });
  let res = new Response(base.body, base);
  assert.equal(res[_kInner], base);
  assert.equal(res.headers, base.headers);
  assert.equal(res.status, base.status);
  assert.equal(res.ok, base.ok);
  assert.equal(res.statusText, base.statusText);
  assert.equal(res.url, base.url);
  assert.equal(res.redirected, base.redirected);

  res = new Response("<p>new</p>", base);
  assert.notEqual(res[_kInner], base);
  assert.equal(res.status, 404);
  assert.equal(await res.text(), "<p>new</p>");
});

test("Response: can construct new Response from existing Response", async () => {
  const res = new Response("<p>test</p>", {
    status: 404,
    headers: { "Content-Type": "text/html" },
  });
  const res2 = new Response(res.body, res);
  assert.notEqual(res2.headers, res.headers);
  assert.equal(res2.status, 404);
  assert.equal(res2.headers.get("Content-Type"), "text/html");
  assert.equal(await res2.text(), "<p>test</p>");
});

test("Response: supports non-standard properties", () => {
  const webSocket = { accept() {} };
  const res = new Response(null, {
    encodeBody: "manual",
    status: 101,
    webSocket,
    headers: { "X-Key": "value" },
  });
  assert.equal(res.encodeBody, "manual");
  assert.equal(res.status, 101);
  assert.equal(res.webSocket, webSocket);
  assert.equal(res.headers.get("X-Key"), "value");
  assert.equal(res.body, null);
});

test("Response: encodeBody defaults to auto", () => {
  const res = new Response(null);
  assert.equal(res.encodeBody, "automatic");
  assert.equal(res.webSocket, undefined);
});

test("Response: throws on unexpected encodeBody", () => {
  assert.throws(() => new Response(null, { encodeBody: "gzip" as any }), {
    name: "TypeError",
    message: "encodeBody: unexpected value: gzip",
  });
});

test("Response: requires status 101 for WebSocket response", () => {
  assert.throws(() => new Response(null, { webSocket: {} }), {
    name: "RangeError",
    message: "Responses with a WebSocket must have status code 101.",
  });
});

test("Response: only allows status 101 for WebSocket response", () => {
  assert.throws(() => new Response(null, { status: 101 }), {
    name: "RangeError",
    message: 'init["status"] must be in the range of 200 to 599, inclusive.',
  });
});

test("Response: allows empty string for null body", () => {
  for (const nullBodyStatus of [204, 205, 304]) {
    const res = new Response("", { status: nullBodyStatus });
    assert.equal(res.status, nullBodyStatus);
    assert.equal(res.body, null, nullBodyStatus.toString());
  }
  assert.throws(() => new Response("x", { status: 204 }), { name: "TypeError" });
});

test("Response: doesn't detach ArrayBuffers", () => bodyChecks.doesntDetachBuffers(response));

test("Response: clones non-standard properties", async () => {
  const res = new Response("body", { encodeBody: "manual" });
  const waitUntil = [1, "2", true];
  withWaitUntil(res, Promise.resolve(waitUntil));
  assert.equal(await res.waitUntil(), waitUntil);
  const res2 = res.clone();
  assert.equal(res2.encodeBody, "manual");
  assert.equal(await res2.waitUntil(), waitUntil);

  assert.equal(Object.getPrototypeOf(res2), Response.prototype);
  const res3 = res2.clone();
  assert.equal(res3.encodeBody, "manual");
  assert.equal(await res3.waitUntil(), waitUntil);
  assert.equal(await res.text(), "body");
  assert.equal(await res2.text(), "body");
  assert.equal(await res3.text(), "body");
});

test("Response: clones stream bodies", () => bodyChecks.clonesStreamBodies(response));

test("Response: cloned bodies don't detach each other's chunks", async () => {
  const res = withInputGating(new Response(singleChunkStream("shared")));
  const clone = res.clone();
  assert.equal(await byobReadFirstChunk(clone.body), "shared");
  assert.equal(await byobReadFirstChunk(res.body), "shared");
});

test("Response: constructing from Response copies non-standard properties", () => {
  const webSocket = {};
  const res = new Response("body1", { encodeBody: "manual", status: 101, webSocket });
  const res2 = new Response("body2", res);
  assert.equal(res2.encodeBody, "manual");
  assert.equal(res2.status, 101);
  assert.equal(res2.webSocket, webSocket);
});

test("Response: fails to clone WebSocket response", () => {
  const res = new Response(null, { status: 101, webSocket: {} });
  assert.throws(() => res.clone(), {
    name: "TypeError",
    message: "Cannot clone a response to a WebSocket handshake.",
  });
});

test("Response: can be input gated", async () => {
  const res = withInputGating(new Response("body"));
  assert(res instanceof Body);
  await waitsForInputGate(() => res.text());
});

test("Response: clone retains input gated option", async () => {
  const res = withInputGating(new Response("body"));
  const clone = res.clone();
  await waitsForInputGate(() => clone.text());
});

test("Response: clone retains form data file parsing option", () =>
  bodyChecks.cloneRetainsFormDataFileOption(response)
);

test("Response: clones null body", () => {
  const res = new Response(null, { status: 201 });
  assert.equal(res.clone().body, null);
});

test("Response: getters are on the prototype by default", () => {
  assert.deepEqual(Object.keys(new Response("body")), []);
});

test("Response: Object.keys() returns getters with withEnumerableGetters()", async () => {
  const res = withEnumerableGetters(new Response("body", { headers: { "X-Key": "value " } }));
  assert.deepEqual(Object.keys(res.clone()), Object.keys(res));
  assert.equal(res.bodyUsed, false);
  assert.equal(await res.text(), "body");
  // The own getter reads the live state
  assert.equal(res.bodyUsed, true);
  assert.deepEqual(Object.keys(res).sort(), [
    "body",
    "bodyUsed",
    "headers",
    "ok",
    "redirected",
    "status",
    "statusText",
    "url",
    "webSocket",
  ]);
  assert.deepEqual(Object.getOwnPropertyNames(res).sort(), Object.keys(res).sort());
});

test("Response: can mutate forbidden headers after construction", () => {
  bodyChecks.forbiddenHeadersMutable(new Response("body"), ["set-cookie", "set-cookie2"]);
});

test("Response: can use byob reader for body", async () => {
  assert.equal(await byobReadFirstChunk(new Response("body").body), "body");
});

test("Response: can use byob reader when cloning", () => bodyChecks.byobReadsWhenCloning(response));

test("Response: should be locked when attaching a reader", () => {
  const res = new Response("body");
  assert(res.body instanceof ReadableStream);
  assert.equal(res.body.locked, false);
  res.body.getReader();
  assert.equal(res.body.locked, true);
});

test("Response: should reset bodyStream when body is cloned", () =>
  bodyChecks.cloneResetsBodyStream(response)
);

test("Response: access to unimplemented properties throws error", () => {
  bodyChecks.unimplementedProperties("Response", new Response(), ["type", "useFinalUrl"]);
});

test("Response: waitUntil defaults to empty array", async () => {
  assert.deepEqual(await new Response("body").waitUntil(), []);
});

test("Response: sets Content-Length for fixed length stream bodies", () => {
  const stream = new ReadableStream();
  Object.defineProperty(stream, kFixedLength, { value: 5 });
  assert.equal(new Response(stream).headers.get("Content-Length"), "5");
});

test("Response: instanceof works for wrapper classes only", () => {
  const res = new Response("body");
  assert(res instanceof Response);
  assert(res instanceof Body);
  assert.equal(res instanceof Request, false);
  assert.equal(new BaseResponse("body") instanceof Response, false);
});

test("Response: text/json of a string body: return it and use the body up", async () => {
  const res = new Response("hello ✓");
  assert.equal(res.bodyUsed, false);
  assert.equal(await res.text(), "hello ✓");
  assert.equal(res.bodyUsed, true);
  await assert.rejects(res.text(), TypeError);
  await assert.rejects(res.arrayBuffer(), TypeError);

  const json = new Response('{"a":[1,2]}');
  assert.deepEqual(await json.json(), { a: [1, 2] });
  assert.equal(json.bodyUsed, true);
  await assert.rejects(new Response("{").json(), SyntaxError);
});

test("Response: text of a string body with a lone surrogate reads back U+FFFD, as UTF-8 does", async () => {
  assert.equal(await new Response("a\uD800b").text(), "a\uFFFDb");
});

test("Response: text of a string body after reading its stream or cloning", async () => {
  const res = new Response("streamed");
  const reader = res.body!.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value), "streamed");
  reader.releaseLock();
  assert.equal(res.bodyUsed, true);
  await assert.rejects(res.text(), TypeError);

  const original = new Response("twice");
  const clone = original.clone();
  assert.equal(await original.text(), "twice");
  assert.equal(await clone.text(), "twice");
  assert.equal(original.bodyUsed, true);
  assert.equal(clone.bodyUsed, true);
});

test("Response: an init that isn't a dictionary throws WebIDL's error naming its context, as in Miniflare 2", () => {
  for (const init of ["str", 1, true]) {
    assert.throws(() => new Response("x", init as any), {
      name: "TypeError",
      message: `Dictionary: Expected ${String(init)} to be one of: Null, Undefined, Object.`,
    });
  }
  // Null and undefined are fine
  assert.equal(new Response("x", null as any).status, 200);
  assert.equal(new Response("x", undefined).status, 200);
});
