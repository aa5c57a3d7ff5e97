// The "Mounting Workers" example of the multiple-workers seed, verbatim: the
// same folder tree, mounted through wrangler.toml and through the API.
import assert from "node:assert/strict";
import { test } from "node:test";
import { useMiniflare } from "../helpers/miniflare.js";
import { seedMountsTree } from "../helpers/seeds.js";

async function expectSeedRouting(mf: { dispatchFetch(url: string): Promise<{ text(): Promise<string> }> }) {
  const text = async (url: string) => (await mf.dispatchFetch(url)).text();
  assert.equal(await text("http://api.mf/todos/update/1"), "api /todos/update/1");
  // "site" uses its dev environment: its route and its variables
  assert.equal(await text("http://site.mf/index.html"), "site dev /index.html");
  assert.equal(await text("http://localhost/"), "parent");
}

test("Seed: multiple workers: [miniflare.mounts] in wrangler.toml, paths relative to its folder", async (t) => {
  const tmp = await seedMountsTree(t, `[miniflare.mounts]\napi = "./api"\nsite = "./site@dev"\n`);
  const mf = useMiniflare(t, { rootPath: tmp, wranglerConfigPath: true, packagePath: true });
  await expectSeedRouting(mf);
});

test("Seed: multiple workers: the API form, a string mount and an options object", async (t) => {
  const tmp = await seedMountsTree(t);
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
