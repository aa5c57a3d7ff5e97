import assert from "node:assert/strict";
import { test } from "node:test";
import { MiniflareCoreError } from "../../src/index.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { useServer } from "./util.js";

test("Miniflare: upstream: dispatched requests are rewritten to the upstream", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(t, `return new Response(request.url);`, {
    upstream: `${server.url}base/`,
  });
  const res = await mf.dispatchFetch("http://localhost:8787/path?q=1");
  assert.equal(await res.text(), `${server.url}base/path?q=1`);
  // The worker didn't fetch anything itself
  assert.deepEqual(server.requests, []);
});

test("Miniflare: upstream: the worker sees the upstream's URL and Host (the multiple-workers docs' example)", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    upstream: "https://example.com/api/",
    script: `export default {
      async fetch(request) {
        return new Response("URL: " + request.url + " Host: " + request.headers.get("Host"));
      }
    }`,
  });
  const res = await mf.dispatchFetch("http://api.mf/todos/update/1", { headers: { Host: "api.mf" } });
  assert.equal(await res.text(), "URL: https://example.com/api/todos/update/1 Host: example.com");
  // Without a Host of its own too, and a port in the upstream is kept
  const withPort = useMiniflare(t, {
    modules: true,
    upstream: "http://127.0.0.1:1234/",
    script: `export default { fetch: (request) => new Response(request.headers.get("Host")) }`,
  });
  assert.equal(await (await withPort.dispatchFetch("http://localhost/")).text(), "127.0.0.1:1234");
});

test("Miniflare: upstream: passThroughOnException forwards the request to the upstream", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.passThroughOnException(); throw new Error("handler failed");`,
    { upstream: `${server.url}base/` }
  );
  const res = await mf.dispatchFetch("http://localhost:8787/page", {
    headers: { "X-Custom": "forwarded" },
  });
  assert.equal(await res.text(), "srv:/base/page");
  assert.equal(server.received.length, 1);
  assert.equal(server.received[0].headers["x-custom"], "forwarded");
});

test("Miniflare: upstream: a pass-through sends the request as it arrived, whatever the handler changed", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.passThroughOnException();
    request.headers.set("X-Custom", "changed by the handler");
    request.headers.delete("X-Other");
    if (request.body !== null) await request.text();
    throw new Error("handler failed");`,
    { upstream: server.url }
  );
  const headers = { "X-Custom": "as sent", "X-Other": "kept" };
  await (await mf.dispatchFetch("http://localhost/get", { headers })).text();
  await (await mf.dispatchFetch("http://localhost/post", { method: "POST", headers, body: "payload" })).text();
  assert.deepEqual(
    server.received.map(({ method, url, headers, body }) => [method, url, headers["x-custom"], headers["x-other"], body]),
    [
      ["GET", "/get", "as sent", "kept", ""],
      ["POST", "/post", "as sent", "kept", "payload"],
    ]
  );
});

test("Miniflare: upstream: with no fetch handler or no response, requests go to the upstream", async (t) => {
  const server = await useServer(t);
  const noHandler = useMiniflare(t, { upstream: server.url, script: "// no listeners" });
  assert.equal(await (await noHandler.dispatchFetch("http://localhost/no-handler")).text(), "srv:/no-handler");
  const noResponse = useMiniflare(t, {
    upstream: server.url,
    script: `addEventListener("fetch", () => {});`,
  });
  const res = await noResponse.dispatchFetch("http://localhost/no-response", {
    method: "POST",
    body: "payload",
  });
  assert.equal(await res.text(), "srv:/no-response");
  assert.deepEqual(
    server.received.map(({ method, url, body }) => [method, url, body]),
    [
      ["GET", "/no-handler", ""],
      ["POST", "/no-response", "payload"],
    ]
  );
});

test("Miniflare: upstream: the worker can fetch the incoming request from the upstream", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(
    t,
    `const res = await fetch(request); return new Response("proxied " + await res.text());`,
    { upstream: server.url }
  );
  assert.equal(await (await mf.dispatchFetch("http://localhost/origin")).text(), "proxied srv:/origin");
});

test("Miniflare: upstream: an invalid upstream URL rejects with ERR_INVALID_UPSTREAM", async (t) => {
  const mf = useMiniflare(t, { upstream: "not a url", script: "// empty" });
  await assertRejectsMiniflare(
    mf.getPlugins(),
    MiniflareCoreError,
    "ERR_INVALID_UPSTREAM",
    'Invalid upstream URL: "not a url". Make sure you\'ve included the protocol.'
  );
});
