// DurableObjectsPlugin: options (API, CLI, wrangler), setup/reload errors,
// persistence and alarms, driven directly with classes from this realm
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parseArgv } from "../../../src/cli/args.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { readWranglerConfig } from "../../../src/core/wrangler.js";
import { PLUGINS } from "../../../src/plugins.js";
import {
  DurableObjectError,
  DurableObjectNamespace,
  type DurableObjectState,
  DurableObjectsPlugin,
  type DurableObjectsOptions,
} from "../../../src/plugins/durable-objects/index.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { getRequestContext, RequestContext } from "../../../src/shared/context.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, type MiniflareCoreMount, OptionType, type PluginContext } from "../../../src/shared/plugin.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { Response } from "../../../src/standards/http.js";
import { PluginStorageFactory, VariedStorageFactory } from "../../../src/storage/factory.js";
import { TestClock } from "../../helpers/clock.js";
import { assertRejectsMiniflare } from "../../helpers/errors.js";
import { TestLog } from "../../helpers/log.js";
import { startRedisServer } from "../../helpers/redis.js";
import { deferred, flushTurns } from "../../helpers/sync.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";
import { HostRegistry } from "../../../src/shared/registry.js";

const entries = getPluginEntries({ DurableObjectsPlugin });
function fromWrangler(config: WranglerConfig, overrides: DurableObjectsOptions = {}, configDir = "/project") {
  return splitWranglerConfig(entries, splitPluginOptions(entries, overrides), config, configDir, new TestLog())
    .DurableObjectsPlugin;
}

type ObjectClass = new (state: DurableObjectState, env: any) => any;

interface Started {
  plugin: DurableObjectsPlugin;
  factory: PluginStorageFactory;
  env: Record<string, DurableObjectNamespace>;
  log: TestLog;
  /** Disposes the plugin and its storage (as Miniflare#dispose() would) */
  stop(): Promise<void>;
}

/**
 * Constructs, sets up and reloads a DurableObjectsPlugin as Miniflare would,
 * with `exports` as the entry module's exports. Stopped after the test at
 * the latest. Alarms fire by `clock` (a fresh one if not given): only when a
 * test moves it on.
 */
async function startPlugin(
  t: TestContext,
  options: DurableObjectsOptions,
  exports: Record<string, unknown>,
  { rootPath = process.cwd(), mounts = new Map<string, MiniflareCoreMount>(), clock = new TestClock() } = {}
): Promise<Started> {
  const log = new TestLog();
  const ctx: PluginContext = {
    log,
    compat: new Compatibility(),
    rootPath,
    registry: new HostRegistry(),
    clock: clock.clock,
    timers: clock.timers,
  };
  const plugin = new DurableObjectsPlugin(ctx, options);
  const inner = new VariedStorageFactory();
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      plugin.dispose();
      await inner.dispose();
    })());
  t.after(stop);
  const result = await plugin.setup(factory);
  const env = result.bindings as Record<string, DurableObjectNamespace>;
  plugin.beforeReload();
  await plugin.reload(env, exports, mounts);
  return { plugin, factory, env, log, stop };
}

async function filesUnder(dir: string): Promise<string[]> {
  const found = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return found
    .filter((dirent) => dirent.isFile())
    .map((dirent) => path.relative(dir, path.join(dirent.parentPath, dirent.name)))
    .sort();
}

/** A class storing the request body under "key" on PUT, answering the stored value */
class KeyValueObject {
  constructor(readonly state: DurableObjectState) {}
  async fetch(request: Request) {
    if (request.method === "PUT") await this.state.storage.put("key", await request.text());
    return new Response(String(await this.state.storage.get("key")));
  }
}

/** Records each alarm() run (its time by the test's clock, and what it saw) */
interface AlarmRecord {
  clock?: TestClock;
  runs: { at: number; object: string; alarmInside: unknown; depth?: number; durableObject?: boolean }[];
}

function alarmClass(record: AlarmRecord, onAlarm?: (state: DurableObjectState) => unknown): ObjectClass {
  return class {
    constructor(readonly state: DurableObjectState) {}
    async fetch(request: Request) {
      const url = new URL(request.url);
      const at = url.searchParams.get("at");
      if (at !== null) await this.state.storage.setAlarm(Number(at));
      return new Response(String(await this.state.storage.getAlarm()));
    }
    async alarm() {
      const ctx = getRequestContext();
      record.runs.push({
        at: record.clock?.now ?? NaN,
        object: this.state.id.toString(),
        alarmInside: await this.state.storage.getAlarm(),
        depth: ctx?.requestDepth,
        durableObject: ctx?.durableObject,
      });
      await onAlarm?.(this.state);
    }
  };
}

async function text(res: Promise<Response>): Promise<string> {
  return (await res).text();
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("DurableObjectsPlugin: declares durableObjects, durableObjectsPersist and durableObjectsAlarms", () => {
  const opts = DurableObjectsPlugin.prototype.opts!;
  assert.deepEqual([...opts.keys()], ["durableObjects", "durableObjectsPersist", "durableObjectsAlarms"]);
  const objects = opts.get("durableObjects")!;
  assert.equal(objects.type, OptionType.OBJECT);
  assert.equal(objects.name, "do");
  assert.equal(objects.alias, "o");
  assert.equal(opts.get("durableObjectsPersist")!.type, OptionType.BOOLEAN_STRING);
  assert.equal(opts.get("durableObjectsPersist")!.name, "do-persist");
  assert.equal(opts.get("durableObjectsAlarms")!.type, OptionType.BOOLEAN);
  assert.equal(opts.get("durableObjectsAlarms")!.name, "do-alarms");
});

test("DurableObjectsPlugin: parses --do and -o from the command line", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--do", "OBJECT1=Object1", "--do", "OBJECT2=Object2"]), {
    durableObjects: { OBJECT1: "Object1", OBJECT2: "Object2" },
  });
  assert.deepEqual(parseArgv(PLUGINS, ["-o", "OBJECT1=Object1", "-o", "OBJECT2=Object2"]), {
    durableObjects: { OBJECT1: "Object1", OBJECT2: "Object2" },
  });
  // NAME=CLASS@MOUNT: the class comes from a mount
  assert.deepEqual(parseArgv(PLUGINS, ["--do", "OBJECT=Object@api"]), {
    durableObjects: { OBJECT: { className: "Object", scriptName: "api" } },
  });
  // The last "@" splits
  assert.deepEqual(parseArgv(PLUGINS, ["-o", "OBJECT=Obj@ect@my@mount"]), {
    durableObjects: { OBJECT: { className: "Obj@ect@my", scriptName: "mount" } },
  });
  // Mixed, with a script
  assert.deepEqual(parseArgv(PLUGINS, ["--do", "A=A", "worker.mjs", "-o", "B=B@m"]), {
    scriptPath: "worker.mjs",
    durableObjects: { A: "A", B: { className: "B", scriptName: "m" } },
  });
});

test("DurableObjectsPlugin: parses --do-persist and --(no-)do-alarms", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--do-persist"]), { durableObjectsPersist: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--do-persist", "./data/"]), { durableObjectsPersist: "./data/" });
  assert.deepEqual(parseArgv(PLUGINS, ["--do-persist=./data"]), { durableObjectsPersist: "./data" });
  assert.deepEqual(parseArgv(PLUGINS, ["--do-persist", "redis://localhost:6379"]), {
    durableObjectsPersist: "redis://localhost:6379",
  });
  assert.deepEqual(parseArgv(PLUGINS, ["--no-do-alarms"]), { durableObjectsAlarms: false });
  assert.deepEqual(parseArgv(PLUGINS, ["--do-alarms"]), { durableObjectsAlarms: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--do-persist", "--no-do-alarms", "-o", "A=B"]), {
    durableObjectsPersist: true,
    durableObjectsAlarms: false,
    durableObjects: { A: "B" },
  });
});

test("DurableObjectsPlugin: parses [durable_objects] and [miniflare] from wrangler config", () => {
  assert.deepEqual(
    fromWrangler({
      durable_objects: {
        bindings: [
          { name: "OBJECT1", class_name: "Object1" },
          { name: "OBJECT2", class_name: "Object2", script_name: "./object2.mjs" },
          { name: "OBJECT3", class_name: "Object3", script_name: "api" },
          { name: "OBJECT4", class_name: "Object4", script_name: "lib/object4.js" },
        ],
      },
      miniflare: { durable_objects_persist: "./data/", durable_objects_alarms: false },
    }),
    {
      durableObjects: {
        OBJECT1: { className: "Object1", scriptName: undefined },
        // A path is a module file relative to wrangler.toml
        OBJECT2: { className: "Object2", scriptPath: path.resolve("/project", "object2.mjs") },
        // Anything else is a mount's name
        OBJECT3: { className: "Object3", scriptName: "api" },
        OBJECT4: { className: "Object4", scriptPath: path.resolve("/project", "lib", "object4.js") },
      },
      durableObjectsPersist: "./data/",
      durableObjectsAlarms: false,
    }
  );
  assert.deepEqual(fromWrangler({ miniflare: { durable_objects_persist: true } }), { durableObjectsPersist: true });
  assert.deepEqual(fromWrangler({ miniflare: { durable_objects_alarms: true } }), { durableObjectsAlarms: true });
  assert.deepEqual(fromWrangler({ durable_objects: { bindings: [] } }), { durableObjects: {} });
  assert.deepEqual(fromWrangler({}), {});
  // API/CLI options win, key by key
  assert.deepEqual(
    fromWrangler(
      {
        durable_objects: { bindings: [{ name: "WRANGLER", class_name: "Wrangler" }] },
        miniflare: { durable_objects_persist: "./data" },
      },
      { durableObjects: { API: "Api" } }
    ),
    { durableObjects: { API: "Api" }, durableObjectsPersist: "./data" }
  );
});

test("DurableObjectsPlugin: reads a wrangler.toml file", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `[durable_objects]
bindings = [
  # Object1 class must be exported from the main script
  { name = "OBJECT1", class_name = "Object1" },
  # Object2 class must be exported from ./object2.mjs
  { name = "OBJECT2", class_name = "Object2", script_name = "./object2.mjs" },
]

[miniflare]
durable_objects_persist = true
durable_objects_alarms = false
`,
  });
  const config = await readWranglerConfig(path.join(tmp, "wrangler.toml"));
  const options = fromWrangler(config, {}, tmp);
  const objects = options.durableObjects as Record<string, any>;
  assert.equal(objects.OBJECT1.className, "Object1");
  assert.equal(objects.OBJECT1.scriptName, undefined);
  assert.equal(objects.OBJECT1.scriptPath, undefined);
  assert.deepEqual(objects.OBJECT2, { className: "Object2", scriptPath: path.join(tmp, "object2.mjs") });
  assert.equal(options.durableObjectsPersist, true);
  assert.equal(options.durableObjectsAlarms, false);
});

test("DurableObjectsPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, {
    DurableObjectsPlugin: {
      durableObjects: { OBJECT1: "Object1", OBJECT2: { className: "Object2", scriptName: "api" } },
      durableObjectsPersist: "./data",
      durableObjectsAlarms: false,
    },
  });
  const logged = log.logsAtLevel(LogLevel.DEBUG);
  assert.equal(logged[0], "Options:");
  assert.equal(logged[1], "- Durable Objects: OBJECT1, OBJECT2");
  assert.equal(logged[2], "- Durable Objects Persistence: ./data");
  assert.equal(logged[3], "- Durable Object Alarms: false");
  assert.equal(logged.length, 4);
});

test("DurableObjectsPlugin: declaring an object implies modules", () => {
  assert.equal(DurableObjectsPlugin.impliesModules({ durableObjects: { A: "A" } }), true);
  assert.equal(DurableObjectsPlugin.impliesModules({ durableObjects: { A: { className: "A", scriptName: "m" } } }), true);
  assert.equal(DurableObjectsPlugin.impliesModules({ durableObjects: {} }), false);
  assert.equal(DurableObjectsPlugin.impliesModules({}), false);
  assert.equal(DurableObjectsPlugin.impliesModules({ durableObjectsPersist: true }), false);
  assert.equal(DurableObjectsPlugin.impliesModules(undefined), false);
});

// ---------------------------------------------------------------------------
// setup() and reload()
// ---------------------------------------------------------------------------

test("DurableObjectsPlugin: setup binds a namespace per object and needs module exports", async (t) => {
  const tmp = await useTmp(t);
  const inner = new VariedStorageFactory();
  t.after(() => inner.dispose());
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  const ctx: PluginContext = { log: new TestLog(), compat: new Compatibility(), rootPath: tmp, registry: new HostRegistry() };

  const plugin = new DurableObjectsPlugin(ctx, {
    durableObjects: {
      A: "A",
      B: { className: "B", scriptName: "api" },
      C: { className: "C", scriptPath: "objects/c.mjs" },
      D: { className: "D", scriptPath: path.join(tmp, "objects", "c.mjs") },
    },
  });
  t.after(() => plugin.dispose());
  const result = await plugin.setup(factory);
  assert.deepEqual(Object.keys(result.bindings ?? {}), ["A", "B", "C", "D"]);
  for (const ns of Object.values(result.bindings ?? {})) assert.ok(ns instanceof DurableObjectNamespace);
  assert.equal(result.requiresModuleExports, true);
  // Module files (relative to rootPath) run as additional entries, once each
  assert.deepEqual(result.additionalEntries, [path.join(tmp, "objects", "c.mjs")]);

  const none = new DurableObjectsPlugin(ctx, {});
  t.after(() => none.dispose());
  const noneResult = await none.setup(factory);
  assert.deepEqual(noneResult.bindings, {});
  assert.equal(noneResult.requiresModuleExports, false);
  assert.deepEqual(noneResult.additionalEntries, []);
});

test("DurableObjectsPlugin: a class missing from the exports is ERR_CLASS_NOT_FOUND", async (t) => {
  const inner = new VariedStorageFactory();
  t.after(() => inner.dispose());
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  const ctx: PluginContext = { log: new TestLog(), compat: new Compatibility(), rootPath: process.cwd(), registry: new HostRegistry() };

  const plugin = new DurableObjectsPlugin(ctx, { durableObjects: { B: "X" } });
  t.after(() => plugin.dispose());
  await plugin.setup(factory);
  plugin.beforeReload();
  await assertRejectsMiniflare(
    (async () => plugin.reload({}, { Y: class {} }, new Map()))(),
    DurableObjectError,
    "ERR_CLASS_NOT_FOUND",
    'Class "X" for Durable Object "B" not found'
  );
  // An export that isn't a class doesn't count
  plugin.beforeReload();
  await assertRejectsMiniflare(
    (async () => plugin.reload({}, { X: "not a class" }, new Map()))(),
    DurableObjectError,
    "ERR_CLASS_NOT_FOUND",
    'Class "X" for Durable Object "B" not found'
  );

  // From a module file: the message names the file (relative to the cwd)
  const file = path.join(process.cwd(), "objects", "object2.mjs");
  const fromFile = new DurableObjectsPlugin(ctx, { durableObjects: { OBJECT2: { className: "Object2", scriptPath: file } } });
  t.after(() => fromFile.dispose());
  await fromFile.setup(factory);
  fromFile.beforeReload();
  await assertRejectsMiniflare(
    (async () => fromFile.reload({}, {}, new Map([[file, { moduleExports: { Other: class {} } }]])))(),
    DurableObjectError,
    "ERR_CLASS_NOT_FOUND",
    `Class "Object2" in script "${path.join("objects", "object2.mjs")}" for Durable Object "OBJECT2" not found`
  );
});

test("DurableObjectsPlugin: a scriptName that isn't mounted is ERR_SCRIPT_NOT_FOUND", async (t) => {
  const inner = new VariedStorageFactory();
  t.after(() => inner.dispose());
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  const ctx: PluginContext = { log: new TestLog(), compat: new Compatibility(), rootPath: process.cwd(), registry: new HostRegistry() };
  const plugin = new DurableObjectsPlugin(ctx, { durableObjects: { OBJECT: { className: "Object", scriptName: "api" } } });
  t.after(() => plugin.dispose());
  await plugin.setup(factory);
  plugin.beforeReload();
  await assertRejectsMiniflare(
    (async () => plugin.reload({}, { Object: class {} }, new Map()))(),
    DurableObjectError,
    "ERR_SCRIPT_NOT_FOUND",
    'Script "api" for Durable Object "OBJECT" not found.\nMake sure "api" is mounted so Miniflare knows where to find it.'
  );
  // Mounted, but without the class
  plugin.beforeReload();
  await assertRejectsMiniflare(
    (async () => plugin.reload({}, {}, new Map([["api", { moduleExports: {} }]])))(),
    DurableObjectError,
    "ERR_CLASS_NOT_FOUND",
    'Class "Object" in script "api" for Durable Object "OBJECT" not found'
  );
});

test("DurableObjectsPlugin: classes come from the entry, a module file or a mount", async (t) => {
  const file = path.join(process.cwd(), "object2.mjs");
  const named = (name: string) =>
    class {
      fetch() {
        return new Response(name);
      }
    };
  const { env } = await startPlugin(
    t,
    {
      durableObjects: {
        OBJECT1: "Object1",
        OBJECT2: { className: "Object2", scriptPath: file },
        OBJECT3: { className: "Object3", scriptName: "api" },
      },
    },
    // The entry also exports an Object2 and Object3 that must not be used
    { Object1: named("entry 1"), Object2: named("wrong 2"), Object3: named("wrong 3") },
    {
      mounts: new Map<string, MiniflareCoreMount>([
        [file, { moduleExports: { Object2: named("file 2") } }],
        ["api", { moduleExports: { Object3: named("mount 3") } }],
      ]),
    }
  );
  assert.equal(await text(env.OBJECT1.get(env.OBJECT1.idFromName("x")).fetch("http://localhost/")), "entry 1");
  assert.equal(await text(env.OBJECT2.get(env.OBJECT2.idFromName("x")).fetch("http://localhost/")), "file 2");
  assert.equal(await text(env.OBJECT3.get(env.OBJECT3.idFromName("x")).fetch("http://localhost/")), "mount 3");
});

test("DurableObjectsPlugin: objects asked for before reload() wait for the classes", async (t) => {
  const inner = new VariedStorageFactory();
  t.after(() => inner.dispose());
  const factory = new PluginStorageFactory(inner, "DurableObjectsPlugin");
  const ctx: PluginContext = { log: new TestLog(), compat: new Compatibility(), rootPath: process.cwd(), registry: new HostRegistry() };
  const plugin = new DurableObjectsPlugin(ctx, { durableObjects: { OBJ: "Obj" } });
  t.after(() => plugin.dispose());
  const env = (await plugin.setup(factory)).bindings as Record<string, DurableObjectNamespace>;
  plugin.beforeReload();
  let settled = false;
  const response = env.OBJ.get(env.OBJ.idFromName("a"))
    .fetch("http://localhost/")
    .finally(() => (settled = true));
  await flushTurns();
  assert.equal(settled, false);
  await plugin.reload(env, { Obj: class { fetch() { return new Response("loaded"); } } }, new Map());
  assert.equal(await text(response), "loaded");
});

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

test("DurableObjectsPlugin: persist: memory by default, shared within a storage factory", async (t) => {
  const first = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, { Obj: KeyValueObject });
  const id = first.env.OBJ.idFromName("a");
  await text(first.env.OBJ.get(id).fetch("http://localhost/", { method: "PUT", body: "value" }));
  // The plugin's storage for the id is what the object wrote
  assert.equal(await first.plugin.getStorage(first.factory, id).get("key"), "value");
  await first.stop();
  // A new storage factory (a new Miniflare instance) starts empty
  const second = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, { Obj: KeyValueObject });
  assert.equal(await text(second.env.OBJ.get(second.env.OBJ.idFromName("a")).fetch("http://localhost/")), "undefined");
});

test("DurableObjectsPlugin: persist: a path (relative to rootPath) keeps data across instances, one folder per object", async (t) => {
  const root = await useTmp(t);
  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: "data" };
  const first = await startPlugin(t, options, { Obj: KeyValueObject }, { rootPath: root });
  const a = first.env.OBJ.idFromName("a");
  const b = first.env.OBJ.newUniqueId();
  await text(first.env.OBJ.get(a).fetch("http://localhost/", { method: "PUT", body: "A" }));
  await text(first.env.OBJ.get(b).fetch("http://localhost/", { method: "PUT", body: "B" }));
  await first.stop();

  // Each object has its own folder under <persist>/mfs1/<binding>/<hex id>
  const dirs = (await fs.readdir(path.join(root, "data", "mfs1", "OBJ"))).sort();
  assert.deepEqual(dirs, [a.toString(), b.toString()].sort());
  for (const dir of dirs) {
    assert.ok((await filesUnder(path.join(root, "data", "mfs1", "OBJ", dir))).length > 0);
  }

  const second = await startPlugin(t, options, { Obj: KeyValueObject }, { rootPath: root });
  assert.equal(await text(second.env.OBJ.get(second.env.OBJ.idFromName("a")).fetch("http://localhost/")), "A");
  assert.equal(await text(second.env.OBJ.get(second.env.OBJ.idFromString(b.toString())).fetch("http://localhost/")), "B");
  // Absolute paths are used as they are
  const absolute = await useTmp(t);
  const third = await startPlugin(
    t,
    { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: absolute },
    { Obj: KeyValueObject },
    { rootPath: root }
  );
  await text(third.env.OBJ.get(a).fetch("http://localhost/", { method: "PUT", body: "abs" }));
  await third.stop();
  assert.deepEqual(await fs.readdir(path.join(absolute, "mfs1", "OBJ")), [a.toString()]);
});

test("DurableObjectsPlugin: persist: true uses .mf/do in the working directory", async (t) => {
  const cwd = await useTmp(t);
  const root = await useTmp(t);
  const previous = process.cwd();
  process.chdir(cwd);
  t.after(() => process.chdir(previous));

  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: true };
  const first = await startPlugin(t, options, { Obj: KeyValueObject }, { rootPath: root });
  const id = first.env.OBJ.idFromName("a");
  await text(first.env.OBJ.get(id).fetch("http://localhost/", { method: "PUT", body: "persisted" }));
  await first.stop();
  const files = await filesUnder(cwd);
  assert.ok(files.length > 0);
  for (const file of files) {
    assert.ok(file.startsWith(path.join(".mf", "do", "mfs1", "OBJ", id.toString()) + path.sep), file);
  }
  // rootPath isn't used for `true`
  assert.deepEqual(await fs.readdir(root), []);

  const second = await startPlugin(t, options, { Obj: KeyValueObject }, { rootPath: root });
  assert.equal(await text(second.env.OBJ.get(id).fetch("http://localhost/")), "persisted");
});

test("DurableObjectsPlugin: persist: redis:// URL", async (t) => {
  const server = await startRedisServer();
  t.after(() => server.stop());
  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: server.url };
  const first = await startPlugin(t, options, { Obj: KeyValueObject });
  const a = first.env.OBJ.idFromName("a");
  const b = first.env.OBJ.idFromName("b");
  await text(first.env.OBJ.get(a).fetch("http://localhost/", { method: "PUT", body: "in redis A" }));
  await text(first.env.OBJ.get(b).fetch("http://localhost/", { method: "PUT", body: "in redis B" }));
  await first.stop();

  const second = await startPlugin(t, options, { Obj: KeyValueObject });
  try {
    assert.equal(await text(second.env.OBJ.get(a).fetch("http://localhost/")), "in redis A");
    assert.equal(await text(second.env.OBJ.get(b).fetch("http://localhost/")), "in redis B");
    assert.equal(await text(second.env.OBJ.get(second.env.OBJ.idFromName("c")).fetch("http://localhost/")), "undefined");
    // Keys are prefixed with the binding and the object's id
    const { Redis } = await import("ioredis");
    const redis = new Redis(server.url);
    try {
      const keys = await redis.keys("*");
      assert.ok(keys.some((key) => key.includes(`OBJ:${a.toString()}`)), keys.join(", "));
      assert.ok(keys.some((key) => key.includes(`OBJ:${b.toString()}`)), keys.join(", "));
    } finally {
      redis.disconnect();
    }
  } finally {
    await second.stop();
  }
});

// ---------------------------------------------------------------------------
// Alarms
// ---------------------------------------------------------------------------

test("DurableObjectsPlugin: alarms: getAlarm, setAlarm(number | Date), deleteAlarm", async (t) => {
  const record: AlarmRecord = { runs: [] };
  const results: unknown[] = [];
  const { env } = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, {
    Obj: class extends alarmClass(record) {
      async fetch() {
        const storage = this.state.storage;
        results.push(await storage.getAlarm());
        const inAnHour = Date.now() + 3_600_000;
        await storage.setAlarm(inAnHour);
        results.push((await storage.getAlarm()) === inAnHour);
        const date = new Date(Date.now() + 7_200_000);
        await storage.setAlarm(date);
        results.push((await storage.getAlarm()) === date.getTime());
        await storage.deleteAlarm();
        results.push(await storage.getAlarm());
        // Deleting again is fine
        await storage.deleteAlarm();
        results.push(await storage.getAlarm());
        // Alarms are hidden from list()
        await storage.setAlarm(inAnHour);
        results.push([...(await storage.list()).keys()]);
        return new Response("ok");
      }
    },
  });
  await text(env.OBJ.get(env.OBJ.idFromName("a")).fetch("http://localhost/"));
  assert.deepEqual(results, [null, true, true, null, null, []]);
  assert.equal(record.runs.length, 0);
});

test("DurableObjectsPlugin: alarms: setAlarm needs an alarm() handler and a positive time", async (t) => {
  const errors: unknown[] = [];
  const { env } = await startPlugin(t, { durableObjects: { NO_ALARM: "NoAlarm", WITH_ALARM: "WithAlarm" } }, {
    NoAlarm: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch() {
        try {
          await this.state.storage.setAlarm(Date.now() + 60_000);
        } catch (e) {
          errors.push(e);
        }
        return new Response(String(await this.state.storage.getAlarm()));
      }
    },
    WithAlarm: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch() {
        for (const time of [0, -1, new Date(0)]) {
          try {
            await this.state.storage.setAlarm(time);
          } catch (e) {
            errors.push(e);
          }
        }
        return new Response(String(await this.state.storage.getAlarm()));
      }
      alarm() {}
    },
  });
  assert.equal(await text(env.NO_ALARM.get(env.NO_ALARM.idFromName("a")).fetch("http://localhost/")), "null");
  assert.equal(await text(env.WITH_ALARM.get(env.WITH_ALARM.idFromName("a")).fetch("http://localhost/")), "null");
  assert.equal(errors.length, 4);
  const [noHandler, ...nonPositive] = errors as Error[];
  assert.ok(noHandler instanceof Error);
  assert.equal(noHandler.name, "Error");
  assert.equal(noHandler.message, "Your Durable Object class must have an alarm() handler in order to call setAlarm()");
  for (const error of nonPositive) {
    assert.ok(error instanceof TypeError, String(error));
    assert.equal(error.message, "setAlarm() cannot be called with an alarm time <= 0");
  }
});

test("DurableObjectsPlugin: alarms: alarm() runs when due, in a request context, alarm spent", async (t) => {
  const clock = new TestClock();
  const record: AlarmRecord = { clock, runs: [] };
  const { plugin, factory, env } = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, { Obj: alarmClass(record) }, {
    clock,
  });
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  const scheduled = clock.now + 50;
  // Set from a request 5 deep: the alarm still gets a fresh context of its own
  const parent = new RequestContext({ requestDepth: 5 });
  assert.equal(await parent.runWith(() => text(stub.fetch(`http://localhost/?at=${scheduled}`))), String(scheduled));
  // Not a millisecond early...
  await clock.advance(49);
  assert.equal(record.runs.length, 0);
  // ...and on time
  await clock.advance(1);
  assert.equal(record.runs.length, 1);
  const [run] = record.runs;
  assert.equal(run.at, scheduled);
  assert.equal(run.object, stub.id.toString());
  // Inside the handler, the alarm is already spent
  assert.equal(run.alarmInside, null);
  assert.equal(run.depth, 1);
  assert.equal(run.durableObject, true);
  // ...and afterwards
  assert.equal(await text(stub.fetch("http://localhost/")), "null");
  // It runs once
  await clock.advance(3_600_000);
  await plugin.flushAlarms(factory);
  assert.equal(record.runs.length, 1);
  // Flushed from outside any request, it gets a context too
  await text(stub.fetch(`http://localhost/?at=${clock.now + 3_600_000}`));
  await plugin.flushAlarms(factory);
  assert.equal(record.runs.length, 2);
  assert.equal(record.runs[1].depth, 1);
  assert.equal(record.runs[1].durableObject, true);
});

test("DurableObjectsPlugin: alarms: replacing or deleting an alarm before it's due", async (t) => {
  const clock = new TestClock();
  const record: AlarmRecord = { clock, runs: [] };
  const { env } = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, {
    Obj: class extends alarmClass(record) {
      async fetch(request: Request) {
        if (new URL(request.url).pathname === "/delete") {
          await this.state.storage.deleteAlarm();
          return new Response("deleted");
        }
        return super.fetch(request);
      }
    },
  }, { clock });
  const a = env.OBJ.get(env.OBJ.idFromName("a"));
  const b = env.OBJ.get(env.OBJ.idFromName("b"));
  // a: set 50ms ahead, then moved an hour ahead; b: set then deleted
  const later = clock.now + 3_600_000;
  await text(a.fetch(`http://localhost/?at=${clock.now + 50}`));
  await text(a.fetch(`http://localhost/?at=${later}`));
  await text(b.fetch(`http://localhost/?at=${clock.now + 50}`));
  await text(b.fetch("http://localhost/delete"));
  // Well past the first times, short of the new one
  await clock.advance(3_600_000 - 1);
  assert.equal(record.runs.length, 0);
  assert.equal(await text(a.fetch("http://localhost/")), String(later));
  assert.equal(await text(b.fetch("http://localhost/")), "null");
  // The moved alarm runs at its new time, once
  await clock.advance(1);
  assert.deepEqual(
    record.runs.map(({ at, object }) => ({ at, object })),
    [{ at: later, object: a.id.toString() }]
  );
});

test("DurableObjectsPlugin: alarms: alarm() runs under the object's gates", async (t) => {
  const release = deferred();
  const events: string[] = [];
  const { plugin, factory, env } = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, {
    Obj: class {
      constructor(readonly state: DurableObjectState) {}
      async fetch(request: Request) {
        const path = new URL(request.url).pathname;
        if (path === "/set") {
          await this.state.storage.setAlarm(Date.now() + 3_600_000);
        } else if (path === "/block") {
          events.push("block start");
          await this.state.blockConcurrencyWhile(() => release.promise);
          events.push("block end");
        } else {
          // An unguarded read-modify-write, like the alarm's
          const n = ((await this.state.storage.get("n")) as number | undefined) ?? 0;
          await this.state.storage.put("n", n + 1);
        }
        return new Response(path);
      }
      async alarm() {
        events.push("alarm");
        const n = ((await this.state.storage.get("n")) as number | undefined) ?? 0;
        await this.state.storage.put("n", n + 1);
      }
    },
  });
  const id = env.OBJ.idFromName("a");
  const stub = env.OBJ.get(id);
  await text(stub.fetch("http://localhost/set"));
  // While blockConcurrencyWhile() holds the gate, the alarm waits
  const blocking = stub.fetch("http://localhost/block");
  await flushTurns();
  const flushing = plugin.flushAlarms(factory, [id]);
  // (in-memory storage does no I/O: 20 turns of the event loop are plenty
  // for the alarm to reach the gate, however slow the machine)
  await flushTurns(20);
  assert.deepEqual(events, ["block start"]);
  release.resolve();
  await Promise.all([blocking, flushing]);
  assert.deepEqual(events, ["block start", "block end", "alarm"]);

  // The alarm's read-modify-write interleaves with requests' without losing any
  await text(stub.fetch("http://localhost/set"));
  await Promise.all([
    ...Array.from({ length: 30 }, () => text(stub.fetch("http://localhost/inc"))),
    plugin.flushAlarms(factory, [id]),
    ...Array.from({ length: 30 }, () => text(stub.fetch("http://localhost/inc"))),
  ]);
  assert.equal(await plugin.getStorage(factory, id).get("n"), 62);
});

test("DurableObjectsPlugin: alarms: flushAlarms runs all or some alarms now; getObjects", async (t) => {
  const record: AlarmRecord = { runs: [] };
  const { plugin, factory, env } = await startPlugin(t, { durableObjects: { OBJ: "Obj", OTHER: "Obj" } }, {
    Obj: alarmClass(record),
  });
  const far = Date.now() + 3_600_000;
  const ids = [env.OBJ.idFromName("a"), env.OBJ.idFromName("b"), env.OBJ.idFromName("c")];
  const other = env.OTHER.idFromName("a");
  for (const id of ids) await text(env.OBJ.get(id).fetch(`http://localhost/?at=${far}`));
  await text(env.OTHER.get(other).fetch(`http://localhost/?at=${far}`));
  assert.deepEqual(plugin.getObjects(factory, "OBJ").map(String).sort(), ids.map(String).sort());
  assert.deepEqual(plugin.getObjects(factory, "OTHER").map(String), [other.toString()]);

  // Only the given objects
  await plugin.flushAlarms(factory, [ids[1]]);
  assert.deepEqual(record.runs.map((run) => run.object), [ids[1].toString()]);
  assert.equal(record.runs[0].alarmInside, null);
  assert.equal(await text(env.OBJ.get(ids[1]).fetch("http://localhost/")), "null");
  assert.equal(await text(env.OBJ.get(ids[0]).fetch("http://localhost/")), String(far));
  // An object without an alarm is skipped
  await plugin.flushAlarms(factory, [ids[1], env.OBJ.idFromName("none")]);
  assert.equal(record.runs.length, 1);
  // All of them (across bindings)
  await plugin.flushAlarms(factory);
  assert.deepEqual(
    record.runs.map((run) => run.object).sort(),
    [...ids.map(String), other.toString()].sort()
  );
  await plugin.flushAlarms(factory);
  assert.equal(record.runs.length, 4);
});

test("DurableObjectsPlugin: alarms: durableObjectsAlarms false stores alarms but never fires them", async (t) => {
  const clock = new TestClock();
  const record: AlarmRecord = { clock, runs: [] };
  const { plugin, factory, env } = await startPlugin(
    t,
    { durableObjects: { OBJ: "Obj" }, durableObjectsAlarms: false },
    { Obj: alarmClass(record) },
    { clock }
  );
  const stub = env.OBJ.get(env.OBJ.idFromName("a"));
  const at = clock.now + 30;
  assert.equal(await text(stub.fetch(`http://localhost/?at=${at}`)), String(at));
  // Nothing was scheduled, so nothing fires however long we wait
  assert.equal(clock.pending, 0);
  await clock.advance(3_600_000);
  await plugin.flushAlarms(factory);
  assert.equal(record.runs.length, 0);
  assert.equal(await text(stub.fetch("http://localhost/")), String(at));
});

test("DurableObjectsPlugin: alarms: persisted alarms survive a restart", async (t) => {
  const root = await useTmp(t);
  const clock = new TestClock();
  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: root };
  const record: AlarmRecord = { clock, runs: [] };
  const first = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  const id = first.env.OBJ.idFromName("a");
  const far = clock.now + 3_600_000;
  await text(first.env.OBJ.get(id).fetch(`http://localhost/?at=${far}`));
  await first.stop();

  const second = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  // Not due: not run by itself until its time (the periodic scans find it)
  await clock.advance(far - clock.now - 1);
  assert.equal(record.runs.length, 0);
  assert.equal(await text(second.env.OBJ.get(id).fetch("http://localhost/")), String(far));
  await second.plugin.flushAlarms(second.factory);
  assert.equal(record.runs.length, 1);
  assert.equal(record.runs[0].object, id.toString());
  assert.equal(record.runs[0].alarmInside, null);
  await second.stop();

  // Spent: gone after another restart too
  const third = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  await clock.advance(3_600_000);
  await third.plugin.flushAlarms(third.factory);
  assert.equal(record.runs.length, 1);
  assert.equal(await text(third.env.OBJ.get(id).fetch("http://localhost/")), "null");
});

test("DurableObjectsPlugin: alarms: an alarm due while stopped fires on start by itself", async (t) => {
  const root = await useTmp(t);
  const clock = new TestClock();
  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: root };
  const record: AlarmRecord = { clock, runs: [] };
  const first = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  const id = first.env.OBJ.idFromName("a");
  await text(first.env.OBJ.get(id).fetch(`http://localhost/?at=${clock.now + 100}`));
  await first.stop();
  // Stopping left no timer behind: falling due while stopped runs nothing
  assert.equal(clock.pending, 0);
  await clock.advance(200);
  assert.equal(record.runs.length, 0);

  const second = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  // Starting scheduled it straight away (no request, no flush)
  await clock.advance(0);
  assert.equal(record.runs.length, 1);
  assert.equal(record.runs[0].object, id.toString());
  assert.equal(record.runs[0].at, clock.now);
  // Once
  await clock.advance(3_600_000);
  assert.equal(record.runs.length, 1);
  assert.equal(await text(second.env.OBJ.get(id).fetch("http://localhost/")), "null");
  assert.deepEqual(second.log.errors, []);
});

test("DurableObjectsPlugin: alarms: an overdue alarm whose class lost alarm() is logged, not thrown", async (t) => {
  const root = await useTmp(t);
  const clock = new TestClock();
  const options = { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: root };
  const record: AlarmRecord = { clock, runs: [] };
  const first = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  const id = first.env.OBJ.idFromName("a");
  await text(first.env.OBJ.get(id).fetch(`http://localhost/?at=${clock.now + 250}`));
  await first.stop();
  // Falls due while stopped
  await clock.advance(300);

  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));

  // Starting succeeds, and requests are served
  const second = await startPlugin(t, options, { Obj: KeyValueObject }, { clock });
  await clock.advance(0);
  assert.equal(second.log.errors.length, 1);
  const [error] = second.log.errors;
  assert.ok(error instanceof DurableObjectError, String(error));
  assert.equal(error.code, "ERR_NO_HANDLER");
  assert.equal(error.message, "No alarm handler defined in Durable Object");
  assert.equal(await text(second.env.OBJ.get(id).fetch("http://localhost/", { method: "PUT", body: "v" })), "v");
  await second.stop();
  // Unhandled rejections are reported before the next turn of the event loop
  await flushTurns();
  assert.deepEqual(rejections, []);

  // The alarm was dropped: a class with alarm() again doesn't get it
  const third = await startPlugin(t, options, { Obj: alarmClass(record) }, { clock });
  await clock.advance(3_600_000);
  await third.plugin.flushAlarms(third.factory);
  assert.equal(record.runs.length, 0);
});

test("DurableObjectsPlugin: alarms: an overdue alarm of a removed binding is dropped with a warning", async (t) => {
  const root = await useTmp(t);
  const clock = new TestClock();
  const record: AlarmRecord = { clock, runs: [] };
  const first = await startPlugin(t, { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: root }, {
    Obj: alarmClass(record),
  }, { clock });
  const id = first.env.OBJ.idFromName("a");
  await text(first.env.OBJ.get(id).fetch(`http://localhost/?at=${clock.now + 250}`));
  await first.stop();
  // Falls due while stopped
  await clock.advance(300);

  // OBJ is no longer bound
  const second = await startPlugin(t, { durableObjects: { OTHER: "Obj" }, durableObjectsPersist: root }, {
    Obj: alarmClass(record),
  }, { clock });
  await clock.advance(0);
  const warnings = second.log.logsAtLevel(LogLevel.WARN);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /alarm/i);
  assert.match(warnings[0], /"OBJ"/);
  assert.deepEqual(second.log.errors, []);
  assert.equal(record.runs.length, 0);
  await second.stop();

  // No bindings at all: starting still works
  const third = await startPlugin(t, { durableObjectsPersist: root }, {}, { clock });
  await clock.advance(3_600_000);
  assert.deepEqual(third.log.errors, []);
  await third.stop();

  // Dropped: binding OBJ again doesn't bring it back
  const fourth = await startPlugin(t, { durableObjects: { OBJ: "Obj" }, durableObjectsPersist: root }, {
    Obj: alarmClass(record),
  }, { clock });
  await clock.advance(3_600_000);
  await fourth.plugin.flushAlarms(fourth.factory);
  assert.equal(record.runs.length, 0);
});

test("DurableObjectsPlugin: alarms: a throwing alarm() is logged and retried 2s later", async (t) => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));

  const clock = new TestClock();
  const record: AlarmRecord = { clock, runs: [] };
  let attempts = 0;
  const { plugin, factory, env, log } = await startPlugin(t, { durableObjects: { OBJ: "Obj" } }, {
    Obj: alarmClass(record, () => {
      if (++attempts === 1) throw new Error("alarm failed");
    }),
  }, { clock });
  const id = env.OBJ.idFromName("a");
  const stub = env.OBJ.get(id);
  const at = clock.now + 10;
  await text(stub.fetch(`http://localhost/?at=${at}`));
  await clock.advance(10);
  assert.equal(record.runs.length, 1);
  assert.equal(log.errors.length, 1);
  assert.equal(log.errors[0].message, "alarm failed");
  // The retry is scheduled (its write confirmed) 2 seconds after the failed run
  await plugin.getStorage(factory, id).sync();
  assert.equal(await text(stub.fetch("http://localhost/")), String(at + 2000));
  await clock.advance(1999);
  assert.equal(record.runs.length, 1);
  await clock.advance(1);
  assert.deepEqual(record.runs.map((run) => run.at), [at, at + 2000]);
  // It succeeded: no more runs, nothing scheduled
  await clock.advance(3_600_000);
  assert.equal(record.runs.length, 2);
  assert.equal(await text(stub.fetch("http://localhost/")), "null");
  assert.equal(log.errors.length, 1);
  assert.ok(log.logsAtLevel(LogLevel.WARN).some((warning) => /retry/i.test(warning)));
  await flushTurns();
  assert.deepEqual(rejections, []);
});
