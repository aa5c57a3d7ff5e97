import type http from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { blue, bold, green, grey, red, yellow } from "kleur/colors";
import type { MiniflareCore } from "../core/core.js";
import type { Log } from "../shared/log.js";
import { convertNodeRequest } from "./request.js";

function colourStatus(status: number): (s: string) => string {
  if (200 <= status && status < 300) return green;
  if (400 <= status && status < 500) return yellow;
  if (500 <= status) return red;
  return blue;
}

/** `GET /path 200 OK (3.21ms)` */
export function logResponse(
  log: Log,
  { method, url, status, statusText, start }: {
    method: string;
    url: string;
    status?: number;
    statusText?: string;
    start: number;
  }
): void {
  const ms = (performance.now() - start).toFixed(2);
  const path = new URL(url).pathname;
  const statusText2 = status === undefined ? "" : colourStatus(status)(`${status} ${statusText ?? ""}`.trimEnd());
  log.log(`${bold(method)} ${path} ${statusText2} ${grey(`(${ms}ms)`)}`);
}

/** A Node request listener that dispatches to the worker */
export function createRequestListener(mf: MiniflareCore, secure = false): http.RequestListener {
  return async (req, res) => {
    const start = performance.now();
    let request;
    try {
      request = convertNodeRequest(req, secure);
    } catch (e: any) {
      res.writeHead(400, { "Content-Type": "text/plain; charset=UTF-8" });
      res.end(`Bad Request: ${e?.message ?? e}`);
      return;
    }
    let status = 500;
    let statusText = "Internal Server Error";
    try {
      const response = await mf.dispatchFetch(request);
      status = response.status;
      statusText = response.statusText;
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of response.headers) {
        // Several Set-Cookie headers must stay separate
        if (name === "set-cookie") continue;
        headers[name] = value;
      }
      const cookies = response.headers.getSetCookie();
      if (cookies.length > 0) headers["set-cookie"] = cookies;
      res.writeHead(status, statusText, headers);
      if (response.body === null || req.method === "HEAD") {
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
    logResponse(mf.log, { method: req.method ?? "GET", url: request.url, status, statusText, start });
  };
}
