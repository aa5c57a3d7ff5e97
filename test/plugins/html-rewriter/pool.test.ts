// HTMLRewriter's lol-html instances (src/plugins/html-rewriter/pool.ts,
// wasm.ts): transforms running at once each get their own and give exactly
// what they give one at a time; instances go back clean, with flat memory,
// and hold nothing of a finished transform.
import assert from "node:assert/strict";
import { setImmediate } from "node:timers/promises";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { lolHtmlPool } from "../../../src/plugins/html-rewriter/pool.js";
import { HTMLRewriter } from "../../../src/plugins/html-rewriter/rewriter.js";
import type { Element } from "../../../src/plugins/html-rewriter/tokens.js";
import { Response } from "../../../src/standards/http.js";
import { deferred } from "../../helpers/sync.js";

/** A page of `items` items, each an element, some text, a link, a comment */
function page(items: number): string {
  let body = "";
  for (let i = 0; i < items; i++) {
    body +=
      `<div class="item" id="item-${i}"><h2>Item ${i}</h2>` +
      `<p>Text of item ${i} with <a href="/items/${i}">a link</a>.</p><!-- item ${i} --></div>\n`;
  }
  return `<!DOCTYPE html><html><head><title>Items</title></head><body>\n${body}</body></html>`;
}

/**
 * A rewriter for transform `r` with async handlers of every kind. Each
 * handler awaits a few turns (how many depends on `r` and the item), so
 * transforms running together interleave differently everywhere. `first`,
 * if given, is awaited by the first item's handler.
 */
function rewriterFor(r: number, first?: () => Promise<void>, quick = false): HTMLRewriter {
  let item = 0;
  const turns = async (n: number) => {
    // (quick: microtasks only, for the long runs)
    for (let k = 0; k < n % 4; k++) await (quick ? null : setImmediate());
  };
  return new HTMLRewriter()
    .on("div.item", {
      async element(element) {
        const i = item++;
        if (i === 0 && first !== undefined) await first();
        await turns(r + i);
        element.setAttribute("data-r", String(r));
        element.onEndTag(async (end) => {
          await turns(r * 3 + i);
          end.before(`<i>${r}.${i}</i>`, { html: true });
        });
      },
    })
    .on("h2", {
      async text(text) {
        if (!text.text) return;
        const content = text.text;
        await turns(r + content.length);
        text.replace(`${content.toUpperCase()} (${r})`);
      },
    })
    .on("a[href]", {
      element(element) {
        element.setAttribute("href", `https://example.com${element.getAttribute("href")}?r=${r}`);
      },
    })
    .onDocument({
      async comments(comment) {
        await turns(r);
        comment.text = `${comment.text}${r}`;
      },
      async end(end) {
        await setImmediate();
        end.append(`<!-- end ${r} -->`, { html: true });
      },
    });
}

const PAGE = page(60);
const TRANSFORMS = 50;

test("HTMLRewriter: 50 transforms at once, with async handlers, give what they give one at a time", async () => {
  // One at a time
  const expected: string[] = [];
  for (let r = 0; r < TRANSFORMS; r++) {
    expected.push(await rewriterFor(r).transform(new Response(PAGE)).text());
  }
  assert.equal(lolHtmlPool.stats.busy, 0);
  // Each output is its own (r appears in every kind of rewrite)
  assert.match(expected[7], /data-r="7"/);
  assert.match(expected[7], /ITEM 3 \(7\)/);
  assert.match(expected[7], /<i>7\.59<\/i><\/div>/);
  assert.match(expected[7], /<!-- item 5 7-->/);
  assert.match(expected[7], /<!-- end 7 -->$/);
  assert.notEqual(expected[7], expected[8]);

  // All at once. Every transform's first item waits until all 50 are
  // suspended in a handler (so 50 rewriters are mid-call together), then
  // they're let go in reverse order
  let suspended = 0;
  let peakBusy = 0;
  const allSuspended = deferred();
  const resumes: (() => void)[] = [];
  const first = (r: number) => () => {
    const resume = deferred();
    resumes[r] = resume.resolve;
    peakBusy = Math.max(peakBusy, lolHtmlPool.stats.busy);
    if (++suspended === TRANSFORMS) allSuspended.resolve();
    return resume.promise;
  };
  const outputs = Array.from({ length: TRANSFORMS }, (_, r) =>
    rewriterFor(r, first(r)).transform(new Response(PAGE)).text()
  );
  await allSuspended.promise;
  assert.equal(peakBusy, TRANSFORMS);
  for (let r = TRANSFORMS - 1; r >= 0; r--) resumes[r]();
  assert.deepEqual(await Promise.all(outputs), expected);
  assert.equal(lolHtmlPool.stats.busy, 0);
  assert.equal(lolHtmlPool.stats.idle, TRANSFORMS);
});

test("HTMLRewriter: pool: trim() drops idle instances", () => {
  assert(lolHtmlPool.stats.idle > 2);
  lolHtmlPool.trim(2);
  assert.equal(lolHtmlPool.stats.idle, 2);
  lolHtmlPool.trim(0);
  assert.equal(lolHtmlPool.stats.idle, 0);
});

test("HTMLRewriter: memory: one instance serves transforms one after another, and its memory stays flat", async () => {
  lolHtmlPool.trim(0);
  const big = page(200); // ~30 KiB, ~3,000 tokens through handlers
  const transform = async (r: number) => {
    const output = await rewriterFor(r, undefined, true).transform(new Response(big)).text();
    assert.match(output, /<!-- end \d+ -->$/);
  };
  for (let r = 0; r < 10; r++) await transform(r);
  const warm = lolHtmlPool.stats;
  assert.equal(warm.busy, 0);
  assert.equal(warm.idle, 1);
  for (let r = 10; r < 50; r++) await transform(r);
  const after = lolHtmlPool.stats;
  // The same instance (none made, none dropped), its linear memory not
  // grown: every token's box was freed (Miniflare 2's instance grows by
  // hundreds of KB per transform of such a page)
  assert.equal(after.created, warm.created);
  assert.equal(after.discarded, warm.discarded);
  assert.equal(after.idle, 1);
  assert.equal(after.idleMemoryBytes, warm.idleMemoryBytes);
});

test("HTMLRewriter: memory: an idle instance holds nothing of the transform it served", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  v8.setFlagsFromString("--no-expose-gc");

  let handlers: { element(element: Element): void } | undefined = {
    element: (element) => void element.setAttribute("x", "1"),
  };
  const collected = new WeakRef(handlers);
  let rewriter: HTMLRewriter | undefined = new HTMLRewriter().on("p", handlers);
  assert.equal(await rewriter.transform(new Response("<p>x</p>")).text(), '<p x="1">x</p>');
  assert.equal(lolHtmlPool.stats.busy, 0);
  assert(lolHtmlPool.stats.idle > 0);
  handlers = undefined;
  rewriter = undefined;
  await setImmediate();
  gc();
  await setImmediate();
  gc();
  assert.equal(collected.deref(), undefined, "the handlers object was collected");
});

test("HTMLRewriter: memory: an instance an error crossed is dropped, a clean one reused", async () => {
  lolHtmlPool.trim(0);
  const ok = () => new HTMLRewriter().on("p", { element: (e) => void e.setInnerContent("ok") });
  assert.equal(await ok().transform(new Response("<p>x</p>")).text(), "<p>ok</p>");
  const before = lolHtmlPool.stats;
  assert.equal(before.idle, 1);

  const failing = new HTMLRewriter().on("p", {
    async element() {
      await setImmediate();
      throw new Error("Whoops!");
    },
  });
  await assert.rejects(failing.transform(new Response("<p>x</p>")).text(), new Error("Whoops!"));
  const after = lolHtmlPool.stats;
  assert.equal(after.busy, 0);
  assert.equal(after.discarded, before.discarded + 1);
  assert.equal(after.idle, 0);
  // The next transform gets a new instance, which works
  assert.equal(await ok().transform(new Response("<p>x</p>")).text(), "<p>ok</p>");
  assert.equal(lolHtmlPool.stats.created, after.created + 1);
  assert.equal(lolHtmlPool.stats.idle, 1);
});
