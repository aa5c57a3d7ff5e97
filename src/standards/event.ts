import type { Awaitable } from "../shared/data.js";
import { prefixError } from "../shared/errors.js";
import {
  ThrowingEventTarget,
  type TypedEventListener,
} from "../shared/event.js";
import type { Log } from "../shared/log.js";
import { type Context, kGlobalGuards } from "../shared/runner.js";
import { DOMException } from "./domexception.js";
import { FetchError } from "./fetch-error.js";
import { Request, Response, withWaitUntil } from "./http.js";
import { fetch } from "./fetch.js";
import { base } from "./http-base.js";

// Node's built-in (undici) Response, which handlers may also respond with
type BaseResponse = globalThis.Response;

export { FetchError, type FetchErrorCode } from "./fetch-error.js";

// Suggestions appended to dispatch errors, worded for each worker syntax
const HANDLER_HINT_SW = 'calling addEventListener("fetch", ...)';
const HANDLER_HINT_MODULES =
  "exporting a default object containing a `fetch` function property";
const RESPONSE_HINT_SW =
  "calling `event.respondWith()` with a `Response` or `Promise<Response>` in your handler";
const RESPONSE_HINT_MODULES = "returning a `Response` in your handler";
const GLOBAL_BINDING_HINT_MODULES = [
  "Attempted to access binding using global in modules.",
  "You must use the 2nd `env` parameter passed to exported handlers/Durable Object constructors, or `context.env` with Pages Functions.",
].join("\n");

const ILLEGAL_INVOCATION = "Illegal invocation";

/**
 * Awaits every promise in `promises`, like `Promise.all()`, but if more
 * promises were pushed onto the array while waiting (nested `waitUntil()`
 * calls), waits again, until the array stops growing. Resolves to the results
 * of the final round.
 */
export async function waitUntilAll<WaitUntil extends any[] = unknown[]>(
  promises: unknown[]
): Promise<WaitUntil> {
  let settledLength = -1;
  let results: unknown[] = [];
  while (settledLength !== promises.length) {
    settledLength = promises.length;
    results = await Promise.all(promises);
  }
  return results as WaitUntil;
}

// Internal event state lives behind symbols so it's hidden from user code
const kResponse = Symbol("kResponse");
const kPassThrough = Symbol("kPassThrough");
const kSent = Symbol("kSent");
/** Key of the array of `waitUntil()`ed promises on FetchEvent/ScheduledEvent/QueueEvent */
export const kEventWaitUntil = Symbol("kWaitUntil");

/** Minimal shape of a queue message batch (implemented by the queues plugin) */
export interface MessageBatch<Body = unknown> {
  readonly queue: string;
  readonly messages: readonly {
    readonly id: string;
    readonly timestamp: Date;
    readonly body: Body;
    [key: string]: any;
  }[];
  retryAll(): void;
  [key: string]: any;
}

export interface FetchEventInit {
  request: Request;
}

export class FetchEvent extends Event {
  readonly request: Request;
  [kResponse]?: Promise<Response | BaseResponse>;
  [kPassThrough] = false;
  readonly [kEventWaitUntil]: Promise<unknown>[] = [];
  [kSent] = false;

  constructor(type: "fetch", init: FetchEventInit) {
    super(type);
    this.request = init.request;
  }

  respondWith(response: Awaitable<Response | BaseResponse>): void {
    if (!(this instanceof FetchEvent)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    if (this[kResponse] !== undefined) {
      throw new DOMException(
        "FetchEvent.respondWith() has already been called; it can only be called once.",
        "InvalidStateError"
      );
    }
    if (this[kSent]) {
      throw new DOMException(
        "Too late to call FetchEvent.respondWith(). It must be called synchronously in the event handler.",
        "InvalidStateError"
      );
    }
    // The first listener to respond wins: later listeners don't run
    this.stopImmediatePropagation();
    this[kResponse] = Promise.resolve(response);
  }

  passThroughOnException(): void {
    if (!(this instanceof FetchEvent)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    this[kPassThrough] = true;
  }

  waitUntil(promise: Awaitable<any>): void {
    if (!(this instanceof FetchEvent)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    this[kEventWaitUntil].push(Promise.resolve(promise));
  }
}

export interface ScheduledEventInit {
  scheduledTime: number;
  cron: string;
}

export class ScheduledEvent extends Event {
  readonly scheduledTime: number;
  readonly cron: string;
  readonly [kEventWaitUntil]: Promise<unknown>[] = [];

  constructor(type: "scheduled", init: ScheduledEventInit) {
    super(type);
    this.scheduledTime = init.scheduledTime;
    this.cron = init.cron;
  }

  waitUntil(promise: Awaitable<any>): void {
    if (!(this instanceof ScheduledEvent)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    this[kEventWaitUntil].push(promise as Promise<unknown>);
  }
}

export interface QueueEventInit {
  batch: MessageBatch;
}

export class QueueEvent extends Event {
  readonly batch: MessageBatch;
  readonly [kEventWaitUntil]: Promise<unknown>[] = [];

  constructor(type: "queue", init: QueueEventInit) {
    super(type);
    this.batch = init.batch;
  }

  waitUntil(promise: Awaitable<any>): void {
    if (!(this instanceof QueueEvent)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    this[kEventWaitUntil].push(promise as Promise<unknown>);
  }
}

/** The `ctx` argument passed to module handlers */
export class ExecutionContext {
  readonly #event: FetchEvent | ScheduledEvent | QueueEvent;

  constructor(event: FetchEvent | ScheduledEvent | QueueEvent) {
    this.#event = event;
  }

  passThroughOnException(): void {
    if (!(this instanceof ExecutionContext)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    // Only meaningful for fetch events, a no-op otherwise
    const event = this.#event;
    if (event instanceof FetchEvent) event.passThroughOnException();
  }

  waitUntil(promise: Awaitable<any>): void {
    if (!(this instanceof ExecutionContext)) {
      throw new TypeError(ILLEGAL_INVOCATION);
    }
    this.#event.waitUntil(promise);
  }
}

/** The `controller` argument passed to module `scheduled` handlers */
export class ScheduledController {
  readonly scheduledTime: number;
  readonly cron: string;

  constructor(scheduledTime: number, cron: string) {
    this.scheduledTime = scheduledTime;
    this.cron = cron;
  }
}

export type ModuleFetchListener = (
  request: Request,
  env: Context,
  ctx: ExecutionContext
) => Awaitable<Response | BaseResponse>;

export type ModuleScheduledListener = (
  controller: ScheduledController,
  env: Context,
  ctx: ExecutionContext
) => any;

export type ModuleQueueListener = (
  batch: MessageBatch,
  env: Context,
  ctx: ExecutionContext
) => any;

export const kAddModuleFetchListener = Symbol("kAddModuleFetchListener");
export const kAddModuleScheduledListener = Symbol("kAddModuleScheduledListener");
export const kAddModuleQueueListener = Symbol("kAddModuleQueueListener");
export const kDispatchFetch = Symbol("kDispatchFetch");
export const kDispatchScheduled = Symbol("kDispatchScheduled");
export const kDispatchQueue = Symbol("kDispatchQueue");
export const kDispose = Symbol("kDispose");

export interface PromiseRejectionEventInit {
  promise: Promise<any>;
  reason?: any;
}

export class PromiseRejectionEvent extends Event {
  readonly promise: Promise<any>;
  readonly reason?: any;

  constructor(
    type: "unhandledrejection" | "rejectionhandled",
    init: PromiseRejectionEventInit
  ) {
    super(type, { cancelable: true });
    this.promise = init.promise;
    this.reason = init.reason;
  }
}

export type WorkerGlobalScopeEventMap = {
  fetch: FetchEvent;
  scheduled: ScheduledEvent;
  queue: QueueEvent;
  unhandledrejection: PromiseRejectionEvent;
  rejectionhandled: PromiseRejectionEvent;
};

// Events that must be handled by module exports in modules mode
const MODULE_HANDLER_EVENT_TYPES = new Set(["fetch", "scheduled", "trace", "queue"]);

export class WorkerGlobalScope extends ThrowingEventTarget<WorkerGlobalScopeEventMap> {}

type ProcessRejectionEventName = "unhandledRejection" | "rejectionHandled";

/**
 * A process-wide listener that's only registered while it has at least one
 * "member" (a worker event listener, or `true` when logging unhandled
 * rejections), so Node's default unhandled rejection behaviour is unaffected
 * when no worker cares.
 */
class ProcessListenerRegistration {
  readonly #members = new Set<unknown>();

  constructor(
    private readonly log: Log,
    readonly name: ProcessRejectionEventName,
    private readonly handler: (...args: any[]) => void
  ) {}

  add(member: unknown): void {
    if (this.#members.size === 0) {
      this.log.verbose(`Adding process ${this.name} listener...`);
      process.prependListener(this.name as "unhandledRejection", this.handler);
    }
    this.#members.add(member);
  }

  delete(member: unknown): void {
    const wasRegistered = this.#members.size > 0;
    this.#members.delete(member);
    if (wasRegistered && this.#members.size === 0) {
      this.log.verbose(`Removing process ${this.name} listener...`);
      process.removeListener(this.name, this.handler);
    }
  }

  reset(): void {
    if (this.#members.size > 0) {
      this.log.verbose(`Removing process ${this.name} listener...`);
      process.removeListener(this.name, this.handler);
    }
    this.#members.clear();
  }
}

type GlobalScopeListener<Type extends keyof WorkerGlobalScopeEventMap> =
  TypedEventListener<WorkerGlobalScopeEventMap[Type]> | null;

/**
 * When proxying, the request as it arrived must still be sendable after the
 * handler ran. A request with a body is cloned, the handler getting the clone.
 * A body-less one (most) is handed over as is, its method, URL and headers
 * noted first, which costs far less than a clone and still sends what
 * arrived if the handler changed the headers.
 */
function forwardableRequest(request: Request): { handled: Request; forward: () => Request } {
  if (request.body !== null) {
    return { handled: request.clone(), forward: () => request };
  }
  const { url, method, redirect, cf } = request;
  const headers = [...request.headers];
  return {
    handled: request,
    forward: () => new Request(url, { method, headers, redirect, cf }),
  };
}

export class ServiceWorkerGlobalScope extends WorkerGlobalScope {
  readonly #log: Log;
  readonly #bindings: Context;
  readonly #modules?: boolean;
  readonly #logUnhandledRejections?: boolean;
  #calledAddFetchEventListener = false;

  readonly #unhandledRejection: ProcessListenerRegistration;
  readonly #rejectionHandled: ProcessListenerRegistration;

  // Global self-references
  readonly global = this;
  readonly self = this;

  constructor(
    log: Log,
    globals: Context,
    bindings: Context,
    modules?: boolean,
    logUnhandledRejections?: boolean
  ) {
    super();
    this.#log = log;
    this.#bindings = bindings;
    this.#modules = modules;
    this.#logUnhandledRejections = logUnhandledRejections;

    this.#unhandledRejection = new ProcessListenerRegistration(
      log,
      "unhandledRejection",
      this.#onProcessUnhandledRejection
    );
    this.#rejectionHandled = new ProcessListenerRegistration(
      log,
      "rejectionHandled",
      this.#onProcessRejectionHandled
    );
    // When logging, the process listener stays registered until disposed,
    // regardless of worker listeners
    if (logUnhandledRejections) this.#unhandledRejection.add(true);

    Object.assign(this, globals);
    if (modules) {
      // Bindings aren't globals in modules mode: make touching one as a
      // global a helpful error instead of a plain "not defined"
      // The getters sit on a prototype inserted under this object rather
      // than on it, so they aren't own properties of the worker's globalThis
      // (`Object.getOwnPropertyNames(globalThis)` on Node 22+ would list
      // them, and reading each would throw)
      const guards = new Map<string, () => never>();
      const guardHolder = Object.create(Object.getPrototypeOf(this)) as object;
      for (const key of Object.keys(bindings)) {
        // `@cloudflare/kv-asset-handler` does `typeof __STATIC_CONTENT...`
        // checks which must not throw. Note this stops guarding *all*
        // remaining bindings, not just these keys (Miniflare 2 behaviour).
        if (key === "__STATIC_CONTENT" || key === "__STATIC_CONTENT_MANIFEST") {
          break;
        }
        const get = (): never => {
          throw new ReferenceError(
            `${key} is not defined.\n${GLOBAL_BINDING_HINT_MODULES}`
          );
        };
        guards.set(key, get);
        // (a global of the same name is hidden, as a binding would hide it)
        delete (this as Record<string, unknown>)[key];
        Object.defineProperty(guardHolder, key, { get });
      }
      Object.setPrototypeOf(this, guardHolder);
      // The script runner installs these in the worker's context too, where
      // Node 22+ would swallow this object's getters' errors
      Object.defineProperty(this, kGlobalGuards, { value: guards });
    } else {
      Object.assign(this, bindings);
    }
  }

  // Own, bound properties so workers can call them without a receiver
  override addEventListener = <Type extends keyof WorkerGlobalScopeEventMap>(
    type: Type,
    listener: GlobalScopeListener<Type>,
    options?: AddEventListenerOptions | boolean
  ): void => {
    if (this.#modules && MODULE_HANDLER_EVENT_TYPES.has(type)) {
      this.#log.warn(
        `When using module syntax, the '${type}' event handler should be declared as an exported function on the root module as opposed to using the global addEventListener().`
      );
      return;
    }
    if (type === "fetch") this.#calledAddFetchEventListener = true;
    if (listener) {
      if (type === "unhandledrejection") this.#unhandledRejection.add(listener);
      else if (type === "rejectionhandled") this.#rejectionHandled.add(listener);
    }
    super.addEventListener(type, listener, options);
  };

  override removeEventListener = <Type extends keyof WorkerGlobalScopeEventMap>(
    type: Type,
    listener: GlobalScopeListener<Type>,
    options?: EventListenerOptions | boolean
  ): void => {
    if (this.#modules && MODULE_HANDLER_EVENT_TYPES.has(type)) return;
    if (listener) {
      if (type === "unhandledrejection") this.#unhandledRejection.delete(listener);
      else if (type === "rejectionhandled") this.#rejectionHandled.delete(listener);
    }
    super.removeEventListener(type, listener, options);
  };

  /** Registers a modules-mode default export's `fetch(request, env, ctx)` */
  [kAddModuleFetchListener](listener: ModuleFetchListener): void {
    this.#calledAddFetchEventListener = true;
    super.addEventListener("fetch", (event) => {
      const ctx = new ExecutionContext(event);
      event.respondWith(listener(event.request, this.#bindings, ctx));
    });
  }

  /** Registers a modules-mode default export's `scheduled(controller, env, ctx)` */
  [kAddModuleScheduledListener](listener: ModuleScheduledListener): void {
    super.addEventListener("scheduled", (event) => {
      const controller = new ScheduledController(event.scheduledTime, event.cron);
      const ctx = new ExecutionContext(event);
      const result = listener(controller, this.#bindings, ctx);
      if (result !== undefined) event.waitUntil(Promise.resolve(result));
    });
  }

  /** Registers a modules-mode default export's `queue(batch, env, ctx)` */
  [kAddModuleQueueListener](listener: ModuleQueueListener): void {
    super.addEventListener("queue", (event) => {
      const ctx = new ExecutionContext(event);
      const result = listener(event.batch, this.#bindings, ctx);
      if (result !== undefined) event.waitUntil(Promise.resolve(result));
    });
  }

  /**
   * Dispatches a fetch event, resolving to the response (with its `waitUntil`
   * promises attached). With `proxy` set (an upstream is configured), a
   * missing response, or a handler throwing after `passThroughOnException()`,
   * forwards the request to the network instead of failing.
   */
  async [kDispatchFetch]<WaitUntil extends any[] = unknown[]>(
    request: Request,
    proxy = false
  ): Promise<Response> {
    const forwarded = proxy ? forwardableRequest(request) : undefined;
    const event = new FetchEvent("fetch", { request: forwarded?.handled ?? request });
    let response: Response | BaseResponse | undefined;
    try {
      super.dispatchEvent(event);
      response = await event[kResponse];
    } catch (e: any) {
      if (!event[kPassThrough]) throw e;
      this.#log.warn(e?.stack);
    } finally {
      event[kSent] = true;
    }

    if (response !== undefined) {
      // (Only loads the built-in Response class if really needed)
      const valid = response instanceof Response || response instanceof base().Response;
      if (!valid) {
        const hint = this.#modules ? RESPONSE_HINT_MODULES : RESPONSE_HINT_SW;
        throw new FetchError(
          "ERR_RESPONSE_TYPE",
          `Fetch handler didn't respond with a Response object.\nMake sure you're ${hint}.`
        );
      }
      const waitUntil = waitUntilAll<WaitUntil>(event[kEventWaitUntil]);
      return withWaitUntil(response, waitUntil);
    }

    if (!proxy) {
      if (event[kPassThrough]) {
        throw new FetchError(
          "ERR_NO_UPSTREAM",
          "No upstream to pass-through to specified.\nMake sure you've set the `upstream` option."
        );
      }
      if (this.#calledAddFetchEventListener) {
        const hint = this.#modules ? RESPONSE_HINT_MODULES : RESPONSE_HINT_SW;
        throw new FetchError(
          "ERR_NO_RESPONSE",
          `No fetch handler responded and no upstream to proxy to specified.\nMake sure you're ${hint}.`
        );
      }
      const hint = this.#modules ? HANDLER_HINT_MODULES : HANDLER_HINT_SW;
      throw new FetchError(
        "ERR_NO_HANDLER",
        `No fetch handler defined and no upstream to proxy to specified.\nMake sure you're ${hint}.`
      );
    }

    const waitUntil = waitUntilAll<WaitUntil>(event[kEventWaitUntil]);
    return withWaitUntil(await fetch(forwarded!.forward()), waitUntil);
  }

  /** Dispatches a scheduled event, resolving to its `waitUntil` results */
  async [kDispatchScheduled]<WaitUntil extends any[] = any[]>(
    scheduledTime?: number,
    cron?: string
  ): Promise<WaitUntil> {
    const event = new ScheduledEvent("scheduled", {
      scheduledTime: scheduledTime ?? Date.now(),
      cron: cron ?? "",
    });
    super.dispatchEvent(event);
    return waitUntilAll<WaitUntil>(event[kEventWaitUntil]);
  }

  /** Dispatches a queue event, resolving to its `waitUntil` results */
  async [kDispatchQueue]<WaitUntil extends any[] = any[]>(
    batch: MessageBatch
  ): Promise<WaitUntil> {
    const event = new QueueEvent("queue", { batch });
    super.dispatchEvent(event);
    return waitUntilAll<WaitUntil>(event[kEventWaitUntil]);
  }

  readonly #onProcessUnhandledRejection = (
    reason: any,
    promise: Promise<any>
  ): void => {
    const event = new PromiseRejectionEvent("unhandledrejection", {
      reason,
      promise,
    });
    const notCancelled = super.dispatchEvent(event);
    if (!notCancelled) return;
    if (this.#logUnhandledRejections) {
      this.#log.error(prefixError("Unhandled Promise Rejection", reason));
    } else {
      // Stop intercepting, then re-raise so Node's default handling applies
      this.#unhandledRejection.reset();
      void Promise.reject(reason);
    }
  };

  readonly #onProcessRejectionHandled = (promise: Promise<any>): void => {
    const event = new PromiseRejectionEvent("rejectionhandled", { promise });
    super.dispatchEvent(event);
  };

  /** Removes any process-wide listeners (call before reloading or disposing) */
  [kDispose](): void {
    this.#unhandledRejection.reset();
    this.#rejectionHandled.reset();
  }
}
