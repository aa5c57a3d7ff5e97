import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { readWranglerConfig, unknownMiniflareKeys } from "../../src/core/wrangler.js";
import type { WranglerConfig } from "../../src/shared/wrangler.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

async function parse(text: string): Promise<WranglerConfig> {
  const { default: toml } = await import("@iarna/toml");
  return toml.parse(text) as WranglerConfig;
}

// Every key Miniflare 2.14.4 reads in [miniflare], with a value of its type
const EVERY_KNOWN_KEY = `
[miniflare]
upstream = "https://example.com"
watch = true
build_watch_dirs = ["src"]
kv_persist = true
d1_persist = "d1"
r2_persist = "r2"
cache = true
cache_persist = true
durable_objects_persist = "do"
durable_objects_alarms = false
env_path = ".env.local"
host = "127.0.0.1"
port = 8788
open = true
cf_fetch = false
live_reload = true
update_check = false
route = "example.com/*"
routes = ["example.com/a/*"]
global_async_io = true
global_timers = true
global_random = true
actual_time = true
inaccurate_cpu = true
[miniflare.globals]
ANY_NAME = 1
[miniflare.mounts]
any-name = "./api"
[miniflare.https]
key = "key.pem"
cert = "cert.pem"
ca = "ca.pem"
pfx = "cert.pfx"
passphrase = "secret"
`;

test("unknownMiniflareKeys: none among the keys Miniflare 2 reads", async () => {
  assert.deepEqual(unknownMiniflareKeys(await parse(EVERY_KNOWN_KEY)), []);
  assert.deepEqual(unknownMiniflareKeys(await parse(`[miniflare]\nhttps = "./certs"`)), []);
  assert.deepEqual(unknownMiniflareKeys(await parse(`name = "worker"\n[vars]\nanything = 1`)), []);
});

test("unknownMiniflareKeys: names each unknown key, its table, and a likely meant one", async () => {
  const config = await parse(`
    [miniflare]
    kv_persists = true
    kvPersist = true
    durable-objects-persist = true
    something_else = 1
    [miniflare.https]
    keyy = "key.pem"
    [miniflare.extra]
    a = 1
  `);
  assert.deepEqual(unknownMiniflareKeys(config), [
    { table: "[miniflare]", key: "kv_persists", suggestion: "kv_persist" },
    { table: "[miniflare]", key: "kvPersist", suggestion: "kv_persist" },
    { table: "[miniflare]", key: "durable-objects-persist", suggestion: "durable_objects_persist" },
    { table: "[miniflare]", key: "something_else", suggestion: undefined },
    { table: "[miniflare]", key: "extra", suggestion: undefined },
    { table: "[miniflare.https]", key: "keyy", suggestion: "key" },
  ]);
});

test("unknownMiniflareKeys: reads the [miniflare] table in effect for the environment", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
      [miniflare]
      top_typo = 1
      [env.staging.miniflare]
      staging_typo = 2
    `,
  });
  const file = path.join(tmp, "wrangler.toml");
  assert.deepEqual(unknownMiniflareKeys(await readWranglerConfig(file)).map(({ key }) => key), ["top_typo"]);
  assert.deepEqual(unknownMiniflareKeys(await readWranglerConfig(file, "staging")).map(({ key }) => key), ["staging_typo"]);
});
