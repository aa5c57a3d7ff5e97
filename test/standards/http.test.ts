// Tests for Headers#getAll, the Body wrapper and http helpers (spec §2.3)
import assert from "node:assert/strict";
import { test } from "node:test";
import { FormData as UndiciFormData } from "undici";
import {
  Body,
  Request,
  Response,
  _getBodyLength,
  _headersFromIncomingRequest,
  _isBodyStream,
  _isByteStream,
  kFixedLength,
  withInputGating,
  withWaitUntil,
} from "../../src/standards/http.js";
import {
  NON_ARRAY_CHUNK_MESSAGE,
  STRING_CHUNK_MESSAGE,
  byobReadFirstChunk,
  ignoresInputGate,
  streamText,
  utf8Decode,
  utf8Encode,
  waitsForInputGate,
} from "../helpers/http.js";

const BaseRequest = globalThis.Request;
const BaseResponse = globalThis.Response;

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

test('Headers: getAll: throws if key not "Set-Cookie"', () => {
  const headers = new Headers();
  assert.throws(() => headers.getAll("set-biscuit"), {
    name: "TypeError",
    message: 'getAll() can only be used with the header name "Set-Cookie".',
  });
});

test("Headers: getAll: returns empty array if no headers", () => {
  assert.deepEqual(new Headers().getAll("Set-Cookie"), []);
});

test("Headers: getAll: returns separated Set-Cookie values", () => {
  const headers = new Headers();
  const cookie1 = "key1=value1; Expires=Mon, 18 Oct 2021 17:45:00 GMT";
  const cookie2 = "key2=value2";
  const cookie3 = "key3=value3; Max-Age=3600";
  headers.append("Set-Cookie", cookie1);
  headers.append("Set-Cookie", cookie2);
  headers.append("Set-Cookie", cookie3);
  assert.equal(headers.get("set-Cookie"), [cookie1, cookie2, cookie3].join(", "));
  assert.deepEqual(headers.getAll("set-CoOkiE"), [cookie1, cookie2, cookie3]);
});

test("Headers: getAll: splits cookies appended as a single value", () => {
  const headers = new Headers({ "Set-Cookie": "a=1; Path=/, b=2, c=3; Expires=Tue, 19 Oct 2021 10:00:00 GMT" });
  assert.deepEqual(headers.getAll("Set-Cookie"), [
    "a=1; Path=/",
    "b=2",
    "c=3; Expires=Tue, 19 Oct 2021 10:00:00 GMT",
  ]);
});

test("Headers: getAll: available on Request and Response headers", () => {
  const res = new Response(null, { headers: { "Set-Cookie": "a=1" } });
  assert.deepEqual(res.headers.getAll("Set-Cookie"), ["a=1"]);
  const req = new BaseRequest("http://localhost");
  assert.equal(typeof req.headers.getAll, "function");
});

// ---------------------------------------------------------------------------
// Body
// ---------------------------------------------------------------------------

test("Body: body isn't input gated by default", async () => {
  await ignoresInputGate(async () => {
    const body = new Body(new BaseResponse("body")).body;
    assert.equal(await streamText(body), "body");
  });
});

test("Body: body returns null with null body", () => {
  assert.equal(new Body(new BaseResponse(null)).body, null);
});

test("Body: same body instance is always returned", () => {
  const body = new Body(new BaseResponse("body"));
  assert.notEqual(body.body, null);
  assert.equal(body.body, body.body);
});

test("Body: body isn't locked until read from", async () => {
  const res = new Response("body");
  assert(res instanceof Body);
  assert(res.body instanceof ReadableStream);
  assert.equal(res.body.locked, false);
  const clone = res.clone();
  assert.equal(await clone.text(), "body");
});

test("Body: can pause, resume and cancel body stream", async () => {
  const chunks = ["123", "456", "789"];
  const bodyStream = new ReadableStream({
    pull(controller) {
      const chunk = chunks.shift();
      if (chunk) controller.enqueue(utf8Encode(chunk));
      else controller.close();
    },
  });
  const { body } = new Response(bodyStream);
  assert(body);

  let reader = body.getReader();
  let result = await reader.read();
  assert.equal(result.done, false);
  assert.equal(utf8Decode(result.value), "123");

  reader.releaseLock();
  reader = body.getReader();
  result = await reader.read();
  assert.equal(result.done, false);
  assert.equal(utf8Decode(result.value), "456");

  await reader.cancel(new Error("Cancelled!"));
  result = await reader.read();
  assert.equal(result.done, true);
  assert.equal(result.value, undefined);

  reader.releaseLock();
  reader = body.getReader();
  result = await reader.read();
  assert.equal(result.done, true);
});

const invalidChunkCases: [string, unknown, string][] = [
  ["string", "I'm a string", STRING_CHUNK_MESSAGE],
  ["non-ArrayBuffer/ArrayBufferView", 42, NON_ARRAY_CHUNK_MESSAGE],
];
for (const [title, chunk, message] of invalidChunkCases) {
  test(`Body: throws on ${title} chunks`, async () => {
    const inputStream = new ReadableStream({
      start(controller) {
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const { body } = new Response(inputStream as ReadableStream<any>);
    assert(body);
    await assert.rejects(body.getReader().read(), { name: "TypeError", message });
  });
}

test("Body: body is always a byte stream", async () => {
  const regular = new ReadableStream({
    start(controller) {
      controller.enqueue(utf8Encode("a"));
      controller.enqueue(new Uint8Array(0));
      controller.enqueue(utf8Encode("b"));
      controller.close();
    },
  });
  const res = new Response(regular);
  assert(res.body);
  assert(_isByteStream(res.body));
  assert.equal(await byobReadFirstChunk(res.body), "a");
  assert(_isByteStream(new Request("http://a", { method: "POST", body: "x" }).body!));
});

test("Body: body streams are branded and remember Content-Length", () => {
  const res = new Response("body", { headers: { "Content-Length": "4" } });
  assert(res.body);
  assert(_isBodyStream(res.body));
  assert.equal((res.body as any)[kFixedLength], 4);
  assert.equal(_isBodyStream(new ReadableStream()), false);
  // A body stream passed on keeps its length
  const res2 = new Response(res.body);
  assert.equal(res2.headers.get("Content-Length"), "4");
});

const gatedStreamCases: [string, (body: ReadableStream) => Promise<unknown>][] = [
  ["getReader", (body) => body.getReader().read()],
  ["pipeThrough", (body) => body.pipeThrough(new TransformStream()).getReader().read()],
  ["pipeTo", (body) => body.pipeTo(new WritableStream())],
  ["tee", (body) => body.tee()[0].getReader().read()],
  ["values", (body) => (body as any).values().next()],
  ["[Symbol.asyncIterator]", (body) => (body as any)[Symbol.asyncIterator]().next()],
];
for (const [name, closure] of gatedStreamCases) {
  test(`Body: body.${name}() applies input gating`, async () => {
    const res = withInputGating(new Body(new BaseResponse("body")));
    const body = res.body;
    assert(body);
    await waitsForInputGate(() => closure(body));
  });
}

const consumerCases: [keyof Body, () => InstanceType<typeof BaseResponse>][] = [
  ["arrayBuffer", () => new BaseResponse('{"key": "value"}')],
  ["blob", () => new BaseResponse('{"key": "value"}')],
  [
    "formData",
    () =>
      new BaseResponse("key=value", {
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      }),
  ],
  ["json", () => new BaseResponse('{"key": "value"}')],
  ["text", () => new BaseResponse('{"key": "value"}')],
];
for (const [key, makeResponse] of consumerCases) {
  test(`Body: ${String(key)}() applies input gating`, async () => {
    // Not gated by default
    await ignoresInputGate(async () => {
      const body = new Body(makeResponse());
      assert.notEqual(await (body as any)[key](), undefined);
    });
    // Gated once enabled
    await waitsForInputGate(async () => {
      const body = withInputGating(new Body(makeResponse()));
      await (body as any)[key]();
    });
  });
}

test("Body: makes headers of immutable built-in responses mutable", async () => {
  const base = BaseResponse.redirect("http://localhost/", 301);
  assert.throws(() => base.headers.set("X-Key", "value"), { message: "immutable" });
  const body = new Body(base);
  body.headers.set("X-Key", "value");
  assert.equal(body.headers.get("X-Key"), "value");
  assert.equal(body.headers.get("Location"), "http://localhost/");
});

test("Body: inspecting shows the inner body", async () => {
  const { inspect } = await import("node:util");
  const res = new Response("body", { status: 201 });
  assert.match(inspect(res), /status: 201/);
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

test("withWaitUntil: adds wait until to (Base)Response", async () => {
  const waitUntil = [1];
  let res = new Response("body");
  assert.equal(withWaitUntil(res, Promise.resolve(waitUntil)), res);
  assert.equal(await res.waitUntil(), waitUntil);

  const baseWaitUntil = [2];
  const baseRes = new BaseResponse("body", { status: 404, headers: { "X-Key": "value" } });
  res = withWaitUntil(baseRes, Promise.resolve(baseWaitUntil));
  assert(res instanceof Response);
  assert.equal(await res.waitUntil(), baseWaitUntil);
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("X-Key"), "value");
  assert.equal(await res.text(), "body");
});

test("_getBodyLength: extracts actual Response Content-Length", () => {
  let res = new Response("body", { headers: { "Content-Length": "100" } });
  assert.equal(_getBodyLength(res), 4);
  res = new Response(new Uint8Array([1, 2, 3]));
  assert.equal(_getBodyLength(res), 3);
  res = new Response(null);
  assert.equal(_getBodyLength(res), undefined);
  res = new Response(new ReadableStream(), { headers: { "Content-Length": "50" } });
  assert.equal(_getBodyLength(res), undefined);
  res = new Response(new Blob(["12345"]));
  assert.equal(_getBodyLength(res), 5);
  res = new Response(new URLSearchParams({ a: "é" }));
  assert.equal(_getBodyLength(res), 8);
  // Read from what the body was made of, so clones and string bodies whose
  // stream was made still know it
  res = new Response("héllo");
  assert.equal(res.clone().body instanceof ReadableStream, true);
  assert.equal(_getBodyLength(res), 6);
  assert.equal(_getBodyLength(Response.json({ a: 1 })), 7);
  // Node's own responses keep their length in undici's private state, which
  // differs between Node versions: not known
  assert.equal(_getBodyLength(new BaseResponse("abc")), undefined);
});

test("Body: FormData from another copy of undici is sent as multipart", async () => {
  // Node 24's own undici doesn't recognise npm undici's FormData (Miniflare 2
  // users pass it to dispatchFetch()) and would send "[object FormData]"
  const form = new UndiciFormData();
  form.append("field", "value");
  form.append("file", new Blob(["contents"], { type: "text/plain" }), "file.txt");
  const bodies = [
    new Request("http://localhost/", { method: "POST", body: form as any }),
    new Response(form as any),
  ];
  for (const body of bodies) {
    assert.match(body.headers.get("content-type") ?? "", /^multipart\/form-data; boundary=/);
    const parsed = await body.formData();
    assert.equal(parsed.get("field"), "value");
    const file = parsed.get("file") as File;
    assert.equal(file.name, "file.txt");
    assert.equal(await file.text(), "contents");
  }
});

test("_headersFromIncomingRequest: copies headers except hop-by-hop ones", () => {
  const headers = _headersFromIncomingRequest({
    headers: {
      "x-key": "value",
      "set-cookie": ["a=1", "b=2"],
      "transfer-encoding": "chunked",
      connection: "keep-alive",
      "keep-alive": "timeout=5",
      expect: "100-continue",
      "x-missing": undefined,
    },
  } as any);
  assert.deepEqual([...headers], [
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
    ["x-key", "value"],
  ]);
});
