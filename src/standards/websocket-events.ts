/**
 * The events a `WebSocket` dispatches (websocket.ts). Only `MessageEvent`
 * and `CloseEvent` are worker globals, as in Miniflare 2; `ErrorEvent` is
 * only exported by the package.
 */
export interface MessageEventInit {
  data?: any;
}

export class MessageEvent extends Event {
  readonly data: any;

  constructor(type: "message", init?: MessageEventInit) {
    super(type);
    this.data = init?.data ?? null;
  }
}

export interface CloseEventInit {
  code?: number;
  reason?: string;
  wasClean?: boolean;
}

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;

  constructor(type: "close", init?: CloseEventInit) {
    super(type);
    // 1005: "No Status Received", what a close without a code reports
    this.code = init?.code ?? 1005;
    this.reason = init?.reason ?? "";
    this.wasClean = init?.wasClean ?? false;
  }
}

export interface ErrorEventInit {
  error?: any;
  message?: string;
}

export class ErrorEvent extends Event {
  readonly error: any;
  readonly message: string;

  constructor(type: "error", init?: ErrorEventInit) {
    super(type);
    this.error = init?.error ?? null;
    this.message = init?.message ?? (typeof this.error?.message === "string" ? this.error.message : "");
  }
}

export type WebSocketEventMap = {
  open: Event;
  message: MessageEvent;
  close: CloseEvent;
  error: ErrorEvent;
};
