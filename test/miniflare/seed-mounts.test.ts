// The "Mounting Workers" example of the multiple-workers seed, verbatim: the
// same folder tree, mounted through wrangler.toml and through the API.
import assert from "node:assert/strict";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

/**
 * The seed's tree: `api` a service worker found through package.json's
 * `main`, `site` a modules worker found through `module`, whose `dev`
 * environment gives it a route
 */
async function seedTree(t: TestContext, rootWranglerToml = ""): Promise<string> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "api/api-worker.js": `addEventListener("fetch", (event) => event.respondWith(new Response("api " + new URL(event.request.url).pathname)));`,
    "api/package.json": JSON.stringify({ main: "./api-worker.js" }),
    "api/wrangler.toml": `name = "api"\n[miniflare]\nroutes = ["api.mf/*"]\n`,
    "site/package.json": JSON.stringify({ module: "./site-worker.mjs" }),
    "site/site-worker.mjs": `export default { fetch: (request, env) => new Response("site " + env.STAGE + " " + new URL(request.url).pathname) }`,
    "site/wrangler.toml": `
      name = "site"
      [build.upload]
      format = "modules"
      [vars]
      STAGE = "production"
      [env.dev]
      route = "site.mf/*"
      [env.dev.vars]
      STAGE = "dev"
    `,
    "package.json": JSON.stringify({ main: "./worker.js" }),
    "worker.js": `addEventListener("fetch", (event) => event.respondWith(new Response("parent")));`,
    "wrangler.toml": rootWranglerToml,
  });
  return tmp;
}

async function expectSeedRouting(mf: { dispatchFetch(url: string): Promise<{ text(): Promise<string> }> }) {
  const text = async (url: string) => (await mf.dispatchFetch(url)).text();
  assert.equal(await text("http://api.mf/todos/update/1"), "api /todos/update/1");
  // "site" uses its dev environment: its route and its variables
  assert.equal(await text("http://site.mf/index.html"), "site dev /index.html");
  assert.equal(await text("http://localhost/"), "parent");
}

test("Seed: multiple workers: [miniflare.mounts] in wrangler.toml, paths relative to its folder", async (t) => {
  const tmp = await seedTree(t, `[miniflare.mounts]\napi = "./api"\nsite = "./site@dev"\n`);
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true, packagePath: true });
  await expectSeedRouting(mf);
});

test("Seed: multiple workers: the API form, a string mount and an options object", async (t) => {
  const tmp = await seedTree(t);
  // The seed's relative paths are the process's, as in Miniflare 2
  const cwd = process.cwd();
  process.chdir(tmp);
  t.after(() => process.chdir(cwd));
  const mf = useMiniflare(t, {
    scriptPath: "worker.js",
    mounts: {
      api: "./api",
      site: {
        rootPath: "./site",
        wranglerConfigPath: true,
        wranglerConfigEnv: "dev",
        packagePath: true,
        envPath: true,
      },
    },
  });
  await expectSeedRouting(mf);
  const api = await mf.getMount("api");
  assert.equal(await (await api!.dispatchFetch("http://anything/direct")).text(), "api /direct");
});
