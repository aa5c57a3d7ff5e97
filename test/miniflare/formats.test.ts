import assert from "node:assert/strict";
import { test } from "node:test";
import { Request, Response } from "../../src/index.js";
import { useMiniflare, useMiniflareWithHandler } from "../helpers/miniflare.js";

/** Values from the worker's realm, as host-realm JSON values */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

test("Miniflare: service-worker: dispatches fetch events to addEventListener listeners", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      const url = new URL(event.request.url);
      event.respondWith(new Response(event.request.method + " " + url.pathname + " " + GREETING));
    });`,
    bindings: { GREETING: "hello" },
  });
  const res = await mf.dispatchFetch("http://localhost:8787/path?q=1");
  assert.ok(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "GET /path hello");
});

test("Miniflare: service-worker: bindings are globals, and first respondWith wins", async (t) => {
  const mf = useMiniflare(t, {
    script: `
      addEventListener("fetch", (event) => {
        if (new URL(event.request.url).pathname === "/first") {
          event.respondWith(new Response("first:" + typeof KEY + ":" + (self.KEY === KEY)));
        }
      });
      addEventListener("fetch", (event) => event.respondWith(new Response("second:" + KEY)));
    `,
    bindings: { KEY: "value" },
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/first")).text(), "first:string:true");
  assert.equal(await (await mf.dispatchFetch("http://localhost/other")).text(), "second:value");
  const globalScope = await mf.getGlobalScope();
  assert.equal(globalScope.KEY, "value");
  assert.deepEqual({ ...(await mf.getBindings()) }, { KEY: "value" });
});

test("Miniflare: service-worker: async respondWith with a Promise<Response>", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.respondWith((async () => {
        const body = await event.request.text();
        return new Response(body.toUpperCase(), { status: 201, headers: { "X-Echo": "1" } });
      })());
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: "shout" });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("X-Echo"), "1");
  assert.equal(await res.text(), "SHOUT");
});

test("Miniflare: modules: dispatches fetch to the default export with env and ctx", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      async fetch(request, env, ctx) {
        return Response.json({
          url: request.url,
          key: env.KEY,
          thisIsDefault: this.marker === "default",
          ctx: [typeof ctx.waitUntil, typeof ctx.passThroughOnException],
        });
      },
      marker: "default",
    }`,
    bindings: { KEY: "value" },
  });
  const res = await mf.dispatchFetch("http://localhost:8787/a");
  assert.deepEqual(await res.json(), {
    url: "http://localhost:8787/a",
    key: "value",
    thisIsDefault: true,
    ctx: ["function", "function"],
  });
  assert.deepEqual({ ...(await mf.getBindings()) }, { KEY: "value" });
});

test("Miniflare: modules: reading a binding as a global throws a ReferenceError pointing at env", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { return new Response(String(KEY)); } catch (e) { return new Response(e.name + "|" + e.message); }`,
    { bindings: { KEY: "value" } }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(
    await res.text(),
    "ReferenceError|KEY is not defined.\nAttempted to access binding using global in modules.\nYou must use the 2nd `env` parameter passed to exported handlers/Durable Object constructors, or `context.env` with Pages Functions."
  );
});

test("Miniflare: modules: addEventListener for fetch only warns", async (t) => {
  const { mf, log } = useMiniflareWithHandler(t, `return new Response("exported");`, {
    script: `addEventListener("fetch", (e) => e.respondWith(new Response("listener")));
      export default { fetch() { return new Response("exported"); } }`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "exported");
  assert.ok(
    log.logs.some(([, message]) =>
      message.includes(
        "When using module syntax, the 'fetch' event handler should be declared as an exported function on the root module as opposed to using the global addEventListener()."
      )
    )
  );
});

test("Miniflare: waitUntil: Response#waitUntil() resolves to the waitUntil results (service-worker)", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.waitUntil(Promise.resolve(1));
      event.waitUntil((async () => { await null; return "two"; })());
      event.waitUntil(3);
      event.respondWith(new Response("body"));
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "body");
  assert.deepEqual(await res.waitUntil(), [1, "two", 3]);
});

test("Miniflare: waitUntil: Response#waitUntil() resolves to the waitUntil results (modules)", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.waitUntil(Promise.resolve("a"));
     ctx.waitUntil(new Promise((resolve) => setTimeout(() => resolve("b"), 1)));
     return new Response("body");`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "body");
  assert.deepEqual(await res.waitUntil(), ["a", "b"]);
});

test("Miniflare: waitUntil: waitUntil() is an empty array without waitUntil calls", async (t) => {
  const { mf } = useMiniflareWithHandler(t, `return new Response("none");`);
  const res = await mf.dispatchFetch("http://localhost/");
  await res.arrayBuffer();
  assert.deepEqual(await res.waitUntil(), []);
});

test("Miniflare: waitUntil: nested waitUntil calls made while waiting are awaited too", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `ctx.waitUntil((async () => {
       await null;
       ctx.waitUntil((async () => {
         await null;
         ctx.waitUntil(Promise.resolve("innermost"));
         return "inner";
       })());
       return "outer";
     })());
     return new Response("ok");`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  await res.text();
  assert.deepEqual(await res.waitUntil(), ["outer", "inner", "innermost"]);
});

test("Miniflare: waitUntil: nested waitUntil in service-worker format", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.waitUntil((async () => {
        await null;
        event.waitUntil(Promise.resolve(2));
        return 1;
      })());
      event.respondWith(new Response("ok"));
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  await res.text();
  assert.deepEqual(await res.waitUntil(), [1, 2]);
});

test("Miniflare: dispatchScheduled: service-worker scheduled listeners, with defaults", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("scheduled", (event) => {
      event.waitUntil(Promise.resolve({
        scheduledTime: event.scheduledTime,
        cron: event.cron,
        type: event.type,
      }));
    });`,
  });
  const before = Date.now();
  const results = await mf.dispatchScheduled();
  const after = Date.now();
  assert.equal(results.length, 1);
  const [result] = results as { scheduledTime: number; cron: string; type: string }[];
  assert.equal(typeof result.scheduledTime, "number");
  assert.ok(result.scheduledTime >= before && result.scheduledTime <= after);
  assert.equal(result.cron, "");
  assert.equal(result.type, "scheduled");

  assert.deepEqual(plain(await mf.dispatchScheduled(1000, "30 * * * *")), [
    { scheduledTime: 1000, cron: "30 * * * *", type: "scheduled" },
  ]);
});

test("Miniflare: dispatchScheduled: modules scheduled(controller, env, ctx) and its return value", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      async scheduled(controller, env, ctx) {
        ctx.waitUntil(Promise.resolve(controller.constructor.name));
        ctx.waitUntil(Promise.resolve([controller.scheduledTime, controller.cron]));
        ctx.waitUntil(Promise.resolve(env.KEY));
        return "returned";
      }
    }`,
    bindings: { KEY: "value" },
  });
  assert.deepEqual(plain(await mf.dispatchScheduled(5000, "0 0 * * *")), [
    "ScheduledController",
    [5000, "0 0 * * *"],
    "value",
    "returned",
  ]);
  const before = Date.now();
  const [, [time, cron]] = (await mf.dispatchScheduled()) as [string, [number, string]];
  assert.ok(time >= before);
  assert.equal(cron, "");
});

test("Miniflare: dispatchScheduled: no scheduled handler resolves to an empty array", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch: () => new Response("") }`,
  });
  assert.deepEqual(await mf.dispatchScheduled(), []);
  const sw = useMiniflare(t, { script: "// nothing" });
  assert.deepEqual(await sw.dispatchScheduled(), []);
});

test("Miniflare: dispatchFetch: accepts a Request object", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `return Response.json({
       method: request.method,
       url: request.url,
       header: request.headers.get("X-Test"),
       body: await request.text(),
       cf: request.cf ?? null,
     });`
  );
  const request = new Request("http://localhost:8787/req?x=1", {
    method: "POST",
    headers: { "X-Test": "from-request" },
    body: "request body",
    cf: { country: "GB" } as any,
  });
  const res = await mf.dispatchFetch(request);
  assert.deepEqual(await res.json(), {
    method: "POST",
    url: "http://localhost:8787/req?x=1",
    header: "from-request",
    body: "request body",
    cf: { country: "GB" },
  });
});

test("Miniflare: dispatchFetch: accepts a URL string or URL with init", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `return new Response(request.method + " " + request.url + " " + request.headers.get("X-Test") + " " + await request.text());`
  );
  let res = await mf.dispatchFetch("http://localhost/init", {
    method: "PUT",
    headers: { "X-Test": "from-init" },
    body: "init body",
  });
  assert.equal(await res.text(), "PUT http://localhost/init from-init init body");
  res = await mf.dispatchFetch(new URL("http://localhost/url-object"));
  assert.equal(await res.text(), "GET http://localhost/url-object null ");
});

test("Miniflare: dispatchFetch: incoming request headers are immutable inside the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `try { request.headers.set("X-New", "1"); return new Response("mutated"); }
     catch (e) { return new Response(e.name + ": " + e.message); }`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "TypeError: immutable");
});

test("Miniflare: dispatchFetch: many requests to the same instance are independent", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const n = new URL(request.url).searchParams.get("n");
     ctx.waitUntil(Promise.resolve(Number(n)));
     return new Response("n=" + n);`
  );
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => mf.dispatchFetch(`http://localhost/?n=${i}`))
  );
  for (const [i, res] of responses.entries()) {
    assert.equal(await res.text(), `n=${i}`);
    assert.deepEqual(await res.waitUntil(), [i]);
  }
});
