import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { rootPath } from "../helpers/fixtures.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { IN_REQUEST_MESSAGE, caught, useServer } from "./util.js";

const execFileAsync = promisify(execFile);

// A host-realm clock, never frozen, to wait for real time to pass inside a
// handler without relying on how long a loop takes
const realNow = () => Date.now();

const WAIT_2MS = `const real0 = env.realNow(); while (env.realNow() < real0 + 2) {}`;

test("Miniflare: context: Date.now() is frozen inside a handler", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const a = Date.now();
     ${WAIT_2MS}
     const b = Date.now();
     const c = new Date().getTime();
     return Response.json({ a, b, c, realAdvanced: env.realNow() > a });`,
    { bindings: { realNow } }
  );
  const before = Date.now();
  const res = await mf.dispatchFetch("http://localhost/");
  const after = Date.now();
  const { a, b, c, realAdvanced } = (await res.json()) as Record<string, any>;
  assert.equal(realAdvanced, true);
  assert.equal(a, b);
  assert.equal(a, c);
  assert.ok(a >= before && a <= after);
});

test("Miniflare: context: Date.now() is frozen in service-worker and scheduled handlers", async (t) => {
  const mf = useMiniflare(t, {
    bindings: { realNow },
    script: `function measure() {
        const a = Date.now();
        const real0 = realNow(); while (realNow() < real0 + 2) {}
        return a === Date.now();
      }
      addEventListener("fetch", (event) => event.respondWith(new Response(String(measure()))));
      addEventListener("scheduled", (event) => event.waitUntil(Promise.resolve(measure())));`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "true");
  assert.deepEqual(await mf.dispatchScheduled(), [true]);
});

test("Miniflare: context: time advances after an awaited fetch", async (t) => {
  // The server answers after a 20ms timer, so real time passes during the fetch
  const server = await useServer(t, { delay: 20 });
  const { mf } = useMiniflareWithHandler(
    t,
    `const a = Date.now();
     const body = await (await fetch(env.URL)).text();
     const b = Date.now();
     ${WAIT_2MS}
     const c = Date.now();
     return Response.json({ a, b, c, body });`,
    { bindings: { URL: server.url, realNow } }
  );
  const { a, b, c, body } = (await (await mf.dispatchFetch("http://localhost/")).json()) as Record<
    string,
    any
  >;
  assert.equal(body, "srv:/");
  assert.ok(b > a, `expected ${b} > ${a}`);
  assert.equal(b, c); // frozen again until the next I/O
});

test("Miniflare: context: actualTime turns off frozen time", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const a = Date.now();
     ${WAIT_2MS}
     const b = Date.now();
     return Response.json({ a, b });`,
    { bindings: { realNow }, actualTime: true }
  );
  const { a, b } = (await (await mf.dispatchFetch("http://localhost/")).json()) as Record<string, number>;
  assert.ok(b >= a + 2, `expected ${b} >= ${a} + 2`);
});

test("Miniflare: context: outside a request, timers, fetch and random throw (service-worker)", async (t) => {
  const server = await useServer(t);
  const mf = useMiniflare(t, {
    bindings: { URL: server.url },
    script: `globalThis.results = {};
      try { setTimeout(() => {}, 1); results.setTimeout = "allowed"; } catch (e) { results.setTimeout = e.message; }
      try { setInterval(() => {}, 1); results.setInterval = "allowed"; } catch (e) { results.setInterval = e.message; }
      try { crypto.getRandomValues(new Uint8Array(8)); results.getRandomValues = "allowed"; } catch (e) { results.getRandomValues = e.message; }
      results.randomUUID = typeof crypto.randomUUID();
      globalThis.fetchResult = (async () => fetch(URL))().then(() => "allowed", (e) => e.message);
      globalThis.generateKeyResult = (async () => crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]))()
        .then(() => "allowed", (e) => e.message);
      addEventListener("fetch", (event) => event.respondWith(new Response("ok")));`,
  });
  const globalScope = await mf.getGlobalScope();
  assert.deepEqual({ ...globalScope.results }, {
    setTimeout: IN_REQUEST_MESSAGE,
    setInterval: IN_REQUEST_MESSAGE,
    getRandomValues: IN_REQUEST_MESSAGE,
    randomUUID: "string",
  });
  assert.equal(await globalScope.fetchResult, IN_REQUEST_MESSAGE);
  assert.equal(await globalScope.generateKeyResult, IN_REQUEST_MESSAGE);
  assert.deepEqual(server.requests, []);
});

test("Miniflare: context: outside a request, timers, fetch and random throw (modules)", async (t) => {
  const server = await useServer(t);
  const mf = useMiniflare(t, {
    modules: true,
    globals: { URL_GLOBAL: server.url },
    script: `const attempt = async (f) => { try { await f(); return "allowed"; } catch (e) { return e.name + ": " + e.message; } };
      export const results = {
        setTimeout: await attempt(() => setTimeout(() => {}, 1)),
        fetch: await attempt(() => fetch(URL_GLOBAL)),
        getRandomValues: await attempt(() => crypto.getRandomValues(new Uint8Array(8))),
      };
      export default {
        async fetch() {
          return Response.json({
            setTimeout: await attempt(() => new Promise((resolve) => setTimeout(resolve, 1))),
            fetch: await attempt(() => fetch(URL_GLOBAL).then((r) => r.text())),
            getRandomValues: await attempt(() => crypto.getRandomValues(new Uint8Array(8))),
          });
        },
      };`,
  });
  const { results } = await mf.getModuleExports();
  assert.deepEqual({ ...results }, {
    setTimeout: `Error: ${IN_REQUEST_MESSAGE}`,
    fetch: `Error: ${IN_REQUEST_MESSAGE}`,
    getRandomValues: `Error: ${IN_REQUEST_MESSAGE}`,
  });
  assert.deepEqual(server.requests, []);
  // Inside a handler they're all allowed
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    setTimeout: "allowed",
    fetch: "allowed",
    getRandomValues: "allowed",
  });
  assert.deepEqual(server.requests, ["/"]);
});

test("Miniflare: context: globalTimers, globalAsyncIO and globalRandom allow them outside a request", async (t) => {
  const server = await useServer(t);
  const mf = useMiniflare(t, {
    modules: true,
    globalTimers: true,
    globalAsyncIO: true,
    globalRandom: true,
    globals: { URL_GLOBAL: server.url },
    script: `export const timer = await new Promise((resolve) => setTimeout(() => resolve("timer fired"), 1));
      export const body = await (await fetch(URL_GLOBAL + "top-level")).text();
      export const random = crypto.getRandomValues(new Uint8Array(8)).length;
      export default {};`,
  });
  const exports = await mf.getModuleExports();
  assert.equal(exports.timer, "timer fired");
  assert.equal(exports.body, "srv:/top-level");
  assert.equal(exports.random, 8);
});

test("Miniflare: context: each global option only lifts its own restriction", async (t) => {
  const mf = useMiniflare(t, {
    globalRandom: true,
    script: `globalThis.results = {};
      try { crypto.getRandomValues(new Uint8Array(8)); results.random = "allowed"; } catch (e) { results.random = e.message; }
      try { setTimeout(() => {}, 1); results.timer = "allowed"; } catch (e) { results.timer = e.message; }`,
  });
  const { results } = await mf.getGlobalScope();
  assert.deepEqual({ ...results }, { random: "allowed", timer: IN_REQUEST_MESSAGE });
  await mf.setOptions({ globalRandom: false, globalTimers: true });
  const { results: after } = await mf.getGlobalScope();
  assert.deepEqual({ ...after }, { random: IN_REQUEST_MESSAGE, timer: "allowed" });
});

const SUBREQUESTS = (n: number) => `let count = 0;
  try {
    for (; count < ${n}; count++) await (await fetch(env.URL)).text();
    return Response.json({ count });
  } catch (e) {
    return Response.json({ count, name: e.name, message: e.message });
  }`;

test("Miniflare: context: the 51st fetch in one request throws (bundled)", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(t, SUBREQUESTS(60), { bindings: { URL: server.url } });
  const expected = {
    count: 50,
    name: "Error",
    message:
      "Too many subrequests. Workers can make up to 50 subrequests per request.\nA subrequest is a call to fetch(), a redirect, or a call to any Cache API method.",
  };
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), expected);
  assert.equal(server.requests.length, 50);
  // The limit is per request
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), expected);
  assert.equal(server.requests.length, 100);
});

test("Miniflare: context: usageModel unbound allows 1000 fetches per request", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(t, SUBREQUESTS(1001), {
    bindings: { URL: server.url },
    usageModel: "unbound",
  });
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    count: 1000,
    name: "Error",
    message:
      "Too many subrequests. Workers can make up to 1000 subrequests per request.\nA subrequest is a call to fetch(), a redirect, or a call to any Cache API method.",
  });
});

test("Miniflare: context: the subrequest limit applies to scheduled events", async (t) => {
  const server = await useServer(t);
  const mf = useMiniflare(t, {
    modules: true,
    bindings: { URL: server.url },
    script: `export default {
      async scheduled(controller, env, ctx) {
        let count = 0;
        try { for (; count < 51; count++) await fetch(env.URL); }
        catch (e) { return count + ": " + e.message.split("\\n")[0]; }
        return "no limit";
      }
    }`,
  });
  assert.deepEqual(await mf.dispatchScheduled(), [
    "50: Too many subrequests. Workers can make up to 50 subrequests per request.",
  ]);
});

test("Miniflare: context: MINIFLARE_SUBREQUEST_LIMIT overrides the limit (child process)", async (t) => {
  const tmp = await useTmp(t);
  const entry = pathToFileURL(path.join(rootPath, "dist", "src", "index.js")).href;
  await writeFiles(tmp, {
    "child.mjs": `import http from "node:http";
      const { Miniflare } = await import(${JSON.stringify(entry)});
      const server = http.createServer((req, res) => res.end("ok"));
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      const mf = new Miniflare({
        modules: true,
        bindings: { URL: "http://127.0.0.1:" + server.address().port + "/" },
        script: \`export default {
          async fetch(request, env) {
            let count = 0;
            try {
              for (; count < 60; count++) await (await fetch(env.URL)).text();
              return Response.json({ count });
            } catch (e) {
              return Response.json({ count, message: e.message });
            }
          }
        }\`,
      });
      const res = await mf.dispatchFetch("http://localhost/");
      process.stdout.write(JSON.stringify(await res.json()));
      await mf.dispose();
      server.closeAllConnections();
      server.close();`,
  });
  const run = async (limit: string) => {
    const { stdout } = await execFileAsync(process.execPath, [path.join(tmp, "child.mjs")], {
      env: { ...process.env, MINIFLARE_SUBREQUEST_LIMIT: limit },
    });
    return JSON.parse(stdout);
  };
  const [two, unlimited, none] = await Promise.all([run("2"), run("-1"), run("0")]);
  assert.deepEqual(two, {
    count: 2,
    message:
      "Too many subrequests. Workers can make up to 2 subrequests per request.\nA subrequest is a call to fetch(), a redirect, or a call to any Cache API method.",
  });
  assert.deepEqual(unlimited, { count: 60 });
  assert.equal(none.count, 0);
  assert.match(none.message, /^Too many subrequests\. Workers can make up to 0 subrequests per request\./);
});

test("Miniflare: context: fetch inside waitUntil after responding still works", async (t) => {
  const server = await useServer(t);
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.waitUntil((async () => { await null; return (await fetch(env.URL + "later")).text(); })());
     return new Response("responded");`,
    { bindings: { URL: server.url } }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "responded");
  assert.deepEqual(await res.waitUntil(), ["srv:/later"]);
});

test("Miniflare: context: timers work inside a handler", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const order = [];
     await new Promise((resolve) => { setTimeout(() => { order.push("timeout"); resolve(); }, 1); order.push("scheduled"); });
     let ticks = 0;
     await new Promise((resolve) => { const id = setInterval(() => { if (++ticks === 3) { clearInterval(id); resolve(); } }, 1); });
     await scheduler.wait(1);
     return Response.json({ order, ticks });`
  );
  assert.deepEqual(await (await mf.dispatchFetch("http://localhost/")).json(), {
    order: ["scheduled", "timeout"],
    ticks: 3,
  });
});

test("Miniflare: context: an error outside a request has the exact restriction message", async (t) => {
  const mf = useMiniflare(t, {
    script: `globalThis.make = () => setTimeout(() => {}, 0);`,
  });
  const globalScope = await mf.getGlobalScope();
  const error = await caught(() => globalScope.make());
  assert.equal(error.message, IN_REQUEST_MESSAGE);
});
