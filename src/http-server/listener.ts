import type http from "node:http";
import zlib from "node:zlib";
import type { MiniflareCore } from "../core/core.js";
import { prefixError } from "../shared/errors.js";
import type { Log } from "../shared/log.js";
import { Response as ResponseClass, type Response, _getBodyLength, logResponse } from "../standards/index.js";
import { _takeBodyText } from "../standards/http.js";
import { DEFAULT_REQUEST_BODY_LIMIT, type HTTPPluginSignatures } from "./plugin.js";
import { RequestBodyTooLargeError, convertNodeRequest, isLoopback } from "./request.js";

// Describe the connection to the worker or upstream, not to this client
const HOP_BY_HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding"]);

/** How much more of a response is read, and dropped, after its client has gone */
const DRAIN_LIMIT = 1024 * 1024; /* 1 MiB */
/** Production's limits: any one header, and the URL */
export const MAX_HEADER_SIZE = 16 * 1024; /* 16KiB */
export const MAX_URL_SIZE = 16 * 1024; /* 16KiB */
/** All headers together (Node's own limit, raised from its 16KiB default) */
export const MAX_HEADERS_SIZE = 32 * 1024; /* 32KiB */

/**
 * Writes `response` to `res`. Bodies reach the worker decoded (fetch
 * decompresses), so when Content-Encoding is set and `encodeBody` is
 * "automatic", the body is compressed again to match it.
 */
export async function writeResponse(response: Response, res: http.ServerResponse, log?: Log): Promise<void> {
  const headers: Record<string, string | string[] | number> = {};
  for (const [name, value] of response.headers) {
    if (name === "content-length" || HOP_BY_HOP_HEADERS.has(name)) continue;
    // Several Set-Cookie headers must stay separate (and in their place)
    if (name === "set-cookie") headers[name] ??= response.headers.getSetCookie();
    else headers[name] = value;
  }
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
  if (encoders.length === 0 && response instanceof ResponseClass) {
    // A string body goes out in one write, with the headers
    const text = _takeBodyText(response);
    if (text !== undefined) {
      res.end(text);
      return;
    }
  }
  let stream: NodeJS.WritableStream = res;
  for (let i = encoders.length - 1; i >= 0; i--) {
    encoders[i].pipe(stream);
    stream = encoders[i];
  }
  if (response.body !== null) {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    // Once the client has gone, the body is read on and dropped, as Miniflare
    // 2 did, so the worker's further writes are accepted rather than
    // rejected; but a stream that gives more than DRAIN_LIMIT bytes more (an
    // endless one) is then cancelled, where Miniflare 2 spun forever
    let gone = res.destroyed;
    let drained = 0;
    const onClose = () => (gone = true);
    res.once("close", onClose);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value) continue;
        if (gone) {
          drained += value.byteLength;
          if (drained > DRAIN_LIMIT) {
            await reader.cancel().catch(() => {});
            break;
          }
          continue;
        }
        // Backpressure: a slow client slows the stream, rather than the
        // response piling up in memory
        if (!stream.write(value)) {
          await new Promise<void>((resolve) => {
            const resume = () => {
              stream.off("drain", resume);
              res.off("close", resume);
              resolve();
            };
            stream.on("drain", resume);
            res.on("close", resume);
          });
        }
      }
    } finally {
      res.off("close", onClose);
      reader.releaseLock();
    }
  }
  if (!res.destroyed) stream.end();
}

/** Logs without ever throwing (NoOpLog rethrows errors it's given) */
export function safeLog(log: Log, action: () => void | Promise<void>): Promise<void> {
  try {
    return Promise.resolve(action()).catch(() => {});
  } catch {
    return Promise.resolve();
  }
}

/** Answers with a short plain-text error, closing the connection */
function refuse(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "text/plain; charset=UTF-8", Connection: "close" });
  res.end(message);
}

/** Why a request can't be served, before it reaches the worker */
export function checkLimits(req: http.IncomingMessage, bodyLimit: number): [number, string] | undefined {
  if ((req.url?.length ?? 0) > MAX_URL_SIZE) return [414, "URI Too Long"];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].length + req.rawHeaders[i + 1].length > MAX_HEADER_SIZE) {
      return [431, "Request Header Fields Too Large"];
    }
  }
  const length = req.headers["content-length"];
  if (length !== undefined && Number(length) > bodyLimit) return [413, "Payload Too Large"];
  return undefined;
}

/** Hooks the server adds to every response (live reload) and error page */
export interface ListenerHooks {
  /** Changes the worker's response before it's written (e.g. live reload) */
  transformResponse?(response: Response): Response;
  /** Renders the response to a request the worker threw on */
  renderError?(
    error: unknown,
    req: http.IncomingMessage,
    showStack: boolean,
    /** The headers the worker saw (CF-* ones included), once converted */
    headers?: Headers
  ): Promise<ErrorPage>;
}

/** A response to a request the worker threw on */
interface ErrorPage {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The plain-text 500: the stack, unless the client isn't this machine */
async function plainError(error: any, _req: http.IncomingMessage, showStack: boolean): Promise<ErrorPage> {
  return {
    status: 500,
    headers: { "Content-Type": "text/plain; charset=UTF-8" },
    body: showStack ? String(error?.stack ?? error) : "Internal Server Error",
  };
}

/** A Node request listener that dispatches to the worker */
export function createRequestListener(
  mf: MiniflareCore<HTTPPluginSignatures>,
  hooks: ListenerHooks = {}
): http.RequestListener {
  const renderError = hooks.renderError ?? plainError;
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const start = process.hrtime();
    const plugins = await mf.getPlugins();
    const { CorePlugin } = plugins;
    const HTTP = plugins.HTTPPlugin;
    const startCpu = CorePlugin.inaccurateCpu ? process.cpuUsage() : undefined;
    let method = req.method ?? "GET";
    const path = req.url ?? "/";
    const bodyLimit = HTTP?.requestBodyLimit ?? DEFAULT_REQUEST_BODY_LIMIT;

    const refused = checkLimits(req, bodyLimit);
    if (refused !== undefined) {
      refuse(res, refused[0], refused[1]);
      // Don't read a body that's too large: the connection closes
      if (refused[0] === 413) req.destroy();
      await safeLog(mf.log, () => logResponse(mf.log, { start, method, url: path, status: refused[0] }));
      return;
    }

    let status = 500;
    let waitUntil: Promise<unknown[]> | undefined;
    let seenHeaders: Headers | undefined;
    try {
      const meta = await HTTP?.getRequestMeta(req);
      let converted: ReturnType<typeof convertNodeRequest>;
      try {
        converted = convertNodeRequest(req, { meta, bodyLimit });
      } catch {
        // A URL or Host header that doesn't parse
        refuse(res, 400, "Bad Request");
        status = 400;
        return;
      }
      const { request, url } = converted;
      seenHeaders = request.headers as unknown as Headers;

      // A trailing slash is ignored (so "/cdn-cgi/" itself is the worker's)
      const pathname = url.pathname.replace(/\/$/, "");
      if (pathname.startsWith("/cdn-cgi/")) {
        if (pathname === "/cdn-cgi/mf/scheduled") {
          method = "SCHD";
          const time = url.searchParams.get("time");
          const cron = url.searchParams.get("cron");
          // Routed by URL, as fetches are
          waitUntil = mf.dispatchScheduled(time === null ? undefined : parseInt(time), cron ?? undefined, url);
          // Answered once the handler and its waitUntil promises are done;
          // always 200, as in Miniflare 2: a failure is logged with the
          // request's log line
          await waitUntil.catch(() => {});
          status = 200;
          res.writeHead(200, { "Content-Type": "text/plain; charset=UTF-8" });
          res.end();
        } else if (pathname.startsWith("/cdn-cgi/scripts/")) {
          // Cloudflare's own scripts (e.g. email decoding) come from Cloudflare
          const upstream = await fetch(`https://cloudflare.com${url.pathname}${url.search}`);
          status = upstream.status;
          await writeResponse(upstream as unknown as Response, res, mf.log);
        } else {
          status = 404;
          res.writeHead(404, { "Content-Type": "text/plain; charset=UTF-8" });
          res.end();
        }
        return;
      }

      let response = await mf.dispatchFetch(request);
      status = response.status;
      waitUntil = response.waitUntil();
      if (hooks.transformResponse) response = hooks.transformResponse(response);
      await writeResponse(response, res, mf.log);
    } catch (e: any) {
      if (e instanceof RequestBodyTooLargeError || e?.cause instanceof RequestBodyTooLargeError) {
        status = 413;
        refuse(res, 413, "Payload Too Large");
        req.destroy();
      } else {
        status = 500;
        // Answer first: logging may throw (NoOpLog rethrows)
        if (!res.headersSent) {
          let page: ErrorPage;
          try {
            // Stack traces only go to this machine
            page = await renderError(e, req, isLoopback(req), seenHeaders);
          } catch {
            page = await plainError(e, req, isLoopback(req));
          }
          res.writeHead(page.status, page.headers);
          res.end(page.body, "utf8");
        } else {
          res.destroy();
        }
        await safeLog(mf.log, () => mf.log.error(prefixError(`${method} ${path}`, e)));
      }
    } finally {
      await safeLog(mf.log, () =>
        logResponse(mf.log, { start, startCpu, method, url: path, status, waitUntil })
      );
    }
  };
  return (req, res) => {
    // A client that disconnects mid-response isn't an error of ours
    res.on("error", () => {});
    req.on("error", () => {});
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };
}
