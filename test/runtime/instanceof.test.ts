import assert from "node:assert/strict";
import { test } from "node:test";
import vm from "node:vm";
import { defineHasInstances } from "../../src/runtime/index.js";

function useContext(globals: Record<string, unknown> = {}): vm.Context {
  const context = vm.createContext(globals);
  defineHasInstances(context);
  return context;
}

/** Evaluates `expression` inside a patched context, with `value` in scope */
function inside(expression: string, value?: unknown, globals?: Record<string, unknown>): unknown {
  const context = useContext(globals);
  return vm.runInContext(`(value) => ${expression}`, context)(value);
}

test("defineHasInstances: accepts host objects", () => {
  assert.equal(inside("value instanceof Object", {}), true);
  assert.equal(inside("value instanceof Object", Object.create(null)), false);
  assert.equal(inside("value instanceof Object", () => {}), true);
});

test("defineHasInstances: accepts host functions", () => {
  assert.equal(inside("value instanceof Function", () => {}), true);
  assert.equal(inside("value instanceof Function", async () => {}), true);
  assert.equal(inside("value instanceof Function", {}), false);
});

test("defineHasInstances: accepts host arrays", () => {
  assert.equal(inside("value instanceof Array", []), true);
  assert.equal(inside("value instanceof Object", [1, 2]), true);
  assert.equal(inside("value instanceof Array", { length: 0 }), false);
});

test("defineHasInstances: accepts host promises", () => {
  assert.equal(inside("value instanceof Promise", Promise.resolve()), true);
  assert.equal(inside("value instanceof Promise", { then() {} }), false);
});

test("defineHasInstances: accepts host regular expressions", () => {
  assert.equal(inside("value instanceof RegExp", /a/), true);
  assert.equal(inside("value instanceof RegExp", "a"), false);
});

test("defineHasInstances: accepts host errors by class", () => {
  const error = new TypeError("host");
  assert.equal(inside("value instanceof Error", error), true);
  assert.equal(inside("value instanceof TypeError", error), true);
  assert.equal(inside("value instanceof RangeError", error), false);
  assert.equal(inside("value instanceof Object", error), true);
  const subclasses = ["EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError"];
  for (const name of subclasses) {
    const hostError = new (globalThis as any)[name]("host");
    assert.equal(inside(`value instanceof ${name}`, hostError), true, name);
    assert.equal(inside("value instanceof Error", hostError), true, name);
  }
});

test("defineHasInstances: still accepts the context's own instances", () => {
  assert.equal(inside("[] instanceof Array && {} instanceof Object"), true);
  assert.equal(inside("new TypeError() instanceof TypeError"), true);
  assert.equal(inside("new TypeError() instanceof RangeError"), false);
  assert.equal(inside("(async () => {})() instanceof Promise"), true);
});

test("defineHasInstances: rejects null and primitives", () => {
  for (const value of [null, undefined, 1, "string", true, Symbol("s"), 1n]) {
    assert.equal(inside("value instanceof Object", value), false, String(value));
  }
});

test("defineHasInstances: supports classes defined in the context", () => {
  const context = useContext();
  const result = vm.runInContext(
    `class MyError extends Error {}
     class MyArray extends Array {}
     class TypeErrorLookalike extends Error {}
     class Plain {}
     ({ MyError, MyArray, TypeErrorLookalike, Plain,
        checks: [new MyError() instanceof MyError, new MyError() instanceof Error,
                 new Error() instanceof MyError, MyArray.from([1]) instanceof MyArray,
                 new Plain() instanceof Plain, new MyArray() instanceof Array] })`,
    context
  );
  assert.deepEqual([...result.checks], [true, true, false, true, true, true]);
  // Host instances never match context subclasses
  const check = vm.runInContext("(value, C) => value instanceof C", context);
  assert.equal(check([], result.MyArray), false);
  assert.equal(check(new TypeError(), result.MyError), false);
  assert.equal(check(new TypeError(), result.TypeErrorLookalike), false);
});

test("defineHasInstances: can be called more than once per context", () => {
  const context = useContext();
  defineHasInstances(context);
  assert.equal(vm.runInContext("(value) => value instanceof Array", context)([]), true);
});

test("defineHasInstances: leaves host constructors passed as globals alone", () => {
  const context = useContext({ Array });
  assert.equal(Object.hasOwn(Array, Symbol.hasInstance), false);
  assert.equal(vm.runInContext("Array", context), Array);
});

test("defineHasInstances: keeps instanceof errors for non-object prototypes", () => {
  const context = useContext();
  assert.throws(
    () => vm.runInContext("function F() {} F.prototype = 1; Object[Symbol.hasInstance].call(F, {})", context),
    { name: "TypeError", message: "Function has non-object prototype '1' in instanceof check" }
  );
});
