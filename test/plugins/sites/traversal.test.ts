// No key reads a file outside the site folder. Miniflare 2 checked keys with
// a string prefix test on the joined path, so a key leading to a sibling
// folder whose name starts with the site's ("site-secret" beside "site")
// read it: "../site-secret/secret.txt", and the manifest form
// "$__MINIFLARE_SITES__$/..%2Fsite-secret%2Fsecret.txt", which
// kv-asset-handler passes on from a request's URL.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import type { FilteredKVNamespace } from "../../../src/plugins/sites/filtered.js";
import { SitesPlugin } from "../../../src/plugins/sites/plugin.js";
import { isSitePath } from "../../../src/plugins/sites/storage.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { HostRegistry } from "../../../src/shared/registry.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const PREFIX = "$__MINIFLARE_SITES__$/";
const WINDOWS = process.platform === "win32";

interface Site {
  tmp: string;
  namespace: FilteredKVNamespace;
  manifest: Record<string, string>;
  /** Whether symbolic links could be made here (not always on Windows) */
  links: boolean;
}

/**
 * A site folder "site" beside "site-secret" and "secret.txt", with links in
 * the site to files and folders inside and outside it
 */
async function useSite(t: TestContext): Promise<Site> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "site/index.html": "index",
    "site/sub/file.txt": "sub file",
    "site-secret/secret.txt": "sibling secret",
    "site-secret/index.html": "sibling index",
    "secret.txt": "parent secret",
  });
  const site = path.join(tmp, "site");
  let links = true;
  try {
    await fs.symlink("index.html", path.join(site, "inside.html"));
    await fs.symlink("sub", path.join(site, "inside-dir"), "dir");
    await fs.symlink(path.join("..", "secret.txt"), path.join(site, "outside.txt"));
    await fs.symlink(path.join("..", "site-secret"), path.join(site, "outside-dir"), "dir");
    await fs.symlink(path.join(tmp, "secret.txt"), path.join(site, "absolute.txt"));
    await fs.symlink(".", path.join(site, "loop"), "dir");
    await fs.symlink("nowhere.txt", path.join(site, "dangling.txt"));
  } catch (e: any) {
    if (e?.code !== "EPERM") throw e;
    t.diagnostic("symbolic links can't be made here: not checked");
    links = false;
  }
  const ctx = { log: new TestLog(), compat: new Compatibility(), rootPath: tmp, registry: new HostRegistry() };
  const result = await new SitesPlugin(ctx, { sitePath: "site" }).setup();
  return {
    tmp,
    namespace: result.bindings!.__STATIC_CONTENT,
    manifest: JSON.parse(result.bindings!.__STATIC_CONTENT_MANIFEST),
    links,
  };
}

/** Asserts no form of `key` reads anything */
async function assertNothing(namespace: FilteredKVNamespace, key: string): Promise<void> {
  for (const form of [key, PREFIX + encodeURIComponent(key)]) {
    assert.equal(await namespace.get(form), null, JSON.stringify(form));
    assert.equal(await namespace.get(form, "arrayBuffer"), null, JSON.stringify(form));
    assert.deepEqual(await namespace.getWithMetadata(form), { value: null, metadata: null }, JSON.stringify(form));
  }
}

async function listedPaths(namespace: FilteredKVNamespace): Promise<string[]> {
  const { keys } = await namespace.list();
  return keys.map(({ name }) => decodeURIComponent(name.substring(PREFIX.length)));
}

test("Sites: traversal: keys leading out of the folder read nothing", async (t) => {
  const { tmp, namespace } = await useSite(t);
  const keys = [
    "../secret.txt",
    "../site-secret/secret.txt",
    "../site-secret/index.html",
    "sub/../../site-secret/secret.txt",
    "sub/../../secret.txt",
    "../site",
    // Backslashes, on every platform
    "..\\secret.txt",
    "..\\site-secret\\secret.txt",
    "sub\\..\\..\\site-secret\\secret.txt",
    // Absolute paths
    path.join(tmp, "secret.txt"),
    path.join(tmp, "site-secret", "secret.txt"),
    `/${path.join(tmp, "site", "index.html")}`,
    "/index.html",
    // NUL bytes
    "index.html\0",
    "index.html\0.txt",
    "\0../secret.txt",
  ];
  for (const key of keys) await assertNothing(namespace, key);
  // Manifest keys written by hand: every case and spelling of the escapes
  for (const key of [
    "..%2fsite-secret%2fsecret.txt",
    "..%2Fsite-secret%2Fsecret.txt",
    "%2e%2e/site-secret/secret.txt",
    "%2E%2E%2Fsecret.txt",
    ".%2e/secret.txt",
    "..%5csite-secret%5csecret.txt",
    "..%5Csecret.txt",
    "index.html%00",
    `${encodeURIComponent(tmp)}%2Fsecret.txt`,
  ]) {
    assert.equal(await namespace.get(PREFIX + key), null, key);
  }
  // ".." itself is no key name, for KV as for Miniflare 2
  for (const key of ["..", `${PREFIX}..`, `${PREFIX}%2E%2E`]) {
    await assert.rejects(namespace.get(key), { name: "TypeError", message: '".." is not allowed as a key name.' });
  }
  // Keys are decoded once only: a doubly encoded "../" is a file name
  assert.equal(await namespace.get(`${PREFIX}..%252fsecret.txt`), null);
  assert.equal(await namespace.get("..%2fsecret.txt"), null);
  // The files themselves are there
  assert.equal(await fs.readFile(path.join(tmp, "site-secret", "secret.txt"), "utf8"), "sibling secret");
});

test("Sites: traversal: only plain relative paths name files", async (t) => {
  const { namespace } = await useSite(t);
  assert.equal(await namespace.get("index.html"), "index");
  assert.equal(await namespace.get("sub/file.txt"), "sub file");
  // Spellings Miniflare 2 normalised, which name no key in production either
  for (const key of ["./index.html", "sub//file.txt", "sub/./file.txt", "sub/x/../file.txt", "sub/", "index.html/"]) {
    await assertNothing(namespace, key);
  }
});

test("Sites: traversal: links are followed only while they stay in the folder", async (t) => {
  const { namespace, manifest, links } = await useSite(t);
  if (!links) return;
  // Inside: served and listed
  assert.equal(await namespace.get("inside.html"), "index");
  assert.equal(await namespace.get(`${PREFIX}inside-dir%2Ffile.txt`), "sub file");
  // A link to the folder itself serves its files under it, but isn't walked when listing
  assert.equal(await namespace.get("loop/sub/file.txt"), "sub file");
  // Out of the folder, to a file or a folder, relative or absolute: nothing
  for (const key of ["outside.txt", "outside-dir/secret.txt", "outside-dir/index.html", "absolute.txt", "dangling.txt"]) {
    await assertNothing(namespace, key);
  }
  const expected = ["index.html", "inside-dir/file.txt", "inside.html", "sub/file.txt"];
  assert.deepEqual(Object.keys(manifest), expected);
  assert.deepEqual(await listedPaths(namespace), expected);
});

test("Sites: traversal: the listing and the manifest hold only files inside the folder", async (t) => {
  const { namespace, manifest, links } = await useSite(t);
  const expected = links
    ? ["index.html", "inside-dir/file.txt", "inside.html", "sub/file.txt"]
    : ["index.html", "sub/file.txt"];
  assert.deepEqual(await listedPaths(namespace), expected);
  assert.deepEqual(Object.keys(manifest), expected);
  for (const key of expected) assert.notEqual(await namespace.get(manifest[key]), null, key);
});

test("Sites: traversal: a file name no key could read back isn't listed", { skip: WINDOWS }, async (t) => {
  const tmp = await useTmp(t);
  // A backslash is an ordinary character in a Linux or macOS file name
  await writeFiles(tmp, { "site/back\\slash.txt": "backslash", "site/ok.txt": "ok" });
  const ctx = { log: new TestLog(), compat: new Compatibility(), rootPath: tmp, registry: new HostRegistry() };
  const result = await new SitesPlugin(ctx, { sitePath: "site" }).setup();
  const namespace: FilteredKVNamespace = result.bindings!.__STATIC_CONTENT;
  assert.deepEqual(await listedPaths(namespace), ["ok.txt"]);
  assert.deepEqual(JSON.parse(result.bindings!.__STATIC_CONTENT_MANIFEST), { "ok.txt": `${PREFIX}ok.txt` });
  await assertNothing(namespace, "back\\slash.txt");
});

test("Sites: traversal: a worker can't read outside the folder either", async (t) => {
  const { tmp } = await useSite(t);
  const mf = useMiniflare(t, {
    rootPath: tmp,
    sitePath: "site",
    script: `addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
async function handle(request) {
  const keys = await request.json();
  const values = [];
  for (const key of keys) values.push(await __STATIC_CONTENT.get(key));
  return new Response(JSON.stringify(values));
}`,
  });
  const keys = [
    "index.html",
    "../site-secret/secret.txt",
    `${PREFIX}..%2Fsite-secret%2Fsecret.txt`,
    `${PREFIX}%2e%2e/site-secret/secret.txt`,
    "..\\site-secret\\secret.txt",
    path.join(tmp, "site-secret", "secret.txt"),
  ];
  const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: JSON.stringify(keys) });
  assert.deepEqual(await res.json(), ["index", null, null, null, null, null]);
});

test("Sites: isSitePath: relative paths of plain segments only", () => {
  for (const key of ["index.html", "a/b/c.txt", ".well-known/x", "...", "a..b", "with space", "ń.txt", "%2e%2e"]) {
    // ("..." is a name on POSIX; Windows would drop its dots)
    if (WINDOWS && key === "...") continue;
    assert.equal(isSitePath(key), true, key);
  }
  for (const key of ["", ".", "..", "../a", "a/..", "a/../b", "./a", "a/.", "/a", "a/", "a//b", "a\\b", "\\a", "a\0b"]) {
    assert.equal(isSitePath(key), false, JSON.stringify(key));
  }
  if (WINDOWS) {
    for (const key of ["C:/a", "C:a", "a:stream", "con", "NUL.txt", "a/com1", "a.", "a ", "... "]) {
      assert.equal(isSitePath(key), false, key);
    }
  }
});
