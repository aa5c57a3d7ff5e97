// html-rewriter-wasm's module is compiled by the first transform whose body
// is read, not when Miniflare loads or a worker makes a rewriter: cold
// starts don't pay for it. (A file of its own: a fresh process, where no
// transform ran yet.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { lolHtmlPool } from "../../../src/plugins/html-rewriter/pool.js";
import { useMiniflareWithHandler } from "../../helpers/miniflare.js";

test("HTMLRewriter: the wasm module is compiled by the first read of a transformed body", async (t) => {
  const { mf } = useMiniflareWithHandler(
    t,
    `return new HTMLRewriter()
      .on("p", { element(element) { element.setInnerContent("new"); } })
      .transform(new Response("<p>old</p>"));`
  );
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(lolHtmlPool.loaded, false);
  assert.deepEqual(lolHtmlPool.stats, { busy: 0, idle: 0, created: 0, discarded: 0, idleMemoryBytes: 0 });
  assert.equal(await res.text(), "<p>new</p>");
  assert.equal(lolHtmlPool.loaded, true);
  assert.equal(lolHtmlPool.stats.created, 1);
});
