import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { transformSync } from "esbuild";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

// TypeScript source whose throw is on line 5, compiled with a source map to
// JavaScript where it is on another line
const source = `// A built worker
interface Env { NAME: string }

export function boom(env: Env): never {
  throw new Error("boom from " + env.NAME);
}
`;

test("Miniflare: sourceMap: maps stack traces of built workers back to their sources", async (t) => {
  const tmp = await useTmp(t);
  const built = transformSync(source, {
    loader: "ts",
    format: "esm",
    sourcemap: "inline",
    sourcefile: path.join(tmp, "src", "boom.ts"),
  });
  assert.doesNotMatch(built.code.split("\n")[4] ?? "", /throw/); // lines moved
  await writeFiles(tmp, {
    "dist/boom.mjs": built.code,
    "dist/worker.mjs": 'import { boom } from "./boom.mjs";\nexport default { fetch: (req, env) => boom(env) };\n',
  });
  const mf = useMiniflare(t, {
    modules: true,
    sourceMap: true,
    scriptPath: path.join(tmp, "dist", "worker.mjs"),
    bindings: { NAME: "test" },
  });
  const error = await mf.dispatchFetch("http://localhost/").then(
    () => assert.fail("expected dispatchFetch to reject"),
    (e) => e
  );
  assert.equal(error.message, "boom from test");
  assert.match(error.stack, /src[/\\]boom\.ts:5:\d+/);
  assert.match(error.stack, /dist[/\\]worker\.mjs:2:\d+/);
});
