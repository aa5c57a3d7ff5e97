import assert from "node:assert/strict";
import type http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { closeServer } from "../../src/http-server/server.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { until } from "../helpers/sync.js";

async function listen(t: TestContext, server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => closeServer(server));
  return (server.address() as AddressInfo).port;
}

/** Whether `text` holds a whole HTTP response (headers, and the body its Content-Length says) */
function isWhole(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return false;
  const length = /^content-length: *(\d+)/im.exec(text.slice(0, end));
  return Buffer.byteLength(text.slice(end + 4)) >= Number(length?.[1] ?? 0);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", reject);
  });
}

test("HTTP server: clients dribbling headers (slowloris) don't stop others being served", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: 'export default { fetch() { return new Response("served"); } }',
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);

  const slow: net.Socket[] = [];
  t.after(() => {
    for (const socket of slow) socket.destroy();
  });
  for (let i = 0; i < 300; i++) {
    const socket = await connect(port);
    socket.on("error", () => {});
    socket.write("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
    slow.push(socket);
  }
  // Keep them dribbling while real requests come in
  const dribble = setInterval(() => {
    for (const socket of slow) if (!socket.destroyed) socket.write("a");
  }, 50);
  t.after(() => clearInterval(dribble));

  // Held back by the slow clients, they would wait for the 20 s headers
  // timeout to free the server: any bound well below it tells
  const start = Date.now();
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "served");
  }
  assert.ok(Date.now() - start < 15_000, `20 requests took ${Date.now() - start}ms`);
});

test("HTTP server: clients dribbling headers are closed once the headers timeout passes (check 32)", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: 'export default { fetch() { return new Response("served"); } }',
    headersTimeout: 500,
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);

  const slow: { socket: net.Socket; closedAt?: number; received: string; lines: boolean }[] = [];
  t.after(() => {
    for (const { socket } of slow) socket.destroy();
  });
  const start = Date.now();
  for (let i = 0; i < 50; i++) {
    const socket = await connect(port);
    // Half send a byte at a time, half a whole header line at a time (which
    // restarts Node's own timer, so only our deadline closes those)
    const entry: (typeof slow)[number] = { socket, received: "", lines: i % 2 === 1 };
    socket.on("error", () => {});
    socket.on("data", (data) => (entry.received += data));
    socket.on("close", () => (entry.closedAt = Date.now()));
    socket.write(entry.lines ? "GET / HTTP/1.1\r\nHost: localhost\r\n" : "GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
    slow.push(entry);
  }
  let line = 0;
  const dribble = setInterval(() => {
    line++;
    for (const { socket, lines } of slow) if (!socket.destroyed) socket.write(lines ? `X-Line-${line}: v\r\n` : "a");
  }, 125);
  t.after(() => clearInterval(dribble));

  // Served meanwhile
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "served");
  // Every slow client is closed, with a 408, after the timeout, and well
  // before Node's defaults would have (60 s, checked every 30 s)
  await until(() => slow.every((entry) => entry.closedAt !== undefined), "every slow client closed", 20_000);
  for (const { closedAt, received } of slow) {
    assert.ok(closedAt !== undefined);
    assert.ok(closedAt - start >= 450, `closed after ${closedAt - start} ms, before the timeout`);
    assert.match(received, /^HTTP\/1\.1 408 Request Timeout/);
  }
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "served");
});

test("HTTP server: a connection that sends nothing is closed at the headers timeout without a 408", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: 'export default { fetch() { return new Response("served"); } }',
    headersTimeout: 300,
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);
  const socket = await connect(port);
  t.after(() => socket.destroy());
  let received = "";
  socket.on("data", (data) => (received += data));
  socket.on("error", () => {});
  const start = Date.now();
  await new Promise((resolve) => socket.once("close", resolve));
  assert.ok(Date.now() - start >= 250, `closed after ${Date.now() - start} ms`);
  // Closed without a word: a 408 could be taken for the answer to a request
  // the client was just sending on its spare connection
  assert.equal(received, "");
});

test("HTTP server: the headers timeout is 20 s by default, and follows reloads", async (t) => {
  const mf = useMiniflare(t, { script: "addEventListener('fetch', (e) => e.respondWith(new Response('')))" });
  const server = (await mf.createServer()) as http.Server;
  await listen(t, server);
  assert.equal(server.headersTimeout, 20_000);
  await mf.setOptions({ headersTimeout: 5_000 });
  // (the server reads it in its reload listener)
  await until(() => (server.headersTimeout as number) === 5_000, "the new headers timeout");
  assert.equal(server.headersTimeout, 5_000);
});

test("HTTP server: maxConnectionsPerIp closes connections over the limit, and frees a place when one closes", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: 'export default { fetch() { return new Response("served"); } }',
    maxConnectionsPerIp: 3,
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);
  const sockets: net.Socket[] = [];
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const request = (socket: net.Socket) =>
    new Promise<string>((resolve) => {
      let received = "";
      socket.on("data", (data) => (received += data));
      socket.on("error", () => {});
      socket.once("close", () => resolve(received));
      socket.write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    });
  for (let i = 0; i < 3; i++) sockets.push(await connect(port));
  // The fourth is closed without an answer
  const fourth = await connect(port);
  sockets.push(fourth);
  assert.equal(await request(fourth), "");
  // One of the three leaves: a new connection is served (once the server
  // has seen the close)
  sockets[0].destroy();
  let answer = "";
  await until(async () => {
    const next = await connect(port);
    sockets.push(next);
    answer = await request(next);
    return answer !== "";
  }, "a new connection served");
  assert.match(answer, /^HTTP\/1\.1 200 OK[\s\S]*served$/);
  // The other two were never refused
  assert.match(await request(sockets[1]), /served$/);
});

test("HTTP server: a client that doesn't read its response doesn't wedge others", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    compatibilityFlags: ["streams_enable_constructors"],
    script: `export default {
      fetch(request) {
        if (new URL(request.url).pathname !== "/big") return new Response("small");
        const chunk = new Uint8Array(64 * 1024).fill(97);
        let sent = 0;
        return new Response(new ReadableStream({
          pull(controller) {
            if (sent++ < 320) controller.enqueue(chunk); // 20 MiB
            else controller.close();
          },
        }));
      },
    }`,
  });
  const server = (await mf.createServer()) as http.Server;
  let big: http.ServerResponse | undefined;
  server.on("request", (req, res) => req.url === "/big" && (big = res));
  const port = await listen(t, server);

  // Asks for 20 MiB, then never reads
  const stalled = await connect(port);
  stalled.on("error", () => {});
  t.after(() => stalled.destroy());
  stalled.write("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const head = await new Promise<string>((resolve) => stalled.once("data", (data) => resolve(String(data))));
  assert.match(head, /^HTTP\/1\.1 200 OK/);
  stalled.pause();
  // The server is held back writing it
  await until(() => big?.writableNeedDrain === true, "backpressure from the stalled client");

  // Wedged, they would wait for ever: any bound tells
  const start = Date.now();
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "small");
  }
  assert.ok(Date.now() - start < 15_000, `20 requests took ${Date.now() - start}ms`);
  // The stalled response is held by backpressure, not buffered whole
  assert.ok(process.memoryUsage().rss < 2 * 1024 ** 3);
});

test("HTTP server: a client that goes away mid-stream is forgotten, and an endless stream is cancelled (after at most 1 MiB more)", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    compatibilityFlags: ["streams_enable_constructors"],
    script: `let cancelled = 0;
    export default {
      fetch(request) {
        if (new URL(request.url).pathname === "/count") return new Response(String(cancelled));
        const chunk = new Uint8Array(64 * 1024).fill(98);
        return new Response(new ReadableStream({
          pull(controller) { controller.enqueue(chunk); },
          cancel() { cancelled++; },
        }));
      },
    }`,
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);

  const socket = await connect(port);
  socket.on("error", () => {});
  socket.write("GET /endless HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const head = await new Promise<string>((resolve) => socket.once("data", (data) => resolve(String(data))));
  assert.match(head, /^HTTP\/1\.1 200 OK/);
  socket.destroy();

  // The server keeps serving, and soon stops pulling from the endless stream
  let count = "0";
  await until(async () => {
    count = await (await fetch(`http://127.0.0.1:${port}/count`)).text();
    return count !== "0";
  }, "the stream cancelled");
  assert.equal(count, "1");
});

test("HTTP server: an upgrade request over requestBodyLimit gets a 413 before the worker runs", async (t) => {
  let ran = false;
  const mf = useMiniflare(t, {
    modules: true,
    // (a refusal: a 2xx answer to an upgrade is a 500, as in Miniflare 2)
    script: 'export default { fetch() { markRan(); return new Response("worker", { status: 403 }); } }',
    requestBodyLimit: 1024,
    globals: { markRan: () => (ran = true) },
  });
  const port = await listen(t, (await mf.createServer()) as http.Server);
  // The answer, once it's whole (the client then ends the connection)
  const request = (length: number) =>
    new Promise<string>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      let received = "";
      socket.on("data", (data) => {
        received += data;
        if (isWhole(received)) socket.end();
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve(received));
      socket.write(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          `Content-Length: ${length}\r\n\r\n`
      );
    });
  assert.match(await request(1025), /^HTTP\/1\.1 413 Payload Too Large/);
  assert.equal(ran, false);
  // At the limit, the worker gets it, and its refusal is sent
  assert.match(await request(1024), /^HTTP\/1\.1 403 Forbidden[\s\S]*worker$/);
  assert.equal(ran, true);
});
