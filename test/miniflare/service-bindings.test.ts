// Service bindings between workers of one host (features §18.3): the
// Fetcher a worker gets, what the target sees, and how failures surface.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { MiniflareCoreError } from "../../src/plugins/core/errors.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { LogLevel } from "../../src/shared/log.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { useServer } from "./util.js";

/** A parent whose fetch handler is `body` (source text), with `env` bound */
function parent(body: string, serviceBindings: Record<string, unknown>) {
  return {
    log: new TestLog(),
    modules: true,
    script: `export default { async fetch(request, env) { ${body} } }`,
    serviceBindings: serviceBindings as any,
  };
}

const ECHO = `export default { async fetch(request) {
  const body = request.body === null ? "" : await request.text();
  return new Response([request.method, request.url, request.headers.get("X-Test"), body].join(" "), {
    headers: { "X-From": "backend" },
  });
} }`;

test("Miniflare: service bindings: a binding to a mount, by name or by {service, environment}, sends the request it is given", async (t) => {
  const mf = useMiniflare(t, {
    ...parent(
      `const a = await env.BY_NAME.fetch("http://any.host/a?q=1", { method: "POST", body: "one", headers: { "X-Test": "1" } });
      const b = await env.BY_OBJECT.fetch(new Request("http://other.host/b", { headers: { "X-Test": "2" } }));
      return new Response((await a.text()) + "|" + (await b.text()));`,
      { BY_NAME: "backend", BY_OBJECT: { service: "backend", environment: "staging" } }
    ),
    mounts: { backend: { modules: true, script: ECHO } },
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "POST http://any.host/a?q=1 1 one|GET http://other.host/b 2 ");
});

test("Miniflare: service bindings: the binding has only fetch(), which must be called on it", async (t) => {
  const mf = useMiniflare(t, {
    ...parent(
      `const keys = [...Object.keys(env.S), ...Object.getOwnPropertyNames(Object.getPrototypeOf(env.S))];
      const { fetch } = env.S;
      let error;
      try { await fetch("http://x/"); } catch (e) { error = e.constructor.name + ": " + e.message; }
      return new Response(keys.filter((k) => k !== "constructor").join(",") + " " + error);`,
      { S: "backend" }
    ),
    mounts: { backend: { modules: true, script: ECHO } },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "fetch TypeError: Illegal invocation");
});

test("Miniflare: service bindings: the target's errors reach the caller as thrown, not as a 500", async (t) => {
  const mf = useMiniflare(t, {
    ...parent(
      `try { await env.S.fetch("http://x/"); return new Response("no error"); }
      catch (e) { return new Response("caught " + e.message); }`,
      { S: "backend" }
    ),
    mounts: {
      backend: { modules: true, script: `export default { fetch() { throw new Error("backend failed") } }` },
    },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "caught backend failed");
});

test("Miniflare: service bindings: the response's headers are immutable to the caller", async (t) => {
  const mf = useMiniflare(t, {
    ...parent(
      `const res = await env.S.fetch("http://x/");
      let error = "none";
      try { res.headers.set("X-From", "caller"); } catch (e) { error = e.constructor.name + ": " + e.message; }
      // A copy is the caller's own
      const copy = new Response(res.body, res);
      copy.headers.set("X-Copy", "yes");
      return new Response(error + " " + res.headers.get("X-From") + " " + copy.headers.get("X-Copy"));`,
      { S: "backend" }
    ),
    mounts: { backend: { modules: true, script: ECHO } },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "TypeError: immutable backend yes");
});

test("Miniflare: service bindings: a target that doesn't respond passes the request on to the network", async (t) => {
  const server = await useServer(t);
  const mf = useMiniflare(t, {
    ...parent(`return env.S.fetch("${server.url}through?x=1");`, { S: "backend" }),
    mounts: { backend: { script: `addEventListener("fetch", () => {});` } },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "srv:/through?x=1");
  assert.deepEqual(server.requests, ["/through?x=1"]);
});

test("Miniflare: service bindings: a call adds to the pipeline depth (32 deep), not the request depth (16)", async (t) => {
  // The worker calls itself through its own binding, `n` times
  const mf = useMiniflare(t, {
    ...parent(
      `const n = Number(new URL(request.url).searchParams.get("n"));
      if (n === 0) return new Response("bottom");
      try {
        return await env.SELF.fetch("http://localhost/?n=" + (n - 1));
      } catch (e) {
        return new Response("failed at " + n + ": " + e.message, { status: 500 });
      }`,
      { SELF: "self" }
    ),
    name: "self",
  });
  // Deeper than the request depth limit: the request depth doesn't grow
  assert.equal(await (await mf.dispatchFetch("http://localhost/?n=20")).text(), "bottom");
  const res = await mf.dispatchFetch("http://localhost/?n=40");
  const text = await res.text();
  assert.match(text, /^failed at \d+: Subrequest depth limit exceeded\./);
  assert.match(text, /Service bindings can recurse up to 32 times\.$/);
});

test("Miniflare: service bindings: a function binding gets a Request and its Response reaches the worker", async (t) => {
  const seen: string[] = [];
  const mf = useMiniflare(t, {
    ...parent(`const res = await env.CUSTOM.fetch("http://custom/path", { method: "PUT", body: "data" }); return new Response(await res.text());`, {
      CUSTOM: async (request: any) => {
        seen.push(`${request.constructor.name} ${request.method} ${request.url} ${await request.text()}`);
        return new Response("from the function");
      },
    }),
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "from the function");
  assert.deepEqual(seen, ["Request PUT http://custom/path data"]);
});

test("Miniflare: service bindings: a missing service fails the load; a reload that loses one keeps the previous workers serving", async (t) => {
  const options = parent(`return env.S.fetch(request);`, { S: "backend" });
  const missing = useMiniflare(t, { ...options, mounts: { other: { modules: true, script: ECHO } } });
  await assertRejectsMiniflare(
    missing.getPlugins(),
    MiniflareCoreError,
    "ERR_SERVICE_NOT_MOUNTED",
    'Service "backend" for binding "S" not found.\nMake sure "backend" is mounted so Miniflare knows where to find it.'
  );

  const mf = useMiniflare(t, { ...options, mounts: { backend: { modules: true, script: ECHO } } });
  assert.equal(await (await mf.dispatchFetch("http://localhost/x")).text(), "GET http://localhost/x  ");
  await assertRejectsMiniflare(mf.setOptions({ ...options, mounts: {} }), MiniflareCoreError, "ERR_SERVICE_NOT_MOUNTED");
  // Before, the call through the binding waited forever
  assert.equal(await (await mf.dispatchFetch("http://localhost/y")).text(), "GET http://localhost/y  ");
});

test("Miniflare: service bindings: wrangler services in a mounted worker's own wrangler.toml", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "api/wrangler.toml": `
      name = "api"
      services = [{ binding = "TO_DB", service = "db", environment = "production" }]
      [build.upload]
      format = "modules"
      main = "./worker.mjs"
    `,
    "api/dist/worker.mjs": `export default { fetch: (request, env) => env.TO_DB.fetch("http://db" + new URL(request.url).pathname) }`,
  });
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    modules: true,
    script: `export default { fetch: (request, env) => env.TO_API.fetch(request) }`,
    serviceBindings: { TO_API: "api" },
    mounts: {
      // (a string mount from the API is relative to the process, as in Miniflare 2)
      api: path.join(tmp, "api"),
      db: { modules: true, script: `export default { fetch: (request) => new Response("db saw " + new URL(request.url).pathname) }` },
    },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/users")).text(), "db saw /users");
  assert.ok(log.logsAtLevel(LogLevel.WARN).includes("Service bindings are experimental. There may be breaking changes in the future."));
});
