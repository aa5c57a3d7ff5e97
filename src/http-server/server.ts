import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { MiniflareCore } from "../core/core.js";
import { errorResponse } from "./error-page.js";
import { enforceHeadersDeadline } from "./headers-deadline.js";
import { type ListenerHooks, MAX_HEADERS_SIZE, checkLimits, createRequestListener } from "./listener.js";
import { LIVE_RELOAD_PATH, LiveReloadServer, injectLiveReload } from "./live-reload.js";
import {
  DEFAULT_HEADERS_TIMEOUT,
  DEFAULT_HOST,
  DEFAULT_PORT,
  DEFAULT_REQUEST_BODY_LIMIT,
  type HTTPPlugin,
  type HTTPPluginSignatures,
  getAccessibleHosts,
} from "./plugin.js";
import { closeWorkerWebSockets, handleWorkerUpgrade } from "./websocket.js";

/** Node's default: the longest a whole request may take, in ms */
const DEFAULT_REQUEST_TIMEOUT = 300_000;
/** How often Node looks for connections past their headers timeout, in ms */
const CONNECTIONS_CHECKING_INTERVAL = 1000;

/** What closing a server must also close: upgraded sockets, listeners */
const cleanups = new WeakMap<http.Server, () => Promise<void>>();

/**
 * Closes `server` for good: stops listening, ends every connection, HTTP
 * and WebSocket alike, and stops listening for reloads
 */
export async function closeServer(server: http.Server): Promise<void> {
  await cleanups.get(server)?.();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export type ServerOptions = http.ServerOptions & https.ServerOptions;

/** Writes a bare HTTP error on a socket that asked to upgrade, and closes it */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
      "Connection: close\r\nContent-Type: text/plain; charset=UTF-8\r\n" +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`
  );
}

async function httpPlugin(mf: MiniflareCore<HTTPPluginSignatures>): Promise<HTTPPlugin | undefined> {
  return (await mf.getPlugins()).HTTPPlugin;
}

/** An HTTP(S) server for `mf`, not yet listening */
export async function createServer(
  mf: MiniflareCore<HTTPPluginSignatures>,
  options: ServerOptions = {}
): Promise<http.Server | https.Server> {
  const plugin = await httpPlugin(mf);
  // Options may change at each reload: read these each time
  let liveReload = plugin?.liveReload ?? false;
  let maxConnectionsPerIp = plugin?.maxConnectionsPerIp;
  let requestBodyLimit = plugin?.requestBodyLimit ?? DEFAULT_REQUEST_BODY_LIMIT;
  const liveReloadServer = new LiveReloadServer();
  const hooks: ListenerHooks = {
    transformResponse: (response) => (liveReload ? injectLiveReload(response, liveReloadServer.script) : response),
    async renderError(error, req, showStack, headers) {
      if (!showStack) {
        return {
          status: 500,
          headers: { "Content-Type": "text/plain; charset=UTF-8" },
          body: "Internal Server Error",
        };
      }
      // The page lists the headers the worker saw, as Miniflare 2's did
      const request = { method: req.method, url: req.url, headers: headers ?? req.headers };
      return errorResponse(error, request, { liveReload, liveReloadScript: liveReloadServer.script });
    },
  };
  // The cf object is fetched (or read from its cache) in the background
  void plugin?.setupCf();
  const onReload = async () => {
    // Open pages reload when their socket closes with 1012; pages served
    // from now on carry the new version
    liveReloadServer.reload();
    const current = await httpPlugin(mf);
    liveReload = current?.liveReload ?? false;
    maxConnectionsPerIp = current?.maxConnectionsPerIp;
    requestBodyLimit = current?.requestBodyLimit ?? DEFAULT_REQUEST_BODY_LIMIT;
    // (a headersTimeout given to createServer() stays)
    if (options.headersTimeout === undefined) server.headersTimeout = headersTimeout(current?.headersTimeout);
    void current?.setupCf();
  };
  mf.addEventListener("reload", onReload);
  const upgraded = new Set<Duplex>();
  const listener = createRequestListener(mf, hooks);
  // A client that dribbles its headers (slowloris) is closed within the
  // timeout and a second. Node wants it no longer than the request timeout.
  const requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
  const headersTimeout = (configured = DEFAULT_HEADERS_TIMEOUT) =>
    requestTimeout > 0 ? Math.min(configured, requestTimeout) : configured;
  const serverOptions: ServerOptions = {
    maxHeaderSize: MAX_HEADERS_SIZE,
    headersTimeout: headersTimeout(plugin?.headersTimeout),
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL,
    ...options,
  };
  const httpsOptions = plugin?.httpsOptions;
  const server = httpsOptions
    ? https.createServer({ ...httpsOptions, ...serverOptions }, listener)
    : http.createServer(serverOptions, listener);
  // (Node's own check stays: it also closes clients that stop sending)
  enforceHeadersDeadline(server, () => server.headersTimeout);

  // At most maxConnectionsPerIp connections from one address: others are
  // closed straight away, before a byte of theirs is read. Counted even
  // without a limit, so one set at a reload counts those already open.
  const connectionsPerIp = new Map<string, number>();
  server.on("connection", (socket: Duplex & { remoteAddress?: string }) => {
    const address = socket.remoteAddress ?? "";
    const open = connectionsPerIp.get(address) ?? 0;
    if (maxConnectionsPerIp !== undefined && open >= maxConnectionsPerIp) return socket.destroy();
    connectionsPerIp.set(address, open + 1);
    socket.once("close", () => {
      const left = (connectionsPerIp.get(address) ?? 1) - 1;
      if (left > 0) connectionsPerIp.set(address, left);
      else connectionsPerIp.delete(address);
    });
  });

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
    let pathname: string;
    try {
      // (The Host header too must parse, as for any request)
      pathname = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`).pathname;
    } catch {
      return refuseUpgrade(socket, 400, "Bad Request");
    }
    const refused = checkLimits(req, requestBodyLimit);
    if (refused !== undefined) return refuseUpgrade(socket, refused[0], refused[1]);
    // Served with live reload on or off, as in Miniflare 2: only the script
    // injected into pages depends on the option
    if (pathname === LIVE_RELOAD_PATH) return liveReloadServer.handleUpgrade(req, socket, head);
    // Everything else is the worker's (it never throws)
    void handleWorkerUpgrade(mf, req, socket, head);
  });
  cleanups.set(server, async () => {
    mf.removeEventListener("reload", onReload);
    closeWorkerWebSockets(mf);
    for (const socket of upgraded) socket.destroy();
    upgraded.clear();
    await liveReloadServer.dispose();
  });
  server.once("close", () => void cleanups.get(server)?.());
  // A client that sends garbage gets a 400 (a 408 if its headers took too
  // long), never a crash
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: http.ServerResponse }) => {
    // (no status line in the middle of a response already under way)
    if (error.code === "ECONNRESET" || !socket.writable || socket._httpMessage?.headersSent) return socket.destroy();
    const status =
      error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    refuseUpgrade(socket, status, http.STATUS_CODES[status] ?? "Bad Request");
  });
  return server;
}

/**
 * The URL `--open` opens: the `open` option's, or the server's own (on the
 * port `server` listens on, if given: the `port` option may be 0)
 */
export async function getOpenURL(mf: MiniflareCore<HTTPPluginSignatures>, server?: http.Server): Promise<string | undefined> {
  const plugin = await httpPlugin(mf);
  const open = plugin?.open;
  if (!open) return undefined;
  if (typeof open === "string") return open;
  const protocol = plugin?.httpsEnabled ? "https" : "http";
  const host = plugin?.host;
  const hostname = !host || host === "0.0.0.0" || host === "::" ? "localhost" : host;
  const address = server?.address();
  const port = typeof address === "object" && address !== null ? address.port : plugin?.port ?? DEFAULT_PORT;
  return `${protocol}://${hostname}:${port}/`;
}

/** Starts the server on the HTTPPlugin's host and port */
export async function startServer(
  mf: MiniflareCore<HTTPPluginSignatures>,
  options?: ServerOptions
): Promise<http.Server | https.Server> {
  const server = await createServer(mf, options);
  const plugin = await httpPlugin(mf);
  const host = plugin?.host ?? DEFAULT_HOST;
  const port = plugin?.port ?? DEFAULT_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const protocol = plugin?.httpsEnabled ? "https" : "http";
  mf.log.info(`Listening on ${host}:${address.port}`);
  const hosts = host === "0.0.0.0" || host === "::" ? getAccessibleHosts() : [host];
  for (const accessible of hosts) {
    const shown = accessible.includes(":") ? `[${accessible}]` : accessible;
    mf.log.info(`- ${protocol}://${shown}:${address.port}`);
  }
  return server;
}
