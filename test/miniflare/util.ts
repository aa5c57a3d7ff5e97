import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

export interface TestServer {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  port: number;
  /** Paths of every request received, in order */
  requests: string[];
  /** Every request received, in order, with its method, headers and body */
  received: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
}

/**
 * A local HTTP server on 127.0.0.1 and a random port, closed after the test.
 * It answers `srv:<path>`, after `delay` milliseconds if given (a timer, so
 * at least that much wall-clock time passes between request and response).
 */
export async function useServer(
  t: TestContext,
  { delay = 0 }: { delay?: number } = {}
): Promise<TestServer> {
  const requests: string[] = [];
  const received: TestServer["received"] = [];
  const server = http.createServer(async (req, res) => {
    requests.push(req.url ?? "");
    let body = "";
    for await (const chunk of req) body += chunk;
    received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
    if (delay > 0) await sleep(delay);
    res.end(`srv:${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      })
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, port, requests, received };
}

/** Catches what `fn` throws or rejects with (failing if it doesn't) */
export async function caught(fn: () => unknown): Promise<any> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error to be thrown");
}

/** The exact message of the global-scope I/O restriction (§7) */
export { IN_REQUEST_MESSAGE } from "../helpers/http.js";

/** Escapes `s` for use in a RegExp */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
