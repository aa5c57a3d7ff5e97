import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import * as acorn from "acorn";
import { FIXTURES, fixture, runFixture, runModule } from "./util.js";

function plain(namespace: object | undefined): Record<string, unknown> {
  return { ...namespace };
}

test("VMScriptRunner: run: supports default, named, namespace and side-effect imports", async () => {
  const log: string[] = [];
  const { exports } = await runModule(
    `import "./log-shared.mjs";
     import addDefault, { add, ONE as one } from "./add.mjs";
     import * as addNamespace from "./add.mjs";
     import { default as addDefault2 } from "./add.mjs";
     export default [addDefault, add(one, 2), addNamespace.ONE, addDefault2 === addDefault];`,
    { globals: { log } }
  );
  assert.deepEqual([...exports!.default], ["add default", 3, 1, true]);
  assert.deepEqual(log, ["shared"]);
});

test("VMScriptRunner: run: evaluates dependencies first, in import order, once each", async () => {
  const log: string[] = [];
  await runModule(
    `import "./log-a.mjs"; import "./log-async.mjs"; import "./log-b.mjs"; log.push("entry");`,
    { globals: { log, setTimeout } }
  );
  // As natively: the module with top-level await starts in its turn, and
  // holds up only its dependents (the entry), not "b" beside it
  assert.deepEqual(log, ["shared", "a", "async start", "b", "async end", "entry"]);
});

test("VMScriptRunner: run: a graph without top-level await runs in one synchronous go", async () => {
  const log: string[] = [];
  await runModule(
    `import "./log-a.mjs"; import "./log-b.mjs";
     // Queued by the entry only once every module ran: natively, no promise
     // callback runs between two module bodies of a synchronous graph
     log.push("entry");`,
    { globals: { log } }
  );
  assert.deepEqual(log, ["shared", "a", "b", "entry"]);
  const order: string[] = [];
  const { exports } = await runModule(
    `import { queued } from "./queues-microtask.mjs";
     order.push("entry, callback ran: " + queued.ran);
     export default queued;`,
    { globals: { order } }
  );
  assert.deepEqual(order, ["dependency", "entry, callback ran: false", "callback"]);
  assert.equal(exports!.default.ran, true);
});

test("VMScriptRunner: run: hoists imports, failing before any module runs", async () => {
  const log: string[] = [];
  await assert.rejects(
    runModule(`log.push("entry"); import "./log-a.mjs"; import "./does-not-exist.mjs";`, {
      globals: { log },
    }),
    { code: "ENOENT" }
  );
  await assert.rejects(
    runModule(`import "./log-a.mjs"; import "./missing-export.mjs";`, { globals: { log } }),
    {
      name: "SyntaxError",
      message: "The requested module './add.mjs' does not provide an export named 'nope'",
    }
  );
  assert.deepEqual(log, []);
});

test("VMScriptRunner: run: supports top-level await", async () => {
  const { exports } = await runModule(
    "export const value = await new Promise((resolve) => setTimeout(() => resolve(42), 1));",
    { globals: { setTimeout } }
  );
  assert.equal(exports!.value, 42);
});

test("VMScriptRunner: run: supports cyclic imports", async () => {
  const { exports } = await runFixture("cycle-a.mjs");
  const ns = exports!;
  assert.equal(ns.result, "alate a");
  assert.equal(ns.fromB(), "b");
  // cycle-a.mjs imports cycle-b.mjs, which imports cycle-a.mjs: so cycle-b.mjs
  // runs first, able to call fromA, but not to read lateA
  const b = await runModule('import "./cycle-a.mjs"; export * from "./cycle-b.mjs";');
  assert.equal(b.exports!.early, "a");
  assert.equal(b.exports!.tdz.name, "ReferenceError");
  assert.match(b.exports!.tdz.message, /Cannot access 'lateA' before initialization/);
});

test("VMScriptRunner: run: imported bindings are live and read-only", async () => {
  const { exports } = await runModule(
    `import { count, increment } from "./counter.mjs";
     import * as counter from "./counter.mjs";
     export const before = count;
     increment();
     export const after = count;
     export const viaNamespace = counter.count;
     let assignError, namespaceError;
     try { count = 10; } catch (e) { assignError = e; }
     try { counter.count = 10; } catch (e) { namespaceError = e; }
     export { assignError, namespaceError };
     export const read = () => count;`
  );
  const ns = exports!;
  assert.equal(ns.before, 0);
  assert.equal(ns.after, 1);
  assert.equal(ns.viaNamespace, 1);
  assert.equal(ns.assignError.name, "TypeError");
  assert.equal(ns.assignError.message, "Assignment to constant variable.");
  assert.equal(ns.namespaceError.name, "TypeError");
  assert.equal(ns.read(), 1);
});

test("VMScriptRunner: run: only rewrites references that resolve to imports", async () => {
  const { exports } = await runModule(
    `import { ONE, add } from "./add.mjs";
     function shadowParam(ONE) { return ONE; }
     function shadowVar() { if (true) { var ONE = "var"; } return ONE; }
     const shadowBlock = () => { { const ONE = "block"; return ONE; } };
     const shadowCatch = () => { try { throw "catch"; } catch (ONE) { return ONE; } };
     const shadowDestructure = ({ a: [ONE] }) => ONE;
     const shadowFunction = () => { return ONE(); function ONE() { return "hoisted"; } };
     class Shadow { ONE = ONE; static ONE() { return ONE; } }
     const object = { ONE, add, nested: { ONE: "key" }, ["computed" + ONE]: ONE };
     let destructured; ({ ONE: destructured } = { ONE: "assigned" });
     label: for (const x of [1]) { break label; }
     const viaCall = add.call(undefined, 1, 1);
     export default [
       shadowParam("param"), shadowVar(), shadowBlock(), shadowCatch(), shadowDestructure({ a: ["pattern"] }),
       shadowFunction(), new Shadow().ONE, Shadow.ONE(), object.ONE, object.add(ONE, ONE), object.nested.ONE,
       object.computed1, destructured, \`\${ONE}\`, typeof ONE, viaCall,
     ];`
  );
  assert.deepEqual([...exports!.default], [
    "param", "var", "block", "catch", "pattern", "hoisted", 1, 1, 1, 2, "key", 1, "assigned", "1", "number", 2,
  ]);
});

test("VMScriptRunner: run: keeps automatic semicolon insertion around imports and exports", async () => {
  const { exports } = await runModule(
    [
      "const calls = []",
      "const f = (x) => { calls.push(x); return f }",
      "let a = f",
      'import { ONE } from "./add.mjs"',
      "(1)",
      "let b = f",
      "export { a, b, c, calls }",
      "[2]",
      "let c = ONE",
      'export * from "./counter.mjs"',
      "`3`",
      // As in any module, this is `export default f(4)`
      "export default f",
      "(4)",
    ].join("\n")
  );
  assert.deepEqual([...exports!.calls], [4]);
  assert.equal(exports!.default, exports!.a);
  assert.equal(exports!.c, 1);
});

test("VMScriptRunner: run: calls imported functions with undefined this", async () => {
  const { exports } = await runModule(
    `import { getThis, tag } from "./nested/this.mjs";
     export default [getThis(), tag\`x\`, getThis?.()];`
  );
  assert.deepEqual([...exports!.default], [undefined, undefined, undefined]);
});

test("VMScriptRunner: run: supports all export forms", async () => {
  const { exports } = await runFixture("exports.mjs");
  const ns = exports!;
  assert.deepEqual(Object.keys(ns), [
    "C", "af", "c", "d1", "d2", "default", "f", "g", "l", "renamed", "rest", "string name", "v",
  ]);
  assert.equal(ns.v, "var");
  assert.equal(ns.l, "let");
  assert.equal(ns.c, "const");
  assert.equal(ns.d1, "d1");
  assert.equal(ns.d2, "d2 default");
  assert.deepEqual([...ns.rest], ["r1", "r2"]);
  assert.equal(ns.f(), "function");
  assert.equal(await ns.af(), "async function");
  assert.equal(ns.g().next().value, "generator");
  assert.equal(ns.C.name2, "class");
  assert.equal(ns.renamed, "local");
  assert.equal(ns["string name"], "local");
  assert.equal(ns.default(), "anonymous default");
  assert.equal(ns.default.name, "default");
});

test("VMScriptRunner: run: names default exports as export default does", async () => {
  const cases: [string, string][] = [
    ["default-class.mjs", "default"],
    ["default-named-class.mjs", "Named"],
    ["default-expression.mjs", "default"],
    ["default-named-function.mjs", "named"],
  ];
  for (const [file, name] of cases) {
    const { exports } = await runFixture(file);
    assert.equal(exports!.default.name, name, file);
  }
  const { exports } = await runFixture("default-class.mjs");
  assert.equal(new exports!.default().kind, "anonymous class");
  // Expressions can be parenthesised, and continue across lines
  const result = await runModule("export default (function () {})\n;export const x = 1");
  assert.equal(result.exports!.default.name, "default");
});

test("VMScriptRunner: run: supports re-exports", async () => {
  const { exports } = await runFixture("reexports.mjs");
  const ns = exports!;
  // shared is ambiguous (a and b), same isn't (both re-export add's ONE);
  // export * never re-exports default
  assert.deepEqual(Object.keys(ns), [
    "a", "addNamespace", "b", "default", "importedCount", "one", "plus", "same",
  ]);
  assert.equal(ns.default, "add default");
  assert.equal(ns.plus(1, 2), 3);
  assert.equal(ns.one, 1);
  assert.equal(ns.same, 1);
  assert.equal(ns.addNamespace.ONE, 1);
  assert.equal(ns.importedCount, 0);
});

test("VMScriptRunner: run: rejects imports of ambiguous star exports", async () => {
  await assert.rejects(runFixture("ambiguous.mjs"), {
    name: "SyntaxError",
    message: "The requested module './reexports.mjs' contains conflicting star exports for name 'shared'",
  });
});

test("VMScriptRunner: run: builds spec-like namespace objects", async () => {
  const { exports } = await runModule(
    `import * as ns from "./add.mjs"; export { ns }; export const z = 1; export const a = 2;`
  );
  for (const ns of [exports!, exports!.ns]) {
    assert.equal(Object.getPrototypeOf(ns), null);
    assert.equal(Object.prototype.toString.call(ns), "[object Module]");
    assert.equal(ns[Symbol.toStringTag], "Module");
    assert.equal(Object.isExtensible(ns), false);
    assert.deepEqual(Object.keys(ns), [...Object.keys(ns)].sort());
    assert.throws(() => {
      "use strict";
      (ns as any).added = true;
    }, TypeError);
  }
  assert.deepEqual(Object.keys(exports!), ["a", "ns", "z"]);
  assert.deepEqual(plain(exports!.ns), { ONE: 1, add: exports!.ns.add, default: "add default" });
});

test("VMScriptRunner: run: namespaces are exotic: data properties, defineProperty checks, TDZ while uninitialised", async () => {
  const { exports } = await runModule(
    `import * as self from "./entry.mjs";
     const seen = [];
     const attempt = (name, f) => { try { seen.push([name, f()]); } catch (e) { seen.push([name, e.constructor.name]); } };
     // Before \`later\` is initialised, anything reading its descriptor throws
     attempt("keys", () => Object.keys(self));
     attempt("hasOwnProperty", () => Object.prototype.hasOwnProperty.call(self, "later"));
     attempt("propertyIsEnumerable", () => Object.prototype.propertyIsEnumerable.call(self, "later"));
     attempt("for-in", () => { for (const key in self) {} return "ran"; });
     attempt("in", () => "later" in self);
     export let later = 1;
     attempt("descriptor", () => Object.getOwnPropertyDescriptor(self, "later"));
     attempt("define same", () => Object.defineProperty(self, "later", { value: 1, writable: true, enumerable: true, configurable: false }) === self);
     attempt("define other value", () => Reflect.defineProperty(self, "later", { value: 2 }));
     attempt("define configurable", () => Reflect.defineProperty(self, "later", { configurable: true }));
     attempt("define missing", () => Reflect.defineProperty(self, "missing", { value: 1 }));
     attempt("set", () => Reflect.set(self, "later", 3));
     attempt("delete", () => Reflect.deleteProperty(self, "later"));
     attempt("delete missing", () => Reflect.deleteProperty(self, "missing"));
     attempt("setPrototypeOf null", () => Reflect.setPrototypeOf(self, null));
     attempt("setPrototypeOf {}", () => Reflect.setPrototypeOf(self, {}));
     export { seen };`
  );
  // (compared as JSON: the arrays and descriptors are the worker realm's)
  assert.deepEqual(JSON.parse(JSON.stringify(exports!.seen)), [
    ["keys", "ReferenceError"],
    ["hasOwnProperty", "ReferenceError"],
    ["propertyIsEnumerable", "ReferenceError"],
    ["for-in", "ReferenceError"],
    ["in", true],
    ["descriptor", { value: 1, writable: true, enumerable: true, configurable: false }],
    ["define same", true],
    ["define other value", false],
    ["define configurable", false],
    ["define missing", false],
    ["set", false],
    ["delete", false],
    ["delete missing", true],
    ["setPrototypeOf null", true],
    ["setPrototypeOf {}", false],
  ]);
});

test("VMScriptRunner: run: import() checks its options as Node does, after converting its specifier", async () => {
  const { exports } = await runModule(
    `const seen = [];
     const attempt = async (name, options) => {
       try { await import("./add.mjs", options); seen.push([name, "loaded"]); }
       catch (e) { seen.push([name, e.constructor === TypeError ? "TypeError" : String(e), e.message]); }
     };
     await attempt("number", 1);
     await attempt("null", null);
     await attempt("with number", { with: 1 });
     await attempt("value not a string", { with: { type: 1 } });
     await attempt("json", { with: { type: "json" } });
     await attempt("undefined", undefined);
     await attempt("empty", {});
     await attempt("with empty", { with: {} });
     const order = [];
     await import({ toString() { order.push("specifier"); return "./add.mjs"; } }, { get with() { order.push("with"); } });
     export { seen, order };`
  );
  assert.deepEqual(JSON.parse(JSON.stringify(exports!.seen)), [
    ["number", "TypeError", "The second argument to import() must be an object"],
    ["null", "TypeError", "The second argument to import() must be an object"],
    ["with number", "TypeError", "The 'with' option must be an object"],
    ["value not a string", "TypeError", "Import attribute value must be a string"],
    ["json", "TypeError", 'Import attribute "type" with value "json" is not supported'],
    ["undefined", "loaded"],
    ["empty", "loaded"],
    ["with empty", "loaded"],
  ]);
  assert.deepEqual([...exports!.order], ["specifier", "with"]);
});

test("VMScriptRunner: run: a failed import() rejects with the worker realm's errors", async () => {
  const { exports } = await runModule(
    `const kinds = [];
     for (const specifier of ["./syntax-error.mjs", "./does-not-exist.mjs"]) {
       try { await import(specifier); kinds.push("loaded"); }
       catch (e) { kinds.push([e.constructor === SyntaxError, e.constructor === Error, e instanceof Error, e.name]); }
     }
     export { kinds };`
  );
  assert.deepEqual(JSON.parse(JSON.stringify(exports!.kinds)), [
    [true, false, true, "SyntaxError"],
    [false, true, true, "Error"],
  ]);
});

test("VMScriptRunner: run: top-level arguments is a global lookup, and internal names are the module's to use", async () => {
  const { exports } = await runModule(
    `let typeofArguments, readArguments, arrowArguments;
     typeofArguments = typeof arguments;
     try { arguments; readArguments = "read"; } catch (e) { readArguments = e.constructor === ReferenceError ? "ReferenceError" : String(e); }
     arrowArguments = (() => { try { return arguments; } catch (e) { return e.name; } })();
     function own() { return arguments.length; }
     // Names the module wrapper uses by default are free for the module
     let __mf_runtime__ = 1, __mf_imports__ = 2;
     const __mf_default__ = 3;
     export default [typeofArguments, readArguments, arrowArguments, own(1, 2), __mf_runtime__ + __mf_imports__ + __mf_default__];`
  );
  assert.deepEqual([...exports!.default], ["undefined", "ReferenceError", "ReferenceError", 2, 6]);
  // With a global \`arguments\`, the module sees it
  const withGlobal = await runModule(`export default arguments;`, { globals: { arguments: "global" } });
  assert.equal(withGlobal.exports!.default, "global");
});

test("VMScriptRunner: run: import() of a module still to run in the graph being evaluated waits for that graph", async () => {
  const { exports } = await runModule(
    `import "./dfs-a.mjs";
     import "./dfs-b.mjs";
     // (function declarations are hoisted: the fixtures can call these first)
     export function evaluated(name) { (evaluated.order ??= []).push(name); }
     export function check(promise) { checked = promise.then(() => [...evaluated.order]); }
     export var checked;`
  );
  // Natively too, "A" (which imports "B" dynamically) runs first, then "B" once
  assert.deepEqual([...(await exports!.checked)], ["A", "B"]);
});

test("VMScriptRunner: run: supports dynamic import", async () => {
  const log: string[] = [];
  const { exports } = await runModule(
    `import { load, nested } from "./dynamic.mjs";
     import * as addStatic from "./add.mjs";
     const fromEntry = await import("./counter.mjs");
     const nestedNs = await nested();
     const sibling = await nestedNs.loadSibling();
     const siblingAgain = await import("./nested/sibling.mjs");
     const alreadyLinked = await load("./add.mjs");
     export default [fromEntry.count, sibling.sibling, sibling === siblingAgain, alreadyLinked === addStatic, nestedNs.url];`,
    { globals: { log } }
  );
  const [count, sibling, same, linked, url] = exports!.default;
  assert.equal(count, 0);
  assert.equal(sibling, "sibling");
  assert.equal(same, true);
  assert.equal(linked, true);
  assert.equal(url, pathToFileURL(fixture("nested/dynamic.mjs")).href);
  assert.deepEqual(log, ["sibling"]);
});

test("VMScriptRunner: run: evaluates dynamically imported modules once", async () => {
  const log: string[] = [];
  const { exports } = await runModule(
    `const [a, b] = await Promise.all([import("./nested/sibling.mjs"), import("./nested/sibling.mjs")]);
     export const same = a === b;
     export const cjs = await import("./cjs/lib.js");`,
    { globals: { log } }
  );
  assert.deepEqual(log, ["sibling"]);
  assert.equal(exports!.same, true);
  assert.deepEqual(Object.keys(exports!.cjs), ["default"]);
  assert.equal(exports!.cjs.default.value, "lib value");
});

test("VMScriptRunner: run: stops evaluating when a module throws", async () => {
  const log: string[] = [];
  await assert.rejects(
    runModule('import "./log-shared.mjs"; import "./throws-on-import.mjs"; import "./log-a.mjs"; log.push("entry");', {
      globals: { log },
    }),
    { message: "evaluation failed" }
  );
  assert.deepEqual(log, ["shared"]);
});

test("VMScriptRunner: run: dynamic import rejects on failure, and can be retried", async () => {
  const { exports } = await runModule(
    `export const missing = await import("./does-not-exist.mjs").catch((e) => e);
     export const evaluation = await import("./throws-on-import.mjs").catch((e) => e);
     export const again = await import("./throws-on-import.mjs").catch((e) => e);
     export const symbol = await import(Symbol()).catch((e) => e);
     export const retried = await import("./add.mjs");`
  );
  const ns = exports!;
  assert.equal(ns.missing.code, "ENOENT");
  assert.equal(ns.evaluation.message, "evaluation failed");
  // A module that threw keeps its error
  assert.equal(ns.again, ns.evaluation);
  assert.equal(ns.symbol.name, "TypeError");
  assert.equal(ns.retried.ONE, 1);
  // import() returns promises of the worker's realm
  const realm = await runModule('export const p = import("./add.mjs"); export const ok = p instanceof Promise;');
  assert.equal(realm.exports!.ok, true);
});

test("VMScriptRunner: run: supports import.meta.url", async () => {
  const filePath = fixture("entry.mjs");
  const { exports } = await runModule("export const meta = import.meta;", {}, filePath);
  assert.equal(exports!.meta.url, pathToFileURL(filePath).href);
  assert.equal(Object.getPrototypeOf(exports!.meta), null);
});

test("VMScriptRunner: run: module stack traces point at the original line", async () => {
  const { exports } = await runFixture("throws.mjs");
  assert.equal(exports!.two, 2);
  assert.throws(() => exports!.boom(), (e: any) => {
    assert.match(e.stack, /throws\.mjs:10:9/);
    return true;
  });
  const cjs = await runModule('import fail from "./cjs/throws.cjs"; export { fail };');
  assert.throws(() => cjs.exports!.fail(), (e: any) => {
    assert.match(e.stack, /throws\.cjs:3:9/);
    return true;
  });
});

test("VMScriptRunner: run: module syntax errors name the file and line", async () => {
  await assert.rejects(runModule('import "./syntax-error.mjs";'), (e: any) => {
    assert.equal(e.name, "SyntaxError");
    assert.ok(e instanceof SyntaxError);
    const location = `${fixture("syntax-error.mjs")}:3:18`;
    assert.equal(e.message, `Unexpected token (${location})`);
    assert.match(e.stack!, new RegExp(`at ${location.replace(/[.\\/]/g, "\\$&")}`));
    return true;
  });
});

test("VMScriptRunner: run: runs real-world modules", async () => {
  // acorn's ES build: thousands of lines using most of the language
  const acornPath = path.resolve(FIXTURES, "../../../node_modules/acorn/dist/acorn.mjs");
  const code = "class A { static #x = 1; m() { return A.#x ?? [...`${1}`]; } }";
  const { exports } = await runModule(
    `import { parse, version } from ${JSON.stringify(acornPath)};
     export const ast = parse(code, { ecmaVersion: "latest" });
     export { version };`,
    { globals: { code } }
  );
  assert.equal(exports!.version, acorn.version);
  assert.equal(
    JSON.stringify(exports!.ast),
    JSON.stringify(acorn.parse(code, { ecmaVersion: "latest" }))
  );
});
