import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { rootPath } from "../helpers/fixtures.js";
import fs from "node:fs/promises";
import { binPath, runBin, runNode, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

test("bin: --help prints options grouped by plugin and exits 0", async (t) => {
  const run = runBin(t, ["--help"]);
  assert.equal(await run.exited, 0);
  const output = run.output();
  assert.match(output, /Usage: miniflare \[script\] \[options\]/);
  assert.match(output, /Core Options:/);
  assert.match(output, /HTTP Options:/);
  assert.match(output, /Bindings Options:/);
  assert.match(output, /--compat-date/);
  assert.match(output, /--text-blob/);
});

test("bin: a checkout that isn't built says how to build it", async (t) => {
  // The command's file in a folder with no dist/ beside it
  const tmp = await useTmp(t);
  await fs.mkdir(path.join(tmp, "bin"));
  await fs.copyFile(binPath, path.join(tmp, "bin", "miniflare.js"));
  await writeFiles(tmp, { "package.json": '{ "type": "module" }' });
  const run = runNode(t, [path.join(tmp, "bin", "miniflare.js")], tmp);
  assert.equal(await run.exited, 1);
  assert.equal(run.stderr(), `[mf:err] Miniflare isn't built yet: run \`npm run build\` in ${tmp}${path.sep}\n`);
});

test("bin: --version prints the version", async (t) => {
  const run = runBin(t, ["--version"]);
  assert.equal(await run.exited, 0);
  assert.equal(run.output().trim(), "2.14.4");
});

test("bin: a bad flag value prints the flag, value and expected type, exits 1", async (t) => {
  let run = runBin(t, ["--port", "abc"]);
  assert.equal(await run.exited, 1);
  assert.match(run.output(), /Unexpected value for --port: "abc" \(expected number\)/);
  run = runBin(t, ["--bogus"]);
  assert.equal(await run.exited, 1);
  assert.match(run.output(), /Unexpected option: --bogus/);
});

test("bin: serves a modules worker from wrangler.toml without Node flags", async (t) => {
  const run = runBin(t, ["--port", "0", "--no-update-check"], path.join(rootPath, "examples", "hello"));
  const [, port] = await waitForOutput(run, /Listening on 127\.0\.0\.1:(\d+)/);
  const res = await fetch(`http://127.0.0.1:${port}/path`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "Hello from the hello example at /path!\n");
  await waitForOutput(run, /GET \/path 200 OK/);
  assert.match(run.output(), /\[mf:inf\] Worker reloaded! \(\d+B\)/);
  run.child.kill("SIGINT");
  assert.equal(await run.exited, 0);
});

test("bin: reports a worker syntax error with the file and exits 1", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": "addEventListener('fetch', (e) => {\n  e.respondWith(new Response(\"x\")\n});\n" });
  const run = runBin(t, ["worker.js", "--port", "0", "--no-update-check"], tmp);
  assert.equal(await run.exited, 1);
  assert.match(run.output(), /SyntaxError/);
  assert.match(run.output(), /worker\.js:2/);
});

test("bin: a script that can't load is logged once, with the prefix, and exits 1", async (t) => {
  const tmp = await useTmp(t);
  const run = runBin(t, ["missing.js", "--port", "0", "--no-update-check"], tmp);
  assert.equal(await run.exited, 1);
  // Miniflare 2 printed it a second time, bare, on stderr
  const mentions = run.output().match(/ENOENT: no such file or directory/g) ?? [];
  assert.equal(mentions.length, 1, run.output());
  assert.match(run.stdout(), /^\[mf:err\] Error: ENOENT: no such file or directory.*missing\.js/m);
  assert.equal(run.stderr(), "");
});

test("bin: no script is one [mf:err] hint, in the worker's format, and exits 1", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "wrangler.toml": '[build.upload]\nformat = "modules"\n' });
  const run = runBin(t, ["--port", "0", "--no-update-check"], tmp);
  assert.equal(await run.exited, 1);
  assert.equal((run.output().match(/No script defined/g) ?? []).length, 1, run.output());
  assert.match(run.stdout(), /^\[mf:err\] MiniflareCoreError \[ERR_NO_SCRIPT\]: No script defined, either:$/m);
  assert.match(run.stdout(), /\$ miniflare dist\/worker\.mjs$/m);
  assert.match(run.stdout(), /new Miniflare\(\{ scriptPath: "dist\/worker\.mjs" \}\)$/m);
  assert.match(run.stdout(), /\{ "module": "dist\/worker\.mjs" \}$/m);
  assert.equal(run.stderr(), "");
});

test("bin: a thrown error becomes a 500 with the stack, and the server keeps serving", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (e) => {
  if (new URL(e.request.url).pathname === "/throw") throw new Error("boom");
  e.respondWith(new Response("ok"));
});`,
  });
  const run = runBin(t, ["worker.js", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, /Listening on 127\.0\.0\.1:(\d+)/);
  const res = await fetch(`http://127.0.0.1:${port}/throw`);
  assert.equal(res.status, 500);
  const body = await res.text();
  assert.match(body, /Error: boom/);
  assert.match(body, /worker\.js:2/);
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
  run.child.kill("SIGINT");
  assert.equal(await run.exited, 0);
});

test("bin: --repl evaluates in the worker's global scope with env", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": "export default { fetch: () => new Response('x') }",
  });
  const run = runBin(t, ["--repl", "--modules", "worker.mjs", "--binding", "KEY=value"], tmp, {
    MINIFLARE_REPL_HISTORY: "",
  });
  run.child.stdin!.write('env.KEY + ":" + typeof MINIFLARE\n');
  run.child.stdin!.write(".exit\n");
  assert.equal(await run.exited, 0);
  const output = run.output();
  assert.match(output, /'value:boolean'/);
});
