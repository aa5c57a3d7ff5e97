import { Plugin, type PluginContext, type SetupResult } from "../../shared/plugin.js";
import { type FetchFunction, createCompatFetch, fetch } from "../../standards/fetch.js";
import {
  CloseEvent,
  MessageEvent,
  WebSocket,
  WebSocketPair,
  _closeWebSocket,
  _isClosedOutgoing,
} from "../../standards/websocket.js";

/** Close code and reason for connections cut by a reload (RFC 6455 registry) */
const RESTART_CODE = 1012;
const RESTART_REASON = "Service Restart";

/**
 * WebSockets for workers (no options): the `WebSocketPair`, `WebSocket`,
 * `MessageEvent` and `CloseEvent` globals, and a `fetch` that remembers the
 * connections it opens by upgrading, so a reload or `dispose()` can close
 * them (1012 "Service Restart") instead of leaving them to the old script.
 * That `fetch` is Core's plus the bookkeeping, and replaces it (this plugin
 * comes later), as in Miniflare 2.
 */
export class WebSocketPlugin extends Plugin {
  readonly #webSockets = new Set<WebSocket>();
  readonly #fetch: FetchFunction;

  // (No options: the parameter keeps the plugin's option type an empty object)
  constructor(ctx: PluginContext, _options?: object) {
    super(ctx);
    const { log, compat, globalAsyncIO, fetchMock } = ctx;
    const trackingFetch: FetchFunction = async (input, init) => {
      const response = await fetch.call(fetchMock, input, init);
      const webSocket: unknown = response.webSocket;
      if (webSocket instanceof WebSocket) this.#track(webSocket);
      return response;
    };
    this.#fetch = createCompatFetch({ log, compat, globalAsyncIO, fetchMock }, trackingFetch);
  }

  #track(webSocket: WebSocket): void {
    // Forget the connections that are over
    for (const known of this.#webSockets) {
      if (known.readyState === WebSocket.READY_STATE_CLOSED) this.#webSockets.delete(known);
    }
    this.#webSockets.add(webSocket);
  }

  /** The number of fetched connections still tracked (for tests) */
  get webSocketCount(): number {
    return this.#webSockets.size;
  }

  setup(): SetupResult {
    return {
      globals: {
        MessageEvent,
        CloseEvent,
        WebSocketPair,
        WebSocket,
        fetch: this.#fetch,
      },
    };
  }

  #closeAll(): void {
    for (const webSocket of this.#webSockets) {
      if (!_isClosedOutgoing(webSocket)) _closeWebSocket(webSocket, RESTART_CODE, RESTART_REASON);
    }
    this.#webSockets.clear();
  }

  beforeReload(): void {
    this.#closeAll();
  }

  dispose(): void {
    this.#closeAll();
  }
}
