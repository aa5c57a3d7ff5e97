import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { MiniflareCore, ReloadEvent } from "../../src/core/core.js";
import { BindingsPlugin } from "../../src/plugins/bindings/plugin.js";
import { CorePlugin } from "../../src/plugins/core/plugin.js";
import { MiniflareCoreError } from "../../src/plugins/core/errors.js";
import { VMScriptRunner } from "../../src/runtime/index.js";
import { LogLevel } from "../../src/shared/log.js";
import {
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../../src/shared/plugin.js";
import type { Context } from "../../src/shared/runner.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { TestLog } from "../helpers/log.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

interface TestOptions {
  testValue?: string;
  testNumber?: number;
}

// Records every hook call, across instances, in order
const calls: string[] = [];

class TestPlugin extends Plugin<TestOptions> implements TestOptions {
  static constructed = 0;

  @Option({
    type: OptionType.STRING,
    description: "A test value",
    fromWrangler: ({ miniflare }) => (miniflare as any)?.test_value,
  })
  testValue?: string;

  @Option({ type: OptionType.NUMBER, logName: "Number Of Things" })
  testNumber?: number;

  constructor(ctx: PluginContext, options?: TestOptions) {
    super(ctx);
    this.assignOptions(options);
    TestPlugin.constructed++;
    calls.push(`constructor(${this.testValue})`);
  }

  beforeSetup() {
    calls.push("beforeSetup");
    return {};
  }

  setup(): SetupResult {
    calls.push("setup");
    return { globals: { TEST_VALUE: this.testValue }, bindings: { BOUND: this.testNumber } };
  }

  beforeReload() {
    calls.push("beforeReload");
  }

  reload(bindings: Context) {
    calls.push(`reload(${Object.keys(bindings).join(",")})`);
  }

  dispose() {
    calls.push("dispose");
  }
}

const plugins = { CorePlugin, TestPlugin, BindingsPlugin };

function createCore(options: Context, log = new TestLog(), { scriptRequired = false } = {}) {
  const core = new MiniflareCore(
    plugins,
    { log, scriptRunner: new VMScriptRunner(), scriptRequired },
    options
  );
  return { core, log };
}

const script = 'addEventListener("fetch", (e) => e.respondWith(new Response(String(TEST_VALUE))))';

test("MiniflareCore: runs plugin hooks in order and dispatches reload events", async (t) => {
  calls.length = 0;
  const { core } = createCore({ script, testValue: "a", testNumber: 1 });
  t.after(() => core.dispose());
  const events: ReloadEvent<any>[] = [];
  core.addEventListener("reload", (event) => events.push(event));
  await core.getPlugins();
  assert.deepEqual(calls, ["constructor(a)", "beforeSetup", "setup", "beforeReload", "reload(BOUND)"]);

  calls.length = 0;
  await core.setOptions({ testValue: "b" });
  // The replaced instance lives until the new version is committed
  assert.deepEqual(calls, [
    "constructor(b)",
    "beforeSetup",
    "setup",
    "dispose",
    "beforeReload",
    "reload(BOUND)",
  ]);
  // The listener was added during initialisation, so it saw both reloads
  assert.deepEqual(events.map((event) => event.initial), [true, false]);
  assert.ok(events[1].plugins.TestPlugin instanceof TestPlugin);

  calls.length = 0;
  await core.dispose();
  assert.deepEqual(calls, ["dispose"]);
});

test("MiniflareCore: a failed setOptions keeps the serving version's plugins, options and compatibility", async (t) => {
  calls.length = 0;
  const { core } = createCore({ script, testValue: "a", compatibilityDate: "2021-01-01" });
  t.after(() => core.dispose());
  const serving = (await core.getPlugins()).TestPlugin;
  const compat = (await core.getPlugins()).CorePlugin.ctx.compat;
  calls.length = 0;
  await assert.rejects(
    core.setOptions({ testValue: "b", compatibilityDate: "2022-11-30", script: `throw new Error("broken")` }),
    /broken/
  );
  // The new instance went; the serving one was never told anything
  assert.deepEqual(calls, ["constructor(b)", "beforeSetup", "setup", "dispose"]);
  const plugins = await core.getPlugins();
  assert.equal(plugins.TestPlugin, serving);
  assert.equal(plugins.CorePlugin.ctx.compat, compat);
  assert.equal(compat.compatibilityDate, "2021-01-01");
  const res = await core.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "a");

  // Setting the same failed options again tries them again, in full
  calls.length = 0;
  await assert.rejects(core.setOptions({}), /broken/);
  assert.deepEqual(calls, ["constructor(b)", "beforeSetup", "setup", "dispose"]);
  // And good ones apply, the serving instance going only then
  calls.length = 0;
  await core.setOptions({ script });
  assert.deepEqual(calls, ["constructor(b)", "beforeSetup", "setup", "dispose", "beforeReload", "reload(BOUND)"]);
  assert.equal((await core.getPlugins()).CorePlugin.ctx.compat.compatibilityDate, "2022-11-30");
});

test("MiniflareCore: first reload event is initial", async (t) => {
  const { core } = createCore({ script });
  t.after(() => core.dispose());
  const initial = await new Promise<boolean>((resolve) =>
    core.addEventListener("reload", (event) => resolve(event.initial))
  );
  assert.equal(initial, true);
});

test("MiniflareCore: setOptions re-creates only plugins whose options changed", async (t) => {
  const { core } = createCore({ script, testValue: "a" });
  t.after(() => core.dispose());
  await core.getPlugins();
  const before = await core.getPlugins();
  const core1 = before.CorePlugin;
  const test1 = before.TestPlugin;
  const constructed = TestPlugin.constructed;

  // Same options: nothing re-created
  await core.setOptions({ testValue: "a" });
  let after = await core.getPlugins();
  assert.equal(after.CorePlugin, core1);
  assert.equal(after.TestPlugin, test1);
  assert.equal(TestPlugin.constructed, constructed);

  // Only TestPlugin's options changed
  await core.setOptions({ testNumber: 5 });
  after = await core.getPlugins();
  assert.equal(after.CorePlugin, core1);
  assert.notEqual(after.TestPlugin, test1);
  assert.equal((after.TestPlugin as TestPlugin).testValue, "a"); // merged shallowly
  assert.equal((after.TestPlugin as TestPlugin).testNumber, 5);
});

test("MiniflareCore: reload re-creates every plugin", async (t) => {
  const { core } = createCore({ script });
  t.after(() => core.dispose());
  const before = { ...(await core.getPlugins()) };
  await core.reload();
  const after = await core.getPlugins();
  assert.notEqual(after.CorePlugin, before.CorePlugin);
  assert.notEqual(after.TestPlugin, before.TestPlugin);
  assert.notEqual(after.BindingsPlugin, before.BindingsPlugin);
});

test("MiniflareCore: changing compatibility flags re-creates every plugin", async (t) => {
  const { core } = createCore({ script, compatibilityDate: "2021-01-01" });
  t.after(() => core.dispose());
  const before = { ...(await core.getPlugins()) };
  await core.setOptions({ compatibilityFlags: ["global_navigator"] });
  const after = await core.getPlugins();
  assert.notEqual(after.TestPlugin, before.TestPlugin);
  const globalScope = await core.getGlobalScope();
  assert.equal(globalScope.navigator.userAgent, "Cloudflare-Workers");
});

test("MiniflareCore: API options override wrangler.toml, explicit undefined unsets", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": '[miniflare]\ntest_value = "from wrangler"\n',
    "worker.js": script,
  });
  const base = { rootPath: tmp, wranglerConfigPath: true, scriptPath: "worker.js" };

  let { core } = createCore(base);
  t.after(() => core.dispose());
  let res = await core.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "from wrangler");

  ({ core } = createCore({ ...base, testValue: "from api" }));
  t.after(() => core.dispose());
  res = await core.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "from api");

  ({ core } = createCore({ ...base, testValue: undefined }));
  t.after(() => core.dispose());
  res = await core.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "undefined");
});

test("MiniflareCore: selects the wrangler.toml environment", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": [
      '[miniflare]\ntest_value = "top"',
      '[env.dev.miniflare]\ntest_value = "dev"',
    ].join("\n"),
    "worker.js": script,
  });
  const options = { rootPath: tmp, wranglerConfigPath: true, scriptPath: "worker.js" };
  let { core } = createCore({ ...options, wranglerConfigEnv: "dev" });
  t.after(() => core.dispose());
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "dev");

  // Unknown environments are ignored
  ({ core } = createCore({ ...options, wranglerConfigEnv: "nope" }));
  t.after(() => core.dispose());
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "top");
});

test("MiniflareCore: missing default wrangler.toml is ignored, explicit path throws", async (t) => {
  const tmp = await useTmp(t);
  let { core } = createCore({ script, rootPath: tmp, wranglerConfigPath: true });
  t.after(() => core.dispose());
  await core.getPlugins();

  ({ core } = createCore({ script, rootPath: tmp, wranglerConfigPath: "missing.toml" }));
  t.after(() => core.dispose());
  await assert.rejects(core.getPlugins(), { code: "ENOENT" });
});

test("MiniflareCore: needs no script unless scriptRequired is set, as in Miniflare 2", async (t) => {
  const tmp = await useTmp(t);
  const { core } = createCore({ rootPath: tmp });
  t.after(() => core.dispose());
  const plugins = await core.getPlugins();
  assert.equal(plugins.CorePlugin.script, undefined);
  assert.ok(await core.getGlobalScope());
});

test("MiniflareCore: with scriptRequired, throws ERR_NO_SCRIPT with hints", async (t) => {
  const tmp = await useTmp(t);
  const required = { scriptRequired: true };
  let { core } = createCore({ rootPath: tmp }, new TestLog(), required);
  t.after(() => core.dispose());
  const error = await assertRejectsMiniflare(core.getPlugins(), MiniflareCoreError, "ERR_NO_SCRIPT");
  assert.match(error.message, /^No script defined, either:\n/);
  assert.match(error.message, /dist\/worker\.js/);
  assert.doesNotMatch(error.message, /build\.upload\.main/);

  ({ core } = createCore({ rootPath: tmp, modules: true }, new TestLog(), required));
  t.after(() => core.dispose());
  const modulesError = await assertRejectsMiniflare(core.getPlugins(), MiniflareCoreError, "ERR_NO_SCRIPT");
  assert.match(modulesError.message, /dist\/worker\.mjs/);
  assert.match(modulesError.message, /Set build\.upload\.main in wrangler\.toml/);
  assert.match(modulesError.message, /"module": "dist\/worker\.mjs"/);
});

test("MiniflareCore: throws if multiple plugins return a script", async (t) => {
  class ScriptPlugin extends Plugin {
    @Option({ type: OptionType.NONE })
    unused?: boolean;
    constructor(ctx: PluginContext) {
      super(ctx);
    }
    setup(): SetupResult {
      return { script: { filePath: "other.js", code: "" } };
    }
  }
  const core = new MiniflareCore(
    { CorePlugin, ScriptPlugin, BindingsPlugin },
    { log: new TestLog(), scriptRunner: new VMScriptRunner() },
    { script }
  );
  t.after(() => core.dispose());
  await assert.rejects(core.getPlugins(), new TypeError("Multiple plugins returned a script"));
});

test("MiniflareCore: logs options, compatibility flags and reloads", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const { core } = createCore(
    {
      script,
      testValue: "thing",
      testNumber: 3,
      compatibilityDate: "2022-03-21",
      compatibilityFlags: ["nodejs_compat"],
    },
    log
  );
  t.after(() => core.dispose());
  await core.getPlugins();
  const debug = log.logsAtLevel(LogLevel.DEBUG);
  assert.ok(debug.includes("Initialising worker..."));
  assert.ok(debug.includes("Options:"));
  // API-only options (like script) aren't logged
  assert.ok(!debug.some((line) => line.startsWith("- Script")));
  assert.ok(debug.includes("- Test Value: thing"));
  assert.ok(debug.includes("- Number Of Things: 3"));
  assert.ok(debug.includes("- Compatibility Flags: nodejs_compat"));
  assert.ok(debug.includes("Enabled Compatibility Flags:"));
  assert.ok(debug.includes("- global_navigator"));
  assert.ok(debug.includes("Reloading worker..."));
  const info = log.logsAtLevel(LogLevel.INFO);
  assert.equal(info.length, 1);
  assert.match(info[0], /^Worker reloaded! \(\d+B\)$/);
});

test("MiniflareCore: logs bundle size of modules workers", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": 'import { x } from "./dep.mjs"; export default { fetch: () => new Response(x) };',
    "dep.mjs": 'export const x = "dep";',
  });
  const log = new TestLog();
  const { core } = createCore({ modules: true, scriptPath: path.join(tmp, "worker.mjs") }, log);
  t.after(() => core.dispose());
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "dep");
  const [reloaded] = log.logsAtLevel(LogLevel.INFO);
  assert.match(reloaded, /^Worker reloaded! \(\d+B\)$/);
});

test("MiniflareCore: invalid upstream throws ERR_INVALID_UPSTREAM", async (t) => {
  const { core } = createCore({ script, upstream: "example.com" });
  t.after(() => core.dispose());
  await assertRejectsMiniflare(
    core.getPlugins(),
    MiniflareCoreError,
    "ERR_INVALID_UPSTREAM",
    'Invalid upstream URL: "example.com". Make sure you\'ve included the protocol.'
  );
});

test("MiniflareCore: requests during a reload reach the old or the new worker, never none", async (t) => {
  const tmp = await useTmp(t);
  // A module graph big enough that the reload takes a while
  const files: Record<string, string> = {};
  for (let i = 0; i < 40; i++) files[`dep${i}.mjs`] = `export const v${i} = ${i};\n`.repeat(1);
  files["worker.mjs"] =
    Array.from({ length: 40 }, (_, i) => `import { v${i} } from "./dep${i}.mjs";`).join("\n") +
    '\nexport default { fetch: () => new Response(globalThis.VERSION ?? "none") };\n';
  await writeFiles(tmp, files);
  const { core } = createCore({ modules: true, scriptPath: path.join(tmp, "worker.mjs"), globals: { VERSION: "1" } });
  t.after(() => core.dispose());
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "1");
  const reloading = core.setOptions({ globals: { VERSION: "2" } });
  const bodies: string[] = [];
  for (let i = 0; i < 20; i++) {
    bodies.push(await (await core.dispatchFetch("http://localhost/")).text());
  }
  await reloading;
  bodies.push(await (await core.dispatchFetch("http://localhost/")).text());
  assert.ok(bodies.every((body) => body === "1" || body === "2"), bodies.join(","));
  assert.equal(bodies.at(-1), "2");
});

test("MiniflareCore: concurrent setOptions calls apply in order", async (t) => {
  const { core } = createCore({ script, testValue: "a" });
  t.after(() => core.dispose());
  await core.getPlugins();
  await Promise.all([core.setOptions({ testValue: "b" }), core.setOptions({ testValue: "c" })]);
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "c");
});

test("MiniflareCore: a failed reload keeps serving the previous worker", async (t) => {
  const { core } = createCore({ modules: true, script: 'export default { fetch: () => new Response("good") }' });
  t.after(() => core.dispose());
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "good");
  await assert.rejects(core.setOptions({ script: "export default {" }), SyntaxError);
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "good");
  await core.setOptions({ script: 'export default { fetch: () => new Response("fixed") }' });
  assert.equal(await (await core.dispatchFetch("http://localhost/")).text(), "fixed");
});

test("MiniflareCore: dispose after a later setOptions still removes process listeners", async (t) => {
  const before = process.listenerCount("unhandledRejection");
  const { core } = createCore({ script, logUnhandledRejections: true });
  await core.getPlugins();
  assert.equal(process.listenerCount("unhandledRejection"), before + 1);
  await core.dispose();
  assert.equal(process.listenerCount("unhandledRejection"), before);
  await core.setOptions({ testValue: "again" });
  await core.dispose();
  assert.equal(process.listenerCount("unhandledRejection"), before);
  t.after(() => core.dispose());
});
