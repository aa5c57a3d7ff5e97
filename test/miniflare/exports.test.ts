import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { Miniflare as SourceMiniflare } from "../../src/index.js";

// The public named exports of the package entry ("miniflare"), sorted. Adding
// or removing an export is a public API change: update this list knowingly.
const EXPORTS = [
  "AlarmStore",
  "BindingsPlugin",
  "BuildError",
  "BuildPlugin",
  "Cache",
  "CacheError",
  "CachePlugin",
  "CacheStorage",
  "CloseEvent",
  "Compatibility",
  "CorePlugin",
  "CronScheduler",
  "DOMException",
  "DurableObjectError",
  "DurableObjectId",
  "DurableObjectNamespace",
  "DurableObjectState",
  "DurableObjectStorage",
  "DurableObjectStub",
  "DurableObjectTransaction",
  "DurableObjectsPlugin",
  "ErrorEvent",
  "ExecutionContext",
  "FetchError",
  "FetchEvent",
  "Fetcher",
  "FileStorage",
  "FileStorageError",
  "FilteredKVNamespace",
  "FixedLengthStream",
  "HTMLRewriter",
  "HTMLRewriterPlugin",
  "IdentityTransformStream",
  "InputGate",
  "KVNamespace",
  "KVPlugin",
  "Log",
  "LogLevel",
  "MemoryStorage",
  "MessageEvent",
  "Miniflare",
  "MiniflareCore",
  "MiniflareCoreError",
  "MiniflareError",
  "Mutex",
  "Navigator",
  "NoOpCache",
  "NoOpLog",
  "Option",
  "OptionType",
  "OutputGate",
  "PLUGINS",
  "Plugin",
  "PluginStorageFactory",
  "RedisStorage",
  "ReloadEvent",
  "Request",
  "RequestContext",
  "Response",
  "ScheduledController",
  "ScheduledEvent",
  "SchedulerError",
  "SchedulerPlugin",
  "ServiceWorkerGlobalScope",
  "SitesPlugin",
  "Storage",
  "ThrowingEventTarget",
  "TypedEventTarget",
  "VMScriptRunner",
  "VMScriptRunnerError",
  "VariedStorageFactory",
  "WebSocket",
  "WebSocketPair",
  "WebSocketPlugin",
  "WorkerGlobalScope",
  "atob",
  "btoa",
  "coupleWebSocket",
  "createFetchMock",
  "fetch",
  "getRequestContext",
  "startREPL",
  "startScheduler",
  "updateCheck",
  "withEnableEsiTags",
];

test("Miniflare: exports: the package entry's named exports", async () => {
  const entry = await import("miniflare");
  assert.deepEqual(Object.keys(entry).sort(), EXPORTS);
  assert.equal((entry as Record<string, unknown>).default, undefined);
});

test("Miniflare: exports: the compiled src/index.js has the same exports", async () => {
  const source = await import("../../src/index.js");
  assert.deepEqual(Object.keys(source).sort(), EXPORTS);
});

test("Miniflare: exports: the names Miniflare 2's miniflare package exported are present", async () => {
  const entry = (await import("miniflare")) as Record<string, unknown>;
  for (const name of ["Log", "LogLevel", "Miniflare", "PLUGINS", "Request", "Response", "updateCheck"]) {
    assert.notEqual(entry[name], undefined, name);
  }
  // Names users imported from Miniflare 2's scoped packages
  for (const name of ["NoOpLog", "createFetchMock", "MiniflareError", "Storage", "FetchError"]) {
    assert.notEqual(entry[name], undefined, name);
  }
});

test("Miniflare: exports: require() from CommonJS returns the same Miniflare class", async () => {
  const require = createRequire(import.meta.url);
  const required = require("miniflare");
  const imported = await import("miniflare");
  assert.equal(typeof required.Miniflare, "function");
  assert.equal(required.Miniflare, imported.Miniflare);
  assert.deepEqual(Object.keys(required).filter((key) => key !== "__esModule").sort(), EXPORTS);
});

test("Miniflare: exports: the package entry's Miniflare runs a worker", async (t) => {
  const { Miniflare, LogLevel } = await import("miniflare");
  assert.equal(LogLevel.INFO, 3);
  const mf = new Miniflare({
    modules: true,
    script: `export default { fetch: (request) => new Response("entry " + new URL(request.url).pathname) }`,
  });
  t.after(() => mf.dispose());
  const res = await mf.dispatchFetch("http://localhost/works");
  assert.equal(await res.text(), "entry /works");
  assert.equal(typeof SourceMiniflare, "function");
});
