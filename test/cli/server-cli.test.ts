// The `miniflare` command serving HTTP(S), run as a real process
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { test } from "node:test";
import { exitsWithin, runBin, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

/** A port nothing is listening on (just now) */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something can listen on `port` (i.e. it was freed) */
async function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function get(url: string, options: https.RequestOptions = {}): Promise<{ status: number; text: string }> {
  const client = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    client
      .get(url, { agent: false, ...options }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      })
      .on("error", reject);
  });
}

const LISTENING = /Listening on 127\.0\.0\.1:(\d+)/;
const serviceWorker = (text: string) =>
  `addEventListener("fetch", (event) => event.respondWith(new Response(${JSON.stringify(text)} + " " + new URL(event.request.url).pathname)));`;

test("CLI: serves a modules worker from wrangler.toml on its [miniflare] host and port", async (t) => {
  const tmp = await useTmp(t);
  const port = await freePort();
  await writeFiles(tmp, {
    "wrangler.toml": `name = "cli-test"
compatibility_date = "2022-12-01"

[vars]
GREETING = "hello from wrangler"

[build.upload]
format = "modules"
dir = "src"
main = "./index.mjs"

[miniflare]
host = "127.0.0.1"
port = ${port}
update_check = false
`,
    "src/index.mjs": `export default { fetch: (request, env) => new Response(env.GREETING + " at " + new URL(request.url).pathname) }`,
  });
  const run = runBin(t, [], tmp);
  const [, listening] = await waitForOutput(run, LISTENING);
  assert.equal(Number(listening), port);
  await waitForOutput(run, new RegExp(`- http://127\\.0\\.0\\.1:${port}`));
  const res = await get(`http://127.0.0.1:${port}/some/path`);
  assert.equal(res.status, 200);
  assert.equal(res.text, "hello from wrangler at /some/path");
  await waitForOutput(run, /GET \/some\/path 200 OK/);
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: warns about keys in wrangler.toml's [miniflare] it doesn't know, and still serves", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `[miniflare]
port = 0
update_check = false
kv_persists = true
`,
    "worker.js": serviceWorker("typo"),
  });
  const run = runBin(t, ["worker.js"], tmp);
  await waitForOutput(run, LISTENING);
  assert.match(
    run.output(),
    /\[mf:wrn\] wrangler\.toml \[miniflare\] key "kv_persists" is unknown, and is ignored\nDid you mean "kv_persist"\?\n/
  );
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: --port 0 listens on a free port and prints it", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("zero") });
  const run = runBin(t, ["worker.js", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.notEqual(Number(port), 0);
  assert.equal((await get(`http://127.0.0.1:${port}/`)).text, "zero /");
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: --https serves HTTPS with a certificate generated in .mf/cert, not swallowing the script", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("secure") });
  const run = runBin(t, ["--https", "worker.js", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, /- https:\/\/127\.0\.0\.1:(\d+)/);
  assert.match(run.output(), /Generating new self-signed certificate\.\.\./);
  const cert = await fs.readFile(path.join(tmp, ".mf", "cert", "cert.pem"), "utf8");
  await fs.access(path.join(tmp, ".mf", "cert", "key.pem"));
  const res = await get(`https://127.0.0.1:${port}/path`, { ca: cert });
  assert.equal(res.status, 200);
  assert.equal(res.text, "secure /path");
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: --https <dir> keeps the certificate there and reuses it", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("dir") });
  const args = ["--https", "./certs", "worker.js", "--port", "0", "--no-update-check"];
  let run = runBin(t, args, tmp);
  let [, port] = await waitForOutput(run, /- https:\/\/127\.0\.0\.1:(\d+)/);
  const cert = await fs.readFile(path.join(tmp, "certs", "cert.pem"), "utf8");
  assert.equal((await get(`https://127.0.0.1:${port}/`, { ca: cert })).text, "dir /");
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
  await assert.rejects(fs.access(path.join(tmp, ".mf", "cert")));

  run = runBin(t, args, tmp);
  [, port] = await waitForOutput(run, /- https:\/\/127\.0\.0\.1:(\d+)/);
  assert.doesNotMatch(run.output(), /Generating new self-signed certificate/);
  assert.equal(await fs.readFile(path.join(tmp, "certs", "cert.pem"), "utf8"), cert);
  assert.equal((await get(`https://127.0.0.1:${port}/`, { ca: cert })).text, "dir /");
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: a bad flag value exits 1 naming the flag, the value and the expected type", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("never") });
  let run = runBin(t, ["worker.js", "--port", "abc"], tmp);
  assert.equal(await exitsWithin(run, 10_000), 1);
  assert.match(run.output(), /Unexpected value for --port: "abc" \(expected number\)/);
  assert.doesNotMatch(run.output(), /Listening on/);

  run = runBin(t, ["worker.js", "--request-body-limit", "big"], tmp);
  assert.equal(await exitsWithin(run, 10_000), 1);
  assert.match(run.output(), /Unexpected value for --request-body-limit: "big" \(expected number\)/);

  run = runBin(t, ["worker.js", "--live-reload=maybe"], tmp);
  assert.equal(await exitsWithin(run, 10_000), 1);
  assert.match(run.output(), /Unexpected value for --live-reload: "maybe" \(expected boolean\)/);
});

test("CLI: a port already in use exits 1 with the error", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("busy") });
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const { port } = blocker.address() as AddressInfo;
  const run = runBin(t, ["worker.js", "--port", String(port), "--no-update-check"], tmp);
  assert.equal(await exitsWithin(run, 10_000), 1);
  assert.match(run.output(), /EADDRINUSE/);
});

test("CLI: --kv-persist worker.js runs worker.js, persisting to the default folder", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (event) => event.respondWith((async () => {
  await NS.put("key", "stored");
  return new Response("worker.js ran: " + (await NS.get("key")));
})()));`,
  });
  const run = runBin(t, ["--kv-persist", "worker.js", "-k", "NS", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal((await get(`http://127.0.0.1:${port}/`)).text, "worker.js ran: stored");
  // worker.js is still the script file, and the data is under .mf/kv
  assert((await fs.stat(path.join(tmp, "worker.js"))).isFile());
  assert((await fs.stat(path.join(tmp, ".mf", "kv"))).isDirectory());
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: --live-reload turns watching on", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("before") });
  const run = runBin(t, ["worker.js", "--live-reload", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal((await get(`http://127.0.0.1:${port}/`)).text, "before /");
  const loads = () => run.output().split("Worker reloaded!").length - 1;
  await fs.writeFile(path.join(tmp, "worker.js"), serviceWorker("after"));
  // Each reload is a chance to serve it: the watcher may see the write in parts
  let text = "";
  for (let seen = loads(); text !== "after /"; seen = loads()) {
    await waitForOutput(run, new RegExp(`(Worker reloaded![^]*?){${seen + 1}}`));
    text = (await get(`http://127.0.0.1:${port}/`)).text;
  }
  assert.equal(text, "after /");
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
});

test("CLI: SIGINT exits 0 promptly, even with open connections, and frees the port", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `export default { fetch(request) {
  if (new URL(request.url).pathname === "/hang") {
    // A response that never finishes
    const { readable, writable } = new TransformStream();
    writable.getWriter().write(new TextEncoder().encode("partial"));
    return new Response(readable);
  }
  return new Response("ok");
} }`,
  });
  const port = await freePort();
  const run = runBin(t, ["worker.mjs", "--modules", "--port", String(port), "--no-update-check"], tmp);
  await waitForOutput(run, LISTENING);

  // An idle keep-alive connection...
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  assert.equal((await get(`http://127.0.0.1:${port}/`, { agent })).text, "ok");
  // ...and a response still streaming
  const hanging = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`http://127.0.0.1:${port}/hang`, { agent: false }, resolve).on("error", reject)
  );
  hanging.on("error", () => {});
  await new Promise((resolve) => hanging.once("data", resolve));

  // Waiting for those connections would never end: any bound tells
  run.child.kill("SIGINT");
  assert.equal(await exitsWithin(run, 10_000), 0);
  assert(await canListen(port), `port ${port} is still in use`);
});

test("CLI: SIGTERM exits 0 too", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.js": serviceWorker("term") });
  const run = runBin(t, ["worker.js", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal((await get(`http://127.0.0.1:${port}/`)).text, "term /");
  run.child.kill("SIGTERM");
  assert.equal(await exitsWithin(run, 10_000), 0);
  assert(await canListen(Number(port)));
});
