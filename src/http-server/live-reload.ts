/**
 * Live reload: HTML pages served by Miniflare get a small script that keeps
 * a WebSocket open to `/cdn-cgi/mf/reload`. Whenever the worker reloads, the
 * server closes those sockets with 1012 (Service Restart) and the pages
 * reload themselves. Anything else that drops the socket (the server going
 * away, a network blip) makes the page reconnect with a back-off, and reload
 * once it gets through, since whatever served it may have changed meanwhile.
 *
 * The server side only ever sends close frames, so it ignores messages and
 * keeps payloads tiny; a misbehaving client must never bring the process down.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { Response, _getBodyLength, kWaitUntil } from "../standards/http.js";

/** Path the live-reload script connects its WebSocket to */
export const LIVE_RELOAD_PATH = "/cdn-cgi/mf/reload";

/** Close code telling pages to reload (RFC 6455 registry: Service Restart) */
export const LIVE_RELOAD_CLOSE_CODE = 1012;
const LIVE_RELOAD_CLOSE_REASON = "Service Restart";

/** Digits of the version in the script: a fixed number, so every script has one length */
const VERSION_DIGITS = 10;

/**
 * The script for a page served while the worker is at reload `version`. The
 * page connects with that version: if the worker reloaded since the page was
 * served (before the socket opened, when no close could reach the page), the
 * server closes the socket at once and the page reloads.
 */
export function liveReloadScript(version: number): string {
  const padded = String(version % 10 ** VERSION_DIGITS).padStart(VERSION_DIGITS, "0");
  // Plain ES5 so it runs in any browser, and wrapped in a function so it
  // adds nothing to the page's globals
  return `<script>
(function () {
  // Miniflare live reload: reloads this page whenever the worker reloads
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "${LIVE_RELOAD_PATH}?v=${padded}";
  var delay = 250;
  function connect(reconnecting) {
    var socket = new WebSocket(url);
    socket.onopen = function () {
      delay = 250;
      // Lost the server and found it again: the page may be stale
      if (reconnecting) location.reload();
    };
    socket.onclose = function (event) {
      if (event.code === ${LIVE_RELOAD_CLOSE_CODE}) return location.reload();
      setTimeout(connect, delay, true);
      delay = Math.min(delay * 2, 5000);
    };
  }
  connect(false);
})();
</script>`;
}

/** The script of a page served before any reload */
export const LIVE_RELOAD_SCRIPT = liveReloadScript(0);
/** Length in bytes of every live-reload script (UTF-8) */
export const LIVE_RELOAD_SCRIPT_LENGTH = Buffer.byteLength(LIVE_RELOAD_SCRIPT);

/**
 * Appends the live-reload script to HTML responses whose body Miniflare
 * encodes (`encodeBody: "automatic"`); returns anything else unchanged.
 * The body is streamed through, never buffered, and Content-Length (when
 * the length is known) grows by the script's length.
 */
export function injectLiveReload(response: Response, script = LIVE_RELOAD_SCRIPT): Response {
  if (response.encodeBody !== "automatic") return response;
  const type = response.headers.get("content-type");
  if (type === null || !type.toLowerCase().includes("text/html")) return response;
  // (Before reading `body`: a pending string body knows its length)
  const knownLength = _getBodyLength(response);
  const body = response.body;
  // (A locked body can't be piped: let writing it fail as it would anyway)
  if (body === null || body.locked) return response;

  const appended = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      flush(controller) {
        controller.enqueue(encoder.encode(script));
      },
    })
  );
  const injected = new Response(appended, response);
  const header = response.headers.get("content-length");
  const length = knownLength ?? (header !== null && /^\d+$/.test(header) ? Number(header) : NaN);
  if (Number.isSafeInteger(length)) {
    injected.headers.set("content-length", String(length + LIVE_RELOAD_SCRIPT_LENGTH));
  } else {
    injected.headers.delete("content-length");
  }
  injected[kWaitUntil] = response[kWaitUntil];
  return injected;
}

// Clients never send anything meaningful: refuse large frames outright
const MAX_CLIENT_PAYLOAD = 1024; /* 1KiB */
// How long dispose() lets clients answer the close handshake
const DISPOSE_GRACE = 1000; /* ms */

const noop = () => {};
const encoder = new TextEncoder();

/**
 * Holds the pages' live-reload WebSockets. The HTTP server passes it the
 * upgrade requests for `LIVE_RELOAD_PATH`, and calls `reload()` after each
 * worker reload.
 */
export class LiveReloadServer {
  readonly #wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_PAYLOAD,
    perMessageDeflate: false,
  });
  #disposed = false;
  /** Reloads so far: pages carry the version they were served at */
  #version = 0;

  constructor() {
    this.#wss.on("error", noop);
  }

  /** The script for a page served now */
  get script(): string {
    return liveReloadScript(this.#version);
  }

  /** Number of connected pages */
  get clientCount(): number {
    return this.#wss.clients.size;
  }

  /** Completes (or refuses) a WebSocket handshake from a page */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    // A client resetting mid-handshake emits "error" with nobody listening
    socket.on("error", noop);
    if (this.#disposed) {
      socket.destroy();
      return;
    }
    try {
      const version = new URL(req.url ?? "/", "http://localhost").searchParams.get("v");
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, version));
    } catch {
      // e.g. the socket was already handed to a WebSocket server
      socket.destroy();
    }
  }

  #accept(ws: WebSocket, version: string | null): void {
    ws.on("error", noop);
    // Protocol errors (bad frames, oversized messages) make ws close the
    // socket itself; other messages are simply ignored
    ws.on("message", noop);
    // Disposed while the handshake was finishing
    if (this.#disposed) return ws.terminate();
    // A page served before the last reload: it missed the close telling it
    if (version !== null && Number(version) !== this.#version % 10 ** VERSION_DIGITS) {
      ws.close(LIVE_RELOAD_CLOSE_CODE, LIVE_RELOAD_CLOSE_REASON);
    }
  }

  /** Makes every connected page reload */
  reload(): void {
    this.#version++;
    for (const ws of this.#wss.clients) {
      try {
        ws.close(LIVE_RELOAD_CLOSE_CODE, LIVE_RELOAD_CLOSE_REASON);
      } catch {
        ws.terminate();
      }
    }
  }

  /**
   * Disconnects every page (1001 Going Away, so they keep trying to
   * reconnect) and refuses new ones. Resolves once all sockets are closed;
   * clients that don't answer the close handshake are cut off.
   */
  async dispose(): Promise<void> {
    this.#disposed = true;
    const closed: Promise<void>[] = [];
    for (const ws of this.#wss.clients) {
      closed.push(new Promise((resolve) => ws.once("close", () => resolve())));
      try {
        ws.close(1001, "Going Away");
      } catch {
        ws.terminate();
      }
    }
    if (closed.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, DISPOSE_GRACE);
      });
      await Promise.race([Promise.all(closed), grace]);
      clearTimeout(timer);
      for (const ws of this.#wss.clients) ws.terminate();
    }
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
