import type http from "node:http";
import type { TLSSocket } from "node:tls";
import { Readable, Transform } from "node:stream";
import { randomHex } from "../shared/data.js";
import { Request, _headersFromIncomingRequest } from "../standards/index.js";
import { _setRequestCf } from "../standards/http.js";
import { DEFAULT_CF } from "./cf.js";
import type { RequestMeta } from "./plugin.js";

/** The client's address, IPv4-mapped and IPv6 loopback addresses simplified */
export function clientIp(req: http.IncomingMessage): string {
  let ip = req.socket.remoteAddress ?? "";
  if (ip === "::1") ip = "127.0.0.1";
  if (ip.startsWith("::ffff:")) ip = ip.substring("::ffff:".length);
  return ip;
}

/** Whether the client connected from this machine */
export function isLoopback(req: http.IncomingMessage): boolean {
  const ip = clientIp(req);
  return ip.startsWith("127.") || ip === "::1";
}

/** Thrown into a request body that grew past the limit */
export class RequestBodyTooLargeError extends RangeError {
  constructor(limit: number) {
    super(`Request body exceeds the limit of ${limit} bytes.`);
  }
}

/** `req`'s body as a web stream that errors once it passes `limit` bytes */
function limitedBody(req: http.IncomingMessage, limit: number): ReadableStream<Uint8Array> {
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.byteLength;
      if (received > limit) callback(new RequestBodyTooLargeError(limit));
      else callback(null, chunk);
    },
  });
  req.on("error", (error) => counter.destroy(error));
  req.pipe(counter);
  return Readable.toWeb(counter) as ReadableStream<Uint8Array>;
}

export interface ConvertOptions {
  meta?: RequestMeta;
  /** Largest body accepted, in bytes (default: unlimited) */
  bodyLimit?: number;
}

/**
 * Converts an incoming Node request into a Workers Request, adding the
 * headers and `cf` object Cloudflare's edge adds. Unlike Miniflare 2, the
 * edge's headers are always ours, as in production: the client's own
 * CF-Connecting-IP and X-Real-IP are replaced by the address it really
 * connected from (or the meta provider's), and CF-Ray, CF-IPCountry,
 * CF-Visitor and X-Forwarded-Proto by what the edge would send, so a client
 * can't claim to be elsewhere. Throws a TypeError for a URL or Host that
 * doesn't parse.
 */
export function convertNodeRequest(
  req: http.IncomingMessage,
  { meta, bodyLimit }: ConvertOptions = {}
): { request: Request; url: URL } {
  const secure = (req.socket as TLSSocket).encrypted === true;
  const url = new URL(req.url ?? "/", `${secure ? "https" : "http"}://${req.headers.host ?? "localhost"}`);
  const proto = meta?.forwardedProto ?? "https";
  const ip = meta?.realIp ?? clientIp(req);
  const cf: Record<string, any> = meta?.cf ?? DEFAULT_CF;

  // (Drops the hop-by-hop headers that describe the connection to us)
  const headers = _headersFromIncomingRequest(req);
  headers.set("x-real-ip", ip);
  headers.set("cf-connecting-ip", ip);
  headers.set("x-forwarded-proto", proto);
  headers.set("cf-ipcountry", cf.country ?? "US");
  headers.set("cf-ray", randomHex(16));
  headers.set("cf-visitor", `{"scheme":"${proto}"}`);
  headers.set("host", url.host);
  // The edge always asks origins for gzip; the client's own preference is
  // kept in cf.clientAcceptEncoding
  const clientAcceptEncoding = req.headers["accept-encoding"];
  headers.set("accept-encoding", "gzip");

  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  let body: ReadableStream<Uint8Array> | null = null;
  if (hasBody) {
    body =
      bodyLimit === undefined
        ? (Readable.toWeb(req) as ReadableStream<Uint8Array>)
        : limitedBody(req, bodyLimit);
  }
  const request = new Request(url, {
    method,
    headers,
    body,
    redirect: "manual",
    duplex: hasBody ? "half" : undefined,
  } as any);
  // A copy per request, so a worker changing its cf changes no other's
  // (two levels deep, as cf objects are; cheaper than Request's deep clone)
  const copy: Record<string, unknown> = {};
  for (const key in cf) {
    const value = cf[key];
    copy[key] = value !== null && typeof value === "object" && !Array.isArray(value) ? { ...value } : value;
  }
  // Only when the client sent one, as in Miniflare 2
  if (clientAcceptEncoding !== undefined) copy.clientAcceptEncoding = clientAcceptEncoding;
  _setRequestCf(request, copy);
  return { request, url };
}
