// Tests for the Response wrapper (spec §2.3)
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { InputGate } from "../../src/shared/sync/gate.js";
import {
  Body,
  Request,
  Response,
  _getBodyLength,
  _headersFromIncomingRequest,
  _isBodyStream,
  _isByteStream,
  _kInner,
  kFixedLength,
  withImmutableHeaders,
  withInputGating,
  withStringFormDataFiles,
  withWaitUntil,
} from "../../src/standards/http.js";

const BaseRequest = globalThis.Request;
const BaseResponse = globalThis.Response;

const cf = { country: "GB", nested: { a: [1, 2] } };
const utf8Encode = (s: string) => new TextEncoder().encode(s);
const utf8Decode = (a?: Uint8Array) => new TextDecoder().decode(a);

function unimplementedMessage(klass: string, property: string): RegExp {
  return new RegExp(
    `^Failed to get the '${property}' property on '${klass}': the property is not implemented\\.$`
  );
}

async function byobReadFirstChunk(body: ReadableStream<Uint8Array> | null): Promise<string> {
  assert(body);
  const reader = body.getReader({ mode: "byob" });
  const result = await reader.read(new Uint8Array(32));
  return utf8Decode(result.value);
}

async function streamText(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  assert(stream);
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

function triggerPromise<T>(): [(value: T) => void, Promise<T>] {
  let trigger!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (trigger = resolve));
  return [trigger, promise];
}

// Runs closure with a closed input gate, checking it only resolves once the
// gate has been reopened
async function waitsForInputGate<T>(closure: () => Promise<T>): Promise<T> {
  const inputGate = new InputGate();
  const [openTrigger, openPromise] = triggerPromise<void>();
  const events: string[] = [];
  const promise = inputGate.runWith(async () => {
    void inputGate.runWithClosed(() => openPromise);
    const result = await closure();
    events.push("resolved");
    return result;
  });
  await sleep(50);
  events.push("opened");
  openTrigger();
  const result = await promise;
  assert.deepEqual(events, ["opened", "resolved"]);
  return result;
}

// Checks closure resolves even though the current input gate is closed
async function ignoresInputGate(closure: () => Promise<unknown>): Promise<void> {
  const inputGate = new InputGate();
  const [openTrigger, openPromise] = triggerPromise<void>();
  await inputGate.runWith(async () => {
    void inputGate.runWithClosed(() => openPromise);
    await closure();
  });
  openTrigger();
}

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

test("Response: doesn't detach ArrayBuffers", async () => {
  const buffer = utf8Encode("test1").buffer;
  let res = new Response(buffer);
  assert.equal(await streamText(res.body), "test1");
  res = new Response(buffer);
  assert.equal(await streamText(res.body), "test1");

  const array = utf8Encode("test2");
  res = new Response(array);
  assert.equal(await streamText(res.body), "test2");
  res = new Response(array);
  assert.equal(await streamText(res.body), "test2");
});

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

test("Response: clones stream bodies", async () => {
  let stream = new ReadableStream({
    start(controller) {
      controller.enqueue(utf8Encode("chunk1"));
      controller.close();
    },
  });
  let res = new Response(stream);
  let clone = res.clone();
  assert(res.body !== null && clone.body !== null);
  assert(_isByteStream(res.body));
  assert(_isByteStream(clone.body));
  assert.equal(await res.text(), "chunk1");
  assert.equal(await clone.text(), "chunk1");

  stream = new ReadableStream({
    type: "bytes",
    start(controller) {
      controller.enqueue(utf8Encode("chunk2"));
      controller.close();
    },
  });
  res = new Response(stream);
  clone = res.clone();
  assert(res.body !== null && clone.body !== null);
  assert(_isByteStream(res.body));
  assert(_isByteStream(clone.body));
  assert.equal(await res.text(), "chunk2");
  assert.equal(await clone.text(), "chunk2");
});

test("Response: cloned bodies don't detach each other's chunks", async () => {
  const chunk = utf8Encode("shared");
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(chunk);
      controller.close();
    },
  });
  const res = withInputGating(new Response(stream));
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

test("Response: clone retains form data file parsing option", async () => {
  const formData = new FormData();
  formData.append("file", new File(["test"], "test.txt"));

  let res = new Response(formData);
  let clone = res.clone();
  let resFormData = await clone.formData();
  const file = resFormData.get("file");
  assert(file instanceof File);
  assert.equal(await file.text(), "test");
  assert.equal(file.name, "test.txt");

  res = withStringFormDataFiles(new Response(formData));
  clone = res.clone();
  resFormData = await clone.formData();
  assert.equal(resFormData.get("file"), "test");
});

test("Response: clones null body", () => {
  const res = new Response(null, { status: 201 });
  assert.equal(res.clone().body, null);
});

test("Response: Object.keys() returns getters", () => {
  const res = new Response("body", { headers: { "X-Key": "value " } });
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
  const res = new Response("body");
  for (const header of ["set-cookie", "set-cookie2"]) {
    res.headers.set(header, "value");
    assert.equal(res.headers.get(header), "value");
  }
  const res2 = res.clone();
  for (const header of ["set-cookie", "set-cookie2"]) {
    assert.equal(res2.headers.get(header), "value");
    res2.headers.set(header, "value2");
    assert.equal(res2.headers.get(header), "value2");
  }
});

test("Response: can use byob reader for body", async () => {
  assert.equal(await byobReadFirstChunk(new Response("body").body), "body");
});

test("Response: can use byob reader when cloning", async () => {
  let res = new Response("body");
  let clone = res.clone();
  assert.equal(await byobReadFirstChunk(res.body), "body");
  assert.equal(await byobReadFirstChunk(clone.body), "body");

  res = new Response("body");
  clone = res.clone();
  assert.equal(await byobReadFirstChunk(clone.body), "body");
  assert.equal(await byobReadFirstChunk(res.body), "body");
});

test("Response: should be locked when attaching a reader", () => {
  const res = new Response("body");
  assert(res.body instanceof ReadableStream);
  assert.equal(res.body.locked, false);
  res.body.getReader();
  assert.equal(res.body.locked, true);
});

test("Response: should reset bodyStream when body is cloned", async () => {
  const resBody = new ArrayBuffer(10);
  const res = new Response(resBody);
  const bodyStream = res.body;
  assert(bodyStream instanceof ReadableStream);
  const cloneRes = res.clone();
  assert.deepEqual(await cloneRes.arrayBuffer(), resBody);
  for await (const chunk of res.body as unknown as AsyncIterable<unknown>) {
    assert(chunk instanceof Uint8Array);
  }
  assert.notEqual(bodyStream, res.body);
});

test("Response: access to unimplemented properties throws error", () => {
  const res = new Response();
  for (const property of ["type", "useFinalUrl"] as const) {
    assert.throws(() => res[property], {
      name: "Error",
      message: unimplementedMessage("Response", property),
    });
  }
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
