import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parseArgv } from "../../../src/cli/args.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { readWranglerConfig } from "../../../src/core/wrangler.js";
import type { Miniflare } from "../../../src/miniflare.js";
import { PLUGINS } from "../../../src/plugins.js";
import { FilteredKVNamespace } from "../../../src/plugins/sites/filtered.js";
import { SitesPlugin, type SitesOptions } from "../../../src/plugins/sites/plugin.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, OptionType, type PluginContext } from "../../../src/shared/plugin.js";
import { HostRegistry } from "../../../src/shared/registry.js";
import type { WranglerConfig } from "../../../src/shared/wrangler.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { within } from "../../helpers/sync.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const PREFIX = "$__MINIFLARE_SITES__$/";

function pluginContext(rootPath: string): PluginContext {
  return { log: new TestLog(), compat: new Compatibility(), rootPath, registry: new HostRegistry() };
}

/** What setup() gives for a site, typed */
async function setUp(rootPath: string, options: SitesOptions) {
  const result = await new SitesPlugin(pluginContext(rootPath), options).setup();
  const namespace = result.bindings?.__STATIC_CONTENT as FilteredKVNamespace;
  const manifestJSON = result.bindings?.__STATIC_CONTENT_MANIFEST as string;
  assert.equal(typeof manifestJSON, "string");
  return { result, namespace, manifest: JSON.parse(manifestJSON) as Record<string, string> };
}

const entries = getPluginEntries({ SitesPlugin });
function fromWrangler(config: WranglerConfig, overrides: SitesOptions = {}) {
  return splitWranglerConfig(entries, splitPluginOptions(entries, overrides), config, "/project", new TestLog())
    .SitesPlugin;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("SitesPlugin: declares exactly sitePath, siteInclude and siteExclude", () => {
  const opts = SitesPlugin.prototype.opts!;
  assert.deepEqual([...opts.keys()], ["sitePath", "siteInclude", "siteExclude"]);
  const site = opts.get("sitePath")!;
  assert.equal(site.type, OptionType.STRING);
  assert.equal(site.name, "site");
  assert.equal(site.alias, "s");
  assert.equal(opts.get("siteInclude")!.type, OptionType.ARRAY);
  assert.equal(opts.get("siteExclude")!.type, OptionType.ARRAY);
});

test("SitesPlugin: parses options from the command line", () => {
  assert.deepEqual(
    parseArgv(PLUGINS, ["--site", "public", "--site-include", "*.html", "--site-include", "*.jpg", "--site-exclude", "*.txt"]),
    { sitePath: "public", siteInclude: ["*.html", "*.jpg"], siteExclude: ["*.txt"] }
  );
  assert.deepEqual(parseArgv(PLUGINS, ["-s", "site", "worker.js"]), { sitePath: "site", scriptPath: "worker.js" });
  assert.deepEqual(parseArgv(PLUGINS, ["--site=dist"]), { sitePath: "dist" });
});

test("SitesPlugin: parses options from wrangler config", () => {
  assert.deepEqual(fromWrangler({ site: { bucket: "public", include: ["*.html"], exclude: ["*.txt", "*.jpg"] } }), {
    sitePath: "public",
    siteInclude: ["*.html"],
    siteExclude: ["*.txt", "*.jpg"],
  });
  // "entry-point" is wrangler 1's build's, not Miniflare's
  assert.deepEqual(fromWrangler({ site: { bucket: "public", "entry-point": "workers-site" } }), { sitePath: "public" });
  assert.deepEqual(fromWrangler({}), {});
  // API/CLI options win, key by key
  assert.deepEqual(fromWrangler({ site: { bucket: "public", include: ["*.html"] } }, { sitePath: "dist" }), {
    sitePath: "dist",
    siteInclude: ["*.html"],
  });
});

test("SitesPlugin: reads [site] from wrangler.toml, the bucket relative to rootPath (as Miniflare 2)", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "config/wrangler.toml": `[site]
bucket = "./public"
include = ["*.html"]
exclude = ["*.txt"]
`,
    "public/index.html": "root's public",
    "config/public/index.html": "the config folder's public",
  });
  const config = await readWranglerConfig(path.join(tmp, "config", "wrangler.toml"));
  assert.deepEqual(fromWrangler(config), { sitePath: "./public", siteInclude: ["*.html"], siteExclude: ["*.txt"] });

  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    rootPath: tmp,
    wranglerConfigPath: "config/wrangler.toml",
    script: `addEventListener("fetch", (e) => e.respondWith(__STATIC_CONTENT.get("index.html").then((v) => new Response(v))))`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "root's public");
  // A declared option: no "not supported yet" warning
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("SitesPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, {
    SitesPlugin: { sitePath: "public", siteInclude: ["*.html", "*.jpg"], siteExclude: ["*.txt"] },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), [
    "Options:",
    "- Workers Site Path: public",
    "- Workers Site Include: *.html, *.jpg",
    "- Workers Site Exclude: *.txt",
  ]);
});

test("SitesPlugin: API options aren't warned about as unsupported", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "public/a.txt": "a" });
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    rootPath: tmp,
    sitePath: "public",
    siteInclude: ["*.txt"],
    siteExclude: ["b.txt"],
    script: `addEventListener("fetch", (e) => e.respondWith(new Response(__STATIC_CONTENT_MANIFEST)))`,
  });
  assert.deepEqual(JSON.parse(await (await mf.dispatchFetch("http://localhost/")).text()), { "a.txt": `${PREFIX}a.txt` });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

// ---------------------------------------------------------------------------
// setup()
// ---------------------------------------------------------------------------

test("SitesPlugin: setup: nothing without a site", async () => {
  assert.deepEqual(await new SitesPlugin(pluginContext(process.cwd())).setup(), {});
  assert.deepEqual(await new SitesPlugin(pluginContext(process.cwd()), { sitePath: "" }).setup(), {});
});

test("SitesPlugin: setup: binds a read-only namespace and the manifest, importable too, and watches the folder", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "site/index.html": "<p>Index</p>" });
  const { result, namespace, manifest } = await setUp(tmp, { sitePath: "site" });
  assert.deepEqual(Object.keys(result.bindings!), ["__STATIC_CONTENT", "__STATIC_CONTENT_MANIFEST"]);
  assert.ok(namespace instanceof FilteredKVNamespace);
  assert.deepEqual(manifest, { "index.html": `${PREFIX}index.html` });
  assert.deepEqual(result.additionalModules, {
    __STATIC_CONTENT_MANIFEST: { default: result.bindings!.__STATIC_CONTENT_MANIFEST },
  });
  assert.deepEqual(result.watch, [path.join(tmp, "site")]);

  // Read-only, with Miniflare 2's errors; nothing written
  await assert.rejects(namespace.put("key", "value"), {
    name: "TypeError",
    message: "Unable to put into read-only namespace",
  });
  await assert.rejects(namespace.delete("index.html"), {
    name: "TypeError",
    message: "Unable to delete from read-only namespace",
  });
  assert.deepEqual(await fs.readdir(path.join(tmp, "site")), ["index.html"]);
  assert.equal(await namespace.get("index.html"), "<p>Index</p>");
});

test("SitesPlugin: setup: the manifest has every file in subfolders, keys encoded, and is rebuilt at each setup", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "a/b/c/1.txt": "1",
    "2.txt": "2",
    "with space.txt": "space",
    "ń.txt": "n",
    ".well-known/security.txt": "dot",
  });
  const plugin = new SitesPlugin(pluginContext(tmp), { sitePath: tmp });
  const manifestOf = async () => JSON.parse((await plugin.setup()).bindings!.__STATIC_CONTENT_MANIFEST);
  const expected: Record<string, string> = {
    ".well-known/security.txt": `${PREFIX}.well-known%2Fsecurity.txt`,
    "2.txt": `${PREFIX}2.txt`,
    "a/b/c/1.txt": `${PREFIX}a%2Fb%2Fc%2F1.txt`,
    "with space.txt": `${PREFIX}with%20space.txt`,
    "ń.txt": `${PREFIX}%C5%84.txt`,
  };
  assert.deepEqual(await manifestOf(), expected);
  // In key order
  assert.deepEqual(Object.keys(await manifestOf()), Object.keys(expected));

  await writeFiles(tmp, { "5.txt": "5" });
  await fs.rm(path.join(tmp, "2.txt"));
  delete expected["2.txt"];
  assert.deepEqual(await manifestOf(), { ...expected, "5.txt": `${PREFIX}5.txt` });
});

test("SitesPlugin: setup: a folder that doesn't exist is an empty site, served once made", async (t) => {
  const tmp = await useTmp(t);
  const { namespace, manifest } = await setUp(tmp, { sitePath: "missing" });
  assert.deepEqual(manifest, {});
  assert.equal(await namespace.get("index.html"), null);
  assert.deepEqual(await namespace.list(), { keys: [], list_complete: true, cursor: "" });
  await writeFiles(tmp, { "missing/index.html": "made" });
  assert.equal(await namespace.get("index.html"), "made");
});

test("SitesPlugin: namespace: reads manifest keys and plain paths, in every value type", async (t) => {
  const tmp = await useTmp(t);
  const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
  await writeFiles(tmp, {
    "data/data.json": '{"a":1}',
    "data/bytes.bin": bytes,
    "with space.txt": "space",
    "ń.txt": "n",
  });
  const { namespace, manifest } = await setUp(tmp, { sitePath: tmp });
  assert.equal(await namespace.get(manifest["data/data.json"]), '{"a":1}');
  assert.equal(await namespace.get("data/data.json"), '{"a":1}');
  assert.deepEqual(await namespace.get(manifest["data/data.json"], "json"), { a: 1 });
  assert.deepEqual(new Uint8Array((await namespace.get("data/bytes.bin", "arrayBuffer"))!), bytes);
  const stream = await namespace.get(manifest["data/bytes.bin"], { type: "stream" });
  assert.deepEqual(new Uint8Array(await new Response(stream).arrayBuffer()), bytes);
  assert.deepEqual(await namespace.getWithMetadata(manifest["with space.txt"]), { value: "space", metadata: null });
  assert.equal(await namespace.get(manifest["ń.txt"]), "n");
  // The prefix with an unencoded path works too (it decodes to the same path)
  assert.equal(await namespace.get(`${PREFIX}data/data.json`), '{"a":1}');
  // Missing files
  assert.equal(await namespace.get("nope.txt"), null);
  assert.deepEqual(await namespace.getWithMetadata(`${PREFIX}nope.txt`), { value: null, metadata: null });
  // KV's own validation applies to the path the key names
  await assert.rejects(namespace.get(""), { name: "TypeError", message: "Key name cannot be empty." });
  await assert.rejects(namespace.get(PREFIX), { name: "TypeError", message: "Key name cannot be empty." });
  await assert.rejects(namespace.get(42 as any), {
    name: "TypeError",
    message: "Failed to execute 'get' on 'KvNamespace': parameter 1 is not of type 'string'.",
  });
  await assert.rejects(namespace.get("data/data.json", "bogus" as any), {
    message: 'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
  });
  // Escapes that don't decode name no file (Miniflare 2 threw a URIError)
  assert.equal(await namespace.get(`${PREFIX}%E0%A4%A`), null);
  // Folders aren't entries (Miniflare 2 threw EISDIR)
  assert.equal(await namespace.get("data"), null);
  assert.equal(await namespace.get("data/"), null);
});

test("SitesPlugin: namespace: a .meta.json file is a file like any other, files have no metadata", async (t) => {
  // Miniflare 2's file storage hid these, and read them as the metadata
  // (and the listed name) of the file they were named after
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "page.html": "<p>Page</p>",
    "page.html.meta.json": '{"key":"renamed.html","metadata":{"m":1}}',
  });
  const { namespace, manifest } = await setUp(tmp, { sitePath: tmp });
  assert.deepEqual(Object.keys(manifest), ["page.html", "page.html.meta.json"]);
  assert.deepEqual(await namespace.getWithMetadata("page.html"), { value: "<p>Page</p>", metadata: null });
  assert.deepEqual(await namespace.get("page.html.meta.json", "json"), { key: "renamed.html", metadata: { m: 1 } });
  assert.equal(await namespace.get("renamed.html"), null);
});

test("SitesPlugin: namespace: lists manifest keys, paginated, a prefix matching paths (as Miniflare 2)", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "b.txt": "", "a/1.txt": "", "a/2.txt": "", "c d.txt": "", "e.txt": "" });
  const { namespace } = await setUp(tmp, { sitePath: tmp });
  const names = async (options?: object) => {
    const { keys, ...rest } = await namespace.list(options);
    return { names: keys.map(({ name }) => name), ...rest };
  };
  assert.deepEqual(await names(), {
    names: [`${PREFIX}a%2F1.txt`, `${PREFIX}a%2F2.txt`, `${PREFIX}b.txt`, `${PREFIX}c%20d.txt`, `${PREFIX}e.txt`],
    list_complete: true,
    cursor: "",
  });
  // Key objects as KV lists them
  assert.deepEqual((await namespace.list({ limit: 1 })).keys, [
    { name: `${PREFIX}a%2F1.txt`, expiration: undefined, metadata: undefined },
  ]);
  assert.deepEqual(await names({ prefix: "a/" }), {
    names: [`${PREFIX}a%2F1.txt`, `${PREFIX}a%2F2.txt`],
    list_complete: true,
    cursor: "",
  });
  // The prefix is matched against paths, not the names listed
  assert.deepEqual((await names({ prefix: PREFIX })).names, []);

  const first = await names({ limit: 2 });
  assert.deepEqual(first.names, [`${PREFIX}a%2F1.txt`, `${PREFIX}a%2F2.txt`]);
  assert.equal(first.list_complete, false);
  const second = await names({ limit: 2, cursor: first.cursor });
  assert.deepEqual(second.names, [`${PREFIX}b.txt`, `${PREFIX}c%20d.txt`]);
  const third = await names({ limit: 2, cursor: second.cursor });
  assert.deepEqual(third, { names: [`${PREFIX}e.txt`], list_complete: true, cursor: "" });
  await assert.rejects(namespace.list({ limit: 0 }), {
    message: "KV GET failed: 400 Invalid key_count_limit of 0. Please specify an integer greater than 0.",
  });
});

// ---------------------------------------------------------------------------
// include and exclude
// ---------------------------------------------------------------------------

async function filteredSite(t: TestContext, options: SitesOptions) {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "index.html": "<p>Index</p>", "a.txt": "a", "b/b.txt": "b", "b/c.jpg": "c" });
  const { namespace, manifest } = await setUp(tmp, { sitePath: tmp, ...options });
  const served: string[] = [];
  for (const file of ["index.html", "a.txt", "b/b.txt", "b/c.jpg"]) {
    const viaManifestKey = await namespace.get(PREFIX + encodeURIComponent(file));
    const viaPath = await namespace.get(file);
    assert.equal(viaManifestKey, viaPath, file);
    if (viaPath !== null) served.push(file);
  }
  const listed = (await namespace.list()).keys.map(({ name }) => decodeURIComponent(name.substring(PREFIX.length)));
  return { served, listed, manifest: Object.keys(manifest) };
}

test("SitesPlugin: include and exclude: every file without them", async (t) => {
  const all = ["a.txt", "b/b.txt", "b/c.jpg", "index.html"];
  assert.deepEqual(await filteredSite(t, {}), { served: ["index.html", "a.txt", "b/b.txt", "b/c.jpg"], listed: all, manifest: all });
});

test("SitesPlugin: include and exclude: only included files", async (t) => {
  const site = await filteredSite(t, { siteInclude: ["b"] });
  assert.deepEqual(site, { served: ["b/b.txt", "b/c.jpg"], listed: ["b/b.txt", "b/c.jpg"], manifest: ["b/b.txt", "b/c.jpg"] });
});

test("SitesPlugin: include and exclude: all but excluded files", async (t) => {
  const site = await filteredSite(t, { siteExclude: ["b", "*.html"] });
  assert.deepEqual(site, { served: ["a.txt"], listed: ["a.txt"], manifest: ["a.txt"] });
});

test("SitesPlugin: include and exclude: with both, exclude is ignored, in the manifest too", async (t) => {
  // As Miniflare 2's docs say; its manifest still left out excluded files
  const site = await filteredSite(t, { siteInclude: ["*.txt"], siteExclude: ["b"] });
  assert.deepEqual(site, { served: ["a.txt", "b/b.txt"], listed: ["a.txt", "b/b.txt"], manifest: ["a.txt", "b/b.txt"] });
});

test("SitesPlugin: include and exclude: globs match as in Miniflare 2", async (t) => {
  const cases: [glob: string, matches: string[]][] = [
    ["c.jpg", ["b/c.jpg"]],
    ["b/c.jpg", ["b/c.jpg"]],
    ["*.txt", ["a.txt", "b/b.txt"]],
    ["**/*.txt", ["a.txt", "b/b.txt"]],
    ["b/*.txt", ["b/b.txt"]],
    ["*/*.jpg", ["b/c.jpg"]],
    ["{a,index}.*", ["index.html", "a.txt"]],
    // Any part of the path matches
    ["dex", ["index.html"]],
    ["c.jp", ["b/c.jpg"]],
  ];
  for (const [glob, matches] of cases) {
    assert.deepEqual((await filteredSite(t, { siteInclude: [glob] })).served, matches, glob);
  }
  // "!" leaves out what the other globs match
  assert.deepEqual((await filteredSite(t, { siteInclude: ["*.txt", "!a.txt"] })).served, ["b/b.txt"]);
  // No globs: nothing
  assert.deepEqual((await filteredSite(t, { siteInclude: [] })).served, []);
});

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

const serviceWorker = `addEventListener("fetch", (event) => event.respondWith(handle(new URL(event.request.url))));
async function handle(url) {
  if (url.pathname === "/manifest") return new Response(__STATIC_CONTENT_MANIFEST);
  const key = decodeURIComponent(url.pathname.substring(1));
  const value = await __STATIC_CONTENT.get(key);
  return new Response(value, { status: value === null ? 404 : 200 });
}`;

const modulesWorker = `import manifest from "__STATIC_CONTENT_MANIFEST";
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/manifest") {
      // The module and the binding are the same string
      if (manifest !== env.__STATIC_CONTENT_MANIFEST) throw new Error("manifests differ");
      return new Response(manifest);
    }
    if (url.pathname === "/typeof") {
      // kv-asset-handler reads the service-worker globals with typeof
      return new Response(typeof __STATIC_CONTENT + " " + typeof __STATIC_CONTENT_MANIFEST);
    }
    const key = decodeURIComponent(url.pathname.substring(1));
    const value = await env.__STATIC_CONTENT.get(key);
    return new Response(value, { status: value === null ? 404 : 200 });
  },
};`;

async function useSiteWorker(t: TestContext, modules: boolean, options: object = {}): Promise<{ mf: Miniflare; site: string }> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "site/index.html": "<p>Index</p>", "site/css/style.css": "body {}", "worker.mjs": modulesWorker });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    sitePath: "site",
    ...(modules ? { modules: true, scriptPath: "worker.mjs" } : { script: serviceWorker }),
    ...options,
  });
  return { mf, site: path.join(tmp, "site") };
}

async function text(mf: Miniflare, url: string): Promise<[status: number, body: string]> {
  const res = await mf.dispatchFetch(`http://localhost${url}`);
  return [res.status, await res.text()];
}

for (const modules of [false, true]) {
  const format = modules ? "modules" : "service-worker";

  test(`SitesPlugin: ${format} worker: reads the namespace and the manifest`, async (t) => {
    const { mf } = await useSiteWorker(t, modules);
    assert.deepEqual(JSON.parse((await text(mf, "/manifest"))[1]), {
      "css/style.css": `${PREFIX}css%2Fstyle.css`,
      "index.html": `${PREFIX}index.html`,
    });
    assert.deepEqual(await text(mf, `/${encodeURIComponent(`${PREFIX}css%2Fstyle.css`)}`), [200, "body {}"]);
    assert.deepEqual(await text(mf, "/index.html"), [200, "<p>Index</p>"]);
    assert.deepEqual(await text(mf, "/missing.html"), [404, ""]);
    const bindings = await mf.getBindings();
    assert.ok(bindings.__STATIC_CONTENT instanceof FilteredKVNamespace);
    assert.equal(typeof bindings.__STATIC_CONTENT_MANIFEST, "string");
    if (modules) assert.deepEqual(await text(mf, "/typeof"), [200, "undefined undefined"]);
    else {
      const globals = await mf.getGlobalScope();
      assert.equal(globals.__STATIC_CONTENT, bindings.__STATIC_CONTENT);
      assert.equal(globals.__STATIC_CONTENT_MANIFEST, bindings.__STATIC_CONTENT_MANIFEST);
    }
  });

  test(`SitesPlugin: ${format} worker: edits are served at once, without a reload`, async (t) => {
    const { mf, site } = await useSiteWorker(t, modules);
    // (no watch: nothing reloads, a read reads the file)
    let reloads = 0;
    mf.addEventListener("reload", (event) => {
      if (!event.initial) reloads++;
    });
    assert.deepEqual(await text(mf, "/index.html"), [200, "<p>Index</p>"]);
    await fs.writeFile(path.join(site, "index.html"), "<p>Edited</p>");
    assert.deepEqual(await text(mf, "/index.html"), [200, "<p>Edited</p>"]);
    assert.deepEqual(await text(mf, `/${encodeURIComponent(`${PREFIX}index.html`)}`), [200, "<p>Edited</p>"]);
    await fs.writeFile(path.join(site, "new.txt"), "new");
    assert.deepEqual(await text(mf, "/new.txt"), [200, "new"]);
    await fs.rm(path.join(site, "index.html"));
    assert.deepEqual(await text(mf, "/index.html"), [404, ""]);
    assert.equal(reloads, 0);
  });

  test(`SitesPlugin: ${format} worker: with watch, a change in the folder rebuilds the manifest`, async (t) => {
    const { mf, site } = await useSiteWorker(t, modules, { watch: true });
    assert.deepEqual(Object.keys(JSON.parse((await text(mf, "/manifest"))[1])), ["css/style.css", "index.html"]);
    const reloaded = new Promise<void>((resolve) =>
      mf.addEventListener("reload", (event) => {
        if (!event.initial) resolve();
      })
    );
    await writeFiles(site, { "js/new.js": "// new" });
    await within(reloaded, "reload after a new site file");
    assert.deepEqual(JSON.parse((await text(mf, "/manifest"))[1]), {
      "css/style.css": `${PREFIX}css%2Fstyle.css`,
      "index.html": `${PREFIX}index.html`,
      "js/new.js": `${PREFIX}js%2Fnew.js`,
    });
  });

  test(`SitesPlugin: ${format} worker: writes are refused`, async (t) => {
    const script = `
      const attempt = async (f) => { try { await f(); return "ok"; } catch (e) { return e.name + ": " + e.message; } };
      const handle = async (ns) => new Response(JSON.stringify([
        await attempt(() => ns.put("index.html", "overwritten")),
        await attempt(() => ns.delete("index.html")),
        await ns.get("index.html"),
      ]));`;
    const { mf } = await useSiteWorker(t, modules, {
      script: modules
        ? `${script} export default { fetch: (request, env) => handle(env.__STATIC_CONTENT) };`
        : `${script} addEventListener("fetch", (e) => e.respondWith(handle(__STATIC_CONTENT)));`,
      scriptPath: undefined,
    });
    assert.deepEqual(JSON.parse((await text(mf, "/"))[1]), [
      "TypeError: Unable to put into read-only namespace",
      "TypeError: Unable to delete from read-only namespace",
      "<p>Index</p>",
    ]);
  });
}

test("SitesPlugin: modules worker: bindings from later plugins stop being guarded as globals (Miniflare 2 quirk)", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "site/index.html": "" });
  const mf = useMiniflare(t, {
    rootPath: tmp,
    sitePath: "site",
    modules: true,
    kvNamespaces: ["NS"],
    bindings: { VAR: "value" },
    script: `const attempt = (f) => { try { return String(f()); } catch (e) { return e.message.split("\\n")[0]; } };
export default { fetch: () => new Response(JSON.stringify([attempt(() => NS), attempt(() => VAR)])) };`,
  });
  assert.deepEqual(JSON.parse((await text(mf, "/"))[1]), [
    // KV's binding comes before the site's: still the helpful error
    "NS is not defined.",
    // The user's bindings come after: V8's plain error
    "VAR is not defined",
  ]);
});
