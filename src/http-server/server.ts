import http from "node:http";
import type { AddressInfo } from "node:net";
import type { MiniflareCore } from "../core/core.js";
import { createRequestListener } from "./listener.js";
import { DEFAULT_HOST, DEFAULT_PORT, type HTTPPlugin } from "./plugin.js";

/** An HTTP server for `mf`, not yet listening */
export async function createServer(mf: MiniflareCore): Promise<http.Server> {
  await mf.getPlugins();
  return http.createServer(createRequestListener(mf));
}

/** Starts the server on the HTTPPlugin's host and port */
export async function startServer(mf: MiniflareCore): Promise<http.Server> {
  const server = await createServer(mf);
  const plugin = (await mf.getPlugins()).HTTPPlugin as HTTPPlugin | undefined;
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
  mf.log.info(`Listening on ${host}:${address.port}`);
  return server;
}
