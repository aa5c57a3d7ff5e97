import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { BuildError, BuildPlugin } from "../../../src/plugins/build/plugin.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { populateBuildConfig } from "../../../src/core/wrangler.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions } from "../../../src/shared/plugin.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";
import { HostRegistry } from "../../../src/shared/registry.js";

function createPlugin(rootPath: string, options: ConstructorParameters<typeof BuildPlugin>[1], log = new TestLog()) {
  return new BuildPlugin({ log, compat: new Compatibility(), rootPath, registry: new HostRegistry() }, options);
}

const entries = getPluginEntries({ BuildPlugin });
function fromWrangler(config: WranglerConfig) {
  return splitWranglerConfig(entries, splitPluginOptions(entries, {}), config, "/project", new TestLog()).BuildPlugin;
}

test("BuildPlugin: parses options from wrangler config", () => {
  assert.deepEqual(
    fromWrangler({
      build: { command: "npm run build", cwd: "build", watch_dir: "source" },
      miniflare: { build_watch_dirs: ["extra"] },
    }),
    { buildCommand: "npm run build", buildBasePath: "build", buildWatchPaths: ["extra", "source"] }
  );
  assert.deepEqual(fromWrangler({ build: { command: "make", watch_dir: ["a", "b"] } }).buildWatchPaths, ["a", "b"]);
  // Only a command: watch src by default
  assert.deepEqual(fromWrangler({ build: { command: "make" } }).buildWatchPaths, ["src"]);
  assert.deepEqual(fromWrangler({}), {});
});

test("BuildPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, {
    BuildPlugin: { buildCommand: "npm run build", buildBasePath: "build", buildWatchPaths: ["src1", "src2"] },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), [
    "Options:",
    "- Build Command: npm run build",
    "- Build Base Path: build",
    "- Build Watch Paths: src1, src2",
  ]);
});

test("BuildPlugin: beforeSetup: runs the command in a shell with MINIFLARE=1", async (t) => {
  const tmp = await useTmp(t);
  const log = new TestLog();
  const plugin = createPlugin(tmp, {
    buildCommand: `${JSON.stringify(process.execPath)} -e "require('fs').writeFileSync('out.txt', process.env.MINIFLARE + ':' + process.cwd())"`,
    buildWatchPaths: ["src", "lib"],
  }, log);
  const result = await plugin.beforeSetup();
  const out = await fs.readFile(path.join(tmp, "out.txt"), "utf8");
  assert.equal(out, `1:${await fs.realpath(tmp)}`);
  assert.deepEqual(result.watch, [path.join(tmp, "src"), path.join(tmp, "lib")]);
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), ["Build succeeded"]);
});

test("BuildPlugin: beforeSetup: runs in buildBasePath", async (t) => {
  const tmp = await useTmp(t);
  await fs.mkdir(path.join(tmp, "sub"));
  const plugin = createPlugin(tmp, {
    buildCommand: `${JSON.stringify(process.execPath)} -e "require('fs').writeFileSync('here.txt', '')"`,
    buildBasePath: "sub",
  });
  await plugin.beforeSetup();
  await fs.access(path.join(tmp, "sub", "here.txt"));
});

test("BuildPlugin: beforeSetup: throws BuildError with the exit code", async (t) => {
  const tmp = await useTmp(t);
  const plugin = createPlugin(tmp, { buildCommand: "exit 42" });
  await assert.rejects(Promise.resolve(plugin.beforeSetup()), (e: any) => {
    assert.ok(e instanceof BuildError);
    assert.equal(e.code, 42);
    assert.equal(e.name, "BuildError [42]");
    assert.equal(e.message, "Build failed with exit code 42");
    return true;
  });
});

test("BuildPlugin: builds the script before running it", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "build.js": `require("fs").mkdirSync("dist", { recursive: true }); require("fs").writeFileSync("dist/worker.js", 'addEventListener("fetch", (e) => e.respondWith(new Response("built")))');`,
  });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    buildCommand: `${JSON.stringify(process.execPath)} build.js`,
    scriptPath: "dist/worker.js",
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "built");
});

test("BuildPlugin: synthesises Wrangler 1 webpack and rust builds", () => {
  const webpack: WranglerConfig = { type: "webpack" };
  populateBuildConfig(webpack, "/project", "dev");
  assert.equal(webpack.build?.command, "wrangler build --env dev");
  assert.equal(webpack.build?.cwd, "/project");
  assert.equal(webpack.build?.upload?.main, path.join("worker", "script.js"));
  assert.deepEqual(webpack.miniflare?.build_watch_dirs, ["src", "index.js"]);

  const site: WranglerConfig = { type: "webpack", site: { bucket: "public" } };
  populateBuildConfig(site, "/project");
  assert.equal(site.build?.command, "wrangler build");
  assert.equal(site.build?.upload?.main, path.join("workers-site", "worker", "script.js"));

  const rust: WranglerConfig = { type: "rust" };
  populateBuildConfig(rust, "/project");
  assert.match(rust.build!.command!, /^wrangler build && .+ .+rust\.js$/);
  assert.equal(rust.build?.upload?.main, path.join("worker", "generated", "script.js"));
  assert.deepEqual(rust.wasm_modules, { wasm: path.join("/project", "worker", "generated", "script.wasm") });

  // An explicit [build] section is left alone
  const explicit: WranglerConfig = { type: "webpack", build: { command: "make" } };
  populateBuildConfig(explicit, "/project");
  assert.deepEqual(explicit.build, { command: "make" });
});
