import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test, type TestContext } from "node:test";
import vm from "node:vm";
import type { Browser } from "playwright-core";
import { type ErrorPageRequest, _withoutOwnFrames, errorResponse } from "../../src/http-server/error-page.js";
import { LIVE_RELOAD_PATH, LIVE_RELOAD_SCRIPT, LiveReloadServer } from "../../src/http-server/live-reload.js";
import { launchBrowser, usePage } from "../helpers/browser.js";
import { until } from "../helpers/sync.js";

const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";

function request(headers: Record<string, string>): ErrorPageRequest {
  return { method: "GET", url: "http://localhost:8787/path", headers };
}

function throwingFunctionForTheStack(): never {
  throw new Error("Worker threw <oops>");
}

function thrown(): Error {
  try {
    throwingFunctionForTheStack();
  } catch (e) {
    return e as Error;
  }
}

// ---------------------------------------------------------------------------
// HTML or plain text
// ---------------------------------------------------------------------------

const cases: { accept?: string; userAgent?: string; html: boolean }[] = [
  { accept: BROWSER_ACCEPT, userAgent: BROWSER_UA, html: true },
  { accept: "text/html", html: true },
  { accept: "*/*", html: true },
  { accept: "text/*", html: true },
  { accept: "TEXT/HTML", html: true },
  { accept: "application/json, text/*;q=0.5", html: true },
  { accept: "*/*", userAgent: "curl/8.5.0", html: false },
  { accept: "text/html", userAgent: "curl/7.88.1", html: false },
  { accept: "*/*", userAgent: "CURL/8.0", html: false },
  // Miniflare 2 looks for "curl/" anywhere in the User-Agent
  { accept: "*/*", userAgent: "wrapper/1.0 curl/8.0", html: false },
  { accept: "application/json", userAgent: BROWSER_UA, html: false },
  { accept: "text/plain", html: false },
  { userAgent: BROWSER_UA, html: false },
  { html: false },
];

for (const { accept, userAgent, html } of cases) {
  const title = `errorResponse: Accept ${JSON.stringify(accept ?? null)}, User-Agent ${JSON.stringify(
    userAgent ?? null
  )}: ${html ? "HTML page" : "plain stack"}`;
  test(title, async () => {
    const headers: Record<string, string> = {};
    if (accept !== undefined) headers.accept = accept;
    if (userAgent !== undefined) headers["user-agent"] = userAgent;
    const error = thrown();
    const res = await errorResponse(error, request(headers));
    assert.equal(res.status, 500);
    if (html) {
      assert.equal(res.headers["Content-Type"], "text/html; charset=UTF-8");
      assert.match(res.body, /^\s*<!DOCTYPE html>/i);
    } else {
      assert.deepEqual(res, {
        status: 500,
        headers: { "Content-Type": "text/plain; charset=UTF-8" },
        body: error.stack,
      });
    }
  });
}

test("errorResponse: reads Fetch Headers as well as Node's incoming headers", async () => {
  const error = thrown();
  const page = await errorResponse(error, { headers: new Headers({ Accept: "text/html" }) });
  assert.equal(page.headers["Content-Type"], "text/html; charset=UTF-8");
  const curl = await errorResponse(error, { headers: new Headers({ Accept: "*/*", "User-Agent": "curl/8.0" }) });
  assert.equal(curl.body, error.stack);
  // Node joins repeated headers into arrays for some names
  const array = await errorResponse(error, { headers: { accept: "text/html", "x-many": ["a", "b"] } });
  assert.equal(array.headers["Content-Type"], "text/html; charset=UTF-8");
});

test("errorResponse: plain text for values without a stack", async () => {
  const plain = { headers: { accept: "application/json" } };
  assert.equal((await errorResponse("just a string", plain)).body, "just a string");
  assert.equal((await errorResponse(42, plain)).body, "42");
  assert.equal((await errorResponse({ name: "CustomError", message: "no stack" }, plain)).body, "CustomError: no stack");
  assert.equal((await errorResponse(undefined, plain)).body, "undefined");
});

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

test("errorResponse: the page shows the message (escaped) and the stack", async () => {
  const error = thrown();
  const { body } = await errorResponse(error, request({ accept: "text/html" }));
  assert(body.includes("Worker threw &lt;oops&gt;"));
  assert(!body.includes("Worker threw <oops>"));
  // Frames from the error's stack, with their function names and files
  assert(body.includes("throwingFunctionForTheStack"));
  assert(body.includes("error-page.test.js"));
  assert(body.includes(`id="error-name"`));
});

test("errorResponse: the page links to the Workers docs, the Workers Discord and Miniflare's docs", async () => {
  const { body } = await errorResponse(thrown(), request({ accept: "text/html" }));
  assert.match(body, /<a href="https:\/\/developers\.cloudflare\.com\/workers\/"[^>]*>[^<]*Workers Docs<\/a>/);
  assert.match(body, /<a href="https:\/\/discord\.gg\/cloudflaredev"[^>]*>[^<]*Workers Discord<\/a>/);
  assert.match(body, /<a href="https:\/\/miniflare\.dev"[^>]*>[^<]*Miniflare Docs<\/a>/);
});

test("errorResponse: the page includes the live-reload script only when enabled", async () => {
  const req = request({ accept: "text/html" });
  const without = await errorResponse(thrown(), req);
  assert(!without.body.includes(LIVE_RELOAD_PATH));
  const disabled = await errorResponse(thrown(), req, { liveReload: false });
  assert(!disabled.body.includes(LIVE_RELOAD_PATH));
  const enabled = await errorResponse(thrown(), req, { liveReload: true });
  assert(enabled.body.includes(LIVE_RELOAD_SCRIPT));
  assert(enabled.body.indexOf(LIVE_RELOAD_SCRIPT) < enabled.body.lastIndexOf("</body>"));
  // The plain stack never gets it
  const plain = await errorResponse(thrown(), request({ accept: "*/*", "user-agent": "curl/8" }), { liveReload: true });
  assert(!plain.body.includes(LIVE_RELOAD_PATH));
});

test("errorResponse: the page shows the request", async () => {
  const { body } = await errorResponse(thrown(), {
    method: "POST",
    url: "http://localhost:8787/some/path?q=1",
    headers: { accept: "text/html", "x-custom-header": "custom-value" },
  });
  assert(body.includes("/some/path?q=1"));
  assert(body.includes("POST"));
  assert(body.includes("custom-value"));
});

test("errorResponse: renders errors from another realm (the worker sandbox)", async () => {
  const error = vm.runInNewContext(
    'function workerHandler() { throw new TypeError("from the sandbox"); }\n' +
      "try { workerHandler(); } catch (e) { e }",
    {},
    { filename: "worker.js" }
  );
  assert(!(error instanceof Error));
  const { headers, body } = await errorResponse(error, request({ accept: "text/html" }));
  assert.equal(headers["Content-Type"], "text/html; charset=UTF-8");
  assert(body.includes("from the sandbox"));
  assert(body.includes("TypeError"));
  assert(body.includes("workerHandler"));
});

test("errorResponse: renders thrown non-errors", async () => {
  const { body } = await errorResponse("a thrown string", request({ accept: "text/html" }));
  assert(body.includes("a thrown string"));
});

test("errorResponse: escapes hints carried by the thrown error", async () => {
  const error = Object.assign(thrown(), { help: '<img src=x onerror="alert(1)">' });
  const { body } = await errorResponse(error, request({ accept: "text/html" }));
  assert(!body.includes('<img src=x onerror="alert(1)">'));
  assert(body.includes("&lt;img src=x"));
});

test("_withoutOwnFrames: drops Miniflare's own frames from the stack shown, leaving the error whole", () => {
  const error = new Error("broke", { cause: "why" });
  error.stack = [
    "Error: broke",
    "    at handler (file:///project/worker.js:3:9)",
    "    at dispatch (/project/node_modules/miniflare/dist/bundle/chunk-1.js:10:5)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
  ].join("\n");
  const shown = _withoutOwnFrames(error, "/project/node_modules/miniflare/dist/bundle/") as Error;
  assert.equal(
    shown.stack,
    "Error: broke\n    at handler (file:///project/worker.js:3:9)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
  );
  assert.equal(shown.message, "broke");
  assert.equal(shown.cause, "why");
  assert.ok(shown instanceof Error);
  // The error itself keeps every frame
  assert.match(error.stack!, /chunk-1\.js/);
  // Nothing to drop: the same error
  assert.equal(_withoutOwnFrames(error, "/elsewhere/"), error);
});

test("errorResponse: shows the cause", async () => {
  const error = new Error("outer failure", { cause: new RangeError("inner cause") });
  const { body } = await errorResponse(error, request({ accept: "text/html" }));
  assert(body.includes("outer failure"));
  assert(body.includes("inner cause"));
});

// ---------------------------------------------------------------------------
// In a real browser
// ---------------------------------------------------------------------------

interface ErrorServer {
  url: string;
  liveReload: LiveReloadServer;
  /** Makes the next requests succeed */
  fix(): void;
}

/** A server answering with `errorResponse` until fixed, with live reload */
async function serveErrors(t: TestContext, error: unknown): Promise<ErrorServer> {
  const liveReload = new LiveReloadServer();
  let broken = true;
  const server = http.createServer(async (req, res) => {
    if (!broken) {
      res.writeHead(200, { "Content-Type": "text/html" }).end('<h1 id="fixed">Fixed!</h1>');
      return;
    }
    const { status, headers, body } = await errorResponse(
      error,
      { method: req.method, url: `http://${req.headers.host}${req.url}`, headers: req.headers },
      { liveReload: true, liveReloadScript: liveReload.script }
    );
    res.writeHead(status, headers).end(body);
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
    liveReload,
    fix: () => (broken = false),
  };
}

describe("error page in Chromium", () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  test("errorResponse: the browser renders the error message, stack and links", async (t) => {
    const served = await serveErrors(t, thrown());
    const page = await usePage(t, browser);
    const response = await page.goto(served.url);
    assert.equal(response?.status(), 500);
    const message = page.getByText("Worker threw <oops>", { exact: true });
    assert.equal(await message.isVisible(), true);
    assert.equal(await page.locator("#error-name").innerText(), "Error");
    assert.equal(await page.getByText("throwingFunctionForTheStack").first().isVisible(), true);
    for (const name of ["Workers Docs", "Workers Discord", "Miniflare Docs"]) {
      assert.equal(await page.getByRole("link", { name: new RegExp(name) }).isVisible(), true, name);
    }
  });

  test("errorResponse: the page reloads with the worker once the error is fixed", async (t) => {
    const served = await serveErrors(t, thrown());
    const page = await usePage(t, browser);
    await page.goto(served.url);
    await page.getByText("Worker threw <oops>", { exact: true }).waitFor();
    await until(() => served.liveReload.clientCount > 0, "the page connecting for live reload", 20_000);
    served.fix();
    served.liveReload.reload();
    await page.locator("#fixed").waitFor();
    assert.equal(await page.locator("#fixed").innerText(), "Fixed!");
  });
});
