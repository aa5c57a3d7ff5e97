/**
 * The upgrading `fetch()`: http.ts hands over GET requests with
 * `Upgrade: websocket` (loading this module on the first one), which are
 * made with `ws` rather than undici.
 */
import type http from "node:http";
import { Readable } from "node:stream";
import type NodeWebSocket from "ws";
import { getRequestContext } from "../shared/context.js";
import { waitForOpenInputGate } from "../shared/sync/gate.js";
import { type Request, Response, _headersFromIncomingRequest, withInputGating } from "./http.js";
import { _kLoopHeader } from "./http-base.js";
import { MAX_MESSAGE_SIZE, WebSocketPair, _loadWS, coupleWebSocket } from "./websocket.js";

// Headers `ws` makes itself for the handshake, or that only make sense on
// the incoming request (as fetch drops them)
const HANDSHAKE_HEADERS = new Set([
  "connection",
  "upgrade",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "host",
  "cf-connecting-ip",
]);

const nullBodyStatus = [204, 205, 304];

/** A server that didn't upgrade: its response, as a normal fetch gives it */
function refusedResponse(ws: NodeWebSocket, res: http.IncomingMessage): Response {
  const status = res.statusCode ?? 500;
  // Once the body has been read (or abandoned), drop the handshake
  res.once("close", () => ws.terminate());
  let body: ReadableStream<Uint8Array> | null = null;
  if (nullBodyStatus.includes(status)) res.resume();
  else body = Readable.toWeb(res) as ReadableStream<Uint8Array>;
  const response = new Response(body, {
    status,
    statusText: res.statusMessage,
    headers: _headersFromIncomingRequest(res),
  });
  return withInputGating(response);
}

/**
 * @internal `fetch()` of a GET request with `Upgrade: websocket` (http.ts has already
 * counted the subrequest and waited for the output gate): connects with `ws`,
 * and resolves to a 101 response with the worker's end of the connection as
 * `webSocket` (to `accept()`) and the server's handshake headers. A server
 * that answers without upgrading gives its response, as a normal fetch.
 */
export async function _upgradingFetch(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `Fetch API cannot load: ${url.toString()}.\nMake sure you're using http(s):// URLs for WebSocket requests via fetch.`
    );
  }
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  const ctx = getRequestContext();
  const headers: Record<string, string> = {};
  let protocols: string[] | undefined;
  for (const [name, value] of request.headers) {
    if (name === "sec-websocket-protocol") {
      protocols = value.split(",").map((protocol) => protocol.trim()).filter((p) => p !== "");
    } else if (!HANDSHAKE_HEADERS.has(name)) {
      headers[name] = value;
    }
  }
  // Lets an upstream Miniflare detect loops, as for any fetch
  headers[_kLoopHeader] = String(ctx?.requestDepth ?? 1);

  const WS = _loadWS();
  const ws = new WS(url, protocols, {
    followRedirects: request.redirect === "follow",
    headers,
    maxPayload: MAX_MESSAGE_SIZE,
  });
  const pair = new WebSocketPair();
  const [worker, client] = [pair[0], pair[1]];

  let upgradeHeaders: Headers | undefined;
  ws.once("upgrade", (res: http.IncomingMessage) => {
    upgradeHeaders = _headersFromIncomingRequest(res);
  });
  const refused = new Promise<Response>((resolve) => {
    ws.once("unexpected-response", (_req: http.ClientRequest, res: http.IncomingMessage) =>
      resolve(refusedResponse(ws, res))
    );
  });
  const coupled = coupleWebSocket(ws, client).then(() => undefined);
  const result = await Promise.race([coupled, refused]);

  await waitForOpenInputGate();
  ctx?.advanceCurrentTime();
  return result ?? new Response(null, { status: 101, webSocket: worker, headers: upgradeHeaders });
}
