// Fixtures the seeds describe, shared by the tests that run their examples
import type { TestContext } from "node:test";
import { useTmp, writeFiles } from "./tmp.js";

/**
 * The seed's tree: `api` a service worker found through package.json's
 * `main`, `site` a modules worker found through `module`, whose `dev`
 * environment gives it a route
 */
export async function seedMountsTree(t: TestContext, rootWranglerToml = ""): Promise<string> {
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

