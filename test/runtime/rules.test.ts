import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { VMScriptRunner, VMScriptRunnerError } from "../../src/runtime/index.js";
import { STRING_SCRIPT_PATH } from "../../src/shared/runner.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import {
  ASSET_RULES,
  compatDefault,
  compatNamespace,
  fixture,
  processRules,
  runModule,
} from "./util.js";

const ENTRY = fixture("entry.mjs");
const RELATIVE_ENTRY = path.relative("", ENTRY);
const SUGGEST_BUNDLE =
  "If you're trying to import an npm package, you'll need to bundle your Worker first.";

test("VMScriptRunner: run: imports Text, Data and CompiledWasm modules", async () => {
  const { exports } = await runModule(
    `export { default as text } from "./text.txt";
     export { default as data } from "./data.bin";
     export { default as wasm } from "./add.wasm";`,
    { rules: ASSET_RULES }
  );
  const ns = exports!;
  assert.equal(ns.text, "hello text\n");
  assert.ok(ns.data instanceof ArrayBuffer);
  assert.deepEqual(new Uint8Array(ns.data), new Uint8Array(fs.readFileSync(fixture("data.bin"))));
  assert.ok(ns.wasm instanceof WebAssembly.Module);
});

test("VMScriptRunner: run: applies the first matching module rule", async () => {
  // .txt as ESModule would fail to parse; as Text it's a string
  const rules = [
    { type: "Text" as const, include: ["**/text.txt"] },
    { type: "ESModule" as const, include: ["**/*.txt"] },
  ];
  const { exports } = await runModule('export { default } from "./text.txt";', { rules });
  assert.equal(exports!.default, "hello text\n");
  // .js files are CommonJS by default, but rules may say otherwise
  const esm = [{ type: "ESModule" as const, include: ["**/lib.js"] }];
  await assert.rejects(runModule('import "./cjs/lib.js";', { rules: esm }), {
    name: "ReferenceError",
    message: "exports is not defined",
  });
});

test("VMScriptRunner: run: imports CommonJS modules as a default export", async () => {
  const { exports } = await runModule(
    `import lib from "./cjs/lib.js";
     import * as libNamespace from "./cjs/lib.js";
     import replaced from "./cjs/replace.cjs";
     export default [lib, Object.keys(libNamespace), replaced()];`
  );
  const [lib, keys, replaced] = exports!.default;
  assert.equal(lib.value, "lib value");
  assert.equal(lib.loads, 1);
  assert.deepEqual([...keys], ["default"]);
  assert.equal(replaced, "replaced");
});

test("VMScriptRunner: run: require()s CommonJS and asset modules", async () => {
  const { exports } = await runModule(
    'import requires from "./cjs/requires.cjs"; import lib from "./cjs/lib.js"; export { requires, lib };',
    { rules: ASSET_RULES, compat: compatDefault }
  );
  const { requires, lib } = exports!;
  assert.equal(requires.same, true);
  // Shared with the import: evaluated once
  assert.equal(requires.lib, lib);
  assert.equal(lib.loads, 1);
  assert.equal(requires.text, "hello text\n");
  assert.ok(requires.data instanceof ArrayBuffer);
  assert.ok(requires.wasm instanceof WebAssembly.Module);
});

test("VMScriptRunner: run: require() follows export_commonjs_default", async () => {
  // Without the flag, require() returns a stable { default } object
  const namespaced = await runModule('export { default } from "./cjs/requires.cjs";', {
    rules: ASSET_RULES,
    compat: compatNamespace,
  });
  const requires = namespaced.exports!.default;
  assert.deepEqual(Object.keys(requires.lib), ["default"]);
  assert.equal(requires.lib.default.value, "lib value");
  assert.equal(requires.same, true);
  assert.equal(requires.text.default, "hello text\n");
  assert.equal(Object.getOwnPropertyDescriptor(requires.lib, "default")?.enumerable, true);
  // Without compatibility data, require() returns exports
  const plain = await runModule('export { default } from "./cjs/requires.cjs";', {
    rules: ASSET_RULES,
  });
  assert.equal(plain.exports!.default.lib.value, "lib value");
});

test("VMScriptRunner: run: require() of an ES module throws", async () => {
  const relative = path.relative("", fixture("cjs/requires-esm.cjs"));
  // Whether or not the ES module is already loaded
  for (const code of ['import "./cjs/requires-esm.cjs";', 'import "./add.mjs"; import "./cjs/requires-esm.cjs";']) {
    await assertRejectsMiniflare(
      runModule(code),
      VMScriptRunnerError,
      "ERR_CJS_MODULE_UNSUPPORTED",
      `Unable to resolve "${relative}" dependency "../add.mjs": CommonJS modules cannot require ES modules`
    );
  }
});

test("VMScriptRunner: run: resolves additional modules by name first", async () => {
  const additionalModules = {
    "node:buffer": { Buffer, default: { Buffer } },
    __STATIC_CONTENT_MANIFEST: { default: '{"a.txt":"a.hash.txt"}' },
    "./add.mjs": { default: "not the file", extra: true },
  };
  const { exports } = await runModule(
    `import { Buffer } from "node:buffer";
     import manifest from "__STATIC_CONTENT_MANIFEST";
     import * as add from "./add.mjs";
     import required from "./cjs/requires-additional.cjs";
     export default [Buffer, manifest, add.default, add.extra, required];`,
    { additionalModules, compat: compatDefault }
  );
  const [buffer, manifest, addDefault, extra, required] = exports!.default;
  assert.equal(buffer, Buffer);
  assert.equal(manifest, '{"a.txt":"a.hash.txt"}');
  assert.equal(addDefault, "not the file");
  assert.equal(extra, true);
  // require() returns the additional module's default export
  assert.equal(required.Buffer, Buffer);
});

test("VMScriptRunner: run: throws if a module matches no rule", async () => {
  await assertRejectsMiniflare(
    runModule('import "./text.txt";'),
    VMScriptRunnerError,
    "ERR_MODULE_RULE",
    `Unable to resolve "${RELATIVE_ENTRY}" dependency "./text.txt": no matching module rules.\n${SUGGEST_BUNDLE}`
  );
  await assertRejectsMiniflare(
    runModule('import _ from "lodash";'),
    VMScriptRunnerError,
    "ERR_MODULE_RULE",
    `Unable to resolve "${RELATIVE_ENTRY}" dependency "lodash": no matching module rules.\n${SUGGEST_BUNDLE}`
  );
  // Bare Node built-in names get a longer hint; "node:" names don't (Miniflare
  // 2 checks builtinModules, which has no "node:" entries)
  await assertRejectsMiniflare(
    runModule('import fs from "fs";'),
    VMScriptRunnerError,
    "ERR_MODULE_RULE",
    `Unable to resolve "${RELATIVE_ENTRY}" dependency "fs": no matching module rules.\n` +
      "If you're trying to import a Node.js built-in module, or an npm package that uses Node.js built-ins, you'll either need to:\n" +
      "- Bundle your Worker, configuring your bundler to polyfill Node.js built-ins\n" +
      "- Configure your bundler to load Workers-compatible builds by changing the main fields/conditions\n" +
      "- Find an alternative package that doesn't require Node.js built-ins"
  );
  await assertRejectsMiniflare(
    runModule('import fs from "node:fs";'),
    VMScriptRunnerError,
    "ERR_MODULE_RULE",
    `Unable to resolve "${RELATIVE_ENTRY}" dependency "node:fs": no matching module rules.\n${SUGGEST_BUNDLE}`
  );
  // ...from require() too, where the error names the requiring file
  await assertRejectsMiniflare(
    runModule('import "./cjs/requires-unmatched.cjs";'),
    VMScriptRunnerError,
    "ERR_MODULE_RULE",
    `Unable to resolve "${path.relative("", fixture("cjs/requires-unmatched.cjs"))}" dependency "../text.txt": no matching module rules.\n${SUGGEST_BUNDLE}`
  );
});

test("VMScriptRunner: run: throws on unsupported module rule types", async () => {
  const rules = [{ type: "PythonModule" as any, include: ["**/*.txt"] }];
  await assertRejectsMiniflare(
    runModule('import "./text.txt";', { rules }),
    VMScriptRunnerError,
    "ERR_MODULE_UNSUPPORTED",
    `Unable to resolve "${RELATIVE_ENTRY}" dependency "./text.txt": PythonModule modules are unsupported`
  );
});

test("VMScriptRunner: run: string scripts can't import", async () => {
  const run = (code: string) =>
    new VMScriptRunner().run(
      {},
      { filePath: STRING_SCRIPT_PATH, code },
      processRules(),
      { "node:buffer": { Buffer } }
    );
  const message = (specifier: string) =>
    `Unable to resolve "${STRING_SCRIPT_PATH}" dependency "${specifier}": imports unsupported with string script`;
  await assertRejectsMiniflare(
    run('import "./add.mjs";'),
    VMScriptRunnerError,
    "ERR_MODULE_STRING_SCRIPT",
    message("./add.mjs")
  );
  // Even additional modules, as in Miniflare 2
  await assertRejectsMiniflare(
    run('import { Buffer } from "node:buffer";'),
    VMScriptRunnerError,
    "ERR_MODULE_STRING_SCRIPT",
    message("node:buffer")
  );
  await assertRejectsMiniflare(
    run('await import("./add.mjs");'),
    VMScriptRunnerError,
    "ERR_MODULE_STRING_SCRIPT",
    message("./add.mjs")
  );
});
