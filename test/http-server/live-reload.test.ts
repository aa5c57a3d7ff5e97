import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, test, type TestContext } from "node:test";
import type { Browser } from "playwright-core";
import { WebSocket } from "ws";
import {
  LIVE_RELOAD_PATH,
  LIVE_RELOAD_SCRIPT,
  LIVE_RELOAD_SCRIPT_LENGTH,
  LiveReloadServer,
  injectLiveReload,
  liveReloadScript,
} from "../../src/http-server/live-reload.js";
import { Response, kWaitUntil } from "../../src/standards/http.js";
import { launchBrowser, usePage } from "../helpers/browser.js";
import { streamText, utf8Encode } from "../helpers/http.js";
import { deferred, until, within } from "../helpers/sync.js";

const HTML = "text/html; charset=utf-8";

// ---------------------------------------------------------------------------
// injectLiveReload
// ---------------------------------------------------------------------------

test("injectLiveReload: appends the script to HTML bodies", async () => {
  const res = injectLiveReload(new Response("<p>hello</p>", { headers: { "Content-Type": HTML } }));
  assert.equal(await res.text(), "<p>hello</p>" + LIVE_RELOAD_SCRIPT);
});

test("injectLiveReload: script connects to /cdn-cgi/mf/reload and reloads on 1012", () => {
  assert.match(LIVE_RELOAD_SCRIPT, /^<script>[\s\S]*<\/script>$/);
  assert(LIVE_RELOAD_SCRIPT.includes(LIVE_RELOAD_PATH));
  assert.equal(LIVE_RELOAD_PATH, "/cdn-cgi/mf/reload");
  assert.match(LIVE_RELOAD_SCRIPT, /"wss:\/\/" : "ws:\/\/"/);
  assert.match(LIVE_RELOAD_SCRIPT, /1012/);
  assert.equal(LIVE_RELOAD_SCRIPT_LENGTH, Buffer.byteLength(LIVE_RELOAD_SCRIPT));
});

test("injectLiveReload: sets Content-Length from a string body's length", async () => {
  const body = "<p>caf\u00e9</p>"; // (é is 2 bytes)
  const res = injectLiveReload(new Response(body, { headers: { "Content-Type": "text/html" } }));
  assert.equal(res.headers.get("content-length"), String(Buffer.byteLength(body) + LIVE_RELOAD_SCRIPT_LENGTH));
  assert.equal(Buffer.byteLength(await res.text()), Buffer.byteLength(body) + LIVE_RELOAD_SCRIPT_LENGTH);
});

test("injectLiveReload: adds the script's length to a Content-Length header", async () => {
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(utf8Encode("<html>"));
      controller.enqueue(utf8Encode("</html>"));
      controller.close();
    },
  });
  const res = injectLiveReload(
    new Response(stream, { headers: { "Content-Type": "text/html", "Content-Length": "13" } })
  );
  assert.equal(res.headers.get("content-length"), String(13 + LIVE_RELOAD_SCRIPT_LENGTH));
  assert.equal(await res.text(), "<html></html>" + LIVE_RELOAD_SCRIPT);
});

test("injectLiveReload: leaves Content-Length out when the length is unknown", async () => {
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(utf8Encode("<b>x</b>"));
        controller.close();
      },
    });
  const res = injectLiveReload(new Response(stream(), { headers: { "Content-Type": "text/html" } }));
  assert.equal(res.headers.get("content-length"), null);
  const invalid = injectLiveReload(
    new Response(stream(), { headers: { "Content-Type": "text/html", "Content-Length": "nope" } })
  );
  assert.equal(invalid.headers.get("content-length"), null);
  assert.equal(await res.text(), "<b>x</b>" + LIVE_RELOAD_SCRIPT);
});

test("injectLiveReload: streams the body through without buffering it", async () => {
  const rest = deferred();
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      pulls++;
      if (pulls === 1) return controller.enqueue(utf8Encode("<h1>first</h1>"));
      await rest.promise;
      controller.enqueue(utf8Encode("<p>second</p>"));
      controller.close();
    },
  });
  const res = injectLiveReload(new Response(stream, { headers: { "Content-Type": "text/html" } }));
  const reader = res.body!.getReader();
  // The first chunk arrives while the source is still open
  // (Buffered, it would never come: the rest is held back)
  const first = await within(reader.read(), "the first chunk while the source is open");
  assert.equal(new TextDecoder().decode(first.value), "<h1>first</h1>");
  rest.resolve();
  let text = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    text += new TextDecoder().decode(r.value);
  }
  assert.equal(text, "<p>second</p>" + LIVE_RELOAD_SCRIPT);
});

test("injectLiveReload: keeps status, status text, other headers, encodeBody and waitUntil", async () => {
  const original = new Response("<p>gone</p>", {
    status: 404,
    statusText: "Nope",
    headers: [
      ["Content-Type", "text/html"],
      ["X-Custom", "1"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ],
  });
  const waitUntil = Promise.resolve([42]);
  original[kWaitUntil] = waitUntil;
  const res = injectLiveReload(original);
  assert.notEqual(res, original);
  assert.equal(res.status, 404);
  assert.equal(res.statusText, "Nope");
  assert.equal(res.headers.get("x-custom"), "1");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.equal(res.encodeBody, "automatic");
  assert.deepEqual(await res.waitUntil(), [42]);
});

test("injectLiveReload: matches the Content-Type case-insensitively", async () => {
  const res = injectLiveReload(new Response("<i>x</i>", { headers: { "Content-Type": "Text/HTML;Charset=UTF-8" } }));
  assert.equal(await res.text(), "<i>x</i>" + LIVE_RELOAD_SCRIPT);
});

test("injectLiveReload: leaves non-HTML responses alone", async () => {
  for (const type of ["text/plain", "application/json", "application/xhtml+xml", null]) {
    const original = new Response("<p>not html</p>", type === null ? {} : { headers: { "Content-Type": type } });
    if (type === null) original.headers.delete("content-type");
    const res = injectLiveReload(original);
    assert.equal(res, original, String(type));
    assert.equal(await res.text(), "<p>not html</p>");
  }
});

test('injectLiveReload: leaves encodeBody: "manual" responses alone', async () => {
  const original = new Response("<p>raw</p>", {
    headers: { "Content-Type": "text/html", "Content-Encoding": "gzip" },
    encodeBody: "manual",
  });
  const res = injectLiveReload(original);
  assert.equal(res, original);
  assert.equal(await res.text(), "<p>raw</p>");
});

test("injectLiveReload: leaves HTML responses without a body alone", () => {
  const original = new Response(null, { status: 204, headers: { "Content-Type": "text/html" } });
  assert.equal(injectLiveReload(original), original);
});

test("injectLiveReload: leaves responses whose body is locked alone", () => {
  const original = new Response("<p>locked</p>", { headers: { "Content-Type": "text/html" } });
  original.body!.getReader();
  assert.equal(injectLiveReload(original), original);
});

test("injectLiveReload: passes on errors of the original body", async () => {
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("source broke"));
    },
  });
  const res = injectLiveReload(new Response(stream, { headers: { "Content-Type": "text/html" } }));
  await assert.rejects(streamText(res.body), /source broke/);
});

// ---------------------------------------------------------------------------
// LiveReloadServer
// ---------------------------------------------------------------------------

interface Setup {
  server: http.Server;
  liveReload: LiveReloadServer;
  port: number;
  wsURL: string;
}

/** An HTTP server on 127.0.0.1 passing live-reload upgrades to a LiveReloadServer */
async function setup(t: TestContext): Promise<Setup> {
  const liveReload = new LiveReloadServer();
  const server = http.createServer((req, res) => res.end("ok"));
  server.on("upgrade", (req, socket, head) => {
    if (new URL(req.url ?? "/", "http://localhost").pathname === LIVE_RELOAD_PATH) {
      liveReload.handleUpgrade(req, socket, head);
    } else {
      socket.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    await liveReload.dispose();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { server, liveReload, port, wsURL: `ws://127.0.0.1:${port}${LIVE_RELOAD_PATH}` };
}

/** An open client WebSocket, terminated after the test */
async function connect(t: TestContext, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  t.after(() => ws.terminate());
  await once(ws, "open");
  return ws;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }))
  );
}

test("LiveReloadServer: reload: closes every client with 1012 Service Restart", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  const clients = await Promise.all([connect(t, wsURL), connect(t, wsURL), connect(t, wsURL)]);
  await until(() => liveReload.clientCount === 3, "3 clients");
  const closes = clients.map(closed);
  liveReload.reload();
  for (const close of await Promise.all(closes)) {
    assert.deepEqual(close, { code: 1012, reason: "Service Restart" });
  }
  await until(() => liveReload.clientCount === 0, "no clients");
});

test("LiveReloadServer: reload: only affects clients connected at the time", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  liveReload.reload(); // nobody connected: nothing happens
  const first = await connect(t, wsURL);
  const firstClosed = closed(first);
  liveReload.reload();
  assert.equal((await firstClosed).code, 1012);
  const second = await connect(t, wsURL);
  let secondClosed = false;
  second.on("close", () => (secondClosed = true));
  // A ping round trip proves the connection is still up
  second.ping();
  await once(second, "pong");
  assert.equal(secondClosed, false);
  assert.equal(second.readyState, WebSocket.OPEN);
});

test("LiveReloadServer: ignores messages from clients", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  const ws = await connect(t, wsURL);
  ws.send("hello");
  ws.send(Buffer.from([1, 2, 3]));
  ws.ping();
  await once(ws, "pong");
  assert.equal(ws.readyState, WebSocket.OPEN);
  const close = closed(ws);
  liveReload.reload();
  assert.equal((await close).code, 1012);
});

test("LiveReloadServer: closes clients sending oversized messages", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  const ws = await connect(t, wsURL);
  const close = closed(ws);
  ws.send("x".repeat(64 * 1024));
  assert.equal((await close).code, 1009); // Message Too Big
  await until(() => liveReload.clientCount === 0, "no clients");
  // Still serving others
  const other = await connect(t, wsURL);
  const otherClosed = closed(other);
  liveReload.reload();
  assert.equal((await otherClosed).code, 1012);
});

/** Sends a raw WebSocket handshake on a plain TCP socket */
async function rawHandshake(t: TestContext, port: number, key = "dGhlIHNhbXBsZSBub25jZQ=="): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  t.after(() => socket.destroy());
  socket.on("error", () => {});
  await once(socket, "connect");
  socket.write(
    [
      `GET ${LIVE_RELOAD_PATH} HTTP/1.1`,
      "Host: localhost",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      "",
      "",
    ].join("\r\n")
  );
  return socket;
}

test("LiveReloadServer: survives clients sending invalid frames or vanishing", async (t) => {
  const { liveReload, port, wsURL } = await setup(t);
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on("uncaughtException", onUncaught);
  t.after(() => process.off("uncaughtException", onUncaught));

  // Garbage after a successful handshake (an unmasked frame with a reserved opcode)
  const garbage = await rawHandshake(t, port);
  await once(garbage, "data"); // 101 Switching Protocols
  garbage.write(Buffer.from([0x83, 0x05, 1, 2, 3, 4, 5]));
  await within(once(garbage, "close"), "the server closing a connection sending garbage");

  // Gone in the middle of the handshake
  const halfway = net.connect(port, "127.0.0.1");
  halfway.on("error", () => {});
  await once(halfway, "connect");
  halfway.write(`GET ${LIVE_RELOAD_PATH} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n`);
  halfway.resetAndDestroy();

  // Gone right after the handshake, without a close frame
  const abrupt = await rawHandshake(t, port);
  await once(abrupt, "data");
  abrupt.resetAndDestroy();

  // An upgrade that isn't a valid WebSocket handshake gets a 400
  const invalid = await rawHandshake(t, port, "");
  const [response] = await once(invalid, "data");
  assert.match(response.toString(), /^HTTP\/1\.1 400/);

  await until(() => liveReload.clientCount === 0, "no clients");
  const ws = await connect(t, wsURL);
  const close = closed(ws);
  liveReload.reload();
  assert.equal((await close).code, 1012);
  assert.deepEqual(uncaught, []);
});

test("LiveReloadServer: handleUpgrade: tolerates a socket handed over twice", async (t) => {
  const liveReload = new LiveReloadServer();
  const server = http.createServer();
  server.on("upgrade", (req, socket, head) => {
    liveReload.handleUpgrade(req, socket, head);
    liveReload.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    await liveReload.dispose();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}${LIVE_RELOAD_PATH}`);
  t.after(() => ws.terminate());
  ws.on("error", () => {});
  // Whatever the client sees, the server process is still standing
  await Promise.race([once(ws, "close"), once(ws, "open")]);
});

test("LiveReloadServer: dispose: closes clients with 1001 and refuses new ones", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  const ws = await connect(t, wsURL);
  const close = closed(ws);
  await liveReload.dispose();
  assert.equal((await close).code, 1001);
  assert.equal(liveReload.clientCount, 0);
  const late = new WebSocket(wsURL);
  late.on("error", () => {}); // (socket hang up)
  const { code } = await closed(late);
  assert.equal(code, 1006); // refused before the handshake completed
  await liveReload.dispose(); // twice is fine
});

// ---------------------------------------------------------------------------
// In a real browser
// ---------------------------------------------------------------------------

/** Writes a (Workers) Response to a Node response, streaming the body */
async function send(response: Response, res: http.ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  res.writeHead(response.status, headers);
  if (response.body !== null) {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
  }
  res.end();
}

interface PageServer {
  url: string;
  /** Number of times the page has been served */
  loads(): number;
  liveReload(): LiveReloadServer;
  /** Replaces the live-reload server, as a restarted Miniflare would */
  restart(): Promise<void>;
}

/**
 * Serves an HTML page counting its loads, with live reload wired in the way
 * Miniflare's server does it
 */
async function servePage(t: TestContext): Promise<PageServer> {
  let liveReload = new LiveReloadServer();
  let loads = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== "/") return void res.writeHead(404).end();
    loads++;
    const html = `<!DOCTYPE html><html><body><h1 id="load">load ${loads}</h1></body></html>`;
    void send(injectLiveReload(new Response(html, { headers: { "Content-Type": "text/html" } }), liveReload.script), res);
  });
  server.on("upgrade", (req, socket, head) => {
    if (new URL(req.url ?? "/", "http://localhost").pathname === LIVE_RELOAD_PATH) liveReload.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    await liveReload.dispose();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    loads: () => loads,
    liveReload: () => liveReload,
    async restart() {
      await liveReload.dispose();
      liveReload = new LiveReloadServer();
    },
  };
}

describe("live reload in Chromium", () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  test("LiveReloadServer: reload: reloads the page in the browser", async (t) => {
    const served = await servePage(t);
    const page = await usePage(t, browser);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(served.url);
    assert.equal(await page.textContent("#load"), "load 1");
    await until(() => served.liveReload().clientCount === 1, "the page to connect");
    // Anything set on window disappears with a real reload
    await page.evaluate(() => ((window as any).marker = "before reload"));

    served.liveReload().reload();
    await page.waitForFunction(() => document.getElementById("load")?.textContent === "load 2");
    assert.equal(await page.evaluate(() => (window as any).marker), undefined);
    assert.equal(served.loads(), 2);

    // And again, once the reloaded page has reconnected
    await until(() => served.liveReload().clientCount === 1, "the page to reconnect");
    served.liveReload().reload();
    await page.waitForFunction(() => document.getElementById("load")?.textContent === "load 3");
    assert.deepEqual(errors, []);
  });

  test("LiveReloadServer: pages reconnect after losing the server, then reload", async (t) => {
    const served = await servePage(t);
    const page = await usePage(t, browser);
    await page.goto(served.url);
    await until(() => served.liveReload().clientCount === 1, "the page to connect");
    await served.restart();
    await page.waitForFunction(() => document.getElementById("load")?.textContent === "load 2");
    await until(() => served.liveReload().clientCount === 1, "the page to connect again");
  });

  test("injectLiveReload: the page still renders its own content", async (t) => {
    const served = await servePage(t);
    const page = await usePage(t, browser);
    await page.goto(served.url);
    assert.equal(await page.locator("#load").isVisible(), true);
    // The script adds no visible text
    assert.equal(await page.evaluate(() => document.body.innerText.trim()), "load 1");
  });
});

test("LiveReloadServer: a page served before the last reload is told to reload as soon as it connects", async (t) => {
  const { liveReload, wsURL } = await setup(t);
  const versionOf = (script: string) => /\?v=(\d+)"/.exec(script)![1];
  const servedBefore = versionOf(liveReload.script);
  // Every script has the same length, whatever its version
  liveReload.reload();
  assert.equal(Buffer.byteLength(liveReload.script), LIVE_RELOAD_SCRIPT_LENGTH);
  const servedAfter = versionOf(liveReload.script);
  assert.notEqual(servedAfter, servedBefore);

  // The reload happened before this page's socket opened: no close reached it
  const stale = new WebSocket(`${wsURL}?v=${servedBefore}`);
  t.after(() => stale.terminate());
  assert.deepEqual(await closed(stale), { code: 1012, reason: "Service Restart" });

  // A page of the current version stays connected
  const current = await connect(t, `${wsURL}?v=${servedAfter}`);
  current.ping();
  await once(current, "pong");
  assert.equal(current.readyState, WebSocket.OPEN);
});

test("injectLiveReload: appends the script given (a version's)", async () => {
  const script = liveReloadScript(42);
  assert.match(script, /\/cdn-cgi\/mf\/reload\?v=0000000042"/);
  const res = injectLiveReload(new Response("<p>hello</p>", { headers: { "Content-Type": HTML } }), script);
  assert.equal(await res.text(), "<p>hello</p>" + script);
  assert.equal(res.headers.get("Content-Length"), String(12 + LIVE_RELOAD_SCRIPT_LENGTH));
});
