// Scenario: HTMLRewriter throughput, one at a time and 50 at once.
// Child: a modules worker answering every request with a 100 KiB page (a
// string made once, at startup) through `new HTMLRewriter()` with three
// handlers: `a[href]` elements get an absolute href (sync), `h2` text is
// upper-cased (sync), and `div.item` elements get `data-r` set to the
// request's `?r=` (async: the transform suspends in wasm once per item; the
// first item's handler waits for a 1 ms timer, the others for a
// microtask). Each body is read in full and compared with the output
// expected for its `r` (the first response, for r=0, with its `data-r`
// values swapped), so outputs mixed between transforms are caught.
//   1. sequential: `warmup` then `requests` dispatchFetch() calls one after
//      another;
//   2. concurrent: `rounds` rounds of `concurrency` dispatchFetch() calls at
//      once (Promise.all), on the same instance, after the sequential phase.
// Miniflare 2 runs every rewriter in one wasm instance (sharing its asyncify
// state); ours gives each transform running its own. A side that fails, or
// gives a request another's output, at 50 at once gets no concurrent figure
// (its column shows —), a note saying what happened, and 0 for "every
// output correct". Miniflare 2 can also crash its process from a promise's
// finally() after a handler's error: such a crash is caught and reported.
import { createHash } from "node:crypto";
import {
  isMain, childArgs, loadMiniflare, finish, runChild, note, measureSequential,
} from "../lib/child.mjs";

export const meta = {
  name: "html-rewriter",
  order: 45,
  description:
    "a modules worker transforming a 100 KiB page with three handlers (two sync, one async " +
    "per `div.item`): `requests` sequential dispatchFetch() (after `warmup`), then `rounds` " +
    "rounds of `concurrency` at once; every body read and checked against the output expected " +
    "for its request",
  runs: 3,
  warmupRuns: 0, // the child warms up with `warmup` requests
  timeoutMs: 180_000,
  params: { pageKiB: 100, requests: 200, warmup: 20, concurrency: 50, rounds: 4 },
  metrics: [
    {
      key: "seq_rps", label: "100 KiB rewrite, sequential", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    { key: "seq_p50_us", label: "sequential latency p50", unit: "µs", better: "lower" },
    {
      key: "conc_rps", label: "100 KiB rewrite, 50 at once", unit: "req/s",
      better: "higher", target: { op: ">=", ratio: 2 },
    },
    {
      key: "conc_correct", label: "50 at once: every output correct", unit: "1 = yes",
      better: "higher", target: { op: ">=", value: 1 }, reference: true,
    },
    { key: "rss_mb", label: "RSS after the runs", unit: "MB", better: "lower" },
  ],
};

/** The page: items of a heading, a paragraph with a link, and a comment */
function buildPage(kib) {
  const items = [];
  let size = 0;
  for (let i = 0; size < kib * 1024 - 200; i++) {
    const item =
      `<div class="item" id="item-${i}"><h2>Item number ${i}</h2>` +
      `<p>Some text about item ${i}, with <a href="/items/${i}">a link</a> and more words.</p>` +
      `<!-- item ${i} --></div>\n`;
    items.push(item);
    size += item.length;
  }
  return `<!DOCTYPE html><html><head><title>Items</title></head><body>\n${items.join("")}</body></html>`;
}

const SCRIPT = (page) => `
const PAGE = ${JSON.stringify(page)};
export default {
  fetch(request) {
    const r = new URL(request.url).searchParams.get("r");
    return new HTMLRewriter()
      .on("a[href]", {
        element(element) {
          element.setAttribute("href", "https://example.com" + element.getAttribute("href"));
        },
      })
      .on("h2", {
        text(text) {
          if (text.text) text.replace(text.text.toUpperCase());
        },
      })
      .on("div.item", {
        async element(element) {
          // The first item waits for a timer (as a handler fetching something
          // would), the others only for a microtask: each suspends the rewriter
          if (element.getAttribute("id") === "item-0") await new Promise((resolve) => setTimeout(resolve, 1));
          element.setAttribute("data-r", r);
        },
      })
      .transform(new Response(PAGE, { headers: { "Content-Type": "text/html" } }));
  },
};`;

function expectedFor(reference, r) {
  return reference.replaceAll('data-r="0"', `data-r="${r}"`);
}

async function main() {
  const { modulePath, params } = childArgs(meta.params);
  const impl = process.env.BENCH_IMPL;
  // Miniflare 2 can crash the process freeing a rewriter after a handler's
  // error (an exception thrown in a promise's finally): keep it reportable
  let crash;
  process.on("uncaughtException", (error) => {
    crash ??= error;
  });
  const { Miniflare } = await loadMiniflare(modulePath);
  const page = buildPage(params.pageKiB);
  const mf = new Miniflare({ modules: true, script: SCRIPT(page) });

  const reference = await (await mf.dispatchFetch("http://localhost/?r=0")).text();
  const items = (page.match(/class="item"/g) ?? []).length;
  if ((reference.match(/data-r="0"/g) ?? []).length !== items || !reference.includes("ITEM NUMBER 1<")) {
    throw new Error(`unexpected output: ${JSON.stringify(reference.slice(0, 300))}`);
  }
  note(
    `page ${(page.length / 1024).toFixed(1)} KiB with ${items} items; output sha256 (r=0) ` +
      createHash("sha256").update(reference).digest("hex").slice(0, 16)
  );

  const seq = await measureSequential({
    warmup: params.warmup,
    requests: params.requests,
    request: async (i) => {
      const r = i + 1;
      const body = await (await mf.dispatchFetch(`http://localhost/?r=${r}`)).text();
      return body === expectedFor(reference, r);
    },
  });

  // 50 at once, `rounds` times
  let concMs = 0;
  let correct = 1;
  let failure;
  for (let round = 0; round < params.rounds && failure === undefined; round++) {
    const start = performance.now();
    const base = 1000 * (round + 1);
    const settled = await Promise.allSettled(
      Array.from({ length: params.concurrency }, async (_, i) => {
        const r = base + i;
        const body = await (await mf.dispatchFetch(`http://localhost/?r=${r}`)).text();
        return body === expectedFor(reference, r);
      })
    );
    concMs += performance.now() - start;
    const rejected = settled.filter((s) => s.status === "rejected");
    const wrong = settled.filter((s) => s.status === "fulfilled" && !s.value).length;
    if (rejected.length > 0 || wrong > 0 || crash !== undefined) {
      correct = 0;
      const reason = rejected[0]?.reason ?? crash;
      failure =
        `${impl}: round ${round + 1} of ${params.concurrency} at once: ` +
        `${rejected.length} failed, ${wrong} with another request's output` +
        (reason ? ` (first error: ${String(reason?.message ?? reason).split("\n")[0]})` : "");
    }
  }
  if (failure !== undefined) note(failure);

  const rss = process.memoryUsage().rss;
  try {
    await mf.dispose();
  } catch (error) {
    note(`${impl}: dispose() failed after the concurrent phase: ${error?.message ?? error}`);
  }
  const result = {
    seq_rps: seq.rps,
    seq_p50_us: seq.p50_us,
    seq_p99_us: seq.p99_us,
    conc_correct: correct,
    rss_mb: rss / 1048576,
  };
  if (correct) result.conc_rps = (params.concurrency * params.rounds) / (concMs / 1000);
  finish(result);
  if (crash !== undefined) setTimeout(() => process.exit(0), 100).unref();
}

if (isMain(import.meta.url)) await runChild(main);
