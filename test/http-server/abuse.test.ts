import assert from "node:assert/strict";
import type http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { closeServer } from "../../src/http-server/server.js";
import { useMiniflare } from "../helpers/miniflare.js";

async function listen(t: TestContext, server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => closeServer(server));
  return (server.address() as AddressInfo).port;
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

  const start = Date.now();
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "served");
  }
  assert.ok(Date.now() - start < 5000, `20 requests took ${Date.now() - start}ms`);
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
  const port = await listen(t, (await mf.createServer()) as http.Server);

  // Asks for 20 MiB, then never reads
  const stalled = await connect(port);
  stalled.on("error", () => {});
  t.after(() => stalled.destroy());
  stalled.write("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const head = await new Promise<string>((resolve) => stalled.once("data", (data) => resolve(String(data))));
  assert.match(head, /^HTTP\/1\.1 200 OK/);
  stalled.pause();
  await sleep(200);

  const start = Date.now();
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "small");
  }
  assert.ok(Date.now() - start < 5000, `20 requests took ${Date.now() - start}ms`);
  // The stalled response is held by backpressure, not buffered whole
  assert.ok(process.memoryUsage().rss < 2 * 1024 ** 3);
});

test("HTTP server: a client that goes away mid-stream is forgotten, and the stream is cancelled", async (t) => {
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

  // The server keeps serving, and stops pulling from the endless stream
  let count = "0";
  for (let i = 0; i < 50 && count === "0"; i++) {
    await sleep(20);
    count = await (await fetch(`http://127.0.0.1:${port}/count`)).text();
  }
  assert.equal(count, "1");
});
