import assert from "node:assert/strict";
import nodeAssert from "node:assert";
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
import nodeBuffer from "node:buffer";
import events from "node:events";
import { test } from "node:test";
import util from "node:util";
import { additionalNodeModules } from "../../../src/plugins/core/node/index.js";

const modules = additionalNodeModules(false);

test("additionalNodeModules: returns nodejs_compat modules", () => {
  assert.deepEqual(Object.keys(modules).sort(), [
    "node:assert",
    "node:async_hooks",
    "node:buffer",
    "node:events",
    "node:util",
  ]);
  // The experimental flag adds nothing yet
  assert.deepEqual(
    Object.keys(additionalNodeModules(true)).sort(),
    Object.keys(modules).sort()
  );
});

test("additionalNodeModules: node:assert", () => {
  const ns = modules["node:assert"];
  assert.deepEqual(Object.keys(ns).sort(), [
    "AssertionError",
    "deepEqual",
    "deepStrictEqual",
    "default",
    "doesNotMatch",
    "doesNotReject",
    "doesNotThrow",
    "equal",
    "fail",
    "ifError",
    "match",
    "notDeepEqual",
    "notDeepStrictEqual",
    "notEqual",
    "notStrictEqual",
    "ok",
    "rejects",
    "strict",
    "strictEqual",
    "throws",
  ]);
  assert.equal(ns.default, nodeAssert);
  for (const key of Object.keys(ns)) {
    if (key !== "default") assert.equal(ns[key], (nodeAssert as never)[key], key);
  }
  assert.throws(() => ns.strictEqual(1, 2), ns.AssertionError);
});

test("additionalNodeModules: node:async_hooks", () => {
  const ns = modules["node:async_hooks"];
  assert.deepEqual(Object.keys(ns).sort(), ["AsyncLocalStorage", "AsyncResource", "default"]);
  assert.equal(ns.AsyncLocalStorage, AsyncLocalStorage);
  assert.equal(ns.AsyncResource, AsyncResource);
  assert.deepEqual(ns.default, { AsyncLocalStorage, AsyncResource });
});

test("additionalNodeModules: node:buffer", () => {
  const ns = modules["node:buffer"];
  assert.deepEqual(Object.keys(ns).sort(), [
    "Buffer",
    "SlowBuffer",
    "constants",
    "default",
    "kMaxLength",
    "kStringMaxLength",
  ]);
  const expected = {
    Buffer: nodeBuffer.Buffer,
    constants: nodeBuffer.constants,
    kMaxLength: nodeBuffer.kMaxLength,
    kStringMaxLength: nodeBuffer.kStringMaxLength,
    SlowBuffer: nodeBuffer.SlowBuffer,
  };
  for (const [key, value] of Object.entries(expected)) assert.equal(ns[key], value, key);
  assert.deepEqual(Object.keys(ns.default).sort(), Object.keys(expected).sort());
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(ns.default[key], value, key);
  }
});

test("additionalNodeModules: node:events", () => {
  const ns = modules["node:events"];
  assert.deepEqual(Object.keys(ns).sort(), [
    "EventEmitter",
    "EventEmitterAsyncResource",
    "captureRejectionSymbol",
    "default",
    "defaultMaxListeners",
    "errorMonitor",
    "getEventListeners",
    "listenerCount",
    "on",
    "once",
    "setMaxListeners",
  ]);
  assert.equal(ns.default, events);
  for (const key of Object.keys(ns)) {
    if (key !== "default") assert.equal(ns[key], (events as never)[key], key);
  }
  const emitter = new ns.EventEmitter();
  let received: unknown;
  emitter.on("event", (value: unknown) => (received = value));
  emitter.emit("event", 42);
  assert.equal(received, 42);
});

test("additionalNodeModules: node:util", () => {
  const ns = modules["node:util"];
  const names = ["_extend", "callbackify", "format", "inherits", "promisify", "types"];
  assert.deepEqual(Object.keys(ns).sort(), [...names, "default"].sort());
  assert.deepEqual(Object.keys(ns.default).sort(), names);
  for (const name of names) {
    assert.equal(ns[name], (util as never)[name], name);
    assert.equal(ns.default[name], (util as never)[name], name);
  }
  assert.equal(ns.format("%s=%d", "a", 1), "a=1");
});
