// HTMLRewriter inside workers (features §11, §6's
// html_rewriter_treats_esi_include_as_void_tag): the global, compatibility
// flags, handlers in the worker's realm and request, the blog's examples.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HTMLRewriterPlugin } from "../../../src/plugins/html-rewriter/plugin.js";
import { lolHtmlPool } from "../../../src/plugins/html-rewriter/pool.js";
import { useMiniflare, useMiniflareWithHandler } from "../../helpers/miniflare.js";
import { useServer } from "../../helpers/http.js";

test("HTMLRewriterPlugin: declares no options", () => {
  assert.equal(HTMLRewriterPlugin.prototype.opts, undefined);
});

test("HTMLRewriterPlugin: setup: workers get the HTMLRewriter class", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const rewriter = new HTMLRewriter();
    return Response.json({
      name: HTMLRewriter.name,
      isInstance: rewriter instanceof HTMLRewriter,
      own: Object.getOwnPropertyNames(rewriter),
      prototype: Object.getOwnPropertyNames(Object.getPrototypeOf(rewriter)).sort(),
    });`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    name: "HTMLRewriter",
    isInstance: true,
    own: [],
    prototype: ["constructor", "on", "onDocument", "transform"],
  });
});

test("HTMLRewriterPlugin: a worker returns a transformed response", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const upstream = new Response('<h1 class="title">Hello</h1><p>world</p>', {
      status: 201,
      headers: { "Content-Type": "text/html", "Content-Length": "37" },
    });
    return new HTMLRewriter()
      .on("h1.title", { element(element) { element.setAttribute("id", "top"); } })
      .on("p", { text(text) { if (text.text) text.replace(text.text.toUpperCase()); } })
      .onDocument({ end(end) { end.append("<footer>!</footer>", { html: true }); } })
      .transform(upstream);`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("Content-Type"), "text/html");
  assert.equal(res.headers.has("Content-Length"), false);
  assert.equal(await res.text(), '<h1 class="title" id="top">Hello</h1><p>WORLD</p><footer>!</footer>');
});

test("HTMLRewriterPlugin: a service worker has HTMLRewriter too", async (t) => {
  const mf = useMiniflare(t, {
    script: `addEventListener("fetch", (event) => {
      event.respondWith(new HTMLRewriter()
        .on("p", { element(element) { element.setInnerContent("service worker"); } })
        .transform(new Response("<p>old</p>")));
    });`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "<p>service worker</p>");
});

test("HTMLRewriterPlugin: async handlers in the worker, awaiting its timers", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `return new HTMLRewriter()
      .on("p", {
        async element(element) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          element.append(" append");
          await scheduler.wait(1);
          element.setAttribute("waited", "");
        },
      })
      .transform(new Response("<p>test</p>"));`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), '<p waited="">test append</p>');
});

for (const [flags, expected] of [
  [[], "<span>I"],
  [["html_rewriter_treats_esi_include_as_void_tag"], "<span>I<span>x</span></span>"],
] as const) {
  test(`HTMLRewriterPlugin: <esi:include> with compatibility flags [${flags.join(", ")}]`, async (t) => {
    const { mf } = useMiniflareWithHandler(
      t,
      `return new HTMLRewriter()
        .on("esi\\\\:include", { element(element) { element.replace("I"); } })
        .transform(new Response('<span><esi:include src="a"><span>x</span></span>'));`,
      { compatibilityFlags: [...flags] }
    );
    const res = await mf.dispatchFetch("http://localhost/");
    assert.equal(await res.text(), expected);
  });
}

test("HTMLRewriterPlugin: a reload that turns the ESI flag on changes HTMLRewriter", async (t) => {
  const script = `export default { fetch: () => new HTMLRewriter()
    .on("esi\\\\:include", { element(element) { element.replace("I"); } })
    .transform(new Response('<span><esi:include src="a"><span>x</span></span>')) }`;
  const mf = useMiniflare(t, { modules: true, script });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "<span>I");
  await mf.setOptions({ compatibilityFlags: ["html_rewriter_treats_esi_include_as_void_tag"] });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "<span>I<span>x</span></span>");
});

for (const [compatibilityDate, ownGetters] of [
  [undefined, true],
  ["2022-01-31", false],
] as const) {
  const title = `HTMLRewriterPlugin: transformed responses get own getters as others do (date ${compatibilityDate})`;
  test(title, async (t) => {
    const { mf } = useMiniflareWithHandler(
      t,
      `const transformed = new HTMLRewriter().transform(new Response("<p>x</p>"));
      return Response.json({
        transformed: Object.keys(transformed).includes("status"),
        plain: Object.keys(new Response("x")).includes("status"),
      });`,
      { compatibilityDate }
    );
    const res = await mf.dispatchFetch("http://localhost/");
    assert.deepEqual(await res.json(), { transformed: ownGetters, plain: ownGetters });
  });
}

test("HTMLRewriterPlugin: an unsupported selector's TypeError is a TypeError in the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const res = new HTMLRewriter()
      .on("p:last-child", { element(element) { element.setInnerContent("new"); } })
      .transform(new Response("<p>old</p>"));
    try {
      await res.text();
      return new Response("read");
    } catch (error) {
      return new Response(String(error instanceof TypeError) + " " + error.message);
    }`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "true Parser error: Unsupported pseudo-class or pseudo-element in selector.");
});

test("HTMLRewriterPlugin: a handler's error fails reading the response outside the worker", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `return new HTMLRewriter()
      .on("p", { async element() { await scheduler.wait(1); throw new RangeError("Later!"); } })
      .transform(new Response("<p>x</p>"));`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  await assert.rejects(res.text(), (error: Error) => error.name === "RangeError" && error.message === "Later!");
  // The next request is served as usual
  const next = await mf.dispatchFetch("http://localhost/");
  await assert.rejects(next.text(), (error: Error) => error.message === "Later!");
  assert.equal(lolHtmlPool.stats.busy, 0);
});

// The blog post introducing Miniflare 2 (seed 002): "class UserElementHandler
// { async element(node) { const response = await fetch("/user"); ..." A
// handler class, async, fetching. The response body is read here, after the
// worker's handler returned: the fetch still runs in the worker's request.
test("HTMLRewriterPlugin: blog example: a class handler whose async element() fetches", async (t) => {
  const upstream = await useServer(t, (req, res) => {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ name: "Ada", path: req.url }));
  });
  const { mf } = useMiniflareWithHandler(
    t,
    `class UserElementHandler {
      constructor(origin) { this.origin = origin; }
      async element(node) {
        const response = await fetch(new URL("/user", this.origin));
        const user = await response.json();
        node.setInnerContent(user.name + " (" + user.path + ")");
      }
    }
    return new HTMLRewriter()
      .on("span.user", new UserElementHandler(env.ORIGIN))
      .transform(new Response('<p>Hello <span class="user">?</span></p>'));`,
    { bindings: { ORIGIN: upstream.href } }
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), '<p>Hello <span class="user">Ada (/user)</span></p>');
});

test('HTMLRewriterPlugin: blog example: fetch("/user") as written fails the read with "Invalid URL"', async (t) => {
  // (A relative URL is no more fetchable in production: Workers have no base URL)
  const { mf } = useMiniflareWithHandler(
    t,
    `class UserElementHandler {
      async element(node) {
        const response = await fetch("/user");
        node.setInnerContent(await response.text());
      }
    }
    return new HTMLRewriter().on("p", new UserElementHandler()).transform(new Response("<p>x</p>"));`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  await assert.rejects(res.text(), (error: Error) => error instanceof TypeError && /Invalid URL/.test(error.message));
  assert.equal(lolHtmlPool.stats.busy, 0);
});

test("HTMLRewriterPlugin: 50 requests at once, each suspending in async handlers, get their own output", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `const r = new URL(request.url).searchParams.get("r");
    let items = "";
    for (let i = 0; i < 20; i++) items += "<li>" + i + "</li>";
    return new HTMLRewriter()
      .on("li", {
        async element(element) {
          await scheduler.wait(Number(r) % 3);
          element.setAttribute("r", r);
        },
        async text(text) {
          if (text.text) { await null; text.after("." + r); }
        },
      })
      .transform(new Response("<ul>" + items + "</ul>"));`
  );
  const expected = (r: number) => {
    let items = "";
    for (let i = 0; i < 20; i++) items += `<li r="${r}">${i}.${r}</li>`;
    return `<ul>${items}</ul>`;
  };
  const outputs = await Promise.all(
    Array.from({ length: 50 }, async (_, r) => (await mf.dispatchFetch(`http://localhost/?r=${r}`)).text())
  );
  assert.deepEqual(
    outputs,
    Array.from({ length: 50 }, (_, r) => expected(r))
  );
  assert.equal(lolHtmlPool.stats.busy, 0);
});
