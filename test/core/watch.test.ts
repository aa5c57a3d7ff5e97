import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { Watcher } from "../../src/core/watch.js";
import type { Miniflare } from "../../src/miniflare.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { TestLog } from "../helpers/log.js";
import { deferred, flushTurns, until, within } from "../helpers/sync.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

function nextReload(mf: Miniflare): Promise<void> {
  return new Promise((resolve) => mf.addEventListener("reload", () => resolve(), { once: true }));
}

async function text(mf: Miniflare): Promise<string> {
  return (await mf.dispatchFetch("http://localhost/")).text();
}

// mtime granularity can hide two writes in the same instant: make sure the
// new contents get a new mtime
async function rewrite(file: string, contents: string): Promise<void> {
  await fs.writeFile(file, contents);
  const later = new Date(Date.now() + 2000);
  await fs.utimes(file, later, later);
}

/**
 * Rewrites `file`, then waits for reloads until the worker answers
 * `expected`. The write and the new mtime can each make a reload (they are
 * one change only if they fall within the watcher's debounce), so the first
 * reload after the rewrite may still be for an earlier change.
 */
async function changeTo(mf: Miniflare, file: string, contents: string, expected: string): Promise<void> {
  const reloaded = nextReload(mf);
  await rewrite(file, contents);
  await within(reloaded, "a reload", 20_000);
  await until(async () => (await text(mf)) === expected, `the worker answering "${expected}"`, 20_000);
}

test("watch: reloads when the script, a module, .env or wrangler.toml changes", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": '[vars]\nNAME = "one"\n',
    ".env": "SECRET=a\n",
    "worker.mjs": 'import { suffix } from "./dep.mjs";\nexport default { fetch: (req, env) => new Response(`v1 ${env.NAME} ${env.SECRET} ${suffix}`) };\n',
    "dep.mjs": 'export const suffix = "x";\n',
  });
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    watch: true,
    modules: true,
    rootPath: tmp,
    wranglerConfigPath: true,
    envPath: true,
    scriptPath: "worker.mjs",
  });
  assert.equal(await text(mf), "v1 one a x");

  await changeTo(
    mf,
    path.join(tmp, "worker.mjs"),
    'import { suffix } from "./dep.mjs";\nexport default { fetch: (req, env) => new Response(`v2 ${env.NAME} ${env.SECRET} ${suffix}`) };\n',
    "v2 one a x"
  );

  await changeTo(mf, path.join(tmp, "dep.mjs"), 'export const suffix = "y";\n', "v2 one a y");

  await changeTo(mf, path.join(tmp, ".env"), "SECRET=b\n", "v2 one b y");

  await changeTo(mf, path.join(tmp, "wrangler.toml"), '[vars]\nNAME = "two"\n', "v2 two b y");
});

test("watch: a broken edit keeps the last good worker, fixing it recovers", async (t) => {
  const tmp = await useTmp(t);
  const script = path.join(tmp, "worker.mjs");
  await writeFiles(tmp, { "worker.mjs": 'export default { fetch: () => new Response("good") };\n' });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, watch: true, modules: true, scriptPath: script });
  assert.equal(await text(mf), "good");

  await rewrite(script, "export default {\n");
  // The failed reload is logged, not thrown
  await until(() => log.errors.length > 0, "the failed reload logged", 20_000);
  assert.equal(log.errors[0]?.name, "SyntaxError");
  assert.equal(await text(mf), "good");

  await changeTo(mf, script, 'export default { fetch: () => new Response("fixed") };\n', "fixed");
});

test("watch: off by default, and dispose stops watching", async (t) => {
  const tmp = await useTmp(t);
  const script = path.join(tmp, "worker.mjs");
  await writeFiles(tmp, { "worker.mjs": 'export default { fetch: () => new Response("one") };\n' });
  const mf = useMiniflare(t, { modules: true, scriptPath: script });
  assert.equal(await text(mf), "one");
  let reloads = 0;
  mf.addEventListener("reload", () => reloads++);
  // A watcher of our own, set up after Miniflare's would have been, tells
  // when Miniflare's would have seen the change
  const noticed = deferred();
  const sentinel = new Watcher(() => noticed.resolve());
  t.after(() => sentinel.dispose());
  sentinel.watch([script]);
  await rewrite(script, 'export default { fetch: () => new Response("two") };\n');
  await within(noticed.promise, "the change noticed", 20_000);
  await flushTurns();
  assert.equal(reloads, 0);
  assert.equal(await text(mf), "one");
});

test("Watcher: a path made a folder after watching began is watched as one, and again when removed and made again", async (t) => {
  const tmp = await useTmp(t);
  const site = path.join(tmp, "site");
  const changes: string[] = [];
  let notify = deferred();
  const watcher = new Watcher(
    (changed) => {
      changes.push(changed);
      notify.resolve();
    },
    { pollInterval: 20 }
  );
  t.after(() => watcher.dispose());
  watcher.watch([site]);
  /** Runs `change`, then waits for the watcher to report `site` */
  const noticed = async (what: string, change: () => Promise<void>) => {
    notify = deferred();
    const before = changes.length;
    await change();
    await within(notify.promise, what, 20_000);
    assert.equal(changes[before], site);
  };

  await noticed("the folder made", () => writeFiles(tmp, { "site/css/style.css": "one" }));
  // An edit in a subfolder changes nothing of the folder itself: seen only by
  // watching the folder as a folder
  await noticed("an edit in a subfolder", () => rewrite(path.join(site, "css", "style.css"), "two"));
  await noticed("the folder removed", () => fs.rm(site, { recursive: true }));
  await noticed("the folder made again", () => writeFiles(tmp, { "site/css/style.css": "three" }));
  await noticed("an edit in a subfolder again", () => rewrite(path.join(site, "css", "style.css"), "four"));
});
