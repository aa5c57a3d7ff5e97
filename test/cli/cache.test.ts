// The `miniflare` command with the Cache API: --cache-persist, --no-cache,
// --help and --debug
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { fileNamespaceDirectory } from "../../src/storage/factory.js";
import { runBin, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const LISTENING = /Listening on 127\.0\.0\.1:(\d+)/;

// Caches each path's first answer for an hour
const WORKER = `let served = 0;
export default {
  async fetch(request) {
    const cached = await caches.default.match(request);
    if (cached) return cached;
    const response = new Response("answer " + ++served, { headers: { "Cache-Control": "max-age=3600" } });
    await caches.default.put(request, response.clone());
    return response;
  }
}`;

async function get(port: string, pathname: string): Promise<[string | null, string]> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`);
  return [res.headers.get("CF-Cache-Status"), await res.text()];
}

test("CLI: --help lists the Cache Options", async (t) => {
  const run = runBin(t, ["--help"]);
  assert.equal(await run.exited, 0);
  const output = run.output();
  assert.match(output, /\nCache Options:\n {5}--\(no-\)cache +Enable default\/named caches \(enabled by default\) \[boolean\]\n {5}--cache-persist +Persist cached data/);
  assert.doesNotMatch(output, /cache-warn-usage/);
});

test("CLI: --cache-persist keeps cached responses on disk, served over HTTP with CF-Cache-Status: HIT", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.mjs": WORKER });
  const args = ["worker.mjs", "--modules", "--cache-persist", "./cached", "--debug", "--port", "0", "--no-update-check", "--no-cf-fetch"];
  const run = runBin(t, args, tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.match(run.stdout(), /^\[mf:dbg\] - Cache Persistence: \.\/cached$/m);
  assert.deepEqual(await get(port, "/a"), [null, "answer 1"]);
  assert.deepEqual(await get(port, "/a"), ["HIT", "answer 1"]);
  await fs.access(fileNamespaceDirectory(path.join(tmp, "cached"), "default"));
});

test("CLI: --no-cache serves every request afresh", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.mjs": WORKER });
  const run = runBin(t, ["worker.mjs", "--modules", "--no-cache", "--debug", "--port", "0", "--no-update-check", "--no-cf-fetch"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.match(run.stdout(), /^\[mf:dbg\] - Cache: false$/m);
  assert.deepEqual(await get(port, "/a"), [null, "answer 1"]);
  assert.deepEqual(await get(port, "/a"), [null, "answer 2"]);
});
