import assert from "node:assert/strict";
import { test } from "node:test";
import { MiniflareError, prefixError } from "../../src/shared/errors.js";

type TestErrorCode = "ERR_FIRST" | "ERR_SECOND";
class TestError extends MiniflareError<TestErrorCode> {}
class SubTestError extends TestError {}
class ExitError extends MiniflareError<number> {}

test("MiniflareError: constructor: names errors \"Class [CODE]\"", () => {
  const error = new TestError("ERR_FIRST", "first message");
  assert.equal(error.name, "TestError [ERR_FIRST]");
  assert.equal(error.code, "ERR_FIRST");
  assert.equal(error.message, "first message");
  assert.equal(String(error), "TestError [ERR_FIRST]: first message");
  assert.match(error.stack!, /^TestError \[ERR_FIRST\]: first message\n/);

  // The most derived class names the error
  const sub = new SubTestError("ERR_SECOND", "second message");
  assert.equal(sub.name, "SubTestError [ERR_SECOND]");
  assert.equal(new MiniflareError("ERR_BASE").name, "MiniflareError [ERR_BASE]");
});

test("MiniflareError: constructor: is an instance of its classes", () => {
  const error = new SubTestError("ERR_FIRST");
  assert.ok(error instanceof SubTestError);
  assert.ok(error instanceof TestError);
  assert.ok(error instanceof MiniflareError);
  assert.ok(error instanceof Error);
  assert.equal(Object.getPrototypeOf(error), SubTestError.prototype);
  assert.ok(!(new TestError("ERR_FIRST") instanceof SubTestError));
});

test("MiniflareError: constructor: message defaults to empty", () => {
  const error = new TestError("ERR_SECOND");
  assert.equal(error.message, "");
  assert.equal(String(error), "TestError [ERR_SECOND]");
});

test("MiniflareError: constructor: accepts numeric codes", () => {
  const error = new ExitError(1, "Build failed with exit code 1");
  assert.equal(error.code, 1);
  assert.equal(error.name, "ExitError [1]");
  assert.equal(String(error), "ExitError [1]: Build failed with exit code 1");
});

test("MiniflareError: constructor: stores the cause", () => {
  const cause = new TypeError("underlying");
  const error = new TestError("ERR_FIRST", "wrapper", cause);
  assert.equal(error.cause, cause);
  assert.equal(new TestError("ERR_FIRST", "no cause").cause, undefined);
});

test("MiniflareError: can be thrown and caught by class and code", () => {
  assert.throws(
    () => {
      throw new TestError("ERR_SECOND", "thrown");
    },
    (error: unknown) =>
      error instanceof TestError &&
      error.code === "ERR_SECOND" &&
      error.message === "thrown"
  );
});

test("prefixError: prefixes the stack without changing the error", () => {
  const error = new RangeError("original");
  const originalStack = error.stack!;
  const prefixed = prefixError("Cause", error);
  assert.equal(prefixed.stack, `Cause: ${originalStack}`);
  // Everything else reads through to the original
  assert.equal(prefixed.message, "original");
  assert.equal(prefixed.name, "RangeError");
  assert.ok(prefixed instanceof RangeError);
  // The original is untouched
  assert.equal(error.stack, originalStack);
});

test("prefixError: keeps MiniflareError properties", () => {
  const cause = new Error("root");
  const error = new TestError("ERR_FIRST", "message", cause);
  const prefixed = prefixError("Cause", error) as TestError;
  assert.match(prefixed.stack!, /^Cause: TestError \[ERR_FIRST\]: message\n/);
  assert.equal(prefixed.code, "ERR_FIRST");
  assert.equal(prefixed.cause, cause);
  assert.ok(prefixed instanceof TestError);
});

test("prefixError: prefixes a custom stack", () => {
  const error = new Error("custom");
  error.stack = "custom stack";
  assert.equal(prefixError("Outer", error).stack, "Outer: custom stack");
});

test("prefixError: returns values without a stack as they are", () => {
  const noStack = new Error("no stack");
  Object.defineProperty(noStack, "stack", { value: undefined });
  assert.equal(prefixError("Cause", noStack), noStack);
  const plain = { message: "not an error" };
  assert.equal(prefixError("Cause", plain), plain);
});
