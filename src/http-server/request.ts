import type http from "node:http";
import type { TLSSocket } from "node:tls";
import { Readable } from "node:stream";
import { randomHex } from "../shared/data.js";
import { Request, _headersFromIncomingRequest } from "../standards/index.js";
import { DEFAULT_CF } from "./cf.js";

function clientIp(req: http.IncomingMessage): string {
  let ip = req.socket.remoteAddress ?? "";
  if (ip === "::1") ip = "127.0.0.1";
  if (ip.startsWith("::ffff:")) ip = ip.substring("::ffff:".length);
  return ip;
}

/**
 * Converts an incoming Node request into a Workers Request, adding the
 * headers and `cf` object Cloudflare's edge adds. Unlike Miniflare 2, the
 * client's own CF-Connecting-IP and X-Real-IP are replaced by the address
 * it really connected from: a client can't claim to be someone else.
 */
export function convertNodeRequest(req: http.IncomingMessage): { request: Request; url: URL } {
  const secure = (req.socket as TLSSocket).encrypted === true;
  const url = new URL(req.url ?? "/", `${secure ? "https" : "http"}://${req.headers.host ?? "localhost"}`);
  const proto = "https";
  const ip = clientIp(req);

  // (Drops the hop-by-hop headers that describe the connection to us)
  const headers = _headersFromIncomingRequest(req);
  headers.set("x-real-ip", ip);
  headers.set("cf-connecting-ip", ip);
  if (!headers.has("x-forwarded-proto")) headers.set("x-forwarded-proto", proto);
  if (!headers.has("cf-ipcountry")) headers.set("cf-ipcountry", DEFAULT_CF.country);
  if (!headers.has("cf-ray")) headers.set("cf-ray", randomHex(16));
  if (!headers.has("cf-visitor")) headers.set("cf-visitor", `{"scheme":"${proto}"}`);
  headers.set("host", url.host);
  // The edge always asks origins for gzip; the client's own preference is
  // kept in cf.clientAcceptEncoding
  const clientAcceptEncoding = req.headers["accept-encoding"];
  headers.set("accept-encoding", "gzip");

  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const body = hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null;
  const request = new Request(url, {
    method,
    headers,
    body,
    cf: { ...DEFAULT_CF, clientAcceptEncoding },
    redirect: "manual",
    duplex: hasBody ? "half" : undefined,
  } as any);
  return { request, url };
}
