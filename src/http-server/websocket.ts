/**
 * The HTTP server's side of WebSockets. An upgrade request is dispatched to
 * the worker like any other request. If the worker answers 101 with a
 * `webSocket` (one end of a `WebSocketPair`), `ws` completes the handshake
 * and the connection is coupled to that end; any other answer is written as
 * a normal HTTP response.
 *
 * `ws` negotiates nothing itself: no subprotocol (the worker must echo
 * `Sec-WebSocket-Protocol`, as in production) and no compression. The
 * worker's response headers are added to the 101, except those describing
 * the handshake itself.
 *
 * Nothing a client or a worker does here may bring the process down: a
 * message over 1 MiB closes that connection with 1009, and every error is
 * answered (400 or 500) and logged, never thrown.
 */
import http from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket as NodeWebSocket, WebSocketServer } from "ws";
import type { MiniflareCore } from "../core/core.js";
import { prefixError } from "../shared/errors.js";
import { type Request, type Response, logResponse } from "../standards/http.js";
import {
  MAX_MESSAGE_SIZE,
  WebSocket,
  _assertCouplable,
  coupleWebSocket,
} from "../standards/websocket.js";
import { safeLog, writeResponse } from "./listener.js";
import type { HTTPPluginSignatures } from "./plugin.js";
import { convertNodeRequest, isLoopback } from "./request.js";

export { coupleWebSocket };

/** Logged when the worker answers an upgrade request without upgrading */
export const NOT_UPGRADED_MESSAGE =
  "Web Socket request did not return status 101 Switching Protocols response with Web Socket";

// Response headers that describe the worker's handshake, not this one
const HANDSHAKE_HEADERS = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  // This server negotiates no extension: promising one breaks the client
  "sec-websocket-extensions",
]);

const noop = () => {};

interface UpgradeServer {
  wss: WebSocketServer;
  /** Worker response headers to add to each request's 101 */
  extraHeaders: WeakMap<http.IncomingMessage, Headers>;
}

// One `ws` server per Miniflare instance, made on its first upgrade
const upgradeServers = new WeakMap<MiniflareCore<HTTPPluginSignatures>, UpgradeServer>();

function closeEach(wss: WebSocketServer, code: number, reason: string): void {
  for (const ws of wss.clients) {
    try {
      ws.close(code, reason);
    } catch {
      ws.terminate();
    }
  }
}

function upgradeServerFor(mf: MiniflareCore<HTTPPluginSignatures>): UpgradeServer {
  let server = upgradeServers.get(mf);
  if (server !== undefined) return server;
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: () => false,
    maxPayload: MAX_MESSAGE_SIZE,
    perMessageDeflate: false,
  });
  const extraHeaders = new WeakMap<http.IncomingMessage, Headers>();
  wss.on("error", noop);
  wss.on("headers", (headers: string[], req: http.IncomingMessage) => {
    const extra = extraHeaders.get(req);
    extraHeaders.delete(req);
    for (const [name, value] of extra ?? []) {
      if (!HANDSHAKE_HEADERS.has(name)) headers.push(`${name}: ${value}`);
    }
  });
  // The new script can't use the old script's connections: clients should
  // reconnect (1012 "Service Restart")
  mf.addEventListener("reload", () => closeEach(wss, 1012, "Service Restart"));
  server = { wss, extraHeaders };
  upgradeServers.set(mf, server);
  return server;
}

/**
 * Closes every connection the server coupled to `mf`'s worker, e.g. when
 * the server shuts down (1001 "Going Away" by default)
 */
export function closeWorkerWebSockets(mf: MiniflareCore<HTTPPluginSignatures>, code = 1001, reason = "Going Away"): void {
  const server = upgradeServers.get(mf);
  if (server !== undefined) closeEach(server.wss, code, reason);
}

/** Answers an upgrade request on its raw socket, then closes it */
function writeRaw(socket: Duplex, status: number, body = ""): void {
  if (socket.destroyed) return;
  const headers = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}`,
    "Connection: close",
    ...(body === "" ? [] : ["Content-Type: text/plain; charset=UTF-8"]),
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  socket.end(`${headers.join("\r\n")}\r\n\r\n${body}`);
}

/** Writes a worker's (non-upgrading) response on an upgrade request's socket */
async function writeOnSocket(
  mf: MiniflareCore<HTTPPluginSignatures>,
  req: http.IncomingMessage,
  socket: Duplex,
  response: Response
): Promise<void> {
  if (socket.destroyed) return;
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.on("error", noop);
  // (An upgrade request's socket is always a net.Socket, TLS or not)
  res.assignSocket(socket as net.Socket);
  res.once("finish", () => {
    res.detachSocket(socket as net.Socket);
    socket.end();
  });
  try {
    await writeResponse(response, res, mf.log);
  } catch {
    // e.g. the body errored half-way: all the client can be told is that
    socket.destroy();
  }
}

function logError(mf: MiniflareCore<HTTPPluginSignatures>, error: unknown): Promise<void> {
  return safeLog(mf.log, () => mf.log.error(error as Error));
}

interface UpgradeResult {
  status: number;
  waitUntil?: Promise<unknown[]>;
}

async function dispatchUpgrade(
  mf: MiniflareCore<HTTPPluginSignatures>,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer
): Promise<UpgradeResult> {
  const plugins = await mf.getPlugins();
  const HTTP = plugins.HTTPPlugin;
  const meta = await HTTP?.getRequestMeta(req);
  // The parser has let go of an upgrade request: a body would never end
  if (!req.complete && req.method !== "GET" && req.method !== "HEAD") req.push(null);
  let request: Request;
  try {
    request = convertNodeRequest(req, { meta }).request;
  } catch {
    // A URL or Host header that doesn't parse
    writeRaw(socket, 400, "Bad Request");
    return { status: 400 };
  }

  let response: Response;
  try {
    response = await mf.dispatchFetch(request);
  } catch (e: any) {
    // Stack traces only go to this machine
    writeRaw(socket, 500, isLoopback(req) ? String(e?.stack ?? e) : "Internal Server Error");
    await logError(mf, prefixError(`${req.method} ${req.url}`, e));
    return { status: 500 };
  }
  const waitUntil = response.waitUntil();
  // Ignore what the waitUntil promises reject with until the log gets it
  waitUntil.catch(noop);

  const webSocket: unknown = response.webSocket;
  const upgrade = req.headers.upgrade?.toLowerCase() === "websocket";
  if (upgrade && response.status === 101 && webSocket !== undefined) {
    try {
      if (!(webSocket instanceof WebSocket)) throw new TypeError(NOT_UPGRADED_MESSAGE);
      _assertCouplable(webSocket);
    } catch (e) {
      writeRaw(socket, 500);
      await logError(mf, e);
      return { status: 500, waitUntil };
    }
    const { wss, extraHeaders } = upgradeServerFor(mf);
    extraHeaders.set(req, response.headers);
    try {
      wss.handleUpgrade(req, socket, head, (ws: NodeWebSocket) => {
        coupleWebSocket(ws, webSocket).catch((e) => {
          ws.terminate();
          void logError(mf, e);
        });
      });
    } catch {
      // e.g. the socket was already handed to a WebSocket server
      socket.destroy();
    }
    return { status: 101, waitUntil };
  }

  if (upgrade && response.status < 300) {
    writeRaw(socket, 500);
    await logError(mf, new TypeError(NOT_UPGRADED_MESSAGE));
    return { status: 500, waitUntil };
  }
  // Statuses that refuse the upgrade (and answers to other upgrades, e.g.
  // h2c, which aren't WebSockets) are written as they are
  await writeOnSocket(mf, req, socket, response);
  return { status: response.status, waitUntil };
}

/**
 * Handles an HTTP server's "upgrade" event for `mf`'s worker (see the file
 * comment). Never throws, and leaves no rejection unhandled.
 */
export async function handleWorkerUpgrade(
  mf: MiniflareCore<HTTPPluginSignatures>,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer
): Promise<void> {
  // A client resetting mid-handshake emits "error" with nobody else listening
  socket.on("error", noop);
  const start = process.hrtime();
  const method = req.method ?? "GET";
  const url = req.url ?? "/";
  let result: UpgradeResult;
  try {
    result = await dispatchUpgrade(mf, req, socket, head);
  } catch (e) {
    // Anything unexpected (e.g. a failing metaProvider): still an answer
    result = { status: 500 };
    try {
      writeRaw(socket, 500, "Internal Server Error");
    } catch {
      socket.destroy();
    }
    await logError(mf, prefixError(`${method} ${url}`, e));
  }
  // (Upgrades don't wait for waitUntil: the log line comes when it's done)
  void safeLog(mf.log, () => logResponse(mf.log, { start, method, url, ...result }));
}
