import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate } from "node:timers/promises";
import { Mutex } from "../../src/shared/sync/mutex.js";
import { deferred, flushTurns } from "../helpers/sync.js";

test("Mutex: runWith: runs closures one at a time in FIFO order", async () => {
  const mutex = new Mutex();
  const events: string[] = [];
  let running = 0;
  const run = (i: number, turns: number) =>
    mutex.runWith(async () => {
      running++;
      assert.equal(running, 1, "closures overlapped");
      events.push(`start ${i}`);
      // Later closures finish faster: order must still be FIFO
      for (let t = 0; t < turns; t++) await setImmediate();
      events.push(`end ${i}`);
      running--;
      return i;
    });
  const results = await Promise.all([
    run(1, 5),
    run(2, 4),
    run(3, 3),
    run(4, 0),
    run(5, 1),
  ]);
  assert.deepEqual(results, [1, 2, 3, 4, 5]);
  assert.deepEqual(events, [
    "start 1",
    "end 1",
    "start 2",
    "end 2",
    "start 3",
    "end 3",
    "start 4",
    "end 4",
    "start 5",
    "end 5",
  ]);
});

test("Mutex: runWith: waiters queued while locked acquire in the order they arrived", async () => {
  const mutex = new Mutex();
  const holder = deferred();
  const order: number[] = [];
  const first = mutex.runWith(() => holder.promise);
  const waiters: Promise<void>[] = [];
  for (let i = 1; i <= 10; i++) {
    waiters.push(mutex.runWith(() => void order.push(i)));
  }
  await flushTurns();
  assert.deepEqual(order, []);
  holder.resolve();
  await Promise.all([first, ...waiters]);
  assert.deepEqual(order, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test("Mutex: runWith: queue order is the order runWith() was called in, even from inside a closure", async () => {
  const mutex = new Mutex();
  const order: string[] = [];
  let queuedInside: Promise<void> | undefined;
  const first = mutex.runWith(async () => {
    order.push("first");
    queuedInside = mutex.runWith(() => void order.push("queued inside"));
    await setImmediate();
  });
  const second = mutex.runWith(() => void order.push("second"));
  await Promise.all([first, second]);
  await queuedInside;
  // first's closure started synchronously, so "queued inside" was queued
  // before runWith() was called for "second"
  assert.deepEqual(order, ["first", "queued inside", "second"]);
});

test("Mutex: runWith: starts the closure synchronously when unlocked", async () => {
  const mutex = new Mutex();
  let started = false;
  const result = mutex.runWith(() => {
    started = true;
  });
  assert.equal(started, true);
  await result;
});

test("Mutex: runWith: returns synchronous and asynchronous values", async () => {
  const mutex = new Mutex();
  assert.equal(await mutex.runWith(() => 1), 1);
  assert.equal(await mutex.runWith(async () => 2), 2);
  const object = { value: 3 };
  assert.equal(await mutex.runWith(() => object), object);
  assert.equal(await mutex.runWith(() => undefined), undefined);
});

test("Mutex: runWith: propagates errors and unlocks", async () => {
  const mutex = new Mutex();
  await assert.rejects(
    mutex.runWith(() => {
      throw new TypeError("sync failure");
    }),
    { name: "TypeError", message: "sync failure" }
  );
  assert.equal(mutex.locked, false);
  await assert.rejects(
    mutex.runWith(async () => {
      await setImmediate();
      throw new RangeError("async failure");
    }),
    { name: "RangeError", message: "async failure" }
  );
  assert.equal(mutex.locked, false);
  assert.equal(await mutex.runWith(() => "after"), "after");
});

test("Mutex: runWith: a failing closure passes the lock to the next waiter", async () => {
  const mutex = new Mutex();
  const events: string[] = [];
  const failing = mutex.runWith(async () => {
    await setImmediate();
    events.push("failing");
    throw new Error("failed");
  });
  const next = mutex.runWith(() => {
    events.push("next");
    return "next result";
  });
  await assert.rejects(failing, { message: "failed" });
  assert.equal(await next, "next result");
  assert.deepEqual(events, ["failing", "next"]);
  assert.equal(mutex.locked, false);
});

test("Mutex: locked: true only while a closure holds the mutex", async () => {
  const mutex = new Mutex();
  assert.equal(mutex.locked, false);
  const holder = deferred();
  const running = mutex.runWith(() => holder.promise);
  assert.equal(mutex.locked, true);
  holder.resolve();
  await running;
  assert.equal(mutex.locked, false);
});

test("Mutex: hasWaiting: true only while closures are queued", async () => {
  const mutex = new Mutex();
  assert.equal(mutex.hasWaiting, false);

  const holder = deferred();
  const first = mutex.runWith(() => holder.promise);
  // Holding the lock isn't waiting
  assert.equal(mutex.hasWaiting, false);

  const second = deferred();
  const waiting = mutex.runWith(() => second.promise);
  assert.equal(mutex.hasWaiting, true);

  holder.resolve();
  await first;
  // The queued closure now holds the lock: nothing waits any more
  await flushTurns();
  assert.equal(mutex.hasWaiting, false);
  assert.equal(mutex.locked, true);

  second.resolve();
  await waiting;
  assert.equal(mutex.hasWaiting, false);
  assert.equal(mutex.locked, false);
});
