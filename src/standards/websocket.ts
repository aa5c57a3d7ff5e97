/**
 * WebSockets as the Workers runtime has them
 * (https://developers.cloudflare.com/workers/runtime-apis/websockets/).
 *
 * - `new WebSocketPair()` makes two entangled `WebSocket`s: what one end
 *   sends, the other receives. A worker keeps one end (and `accept()`s it)
 *   and returns the other in a 101 `Response`; the HTTP server then couples
 *   the returned end to the client's real connection (`coupleWebSocket()`).
 * - `new WebSocket(url)` is a client connection: a pair end coupled to a
 *   `ws` client.
 * - The upgrading `fetch` (a GET with `Upgrade: websocket`, routed by http.ts
 *   to websocket-fetch.ts) connects with `ws` too, and resolves to a 101
 *   `Response` whose `webSocket` is the worker's end.
 *
 * Delivery rules. Events sent to an end that hasn't been accepted yet wait
 * in a queue, delivered (in order) just after `accept()`, so listeners added
 * right after it still get them. A send waits for the sender's output gate,
 * so a Durable Object never reports writes that aren't confirmed yet. A
 * listener waits for the input gate of the context it was added in, and runs
 * in that context's request context if it was a normal worker's request;
 * in a Durable Object or outside any request, each event gets a fresh one.
 *
 * An exception thrown by a listener never escapes to the process: it is
 * reported on the console, as the runtime reports uncaught exceptions.
 *
 * `ws` is slow to import, so it's only loaded once a connection is made.
 */
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import type NodeWebSocket from "ws";
import {
  EXTERNAL_SUBREQUEST_LIMIT_BUNDLED,
  RequestContext,
  getRequestContext,
} from "../shared/context.js";
import { TypedEventTarget, kWrapListener } from "../shared/event.js";
import { getInputGate, waitForOpenOutputGate } from "../shared/sync/gate.js";
import { DOMException } from "./domexception.js";
import { CloseEvent, ErrorEvent, MessageEvent, type WebSocketEventMap } from "./websocket-events.js";

export * from "./websocket-events.js";

/** Largest message a worker receives from a connection (production's limit) */
export const MAX_MESSAGE_SIZE = 1024 * 1024; /* 1MiB */
/** Longest close reason a close frame can carry (RFC 6455 §5.5) */
const MAX_CLOSE_REASON_SIZE = 123; /* bytes of UTF-8 */

// `ws`'s readyState values
const WS_CONNECTING = 0;
const WS_CLOSING = 2;

const require = createRequire(import.meta.url);
let wsModule: typeof NodeWebSocket | undefined;
/** @internal `ws`, loaded on first use */
export function _loadWS(): typeof NodeWebSocket {
  wsModule ??= require("ws") as typeof NodeWebSocket;
  return wsModule;
}

const noop = () => {};

/** Reports an exception nothing caught, without ever killing the process */
function reportUncaught(error: unknown): void {
  try {
    console.error("Uncaught", error);
  } catch {
    // (console itself failing is not worth dying for)
  }
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

const ACCEPT_FIRST_MESSAGE = "You must call accept() on this WebSocket before sending messages.";

/** What a coupled end forwards its peer's messages and closes to */
interface WebSocketSink {
  message(data: string | ArrayBuffer): void;
  close(code: number, reason: string): void;
}

// Operations on WebSocket internals for this module's coupling code, bound
// in the class's static block (the only code that can reach its # fields)
interface Internals {
  entangle(a: WebSocket, b: WebSocket): void;
  isAccepted(socket: WebSocket): boolean;
  isCoupled(socket: WebSocket): boolean;
  isClosedOutgoing(socket: WebSocket): boolean;
  /** Marks `socket` used in a response: its peer's events go to `sink` */
  couple(socket: WebSocket, sink: WebSocketSink): void;
  /** Accepts a coupled socket, releasing anything queued to the sink */
  acceptCoupled(socket: WebSocket): void;
  send(socket: WebSocket, data: string | ArrayBuffer): void;
  close(socket: WebSocket, code: number | undefined, reason: string | undefined, wasClean: boolean): void;
  error(socket: WebSocket, error: unknown): void;
}
let internals!: Internals;

// Passed as the URL to make a pair end: unreachable from worker code
const kPairEnd = Symbol("kPairEnd");

// https://developer.mozilla.org/en-US/docs/Web/API/CloseEvent/code
// (1004 is reserved; 1005, 1006 and 1015 are only ever reported, never sent)
function isValidCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    code >= 1000 &&
    code < 5000 &&
    code !== 1004 &&
    code !== 1005 &&
    code !== 1006 &&
    code !== 1015
  );
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  // (Object.prototype.toString so buffers from other realms count too)
  return value instanceof ArrayBuffer || Object.prototype.toString.call(value) === "[object ArrayBuffer]";
}

/** What the receiver of `message` gets: strings as is, bytes as a copy */
function messageData(message: unknown): string | ArrayBuffer {
  if (typeof message === "string") return message;
  if (isArrayBuffer(message)) return message.slice(0);
  if (ArrayBuffer.isView(message)) {
    const bytes = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    return bytes.slice().buffer;
  }
  // Anything else is stringified, as WebIDL converts it to the string case
  return String(message);
}

export class WebSocket extends TypedEventTarget<WebSocketEventMap> {
  static readonly READY_STATE_CONNECTING = 0;
  static readonly READY_STATE_OPEN = 1;
  static readonly READY_STATE_CLOSING = 2;
  static readonly READY_STATE_CLOSED = 3;

  readonly #userConstructed: boolean;
  #pair?: WebSocket;
  #accepted = false;
  #coupled = false;
  #closedOutgoing = false;
  #closedIncoming = false;
  /** Events waiting for accept() (and a moment after): undefined once flowing */
  #queue: Event[] | undefined = [];
  #sink?: WebSocketSink;
  /** Keeps sends in order while each waits for its output gate */
  #sending: Promise<void> = Promise.resolve();

  constructor(url: string | URL, protocols?: string | string[]) {
    super();
    if ((url as unknown) === kPairEnd) {
      this.#userConstructed = false;
      return;
    }
    this.#userConstructed = true;

    let parsed: URL;
    try {
      parsed = url instanceof URL ? url : new URL(String(url));
    } catch {
      throw new DOMException("WebSocket Constructor: The url is invalid.", "SyntaxError");
    }
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new DOMException("WebSocket Constructor: The url scheme must be ws or wss.", "SyntaxError");
    }
    if (parsed.hash !== "") {
      throw new DOMException("WebSocket Constructor: The url fragment must be empty.", "SyntaxError");
    }

    const WS = _loadWS();
    const ws = new WS(parsed, protocols, { maxPayload: MAX_MESSAGE_SIZE });
    const pair = new WebSocket(kPairEnd as unknown as string);
    internals.entangle(this, pair);
    coupleWebSocket(ws, pair)
      .then(
        () => {
          this.#accept();
          this.dispatchEvent(new Event("open"));
        },
        // The coupling has already forwarded the error (and close) events
        () => this.#accept()
      )
      .catch(reportUncaught);
  }

  static {
    internals = {
      entangle(a, b) {
        a.#pair = b;
        b.#pair = a;
      },
      isAccepted: (socket) => socket.#accepted,
      isCoupled: (socket) => socket.#coupled,
      isClosedOutgoing: (socket) => socket.#closedOutgoing,
      couple(socket, sink) {
        socket.#coupled = true;
        socket.#sink = sink;
      },
      acceptCoupled: (socket) => socket.#startFlowing(),
      send(socket, data) {
        if (socket.#closedOutgoing) return;
        socket.#sendToPair(new MessageEvent("message", { data }));
      },
      close(socket, code, reason, wasClean) {
        if (socket.#closedOutgoing) return;
        socket.#close(code, reason, wasClean);
      },
      error: (socket, error) => socket.#sendToPair(new ErrorEvent("error", { error })),
    };
  }

  /**
   * Listeners wait for the input gate of the context they were added in,
   * and run in a request context (see the file comment)
   */
  protected override [kWrapListener](listener: (event: Event) => void): (event: Event) => void {
    const addedIn = getRequestContext();
    const gate = getInputGate();
    const run = (event: Event) => {
      try {
        listener(event);
      } catch (error) {
        reportUncaught(error);
      }
    };
    const inContext = (event: Event) => {
      if (addedIn !== undefined && !addedIn.durableObject) return addedIn.runWith(() => run(event));
      let ctx: RequestContext;
      try {
        ctx = new RequestContext({
          requestDepth: addedIn?.requestDepth,
          pipelineDepth: addedIn?.pipelineDepth,
          durableObject: addedIn?.durableObject,
          externalSubrequestLimit: addedIn?.externalSubrequestLimit ?? EXTERNAL_SUBREQUEST_LIMIT_BUNDLED,
          internalSubrequestLimit: addedIn?.internalSubrequestLimit,
        });
      } catch (error) {
        return reportUncaught(error);
      }
      ctx.runWith(() => run(event));
    };
    if (gate === undefined) return inContext;
    return (event) => void gate.runWith(() => inContext(event)).catch(reportUncaught);
  }

  get readyState(): number {
    if (this.#userConstructed && !this.#accepted) return WebSocket.READY_STATE_CONNECTING;
    if (this.#closedOutgoing && this.#closedIncoming) return WebSocket.READY_STATE_CLOSED;
    if (this.#closedOutgoing || this.#closedIncoming) return WebSocket.READY_STATE_CLOSING;
    return WebSocket.READY_STATE_OPEN;
  }

  accept(): void {
    if (this.#userConstructed) {
      throw new TypeError("Websockets obtained from the 'new WebSocket()' constructor cannot call accept");
    }
    this.#accept();
  }

  send(message: ArrayBuffer | ArrayBufferView | string): void {
    if (!this.#accepted) throw new TypeError(ACCEPT_FIRST_MESSAGE);
    if (this.#closedOutgoing) throw new TypeError("Can't call WebSocket send() after close().");
    this.#sendToPair(new MessageEvent("message", { data: messageData(message) }));
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined) {
      code = Number(code);
      if (!isValidCloseCode(code)) throw new TypeError("Invalid WebSocket close code.");
    }
    if (reason !== undefined) {
      if (code === undefined) {
        throw new TypeError("If you specify a WebSocket close reason, you must also specify a code.");
      }
      reason = String(reason);
      // Longer reasons can't be sent: `ws` would throw from inside the
      // coupling, where nothing could catch it
      if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_SIZE) {
        throw new TypeError(
          `WebSocket close reason must be at most ${MAX_CLOSE_REASON_SIZE} bytes when UTF-8 encoded.`
        );
      }
    }
    if (!this.#accepted) throw new TypeError(ACCEPT_FIRST_MESSAGE);
    this.#close(code, reason, true);
  }

  #accept(): void {
    if (this.#coupled) throw new TypeError("Can't accept() WebSocket that was already used in a response.");
    this.#startFlowing();
  }

  #startFlowing(): void {
    if (this.#accepted) return;
    this.#accepted = true;
    if (this.#queue!.length === 0) this.#queue = undefined;
    // Deliver on the next microtask, so listeners added just after accept()
    // still see what was queued; anything arriving meanwhile queues behind
    else queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    const queue = this.#queue ?? [];
    this.#queue = undefined;
    for (const event of queue) this.#route(event);
  }

  /** Called (in order) with every event the peer sends */
  #deliver(event: Event): void {
    if (this.#queue !== undefined) this.#queue.push(event);
    else this.#route(event);
  }

  #route(event: Event): void {
    const sink = this.#sink;
    if (sink === undefined) {
      this.dispatchEvent(event as WebSocketEventMap[keyof WebSocketEventMap]);
    } else if (event instanceof MessageEvent) {
      sink.message(event.data);
    } else if (event instanceof CloseEvent) {
      sink.close(event.code, event.reason);
    }
    // (Errors aren't sent over the network)
  }

  #sendToPair(event: Event): void {
    const pair = this.#pair!;
    // Captured now, in the sender's context; settles to whether it's open
    const gate = waitForOpenOutputGate()?.then(
      () => true,
      () => false
    );
    this.#sending = this.#sending
      .then(async () => {
        // A write that failed means the output is discarded, as in production
        if (gate !== undefined && !(await gate)) return;
        pair.#deliver(event);
      })
      .catch(reportUncaught);
  }

  #close(code: number | undefined, reason: string | undefined, wasClean: boolean): void {
    if (this.#closedOutgoing) throw new TypeError("WebSocket already closed");
    this.#closedOutgoing = true;
    this.#pair!.#closedIncoming = true;
    this.#sendToPair(new CloseEvent("close", { code, reason, wasClean }));
  }
}

export interface WebSocketPair {
  0: WebSocket;
  1: WebSocket;
}

/** Two entangled WebSockets (a function, as it must refuse being called) */
export const WebSocketPair = function WebSocketPair(this: WebSocketPair): void {
  if (new.target === undefined) {
    throw new TypeError(
      "Failed to construct 'WebSocketPair': Please use the 'new' operator, this object constructor cannot be called as a function."
    );
  }
  const a = new WebSocket(kPairEnd as unknown as string);
  const b = new WebSocket(kPairEnd as unknown as string);
  internals.entangle(a, b);
  this[0] = a;
  this[1] = b;
} as unknown as { new (): WebSocketPair; readonly prototype: WebSocketPair };

/** @internal Closes `socket` without the checks user calls get (e.g. on reload) */
export function _closeWebSocket(socket: WebSocket, code: number, reason: string): void {
  internals.close(socket, code, reason, true);
}

/** @internal Whether `socket` has been closed from its own side */
export function _isClosedOutgoing(socket: WebSocket): boolean {
  return internals.isClosedOutgoing(socket);
}

/** @internal Throws unless `pair` may be returned in a response and coupled */
export function _assertCouplable(pair: WebSocket): void {
  if (internals.isCoupled(pair)) {
    throw new TypeError("Can't return WebSocket that was already used in a response.");
  }
  if (internals.isAccepted(pair)) {
    throw new TypeError("Can't return WebSocket in a Response after calling accept().");
  }
}

// ---------------------------------------------------------------------------
// Coupling to a real connection
// ---------------------------------------------------------------------------

function rawToArrayBuffer(data: NodeWebSocket.RawData): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  const bytes = Array.isArray(data) ? Buffer.concat(data) : data;
  // (A copy: `ws` may reuse the memory)
  return new Uint8Array(bytes).buffer;
}

function rawToString(data: NodeWebSocket.RawData): string {
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString();
  return (Array.isArray(data) ? Buffer.concat(data) : data).toString();
}

/** Resolves once `ws` opens; rejects if it fails or closes first */
function opened(ws: NodeWebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: unknown) => {
      ws.off("open", onOpen);
      ws.off("error", onError);
      ws.off("close", onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onOpen = () => settle();
    const onError = (error: unknown) => settle(error);
    const onClose = () => settle(new TypeError("Incoming WebSocket connection already closed."));
    ws.on("open", onOpen);
    ws.on("error", onError);
    ws.on("close", onClose);
  });
}

/**
 * Connects `pair` (a pair end returned in a 101 response, or one made for a
 * client) to `ws`, a `ws` connection: messages and closes pass both ways,
 * and errors of `ws` reach the other end of the pair. Resolves once `ws` is
 * open; rejects (without throwing anything into the process) if it can't be.
 */
export async function coupleWebSocket(ws: NodeWebSocket, pair: WebSocket): Promise<void> {
  _assertCouplable(pair);
  if (ws.readyState >= WS_CLOSING) {
    throw new TypeError("Incoming WebSocket connection already closed.");
  }

  ws.on("message", (data: NodeWebSocket.RawData, isBinary: boolean) => {
    internals.send(pair, isBinary ? rawToArrayBuffer(data) : rawToString(data));
  });
  ws.on("close", (code: number, reason: Buffer) => {
    // 1006 means the connection dropped without a close frame
    internals.close(pair, code, reason.toString(), code !== 1006);
  });
  ws.on("error", (error: Error) => internals.error(pair, error));

  internals.couple(pair, {
    message(data) {
      try {
        // (The callback takes send errors: the connection is going anyway)
        ws.send(data, noop);
      } catch {
        // Not open yet or any more
      }
    },
    close(code, reason) {
      try {
        if (code === 1005) ws.close();
        else if (code === 1006) ws.terminate();
        else ws.close(code, reason);
      } catch {
        ws.terminate();
      }
    },
  });

  if (ws.readyState === WS_CONNECTING) await opened(ws);
  internals.acceptCoupled(pair);
}
