import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { WebSocket as NodeWebSocket } from "ws";
import { createRequestListener } from "../../src/http-server/listener.js";
import {
  NOT_UPGRADED_MESSAGE,
  closeWorkerWebSockets,
  coupleWebSocket,
  handleWorkerUpgrade,
} from "../../src/http-server/websocket.js";
import type { MiniflareOptions } from "../../src/miniflare.js";
import { coupleWebSocket as standardsCouple } from "../../src/standards/websocket.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { flushTurns, until } from "../helpers/sync.js";
import { watchProcess } from "../helpers/websocket.js";

// A worker echoing every message ("echo:" before text), reporting its close
// events back as a last message, and closing when asked to
const ECHO_WORKER = `
export default {
  fetch(request) {
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener("message", (event) => {
      const data = event.data;
      if (typeof data !== "string") return server.send(data);
      if (data === "close-me") return server.close(4001, "worker done");
      if (data === "close-me-plain") return server.close();
      if (data === "close-me-long") return server.close(1000, "x".repeat(200));
      server.send("echo:" + data);
    });
    server.addEventListener("close", (event) => {
      globalThis.lastClose = event.code + ":" + event.reason;
    });
    const headers = { "X-Extra": "added", "Set-Cookie": "a=1" };
    const protocol = request.headers.get("Sec-WebSocket-Protocol");
    if (protocol) headers["Sec-WebSocket-Protocol"] = protocol.split(",")[0].trim();
    return new Response(null, { status: 101, webSocket: client, headers });
  },
};
`;

interface Served {
  port: number;
  url: string;
  log: TestLog;
}

/** `mf` served by its own http.Server, upgrades going to handleWorkerUpgrade */
async function serve(t: TestContext, options: MiniflareOptions): Promise<Served> {
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, ...options });
  const server = http.createServer(createRequestListener(mf));
  server.on("upgrade", (req, socket, head) => handleWorkerUpgrade(mf, req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    closeWorkerWebSockets(mf);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { port, url: `ws://127.0.0.1:${port}`, log };
}

/** An open `ws` client, terminated after the test */
async function connect(t: TestContext, url: string, protocols?: string[]): Promise<NodeWebSocket> {
  const ws = new NodeWebSocket(url, protocols);
  t.after(() => ws.terminate());
  await once(ws, "open");
  return ws;
}

/** The next message `ws` receives, as a string or a Buffer */
async function nextMessage(ws: NodeWebSocket): Promise<string | Buffer> {
  const [data, isBinary] = (await once(ws, "message")) as [Buffer, boolean];
  return isBinary ? data : data.toString();
}

/** Resolves with the status and headers of a refused upgrade */
function refusedUpgrade(url: string): Promise<http.IncomingMessage> {
  const ws = new NodeWebSocket(url);
  ws.on("error", () => {});
  return new Promise((resolve) => ws.on("unexpected-response", (_req, res) => resolve(res)));
}

async function readBody(res: http.IncomingMessage): Promise<string> {
  let body = "";
  for await (const chunk of res) body += chunk;
  return body;
}

test("handleWorkerUpgrade: messages pass both ways, text and binary", async (t) => {
  const { url } = await serve(t, { script: ECHO_WORKER });
  const ws = await connect(t, url);
  ws.send("hello");
  assert.equal(await nextMessage(ws), "echo:hello");
  ws.send(Buffer.from([1, 2, 3]));
  assert.deepEqual(await nextMessage(ws), Buffer.from([1, 2, 3]));
});

test("handleWorkerUpgrade: the worker's headers are added to the 101, except the handshake's own", async (t) => {
  const { url } = await serve(t, {
    script: `export default {
      fetch() {
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        return new Response(null, {
          status: 101,
          webSocket: client,
          headers: {
            "X-Extra": "added",
            Upgrade: "something-else",
            Connection: "keep-alive",
            "Sec-WebSocket-Accept": "forged",
            "Sec-WebSocket-Extensions": "permessage-deflate",
          },
        });
      },
    }`,
  });
  const ws = new NodeWebSocket(url);
  t.after(() => ws.terminate());
  const upgraded = once(ws, "upgrade") as Promise<[http.IncomingMessage]>;
  const opened = once(ws, "open");
  const [res] = await upgraded;
  await opened;
  assert.equal(res.headers["x-extra"], "added");
  assert.equal(res.headers.upgrade, "websocket");
  assert.equal(res.headers.connection, "Upgrade");
  assert.equal(res.headers["sec-websocket-extensions"], undefined);
});

test("handleWorkerUpgrade: no subprotocol is chosen unless the worker echoes one", async (t) => {
  const { url } = await serve(t, { script: ECHO_WORKER });
  // The echo worker answers with the first one asked for
  const ws = await connect(t, url, ["chat", "other"]);
  assert.equal(ws.protocol, "chat");

  const { url: silentUrl } = await serve(t, {
    script: `export default {
      fetch() {
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        return new Response(null, { status: 101, webSocket: client });
      },
    }`,
  });
  const silent = new NodeWebSocket(silentUrl, ["chat"]);
  const [error] = (await once(silent, "error")) as [Error];
  assert.equal(error.message, "Server sent no subprotocol");
});

test("handleWorkerUpgrade: the client closing reaches the worker with its code and reason", async (t) => {
  const { url } = await serve(t, {
    script: `
    let closed;
    export default {
      fetch(request) {
        if (new URL(request.url).pathname === "/last") return new Response(closed);
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        server.addEventListener("close", (event) => {
          closed = [event.code, event.reason, event.wasClean].join(":");
          server.close(event.code, event.reason);
        });
        return new Response(null, { status: 101, webSocket: client });
      },
    }`,
  });
  const ws = await connect(t, url);
  const closed = once(ws, "close");
  ws.close(4000, "client done");
  const [code, reason] = await closed;
  assert.equal(code, 4000);
  assert.equal(reason.toString(), "client done");
  // The worker hears of it after the client does
  let last = "";
  await until(async () => {
    last = await (await fetch(`http://127.0.0.1:${new URL(url).port}/last`)).text();
    return last !== "";
  }, "the worker's close event");
  assert.equal(last, "4000:client done:true");
});

test("handleWorkerUpgrade: the worker closing reaches the client (1005 without a code)", async (t) => {
  const { url } = await serve(t, { script: ECHO_WORKER });
  const ws = await connect(t, url);
  ws.send("close-me");
  const [code, reason] = await once(ws, "close");
  assert.equal(code, 4001);
  assert.equal(reason.toString(), "worker done");

  const plain = await connect(t, url);
  plain.send("close-me-plain");
  const [plainCode] = await once(plain, "close");
  assert.equal(plainCode, 1005);
});

test("handleWorkerUpgrade: a non-101 answer is a 500, and the error is logged", async (t) => {
  const { url, log } = await serve(t, { script: 'export default { fetch: () => new Response("not a socket") }' });
  const res = await refusedUpgrade(url);
  assert.equal(res.statusCode, 500);
  await until(() => log.errors.length > 0, "the error logged");
  await flushTurns();
  assert.deepEqual(
    log.errors.map((error) => error.message),
    [NOT_UPGRADED_MESSAGE]
  );
  assert.equal(NOT_UPGRADED_MESSAGE, "Web Socket request did not return status 101 Switching Protocols response with Web Socket");
});

test("handleWorkerUpgrade: other statuses are written as normal responses", async (t) => {
  const { url } = await serve(t, {
    script: `export default {
      fetch: () => new Response("go away", { status: 403, headers: { "X-Why": "forbidden" } }),
    }`,
  });
  const res = await refusedUpgrade(url);
  assert.equal(res.statusCode, 403);
  assert.equal(res.headers["x-why"], "forbidden");
  assert.equal(await readBody(res), "go away");
});

test("handleWorkerUpgrade: a throwing worker gives a 500, and the process carries on", async (t) => {
  const escaped = watchProcess(t);
  const { url, log } = await serve(t, { script: 'export default { fetch() { throw new Error("worker broke"); } }' });
  const res = await refusedUpgrade(url);
  assert.equal(res.statusCode, 500);
  assert.match(await readBody(res), /Error: worker broke/);
  await until(() => log.errors.length > 0, "the error logged");
  assert.match(String(log.errors[0].stack), /^GET \/: Error: worker broke/);
  assert.deepEqual(escaped, []);
});

test("handleWorkerUpgrade: a socket that can't be returned gives a 500 with the reason logged", async (t) => {
  const { url, log } = await serve(t, {
    script: `
    let reused;
    export default {
      fetch(request) {
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        if (new URL(request.url).pathname === "/accepted") {
          client.accept();
          return new Response(null, { status: 101, webSocket: client });
        }
        reused ??= client;
        return new Response(null, { status: 101, webSocket: reused });
      },
    }`,
  });
  await connect(t, `${url}/reused`);
  assert.equal((await refusedUpgrade(`${url}/reused`)).statusCode, 500);
  assert.equal((await refusedUpgrade(`${url}/accepted`)).statusCode, 500);
  await until(() => log.errors.length >= 2, "both errors logged");
  await flushTurns();
  assert.deepEqual(
    log.errors.map((error) => error.message),
    [
      "Can't return WebSocket that was already used in a response.",
      "Can't return WebSocket in a Response after calling accept().",
    ]
  );
});

test("handleWorkerUpgrade: a malformed Host gets a 400, and the next request works", async (t) => {
  const escaped = watchProcess(t);
  const { port, url } = await serve(t, { script: ECHO_WORKER });
  const socket = net.connect(port, "127.0.0.1");
  socket.write(
    "GET / HTTP/1.1\r\nHost: [bad\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
  );
  let response = "";
  for await (const chunk of socket) response += chunk;
  assert.match(response, /^HTTP\/1\.1 400 Bad Request/);
  const ws = await connect(t, url);
  ws.send("still here");
  assert.equal(await nextMessage(ws), "echo:still here");
  assert.deepEqual(escaped, []);
});

test("handleWorkerUpgrade: a message over 1 MiB closes that connection with 1009; others carry on", async (t) => {
  const escaped = watchProcess(t);
  const { url } = await serve(t, {
    script: `
    let largest = 0;
    export default {
      fetch(request) {
        if (new URL(request.url).pathname === "/largest") return new Response(String(largest));
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        server.addEventListener("message", (event) => {
          const size = typeof event.data === "string" ? event.data.length : event.data.byteLength;
          largest = Math.max(largest, size);
          server.send(String(size));
        });
        return new Response(null, { status: 101, webSocket: client });
      },
    }`,
  });
  const bystander = await connect(t, url);
  const ws = await connect(t, url);
  ws.send(Buffer.alloc(1024 * 1024));
  assert.equal(await nextMessage(ws), String(1024 * 1024));
  ws.send(Buffer.alloc(1024 * 1024 + 1));
  const [code] = await once(ws, "close");
  assert.equal(code, 1009);

  bystander.send("small");
  assert.equal(await nextMessage(bystander), "5");
  const res = await fetch(`http://127.0.0.1:${new URL(url).port}/largest`);
  assert.equal(await res.text(), String(1024 * 1024));
  assert.deepEqual(escaped, []);
});

test("handleWorkerUpgrade: 200-byte close reasons, from a client or a worker, never crash", async (t) => {
  const escaped = watchProcess(t);
  const reported: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void reported.push(args);
  t.after(() => {
    console.error = original;
  });
  const { port, url } = await serve(t, { script: ECHO_WORKER });

  // A client sending a close frame with a 200-byte reason (no library would)
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write(
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
  );
  await once(socket, "data");
  const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(200, "r")]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = payload.map((byte, i) => byte ^ mask[i % 4]);
  const header = Buffer.from([0x88, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  socket.write(Buffer.concat([header, mask, masked]));
  await once(socket, "close");

  // A worker closing with a 200-byte reason: the TypeError stays in the worker
  const ws = await connect(t, url);
  ws.send("close-me-long");
  ws.send("after");
  assert.equal(await nextMessage(ws), "echo:after");
  await until(() => reported.some(([, error]) => (error as Error)?.name === "TypeError"), "the TypeError reported");
  assert.deepEqual(escaped, []);
});

test("handleWorkerUpgrade: a reload closes the worker's connections with 1012 Service Restart", async (t) => {
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, script: ECHO_WORKER });
  const server = http.createServer(createRequestListener(mf));
  server.on("upgrade", (req, socket, head) => handleWorkerUpgrade(mf, req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const ws = await connect(t, `ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const closed = once(ws, "close");
  await mf.reload();
  const [code, reason] = await closed;
  assert.equal(code, 1012);
  assert.equal(reason.toString(), "Service Restart");
});

test("handleWorkerUpgrade: requests are logged, 101s included", async (t) => {
  const { url, log } = await serve(t, { script: ECHO_WORKER });
  await connect(t, `${url}/logged`);
  const logged = () => log.logs.some(([, message]) => /GET \/logged .*101 Switching Protocols/.test(message));
  await until(logged, "the request logged");
});

test("coupleWebSocket: is the standards module's", () => {
  assert.equal(coupleWebSocket, standardsCouple);
});
