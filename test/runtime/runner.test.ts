import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import vm from "node:vm";
import { VMScriptRunner } from "../../src/runtime/index.js";
import { kGlobalGuards, STRING_SCRIPT_PATH } from "../../src/shared/runner.js";
import { ASSET_RULES, fixture, runFixture, runModule } from "./util.js";

const ADD_WASM = fs.readFileSync(fixture("add.wasm"));

test("VMScriptRunner: run: runs service worker scripts with globals", async () => {
  const globals: Record<string, any> = { input: 2, output: undefined };
  const runner = new VMScriptRunner();
  const result = await runner.run(globals, {
    filePath: "worker.js",
    code: "output = input * 21; var declared = true;",
  });
  assert.equal(globals.output, 42);
  // Top-level declarations of classic scripts become globals
  assert.equal(globals.declared, true);
  assert.deepEqual(result.exports, {});
  assert.equal(result.watch, undefined);
});

test("VMScriptRunner: run: service worker stack traces name the script file", async () => {
  const globals: Record<string, any> = {};
  await new VMScriptRunner().run(globals, {
    filePath: "/workers/sw.js",
    code: '\n\nglobalThis.fail = () => { throw new Error("sw"); };',
  });
  assert.throws(() => globals.fail(), (e: any) => {
    assert.match(e.stack, /\/workers\/sw\.js:3:\d+/);
    return true;
  });
});

test("VMScriptRunner: run: service worker syntax errors name the script file", async () => {
  await assert.rejects(
    new VMScriptRunner().run({}, { filePath: "/workers/bad.js", code: "\nlet = ;" }),
    (e: any) => {
      assert.equal(e.name, "SyntaxError");
      assert.match(e.stack, /\/workers\/bad\.js:2/);
      return true;
    }
  );
});

test("VMScriptRunner: run: runs string scripts as modules", async () => {
  const result = await new VMScriptRunner().run(
    { value: "global" },
    { filePath: STRING_SCRIPT_PATH, code: "export const x = value; export default 1;" },
    []
  );
  assert.deepEqual({ ...result.exports }, { default: 1, x: "global" });
  assert.deepEqual(result.watch, []);
});

test("VMScriptRunner: run: creates a new context each run", async () => {
  const runner = new VMScriptRunner();
  const first: Record<string, any> = {};
  const second: Record<string, any> = {};
  await runner.run(first, { filePath: "a.js", code: "globalThis.leaked = 1; Array.leaked = 1;" });
  await runner.run(second, { filePath: "b.js", code: "globalThis.seen = typeof leaked + typeof Array.leaked;" });
  assert.equal(second.seen, "undefinedundefined");
});

test("VMScriptRunner: run: reuses a given context, assigning globals", async () => {
  const context = vm.createContext({});
  const runner = new VMScriptRunner(context);
  await runner.run({ a: 1 }, { filePath: "a.js", code: "globalThis.fromA = a;" });
  await runner.run({ b: 2 }, { filePath: "b.js", code: "globalThis.fromB = fromA + b;" });
  assert.equal(context.fromB, 3);
  // instanceof patches are only defined once, so a second run didn't throw
  assert.equal(vm.runInContext("[] instanceof Array", context), true);
});

test("VMScriptRunner: run: disallows code generation from strings", async () => {
  for (const code of ['eval("1")', 'new Function("return 1")', "(function(){}).constructor('')"]) {
    const globals: Record<string, any> = {};
    await new VMScriptRunner().run(globals, {
      filePath: "worker.js",
      code: `try { ${code}; } catch (e) { error = e; }`,
    });
    assert.equal(globals.error?.name, "EvalError", code);
    assert.match(globals.error.message, /Code generation from strings disallowed/);
  }
  // In modules too
  const { exports } = await runModule(
    'let error; try { eval("1"); } catch (e) { error = e; } export default error;'
  );
  assert.equal(exports!.default.name, "EvalError");
});

test("VMScriptRunner: run: disallows WebAssembly compilation from bytes", async () => {
  const { exports } = await runModule(
    `export const sync = (() => { try { new WebAssembly.Module(bytes); } catch (e) { return e; } })();
     export const async = await WebAssembly.compile(bytes).catch((e) => e);`,
    { globals: { bytes: ADD_WASM } }
  );
  for (const error of [exports!.sync, exports!.async]) {
    assert.equal(error.name, "CompileError");
    assert.match(error.message, /Wasm code generation disallowed by embedder/);
  }
});

test("VMScriptRunner: run: instantiates CompiledWasm modules compiled by the host", async () => {
  const { exports } = await runFixture("assets.mjs", { rules: ASSET_RULES });
  assert.equal(exports!.sum, 3);
  assert.ok(exports!.wasm instanceof WebAssembly.Module);
});

test("VMScriptRunner: run: supports cross-realm instanceof", async () => {
  const globals = {
    hostArray: [1],
    hostObject: {},
    hostError: new TypeError("host"),
    hostPromise: Promise.resolve(),
    hostRegExp: /host/,
    hostFunction: () => {},
  };
  const { exports } = await runModule(
    `export default [
      hostArray instanceof Array, hostArray instanceof Object, hostObject instanceof Object,
      hostError instanceof Error, hostError instanceof TypeError, hostError instanceof RangeError,
      hostPromise instanceof Promise, hostRegExp instanceof RegExp, hostFunction instanceof Function,
    ];`,
    { globals }
  );
  assert.deepEqual(
    [...exports!.default],
    [true, true, true, true, true, false, true, true, true]
  );
});

test("VMScriptRunner: run: reads of guarded globals throw the guard's error", async () => {
  // Node 22+ swallows errors thrown by getters on the object a context was
  // made from, so the runner must install guards inside the context
  const get = (): never => {
    throw new ReferenceError("KEY is guarded");
  };
  const globals: Record<string | symbol, any> = { other: 1 };
  Object.defineProperty(globals, "KEY", { get });
  Object.defineProperty(globals, kGlobalGuards, { value: new Map([["KEY", get]]) });
  await new VMScriptRunner().run(globals, {
    filePath: "worker.js",
    code: `const read = (f) => { try { return String(f()); } catch (e) { return e.name + ": " + e.message; } };
    result = [read(() => KEY), read(() => globalThis.KEY), read(() => typeof KEY), read(() => other)];`,
  });
  // (Copied: the array is the context's, with the context's prototype)
  assert.deepEqual([...globals.result], [
    "ReferenceError: KEY is guarded",
    "ReferenceError: KEY is guarded",
    "ReferenceError: KEY is guarded",
    "1",
  ]);
});

test("VMScriptRunner: run: returns bundle size of entry and referenced modules", async () => {
  const code = 'import { add } from "./add.mjs"; import "./counter.mjs"; import { count } from "./counter.mjs";';
  const result = await runModule(code);
  const expected =
    Buffer.byteLength(code) +
    fs.statSync(fixture("add.mjs")).size +
    fs.statSync(fixture("counter.mjs")).size;
  assert.equal(result.bundleSize, expected);
  assert.deepEqual(result.watch, [fixture("add.mjs"), fixture("counter.mjs")]);
});

test("VMScriptRunner: run: counts each module once across ES and CommonJS imports", async () => {
  const code = 'import requires from "./cjs/requires.cjs"; import text from "./text.txt"; import lib from "./cjs/lib.js";';
  const result = await runModule(code, { rules: ASSET_RULES });
  const files = ["cjs/requires.cjs", "text.txt", "cjs/lib.js", "data.bin", "add.wasm"].map((f) => fixture(f));
  assert.deepEqual(new Set(result.watch), new Set(files));
  const sizes = files.reduce((total, file) => total + fs.statSync(file).size, 0);
  assert.equal(result.bundleSize, Buffer.byteLength(code) + sizes);
});
