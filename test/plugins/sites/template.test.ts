// A site made as Cloudflare's Workers Sites template makes one
// (test/fixtures/sites/template: a kv-asset-handler worker, public/ files),
// served as Miniflare 2.14.4 serves it. The expected statuses, headers and
// bodies are what Miniflare 2.14.4 answered for the same project and
// requests (run under Node 20 with --experimental-vm-modules), but for the
// requests that read outside the site folder, which Miniflare 2 answered
// with the files.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { build } from "esbuild";
import type { Miniflare } from "../../../src/miniflare.js";
import type { Response } from "../../../src/standards/http.js";
import { fixturePath } from "../../helpers/fixtures.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const PREFIX = "$__MINIFLARE_SITES__$/";
const template = fixturePath("sites", "template");

/** The template's worker, bundled with kv-asset-handler as wrangler would (once per format) */
const bundles = new Map<string, Promise<string>>();
function bundle(entry: "index.js" | "index.mjs"): Promise<string> {
  let code = bundles.get(entry);
  if (code === undefined) {
    code = build({
      entryPoints: [path.join(template, "workers-site", entry)],
      bundle: true,
      write: false,
      format: entry === "index.js" ? "iife" : "esm",
      // Provided by Miniflare, as by Workers
      external: ["__STATIC_CONTENT_MANIFEST"],
      logLevel: "silent",
    }).then((result) => result.outputFiles[0].text);
    bundles.set(entry, code);
  }
  return code;
}

interface Project {
  mf: Miniflare;
  /** The site folder */
  publicPath: string;
}

/**
 * A copy of the template project, with a non-ASCII file name, and a folder
 * and a file beside the site folder that no request may read
 */
async function useProject(t: TestContext, modules: boolean): Promise<Project> {
  const tmp = await useTmp(t);
  const project = path.join(tmp, "project");
  await fs.cp(template, project, { recursive: true });
  await writeFiles(project, {
    "public/files/ünïcödé.txt": "a file whose name is not ASCII\n",
    "public-secret/secret.txt": "sibling secret\n",
    "public-secret/x/index.html": "sibling index\n",
    "secret.txt": "parent secret\n",
    [modules ? "worker.mjs" : "worker.js"]: await bundle(modules ? "index.mjs" : "index.js"),
  });
  const mf = useMiniflare(t, {
    rootPath: project,
    wranglerConfigPath: true,
    modules,
    scriptPath: modules ? "worker.mjs" : "worker.js",
  });
  return { mf, publicPath: path.join(project, "public") };
}

type Headers = [name: string, value: string][];

/** What the template's worker adds to each page it serves (service-worker format only) */
const SECURITY_HEADERS: Headers = [
  ["feature-policy", "none"],
  ["referrer-policy", "unsafe-url"],
  ["x-content-type-options", "nosniff"],
  ["x-frame-options", "DENY"],
  ["x-xss-protection", "1; mode=block"],
];

interface Expected {
  status: number;
  headers: Headers;
  /** The body: a file of the site, or text */
  file?: string;
  text?: string;
}

/** A file in the manifest, as kv-asset-handler serves one it may cache at the edge */
function page(site: string, file: string, contentType: string, status = 200): Expected {
  return {
    status,
    headers: [
      ["accept-ranges", "bytes"],
      ["cf-cache-status", "MISS"],
      ["content-type", contentType],
      ["etag", `"${PREFIX}${encodeURIComponent(file)}"`],
      // (content-length: the file's size, added when compared)
    ],
    file: path.join(site, file),
  };
}

const HTML = "text/html; charset=utf-8";

/** [method, path, request headers, what Miniflare 2 answered] for the service-worker and modules templates */
function requests(site: string, modules: boolean): [string, string, Record<string, string>, Expected][] {
  const security = modules ? [] : SECURITY_HEADERS;
  const served = (file: string, contentType: string): Expected => {
    const expected = page(site, file, contentType);
    expected.headers.push(...security);
    return expected;
  };
  // The template's 404 page: copied from the 404.html response, status 404, no security headers
  const notFound = page(site, "404.html", HTML, 404);
  return [
    ["GET", "/", {}, served("index.html", HTML)],
    ["GET", "/index.html", {}, served("index.html", HTML)],
    ["GET", "/404.html", {}, served("404.html", HTML)],
    ["GET", "/favicon.ico", {}, served("favicon.ico", "image/vnd.microsoft.icon")],
    ["GET", "/css/style.css", {}, served("css/style.css", "text/css; charset=utf-8")],
    ["GET", "/js/main.js", {}, served("js/main.js", "application/javascript; charset=utf-8")],
    ["GET", "/img/logo.svg", {}, served("img/logo.svg", "image/svg+xml")],
    ["GET", "/about", {}, served("about/index.html", HTML)],
    ["GET", "/about/", {}, served("about/index.html", HTML)],
    ["GET", "/files/data.json", {}, served("files/data.json", "application/json")],
    ["GET", "/files/with%20space.txt", {}, served("files/with space.txt", "text/plain; charset=utf-8")],
    ["GET", "/files/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt", {}, served("files/ünïcödé.txt", "text/plain; charset=utf-8")],
    ["GET", "/missing.txt", {}, notFound],
    ["GET", "/missing", {}, notFound],
    // Not cached at the edge: only the content type (and the worker's headers); the body is there
    [
      "HEAD",
      "/css/style.css",
      {},
      { status: 200, headers: [["content-type", "text/css; charset=utf-8"], ...security], file: path.join(site, "css/style.css") },
    ],
    // kv-asset-handler refuses the method, for the 404 page too: the first error's message
    [
      "POST",
      "/",
      {},
      { status: 500, headers: [["content-type", "text/plain;charset=UTF-8"]], text: "POST is not a valid request method" },
    ],
    // Only a cached response is ever a 304
    ["GET", "/index.html", { "If-None-Match": `"${PREFIX}index.html"` }, served("index.html", HTML)],
    // A manifest key as a path: read, but not cached at the edge
    [
      "GET",
      `/${PREFIX}css%2Fstyle.css`,
      {},
      { status: 200, headers: [["content-type", "text/css; charset=utf-8"], ...security], file: path.join(site, "css/style.css") },
    ],
    // Outside the folder. URLs normalise "%2e%2e" away, and a path that isn't a
    // manifest key isn't decoded, so these were 404s in Miniflare 2 too...
    ["GET", "/..%2fpublic-secret%2fsecret.txt", {}, notFound],
    ["GET", "/%2e%2e/public-secret/secret.txt", {}, notFound],
    ["GET", `/${PREFIX}..%2fsecret.txt`, {}, notFound],
    // ...but Miniflare 2 answered these two 200 with the sibling folder's
    // files ("sibling secret", "sibling index")
    ["GET", `/${PREFIX}..%2fpublic-secret%2fsecret.txt`, {}, notFound],
    ["GET", `/${PREFIX}..%2fpublic-secret%2fx`, {}, notFound],
  ];
}

async function assertResponse(res: Response, expected: Expected, what: string): Promise<void> {
  const body = new Uint8Array(await res.arrayBuffer());
  const expectedBody = expected.file === undefined ? new TextEncoder().encode(expected.text) : await fs.readFile(expected.file);
  const headers: Headers = [...expected.headers];
  if (headers.some(([name]) => name === "etag")) headers.push(["content-length", String(expectedBody.byteLength)]);
  assert.equal(res.status, expected.status, what);
  assert.equal(res.statusText, "", what);
  assert.deepEqual([...res.headers].sort(), headers.sort(), what);
  assert.deepEqual(body, new Uint8Array(expectedBody), what);
}

for (const modules of [false, true]) {
  const format = modules ? "modules" : "service-worker";

  test(`Sites: template (${format}): pages, assets, the 404 page and headers as Miniflare 2 served them`, async (t) => {
    const { mf, publicPath } = await useProject(t, modules);
    for (const [method, url, headers, expected] of requests(publicPath, modules)) {
      const res = await mf.dispatchFetch(`http://localhost:8787${url}`, { method, headers });
      await assertResponse(res, expected, `${method} ${url}`);
    }
  });

  test(`Sites: template (${format}): files are never cached, edits are served at once`, async (t) => {
    const { mf, publicPath } = await useProject(t, modules);
    const css = path.join(publicPath, "css", "style.css");
    const get = async () => {
      const res = await mf.dispatchFetch("http://localhost:8787/css/style.css");
      await res.waitUntil();
      return res;
    };
    let res = await get();
    assert.equal(res.headers.get("CF-Cache-Status"), "MISS");
    assert.equal(await res.text(), await fs.readFile(css, "utf8"));
    // Asked for again: still read from the folder
    res = await get();
    assert.equal(res.headers.get("CF-Cache-Status"), "MISS");
    await res.arrayBuffer();
    // kv-asset-handler's cache.put() stored nothing
    const cacheKey = `http://localhost:8787/${PREFIX}css%2Fstyle.css`;
    assert.equal(await (await mf.getCaches()).default.match(cacheKey), undefined);

    await fs.writeFile(css, "body { color: red; }\n");
    res = await get();
    assert.equal(res.headers.get("CF-Cache-Status"), "MISS");
    assert.equal(res.headers.get("Content-Length"), "21");
    assert.equal(await res.text(), "body { color: red; }\n");

    // A file added since the manifest was built (no watch): not a manifest
    // key, so read by its path, and not cached either
    await writeFiles(publicPath, { "new.txt": "new\n" });
    res = await mf.dispatchFetch("http://localhost:8787/new.txt");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("CF-Cache-Status"), null);
    assert.equal(await res.text(), "new\n");
  });
}
