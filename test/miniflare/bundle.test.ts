// The published bundle (dist/bundle, what bin/miniflare.js and importers
// load) must behave as the compiled sources the other tests use. Bundling
// renames clashing classes (Response to _Response, ...), and workers can
// see a class's name. The bundle also carries the libraries that aren't
// dependencies (scripts/build.mjs): each is exercised here from there.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import type http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { pathToFileURL } from "node:url";
import { transformSync } from "esbuild";
import type { Miniflare as MiniflareClass, MiniflareOptions } from "../../src/index.js";
import { rootPath } from "../helpers/fixtures.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const bundle = pathToFileURL(path.join(rootPath, "dist", "bundle", "index.js")).href;

/** A Miniflare from the bundle, disposed after the test */
async function useBundled(t: TestContext, options: MiniflareOptions): Promise<MiniflareClass> {
  const { Miniflare } = (await import(bundle)) as typeof import("../../src/index.js");
  const mf = new Miniflare(options);
  t.after(() => mf.dispose());
  return mf;
}

/** The bundle's HTTP(S) server for `mf` on a free loopback port, closed after the test */
async function listen(t: TestContext, mf: MiniflareClass): Promise<number> {
  const server: http.Server = await mf.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

test("bundle: every global class and binding object in a worker has its own name", async (t) => {
  const { Miniflare } = await import(bundle);
  const mf = new Miniflare({
    modules: true,
    compatibilityDate: "2022-11-30",
    durableObjects: { NS: "O" },
    kvNamespaces: ["KV"],
    script: `
      export class O {}
      export default {
        fetch(request, env, ctx) {
          const renamed = [];
          for (const key of Object.getOwnPropertyNames(globalThis)) {
            const value = globalThis[key];
            if (typeof value === "function" && /^[A-Z]/.test(key) && value.name !== key) {
              renamed.push(key + " is " + value.name);
            }
          }
          const id = env.NS.idFromName("a");
          const objects = [id, ctx, env.NS.get(id), env.NS, env.KV, request, new Response(), new Headers()];
          return Response.json({ renamed, names: objects.map((o) => o.constructor.name) });
        },
      };`,
  });
  t.after(() => mf.dispose());
  const result = await (await mf.dispatchFetch("http://localhost/")).json();
  assert.deepEqual(result.renamed, []);
  assert.deepEqual(result.names, [
    "DurableObjectId",
    "ExecutionContext",
    "DurableObjectStub",
    "DurableObjectNamespace",
    "KVNamespace",
    "Request",
    "Response",
    "Headers",
  ]);
  // The host side too
  const exported = await import(bundle);
  for (const name of ["Miniflare", "Request", "Response", "MiniflareError", "DurableObjectId", "KVNamespace", "WebSocket"]) {
    assert.equal(exported[name].name, name);
  }
});

test("bundle: error pages are Youch's, with its styles read from the bundle's own copy", async (t) => {
  const mf = await useBundled(t, {
    script: `addEventListener("fetch", () => { throw new Error("page from the bundle"); });`,
  });
  const port = await listen(t, mf);
  const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { Accept: "text/html" } });
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("Content-Type"), "text/html; charset=UTF-8");
  const page = await res.text();
  assert.match(page, /page from the bundle/);
  const css = await fs.readFile(path.join(rootPath, "dist", "bundle", "public", "layout", "style.css"), "utf8");
  assert(page.includes(css.trim().split("\n").slice(0, 5).join("\n")), "the layout's styles are inlined");
});

test("bundle: --https generates a certificate that a TLS client accepts", async (t) => {
  const tmp = await useTmp(t);
  const certDir = path.join(tmp, "cert");
  const mf = await useBundled(t, {
    https: certDir,
    script: `addEventListener("fetch", (e) => e.respondWith(new Response("over TLS")));`,
  });
  const port = await listen(t, mf);
  const ca = await fs.readFile(path.join(certDir, "cert.pem"), "utf8");
  const text = await new Promise<string>((resolve, reject) => {
    https
      .get(`https://127.0.0.1:${port}/`, { ca, servername: "localhost", agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
  assert.equal(text, "over TLS");
});

test("bundle: wrangler.toml, .env, glob module rules and URLPattern", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `[vars]\nFROM_TOML = "toml"\n`,
    ".env": "FROM_DOTENV=dotenv\n",
    "notes.md": "text module",
    "worker.mjs": `import notes from "./notes.md";
export default {
  fetch(request, env) {
    const match = new URLPattern({ pathname: "/items/:id" }).exec(request.url);
    return Response.json({ toml: env.FROM_TOML, dotenv: env.FROM_DOTENV, notes, id: match?.pathname.groups.id });
  },
};`,
  });
  const mf = await useBundled(t, {
    modules: true,
    scriptPath: path.join(tmp, "worker.mjs"),
    wranglerConfigPath: path.join(tmp, "wrangler.toml"),
    envPath: path.join(tmp, ".env"),
    // Braces need the glob engine (plain "**/*.ext" globs don't)
    modulesRules: [{ type: "Text", include: ["**/*.{md,txt}"] }],
  });
  const res = await mf.dispatchFetch("http://localhost/items/42");
  assert.deepEqual(await res.json(), { toml: "toml", dotenv: "dotenv", notes: "text module", id: "42" });
});

test("bundle: sourceMap maps worker stacks back to their sources", async (t) => {
  const tmp = await useTmp(t);
  const built = transformSync('export function boom(): never {\n  // moved\n  throw new Error("mapped");\n}\n', {
    loader: "ts",
    format: "esm",
    sourcemap: "inline",
    sourcefile: path.join(tmp, "src", "boom.ts"),
  });
  await writeFiles(tmp, {
    "dist/boom.mjs": built.code,
    "dist/worker.mjs": 'import { boom } from "./boom.mjs";\nexport default { fetch: () => boom() };\n',
  });
  const mf = await useBundled(t, { modules: true, sourceMap: true, scriptPath: path.join(tmp, "dist", "worker.mjs") });
  const error = await mf.dispatchFetch("http://localhost/").then(
    () => assert.fail("expected dispatchFetch to reject"),
    (e) => e
  );
  assert.match(error.stack, /src[/\\]boom\.ts:3:\d+/);
});
