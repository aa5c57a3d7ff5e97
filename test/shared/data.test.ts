import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import {
  arrayCompare,
  formatSize,
  globsToMatcher,
  kebabCase,
  lexicographicCompare,
  numericCompare,
  resolveStoragePersist,
  spaceCase,
  titleCase,
  viewToArray,
  viewToBuffer,
} from "../../src/shared/data.js";

test("lexicographicCompare: orders strings by UTF-8 bytes", () => {
  assert.equal(lexicographicCompare("a", "a"), 0);
  assert.equal(lexicographicCompare("", ""), 0);
  assert.ok(lexicographicCompare("a", "b") < 0);
  assert.ok(lexicographicCompare("b", "a") > 0);
  // Prefixes first
  assert.ok(lexicographicCompare("a", "ab") < 0);
  assert.ok(lexicographicCompare("ab", "a") > 0);
  assert.ok(lexicographicCompare("", "a") < 0);
  // Not by UTF-16 code units: "\uFFFF" (EF BF BF) is before "\u{10000}"
  // (F0 90 80 80), although as a JavaScript string it sorts after it
  assert.ok("\uFFFF" > "\u{10000}");
  assert.ok(lexicographicCompare("\uFFFF", "\u{10000}") < 0);
  assert.ok(lexicographicCompare("\u{10000}", "\uFFFF") > 0);
  // Upper case before lower case
  assert.ok(lexicographicCompare("Z", "a") < 0);
});

test("lexicographicCompare: sorts keys as Workers storage does", () => {
  const keys = ["\u{1F600}", "b", "\uFFFF", "a", "aa", "\u00E9", "B", ""];
  assert.deepEqual(keys.sort(lexicographicCompare), [
    "",
    "B",
    "a",
    "aa",
    "b",
    "\u00E9",
    "\uFFFF",
    "\u{1F600}",
  ]);
});

test("arrayCompare: compares element by element, then by length", () => {
  assert.equal(arrayCompare([1, 2, 3], [1, 2, 3]), 0);
  assert.ok(arrayCompare([1, 2, 3], [1, 3]) < 0);
  assert.ok(arrayCompare([2], [1, 9, 9]) > 0);
  assert.ok(arrayCompare([1, 2], [1, 2, 0]) < 0);
  assert.ok(arrayCompare(new Uint8Array([255]), new Uint8Array([1, 0])) > 0);
});

test("numericCompare: compares digit runs as numbers", () => {
  assert.ok(numericCompare("2021-9-1", "2021-11-10") < 0);
  assert.ok(numericCompare("2021-11-10", "2021-9-1") > 0);
  assert.ok(numericCompare("2021-11-9", "2021-11-10") < 0);
  assert.equal(numericCompare("2022-03-21", "2022-3-21"), 0);
  assert.equal(numericCompare("2022-03-21", "2022-03-21"), 0);
});

test("globsToMatcher: matches paths against globs", () => {
  const matcher = globsToMatcher(["**/*.txt", "**/*.html"]);
  assert.equal(matcher.test("/project/static/a.txt"), true);
  assert.equal(matcher.test("/project/index.html"), true);
  assert.equal(matcher.test("/project/index.js"), false);
  assert.equal(matcher.test("a.txt"), true);
  // Dot files match
  assert.equal(matcher.test("/project/.hidden.txt"), true);
  assert.equal(matcher.test("/project/.dir/a.txt"), true);
  // Case matters
  assert.equal(matcher.test("/project/A.TXT"), false);
});

test("globsToMatcher: globs match anywhere in an absolute path", () => {
  const matcher = globsToMatcher(["src/**/*.js"]);
  assert.equal(matcher.test("/home/user/project/src/a/b.js"), true);
  assert.equal(matcher.test("/home/user/project/src/b.js"), true);
  assert.equal(matcher.test("/home/user/project/lib/b.js"), false);

  const directory = globsToMatcher(["modules"]);
  assert.equal(directory.test("/project/modules/a.js"), true);
  assert.equal(directory.test("/project/lib/a.js"), false);

  const file = globsToMatcher(["*.wasm"]);
  assert.equal(file.test("/project/build/add.wasm"), true);
  assert.equal(file.test("/project/build/add.js"), false);
});

test("globsToMatcher: extension globs match anywhere in the path, not only at the end", () => {
  // picomatch's `contains` option, as Miniflare 2 uses it: the glob may match
  // any part of the string, so "**/*.js" also matches "*.jsx", "*.js.map" and
  // even "*.json", and a directory named "*.js"
  const js = globsToMatcher(["**/*.js"]);
  assert.equal(js.test("/project/src/index.js"), true);
  assert.equal(js.test("/project/src/component.jsx"), true);
  assert.equal(js.test("/project/dist/index.js.map"), true);
  assert.equal(js.test("/project/data.json"), true);
  assert.equal(js.test("/project/lib.js/index"), true);
  assert.equal(js.test("/project/src/index.mjs"), false);
  assert.equal(js.test("/project/src/index.cjs"), false);

  const mjs = globsToMatcher(["**/*.mjs"]);
  assert.equal(mjs.test("/project/index.mjs.map"), true);
  assert.equal(mjs.test("/project/index.js"), false);

  const wasm = globsToMatcher(["**/*.wasm"]);
  assert.equal(wasm.test("/project/add.wasm.bak"), true);
});

test("globsToMatcher: globs starting with ! exclude paths", () => {
  const matcher = globsToMatcher(["**/*.js", "!**/ignored.js"]);
  assert.equal(matcher.test("/project/src/index.js"), true);
  assert.equal(matcher.test("/project/src/ignored.js"), false);
  assert.equal(matcher.test("/project/ignored.js"), false);

  const directory = globsToMatcher(["**/*.js", "!node_modules"]);
  assert.equal(directory.test("/project/src/index.js"), true);
  assert.equal(directory.test("/project/node_modules/dep/index.js"), false);

  // Exclusions alone match nothing
  const onlyIgnore = globsToMatcher(["!**/*.js"]);
  assert.equal(onlyIgnore.test("/project/a.txt"), false);
  assert.equal(onlyIgnore.test("/project/a.js"), false);
});

test("globsToMatcher: an empty list matches nothing", () => {
  for (const matcher of [globsToMatcher([]), globsToMatcher()]) {
    assert.equal(matcher.test("/project/index.js"), false);
    assert.equal(matcher.test(""), false);
    assert.equal(matcher.test("anything"), false);
    assert.equal(matcher.toString(), "");
  }
});

test("globsToMatcher: toString: lists the globs", () => {
  assert.equal(globsToMatcher(["**/*.js"]).toString(), "**/*.js");
  assert.equal(
    globsToMatcher(["**/*.js", "!**/ignored.js"]).toString(),
    "**/*.js, !**/ignored.js"
  );
});

test("kebabCase: converts camelCase to kebab-case", () => {
  assert.equal(kebabCase("kvPersist"), "kv-persist");
  assert.equal(kebabCase("durableObjectsPersist"), "durable-objects-persist");
  assert.equal(kebabCase("httpsKeyPath"), "https-key-path");
  assert.equal(kebabCase("upstream"), "upstream");
  assert.equal(kebabCase("a1B"), "a1-b");
  // Every capital gets its own dash
  assert.equal(kebabCase("HTTPPlugin"), "-h-t-t-p-plugin");
  assert.equal(kebabCase("CorePlugin"), "-core-plugin");
});

test("spaceCase: separates words with spaces", () => {
  assert.equal(spaceCase("kvPersist"), "kv Persist");
  assert.equal(spaceCase("durableObjectsPersist"), "durable Objects Persist");
  assert.equal(spaceCase("HTTPPlugin"), "HTTP Plugin");
  assert.equal(spaceCase("HTMLRewriterPlugin"), "HTML Rewriter Plugin");
  assert.equal(spaceCase("CorePlugin"), "Core Plugin");
  assert.equal(spaceCase("a1B"), "a1 B");
  assert.equal(spaceCase("upstream"), "upstream");
  assert.equal(spaceCase(""), "");
});

test("titleCase: capitalises each word", () => {
  assert.equal(titleCase("kvPersist"), "Kv Persist");
  assert.equal(titleCase("durableObjectsPersist"), "Durable Objects Persist");
  assert.equal(titleCase("httpsKeyPath"), "Https Key Path");
  assert.equal(titleCase("HTTPPlugin"), "HTTP Plugin");
  assert.equal(titleCase("HTMLRewriterPlugin"), "HTML Rewriter Plugin");
  assert.equal(titleCase("cfFetch"), "Cf Fetch");
  assert.equal(titleCase("upstream"), "Upstream");
  assert.equal(titleCase("<symbol>"), "<symbol>");
  assert.equal(titleCase(""), "");
});

test("resolveStoragePersist: resolves paths against the root", () => {
  const root = path.resolve("/root");
  assert.equal(resolveStoragePersist(root, "data"), path.resolve(root, "data"));
  assert.equal(
    resolveStoragePersist(root, "./nested/dir"),
    path.resolve(root, "nested", "dir")
  );
  assert.equal(resolveStoragePersist(root, "../up"), path.resolve(root, "..", "up"));
  const absolute = path.resolve("/absolute/data");
  assert.equal(resolveStoragePersist(root, absolute), absolute);
});

test("resolveStoragePersist: keeps URLs, booleans and undefined", () => {
  const root = path.resolve("/root");
  assert.equal(
    resolveStoragePersist(root, "redis://localhost:6379"),
    "redis://localhost:6379"
  );
  assert.equal(
    resolveStoragePersist(root, "REDIS://localhost:6379"),
    "REDIS://localhost:6379"
  );
  assert.equal(resolveStoragePersist(root, "file:///tmp/data"), "file:///tmp/data");
  assert.equal(resolveStoragePersist(root, "//host/path"), "//host/path");
  assert.equal(resolveStoragePersist(root, true), true);
  assert.equal(resolveStoragePersist(root, false), false);
  assert.equal(resolveStoragePersist(root), undefined);
  assert.equal(resolveStoragePersist(root, undefined), undefined);
});

test("formatSize: formats bytes, switching unit at half of the next", () => {
  assert.equal(formatSize(0), "0B");
  assert.equal(formatSize(100), "100B");
  assert.equal(formatSize(511), "511B");
  assert.equal(formatSize(512), "0.50KiB");
  assert.equal(formatSize(1023), "1.00KiB");
  assert.equal(formatSize(1024), "1.00KiB");
  assert.equal(formatSize(1536), "1.50KiB");
  assert.equal(formatSize(100 * 1024), "100.00KiB");
  assert.equal(formatSize(512 * 1024 - 1), "512.00KiB");
  assert.equal(formatSize(512 * 1024), "0.50MiB");
  assert.equal(formatSize(1024 * 1024), "1.00MiB");
  assert.equal(formatSize(1.25 * 1024 * 1024), "1.25MiB");
  assert.equal(formatSize(10 * 1024 * 1024), "10.00MiB");
});

test("viewToArray: views the same bytes as an offset view", () => {
  const buffer = new ArrayBuffer(8);
  new Uint8Array(buffer).set([0, 1, 2, 3, 4, 5, 6, 7]);
  const view = new DataView(buffer, 2, 4);
  const array = viewToArray(view);
  assert.ok(array instanceof Uint8Array);
  assert.deepEqual([...array], [2, 3, 4, 5]);
  assert.equal(array.buffer, buffer);
  assert.equal(array.byteOffset, 2);
  assert.equal(array.byteLength, 4);
  // Shares memory with the view
  array[0] = 42;
  assert.equal(view.getUint8(0), 42);

  const words = new Uint16Array(buffer, 4, 2);
  assert.deepEqual([...viewToArray(words)], [4, 5, 6, 7]);
});

test("viewToBuffer: copies just the bytes of an offset view", () => {
  const buffer = new ArrayBuffer(8);
  new Uint8Array(buffer).set([0, 1, 2, 3, 4, 5, 6, 7]);
  const view = new Uint8Array(buffer, 3, 3);
  const copy = viewToBuffer(view);
  assert.ok(copy instanceof ArrayBuffer);
  assert.notEqual(copy, buffer);
  assert.equal(copy.byteLength, 3);
  assert.deepEqual([...new Uint8Array(copy)], [3, 4, 5]);
  // A copy: changing it doesn't change the original
  new Uint8Array(copy)[0] = 42;
  assert.equal(view[0], 3);

  const whole = viewToBuffer(new Uint8Array(buffer));
  assert.equal(whole.byteLength, 8);
  assert.deepEqual([...new Uint8Array(viewToBuffer(Buffer.from("hi")))], [104, 105]);
});

test("globsToMatcher: the extension-glob shortcut agrees with picomatch", async () => {
  const { default: picomatch } = await import("picomatch");
  const paths = [
    "/p/a.js", "/p/a.jsx", "/p/a.json", "/p/a.mjs", "/p/a.cjs", "/p/.js", "/p/a.js/b",
    "a.js", "/p/a.JS", "/p/a.wasm", "/p/a.wasm.bak", "/p/js", "/p/a_js", "/p/a.txt",
  ];
  for (const glob of ["**/*.js", "**/*.mjs", "**/*.cjs", "**/*.wasm", "**/*.txt"]) {
    const expected = picomatch(glob, { dot: true, bash: true, contains: true });
    const actual = globsToMatcher([glob]);
    for (const p of paths) {
      assert.equal(actual.test(p), expected(p), `${glob} on ${p}`);
    }
  }
});

test("numericCompare: compares digit runs as numbers, like a numeric collator", async () => {
  const { numericCompare } = await import("../../src/shared/data.js");
  const collator = new Intl.Collator(undefined, { numeric: true });
  const values = [
    "1970-01-01", "2021-11-10", "2021-9-1", "2021-11-9", "2022-03-21", "2022-3-21",
    "2022-11-30", "2022-12-01", "2", "10", "02", "a", "a1", "a10", "a2", "", "2022-11-30a",
  ];
  for (const a of values) {
    for (const b of values) {
      const expected = Math.sign(collator.compare(a, b));
      assert.equal(Math.sign(numericCompare(a, b)), expected, `${a} vs ${b}`);
    }
  }
});
