import assert from "node:assert/strict";
import { test } from "node:test";
import { RequestContext } from "../../src/shared/context.js";
import { InputGate } from "../../src/shared/sync/gate.js";
import { DOMException } from "../../src/standards/domexception.js";
import { Scheduler, assertsInRequest, createTimer } from "../../src/standards/timers.js";
import { IN_REQUEST_MESSAGE } from "../helpers/http.js";
import { deferred, flushTurns, timerDue } from "../helpers/sync.js";

const gatedSetTimeout = createTimer(setTimeout);
const gatedSetInterval = createTimer(setInterval);

// Cancels a 10ms timer `start`ed with a callback, checking it's never called
// (by when it would have been: after a later 10ms timer, and the input gate's turn)
async function assertCancelled<Handle>(
  start: (callback: () => void) => Handle,
  cancel: (handle: Handle) => void
): Promise<void> {
  let called = false;
  cancel(start(() => (called = true)));
  await timerDue(10);
  await flushTurns();
  assert.equal(called, false);
}

test("createTimer: setTimeout calls callback with no input gate in context", async () => {
  const { resolve, promise } = deferred<unknown[]>();
  gatedSetTimeout((a: number, b: string) => resolve([a, b]), 10, 42, "test");
  assert.deepEqual(await promise, [42, "test"]);
});
test("createTimer: setTimeout can be cancelled", () =>
  assertCancelled((callback) => gatedSetTimeout(callback, 10), clearTimeout));
test("createTimer: setTimeout throws without a callback", () => {
  assert.throws(() => gatedSetTimeout(undefined), { code: "ERR_INVALID_ARG_TYPE" });
});

// Closes `gate` from inside it, starts a 10ms timer, and checks the callback
// only runs once the gate is reopened
async function checkWaitsForInputGate(
  gate: InputGate,
  start: (callback: () => void) => void
): Promise<void> {
  const events: string[] = [];
  const { resolve: open, promise: opened } = deferred();
  const { resolve: fired, promise: firedPromise } = deferred();
  const done = gate.runWith(async () => {
    void gate.runWithClosed(() => opened);
    start(() => {
      events.push("callback");
      fired();
    });
    await firedPromise;
  });
  // Past the timer (a later one of the same delay has fired) and the turns
  // an ungated callback would take
  await timerDue(10);
  await flushTurns();
  events.push("open");
  open();
  await done;
  assert.deepEqual(events, ["open", "callback"]);
}

test("createTimer: setTimeout waits for input gate to open before calling callback", async () => {
  await checkWaitsForInputGate(new InputGate(), (callback) => gatedSetTimeout(callback, 10));
});
test("createTimer: setInterval calls callback repeatedly with no input gate in context", async () => {
  const calls: unknown[][] = [];
  const { resolve, promise } = deferred();
  const handle = gatedSetInterval(
    (a: number, b: string) => {
      calls.push([a, b]);
      if (calls.length === 2) resolve();
    },
    10,
    42,
    "test"
  );
  await promise;
  clearInterval(handle);
  assert.deepEqual(calls, [
    [42, "test"],
    [42, "test"],
  ]);
});
test("createTimer: setInterval can be cancelled", () =>
  assertCancelled((callback) => gatedSetInterval(callback, 10), clearInterval));
test("createTimer: setInterval waits for input gate to open before calling callback", async () => {
  const gate = new InputGate();
  let handle: NodeJS.Timeout | undefined;
  // Both the first and later callbacks wait
  for (let i = 0; i < 2; i++) {
    await checkWaitsForInputGate(gate, (callback) => {
      if (handle !== undefined) clearInterval(handle);
      handle = gatedSetInterval(callback, 10);
    });
  }
  clearInterval(handle);
});
test("createTimer: throws outside request context if blocked", async () => {
  for (const func of [setTimeout, setInterval]) {
    const timer = createTimer(func as typeof setTimeout, true);
    assert.throws(() => timer(() => {}, 10), { name: "Error", message: IN_REQUEST_MESSAGE });
    const { resolve, promise } = deferred();
    await new RequestContext().runWith(async () => {
      const handle = timer(resolve, 1);
      await promise;
      clearInterval(handle);
    });
  }
});

test("assertsInRequest: throws outside request context if asserting", async () => {
  const add = (a: number, b: number) => a + b;
  assert.equal(assertsInRequest(add, false), add);
  const asserting = assertsInRequest(add, true);
  assert.throws(() => asserting(1, 2), { name: "Error", message: IN_REQUEST_MESSAGE });
  assert.equal(new RequestContext().runWith(() => asserting(1, 2)), 3);
});

test("AbortSignal.timeout: triggers signal after timeout", async () => {
  const signal = AbortSignal.timeout(50);
  const { resolve, promise } = deferred();
  signal.addEventListener("abort", () => resolve());
  assert.equal(signal.aborted, false);
  await promise;
  assert.equal(signal.aborted, true);
});
test("AbortSignal.timeout: requires numeric timeout", () => {
  assert.throws(() => (AbortSignal.timeout as () => AbortSignal)(), {
    name: "TypeError",
    message:
      "Failed to execute 'timeout' on 'AbortSignal': parameter 1 is not of type 'integer'.",
  });
  // Valid in the Workers runtime
  AbortSignal.timeout(undefined as unknown as number);
  AbortSignal.timeout("1" as unknown as number);
});
test("AbortSignal.timeout: included on constructor obtained via AbortController#signal prototype", () => {
  const constructor = Object.getPrototypeOf(new AbortController().signal).constructor;
  assert.equal(constructor.timeout, AbortSignal.timeout);
});

const scheduler = new Scheduler();
test("Scheduler: wait: resolves after timeout", async () => {
  let resolved = false;
  void scheduler.wait(100).then(() => (resolved = true));
  // Microtasks only: no event-loop turn in which a stalled machine's timers could fire
  await Promise.resolve();
  assert.equal(resolved, false);
  // A later 100ms timer fires after the wait's, however slow the machine
  await timerDue(100);
  assert.equal(resolved, true);
});
test("Scheduler: wait: rejects on abort", async () => {
  const controller = new AbortController();
  const promise = scheduler.wait(1000, { signal: controller.signal });
  await Promise.resolve();
  controller.abort();
  await assert.rejects(promise, (error) => {
    assert(error instanceof DOMException);
    assert.equal(error.name, "AbortError");
    assert.equal(error.message, "The operation was aborted");
    assert.equal(error.code, DOMException.ABORT_ERR);
    return true;
  });
});
test("Scheduler: wait: does nothing if aborted after resolve", async () => {
  const controller = new AbortController();
  await scheduler.wait(10, { signal: controller.signal });
  controller.abort();
});
test("Scheduler: wait: requires numeric timeout", async () => {
  assert.throws(() => (scheduler.wait as () => Promise<void>)(), {
    name: "TypeError",
    message: "Failed to execute 'wait' on 'Scheduler': parameter 1 is not of type 'integer'.",
  });
  await scheduler.wait(undefined);
  await scheduler.wait("1" as unknown as number);
});
test("Scheduler: wait: throws outside request context if blocked", async () => {
  const blocking = new Scheduler(true);
  assert.throws(() => blocking.wait(1), { name: "Error", message: IN_REQUEST_MESSAGE });
  await new RequestContext().runWith(() => blocking.wait(1));
});
test("Scheduler: hides implementation details", () => {
  const names = Object.getOwnPropertyNames(Scheduler.prototype).sort();
  assert.deepEqual(names, ["constructor", "wait"]);
  assert.deepEqual(Object.keys(new Scheduler()), []);
});

test("Scheduler: wait: removes its abort listener once the timer fires", async () => {
  const { Scheduler } = await import("../../src/standards/timers.js");
  const scheduler = new Scheduler();
  const controller = new AbortController();
  let added = 0;
  let removed = 0;
  const signal = controller.signal;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => (added++, add(...args));
  signal.removeEventListener = (...args: Parameters<typeof remove>) => (removed++, remove(...args));
  for (let i = 0; i < 3; i++) await scheduler.wait(1, { signal });
  assert.equal(added, 3);
  assert.equal(removed, 3);
});
