import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate } from "node:timers/promises";
import {
  InputGate,
  OutputGate,
  getInputGate,
  runWithInputGateClosed,
  waitForOpenInputGate,
  waitForOpenOutputGate,
  waitUntilOnOutputGate,
} from "../../src/shared/sync/gate.js";
import { deferred, flushTurns, track } from "../helpers/sync.js";

// Simulated asynchronous I/O taking a few event-loop turns
async function io(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await setImmediate();
}

test("InputGate: waitForOpen: resolves when nothing has closed the gate", async () => {
  const gate = new InputGate();
  await gate.waitForOpen();
  await gate.runWith(async () => {
    assert.equal(getInputGate(), gate);
    await waitForOpenInputGate();
  });
});

test("InputGate: runWith: returns the closure's result and runs it under the gate", async () => {
  const gate = new InputGate();
  assert.equal(getInputGate(), undefined);
  assert.equal(await gate.runWith(() => 1), 1);
  assert.equal(
    await gate.runWith(async () => {
      await io();
      return getInputGate();
    }),
    gate
  );
  await assert.rejects(
    gate.runWith(async () => {
      throw new TypeError("bad");
    }),
    TypeError
  );
  assert.equal(getInputGate(), undefined);
});

test("InputGate: runWithClosed: defers waitForOpen until the closure finishes", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  const closure = deferred();

  const closed = gate.runWithClosed(async () => {
    events.push("closure start");
    await closure.promise;
    events.push("closure end");
    return "result";
  });
  const opened = gate.waitForOpen().then(() => events.push("open"));

  await flushTurns();
  // However long the closure takes, the gate stays closed
  assert.deepEqual(events, ["closure start"]);
  closure.resolve();

  assert.equal(await closed, "result");
  await opened;
  assert.deepEqual(events, ["closure start", "closure end", "open"]);
});

test("InputGate: runWithClosed: defers waiters that started waiting before the gate closed", async () => {
  // waitForOpen() lets already-queued work run first, so a closure started
  // in the same turn still gets to close the gate before the check
  const gate = new InputGate();
  const events: string[] = [];
  const opened = gate.waitForOpen().then(() => events.push("open"));
  const closed = gate.runWithClosed(async () => {
    await io(5);
    events.push("closure end");
  });
  await Promise.all([opened, closed]);
  assert.deepEqual(events, ["closure end", "open"]);
});

test("InputGate: runWithClosed: reopens the gate after the closure throws", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  const closed = gate.runWithClosed(async () => {
    await io();
    events.push("closure throws");
    throw new RangeError("failed");
  });
  const opened = gate.waitForOpen().then(() => events.push("open"));
  await assert.rejects(closed, { name: "RangeError", message: "failed" });
  await opened;
  assert.deepEqual(events, ["closure throws", "open"]);
  // Still usable afterwards
  assert.equal(await gate.runWithClosed(async () => 3), 3);
  await gate.waitForOpen();
});

test("InputGate: runWithClosed: results of the closure are delivered before waiters", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  const closed = gate
    .runWithClosed(async () => {
      await io();
      return "value";
    })
    .then((value) => events.push(`closure result ${value}`));
  const opened = gate.waitForOpen().then(() => events.push("open"));
  await Promise.all([closed, opened]);
  assert.deepEqual(events, ["closure result value", "open"]);
});

test("InputGate: waitForOpen: releases waiters in the order they started waiting", async () => {
  const gate = new InputGate();
  const closure = deferred();
  const closed = gate.runWithClosed(() => closure.promise);
  const order: number[] = [];
  const waiters = [1, 2, 3, 4, 5].map((i) =>
    gate.waitForOpen().then(() => order.push(i))
  );
  await flushTurns();
  assert.deepEqual(order, []);
  closure.resolve();
  await Promise.all([closed, ...waiters]);
  assert.deepEqual(order, [1, 2, 3, 4, 5]);
});

test("InputGate: waitForOpen: a released waiter that closes the gate again holds back later waiters", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  const first = deferred();
  const closed = gate.runWithClosed(() => first.promise);

  const waiter1 = gate.waitForOpen().then(() => {
    events.push("waiter 1 open");
    return gate.runWithClosed(async () => {
      await io(5);
      events.push("waiter 1 closure end");
    });
  });
  const waiter2 = gate.waitForOpen().then(() => events.push("waiter 2 open"));

  await flushTurns();
  first.resolve();
  await Promise.all([closed, waiter1, waiter2]);
  assert.deepEqual(events, [
    "waiter 1 open",
    "waiter 1 closure end",
    "waiter 2 open",
  ]);
});

test("InputGate: runWithClosed: closure runs under an open child gate", async () => {
  const gate = new InputGate();
  let child: InputGate | undefined;
  await gate.runWith(() =>
    runWithInputGateClosed(async () => {
      child = getInputGate();
      // Waiting on the child gate doesn't deadlock
      await waitForOpenInputGate();
      await io();
      await waitForOpenInputGate();
    })
  );
  assert.ok(child instanceof InputGate);
  assert.notEqual(child, gate);
});

test("InputGate: runWithClosed: I/O inside a blockConcurrencyWhile-style closure doesn't deadlock", async () => {
  // The example from the Miniflare 2 announcement: a Durable Object
  // constructor fetches inside blockConcurrencyWhile(), and fetch waits for
  // the input gate before returning its response
  const gate = new InputGate();
  const events: string[] = [];

  async function fetch(url: string): Promise<string> {
    await io(3); // network I/O
    await waitForOpenInputGate(); // deliver the result only when open
    return `response from ${url}`;
  }
  const blockConcurrencyWhile = <T>(closure: () => Promise<T>) =>
    runWithInputGateClosed(closure);

  // Object constructor
  const constructed = gate.runWith(() =>
    blockConcurrencyWhile(async () => {
      const body = await fetch("https://example.com/");
      events.push(`constructor got ${body}`);
      return body;
    })
  );
  // An incoming request delivered to the object at the same time
  const request = gate.runWith(() => events.push("request delivered"));

  assert.equal(await constructed, "response from https://example.com/");
  await request;
  assert.deepEqual(events, [
    "constructor got response from https://example.com/",
    "request delivered",
  ]);
});

test("InputGate: runWithClosed: closing a child gate closes its parents", async () => {
  const grandparent = new InputGate();
  const parent = new InputGate(grandparent);
  const child = new InputGate(parent);
  const events: string[] = [];
  const closure = deferred();

  const closed = child.runWithClosed(async () => {
    await closure.promise;
    events.push("closure end");
  });
  const parentOpen = parent.waitForOpen().then(() => events.push("parent open"));
  const grandparentOpen = grandparent
    .waitForOpen()
    .then(() => events.push("grandparent open"));

  await flushTurns();
  assert.deepEqual(events, []);
  closure.resolve();
  await Promise.all([closed, parentOpen, grandparentOpen]);
  // Parents reopen from the innermost outwards
  assert.deepEqual(events, ["closure end", "parent open", "grandparent open"]);
});

test("InputGate: runWithClosed: closing a parent doesn't close its children", async () => {
  const parent = new InputGate();
  const child = new InputGate(parent);
  const closure = deferred();
  const closed = parent.runWithClosed(() => closure.promise);
  // The child is still open, even though its parent is closed
  await child.waitForOpen();
  closure.resolve();
  await closed;
});

test("InputGate: runWithClosed: nested closures keep outer gates closed until the outermost finishes", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  const inner = deferred();
  const outer = deferred();

  const closed = gate.runWith(() =>
    runWithInputGateClosed(async () => {
      const child = getInputGate()!;
      // A second closure nested inside the first: closes the child gate
      // (and so also the outer one)
      const nested = runWithInputGateClosed(async () => {
        await inner.promise;
        events.push("inner end");
      });
      // Inside the outer closure, the child gate waits for the nested closure
      const childOpen = child.waitForOpen().then(() => events.push("child open"));
      await nested;
      await childOpen;
      await outer.promise;
      events.push("outer end");
    })
  );
  const gateOpen = gate.waitForOpen().then(() => events.push("gate open"));

  await flushTurns();
  assert.deepEqual(events, []);
  inner.resolve();
  await flushTurns();
  assert.deepEqual(events, ["inner end", "child open"]);
  outer.resolve();
  await Promise.all([closed, gateOpen]);
  assert.deepEqual(events, ["inner end", "child open", "outer end", "gate open"]);
});

test("InputGate: runWithInputGateClosed: without a gate just runs the closure", async () => {
  assert.equal(getInputGate(), undefined);
  assert.equal(waitForOpenInputGate(), undefined);
  let ran = false;
  const result = runWithInputGateClosed(async () => {
    ran = true;
    return "ok";
  });
  // Called straight away, with no gate to wait on
  assert.equal(ran, true);
  assert.equal(await result, "ok");
  await assert.rejects(
    runWithInputGateClosed(async () => {
      throw new Error("no gate");
    }),
    { message: "no gate" }
  );
});

test("InputGate: runWithInputGateClosed: allowConcurrency leaves the gate open", async () => {
  const gate = new InputGate();
  const delivered = deferred<string>();
  const events: string[] = [];
  await gate.runWith(async () => {
    const closure = runWithInputGateClosed(async () => {
      // Only completes if another event gets through while it runs
      const value = await delivered.promise;
      events.push(`closure got ${value}`);
      // No child gate: the closure runs under the same gate
      assert.equal(getInputGate(), gate);
    }, true);
    const other = gate.runWith(() => {
      events.push("other event delivered");
      delivered.resolve("message");
    });
    await Promise.all([closure, other]);
  });
  assert.deepEqual(events, ["other event delivered", "closure got message"]);
});

test("InputGate: runWithInputGateClosed: without allowConcurrency, other events wait", async () => {
  const gate = new InputGate();
  const events: string[] = [];
  await gate.runWith(async () => {
    const closure = runWithInputGateClosed(async () => {
      await io(5);
      events.push("closure end");
    }, false);
    const other = gate.runWith(() => events.push("other event delivered"));
    await Promise.all([closure, other]);
  });
  assert.deepEqual(events, ["closure end", "other event delivered"]);
});

// A fake asynchronous storage, where reads and writes take an event-loop
// turn, as real storage I/O does
class FakeStorage {
  readonly #data = new Map<string, number>();
  async get(key: string): Promise<number | undefined> {
    await setImmediate();
    return this.#data.get(key);
  }
  async put(key: string, value: number): Promise<void> {
    await setImmediate();
    this.#data.set(key, value);
  }
}

test("InputGate: runWithInputGateClosed: 200 concurrent get-then-put increments lose no updates", async () => {
  const storage = new FakeStorage();
  const gate = new InputGate(); // the object's gate
  const increment = () =>
    gate.runWith(() =>
      runWithInputGateClosed(async () => {
        const value = (await storage.get("count")) ?? 0;
        await setImmediate(); // something else might run here...
        await storage.put("count", value + 1);
      })
    );
  await Promise.all(Array.from({ length: 200 }, increment));
  assert.equal(await storage.get("count"), 200);
});

test("InputGate: runWithInputGateClosed: control: without the gate, concurrent increments lose updates", async () => {
  const storage = new FakeStorage();
  const increment = async () => {
    const value = (await storage.get("count")) ?? 0;
    await setImmediate();
    await storage.put("count", value + 1);
  };
  await Promise.all(Array.from({ length: 200 }, increment));
  // Every get ran before any put, so every increment wrote 0 + 1
  assert.equal(await storage.get("count"), 1);

  // Running them under the gate without closing it doesn't help either
  const gated = new FakeStorage();
  const gate = new InputGate();
  await Promise.all(
    Array.from({ length: 200 }, () =>
      gate.runWith(async () => {
        const value = (await gated.get("count")) ?? 0;
        await setImmediate();
        await gated.put("count", value + 1);
      })
    )
  );
  assert.equal(await gated.get("count"), 1);
});

test("OutputGate: runWith: waits for promises registered with waitUntilOnOutputGate", async () => {
  const gate = new OutputGate();
  const events: string[] = [];
  const write = deferred();
  const result = gate.runWith(() => {
    const returned = waitUntilOnOutputGate(
      write.promise.then(() => events.push("write confirmed"))
    );
    assert.ok(returned instanceof Promise);
    events.push("closure end");
    return 42;
  });
  const tracked = track(result);
  await flushTurns();
  assert.equal(tracked.settled, false);
  assert.deepEqual(events, ["closure end"]);
  write.resolve();
  assert.equal(await result, 42);
  assert.deepEqual(events, ["closure end", "write confirmed"]);
});

test("OutputGate: runWith: waits for writes registered after awaits and from nested async work", async () => {
  const gate = new OutputGate();
  const events: string[] = [];
  const write = deferred();
  const result = gate.runWith(async () => {
    await io();
    // Fire-and-forget async work still belongs to the gate
    void (async () => {
      await io();
      waitUntilOnOutputGate(write.promise.then(() => events.push("late write confirmed")));
      events.push("late write registered");
    })();
    await io(10);
    events.push("closure end");
  });
  const tracked = track(result);
  await flushTurns(20);
  assert.deepEqual(events, ["late write registered", "closure end"]);
  assert.equal(tracked.settled, false);
  write.resolve();
  await result;
  events.push("runWith end");
  assert.deepEqual(events, [
    "late write registered",
    "closure end",
    "late write confirmed",
    "runWith end",
  ]);
});

test("OutputGate: runWith: returns the value waitUntilOnOutputGate was given", async () => {
  const gate = new OutputGate();
  const promise = Promise.resolve("value");
  await gate.runWith(() => {
    assert.equal(waitUntilOnOutputGate(promise), promise);
    assert.equal(waitUntilOnOutputGate(promise, true), promise);
  });
  // Outside a gate, nothing to register with
  assert.equal(waitUntilOnOutputGate(promise), promise);
});

test("OutputGate: runWith: still waits for pending writes when the closure throws", async () => {
  const gate = new OutputGate();
  const events: string[] = [];
  const write = deferred();
  const result = gate.runWith(async () => {
    waitUntilOnOutputGate(write.promise.then(() => events.push("write confirmed")));
    throw new Error("closure failed");
  });
  const tracked = track(result);
  await flushTurns();
  assert.equal(tracked.settled, false);
  write.resolve();
  await assert.rejects(result, { message: "closure failed" });
  assert.deepEqual(events, ["write confirmed"]);
});

test("OutputGate: runWith: rejects if a pending write fails", async () => {
  const gate = new OutputGate();
  await assert.rejects(
    gate.runWith(() => {
      waitUntilOnOutputGate(Promise.reject(new Error("write failed")));
      return "ignored";
    }),
    { message: "write failed" }
  );
});

test("OutputGate: waitForOpenOutputGate: waits for pending writes", async () => {
  assert.equal(waitForOpenOutputGate(), undefined);
  const gate = new OutputGate();
  const events: string[] = [];
  const write = deferred();
  await gate.runWith(async () => {
    waitUntilOnOutputGate(write.promise.then(() => events.push("write confirmed")));
    // e.g. an outgoing fetch must wait for the write
    const send = waitForOpenOutputGate()!.then(() => events.push("message sent"));
    await flushTurns();
    assert.deepEqual(events, []);
    write.resolve();
    await send;
  });
  assert.deepEqual(events, ["write confirmed", "message sent"]);
});

test("OutputGate: waitForOpen: resolves straight away with nothing pending", async () => {
  const gate = new OutputGate();
  await gate.waitForOpen();
  assert.equal(await gate.runWith(async () => "done"), "done");
  await gate.runWith(async () => {
    await waitForOpenOutputGate();
  });
});

test("OutputGate: waitUntil: registers a promise directly", async () => {
  const gate = new OutputGate();
  const write = deferred();
  gate.waitUntil(write.promise);
  const open = track(gate.waitForOpen());
  await flushTurns();
  assert.equal(open.settled, false);
  write.resolve();
  await gate.waitForOpen();
});

test("OutputGate: waitUntilOnOutputGate: allowUnconfirmed doesn't hold the gate", async () => {
  const gate = new OutputGate();
  const write = deferred();
  const unconfirmed = deferred();

  // With allowUnconfirmed, runWith finishes while the write is still pending
  await gate.runWith(() => {
    waitUntilOnOutputGate(unconfirmed.promise, true);
  });
  // Without it, runWith waits for the write
  const other = new OutputGate();
  const result = other.runWith(() => {
    waitUntilOnOutputGate(write.promise);
    return "confirmed";
  });
  const tracked = track(result);
  await flushTurns();
  assert.equal(tracked.settled, false);
  write.resolve();
  assert.equal(await result, "confirmed");
  unconfirmed.resolve();
});

test("OutputGate: runWith: concurrent gates are independent", async () => {
  const gate1 = new OutputGate();
  const gate2 = new OutputGate();
  const write1 = deferred();
  const events: string[] = [];
  const run1 = gate1
    .runWith(() => {
      waitUntilOnOutputGate(write1.promise);
    })
    .then(() => events.push("gate 1 done"));
  const run2 = gate2
    .runWith(async () => {
      await io();
    })
    .then(() => events.push("gate 2 done"));
  await run2;
  assert.deepEqual(events, ["gate 2 done"]);
  write1.resolve();
  await run1;
  assert.deepEqual(events, ["gate 2 done", "gate 1 done"]);
});
