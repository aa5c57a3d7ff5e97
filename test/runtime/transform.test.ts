import assert from "node:assert/strict";
import { test } from "node:test";
import { transformModule } from "../../src/runtime/transform.js";

const LINE_TERMINATOR = /\r\n?|\n|\u2028|\u2029/;

/** The transformed body, without the wrapper's first and last lines */
function body(code: string): string[] {
  const lines = transformModule(code, "/file.mjs").code.split(LINE_TERMINATOR);
  return lines.slice(1, -1);
}

test("transformModule: keeps every line in place", () => {
  const code = [
    "#!/usr/bin/env node",
    'import {',
    '  a,',
    '  b as c,',
    '} from "./a.mjs";',
    "export const x = a;",
    "export default {",
    "  c,",
    "};",
    'export { x as y };\r\nexport * from "./b.mjs";',
    "const f = () => import.meta.url + import(\n'./c.mjs');",
  ].join("\n");
  const lines = body(code);
  assert.equal(lines.length, code.split(LINE_TERMINATOR).length);
  assert.equal(lines[0], "///usr/bin/env node");
  // Blanked statements leave a ";" in case ASI ended the previous statement
  assert.equal(lines[1], ";       ");
  assert.equal(lines[5], "       const x = __mf_imports__.a;");
  assert.equal(lines[7], "  c: __mf_imports__.c,");
  // (line 10 holds two lines: "\r\n" is one terminator)
  assert.equal(lines[11], "const f = () => __mf_runtime__.meta.url + __mf_runtime__.import(");
});

test("transformModule: records requests and bindings", () => {
  const result = transformModule(
    `import a, * as ns from "./a.mjs";
     import { "string name" as b } from "./b.mjs";
     export { c, d as "e f" } from "./c.mjs";
     export * from "./d.mjs";
     export * as all from "./a.mjs";
     export { a, ns, local as renamed };
     export default 1;
     const local = 1;`,
    "/file.mjs"
  );
  assert.deepEqual(result.requests, ["./a.mjs", "./b.mjs", "./c.mjs", "./d.mjs"]);
  assert.deepEqual([...result.imports], [
    ["a", { specifier: "./a.mjs", name: "default" }],
    ["ns", { specifier: "./a.mjs", name: null }],
    ["b", { specifier: "./b.mjs", name: "string name" }],
  ]);
  assert.deepEqual([...result.indirectExports], [
    ["c", { specifier: "./c.mjs", name: "c" }],
    ["e f", { specifier: "./c.mjs", name: "d" }],
    ["all", { specifier: "./a.mjs", name: null }],
    // Re-exported imports export the original binding
    ["a", { specifier: "./a.mjs", name: "default" }],
  ]);
  assert.deepEqual(result.starExports, ["./d.mjs"]);
  assert.deepEqual([...result.localExports], [
    ["default", "__mf_default__"],
    ["ns", "ns"],
    ["renamed", "local"],
  ]);
});

test("transformModule: throws syntax errors with the file and position", () => {
  assert.throws(() => transformModule("let a = 1;\nlet a = 2;", "/dir/file.mjs"), (e: any) => {
    assert.ok(e instanceof SyntaxError);
    assert.equal(e.message, "Identifier 'a' has already been declared (/dir/file.mjs:2:5)");
    assert.match(e.stack!, /^\/dir\/file\.mjs:2\nlet a = 2;\n {4}\^\n/);
    return true;
  });
  // Module-only rules apply: strict mode, no HTML comments, no top-level return
  for (const code of ["with (a) {}", "return;", "<!-- comment"]) {
    assert.throws(() => transformModule(code, "/file.mjs"), SyntaxError, code);
  }
});
