import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { MiniflareCore } from "../core/core.js";
import { type ListenerHooks, MAX_HEADERS_SIZE, createRequestListener } from "./listener.js";
import { DEFAULT_HOST, DEFAULT_PORT, type HTTPPlugin, getAccessibleHosts } from "./plugin.js";

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

async function httpPlugin(mf: MiniflareCore): Promise<HTTPPlugin | undefined> {
  return (await mf.getPlugins()).HTTPPlugin as unknown as HTTPPlugin | undefined;
}

/** An HTTP(S) server for `mf`, not yet listening */
export async function createServer(
  mf: MiniflareCore,
  options: ServerOptions = {}
): Promise<http.Server | https.Server> {
  const plugin = await httpPlugin(mf);
  const hooks: ListenerHooks = {};
  const listener = createRequestListener(mf, hooks);
  const serverOptions: ServerOptions = { maxHeaderSize: MAX_HEADERS_SIZE, ...options };
  const httpsOptions = plugin?.httpsOptions;
  const server = httpsOptions
    ? https.createServer({ ...httpsOptions, ...serverOptions }, listener)
    : http.createServer(serverOptions, listener);

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    refuseUpgrade(socket, 501, "WebSockets are not supported yet");
    void head;
  });
  // A client that sends garbage gets a 400, never a crash
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) return socket.destroy();
    const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
    refuseUpgrade(socket, status, http.STATUS_CODES[status] ?? "Bad Request");
  });
  return server;
}

/** The URL `--open` opens: the `open` option's, or the server's own */
export async function getOpenURL(mf: MiniflareCore): Promise<string | undefined> {
  const plugin = await httpPlugin(mf);
  const open = plugin?.open;
  if (!open) return undefined;
  if (typeof open === "string") return open;
  const protocol = plugin?.httpsEnabled ? "https" : "http";
  const host = plugin?.host;
  const hostname = !host || host === "0.0.0.0" || host === "::" ? "localhost" : host;
  return `${protocol}://${hostname}:${plugin?.port ?? DEFAULT_PORT}/`;
}

/** Starts the server on the HTTPPlugin's host and port */
export async function startServer(
  mf: MiniflareCore,
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
