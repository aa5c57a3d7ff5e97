import type http from "node:http";
import { Readable } from "node:stream";
import { Request } from "../standards/index.js";

// Hop-by-hop headers describe the connection to Miniflare, not the request
const DROPPED_HEADERS = new Set(["transfer-encoding", "connection", "keep-alive", "expect"]);

/** Converts an incoming Node request into a Workers Request */
export function convertNodeRequest(req: http.IncomingMessage, secure = false): Request {
  const host = req.headers.host ?? "localhost";
  const url = new URL(req.url ?? "/", `${secure ? "https" : "http"}://${host}`);
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!DROPPED_HEADERS.has(name)) headers.append(name, raw[i + 1]);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const body = hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null;
  return new Request(url, {
    method,
    headers,
    body,
    redirect: "manual",
    duplex: "half",
  } as RequestInit);
}
