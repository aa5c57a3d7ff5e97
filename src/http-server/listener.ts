import type http from "node:http";
import zlib from "node:zlib";
import type { MiniflareCore } from "../core/core.js";
import { prefixError } from "../shared/errors.js";
import type { Log } from "../shared/log.js";
import { type Response, _getBodyLength, logResponse } from "../standards/index.js";
import { convertNodeRequest } from "./request.js";

// Describe the connection to the worker or upstream, not to this client
const HOP_BY_HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding"]);

/**
 * Writes `response` to `res`. Bodies reach the worker decoded (fetch
 * decompresses), so when Content-Encoding is set and `encodeBody` is
 * "automatic", the body is compressed again to match it.
 */
export async function writeResponse(response: Response, res: http.ServerResponse, log?: Log): Promise<void> {
  const headers: Record<string, string | string[] | number> = {};
  for (const [name, value] of response.headers) {
    if (name === "content-length" || name === "set-cookie" || HOP_BY_HOP_HEADERS.has(name)) continue;
    headers[name] = value;
  }
  // Several Set-Cookie headers must stay separate
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  const lengthHeader = response.headers.get("content-length");
  const length = _getBodyLength(response) ?? (lengthHeader === null ? null : parseInt(lengthHeader));
  if (length !== null && !Number.isNaN(length)) headers["content-length"] = length;

  const encoders: zlib.Gzip[] = [];
  const encoding = headers["content-encoding"];
  if (typeof encoding === "string" && response.encodeBody === "automatic") {
    for (const coding of encoding.toLowerCase().split(",").map((c) => c.trim())) {
      if (/(x-)?gzip/.test(coding)) encoders.push(zlib.createGzip());
      else if (/(x-)?deflate/.test(coding)) encoders.push(zlib.createDeflate());
      else if (coding === "br") encoders.push(zlib.createBrotliCompress() as any);
      else {
        log?.warn(`Unknown encoding "${coding}", sending plain response...`);
        encoders.length = 0;
        break;
      }
    }
    if (encoders.length > 0) delete headers["content-length"];
  }

  res.writeHead(response.status, headers);
  let stream: NodeJS.WritableStream = res;
  for (let i = encoders.length - 1; i >= 0; i--) {
    encoders[i].pipe(stream);
    stream = encoders[i];
  }
  if (response.body !== null) {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (res.destroyed) break; // the client went away
      if (chunk) stream.write(chunk);
    }
  }
  stream.end();
}

/** Logs without ever throwing (NoOpLog rethrows errors it's given) */
function safeLog(log: Log, action: () => void | Promise<void>): Promise<void> {
  try {
    return Promise.resolve(action()).catch(() => {});
  } catch {
    return Promise.resolve();
  }
}

/** A Node request listener that dispatches to the worker */
export function createRequestListener(mf: MiniflareCore): http.RequestListener {
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const start = process.hrtime();
    const { CorePlugin } = await mf.getPlugins();
    const startCpu = CorePlugin.inaccurateCpu ? process.cpuUsage() : undefined;
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    let status = 500;
    let waitUntil: Promise<unknown[]> | undefined;
    try {
      const { request } = convertNodeRequest(req);
      const response = await mf.dispatchFetch(request);
      status = response.status;
      waitUntil = response.waitUntil();
      await writeResponse(response, res, mf.log);
    } catch (e: any) {
      // Answer first: logging may throw (NoOpLog rethrows)
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain; charset=UTF-8" });
        res.end(String(e?.stack ?? e), "utf8");
      } else {
        res.destroy();
      }
      await safeLog(mf.log, () => mf.log.error(prefixError(`${method} ${path}`, e)));
    }
    await safeLog(mf.log, () =>
      logResponse(mf.log, { start, startCpu, method, url: path, status, waitUntil })
    );
  };
  return (req, res) => {
    // A client that disconnects mid-response isn't an error of ours
    res.on("error", () => {});
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
}
