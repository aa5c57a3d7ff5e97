import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parseArgv } from "../../../src/cli/args.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { readWranglerConfig } from "../../../src/core/wrangler.js";
import { PLUGINS } from "../../../src/plugins.js";
import { KVNamespace } from "../../../src/plugins/kv/namespace.js";
import { KVPlugin, type KVOptions } from "../../../src/plugins/kv/plugin.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { IN_REQUEST_ERROR_MESSAGE, RequestContext } from "../../../src/shared/context.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, OptionType, type PluginContext } from "../../../src/shared/plugin.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { namespaceDirectory, PluginStorageFactory, VariedStorageFactory } from "../../../src/storage/factory.js";
import { LOCK_FILE_NAME } from "../../../src/storage/lock.js";
import { TestLog } from "../../helpers/log.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";
import { HostRegistry } from "../../../src/shared/registry.js";

function pluginContext(rootPath: string, extra: Partial<PluginContext> = {}): PluginContext {
  return { log: new TestLog(), compat: new Compatibility(), rootPath, registry: new HostRegistry(), ...extra };
}

/** A storage factory as Miniflare gives KVPlugin, disposed after the test */
function useStorageFactory(t: TestContext): PluginStorageFactory {
  const inner = new VariedStorageFactory();
  t.after(() => inner.dispose());
  return new PluginStorageFactory(inner, "KVPlugin");
}

async function bindings(plugin: KVPlugin, factory: PluginStorageFactory): Promise<Record<string, KVNamespace>> {
  const result = await plugin.setup(factory);
  return result.bindings as Record<string, KVNamespace>;
}

const entries = getPluginEntries({ KVPlugin });
function fromWrangler(config: WranglerConfig, overrides: KVOptions = {}) {
  return splitWranglerConfig(entries, splitPluginOptions(entries, overrides), config, "/project", new TestLog()).KVPlugin;
}

/** Recursively lists the files under `dir`, relative to it */
async function filesUnder(dir: string): Promise<string[]> {
  const found = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return found
    .filter((dirent) => dirent.isFile())
    .map((dirent) => path.relative(dir, path.join(dirent.parentPath, dirent.name)))
    .sort();
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("KVPlugin: declares exactly kvNamespaces and kvPersist", () => {
  const opts = KVPlugin.prototype.opts!;
  assert.deepEqual([...opts.keys()], ["kvNamespaces", "kvPersist"]);
  const kv = opts.get("kvNamespaces")!;
  assert.equal(kv.type, OptionType.ARRAY);
  assert.equal(kv.name, "kv");
  assert.equal(kv.alias, "k");
  assert.equal(opts.get("kvPersist")!.type, OptionType.BOOLEAN_STRING);
});

test("KVPlugin: parses options from the command line", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--kv", "A", "--kv", "B", "-k", "C"]), { kvNamespaces: ["A", "B", "C"] });
  assert.deepEqual(parseArgv(PLUGINS, ["-k", "ONLY"]), { kvNamespaces: ["ONLY"] });
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist"]), { kvPersist: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist", "./data"]), { kvPersist: "./data" });
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist=./data"]), { kvPersist: "./data" });
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist", "redis://localhost:6379"]), {
    kvPersist: "redis://localhost:6379",
  });
  // Unlike Miniflare 2, a script after a bare --kv-persist is the script,
  // not the persistence directory (src/cli/args.ts, takesValue())
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist", "worker.js"]), { kvPersist: true, scriptPath: "worker.js" });
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist", "./data", "worker.js", "--kv", "NS"]), {
    kvPersist: "./data",
    scriptPath: "worker.js",
    kvNamespaces: ["NS"],
  });
  // ...unless given with "="
  assert.deepEqual(parseArgv(PLUGINS, ["--kv-persist=worker.js"]), { kvPersist: "worker.js" });
});

test("KVPlugin: parses options from wrangler config", () => {
  assert.deepEqual(
    fromWrangler({
      kv_namespaces: [
        { binding: "TEST_NAMESPACE1", id: "<ignored>", preview_id: "<ignored>" },
        { binding: "TEST_NAMESPACE2", id: "<ignored>", preview_id: "<ignored>" },
      ],
      miniflare: { kv_persist: "./data" },
    }),
    { kvNamespaces: ["TEST_NAMESPACE1", "TEST_NAMESPACE2"], kvPersist: "./data" }
  );
  assert.deepEqual(fromWrangler({ miniflare: { kv_persist: true } }), { kvPersist: true });
  assert.deepEqual(fromWrangler({ kv_namespaces: [] }), { kvNamespaces: [] });
  assert.deepEqual(fromWrangler({}), {});
  // API/CLI options win, key by key
  assert.deepEqual(
    fromWrangler(
      { kv_namespaces: [{ binding: "WRANGLER" }], miniflare: { kv_persist: "./data" } },
      { kvNamespaces: ["API"] }
    ),
    { kvNamespaces: ["API"], kvPersist: "./data" }
  );
});

test("KVPlugin: reads kv_namespaces from a wrangler.toml file", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `kv_namespaces = [
  { binding = "TEST_NAMESPACE1", id = "<ignored>", preview_id = "<ignored>" },
  { binding = "TEST_NAMESPACE2", id = "<ignored>", preview_id = "<ignored>" }
]
[miniflare]
kv_persist = true
`,
  });
  const config = await readWranglerConfig(path.join(tmp, "wrangler.toml"));
  assert.deepEqual(fromWrangler(config), {
    kvNamespaces: ["TEST_NAMESPACE1", "TEST_NAMESPACE2"],
    kvPersist: true,
  });
});

test("KVPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, { KVPlugin: { kvNamespaces: ["NS1", "NS2"], kvPersist: true } });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), [
    "Options:",
    "- KV Namespaces: NS1, NS2",
    "- KV Persistence: true",
  ]);
  log.clear();
  logOptions(entries, log, { KVPlugin: { kvPersist: "./data" } });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), ["Options:", "- KV Persistence: ./data"]);
});

// ---------------------------------------------------------------------------
// setup()
// ---------------------------------------------------------------------------

test("KVPlugin: setup: binds a KVNamespace per name", async (t) => {
  const factory = useStorageFactory(t);
  const plugin = new KVPlugin(pluginContext(process.cwd(), { globalAsyncIO: true }), {
    kvNamespaces: ["NS1", "NS2"],
  });
  const result = await bindings(plugin, factory);
  assert.deepEqual(Object.keys(result), ["NS1", "NS2"]);
  assert.ok(result.NS1 instanceof KVNamespace);
  assert.ok(result.NS2 instanceof KVNamespace);

  // Each name is its own namespace
  await result.NS1.put("key", "one");
  assert.equal(await result.NS1.get("key"), "one");
  assert.equal(await result.NS2.get("key"), null);

  // The same name on the same storage is the same data (as across reloads)
  const again = await bindings(plugin, factory);
  assert.notEqual(again.NS1, result.NS1);
  assert.equal(await again.NS1.get("key"), "one");
  // ...as is getNamespace()
  assert.equal(await plugin.getNamespace(factory, "NS1").get("key"), "one");
});

test("KVPlugin: setup: no namespaces, no bindings", async (t) => {
  const factory = useStorageFactory(t);
  assert.deepEqual(await bindings(new KVPlugin(pluginContext(process.cwd())), factory), {});
  assert.deepEqual(await bindings(new KVPlugin(pluginContext(process.cwd()), { kvNamespaces: [] }), factory), {});
});

test("KVPlugin: setup: bindings only work inside requests unless globalAsyncIO", async (t) => {
  const factory = useStorageFactory(t);
  const gated = await bindings(new KVPlugin(pluginContext(process.cwd()), { kvNamespaces: ["NS"] }), factory);
  await assert.rejects(gated.NS.get("key"), { name: "Error", message: IN_REQUEST_ERROR_MESSAGE });
  await assert.rejects(gated.NS.put("key", "value"), { name: "Error", message: IN_REQUEST_ERROR_MESSAGE });
  await new RequestContext().runWith(() => gated.NS.put("key", "value"));

  const open = await bindings(
    new KVPlugin(pluginContext(process.cwd(), { globalAsyncIO: true }), { kvNamespaces: ["NS"] }),
    factory
  );
  assert.equal(await open.NS.get("key"), "value");

  // getNamespace() is never gated unless asked
  const plugin = new KVPlugin(pluginContext(process.cwd()), { kvNamespaces: ["NS"] });
  assert.equal(await plugin.getNamespace(factory, "NS").get("key"), "value");
  await assert.rejects(plugin.getNamespace(factory, "NS", true).get("key"), { message: IN_REQUEST_ERROR_MESSAGE });
});

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

test("KVPlugin: persist: relative path is resolved against rootPath", async (t) => {
  const tmp = await useTmp(t);
  const plugin = new KVPlugin(pluginContext(tmp, { globalAsyncIO: true }), {
    kvNamespaces: ["NS"],
    kvPersist: "data",
  });
  const ns = (await bindings(plugin, useStorageFactory(t))).NS;
  await ns.put("key", "value", { metadata: { m: 1 } });

  // The namespace's directory inside <rootPath>/data/mfs1 (named as a key
  // would be: see namespaceDirectory() in src/storage/factory.ts)
  const data = path.join(tmp, "data");
  // (and the lock file of the process using it)
  assert.deepEqual((await fs.readdir(data)).sort(), [LOCK_FILE_NAME, "mfs1"]);
  assert.equal(namespaceDirectory(path.join(data, "mfs1"), "NS"), path.join(data, "mfs1", "NS"));
  assert.deepEqual(await filesUnder(data), [LOCK_FILE_NAME, path.join("mfs1", "NS", "key")]);

  // A new plugin and storage factory see the data
  const fresh = new KVPlugin(pluginContext(tmp), { kvPersist: "data" });
  assert.deepEqual(await fresh.getNamespace(useStorageFactory(t), "NS").getWithMetadata("key"), {
    value: "value",
    metadata: { m: 1 },
  });
  // ...but not one persisting in memory
  const memory = new KVPlugin(pluginContext(tmp));
  assert.equal(await memory.getNamespace(useStorageFactory(t), "NS").get("key"), null);
});

test("KVPlugin: persist: absolute path is used as is", async (t) => {
  const tmp = await useTmp(t);
  const root = await useTmp(t);
  const plugin = new KVPlugin(pluginContext(root), { kvPersist: tmp });
  await plugin.getNamespace(useStorageFactory(t), "NS").put("key", "value");
  assert.deepEqual(await filesUnder(tmp), [LOCK_FILE_NAME, path.join("mfs1", "NS", "key")]);
  assert.deepEqual(await fs.readdir(root), []);
});

test("KVPlugin: persist: separate namespaces get separate directories", async (t) => {
  const tmp = await useTmp(t);
  const factory = useStorageFactory(t);
  const plugin = new KVPlugin(pluginContext(tmp), { kvPersist: tmp });
  await plugin.getNamespace(factory, "NS1").put("key", "one");
  await plugin.getNamespace(factory, "NS2").put("key", "two");
  assert.deepEqual(await fs.readdir(path.join(tmp, "mfs1")).then((dirs) => dirs.sort()), ["NS1", "NS2"]);
  assert.equal(await plugin.getNamespace(factory, "NS1").get("key"), "one");
  assert.equal(await plugin.getNamespace(factory, "NS2").get("key"), "two");
});

test("KVPlugin: persist: true uses .mf/kv in the process's working directory", async (t) => {
  const cwd = await useTmp(t);
  const root = await useTmp(t);
  const previous = process.cwd();
  process.chdir(cwd);
  t.after(() => process.chdir(previous));

  // rootPath is not used for `true`
  const plugin = new KVPlugin(pluginContext(root), { kvNamespaces: ["NS"], kvPersist: true });
  await plugin.getNamespace(useStorageFactory(t), "NS").put("key", "value");
  assert.deepEqual(await filesUnder(cwd), [path.join(".mf", "kv", LOCK_FILE_NAME), path.join(".mf", "kv", "mfs1", "NS", "key")]);
  assert.deepEqual(await fs.readdir(root), []);

  const fresh = new KVPlugin(pluginContext(root), { kvPersist: true });
  assert.equal(await fresh.getNamespace(useStorageFactory(t), "NS").get("key"), "value");
});

test("KVPlugin: persist: false keeps data in memory", async (t) => {
  const cwd = await useTmp(t);
  const previous = process.cwd();
  process.chdir(cwd);
  t.after(() => process.chdir(previous));

  const factory = useStorageFactory(t);
  const plugin = new KVPlugin(pluginContext(cwd), { kvPersist: false });
  await plugin.getNamespace(factory, "NS").put("key", "value");
  assert.equal(await plugin.getNamespace(factory, "NS").get("key"), "value");
  assert.deepEqual(await fs.readdir(cwd), []);
  // Another storage factory (another Miniflare instance) doesn't see it
  assert.equal(await plugin.getNamespace(useStorageFactory(t), "NS").get("key"), null);
});
