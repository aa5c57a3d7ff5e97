// The `miniflare` command serving a Workers Site: --site/-s, --site-include,
// --site-exclude, wrangler.toml's [site], --help and --debug
import assert from "node:assert/strict";
import { test } from "node:test";
import { runBin, waitForOutput } from "../../helpers/process.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const LISTENING = /Listening on 127\.0\.0\.1:(\d+)/;

// "/manifest": the manifest's paths; any other path: that file
const WORKER = `addEventListener("fetch", (event) => event.respondWith(handle(new URL(event.request.url))));
async function handle(url) {
  if (url.pathname === "/manifest") return new Response(Object.keys(JSON.parse(__STATIC_CONTENT_MANIFEST)).join(","));
  const value = await __STATIC_CONTENT.get(decodeURIComponent(url.pathname.substring(1)));
  return new Response(value, { status: value === null ? 404 : 200 });
}`;

const SITE = {
  "worker.js": WORKER,
  "public/index.html": "<p>Index</p>",
  "public/notes.txt": "notes",
  "public/draft/page.html": "draft",
};

async function get(port: string, pathname: string): Promise<[number, string]> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`);
  return [res.status, await res.text()];
}

test("CLI: --help lists the Sites Options", async (t) => {
  const run = runBin(t, ["--help"]);
  assert.equal(await run.exited, 0);
  assert.match(
    run.output(),
    /\nSites Options:\n -s, --site +\S.* \[string\]\n {5}--site-include +\S.* \[array\]\n {5}--site-exclude +\S.* \[array\]\n/
  );
});

test("CLI: -s serves the folder, --site-exclude leaves files out, --debug logs them", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, SITE);
  const args = ["worker.js", "-s", "public", "--site-exclude", "draft", "--site-exclude", "*.txt"];
  const run = runBin(t, [...args, "--debug", "--port", "0", "--no-update-check", "--no-cf-fetch"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.match(run.stdout(), /^\[mf:dbg\] - Workers Site Path: public$/m);
  assert.match(run.stdout(), /^\[mf:dbg\] - Workers Site Exclude: draft, \*\.txt$/m);
  assert.deepEqual(await get(port, "/manifest"), [200, "index.html"]);
  assert.deepEqual(await get(port, "/index.html"), [200, "<p>Index</p>"]);
  assert.deepEqual(await get(port, "/notes.txt"), [404, ""]);
  assert.deepEqual(await get(port, "/draft/page.html"), [404, ""]);
});

test("CLI: wrangler.toml's [site] is served, with --site-include over its include", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    ...SITE,
    "wrangler.toml": `[site]
bucket = "./public"
include = ["*.html"]
`,
  });
  let run = runBin(t, ["worker.js", "--port", "0", "--no-update-check", "--no-cf-fetch"], tmp);
  let [, port] = await waitForOutput(run, LISTENING);
  assert.deepEqual(await get(port, "/manifest"), [200, "draft/page.html,index.html"]);
  assert.deepEqual(await get(port, "/notes.txt"), [404, ""]);
  run.child.kill("SIGINT");
  assert.equal(await run.exited, 0);

  run = runBin(t, ["worker.js", "--site-include", "*.txt", "--port", "0", "--no-update-check", "--no-cf-fetch"], tmp);
  [, port] = await waitForOutput(run, LISTENING);
  assert.deepEqual(await get(port, "/manifest"), [200, "notes.txt"]);
  assert.deepEqual(await get(port, "/notes.txt"), [200, "notes"]);
  assert.deepEqual(await get(port, "/index.html"), [404, ""]);
});
