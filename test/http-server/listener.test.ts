import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import zlib from "node:zlib";
import type { Miniflare } from "../../src/miniflare.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { flushTurns } from "../helpers/sync.js";

async function listen(t: TestContext, server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      })
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function serve(t: TestContext, mf: Miniflare): Promise<string> {
  return listen(t, await mf.createServer());
}

test("HTTP server: a throwing worker gets a 500 with the stack, even with the default NoOpLog", async (t) => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));
  const mf = useMiniflare(t, {
    modules: true,
    script: 'export default { fetch() { throw new Error("worker broke"); } }',
  });
  const url = await serve(t, mf);
  const res = await fetch(url);
  assert.equal(res.status, 500);
  assert.match(await res.text(), /Error: worker broke/);
  // A rejection would be reported within these turns
  await flushTurns();
  assert.deepEqual(rejections, []);
});

test("HTTP server: proxies a gzip upstream, re-encoding the decoded body", async (t) => {
  const body = "compressible ".repeat(200);
  const origin = await listen(
    t,
    http.createServer((req, res) => {
      res.writeHead(200, { "Content-Encoding": "gzip", "Content-Type": "text/plain", Connection: "keep-alive" });
      res.end(zlib.gzipSync(body));
    })
  );
  const mf = useMiniflare(t, {
    modules: true,
    bindings: { ORIGIN: origin },
    script: "export default { fetch: (req, env) => fetch(env.ORIGIN) }",
  });
  const url = await serve(t, mf);
  const res = await new Promise<http.IncomingMessage>((resolve) => http.get(url, resolve));
  assert.equal(res.headers["content-encoding"], "gzip");
  assert.equal(res.headers["content-length"], undefined);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk);
  assert.equal(zlib.gunzipSync(Buffer.concat(chunks)).toString(), body);
});

test("HTTP server: sets Content-Length from the body and keeps Set-Cookie headers apart", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch() {
      const headers = new Headers();
      headers.append("Set-Cookie", "a=1; Path=/");
      headers.append("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT");
      return new Response("12345", { headers });
    } }`,
  });
  const url = await serve(t, mf);
  const res = await new Promise<http.IncomingMessage>((resolve) => http.get(url, resolve));
  assert.equal(res.headers["content-length"], "5");
  assert.deepEqual(res.headers["set-cookie"], ["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT"]);
  res.resume();
});

test("HTTP server: requests carry cf and Cloudflare's headers; the client's own edge headers are replaced", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch(request) {
      return Response.json({
        cf: request.cf,
        ip: request.headers.get("cf-connecting-ip"),
        realIp: request.headers.get("x-real-ip"),
        acceptEncoding: request.headers.get("accept-encoding"),
        proto: request.headers.get("x-forwarded-proto"),
        ray: request.headers.get("cf-ray"),
        country: request.headers.get("cf-ipcountry"),
        visitor: request.headers.get("cf-visitor"),
        host: request.headers.get("host"),
        url: request.url,
      });
    } }`,
  });
  const url = await serve(t, mf);
  const res = await fetch(`${url}/path?q=1`, {
    headers: {
      "CF-Connecting-IP": "1.2.3.4",
      "X-Real-IP": "1.2.3.4",
      "CF-Ray": "0123456789abcdef",
      "CF-IPCountry": "XX",
      "CF-Visitor": '{"scheme":"http"}',
      "X-Forwarded-Proto": "http",
      "Accept-Encoding": "br",
    },
  });
  const data = await res.json();
  assert.equal(data.ip, "127.0.0.1");
  assert.equal(data.realIp, "127.0.0.1");
  assert.equal(data.acceptEncoding, "gzip");
  assert.equal(data.cf.clientAcceptEncoding, "br");
  assert.equal(data.cf.country, "US");
  assert.equal(data.cf.colo, "DFW");
  assert.equal(data.proto, "https");
  assert.match(data.ray, /^[0-9a-f]{16}$/);
  assert.notEqual(data.ray, "0123456789abcdef");
  assert.equal(data.country, "US");
  assert.equal(data.visitor, '{"scheme":"https"}');
  assert.equal(data.url, `${url}/path?q=1`);
});

test("HTTP server: cf has no clientAcceptEncoding key when the client sent no Accept-Encoding", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch(request) {
      return Response.json({ has: "clientAcceptEncoding" in request.cf, value: request.cf.clientAcceptEncoding ?? null });
    } }`,
  });
  const url = await serve(t, mf);
  // node:http sends no Accept-Encoding unless told to
  const body = (headers: http.OutgoingHttpHeaders) =>
    new Promise<string>((resolve, reject) => {
      http.get(`${url}/`, { headers }, (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve(text));
      }).on("error", reject);
    });
  assert.deepEqual(JSON.parse(await body({})), { has: false, value: null });
  assert.deepEqual(JSON.parse(await body({ "Accept-Encoding": "gzip" })), { has: true, value: "gzip" });
});

test("HTTP server: a client that disconnects mid-stream doesn't break the server, nor the worker's writes", async (t) => {
  let finished!: (result: string) => void;
  const writesFinished = new Promise<string>((resolve) => (finished = resolve));
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch(request, env) {
      const { readable, writable } = new TransformStream();
      const writer = writable.getWriter();
      const encoder = new TextEncoder();
      (async () => {
        for (let i = 0; i < 20; i++) {
          await writer.write(encoder.encode("chunk " + i + "\\n"));
          await scheduler.wait(10);
        }
        await writer.close();
        return "every write accepted";
      })().then(env.FINISHED, (e) => env.FINISHED("rejected: " + e));
      return new Response(readable);
    } }`,
    bindings: { FINISHED: (result: string) => finished(result) },
    compatibilityDate: "2022-12-01",
    globalTimers: true,
  });
  const server = await mf.createServer();
  const closed = new Promise((resolve) => server.once("connection", (socket) => socket.once("close", resolve)));
  const url = await listen(t, server);
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  const reader = res.body!.getReader();
  await reader.read();
  controller.abort();
  // The server has seen the client go, mid-stream
  await closed;
  // The worker's later writes were accepted (and dropped), as in Miniflare 2
  assert.equal(await writesFinished, "every write accepted");
  // Still serving
  const again = await fetch(url);
  assert.equal(again.status, 200);
  await again.body?.cancel();
});

test("HTTP server: POST bodies reach the worker", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: "export default { async fetch(request) { return new Response(request.method + ':' + await request.text()); } }",
  });
  const url = await serve(t, mf);
  const res = await fetch(url, { method: "POST", body: "posted body" });
  assert.equal(await res.text(), "POST:posted body");
});
