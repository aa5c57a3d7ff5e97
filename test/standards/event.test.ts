import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MiniflareError } from "../../src/shared/errors.js";
import { DOMException } from "../../src/standards/domexception.js";
import { LogLevel } from "../../src/shared/log.js";
import {
  ExecutionContext,
  FetchError,
  FetchEvent,
  PromiseRejectionEvent,
  QueueEvent,
  ScheduledController,
  ScheduledEvent,
  ServiceWorkerGlobalScope,
  WorkerGlobalScope,
  kAddModuleFetchListener,
  kAddModuleQueueListener,
  kAddModuleScheduledListener,
  kDispatchFetch,
  kDispatchQueue,
  kDispatchScheduled,
  kEventWaitUntil,
  waitUntilAll,
  type MessageBatch,
} from "../../src/standards/event.js";
import { Request, Response } from "../../src/standards/http.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { startServer } from "../helpers/http.js";
import { TestLog } from "../helpers/log.js";

const SUGGEST_RES_SW =
  "calling `event.respondWith()` with a `Response` or `Promise<Response>` in your handler";
const SUGGEST_RES_MODULES = "returning a `Response` in your handler";
const SUGGEST_HANDLER_SW = 'calling addEventListener("fetch", ...)';
const SUGGEST_HANDLER_MODULES =
  "exporting a default object containing a `fetch` function property";
const RESPONSE_TYPE_MESSAGE = (suggestion: string) =>
  `Fetch handler didn't respond with a Response object.\nMake sure you're ${suggestion}.`;
const NO_RESPONSE_MESSAGE = (suggestion: string) =>
  `No fetch handler responded and no upstream to proxy to specified.\nMake sure you're ${suggestion}.`;
const NO_HANDLER_MESSAGE = (suggestion: string) =>
  `No fetch handler defined and no upstream to proxy to specified.\nMake sure you're ${suggestion}.`;
const NO_UPSTREAM_MESSAGE =
  "No upstream to pass-through to specified.\nMake sure you've set the `upstream` option.";
const ALREADY_CALLED_MESSAGE =
  "FetchEvent.respondWith() has already been called; it can only be called once.";
const TOO_LATE_MESSAGE =
  "Too late to call FetchEvent.respondWith(). It must be called synchronously in the event handler.";
const BINDING_MESSAGE = (key: string) =>
  `${key} is not defined.\nAttempted to access binding using global in modules.\nYou must use the 2nd \`env\` parameter passed to exported handlers/Durable Object constructors, or \`context.env\` with Pages Functions.`;
const MODULE_WARNING = (type: string) =>
  `When using module syntax, the '${type}' event handler should be declared as an exported function on the root module as opposed to using the global addEventListener().`;

function useScope(modules = false, bindings: Record<string, any> = { KEY: "value" }) {
  const log = new TestLog();
  const globalScope = new ServiceWorkerGlobalScope(log, {}, bindings, modules);
  return { log, globalScope };
}

/** Sorted unique own + inherited (non-Object.prototype) string property names */
function getObjectProperties(object: object): string[] {
  const names = new Set<string>();
  let current: object | null = object;
  while (current !== null && current !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(current)) {
      if (name !== "constructor") names.add(name);
    }
    current = Object.getPrototypeOf(current);
  }
  return [...names].sort();
}

function isInvalidState(message: string) {
  return (error: any) => {
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "InvalidStateError");
    assert.equal(error.message, message);
    assert.equal(error.code, 11);
    return true;
  };
}

function illegalInvocation(error: any) {
  assert.ok(error instanceof TypeError);
  assert.equal(error.message, "Illegal invocation");
  return true;
}

const batch: MessageBatch = {
  queue: "queue",
  messages: [{ id: "1", timestamp: new Date(1000), body: "body" }],
  retryAll() {},
};

// Upstream origin (no trailing slash) answering `upstream:<method>:<path>:<body>`
let upstream: string;
let closeUpstream: () => Promise<void>;
before(async () => {
  const server = await startServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => res.end(`upstream:${req.method}:${req.url}:${body}`));
  });
  upstream = server.url.origin;
  closeUpstream = server.close;
});
after(() => closeUpstream());

/** Dispatches a fetch for http://localhost/, asserting it rejects with FetchError `code` */
function assertFetchRejects(
  globalScope: ServiceWorkerGlobalScope,
  code: string,
  message?: string
): Promise<MiniflareError> {
  return assertRejectsMiniflare(
    globalScope[kDispatchFetch](new Request("http://localhost/")),
    FetchError,
    code,
    message
  );
}

/**
 * A promise for `value` that, 10ms later, passes `add` (waitUntil) the
 * promise for `value + 1` and so on, up to a plain promise for `last`
 */
function nestedPromise(add: (promise: Promise<unknown>) => void, last: number, value = 1): Promise<number> {
  if (value === last) return Promise.resolve(value);
  return (async () => {
    await sleep(10);
    add(nestedPromise(add, last, value + 1));
    return value;
  })();
}

/** Adds three `type` listeners, the second throwing, checking `dispatch` stops there */
async function assertStopsAfterFirstError(
  globalScope: ServiceWorkerGlobalScope,
  type: "fetch" | "scheduled",
  dispatch: () => Promise<unknown>
): Promise<void> {
  const calls: number[] = [];
  globalScope.addEventListener(type, () => {
    calls.push(1);
  });
  globalScope.addEventListener(type, () => {
    calls.push(2);
    throw new TypeError("test");
  });
  globalScope.addEventListener(type, () => {
    calls.push(3);
  });
  await assert.rejects(dispatch(), { name: "TypeError", message: "test" });
  assert.deepEqual(calls, [1, 2]);
}

// ---------------------------------------------------------------------------
// FetchError
// ---------------------------------------------------------------------------

test("FetchError: extends MiniflareError with code in name", () => {
  const error = new FetchError("ERR_NO_HANDLER", "message");
  assert.ok(error instanceof MiniflareError);
  assert.ok(error instanceof Error);
  assert.equal(error.code, "ERR_NO_HANDLER");
  assert.equal(error.name, "FetchError [ERR_NO_HANDLER]");
  assert.equal(error.message, "message");
});

// ---------------------------------------------------------------------------
// waitUntilAll
// ---------------------------------------------------------------------------

test("waitUntilAll: resolves to results of all promises", async () => {
  assert.deepEqual(await waitUntilAll([Promise.resolve(1), 2, Promise.resolve(3)]), [1, 2, 3]);
  assert.deepEqual(await waitUntilAll([]), []);
});
test("waitUntilAll: waits for promises added while waiting", async () => {
  const promises: Promise<unknown>[] = [];
  const add = (promise: Promise<unknown>) => promises.push(promise);
  add(nestedPromise(add, 3));
  assert.deepEqual(await waitUntilAll(promises), [1, 2, 3]);
});
test("waitUntilAll: rejects if any promise rejects", async () => {
  await assert.rejects(waitUntilAll([Promise.resolve(1), Promise.reject(new Error("boom"))]), {
    message: "boom",
  });
});

// ---------------------------------------------------------------------------
// FetchEvent
// ---------------------------------------------------------------------------

test("FetchEvent: exposes type and request", () => {
  const request = new Request("http://localhost:8787/");
  const event = new FetchEvent("fetch", { request });
  assert.ok(event instanceof Event);
  assert.equal(event.type, "fetch");
  assert.equal(event.request, request);
});
test("FetchEvent: respondWith: throws if called twice", () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  event.respondWith(new Response("1"));
  assert.throws(() => event.respondWith(new Response("2")), isInvalidState(ALREADY_CALLED_MESSAGE));
});
test("FetchEvent: respondWith: throws if called twice even with undefined-ish promise", () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  event.respondWith(undefined as any);
  assert.throws(() => event.respondWith(new Response("2")), isInvalidState(ALREADY_CALLED_MESSAGE));
});
test("FetchEvent: respondWith: throws if called after dispatch finished", async () => {
  const { globalScope } = useScope();
  let event: FetchEvent | undefined;
  globalScope.addEventListener("fetch", (e) => {
    event = e;
    e.respondWith(new Response("body"));
  });
  await globalScope[kDispatchFetch](new Request("http://localhost/"));
  // "already called" is checked before "too late"
  assert.throws(() => event!.respondWith(new Response("late")), isInvalidState(ALREADY_CALLED_MESSAGE));

  const { globalScope: scope2 } = useScope();
  let event2: FetchEvent | undefined;
  scope2.addEventListener("fetch", (e) => {
    event2 = e;
    e.passThroughOnException();
  });
  await assert.rejects(scope2[kDispatchFetch](new Request("http://localhost/")));
  assert.throws(() => event2!.respondWith(new Response("late")), isInvalidState(TOO_LATE_MESSAGE));
});
test("FetchEvent: respondWith: throws if called asynchronously after dispatch", async () => {
  const { globalScope } = useScope();
  let lateError: unknown;
  let resolveLate!: () => void;
  const late = new Promise<void>((resolve) => (resolveLate = resolve));
  globalScope.addEventListener("fetch", (e) => {
    setTimeout(() => {
      try {
        e.respondWith(new Response("late"));
      } catch (error) {
        lateError = error;
      }
      resolveLate();
    }, 10);
  });
  await assertFetchRejects(globalScope, "ERR_NO_RESPONSE");
  await late;
  assert.ok(isInvalidState(TOO_LATE_MESSAGE)(lateError));
});
test("FetchEvent: respondWith: stops calling later listeners", () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  const target = new EventTarget();
  const calls: number[] = [];
  target.addEventListener("fetch", () => calls.push(1));
  target.addEventListener("fetch", (e) => {
    calls.push(2);
    (e as FetchEvent).respondWith(new Response("body"));
  });
  target.addEventListener("fetch", () => calls.push(3));
  target.dispatchEvent(event);
  assert.deepEqual(calls, [1, 2]);
});
test("FetchEvent: waitUntil: records promises", async () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  event.waitUntil(Promise.resolve(1));
  event.waitUntil(2);
  assert.equal(event[kEventWaitUntil].length, 2);
  assert.ok(event[kEventWaitUntil][1] instanceof Promise);
  assert.deepEqual(await Promise.all(event[kEventWaitUntil]), [1, 2]);
});
test("FetchEvent: methods throw Illegal invocation with incorrect this", () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  const { respondWith, passThroughOnException, waitUntil } = event;
  assert.throws(() => respondWith(new Response("")), illegalInvocation);
  assert.throws(() => passThroughOnException(), illegalInvocation);
  assert.throws(() => waitUntil(Promise.resolve()), illegalInvocation);
  assert.throws(() => respondWith.call({}, new Response("")), illegalInvocation);
});
test("FetchEvent: hides implementation details", () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  const names = getObjectProperties(event);
  for (const name of ["passThroughOnException", "request", "respondWith", "waitUntil"]) {
    assert.ok(names.includes(name), name);
  }
  const eventNames = new Set(getObjectProperties(new Event("fetch")));
  assert.deepEqual(
    names.filter((name) => !eventNames.has(name)),
    ["passThroughOnException", "request", "respondWith", "waitUntil"]
  );
});

// ---------------------------------------------------------------------------
// ScheduledEvent / QueueEvent / PromiseRejectionEvent
// ---------------------------------------------------------------------------

test("ScheduledEvent: exposes scheduledTime and cron", async () => {
  const event = new ScheduledEvent("scheduled", { scheduledTime: 1000, cron: "30 * * * *" });
  assert.equal(event.type, "scheduled");
  assert.equal(event.scheduledTime, 1000);
  assert.equal(event.cron, "30 * * * *");
  event.waitUntil(Promise.resolve(1));
  assert.deepEqual(await Promise.all(event[kEventWaitUntil]), [1]);
});
test("ScheduledEvent: waitUntil: throws Illegal invocation with incorrect this", () => {
  const event = new ScheduledEvent("scheduled", { scheduledTime: 1000, cron: "" });
  const { waitUntil } = event;
  assert.throws(() => waitUntil(Promise.resolve()), illegalInvocation);
});
test("ScheduledEvent: hides implementation details", () => {
  const event = new ScheduledEvent("scheduled", { scheduledTime: 1000, cron: "" });
  const eventNames = new Set(getObjectProperties(new Event("scheduled")));
  assert.deepEqual(
    getObjectProperties(event).filter((name) => !eventNames.has(name)),
    ["cron", "scheduledTime", "waitUntil"]
  );
});
test("QueueEvent: exposes batch", async () => {
  const event = new QueueEvent("queue", { batch });
  assert.equal(event.type, "queue");
  assert.equal(event.batch, batch);
  event.waitUntil(Promise.resolve(1));
  assert.deepEqual(await Promise.all(event[kEventWaitUntil]), [1]);
});
test("QueueEvent: waitUntil: throws Illegal invocation with incorrect this", () => {
  const event = new QueueEvent("queue", { batch });
  const { waitUntil } = event;
  assert.throws(() => waitUntil(Promise.resolve()), illegalInvocation);
});
test("PromiseRejectionEvent: is cancelable and exposes promise and reason", () => {
  const promise = Promise.resolve();
  const reason = new Error("reason");
  const event = new PromiseRejectionEvent("unhandledrejection", { promise, reason });
  assert.equal(event.type, "unhandledrejection");
  assert.equal(event.cancelable, true);
  assert.equal(event.promise, promise);
  assert.equal(event.reason, reason);
  event.preventDefault();
  assert.equal(event.defaultPrevented, true);
});

// ---------------------------------------------------------------------------
// ExecutionContext / ScheduledController
// ---------------------------------------------------------------------------

test("ExecutionContext: waitUntil: adds to event's waitUntil promises", async () => {
  const event = new FetchEvent("fetch", { request: new Request("http://localhost/") });
  const ctx = new ExecutionContext(event);
  ctx.waitUntil(Promise.resolve(1));
  assert.deepEqual(await Promise.all(event[kEventWaitUntil]), [1]);
  const scheduled = new ScheduledEvent("scheduled", { scheduledTime: 0, cron: "" });
  new ExecutionContext(scheduled).waitUntil(Promise.resolve(2));
  assert.deepEqual(await Promise.all(scheduled[kEventWaitUntil]), [2]);
});
test("ExecutionContext: passThroughOnException: passes through for fetch events", async () => {
  const { globalScope, log } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    new ExecutionContext(e).passThroughOnException();
    throw new Error("test");
  });
  await assertFetchRejects(globalScope, "ERR_NO_UPSTREAM", NO_UPSTREAM_MESSAGE);
  assert.match(log.logsAtLevel(LogLevel.WARN)[0], /^Error: test\n/);
});
test("ExecutionContext: passThroughOnException: no-op for non-fetch events", () => {
  const scheduled = new ScheduledEvent("scheduled", { scheduledTime: 0, cron: "" });
  new ExecutionContext(scheduled).passThroughOnException();
  const queue = new QueueEvent("queue", { batch });
  new ExecutionContext(queue).passThroughOnException();
});
test("ExecutionContext: methods throw Illegal invocation with incorrect this", () => {
  const ctx = new ExecutionContext(new ScheduledEvent("scheduled", { scheduledTime: 0, cron: "" }));
  const { waitUntil, passThroughOnException } = ctx;
  assert.throws(() => waitUntil(Promise.resolve()), illegalInvocation);
  assert.throws(() => passThroughOnException(), illegalInvocation);
});
test("ExecutionContext: hides implementation details", () => {
  const ctx = new ExecutionContext(new ScheduledEvent("scheduled", { scheduledTime: 0, cron: "" }));
  assert.deepEqual(getObjectProperties(ctx), ["passThroughOnException", "waitUntil"]);
});
test("ScheduledController: exposes scheduledTime and cron", () => {
  const controller = new ScheduledController(1000, "30 * * * *");
  assert.equal(controller.scheduledTime, 1000);
  assert.equal(controller.cron, "30 * * * *");
  assert.deepEqual(getObjectProperties(controller), ["cron", "scheduledTime"]);
});

// ---------------------------------------------------------------------------
// ServiceWorkerGlobalScope
// ---------------------------------------------------------------------------

test("ServiceWorkerGlobalScope: is a WorkerGlobalScope and EventTarget", () => {
  const { globalScope } = useScope();
  assert.ok(globalScope instanceof WorkerGlobalScope);
  assert.ok(globalScope instanceof EventTarget);
});
test("ServiceWorkerGlobalScope: includes sandbox in globals", () => {
  const globalScope = new ServiceWorkerGlobalScope(new TestLog(), { sand: "box" }, {}, false);
  assert.equal((globalScope as any).sand, "box");
  const modulesScope = new ServiceWorkerGlobalScope(new TestLog(), { sand: "box" }, {}, true);
  assert.equal((modulesScope as any).sand, "box");
});
test("ServiceWorkerGlobalScope: includes environment in globals if modules disabled", () => {
  const globalScope = new ServiceWorkerGlobalScope(new TestLog(), {}, { env: "ironment" }, false);
  assert.equal((globalScope as any).env, "ironment");
  const noModulesArg = new ServiceWorkerGlobalScope(new TestLog(), {}, { env: "ironment" });
  assert.equal((noModulesArg as any).env, "ironment");
});
test("ServiceWorkerGlobalScope: bindings override globals in service-worker mode", () => {
  const globalScope = new ServiceWorkerGlobalScope(new TestLog(), { KEY: "global" }, { KEY: "binding" });
  assert.equal((globalScope as any).KEY, "binding");
});
test("ServiceWorkerGlobalScope: throws when accessing bindings as globals in modules mode", () => {
  const { globalScope } = useScope(true, { KEY: "value", OTHER: 1 });
  assert.throws(() => (globalScope as any).KEY, (error: any) => {
    assert.ok(error instanceof ReferenceError);
    assert.equal(error.message, BINDING_MESSAGE("KEY"));
    return true;
  });
  assert.throws(() => (globalScope as any).OTHER, {
    name: "ReferenceError",
    message: BINDING_MESSAGE("OTHER"),
  });
  assert.ok("KEY" in globalScope);
  // Not own properties: a worker listing its globals doesn't meet them
  assert.ok(!Object.getOwnPropertyNames(globalScope).includes("KEY"));
  // A global of the same name is hidden too
  const shadowing = new ServiceWorkerGlobalScope(new TestLog(), { KEY: "global" }, { KEY: "binding" }, true);
  assert.throws(() => (shadowing as any).KEY, { message: BINDING_MESSAGE("KEY") });
});
test("ServiceWorkerGlobalScope: stops guarding bindings at first __STATIC_CONTENT key", () => {
  for (const staticKey of ["__STATIC_CONTENT", "__STATIC_CONTENT_MANIFEST"]) {
    const { globalScope } = useScope(true, {
      BEFORE: 1,
      [staticKey]: "static",
      AFTER: 2,
    });
    assert.throws(() => (globalScope as any).BEFORE, { message: BINDING_MESSAGE("BEFORE") });
    assert.equal(typeof (globalScope as any)[staticKey], "undefined");
    // Quirk: iteration `break`s, so later bindings aren't guarded either
    assert.equal((globalScope as any).AFTER, undefined);
    assert.equal("AFTER" in globalScope, false);
  }
});
test("ServiceWorkerGlobalScope: includes global self-references", () => {
  const { globalScope } = useScope();
  assert.equal(globalScope.global, globalScope);
  assert.equal(globalScope.self, globalScope);
});
test("ServiceWorkerGlobalScope: hides implementation details", () => {
  const { globalScope } = useScope(true, {});
  assert.deepEqual(getObjectProperties(globalScope), [
    "addEventListener",
    "dispatchEvent",
    "global",
    "removeEventListener",
    "self",
  ]);
  // addEventListener/removeEventListener are own (bound) properties
  assert.deepEqual(Object.getOwnPropertyNames(globalScope).sort(), [
    "addEventListener",
    "global",
    "removeEventListener",
    "self",
  ]);
});
test("ServiceWorkerGlobalScope: addEventListener/removeEventListener work without receiver", async () => {
  const { globalScope } = useScope();
  const { addEventListener, removeEventListener } = globalScope;
  const listener = (e: FetchEvent) => e.respondWith(new Response("bound"));
  addEventListener("fetch", listener);
  let res = await globalScope[kDispatchFetch](new Request("http://localhost/"));
  assert.equal(await res.text(), "bound");
  removeEventListener("fetch", listener);
  // A fetch listener was added at some point, so no response, not no handler
  await assertFetchRejects(globalScope, "ERR_NO_RESPONSE", NO_RESPONSE_MESSAGE(SUGGEST_RES_SW));
  // Listener objects with handleEvent are supported
  addEventListener("fetch", { handleEvent: (e: FetchEvent) => e.respondWith(new Response("object")) });
  res = await globalScope[kDispatchFetch](new Request("http://localhost/"));
  assert.equal(await res.text(), "object");
});
test("ServiceWorkerGlobalScope: warns and ignores special event listeners in modules mode", async () => {
  const { globalScope, log } = useScope(true);
  let called = false;
  for (const type of ["fetch", "scheduled", "queue", "trace"]) {
    globalScope.addEventListener(type as any, () => (called = true));
  }
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    MODULE_WARNING("fetch"),
    MODULE_WARNING("scheduled"),
    MODULE_WARNING("queue"),
    MODULE_WARNING("trace"),
  ]);
  // Removing is silently ignored
  globalScope.removeEventListener("fetch", () => {});
  assert.equal(log.logsAtLevel(LogLevel.WARN).length, 4);
  await assertFetchRejects(globalScope, "ERR_NO_HANDLER", NO_HANDLER_MESSAGE(SUGGEST_HANDLER_MODULES));
  assert.deepEqual(await globalScope[kDispatchScheduled](), []);
  assert.deepEqual(await globalScope[kDispatchQueue](batch), []);
  assert.equal(called, false);
});
test("ServiceWorkerGlobalScope: allows other event listeners in modules mode", () => {
  const { globalScope, log } = useScope(true);
  let called = false;
  globalScope.addEventListener("custom" as any, () => (called = true));
  globalScope.dispatchEvent(new Event("custom") as any);
  assert.equal(called, true);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

// ---------------------------------------------------------------------------
// Module listeners
// ---------------------------------------------------------------------------

test("kAddModuleFetchListener: calls handler with request, env and ctx", async () => {
  const { globalScope } = useScope(true);
  const request = new Request("http://localhost:8787/");
  globalScope[kAddModuleFetchListener]((req, env, ctx) => {
    assert.equal(req, request);
    assert.deepEqual(env, { KEY: "value" });
    assert.ok(ctx instanceof ExecutionContext);
    ctx.waitUntil(Promise.resolve(env.KEY));
    return new Response(req.url);
  });
  const res = await globalScope[kDispatchFetch](request);
  assert.equal(await res.text(), "http://localhost:8787/");
  assert.deepEqual(await (res as any).waitUntil(), ["value"]);
});
test("kAddModuleFetchListener: handles async handlers", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleFetchListener](async (req) => new Response(`async:${req.url}`));
  const res = await globalScope[kDispatchFetch](new Request("http://localhost/"));
  assert.equal(await res.text(), "async:http://localhost/");
});
test("kAddModuleFetchListener: throws ERR_RESPONSE_TYPE if handler returns undefined-less non-Response", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleFetchListener](() => "body" as any);
  await assertFetchRejects(globalScope, "ERR_RESPONSE_TYPE", RESPONSE_TYPE_MESSAGE(SUGGEST_RES_MODULES));
});
test("kAddModuleFetchListener: throws ERR_NO_RESPONSE if handler returns undefined", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleFetchListener](() => undefined as any);
  await assertFetchRejects(globalScope, "ERR_NO_RESPONSE", NO_RESPONSE_MESSAGE(SUGGEST_RES_MODULES));
});
test("kAddModuleFetchListener: passThroughOnException via ctx", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleFetchListener]((req, env, ctx) => {
    ctx.passThroughOnException();
    throw new Error("test");
  });
  await assertFetchRejects(globalScope, "ERR_NO_UPSTREAM", NO_UPSTREAM_MESSAGE);
});
test("kAddModuleScheduledListener: calls handler with controller, env and ctx", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleScheduledListener]((controller, env, ctx) => {
    assert.ok(controller instanceof ScheduledController);
    assert.ok(ctx instanceof ExecutionContext);
    ctx.waitUntil(Promise.resolve(controller.scheduledTime));
    ctx.waitUntil(Promise.resolve(controller.cron));
    ctx.waitUntil(Promise.resolve(env.KEY));
  });
  assert.deepEqual(await globalScope[kDispatchScheduled](1000, "30 * * * *"), [
    1000,
    "30 * * * *",
    "value",
  ]);
});
test("kAddModuleScheduledListener: waits for returned value", async () => {
  const { globalScope } = useScope(true);
  let waited = false;
  globalScope[kAddModuleScheduledListener](async (controller, env, ctx) => {
    ctx.waitUntil(Promise.resolve(1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    waited = true;
    return "result";
  });
  assert.deepEqual(await globalScope[kDispatchScheduled](1000), [1, "result"]);
  assert.equal(waited, true);
  // Synchronous non-undefined results are waitUntil'ed too, undefined isn't
  const { globalScope: scope2 } = useScope(true);
  scope2[kAddModuleScheduledListener](() => 42);
  scope2[kAddModuleScheduledListener](() => undefined);
  scope2[kAddModuleScheduledListener](() => null);
  assert.deepEqual(await scope2[kDispatchScheduled](), [42, null]);
});
test("kAddModuleQueueListener: calls handler with batch, env and ctx", async () => {
  const { globalScope } = useScope(true);
  globalScope[kAddModuleQueueListener]((b, env, ctx) => {
    assert.equal(b, batch);
    assert.ok(ctx instanceof ExecutionContext);
    ctx.waitUntil(Promise.resolve(env.KEY));
    return Promise.resolve(b.messages.length);
  });
  assert.deepEqual(await globalScope[kDispatchQueue](batch), ["value", 1]);
});

// ---------------------------------------------------------------------------
// kDispatchFetch
// ---------------------------------------------------------------------------

test("kDispatchFetch: dispatches event", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    assert.ok(e instanceof FetchEvent);
    e.respondWith(new Response(e.request.url));
  });
  const res = await globalScope[kDispatchFetch](new Request("http://localhost:8787/"));
  assert.ok(res instanceof Response);
  assert.equal(await res.text(), "http://localhost:8787/");
  assert.deepEqual(await (res as any).waitUntil(), []);
});
test("kDispatchFetch: dispatches event with promise response", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.respondWith(Promise.resolve(new Response(e.request.url)));
  });
  const res = await globalScope[kDispatchFetch](new Request("http://localhost:8787/"));
  assert.equal(await res.text(), "http://localhost:8787/");
});
test("kDispatchFetch: passes request to listeners unchanged when not proxying", async () => {
  const { globalScope } = useScope();
  const request = new Request("http://localhost/");
  let seen: Request | undefined;
  globalScope.addEventListener("fetch", (e) => {
    seen = e.request;
    e.respondWith(new Response(""));
  });
  await globalScope[kDispatchFetch](request);
  assert.equal(seen, request);
});
test("kDispatchFetch: accepts built-in (undici) Response", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(1));
    e.respondWith(new globalThis.Response("undici"));
  });
  const res = await globalScope[kDispatchFetch](new Request("http://localhost/"));
  assert.ok(res instanceof Response);
  assert.equal(await res.text(), "undici");
  assert.deepEqual(await (res as any).waitUntil(), [1]);
});
test("kDispatchFetch: stops calling listeners after first response", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(1));
    e.waitUntil(Promise.resolve(2));
  });
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(3));
    e.respondWith(new Response(e.request.url));
  });
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(4));
  });
  const res = await globalScope[kDispatchFetch](new Request("http://localhost:8787/"));
  assert.equal(await res.text(), "http://localhost:8787/");
  assert.deepEqual(await (res as any).waitUntil(), [1, 2, 3]);
});
test("kDispatchFetch: stops calling listeners after first error", async () => {
  const { globalScope } = useScope();
  await assertStopsAfterFirstError(globalScope, "fetch", () =>
    globalScope[kDispatchFetch](new Request("http://localhost:8787/"))
  );
});
test("kDispatchFetch: throws error if no pass through on listener error", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", () => {
    throw new Error("test");
  });
  await assert.rejects(globalScope[kDispatchFetch](new Request("http://localhost/")), {
    message: "test",
  });
  // Even when proxying
  await assert.rejects(globalScope[kDispatchFetch](new Request(upstream), true), {
    message: "test",
  });
});
test("kDispatchFetch: throws error if response promise rejects without pass through", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.respondWith(Promise.reject(new RangeError("async")));
  });
  await assert.rejects(globalScope[kDispatchFetch](new Request("http://localhost/")), {
    name: "RangeError",
    message: "async",
  });
});
test("kDispatchFetch: waits for nested waitUntil promises", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(nestedPromise((promise) => e.waitUntil(promise), 3));
    e.respondWith(new Response("body"));
  });
  const res = await globalScope[kDispatchFetch](new Request("http://localhost/"));
  assert.deepEqual(await (res as any).waitUntil(), [1, 2, 3]);
});
test("kDispatchFetch: throws ERR_RESPONSE_TYPE if non-Response returned", async () => {
  for (const value of ["body", 42, {}, Promise.resolve({ status: 200 })]) {
    const { globalScope } = useScope();
    globalScope.addEventListener("fetch", (e) => e.respondWith(value as any));
    await assertFetchRejects(globalScope, "ERR_RESPONSE_TYPE", RESPONSE_TYPE_MESSAGE(SUGGEST_RES_SW));
  }
  const { globalScope } = useScope(true);
  globalScope[kAddModuleFetchListener](() => ({}) as any);
  await assertFetchRejects(globalScope, "ERR_RESPONSE_TYPE", RESPONSE_TYPE_MESSAGE(SUGGEST_RES_MODULES));
});
test("kDispatchFetch: throws ERR_RESPONSE_TYPE even when proxying", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => e.respondWith("body" as any));
  await assertRejectsMiniflare(
    globalScope[kDispatchFetch](new Request(upstream), true),
    FetchError,
    "ERR_RESPONSE_TYPE"
  );
});
test("kDispatchFetch: throws ERR_NO_HANDLER if no fetch listeners", async () => {
  let { globalScope } = useScope();
  await assertFetchRejects(globalScope, "ERR_NO_HANDLER", NO_HANDLER_MESSAGE(SUGGEST_HANDLER_SW));
  ({ globalScope } = useScope(true));
  await assertFetchRejects(globalScope, "ERR_NO_HANDLER", NO_HANDLER_MESSAGE(SUGGEST_HANDLER_MODULES));
});
test("kDispatchFetch: throws ERR_NO_RESPONSE if no listener responds", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => e.waitUntil(Promise.resolve(1)));
  await assertFetchRejects(globalScope, "ERR_NO_RESPONSE", NO_RESPONSE_MESSAGE(SUGGEST_RES_SW));
});
test("kDispatchFetch: throws ERR_NO_UPSTREAM if pass through with no upstream", async () => {
  const { globalScope, log } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.passThroughOnException();
    throw new Error("test");
  });
  await assertFetchRejects(globalScope, "ERR_NO_UPSTREAM", NO_UPSTREAM_MESSAGE);
  // The error is logged as a warning
  const warnings = log.logsAtLevel(LogLevel.WARN);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^Error: test\n\s+at /);
});
test("kDispatchFetch: throws ERR_NO_UPSTREAM if pass through and no response, even without error", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => e.passThroughOnException());
  await assertFetchRejects(globalScope, "ERR_NO_UPSTREAM", NO_UPSTREAM_MESSAGE);
});
test("kDispatchFetch: uses response if pass through enabled but no error", async () => {
  const { globalScope, log } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.passThroughOnException();
    e.respondWith(new Response("handler"));
  });
  const res = await globalScope[kDispatchFetch](new Request(upstream), true);
  assert.equal(await res.text(), "handler");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});
test("kDispatchFetch: passes through to upstream on no response", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(1));
  });
  const res = await globalScope[kDispatchFetch](new Request(`${upstream}/path`), true);
  assert.equal(await res.text(), "upstream:GET:/path:");
  assert.deepEqual(await (res as any).waitUntil(), [1]);
});
test("kDispatchFetch: passes through to upstream with no handler", async () => {
  const { globalScope } = useScope();
  const res = await globalScope[kDispatchFetch](new Request(`${upstream}/none`), true);
  assert.equal(await res.text(), "upstream:GET:/none:");
  assert.deepEqual(await (res as any).waitUntil(), []);
});
test("kDispatchFetch: passes through to upstream on error", async () => {
  const { globalScope, log } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(1));
    e.passThroughOnException();
    throw new Error("test");
  });
  const res = await globalScope[kDispatchFetch](new Request(upstream), true);
  assert.equal(await res.text(), "upstream:GET:/:");
  assert.deepEqual(await (res as any).waitUntil(), [1]);
  assert.match(log.logsAtLevel(LogLevel.WARN)[0], /^Error: test\n/);
});
test("kDispatchFetch: passes through to upstream on async error", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("fetch", (e) => {
    e.waitUntil(Promise.resolve(1));
    e.passThroughOnException();
    e.respondWith(Promise.reject(new Error("test")));
  });
  const res = await globalScope[kDispatchFetch](new Request(upstream), true);
  assert.equal(await res.text(), "upstream:GET:/:");
  assert.deepEqual(await (res as any).waitUntil(), [1]);
});
test("kDispatchFetch: gives listeners a clone of the request when proxying", async () => {
  const { globalScope } = useScope();
  const request = new Request(`${upstream}/post`, { method: "POST", body: "payload" });
  let seenBody: string | undefined;
  let seen: Request | undefined;
  globalScope.addEventListener("fetch", (e) => {
    seen = e.request;
    e.waitUntil(
      e.request.text().then((text: string) => {
        seenBody = text;
      })
    );
  });
  const res = await globalScope[kDispatchFetch](request, true);
  assert.notEqual(seen, request);
  // The original request body is still sent upstream after the listener read its clone
  assert.equal(await res.text(), "upstream:POST:/post:payload");
  await (res as any).waitUntil();
  assert.equal(seenBody, "payload");
});

// ---------------------------------------------------------------------------
// kDispatchScheduled / kDispatchQueue
// ---------------------------------------------------------------------------

test("kDispatchScheduled: dispatches event", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("scheduled", (e) => {
    assert.ok(e instanceof ScheduledEvent);
    e.waitUntil(Promise.resolve(1));
    e.waitUntil(Promise.resolve(2));
  });
  globalScope.addEventListener("scheduled", (e) => {
    e.waitUntil(Promise.resolve(3));
    e.waitUntil(Promise.resolve(e.scheduledTime));
    e.waitUntil(Promise.resolve(e.cron));
  });
  const res = await globalScope[kDispatchScheduled](1000, "30 * * * *");
  assert.deepEqual(res, [1, 2, 3, 1000, "30 * * * *"]);
});
test("kDispatchScheduled: defaults scheduledTime to now and cron to empty string", async () => {
  const { globalScope } = useScope();
  let event: ScheduledEvent | undefined;
  globalScope.addEventListener("scheduled", (e) => (event = e));
  const before = Date.now();
  assert.deepEqual(await globalScope[kDispatchScheduled](), []);
  const after = Date.now();
  assert.ok(event!.scheduledTime >= before && event!.scheduledTime <= after);
  assert.equal(event!.cron, "");
});
test("kDispatchScheduled: waits for nested waitUntil promises", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("scheduled", (e) => {
    e.waitUntil(nestedPromise((promise) => e.waitUntil(promise), 2));
  });
  assert.deepEqual(await globalScope[kDispatchScheduled](), [1, 2]);
});
test("kDispatchScheduled: stops calling listeners after first error", async () => {
  const { globalScope } = useScope();
  await assertStopsAfterFirstError(globalScope, "scheduled", () => globalScope[kDispatchScheduled]());
});
test("kDispatchQueue: dispatches event", async () => {
  const { globalScope } = useScope();
  globalScope.addEventListener("queue", (e) => {
    assert.ok(e instanceof QueueEvent);
    assert.equal(e.batch, batch);
    e.waitUntil(Promise.resolve(e.batch.queue));
  });
  assert.deepEqual(await globalScope[kDispatchQueue](batch), ["queue"]);
});
test("kDispatchQueue: stops calling listeners after first error", async () => {
  const { globalScope } = useScope();
  const calls: number[] = [];
  globalScope.addEventListener("queue", () => {
    calls.push(1);
    throw new Error("queue error");
  });
  globalScope.addEventListener("queue", () => {
    calls.push(2);
  });
  await assert.rejects(globalScope[kDispatchQueue](batch), { message: "queue error" });
  assert.deepEqual(calls, [1]);
});
