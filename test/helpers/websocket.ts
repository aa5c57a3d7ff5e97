// Helpers for the WebSocket tests: event recorders, a process watchdog, and
// a real `ws` echo server on 127.0.0.1 (port 0)
import type http from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { TestContext } from "node:test";
import { type WebSocket as NodeWebSocket, WebSocketServer } from "ws";
import type { WebSocket } from "../../src/standards/websocket.js";

/** Resolves with the next event of `type` on `socket` */
export function next<E extends Event>(socket: WebSocket, type: "open" | "message" | "close" | "error"): Promise<E> {
  return new Promise((resolve) => socket.addEventListener(type, (event: Event) => resolve(event as E), { once: true }));
}

/** Records every event `socket` dispatches, as short strings */
export function record(socket: WebSocket): string[] {
  const events: string[] = [];
  socket.addEventListener("open", () => events.push("open"));
  socket.addEventListener("message", (e) => {
    events.push(`message:${typeof e.data === "string" ? e.data : `<${e.data.byteLength} bytes>`}`);
  });
  socket.addEventListener("close", (e) => events.push(`close:${e.code}:${e.reason}`));
  socket.addEventListener("error", (e) => events.push(`error:${e.message}`));
  return events;
}

/** Fails the test if anything reaches the process's last-resort handlers */
export function watchProcess(t: TestContext): unknown[] {
  const escaped: unknown[] = [];
  const onEscape = (error: unknown) => escaped.push(error);
  process.on("uncaughtException", onEscape);
  process.on("unhandledRejection", onEscape);
  t.after(() => {
    process.off("uncaughtException", onEscape);
    process.off("unhandledRejection", onEscape);
  });
  return escaped;
}

/** Replaces console.error for the test, collecting what it's given */
export function captureConsoleError(t: TestContext): unknown[][] {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  t.after(() => {
    console.error = original;
  });
  return calls;
}

export interface EchoServer {
  port: number;
  url: string;
  /** Requests that upgraded, in order */
  requests: http.IncomingMessage[];
  /** Server-side connections, in order */
  connections: NodeWebSocket[];
}

/**
 * A real `ws` server on 127.0.0.1 (port 0) echoing each text message
 * prefixed with "echo:" (binary ones as they are), and agreeing to the
 * first subprotocol offered. `refuse` may answer an upgrade itself instead.
 */
export async function useEchoServer(
  t: TestContext,
  refuse?: (req: http.IncomingMessage, socket: Duplex) => boolean
): Promise<EchoServer> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const requests: http.IncomingMessage[] = [];
  const connections: NodeWebSocket[] = [];
  server.on("upgrade", (req, socket, head) => {
    if (refuse?.(req, socket)) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      requests.push(req);
      connections.push(ws);
      ws.on("message", (data, isBinary) => {
        if (isBinary) ws.send(data);
        else ws.send(`echo:${data.toString()}`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { port, url: `ws://127.0.0.1:${port}`, requests, connections };
}
