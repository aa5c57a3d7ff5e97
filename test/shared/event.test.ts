import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ThrowingEventTarget,
  TypedEventTarget,
  kWrapListener,
} from "../../src/shared/event.js";

class ThingEvent extends Event {
  constructor(readonly value: number) {
    super("thing", { cancelable: true });
  }
}
type EventMap = { thing: ThingEvent; other: Event };

test("ThrowingEventTarget: dispatchEvent: calls every listener when none throw", () => {
  const target = new ThrowingEventTarget<EventMap>();
  const calls: string[] = [];
  target.addEventListener("thing", (event) => calls.push(`fn ${event.value}`));
  target.addEventListener("thing", {
    handleEvent: (event) => calls.push(`object ${event.value}`),
  });
  assert.equal(target.dispatchEvent(new ThingEvent(1)), true);
  assert.deepEqual(calls, ["fn 1", "object 1"]);
});

test("ThrowingEventTarget: dispatchEvent: rethrows the first listener error and stops later listeners", () => {
  const target = new ThrowingEventTarget<EventMap>();
  const calls: string[] = [];
  const first = new Error("first");
  const second = new Error("second");
  target.addEventListener("thing", () => calls.push("before"));
  target.addEventListener("thing", () => {
    calls.push("throws first");
    throw first;
  });
  target.addEventListener("thing", () => {
    calls.push("throws second");
    throw second;
  });
  target.addEventListener("thing", () => calls.push("after"));
  assert.throws(
    () => target.dispatchEvent(new ThingEvent(1)),
    (error) => error === first
  );
  assert.deepEqual(calls, ["before", "throws first"]);
});

test("ThrowingEventTarget: dispatchEvent: rethrows errors from handleEvent objects", () => {
  const target = new ThrowingEventTarget<EventMap>();
  const error = new TypeError("from object");
  target.addEventListener("thing", {
    handleEvent() {
      throw error;
    },
  });
  assert.throws(
    () => target.dispatchEvent(new ThingEvent(1)),
    (thrown) => thrown === error
  );
});

test("ThrowingEventTarget: dispatchEvent: an error doesn't affect later dispatches", () => {
  const target = new ThrowingEventTarget<EventMap>();
  const calls: number[] = [];
  const throwing = (event: ThingEvent) => {
    if (event.value === 1) throw new Error("only for 1");
    calls.push(event.value);
  };
  target.addEventListener("thing", throwing);
  target.addEventListener("thing", (event) => calls.push(event.value * 10));
  assert.throws(() => target.dispatchEvent(new ThingEvent(1)), {
    message: "only for 1",
  });
  assert.deepEqual(calls, []);
  assert.equal(target.dispatchEvent(new ThingEvent(2)), true);
  assert.deepEqual(calls, [2, 20]);
  // Removing the listener works with the original function
  target.removeEventListener("thing", throwing);
  target.dispatchEvent(new ThingEvent(1));
  assert.deepEqual(calls, [2, 20, 10]);
});

test("ThrowingEventTarget: dispatchEvent: returns false when a listener cancels the event", () => {
  const target = new ThrowingEventTarget<EventMap>();
  target.addEventListener("thing", (event) => event.preventDefault());
  assert.equal(target.dispatchEvent(new ThingEvent(1)), false);
});

test("ThrowingEventTarget: dispatchEvent: only calls listeners of the event's type", () => {
  const target = new ThrowingEventTarget<EventMap>();
  target.addEventListener("other", () => {
    throw new Error("wrong type");
  });
  assert.equal(target.dispatchEvent(new ThingEvent(1)), true);
});

// Wraps every listener, recording when the wrapper runs
class RecordingEventTarget extends TypedEventTarget<EventMap> {
  readonly wrapped: ((event: Event) => void)[] = [];
  readonly calls: string[] = [];

  protected override [kWrapListener](
    listener: (event: Event) => void
  ): (event: Event) => void {
    const wrapper = (event: Event) => {
      this.calls.push(`wrapper ${event.type}`);
      listener(event);
    };
    this.wrapped.push(wrapper);
    return wrapper;
  }
}

test("TypedEventTarget: addEventListener: wraps listeners with kWrapListener", () => {
  const target = new RecordingEventTarget();
  target.addEventListener("thing", (event) => target.calls.push(`fn ${event.value}`));
  target.addEventListener("thing", {
    handleEvent: (event) => target.calls.push(`object ${event.value}`),
  });
  assert.equal(target.wrapped.length, 2);
  target.dispatchEvent(new ThingEvent(7));
  assert.deepEqual(target.calls, [
    "wrapper thing",
    "fn 7",
    "wrapper thing",
    "object 7",
  ]);
});

test("TypedEventTarget: addEventListener: wraps each listener once", () => {
  const target = new RecordingEventTarget();
  const listener = (event: ThingEvent) => target.calls.push(`fn ${event.value}`);
  target.addEventListener("thing", listener);
  // Same listener again: reuses the wrapper, so EventTarget deduplicates it
  target.addEventListener("thing", listener);
  assert.equal(target.wrapped.length, 1);
  target.dispatchEvent(new ThingEvent(1));
  assert.deepEqual(target.calls, ["wrapper thing", "fn 1"]);
  // ...and the same wrapper is shared between event types
  target.addEventListener("other", listener as unknown as (event: Event) => void);
  assert.equal(target.wrapped.length, 1);
});

test("TypedEventTarget: removeEventListener: removes the wrapped listener", () => {
  const target = new RecordingEventTarget();
  const calls: string[] = [];
  const removed = () => calls.push("removed");
  const kept = () => calls.push("kept");
  const object = { handleEvent: () => calls.push("object") };
  target.addEventListener("thing", removed);
  target.addEventListener("thing", kept);
  target.addEventListener("thing", object);
  target.removeEventListener("thing", removed);
  target.removeEventListener("thing", object);
  target.dispatchEvent(new ThingEvent(1));
  assert.deepEqual(calls, ["kept"]);
  assert.deepEqual(target.calls, ["wrapper thing"]);
});

test("TypedEventTarget: addEventListener: supports listener options", () => {
  const target = new RecordingEventTarget();
  const calls: number[] = [];
  target.addEventListener("thing", (event) => calls.push(event.value), {
    once: true,
  });
  target.dispatchEvent(new ThingEvent(1));
  target.dispatchEvent(new ThingEvent(2));
  assert.deepEqual(calls, [1]);
});

test("TypedEventTarget: addEventListener: ignores null listeners", () => {
  const target = new RecordingEventTarget();
  target.addEventListener("thing", null);
  target.removeEventListener("thing", null);
  assert.equal(target.wrapped.length, 0);
  assert.equal(target.dispatchEvent(new ThingEvent(1)), true);
});

test("TypedEventTarget: without kWrapListener behaves like EventTarget", () => {
  const target = new TypedEventTarget<EventMap>();
  assert.ok(target instanceof EventTarget);
  const calls: number[] = [];
  const listener = (event: ThingEvent) => calls.push(event.value);
  target.addEventListener("thing", listener);
  target.addEventListener("thing", listener);
  target.dispatchEvent(new ThingEvent(1));
  target.removeEventListener("thing", listener);
  target.dispatchEvent(new ThingEvent(2));
  assert.deepEqual(calls, [1]);
});
