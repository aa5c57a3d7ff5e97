import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { WebSocket as NodeWebSocket } from "ws";
import { RequestContext, getRequestContext } from "../../src/shared/context.js";
import { InputGate, OutputGate } from "../../src/shared/sync/gate.js";
import { DOMException } from "../../src/standards/domexception.js";
import { Response } from "../../src/standards/http.js";
import { fetch } from "../../src/standards/fetch.js";
import {
  CloseEvent,
  ErrorEvent,
  MessageEvent,
  WebSocket,
  WebSocketPair,
  coupleWebSocket,
} from "../../src/standards/websocket.js";
import { deferred, flushTurns, until } from "../helpers/sync.js";
import {
  captureConsoleError,
  next,
  record,
  useEchoServer,
  watchProcess,
} from "../helpers/websocket.js";

/** The two ends of a new pair, both accepted */
function acceptedPair(): [WebSocket, WebSocket] {
  const { 0: a, 1: b } = new WebSocketPair();
  a.accept();
  b.accept();
  return [a, b];
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

test("MessageEvent: has data (null by default)", () => {
  assert.equal(new MessageEvent("message", { data: "hi" }).data, "hi");
  assert.equal(new MessageEvent("message").data, null);
  assert.equal(new MessageEvent("message").type, "message");
});

test("CloseEvent: defaults to code 1005, no reason, not clean", () => {
  const event = new CloseEvent("close");
  assert.equal(event.code, 1005);
  assert.equal(event.reason, "");
  assert.equal(event.wasClean, false);
  const given = new CloseEvent("close", { code: 1000, reason: "done", wasClean: true });
  assert.deepEqual([given.code, given.reason, given.wasClean], [1000, "done", true]);
});

test("ErrorEvent: has the error and its message", () => {
  const error = new Error("broke");
  const event = new ErrorEvent("error", { error });
  assert.equal(event.error, error);
  assert.equal(event.message, "broke");
  assert.equal(new ErrorEvent("error").error, null);
  assert.equal(new ErrorEvent("error").message, "");
});

// ---------------------------------------------------------------------------
// WebSocketPair
// ---------------------------------------------------------------------------

test("WebSocketPair: must be called with new", () => {
  assert.throws(() => (WebSocketPair as unknown as () => void)(), {
    name: "TypeError",
    message:
      "Failed to construct 'WebSocketPair': Please use the 'new' operator, this object constructor cannot be called as a function.",
  });
});

test("WebSocketPair: has two WebSockets, 0 and 1", () => {
  const pair = new WebSocketPair();
  assert.deepEqual(Object.keys(pair), ["0", "1"]);
  const [a, b] = Object.values(pair);
  assert(a instanceof WebSocket);
  assert(b instanceof WebSocket);
  assert.notEqual(a, b);
});

test("WebSocket: READY_STATE constants", () => {
  assert.equal(WebSocket.READY_STATE_CONNECTING, 0);
  assert.equal(WebSocket.READY_STATE_OPEN, 1);
  assert.equal(WebSocket.READY_STATE_CLOSING, 2);
  assert.equal(WebSocket.READY_STATE_CLOSED, 3);
});

test("WebSocket: send: messages reach the other end, strings as strings, bytes as copied ArrayBuffers", async () => {
  const [a, b] = acceptedPair();
  const received: unknown[] = [];
  b.addEventListener("message", (e) => received.push(e.data));
  const buffer = new Uint8Array([1, 2, 3]).buffer;
  const view = new Uint8Array([0, 4, 5, 6, 0]).subarray(1, 4);
  a.send("text");
  a.send(buffer);
  a.send(view);
  new Uint8Array(buffer)[0] = 9; // changed after sending: the receiver has a copy
  await flushTurns();
  assert.equal(received[0], "text");
  assert(received[1] instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(received[1] as ArrayBuffer)], [1, 2, 3]);
  assert(received[2] instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(received[2] as ArrayBuffer)], [4, 5, 6]);
});

test("WebSocket: send: works both ways, in order", async () => {
  const [a, b] = acceptedPair();
  const atA = record(a);
  const atB = record(b);
  for (let i = 0; i < 50; i++) a.send(`a${i}`);
  b.send("b0");
  await flushTurns();
  assert.deepEqual(atB, Array.from({ length: 50 }, (_, i) => `message:a${i}`));
  assert.deepEqual(atA, ["message:b0"]);
});

test("WebSocket: send: before accept() throws", () => {
  const { 0: a } = new WebSocketPair();
  assert.throws(() => a.send("x"), {
    name: "TypeError",
    message: "You must call accept() on this WebSocket before sending messages.",
  });
});

test("WebSocket: send: after close() throws", () => {
  const [a] = acceptedPair();
  a.close();
  assert.throws(() => a.send("x"), { name: "TypeError", message: "Can't call WebSocket send() after close()." });
});

test("WebSocket: accept: can be called more than once", () => {
  const { 0: a } = new WebSocketPair();
  a.accept();
  a.accept();
  a.send("fine");
});

test("WebSocket: events sent before accept() are queued, then delivered in order", async () => {
  const { 0: a, 1: b } = new WebSocketPair();
  a.accept();
  a.send("one");
  a.send("two");
  a.close(1000, "bye");
  await flushTurns();
  // Listeners added just after accept() still get everything queued
  b.accept();
  const events = record(b);
  await flushTurns();
  assert.deepEqual(events, ["message:one", "message:two", "close:1000:bye"]);
});

test("WebSocket: nothing is delivered to an end that's never accepted", async () => {
  const { 0: a, 1: b } = new WebSocketPair();
  const events = record(b);
  a.accept();
  a.send("lost?");
  await flushTurns();
  assert.deepEqual(events, []);
});

// ---------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------

test("WebSocket: close: the other end gets the code and reason", async () => {
  const [a, b] = acceptedPair();
  const closed = next<CloseEvent>(b, "close");
  a.close(4000, "done");
  const event = await closed;
  assert.equal(event.code, 4000);
  assert.equal(event.reason, "done");
  assert.equal(event.wasClean, true);
});

test("WebSocket: close: without a code reports 1005", async () => {
  const [a, b] = acceptedPair();
  const closed = next<CloseEvent>(b, "close");
  a.close();
  const event = await closed;
  assert.equal(event.code, 1005);
  assert.equal(event.reason, "");
});

test("WebSocket: close: rejects invalid codes", () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 5000, 1000.5, NaN]) {
    const [a] = acceptedPair();
    assert.throws(() => a.close(code), { name: "TypeError", message: "Invalid WebSocket close code." }, String(code));
  }
  for (const code of [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999]) {
    const [a] = acceptedPair();
    a.close(code);
  }
});

test("WebSocket: close: a reason needs a code", () => {
  const [a] = acceptedPair();
  assert.throws(() => a.close(undefined, "why"), {
    name: "TypeError",
    message: "If you specify a WebSocket close reason, you must also specify a code.",
  });
});

test("WebSocket: close: a reason over 123 bytes (UTF-8) throws a TypeError", () => {
  const [a] = acceptedPair();
  assert.throws(() => a.close(1000, "x".repeat(124)), {
    name: "TypeError",
    message: "WebSocket close reason must be at most 123 bytes when UTF-8 encoded.",
  });
  // 62 two-byte characters: 124 bytes
  assert.throws(() => a.close(1000, "é".repeat(62)), { name: "TypeError" });
  a.close(1000, "x".repeat(123));
});

test("WebSocket: close: before accept() throws", () => {
  const { 0: a } = new WebSocketPair();
  assert.throws(() => a.close(), {
    name: "TypeError",
    message: "You must call accept() on this WebSocket before sending messages.",
  });
});

test("WebSocket: close: twice throws", () => {
  const [a] = acceptedPair();
  a.close(1000);
  assert.throws(() => a.close(1000), { name: "TypeError", message: "WebSocket already closed" });
});

test("WebSocket: readyState: open, closing after one side closes, closed after both", async () => {
  const [a, b] = acceptedPair();
  assert.equal(a.readyState, WebSocket.READY_STATE_OPEN);
  a.close();
  assert.equal(a.readyState, WebSocket.READY_STATE_CLOSING);
  assert.equal(b.readyState, WebSocket.READY_STATE_CLOSING);
  await next(b, "close");
  b.close();
  assert.equal(a.readyState, WebSocket.READY_STATE_CLOSED);
  assert.equal(b.readyState, WebSocket.READY_STATE_CLOSED);
});

// ---------------------------------------------------------------------------
// Listeners: errors, gates and request contexts
// ---------------------------------------------------------------------------

test("WebSocket: a listener that throws is reported, never thrown into the process", async (t) => {
  const escaped = watchProcess(t);
  const reported = captureConsoleError(t);
  const [a, b] = acceptedPair();
  b.addEventListener("message", () => {
    throw new Error("listener broke");
  });
  // Closing twice from a close listener is a common mistake
  const gate = new InputGate();
  await gate.runWith(() =>
    b.addEventListener("close", () => {
      b.close();
      b.close();
    })
  );
  const later = next<MessageEvent>(b, "message");
  a.send("boom");
  assert.equal((await later).data, "boom");
  a.close();
  await until(() => reported.length >= 2, "both listener errors reported");
  await flushTurns();
  assert.deepEqual(escaped, []);
  assert.equal(reported.length, 2);
  assert.equal(reported[0][0], "Uncaught");
  assert.equal((reported[0][1] as Error).message, "listener broke");
  assert.equal((reported[1][1] as Error).message, "WebSocket already closed");
});

test("WebSocket: listeners wait for the input gate of the context they were added in", async () => {
  const [a, b] = acceptedPair();
  const gate = new InputGate();
  const unlock = deferred();
  const events: string[] = [];
  await gate.runWith(async () => {
    b.addEventListener("message", (e) => events.push(`message:${e.data}`));
    // A storage operation in progress: nothing may be delivered meanwhile
    void gate.runWithClosed(() => unlock.promise);
  });
  a.send("gated");
  await flushTurns(20);
  assert.equal(events.length, 0);
  events.push("unlocked");
  unlock.resolve();
  await flushTurns(20);
  assert.deepEqual(events, ["unlocked", "message:gated"]);
});

test("WebSocket: sends wait for the sender's output gate", async () => {
  const [a, b] = acceptedPair();
  const events: string[] = [];
  b.addEventListener("message", (e) => events.push(`message:${e.data}`));
  const write = deferred();
  const outputGate = new OutputGate();
  const run = outputGate.runWith(() => {
    // An unconfirmed write, then a message about it
    outputGate.waitUntil(write.promise);
    a.send("written");
  });
  await flushTurns(20);
  assert.equal(events.length, 0);
  events.push("confirmed");
  write.resolve();
  await run;
  await flushTurns();
  assert.deepEqual(events, ["confirmed", "message:written"]);
});

test("WebSocket: a failed write under the output gate discards the message", async () => {
  const [a, b] = acceptedPair();
  const events = record(b);
  const outputGate = new OutputGate();
  const write = Promise.reject(new Error("write failed"));
  write.catch(() => {});
  await outputGate
    .runWith(() => {
      outputGate.waitUntil(write);
      a.send("never");
    })
    .catch(() => {});
  await flushTurns();
  assert.deepEqual(events, []);
});

test("WebSocket: listeners added in a request run in that request's context", async () => {
  const [a, b] = acceptedPair();
  const request = new RequestContext();
  request.runWith(() => b.addEventListener("message", () => getRequestContext()!.incrementExternalSubrequests()));
  a.send("x");
  await flushTurns();
  assert.equal(request.externalSubrequests, 1);
});

test("WebSocket: listeners added outside requests (or in Durable Objects) get a fresh context per event", async () => {
  const [a, b] = acceptedPair();
  const seen: (RequestContext | undefined)[] = [];
  b.addEventListener("message", () => seen.push(getRequestContext()));
  const object = new RequestContext({ durableObject: true, requestDepth: 3 });
  object.runWith(() => b.addEventListener("close", () => seen.push(getRequestContext())));
  a.send("x");
  a.send("y");
  a.close();
  await flushTurns();
  assert.equal(seen.length, 3);
  assert(seen[0] !== undefined && seen[1] !== undefined && seen[2] !== undefined);
  assert.notEqual(seen[0], seen[1]);
  assert.notEqual(seen[2], object);
  assert.equal(seen[2].durableObject, true);
  assert.equal(seen[2].requestDepth, 3);
});

// ---------------------------------------------------------------------------
// new WebSocket(url)
// ---------------------------------------------------------------------------

test("WebSocket: constructor: rejects invalid URLs with SyntaxError DOMExceptions", () => {
  const cases: [string, string][] = [
    ["not a url", "WebSocket Constructor: The url is invalid."],
    ["http://localhost/", "WebSocket Constructor: The url scheme must be ws or wss."],
    ["ws://localhost/#fragment", "WebSocket Constructor: The url fragment must be empty."],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => new WebSocket(url), (error: unknown) => {
      assert(error instanceof DOMException);
      assert.equal(error.name, "SyntaxError");
      assert.equal(error.message, message);
      return true;
    });
  }
});

test("WebSocket: constructor: connects, opens, and talks both ways", async (t) => {
  const server = await useEchoServer(t);
  const socket = new WebSocket(`${server.url}/path`, ["one", "two"]);
  assert.equal(socket.readyState, WebSocket.READY_STATE_CONNECTING);
  assert.throws(() => socket.send("too early"), {
    message: "You must call accept() on this WebSocket before sending messages.",
  });
  assert.throws(() => socket.accept(), {
    name: "TypeError",
    message: "Websockets obtained from the 'new WebSocket()' constructor cannot call accept",
  });
  const events = record(socket);
  await next(socket, "open");
  assert.equal(socket.readyState, WebSocket.READY_STATE_OPEN);
  assert.equal(server.requests[0].url, "/path");
  assert.equal(server.requests[0].headers["sec-websocket-protocol"], "one,two");

  socket.send("hello");
  socket.send(new Uint8Array([1, 2]));
  await next(socket, "message");
  await next(socket, "message");
  socket.close(4000, "client done");
  const [code, reason] = await once(server.connections[0], "close");
  assert.equal(code, 4000);
  assert.equal(reason.toString(), "client done");
  await next(socket, "close");
  assert.deepEqual(events, ["open", "message:echo:hello", "message:<2 bytes>", "close:4000:client done"]);
  assert.equal(socket.readyState, WebSocket.READY_STATE_CLOSED);
});

test("WebSocket: constructor: the server closing reaches the socket", async (t) => {
  const server = await useEchoServer(t);
  const socket = new WebSocket(server.url);
  await next(socket, "open");
  const closed = next<CloseEvent>(socket, "close");
  server.connections[0].close(4001, "server done");
  const event = await closed;
  assert.deepEqual([event.code, event.reason, event.wasClean], [4001, "server done", true]);
  assert.equal(socket.readyState, WebSocket.READY_STATE_CLOSING);
  socket.close();
  assert.equal(socket.readyState, WebSocket.READY_STATE_CLOSED);
});

test("WebSocket: constructor: a refused connection gives error and close (1006) events", async (t) => {
  const escaped = watchProcess(t);
  // A port that was free a moment ago
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));

  const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
  const events = record(socket);
  const closed = next<CloseEvent>(socket, "close");
  const errored = next<ErrorEvent>(socket, "error");
  const error = await errored;
  assert.match(String(error.error?.message), /ECONNREFUSED/);
  const close = await closed;
  assert.equal(close.code, 1006);
  assert.equal(close.wasClean, false);
  assert.deepEqual(events.map((e) => e.split(":")[0]), ["error", "close"]);
  assert.deepEqual(escaped, []);
});

// ---------------------------------------------------------------------------
// coupleWebSocket()
// ---------------------------------------------------------------------------

test("coupleWebSocket: refuses a socket already used in a response, accepted, or a closed connection", async (t) => {
  const server = await useEchoServer(t);
  const ws = new NodeWebSocket(server.url);
  await once(ws, "open");

  const { 1: used } = new WebSocketPair();
  await coupleWebSocket(ws, used);
  await assert.rejects(coupleWebSocket(ws, used), {
    name: "TypeError",
    message: "Can't return WebSocket that was already used in a response.",
  });
  assert.throws(() => used.accept(), {
    name: "TypeError",
    message: "Can't accept() WebSocket that was already used in a response.",
  });

  const { 0: accepted } = new WebSocketPair();
  accepted.accept();
  await assert.rejects(coupleWebSocket(ws, accepted), {
    name: "TypeError",
    message: "Can't return WebSocket in a Response after calling accept().",
  });

  ws.close();
  await once(ws, "close");
  const { 0: fresh } = new WebSocketPair();
  await assert.rejects(coupleWebSocket(ws, fresh), {
    name: "TypeError",
    message: "Incoming WebSocket connection already closed.",
  });
});

test("coupleWebSocket: forwards messages and closes both ways", async (t) => {
  const server = await useEchoServer(t);
  const ws = new NodeWebSocket(server.url);
  const { 0: worker, 1: client } = new WebSocketPair();
  worker.accept();
  const events = record(worker);
  // Sent before the connection opens: queued until it's coupled
  worker.send("early");
  await coupleWebSocket(ws, client);
  worker.send(new Uint8Array([7]).buffer);
  await until(() => events.length === 2, "both messages echoed");
  worker.close(1000, "bye");
  await once(server.connections[0], "close");
  await next(worker, "close");
  assert.deepEqual(events, ["message:echo:early", "message:<1 bytes>", "close:1000:bye"]);
});

// ---------------------------------------------------------------------------
// The upgrading fetch
// ---------------------------------------------------------------------------

test("fetch: Upgrade: websocket opens a connection, giving a 101 with the worker's end", async (t) => {
  const server = await useEchoServer(t);
  const res = await fetch(`http://127.0.0.1:${server.port}/chat`, {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "proto1, proto2", "X-Custom": "value" },
  });
  assert(res instanceof Response);
  assert.equal(res.status, 101);
  assert.equal(res.headers.get("upgrade"), "websocket");
  assert.equal(res.headers.get("sec-websocket-protocol"), "proto1");
  assert.notEqual(res.headers.get("sec-websocket-accept"), null);
  const req = server.requests[0];
  assert.equal(req.url, "/chat");
  assert.equal(req.headers["x-custom"], "value");
  assert.equal(req.headers["sec-websocket-protocol"], "proto1,proto2");

  const socket = res.webSocket as WebSocket;
  assert(socket instanceof WebSocket);
  socket.accept();
  const message = next<MessageEvent>(socket, "message");
  socket.send("over fetch");
  assert.equal((await message).data, "echo:over fetch");
  const closed = once(server.connections[0], "close");
  socket.close(4002, "fetch done");
  const [code, reason] = await closed;
  assert.equal(code, 4002);
  assert.equal(reason.toString(), "fetch done");
});

test("fetch: an upgrade counts as a subrequest", async (t) => {
  const server = await useEchoServer(t);
  const ctx = new RequestContext();
  const res = await ctx.runWith(() =>
    fetch(new Request(`http://127.0.0.1:${server.port}/`, { headers: { upgrade: "websocket" } }))
  );
  assert.equal(ctx.externalSubrequests, 1);
  (res.webSocket as WebSocket).accept();
  (res.webSocket as WebSocket).close();
});

test("fetch: upgrades only for http(s) URLs", async () => {
  const { _upgradingFetch } = await import("../../src/standards/websocket-fetch.js");
  const { Request } = await import("../../src/standards/http.js");
  await assert.rejects(_upgradingFetch(new Request("ftp://localhost/", { headers: { upgrade: "websocket" } })), {
    name: "TypeError",
    message:
      "Fetch API cannot load: ftp://localhost/.\nMake sure you're using http(s):// URLs for WebSocket requests via fetch.",
  });
});

test("fetch: follows redirects to the WebSocket server, unless redirect is manual", async (t) => {
  const echo = await useEchoServer(t, (req, socket) => {
    if (req.url !== "/start") return false;
    socket.end("HTTP/1.1 302 Found\r\nLocation: /ws\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return true;
  });
  const followed = await fetch(`http://127.0.0.1:${echo.port}/start`, { headers: { Upgrade: "websocket" } });
  assert.equal(followed.status, 101);
  assert.equal(echo.requests.at(-1)!.url, "/ws");
  (followed.webSocket as WebSocket).accept();
  (followed.webSocket as WebSocket).close();

  const manual = await fetch(`http://127.0.0.1:${echo.port}/start`, {
    headers: { Upgrade: "websocket" },
    redirect: "manual",
  });
  assert.equal(manual.status, 302);
  assert.equal(manual.headers.get("location"), "/ws");
  assert.equal(manual.webSocket, undefined);
});

test("fetch: a server that doesn't upgrade gives its response", async (t) => {
  const escaped = watchProcess(t);
  const closed = deferred();
  const server = await useEchoServer(t, (_req, socket) => {
    socket.on("close", () => closed.resolve());
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
    return true;
  });
  const res = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { Upgrade: "websocket" } });
  assert.equal(res.status, 403);
  assert.equal(res.webSocket, undefined);
  assert.equal(await res.text(), "nope");
  // Anything escaping would come as the connection winds down
  await closed.promise;
  await flushTurns();
  assert.deepEqual(escaped, []);
});

test("fetch: a refused connection rejects", async () => {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  await assert.rejects(fetch(`http://127.0.0.1:${port}/`, { headers: { Upgrade: "websocket" } }), /ECONNREFUSED/);
});

test("fetch: an oversized message (over 1 MiB) closes the connection with 1009, never delivered", async (t) => {
  const escaped = watchProcess(t);
  const server = await useEchoServer(t);
  const res = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { Upgrade: "websocket" } });
  const socket = res.webSocket as WebSocket;
  socket.accept();
  const events = record(socket);
  const serverClosed = once(server.connections[0], "close");
  server.connections[0].send(Buffer.alloc(1024 * 1024 + 1));
  const [code] = await serverClosed;
  assert.equal(code, 1009);
  await next(socket, "close");
  assert(!events.some((event) => event.startsWith("message")), events.join());
  assert.deepEqual(escaped, []);
});
