import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import type { TLSSocket } from "node:tls";
import { HTTPPlugin, getAccessibleHosts } from "../../src/http-server/plugin.js";
import type { Miniflare, MiniflareOptions } from "../../src/miniflare.js";
import { Compatibility } from "../../src/shared/compat.js";
import { LogLevel } from "../../src/shared/log.js";
import { rootPath as repoRoot } from "../helpers/fixtures.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { flushTurns, until, within } from "../helpers/sync.js";
import { useTmp } from "../helpers/tmp.js";
import { HostRegistry } from "../../src/shared/registry.js";

const KiB = 1024;
const MiB = 1024 * KiB;

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

interface Served {
  mf: Miniflare;
  log: TestLog;
  server: http.Server;
  port: number;
  url: string;
}

/** Starts a server for a Miniflare with `options` on 127.0.0.1 and a free port */
async function serve(t: TestContext, options: MiniflareOptions): Promise<Served> {
  const log = new TestLog();
  const mf = useMiniflare(t, { log, cfFetch: false, host: "127.0.0.1", port: 0, ...options });
  const server = await mf.startServer();
  t.after(() => closeServer(server));
  const { port } = server.address() as AddressInfo;
  return { mf, log, server, port, url: `http://127.0.0.1:${port}` };
}

/** A modules worker's source */
const worker = (body: string) => ({ modules: true, script: body });

/** Fails the test if an unhandled rejection happens while it runs */
function noUnhandledRejections(t: TestContext): () => void {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));
  return () => assert.deepEqual(rejections, []);
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/** A request on its own connection, read to the end */
function request(
  url: string,
  { method = "GET", headers = {}, body }: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString("utf8") });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

interface RawRes {
  status: number;
  text: string;
}

/**
 * Writes `data` on a new connection and reads until the server closes it,
 * failing after `timeout` ms. `keepWriting` is written afterwards, while the
 * connection lasts, and write errors are ignored (the server may close first).
 */
function raw(port: number, data: string | Buffer, timeout = 10_000, keepWriting?: Buffer[]): Promise<RawRes> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`No complete response within ${timeout}ms: ${JSON.stringify(Buffer.concat(chunks).toString())}`));
    }, timeout);
    const done = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("latin1");
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (match === null) reject(new Error(`Not an HTTP response: ${JSON.stringify(text)}`));
      else resolve({ status: Number(match[1]), text });
    };
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => {}); // ECONNRESET after the response: judged by what was read
    socket.on("close", done);
    socket.write(data, async () => {
      for (const chunk of keepWriting ?? []) {
        if (socket.destroyed || !socket.writable) break;
        await new Promise<void>((resolve) => socket.write(chunk, () => resolve()));
      }
    });
  });
}

/** Logs without colours */
function plainLogs(log: TestLog, level?: LogLevel): string[] {
  return log.logs.filter(([l]) => level === undefined || l === level).map(([, message]) => stripAnsi(message));
}

// ---------------------------------------------------------------------------
// startServer, createServer, getOpenURL
// ---------------------------------------------------------------------------

test("startServer: listens on 127.0.0.1 by default and logs the URL", async (t) => {
  const log = new TestLog();
  const mf = useMiniflare(t, { log, cfFetch: false, port: 0, ...worker("export default { fetch: () => new Response('hi') }") });
  const server = await mf.startServer();
  t.after(() => closeServer(server));
  assert(server instanceof http.Server);
  assert(!(server instanceof https.Server));
  const { address, port } = server.address() as AddressInfo;
  assert.equal(address, "127.0.0.1");
  assert.notEqual(port, 0);
  const info = plainLogs(log, LogLevel.INFO);
  const at = info.indexOf(`Listening on 127.0.0.1:${port}`);
  assert.notEqual(at, -1, info.join("\n"));
  assert.deepEqual(info.slice(at + 1), [`- http://127.0.0.1:${port}`]);
  const res = await request(`http://127.0.0.1:${port}/`);
  assert.equal(res.text, "hi");
  // The request is logged
  assert(plainLogs(log, LogLevel.NONE).some((line) => /^GET \/ 200 OK \(\d+\.\d+ms\)$/.test(line)), plainLogs(log).join("\n"));
});

test("startServer: on 0.0.0.0 logs every accessible IPv4 address", async (t) => {
  const { log, port } = await serve(t, { host: "0.0.0.0", ...worker("export default { fetch: () => new Response('hi') }") });
  const info = plainLogs(log, LogLevel.INFO);
  const at = info.indexOf(`Listening on 0.0.0.0:${port}`);
  assert.notEqual(at, -1, info.join("\n"));
  const expected = getAccessibleHosts().map((host) => `- http://${host}:${port}`);
  assert(expected.includes(`- http://127.0.0.1:${port}`));
  assert.deepEqual(info.slice(at + 1), expected);
});

test("startServer: rejects when the port is taken", async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const { port } = blocker.address() as AddressInfo;
  const mf = useMiniflare(t, { cfFetch: false, host: "127.0.0.1", port, ...worker("export default { fetch: () => new Response('hi') }") });
  await assert.rejects(mf.startServer(), { code: "EADDRINUSE" });
});

test("createServer: returns a server that isn't listening, with the given options", async (t) => {
  const mf = useMiniflare(t, { cfFetch: false, ...worker("export default { fetch: () => new Response('hi') }") });
  const server = await mf.createServer({ requestTimeout: 12_345 });
  assert(server instanceof http.Server);
  assert.equal(server.listening, false);
  assert.equal(server.requestTimeout, 12_345);
  // The headers timeout (20 s by default) is never longer than a whole request may take
  assert.equal(server.headersTimeout, 12_345);
});

test("getOpenURL: the open option's URL, or the server's", async (t) => {
  const script = worker("export default { fetch: () => new Response('hi') }");
  const openURL = (options: MiniflareOptions) => useMiniflare(t, { cfFetch: false, ...script, ...options }).getOpenURL();
  assert.equal(await openURL({}), undefined);
  assert.equal(await openURL({ open: false }), undefined);
  assert.equal(await openURL({ open: "http://example.com/some/page?q=1" }), "http://example.com/some/page?q=1");
  assert.equal(await openURL({ open: "http://example.com/", port: 1234, host: "0.0.0.0" }), "http://example.com/");
  assert.equal(await openURL({ open: true }), "http://localhost:8787/");
  assert.equal(await openURL({ open: true, port: 1234 }), "http://localhost:1234/");
  assert.equal(await openURL({ open: true, host: "127.0.0.2", port: 1234 }), "http://127.0.0.2:1234/");
  assert.equal(await openURL({ open: true, host: "0.0.0.0" }), "http://localhost:8787/");
  // HTTPS (the strings need no certificate generation)
  assert.equal(await openURL({ open: true, httpsKey: "key", httpsCert: "cert" }), "https://localhost:8787/");
  assert.equal(
    await openURL({ open: true, host: "127.0.0.3", port: 4321, httpsKey: "key", httpsCert: "cert" }),
    "https://127.0.0.3:4321/"
  );
});

// ---------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------

/** Generates a key and certificate into `dir` as the plugin does */
async function generateCert(dir: string): Promise<{ key: string; cert: string }> {
  const log = new TestLog();
  const plugin = new HTTPPlugin(
    { log, compat: new Compatibility(), rootPath: dir, registry: new HostRegistry() },
    { https: dir },
    { cfFetch: false }
  );
  await plugin.setupHttps();
  return {
    key: await fs.readFile(path.join(dir, "key.pem"), "utf8"),
    cert: await fs.readFile(path.join(dir, "cert.pem"), "utf8"),
  };
}

interface HttpsRes {
  status: number;
  text: string;
  fingerprint: string;
}

function httpsGet(url: string, options: https.RequestOptions): Promise<HttpsRes> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent: false, ...options }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, text, fingerprint }));
    });
    req.on("error", reject);
  });
}

const echoURL = worker(`export default { fetch: (request) => new Response(request.url + " " + request.headers.get("cf-visitor")) }`);

test("HTTPS: https: <dir> serves with a generated certificate the client can trust", async (t) => {
  const tmp = await useTmp(t);
  const certDir = path.join(tmp, "cert");
  const { server, log, port } = await serve(t, { https: certDir, ...echoURL });
  assert(server instanceof https.Server);
  const info = plainLogs(log, LogLevel.INFO);
  assert(info.includes("Generating new self-signed certificate..."), info.join("\n"));
  assert(info.includes(`- https://127.0.0.1:${port}`), info.join("\n"));

  const cert = await fs.readFile(path.join(certDir, "cert.pem"), "utf8");
  // Verified against the generated certificate, hostname 127.0.0.1 included
  const res = await httpsGet(`https://127.0.0.1:${port}/path?q=1`, { ca: cert });
  assert.equal(res.status, 200);
  assert.equal(res.text, `https://127.0.0.1:${port}/path?q=1 {"scheme":"https"}`);
  assert.equal(res.fingerprint, new X509Certificate(cert).fingerprint256);
  // ...and as localhost
  const local = await httpsGet(`https://127.0.0.1:${port}/`, { ca: cert, servername: "localhost" });
  assert.equal(local.status, 200);
  // Self-signed: untrusted without it
  await assert.rejects(httpsGet(`https://127.0.0.1:${port}/`, {}), (e: any) => /SELF_SIGNED|UNABLE_TO_VERIFY/.test(e.code));
  // Not plain HTTP
  await assert.rejects(request(`http://127.0.0.1:${port}/`));
});

test("HTTPS: fetch works with an agent that doesn't verify", async (t) => {
  const tmp = await useTmp(t);
  const { port } = await serve(t, { https: path.join(tmp, "cert"), ...echoURL });
  const { Agent, fetch: undiciFetch } = await import("undici");
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  t.after(() => dispatcher.close());
  const res = await undiciFetch(`https://127.0.0.1:${port}/x`, { dispatcher });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), `https://127.0.0.1:${port}/x {"scheme":"https"}`);
});

test("HTTPS: key and certificate files, with an encrypted key and its passphrase", async (t) => {
  const tmp = await useTmp(t);
  const { key, cert } = await generateCert(path.join(tmp, "gen"));
  const encrypted = createPrivateKey(key).export({
    type: "pkcs8",
    format: "pem",
    cipher: "aes-256-cbc",
    passphrase: "open sesame",
  }) as string;
  await fs.writeFile(path.join(tmp, "encrypted.pem"), encrypted);
  await fs.writeFile(path.join(tmp, "cert.pem"), cert);
  const { server, port } = await serve(t, {
    httpsKeyPath: path.join(tmp, "encrypted.pem"),
    httpsCertPath: path.join(tmp, "cert.pem"),
    httpsPassphrase: "open sesame",
    ...echoURL,
  });
  assert(server instanceof https.Server);
  const res = await httpsGet(`https://127.0.0.1:${port}/`, { ca: cert });
  assert.equal(res.status, 200);
  assert.equal(res.fingerprint, new X509Certificate(cert).fingerprint256);

  // The wrong passphrase can't start a server
  const mf = useMiniflare(t, {
    cfFetch: false,
    httpsKey: encrypted,
    httpsCert: cert,
    httpsPassphrase: "wrong",
    ...echoURL,
  });
  await assert.rejects(mf.createServer());
});

test("HTTPS: a binary PFX file with its passphrase", async (t) => {
  // The PFX file is made with openssl (.ci/run installs it)
  const tmp = await useTmp(t);
  const { cert } = await generateCert(tmp);
  const pfxPath = path.join(tmp, "cert.pfx");
  execFileSync("openssl", [
    "pkcs12",
    "-export",
    "-inkey",
    path.join(tmp, "key.pem"),
    "-in",
    path.join(tmp, "cert.pem"),
    "-out",
    pfxPath,
    "-passout",
    "pass:secret",
  ]);
  const { port } = await serve(t, { httpsPfxPath: pfxPath, httpsPassphrase: "secret", ...echoURL });
  const res = await httpsGet(`https://127.0.0.1:${port}/`, { ca: cert });
  assert.equal(res.status, 200);
  assert.equal(res.fingerprint, new X509Certificate(cert).fingerprint256);
});

// ---------------------------------------------------------------------------
// /cdn-cgi
// ---------------------------------------------------------------------------

const scheduledWorker = worker(`
let events = [];
let fetches = 0;
export default {
  scheduled(controller, env, ctx) {
    events.push({ time: controller.scheduledTime, cron: controller.cron });
    ctx.waitUntil(new Promise((resolve) => setTimeout(() => { events.push("waitUntil"); resolve(); }, 50)));
  },
  fetch(request) {
    fetches++;
    return Response.json({ events, fetches });
  },
}`);

test("/cdn-cgi/mf/scheduled runs the scheduled handler with the given time and cron", async (t) => {
  const { url, log } = await serve(t, scheduledWorker);
  let res = await request(`${url}/cdn-cgi/mf/scheduled?time=1000&cron=*+*+*+*+*`);
  assert.equal(res.status, 200);
  assert.equal(res.text, "");
  assert.match(String(res.headers["content-type"]), /^text\/plain/);

  // Trailing slash, no parameters: now, and no cron
  const before = Date.now();
  res = await request(`${url}/cdn-cgi/mf/scheduled/`);
  const after = Date.now();
  assert.equal(res.status, 200);
  assert.equal(res.text, "");

  const { events, fetches } = JSON.parse((await request(`${url}/`)).text);
  // The fetch handler never ran for the triggers, and each reply waited for waitUntil
  assert.equal(fetches, 1);
  assert.equal(events.length, 4);
  assert.deepEqual(events[0], { time: 1000, cron: "* * * * *" });
  assert.equal(events[1], "waitUntil");
  assert.equal(events[2].cron, "");
  assert(events[2].time >= before && events[2].time <= after, `${events[2].time} not in [${before}, ${after}]`);
  assert.equal(events[3], "waitUntil");

  const lines = plainLogs(log, LogLevel.NONE);
  assert(
    lines.some((line) => /^SCHD \/cdn-cgi\/mf\/scheduled\?time=1000&cron=\*\+\*\+\*\+\*\+\* 200 OK \(/.test(line)),
    lines.join("\n")
  );
  assert(lines.some((line) => /^SCHD \/cdn-cgi\/mf\/scheduled\/ 200 OK \(/.test(line)), lines.join("\n"));
});

test("/cdn-cgi/mf/scheduled with other methods, and from a service worker", async (t) => {
  const { url } = await serve(t, {
    script: `let events = [];
addEventListener("scheduled", (event) => events.push([event.scheduledTime, event.cron]));
addEventListener("fetch", (event) => event.respondWith(Response.json(events)));`,
  });
  const res = await request(`${url}/cdn-cgi/mf/scheduled?time=5&cron=0+0+*+*+*`, { method: "POST", body: "ignored" });
  assert.equal(res.status, 200);
  assert.equal(res.text, "");
  assert.deepEqual(JSON.parse((await request(`${url}/`)).text), [[5, "0 0 * * *"]]);
});

test("other /cdn-cgi paths are 404 and never reach the worker; /cdn-cgi/ itself does", async (t) => {
  const { url } = await serve(t, scheduledWorker);
  for (const path of ["/cdn-cgi/other", "/cdn-cgi/mf/other", "/cdn-cgi/mf/scheduled/extra", "/cdn-cgi/scripts/"]) {
    const res = await request(`${url}${path}`);
    assert.equal(res.status, 404, path);
    // Empty, as in Miniflare 2
    assert.equal(res.text, "", path);
    assert.match(String(res.headers["content-type"]), /^text\/plain/, path);
  }
  // A trailing slash is ignored, so "/cdn-cgi/" is "/cdn-cgi": the worker's
  for (const path of ["/cdn-cgi/", "/cdn-cgi"]) assert.equal((await request(`${url}${path}`)).status, 200, path);
  const { events, fetches } = JSON.parse((await request(`${url}/`)).text);
  assert.deepEqual(events, []);
  assert.equal(fetches, 3);
});

test("/cdn-cgi/mf/reload is served with live reload on or off, and closed with 1012 at a reload", async (t) => {
  const { WebSocket: NodeWebSocket } = await import("ws");
  for (const liveReload of [false, true]) {
    const { mf, port } = await serve(t, { ...worker(`export default { fetch: () => new Response("worker") }`), liveReload });
    const ws = new NodeWebSocket(`ws://127.0.0.1:${port}/cdn-cgi/mf/reload`);
    t.after(() => ws.terminate());
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    const closed = new Promise<[number, string]>((resolve) =>
      ws.once("close", (code, reason) => resolve([code, reason.toString()]))
    );
    await mf.reload();
    assert.deepEqual((await closed)[0], 1012, `liveReload: ${liveReload}`);
  }
});

test("/cdn-cgi/mf/scheduled answers 200 when the handler throws, and logs the error once", async (t) => {
  const { url, log } = await serve(
    t,
    worker(`export default {
      scheduled() { throw new Error("scheduled broke"); },
      fetch() { return new Response("ok"); },
    }`)
  );
  const res = await request(`${url}/cdn-cgi/mf/scheduled?cron=x`);
  assert.equal(res.status, 200);
  assert.equal(res.text, "");
  const logged = () => log.errors.some((error) => String(error.stack ?? error.message).includes("scheduled broke"));
  await until(logged, "the handler's error logged");
  // A second report would come in the turns after the first
  await flushTurns();
  const errors = log.errors.map((error) => String(error.stack ?? error.message));
  assert.equal(errors.filter((error) => error.includes("scheduled broke")).length, 1, errors.join("\n"));
  const lines = plainLogs(log, LogLevel.NONE);
  assert(lines.some((line) => /^SCHD \/cdn-cgi\/mf\/scheduled\?cron=x 200 OK \(/.test(line)), lines.join("\n"));
});

// ---------------------------------------------------------------------------
// Malformed requests (reliability check 28)
// ---------------------------------------------------------------------------

const okWorker = worker(`export default { fetch: (request) => new Response("ok " + new URL(request.url).pathname) }`);

test("a malformed Host gets a 400 at once (not at a timeout), and the server keeps serving", async (t) => {
  const check = noUnhandledRejections(t);
  const { port, url } = await serve(t, okWorker);
  let res = await raw(port, "GET / HTTP/1.1\r\nHost: [bad\r\n\r\n");
  assert.equal(res.status, 400);
  assert.equal((await request(`${url}/next`)).text, "ok /next");

  // The same on a keep-alive connection that asks to close, and twice in a row
  res = await raw(port, "GET /a HTTP/1.1\r\nHost: [bad\r\nConnection: keep-alive\r\n\r\n");
  assert.equal(res.status, 400);
  res = await raw(port, "POST / HTTP/1.1\r\nHost: [::1\r\nContent-Length: 2\r\n\r\nhi");
  assert.equal(res.status, 400);
  assert.equal((await request(`${url}/again`)).text, "ok /again");
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

test("a malformed Host on an upgrade request gets a 400 at once (not at a timeout)", async (t) => {
  const check = noUnhandledRejections(t);
  const { port, url } = await serve(t, okWorker);
  const res = await raw(
    port,
    "GET / HTTP/1.1\r\nHost: [bad\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
  );
  assert.equal(res.status, 400);
  assert.equal((await request(`${url}/`)).text, "ok /");
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

test("unparsable request lines and URLs get a 400", async (t) => {
  const check = noUnhandledRejections(t);
  const { port, url } = await serve(t, okWorker);
  let res = await raw(port, "GARBAGE\r\n\r\n");
  assert.equal(res.status, 400);
  res = await raw(port, "GET http://[bad/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
  assert.equal(res.status, 400);
  assert.equal((await request(`${url}/`)).text, "ok /");
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

// ---------------------------------------------------------------------------
// Header and URL limits (reliability check 31)
// ---------------------------------------------------------------------------

const headerWorker = worker(`export default { fetch(request) {
  const lengths = {};
  for (const [name, value] of request.headers) if (name.startsWith("x-test-")) lengths[name] = value.length;
  return Response.json({ lengths, path: new URL(request.url).pathname.length });
} }`);

test("a single header over 16 KiB gets a 431; under it, the worker sees it", async (t) => {
  const { url } = await serve(t, headerWorker);
  let res = await request(`${url}/`, { headers: { "X-Test-Big": "a".repeat(16 * KiB + 1) } });
  assert.equal(res.status, 431);
  res = await request(`${url}/`, { headers: { "X-Test-Big": "a".repeat(15 * KiB) } });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text).lengths, { "x-test-big": 15 * KiB });
});

test("two 12 KiB headers are accepted; 33 KiB of headers gets a 431", async (t) => {
  const { url } = await serve(t, headerWorker);
  let res = await request(`${url}/`, { headers: { "X-Test-One": "a".repeat(12 * KiB), "X-Test-Two": "b".repeat(12 * KiB) } });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text).lengths, { "x-test-one": 12 * KiB, "x-test-two": 12 * KiB });

  res = await request(`${url}/`, {
    headers: { "X-Test-One": "a".repeat(11 * KiB), "X-Test-Two": "b".repeat(11 * KiB), "X-Test-Three": "c".repeat(11 * KiB) },
  });
  assert.equal(res.status, 431);
  // Still serving
  assert.equal((await request(`${url}/`)).status, 200);
});

test("a URL over 16 KiB gets a 414; under it, the worker sees it", async (t) => {
  const { url } = await serve(t, headerWorker);
  let res = await request(`${url}/${"a".repeat(16 * KiB)}`);
  assert.equal(res.status, 414);
  res = await request(`${url}/${"a".repeat(15 * KiB)}`);
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.text).path, 15 * KiB + 1);
});

// ---------------------------------------------------------------------------
// Body limits (reliability check 30)
// ---------------------------------------------------------------------------

const bodyWorker = worker(`
let started = 0;
let completed = 0;
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
export default { async fetch(request) {
  if (request.method === "GET") return Response.json({ started, completed });
  started++;
  const body = await request.arrayBuffer();
  const sha256 = hex(await crypto.subtle.digest("SHA-256", body));
  completed++;
  return Response.json({ length: body.byteLength, sha256 });
} }`);

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

async function calls(url: string): Promise<{ started: number; completed: number }> {
  return JSON.parse((await request(`${url}/`)).text);
}

/** POSTs `body` chunked, in `chunkSize` pieces, as long as the server reads */
function postChunked(url: string, body: Buffer, chunkSize = 64 * KiB): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, headers: { "Transfer-Encoding": "chunked" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", () => {});
      res.on("end", () => {
        const data = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: data, text: data.toString() });
      });
    });
    let responded = false;
    req.on("response", () => (responded = true));
    req.on("error", (error) => {
      if (!responded) reject(error);
    });
    void (async () => {
      for (let offset = 0; offset < body.length && !req.destroyed && !responded; offset += chunkSize) {
        if (!req.write(body.subarray(offset, offset + chunkSize))) {
          await new Promise((resolve) => {
            req.once("drain", resolve);
            req.once("close", resolve);
          });
        }
      }
      if (!req.destroyed && !responded) req.end();
    })();
  });
}

test("a Content-Length over the body limit gets a 413 before the worker runs", async (t) => {
  const { port, url } = await serve(t, { requestBodyLimit: MiB, ...bodyWorker });
  // Only the headers are sent: the answer can't wait for the body
  const res = await raw(port, `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${MiB + 1}\r\n\r\n`);
  assert.equal(res.status, 413);
  // ...nor if the body starts arriving
  const chunk = Buffer.alloc(64 * KiB, 1);
  const streaming = await raw(
    port,
    `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${2 * MiB}\r\n\r\n`,
    undefined,
    Array(32).fill(chunk)
  );
  assert.equal(streaming.status, 413);
  assert.deepEqual(await calls(url), { started: 0, completed: 0 });
});

test("the default body limit is 100 MiB", async (t) => {
  const { port, url } = await serve(t, bodyWorker);
  const res = await raw(port, `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${100 * MiB + 1}\r\n\r\n`);
  assert.equal(res.status, 413);
  assert.deepEqual(await calls(url), { started: 0, completed: 0 });
});

test("a body of exactly the limit is accepted, by length or chunked", async (t) => {
  const { url } = await serve(t, { requestBodyLimit: MiB, ...bodyWorker });
  const body = Buffer.alloc(MiB, 7);
  let res = await request(`${url}/`, { method: "POST", body });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { length: MiB, sha256: sha256(body) });
  res = await postChunked(`${url}/`, body);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { length: MiB, sha256: sha256(body) });
});

test("a chunked body over the limit gets a 413 and never reaches the worker whole", async (t) => {
  const check = noUnhandledRejections(t);
  const { url } = await serve(t, { requestBodyLimit: MiB, ...bodyWorker });
  const res = await postChunked(`${url}/`, Buffer.alloc(MiB + MiB / 2, 3));
  assert.equal(res.status, 413);
  const counts = await calls(url);
  assert.equal(counts.completed, 0);
  // Still serving bodies
  const body = Buffer.from("small body");
  const ok = await request(`${url}/`, { method: "POST", body });
  assert.deepEqual(JSON.parse(ok.text), { length: body.length, sha256: sha256(body) });
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

test("a 5 MiB body under the limit reaches the worker intact", async (t) => {
  const { url } = await serve(t, { requestBodyLimit: 8 * MiB, ...bodyWorker });
  const body = Buffer.alloc(5 * MiB);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
  const expected = { length: 5 * MiB, sha256: sha256(body) };
  let res = await request(`${url}/`, { method: "POST", body });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), expected);
  res = await postChunked(`${url}/`, body, 100_000);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), expected);
});

test("a client disconnecting mid-body doesn't break the server", async (t) => {
  const check = noUnhandledRejections(t);
  const { port, url } = await serve(t, bodyWorker);
  for (let i = 0; i < 3; i++) {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    socket.write(`POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${MiB}\r\n\r\n`);
    socket.write(Buffer.alloc(64 * KiB, 1));
    // Gone while the worker reads the body
    await until(async () => (await calls(url)).started === i + 1, "the worker reading the body");
    socket.destroy();
  }
  const counts = await calls(url);
  assert.equal(counts.started, 3);
  assert.equal(counts.completed, 0);
  const body = Buffer.from("after");
  const res = await request(`${url}/`, { method: "POST", body });
  assert.deepEqual(JSON.parse(res.text), { length: 5, sha256: sha256(body) });
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

// ---------------------------------------------------------------------------
// Errors (reliability check 29)
// ---------------------------------------------------------------------------

const throwingWorker = worker(`
function brokenHandler() { throw new Error("worker broke"); }
export default { fetch(request) {
  if (new URL(request.url).pathname === "/ok") return new Response("ok");
  brokenHandler();
} }`);

test("a throwing worker gets a 500 with the stack for loopback clients", async (t) => {
  const check = noUnhandledRejections(t);
  const { url, log } = await serve(t, throwingWorker);
  const res = await request(`${url}/throw`);
  assert.equal(res.status, 500);
  assert.match(res.text, /Error: worker broke/);
  assert.match(res.text, /brokenHandler/);
  assert.equal((await request(`${url}/ok`)).text, "ok");
  // Logged with the method and path
  assert(log.errors.some((e) => /GET \/throw/.test(e.message) || /GET \/throw/.test(String(e.stack))), String(log.errors));
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

test("a browser's error page lists the CF-* headers the worker saw, and the worker's frames without Miniflare's", async (t) => {
  const { url } = await serve(t, throwingWorker);
  const res = await request(`${url}/throw`, { headers: { Accept: "text/html", "CF-Ray": "from-the-client" } });
  assert.equal(res.status, 500);
  assert.match(String(res.headers["content-type"]), /^text\/html/);
  // The headers the server added for the worker, not the client's
  for (const header of ["cf-connecting-ip", "cf-ray", "cf-ipcountry", "cf-visitor"]) {
    assert.ok(res.text.toLowerCase().includes(header), header);
  }
  assert.ok(!res.text.includes("from-the-client"));
  // The worker's frame is there; none of Miniflare's own code is
  assert.match(res.text, /brokenHandler/);
  const ownCode = path.join(repoRoot, "dist", "src") + path.sep;
  assert.ok(!res.text.includes(ownCode), "a frame of Miniflare's own code is shown");
});

test("a throwing worker's stack isn't sent to clients on other machines", async (t) => {
  const address = getAccessibleHosts().find((host) => !host.startsWith("127."));
  if (address === undefined) {
    t.skip("this machine has no non-loopback IPv4 address to connect from");
    return;
  }
  const check = noUnhandledRejections(t);
  const { port } = await serve(t, { host: "0.0.0.0", ...throwingWorker });
  const variants: Record<string, string>[] = [{}, { Accept: "text/html" }, { Accept: "*/*", "User-Agent": "curl/8.0.0" }];
  for (const headers of variants) {
    const res = await request(`http://${address}:${port}/throw`, { headers });
    assert.equal(res.status, 500, JSON.stringify(headers));
    assert(!res.text.includes("brokenHandler"), `${JSON.stringify(headers)}: ${res.text}`);
    assert(!/^\s+at /m.test(res.text), `${JSON.stringify(headers)}: ${res.text}`);
  }
  // Loopback on the same server still gets it
  const local = await request(`http://127.0.0.1:${port}/throw`);
  assert.match(local.text, /brokenHandler/);
  assert.equal((await request(`http://${address}:${port}/ok`)).text, "ok");
  // A rejection from the bad request would have come before the good one's answer
  await flushTurns();
  check();
});

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

test("several Set-Cookie headers stay separate", async (t) => {
  const { url } = await serve(
    t,
    worker(`export default { fetch() {
      const headers = new Headers({ "Content-Type": "text/plain" });
      headers.append("Set-Cookie", "a=1; Path=/");
      headers.append("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly");
      headers.append("Set-Cookie", "c=3");
      headers.set("X-Multi", "after the cookies");
      return new Response("cookies", { headers });
    } }`)
  );
  const res = await request(`${url}/`);
  assert.equal(res.text, "cookies");
  assert.deepEqual(res.headers["set-cookie"], [
    "a=1; Path=/",
    "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly",
    "c=3",
  ]);
  const raw = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    if (res.rawHeaders[i].toLowerCase() === "set-cookie") raw.push(res.rawHeaders[i + 1]);
  }
  assert.equal(raw.length, 3);
  // In the worker's (sorted) header order, as Miniflare 2 sends them
  const names = res.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
  const at = (name: string) => names.indexOf(name);
  assert.ok(at("content-type") < at("set-cookie") && names.lastIndexOf("set-cookie") < at("x-multi"), names.join(", "));
});

test("a streamed response arrives in chunks before the worker finishes", async (t) => {
  const { url } = await serve(
    t,
    worker(`
let release;
const released = new Promise((resolve) => (release = resolve));
export default { fetch(request) {
  if (new URL(request.url).pathname === "/release") {
    release();
    return new Response("released");
  }
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  (async () => {
    await writer.write(encoder.encode("first;"));
    await released;
    await writer.write(encoder.encode("second"));
    await writer.close();
  })();
  return new Response(readable, { headers: { "Content-Type": "text/event-stream" } });
} }`)
  );
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`${url}/stream`, { agent: false }, resolve).on("error", reject)
  );
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers["content-length"], undefined);
  res.setEncoding("utf8");
  let text = "";
  let ended = false;
  res.on("data", (chunk) => (text += chunk));
  const first = new Promise((resolve) => res.once("data", resolve));
  const end = new Promise<void>((resolve) => res.on("end", () => ((ended = true), resolve())));
  await within(first, "the first chunk");
  // The first chunk came while the worker was still waiting
  assert.equal(text, "first;");
  assert.equal(ended, false);
  assert.equal((await request(`${url}/release`)).text, "released");
  await end;
  assert.equal(text, "first;second");
});
