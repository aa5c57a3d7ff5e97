// Tests for fetch, createCompatFetch, createFetchMock and logResponse
// (spec §2.2, §6, §7). Upstreams are local servers on 127.0.0.1 only.
import assert from "node:assert/strict";
import type http from "node:http";
import { test } from "node:test";
import { Compatibility } from "../../src/shared/compat.js";
import { EXTERNAL_SUBREQUEST_LIMIT_BUNDLED, RequestContext } from "../../src/shared/context.js";
import { LogLevel, NoOpLog } from "../../src/shared/log.js";
import { waitUntilOnOutputGate } from "../../src/shared/sync/gate.js";
import { Body, Request, Response, _getURLList, logResponse } from "../../src/standards/http.js";
import {
  _buildUnknownProtocolWarning,
  _kLoopHeader,
  _urlFromRequestInput,
  createCompatFetch,
  createFetchMock,
  fetch,
} from "../../src/standards/fetch.js";
import {
  IN_REQUEST_MESSAGE,
  type Listener,
  MULTIPART_CONTENT_TYPE,
  multipartFileLines,
  singleChunkStream,
  useServer,
  WatchedOutputGate,
  waitsForInputGate,
} from "../helpers/http.js";
import { TestLog } from "../helpers/log.js";
import { deferred, flushTurns, timeMovesOn, within } from "../helpers/sync.js";

const BaseRequest = globalThis.Request;

const echoHeaders: Listener = (req, res) => res.end(JSON.stringify(req.headers));

function redirectingServerListener(req: http.IncomingMessage, res: http.ServerResponse): void {
  const { searchParams } = new URL(req.url ?? "", "http://localhost");
  const n = parseInt(searchParams.get("n") ?? "0");
  if (n > 0) {
    res.writeHead(302, { Location: `/?n=${n - 1}`, "Set-Cookie": `n=${n}` });
  } else {
    res.writeHead(200);
  }
  res.end();
}

const bundledContext = () =>
  new RequestContext({ externalSubrequestLimit: EXTERNAL_SUBREQUEST_LIMIT_BUNDLED });

// ---------------------------------------------------------------------------
// fetch
// ---------------------------------------------------------------------------

test("fetch: can fetch from existing Request", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  const res = await fetch(new Request(upstream));
  assert(res instanceof Response);
  assert(res instanceof Body);
  assert.equal(res.status, 200);
  assert.equal(res.url, upstream.href);
  assert.equal(await res.text(), "upstream");
});

test("fetch: accepts strings, URLs and built-in Requests", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end(`${req.method} ${req.url}`));
  assert.equal(await (await fetch(upstream.href)).text(), "GET /");
  assert.equal(await (await fetch(new URL("/a?b", upstream))).text(), "GET /a?b");
  const base = new BaseRequest(new URL("/c", upstream), { method: "DELETE" });
  assert.equal(await (await fetch(base)).text(), "DELETE /c");
});

test("fetch: gives a null body for upstream null body status codes", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    res.statusCode = 304;
    res.end();
  });
  const res = await fetch(new Request(upstream));
  assert.equal(res.status, 304);
  assert.equal(res.body, null);
  assert.equal(await res.text(), "");
  assert.throws(() => res.headers.set("X-Key", "value"), { message: "immutable" });
});

test("fetch: increments subrequest count", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  const ctx = bundledContext();
  await ctx.runWith(() => fetch(upstream));
  assert.equal(ctx.externalSubrequests, 1);
});

test("fetch: increments subrequest count for each redirect", async (t) => {
  const upstream = await useServer(t, redirectingServerListener);
  const ctx = bundledContext();
  const res = await ctx.runWith(() => fetch(new URL("/?n=3", upstream)));
  assert.equal(res.redirected, true);
  assert.equal(res.url, new URL("/?n=0", upstream).href);
  assert.equal(ctx.externalSubrequests, 4);
});

test("fetch: throws when the subrequest limit is exceeded", async (t) => {
  const upstream = await useServer(t, redirectingServerListener);
  const ctx = new RequestContext({ externalSubrequestLimit: 2 });
  await assert.rejects(ctx.runWith(() => fetch(new URL("/?n=3", upstream))), {
    message: /^Too many subrequests\. Workers can make up to 2 subrequests per request\./,
  });
});

test("fetch: advances current time", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  const ctx = new RequestContext();
  const previous = ctx.currentTime;
  await timeMovesOn(previous);
  assert.equal(ctx.currentTime, previous);
  await ctx.runWith(() => fetch(upstream));
  assert(ctx.currentTime > previous);
});

test("fetch: waits for output gate to open before fetching", async (t) => {
  let fetched = false;
  const upstream = await useServer(t, (req, res) => {
    fetched = true;
    res.end("upstream");
  });
  const outputGate = new WatchedOutputGate();
  const open = deferred();
  const promise = outputGate.runWith(() => {
    waitUntilOnOutputGate(open.promise);
    return fetch(upstream);
  });
  await within(outputGate.waiting, "fetch waiting on the output gate");
  await flushTurns();
  assert.equal(fetched, false);
  open.resolve();
  const res = await promise;
  assert.equal(fetched, true);
  assert.equal(await res.text(), "upstream");
});

test("fetch: removes Host and CF-Connecting-IP headers from Request", async (t) => {
  const upstream = await useServer(t, echoHeaders);
  const res = await fetch(upstream, {
    headers: {
      Host: "miniflare.dev",
      "CF-Connecting-IP": "127.0.0.1",
      "X-Real-IP": "127.0.0.1",
    },
  });
  const headers = await res.json();
  assert.equal(headers.host, upstream.host);
  assert.equal(headers["x-real-ip"], "127.0.0.1");
  assert.equal(headers["cf-connecting-ip"], undefined);
});

test("fetch: sets MF-Loop header to the request depth", async (t) => {
  const upstream = await useServer(t, echoHeaders);
  assert.equal(_kLoopHeader, "MF-Loop");
  let headers = await (await fetch(upstream)).json();
  assert.equal(headers["mf-loop"], "1");
  const ctx = new RequestContext({ requestDepth: 3 });
  headers = await (await ctx.runWith(() => fetch(upstream, { headers: { "MF-Loop": "9" } }))).json();
  assert.equal(headers["mf-loop"], "3");
});

test("fetch: removes Content-Length 0 from body-less requests", async (t) => {
  const upstream = await useServer(t, (req, res) =>
    res.end(JSON.stringify({ method: req.method, headers: req.headers }))
  );
  let res = await fetch(upstream, { method: "DELETE", headers: { "Content-Length": "0" } });
  let body = await res.json();
  assert.equal(body.method, "DELETE");
  assert.equal(body.headers.host, upstream.host);
  assert.equal(body.headers["content-length"], undefined);

  // Kept for methods expecting payloads
  res = await fetch(upstream, { method: "POST", headers: { "Content-Length": "0" } });
  body = await res.json();
  assert.equal(body.headers["content-length"], "0");
});

test("fetch: removes default fetch headers from Request unless explicitly added", async (t) => {
  const upstream = await useServer(t, echoHeaders);
  function removeExpected(headers: any): any {
    delete headers["accept-encoding"];
    delete headers["connection"];
    delete headers["host"];
    delete headers["mf-loop"];
    return headers;
  }

  let res = await fetch(upstream, { headers: { "CF-Ray": "ray1" } });
  assert.deepEqual(removeExpected(await res.json()), { "cf-ray": "ray1" });

  res = await fetch(upstream, {
    headers: { "User-Agent": "miniflare-test2", "CF-Ray": "ray2" },
  });
  assert.deepEqual(removeExpected(await res.json()), {
    "user-agent": "miniflare-test2",
    "cf-ray": "ray2",
  });

  res = await fetch(upstream, {
    headers: {
      Accept: "text/html",
      "Accept-Language": "en",
      "User-Agent": "miniflare-test3",
      "CF-Ray": "ray3",
    },
  });
  assert.deepEqual(removeExpected(await res.json()), {
    accept: "text/html",
    "accept-language": "en",
    "user-agent": "miniflare-test3",
    "cf-ray": "ray3",
  });
});

test("fetch: doesn't mutate the headers of the Request passed in", async (t) => {
  const upstream = await useServer(t, echoHeaders);
  const req = new Request(upstream, { headers: { Host: "miniflare.dev" } });
  await fetch(req);
  assert.equal(req.headers.get("Host"), "miniflare.dev");
  assert.equal(req.headers.get("MF-Loop"), null);
});

test("fetch: accepts stream body", async (t) => {
  const upstream = await useServer(t, (req, res) => req.pipe(res));

  const init = { method: "POST", body: singleChunkStream("chunk1") };
  const initClone = { ...init };
  let res = await fetch(upstream, init);
  assert.deepEqual(init, initClone);
  assert.equal(await res.text(), "chunk1");

  res = await fetch(upstream, { method: "POST", body: singleChunkStream("chunk2", "bytes") });
  assert.equal(await res.text(), "chunk2");
});

test('fetch: returns full Response for "manual" redirect', async (t) => {
  const upstream = await useServer(t, redirectingServerListener);
  const url = new URL("/?n=3", upstream);
  const ctx = bundledContext();
  const res = await ctx.runWith(() => fetch(url, { redirect: "manual" }));
  assert.equal(res.status, 302);
  assert.equal(res.statusText, "Found");
  assert.equal(res.headers.get("Location"), "/?n=2");
  assert.equal(res.headers.get("Set-Cookie"), "n=3");
  assert.equal(res.url, url.href);
  assert.equal(res.redirected, false);
  assert.equal(ctx.externalSubrequests, 1);
});

test("fetch: waits for input gate to open before returning", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  await waitsForInputGate(() => fetch(upstream));
});

test("fetch: Response body is input gated", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  const res = await fetch(upstream);
  assert(res instanceof Body);
  const body = await waitsForInputGate(() => res.text());
  assert.equal(body, "upstream");
});

test("fetch: Response headers are immutable", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    res.writeHead(200, { "X-Key": "value" });
    res.end("upstream");
  });
  const res = await fetch(upstream);
  assert.throws(() => res.headers.set("X-Key", "new"), { name: "TypeError", message: "immutable" });
  assert.equal(res.headers.get("X-Key"), "value");

  const mutable = new Response(res.body, res);
  mutable.headers.set("X-Key", "new");
  assert.equal(mutable.headers.get("X-Key"), "new");
  assert.equal(await mutable.text(), "upstream");
});

/** Redirects `/?status=S&to=URL` to URL with status S; otherwise echoes the request */
function redirectOrEcho(req: http.IncomingMessage, res: http.ServerResponse): void {
  const { pathname, searchParams } = new URL(req.url ?? "", "http://localhost");
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const to = searchParams.get("to");
    if (pathname === "/loop") {
      res.writeHead(302, { Location: "/loop" });
      res.end();
    } else if (to !== null) {
      res.writeHead(parseInt(searchParams.get("status") ?? "302"), { Location: to });
      res.end("redirecting");
    } else {
      const { "content-type": type = null, authorization = null } = req.headers;
      res.end(JSON.stringify({ method: req.method, path: req.url, body, type, authorization }));
    }
  });
}

function redirectURL(upstream: URL, status: number, to: string): URL {
  return new URL(`/?status=${status}&to=${encodeURIComponent(to)}`, upstream);
}

test("fetch: follows 307/308 redirects with the same method and body", async (t) => {
  const upstream = await useServer(t, redirectOrEcho);
  for (const status of [307, 308]) {
    const res = await fetch(redirectURL(upstream, status, "/end"), {
      method: "POST",
      body: "body",
      headers: { "Content-Type": "text/x", Authorization: "secret" },
    });
    assert.equal(res.redirected, true);
    assert.equal(res.url, new URL("/end", upstream).href);
    assert.deepEqual(await res.json(), {
      method: "POST",
      path: "/end",
      body: "body",
      type: "text/x",
      authorization: "secret",
    });
  }
});

test("fetch: follows 301/302 POSTs and 303s as GETs without the body", async (t) => {
  const upstream = await useServer(t, redirectOrEcho);
  for (const [status, method] of [[301, "POST"], [302, "POST"], [303, "PUT"]] as const) {
    const res = await fetch(redirectURL(upstream, status, "/end"), {
      method,
      body: "body",
      headers: { "Content-Type": "text/x" },
    });
    assert.deepEqual(await res.json(), {
      method: "GET",
      path: "/end",
      body: "",
      type: null,
      authorization: null,
    });
  }
  // A 302 keeps other methods and their bodies
  const res = await fetch(redirectURL(upstream, 302, "/end"), { method: "PUT", body: "body" });
  assert.deepEqual(await res.json(), {
    method: "PUT",
    path: "/end",
    body: "body",
    type: "text/plain;charset=UTF-8",
    authorization: null,
  });
});

test("fetch: drops credentials when a redirect goes to another origin", async (t) => {
  const upstream = await useServer(t, redirectOrEcho);
  const other = new URL(upstream);
  other.hostname = "localhost";
  const res = await fetch(redirectURL(upstream, 302, new URL("/end", other).href), {
    headers: { Authorization: "secret" },
  });
  assert.equal(res.url, new URL("/end", other).href);
  assert.equal((await res.json()).authorization, null);
});

test("fetch: rejects redirects it can't follow as Node's fetch does", async (t) => {
  const upstream = await useServer(t, redirectOrEcho);
  const failed = (cause: string) => (error: any) => {
    assert.ok(error instanceof TypeError);
    assert.equal(error.message, "fetch failed");
    assert.match(String((error.cause as Error | undefined)?.message), new RegExp(cause));
    return true;
  };
  await assert.rejects(fetch(new URL("/loop", upstream)), failed("^redirect count exceeded$"));
  await assert.rejects(
    fetch(redirectURL(upstream, 302, "ftp://localhost/")),
    failed("^URL scheme must be a HTTP\\(S\\) scheme$")
  );
  await assert.rejects(
    fetch(redirectURL(upstream, 302, "/end"), { redirect: "error" }),
    failed("^unexpected redirect$")
  );
  // A streamed body isn't kept to be sent again
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("body"));
      controller.close();
    },
  });
  await assert.rejects(
    fetch(redirectURL(upstream, 307, "/end"), { method: "POST", body: stream }),
    failed("streamed request body")
  );
});

test("fetch: a redirect without a Location is the response", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    res.writeHead(302);
    res.end("no location");
  });
  const res = await fetch(upstream);
  assert.equal(res.status, 302);
  assert.equal(res.redirected, false);
  assert.equal(await res.text(), "no location");
});

test("fetch: clones of Responses have mutable headers and keep their URL", async (t) => {
  const upstream = await useServer(t, redirectingServerListener);
  const res = await fetch(new URL("/?n=1", upstream));
  const clone = res.clone();
  clone.headers.set("X-Key", "value");
  assert.equal(clone.headers.get("X-Key"), "value");
  assert.equal(clone.url, new URL("/?n=0", upstream).href);
  assert.equal(clone.redirected, true);
  assert.equal(_getURLList(clone)?.length, 2);
  assert.throws(() => res.headers.set("X-Key", "new"), { message: "immutable" });
});

test("fetch: forwards the request body and method", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => res.end(`${req.method}:${req.headers["x-key"]}:${body}`));
  });
  const res = await fetch(upstream, { method: "PUT", headers: { "X-Key": "value" }, body: "body" });
  assert.equal(await res.text(), "PUT:value:body");
});

test("fetch: rejects with undici's error on network failure", async (t) => {
  const upstream = await useServer(t, (req, res) => res.destroy());
  await assert.rejects(fetch(upstream), { name: "TypeError", message: "fetch failed" });
});

test("fetch: sends requests through a bound dispatcher", async () => {
  const fetchMock = createFetchMock();
  fetchMock.disableNetConnect();
  const origin = fetchMock.get("https://mock.example.com");
  let seenHeaders: Record<string, string> = {};
  origin
    .intercept({ method: "GET", path: "/path" })
    .reply(200, (opts) => {
      seenHeaders = opts.headers as Record<string, string>;
      return "mocked";
    }, { headers: { "X-Mocked": "true" } });
  const ctx = bundledContext();
  const res = await ctx.runWith(() => fetch.call(fetchMock, "https://mock.example.com/path"));
  assert.equal(await res.text(), "mocked");
  assert.equal(res.headers.get("X-Mocked"), "true");
  assert.equal(ctx.externalSubrequests, 1);
  // undici's default headers are stripped before reaching the dispatcher
  const names = Object.keys(seenHeaders).map((name) => name.toLowerCase());
  assert(names.includes("mf-loop"));
  assert(!names.includes("user-agent"));
  assert(!names.includes("accept"));
  // Unmatched requests fail, as net connect is disabled
  await assert.rejects(fetch.call(fetchMock, "https://mock.example.com/other"), {
    name: "TypeError",
    message: "fetch failed",
  });
  await fetchMock.close();
});

test("createFetchMock: returns an undici MockAgent", async () => {
  const { MockAgent } = await import("undici");
  const fetchMock = createFetchMock();
  assert(fetchMock instanceof MockAgent);
  assert.equal(typeof fetchMock.disableNetConnect, "function");
  await fetchMock.close();
});

// ---------------------------------------------------------------------------
// createCompatFetch
// ---------------------------------------------------------------------------

test("createCompatFetch: throws outside request handler unless globalAsyncIO set", async (t) => {
  const upstream = await useServer(t, (req, res) => res.end("upstream"));
  const log = new NoOpLog();
  const compat = new Compatibility();
  const ctx = bundledContext();

  let compatFetch = createCompatFetch({ log, compat });
  await assert.rejects(compatFetch(upstream), {
    name: "Error",
    message: IN_REQUEST_MESSAGE,
  });
  let res = await ctx.runWith(() => compatFetch(upstream));
  assert.equal(await res.text(), "upstream");

  compatFetch = createCompatFetch({ log, compat, globalAsyncIO: true });
  res = await compatFetch(upstream);
  assert.equal(await res.text(), "upstream");
  res = await ctx.runWith(() => compatFetch(upstream));
  assert.equal(await res.text(), "upstream");
});

test("createCompatFetch: refuses unknown protocols if compatibility flag enabled", async (t) => {
  const log = new TestLog();
  let upstream = await useServer(t, (req, res) => res.end("upstream"));
  upstream = new URL(upstream.toString().replace("http:", "random:"));

  let compatFetch = createCompatFetch({
    log,
    compat: new Compatibility(undefined, ["fetch_treats_unknown_protocols_as_http"]),
    globalAsyncIO: true,
  });
  const res = await compatFetch(upstream);
  assert.equal(await res.text(), "upstream");
  assert.equal(upstream.protocol, "random:");
  const warnings = log.logsAtLevel(LogLevel.WARN);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0], _buildUnknownProtocolWarning(upstream));
  assert.match(
    warnings[0],
    /URLs passed to fetch\(\) must begin with either 'http:' or 'https:', not 'random:'/
  );
  assert.doesNotMatch(warnings[0], /fetch\(\) treats WebSockets as a special kind of HTTP request/);

  log.clear();
  compatFetch = createCompatFetch({
    log,
    compat: new Compatibility(undefined, ["fetch_refuses_unknown_protocols"]),
    globalAsyncIO: true,
  });
  await assert.rejects(compatFetch(upstream), {
    name: "TypeError",
    message: `Fetch API cannot load: ${upstream.toString()}`,
  });
  assert.equal(log.logs.length, 0);
});

test("createCompatFetch: refuses unknown protocols by default from 2021-11-10", async () => {
  const fetchOn = createCompatFetch({
    log: new NoOpLog(),
    compat: new Compatibility("2021-11-10"),
    globalAsyncIO: true,
  });
  await assert.rejects(fetchOn("ftp://localhost/"), {
    name: "TypeError",
    message: "Fetch API cannot load: ftp://localhost/",
  });
});

test("createCompatFetch: warns about WebSocket protocols", async () => {
  const log = new TestLog();
  const compatFetch = createCompatFetch(
    { log, compat: new Compatibility(), globalAsyncIO: true },
    async (input) => new Response(String(input))
  );
  const res = await compatFetch("wss://localhost/ws");
  assert.equal(await res.text(), "http://localhost/ws");
  const [warning] = log.logsAtLevel(LogLevel.WARN);
  assert.equal(
    warning,
    "Worker passed an invalid URL to fetch(). URLs passed to fetch() must begin with " +
      "either 'http:' or 'https:', not 'wss:'. Due to a historical bug, any other " +
      "protocol used here will be treated the same as 'http:'. We plan to correct " +
      "this bug in the future, so please update your Worker to use 'http:' or " +
      "'https:' for all fetch() URLs. Note that fetch() treats WebSockets as a " +
      "special kind of HTTP request, therefore WebSockets should use " +
      "'http:'/'https:', not 'ws:'/'wss:'."
  );
});

test("createCompatFetch: recognises http and https as known protocols", async () => {
  const compatFetch = createCompatFetch(
    {
      log: new NoOpLog(),
      compat: new Compatibility(undefined, ["fetch_refuses_unknown_protocols"]),
      globalAsyncIO: true,
    },
    async () => new Response("upstream")
  );
  assert.equal(await (await compatFetch("http://localhost/")).text(), "upstream");
  assert.equal(await (await compatFetch("https://localhost/")).text(), "upstream");
});

test("createCompatFetch: rewrites urls of all types of fetch inputs", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => res.end(`${req.method}:${req.headers["x-key"] ?? ""}:${body}`));
  });
  upstream.protocol = "ftp:";
  const compatFetch = createCompatFetch({
    log: new NoOpLog(),
    compat: new Compatibility(undefined, ["fetch_treats_unknown_protocols_as_http"]),
    globalAsyncIO: true,
  });
  const init = () => ({ method: "POST", headers: { "x-key": "value" }, body: "body" });

  let res = await compatFetch(upstream.toString(), init());
  assert.equal(await res.text(), "POST:value:body");
  res = await compatFetch(upstream, init());
  assert.equal(await res.text(), "POST:value:body");
  res = await compatFetch(new Request(upstream, init()));
  assert.equal(await res.text(), "POST:value:body");
  res = await compatFetch(new BaseRequest(upstream, init()));
  assert.equal(await res.text(), "POST:value:body");
  res = await compatFetch(new Request(upstream, init()), { body: "body2" });
  assert.equal(await res.text(), "POST:value:body2");
  res = await compatFetch(
    new BaseRequest(upstream, { method: "POST", headers: { "x-key": "value" } }),
    { body: "body2" }
  );
  assert.equal(await res.text(), "POST:value:body2");
});

test("createCompatFetch: Responses parse files in FormData as File objects only if compatibility flag enabled", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    res.writeHead(200, { "Content-Type": MULTIPART_CONTENT_TYPE });
    res.end(multipartFileLines().join("\r\n"));
  });
  const log = new NoOpLog();
  let compatFetch = createCompatFetch({ log, compat: new Compatibility(), globalAsyncIO: true });
  let formData = await (await compatFetch(upstream)).formData();
  assert.equal(formData.get("key"), "file contents");

  compatFetch = createCompatFetch({
    log,
    compat: new Compatibility(undefined, ["formdata_parser_supports_files"]),
    globalAsyncIO: true,
  });
  formData = await (await compatFetch(upstream)).formData();
  const file = formData.get("key");
  assert(file instanceof File);
  assert.equal(await file.text(), "file contents");
  assert.equal(file.name, "test.txt");
});

test("createCompatFetch: uses fetchMock from the context as dispatcher", async () => {
  const fetchMock = createFetchMock();
  fetchMock.disableNetConnect();
  fetchMock.get("http://mocked.example.com").intercept({ path: "/" }).reply(201, "mocked");
  const compatFetch = createCompatFetch({
    log: new NoOpLog(),
    compat: new Compatibility(),
    globalAsyncIO: true,
    fetchMock,
  });
  const res = await compatFetch("http://mocked.example.com/");
  assert.equal(res.status, 201);
  assert.equal(await res.text(), "mocked");
  await fetchMock.close();
});

test("_urlFromRequestInput: accepts every kind of input", () => {
  const url = new URL("http://localhost/a");
  assert.equal(_urlFromRequestInput(url), url);
  assert.equal(_urlFromRequestInput("http://localhost/b").href, "http://localhost/b");
  assert.equal(_urlFromRequestInput(new Request("http://localhost/c")).href, "http://localhost/c");
  assert.equal(_urlFromRequestInput(new BaseRequest("http://localhost/d")).href, "http://localhost/d");
  assert.throws(() => _urlFromRequestInput("/relative"), { name: "TypeError" });
});

test("_getURLList: lists the URLs fetch() went through", async (t) => {
  const upstream = await useServer(t, redirectingServerListener);
  const url = new URL("/?n=3", upstream);
  const res = await fetch(url);
  assert.deepEqual(_getURLList(res)?.map(String), [
    `${upstream.origin}/?n=3`,
    `${upstream.origin}/?n=2`,
    `${upstream.origin}/?n=1`,
    `${upstream.origin}/?n=0`,
  ]);
});

// ---------------------------------------------------------------------------
// logResponse
// ---------------------------------------------------------------------------

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

test("logResponse: logs HTTP response with waitUntil", async () => {
  const log = new TestLog();
  await logResponse(log, {
    start: process.hrtime(),
    method: "GET",
    url: "http://localhost",
    status: 404,
    waitUntil: Promise.all([Promise.resolve(42)]),
  });
  const [level, message] = log.logs[0];
  assert.equal(level, LogLevel.NONE);
  assert.match(
    stripAnsi(message),
    /^GET http:\/\/localhost 404 Not Found \(\d+\.\d{2}ms, waitUntil: \d+\.\d{2}ms\)$/
  );
});

test("logResponse: logs response without status", async () => {
  const log = new TestLog();
  await logResponse(log, { start: process.hrtime(), method: "SCHD", url: "http://localhost" });
  const [level, message] = log.logs[0];
  assert.equal(level, LogLevel.NONE);
  assert.match(stripAnsi(message), /^SCHD http:\/\/localhost \(\d+\.\d{2}ms\)$/);
});

test("logResponse: logs waitUntil error", async () => {
  const log = new TestLog();
  log.error = (message) => log.logWithLevel(LogLevel.ERROR, message.toString());
  await logResponse(log, {
    start: process.hrtime(),
    method: "GET",
    url: "http://localhost",
    status: 200,
    waitUntil: Promise.all([Promise.reject(new TypeError("Test"))]),
  });
  assert.equal(log.logs.length, 2);
  let [level, message] = log.logs[0];
  assert.equal(level, LogLevel.ERROR);
  assert.match(message, /^TypeError: Test/);
  [level, message] = log.logs[1];
  assert.equal(level, LogLevel.NONE);
  assert.match(
    stripAnsi(message),
    /^GET http:\/\/localhost 200 OK \(\d+\.\d{2}ms, waitUntil: \d+\.\d{2}ms\)$/
  );
});

test("logResponse: logs CPU time", async () => {
  const log = new TestLog();
  const toLog: Parameters<typeof logResponse>[1] = {
    start: process.hrtime(),
    startCpu: process.cpuUsage(),
    method: "GET",
    url: "http://localhost",
    status: 404,
  };
  await logResponse(log, toLog);
  let [level, message] = log.logs[0];
  assert.equal(level, LogLevel.NONE);
  assert.match(
    stripAnsi(message),
    /^GET http:\/\/localhost 404 Not Found \(\d+\.\d{2}ms\) \(CPU: ~\d+\.\d{2}ms\)$/
  );

  log.clear();
  toLog.waitUntil = Promise.all([Promise.resolve(42)]);
  await logResponse(log, toLog);
  [level, message] = log.logs[0];
  assert.equal(level, LogLevel.NONE);
  assert.match(
    stripAnsi(message),
    /^GET http:\/\/localhost 404 Not Found \(\d+\.\d{2}ms, waitUntil: \d+\.\d{2}ms\) \(CPU: ~\d+\.\d{2}ms, waitUntil: ~\d+\.\d{2}ms\)$/
  );
});
