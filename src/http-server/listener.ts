import type http from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { MiniflareCore } from "../core/core.js";
import { logResponse } from "../standards/index.js";
import { convertNodeRequest } from "./request.js";

/** A Node request listener that dispatches to the worker */
export function createRequestListener(mf: MiniflareCore, secure = false): http.RequestListener {
  return async (req, res) => {
    const start = process.hrtime();
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    let request;
    try {
      request = convertNodeRequest(req, secure);
    } catch (e: any) {
      res.writeHead(400, { "Content-Type": "text/plain; charset=UTF-8" });
      res.end(`Bad Request: ${e?.message ?? e}`);
      return;
    }
    let status = 500;
    let waitUntil: Promise<unknown[]> | undefined;
    try {
      const response = await mf.dispatchFetch(request);
      status = response.status;
      waitUntil = response.waitUntil();
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of response.headers) {
        // Several Set-Cookie headers must stay separate
        if (name !== "set-cookie") headers[name] = value;
      }
      const cookies = response.headers.getSetCookie();
      if (cookies.length > 0) headers["set-cookie"] = cookies;
      res.writeHead(status, headers);
      if (response.body === null || method === "HEAD") {
        res.end();
      } else {
        await pipeline(Readable.fromWeb(response.body as any), res);
      }
    } catch (e: any) {
      mf.log.error(e);
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain; charset=UTF-8" });
        res.end(String(e?.stack ?? e));
      } else {
        res.destroy();
      }
    }
    await logResponse(mf.log, { start, method, url: path, status, waitUntil });
  };
}
