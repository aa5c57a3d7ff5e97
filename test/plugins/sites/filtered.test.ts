import assert from "node:assert/strict";
import { test } from "node:test";
import { FilteredKVNamespace, type KeyMapper } from "../../../src/plugins/sites/filtered.js";
import { MemoryStorage } from "../../../src/storage/memory.js";

const encoder = new TextEncoder();

/** Keys section1key1 ... section3key2, each with metadata */
async function seeded(): Promise<MemoryStorage> {
  const storage = new MemoryStorage();
  for (let i = 1; i <= 3; i++) {
    for (let j = 1; j <= 2; j++) {
      await storage.put(`section${i}key${j}`, { value: encoder.encode(`value${i}${j}`), metadata: { section: i } });
    }
  }
  return storage;
}

const sections12 = /^section[12]/;
const section1 = /^section1/;
const allKeys = ["section1key1", "section1key2", "section2key1", "section2key2", "section3key1", "section3key2"];

const prefixMapper: KeyMapper = {
  lookup: (key) => (key.startsWith("prefix:") ? key.substring("prefix:".length) : key),
  reverseLookup: (key) => `prefix:${key}`,
};

/** The keys a namespace serves, by get() and by getWithMetadata() */
async function served(ns: FilteredKVNamespace): Promise<string[]> {
  const found: string[] = [];
  for (const key of allKeys) {
    const value = await ns.get(key);
    const withMetadata = await ns.getWithMetadata(key);
    if (value === null) {
      assert.deepEqual(withMetadata, { value: null, metadata: null }, key);
    } else {
      assert.equal(value, `value${key[7]}${key[11]}`);
      assert.deepEqual(withMetadata, { value, metadata: { section: Number(key[7]) } }, key);
      found.push(key);
    }
  }
  return found;
}

async function listed(ns: FilteredKVNamespace, options?: object): Promise<string[]> {
  return (await ns.list(options)).keys.map(({ name }) => name);
}

test("FilteredKVNamespace: include: only matching keys are seen", async () => {
  const ns = new FilteredKVNamespace(await seeded(), { include: sections12 });
  const expected = allKeys.slice(0, 4);
  assert.deepEqual(await served(ns), expected);
  assert.deepEqual(await listed(ns), expected);
});

test("FilteredKVNamespace: exclude: matching keys aren't seen", async () => {
  const ns = new FilteredKVNamespace(await seeded(), { exclude: sections12 });
  assert.deepEqual(await served(ns), ["section3key1", "section3key2"]);
  assert.deepEqual(await listed(ns), ["section3key1", "section3key2"]);
});

test("FilteredKVNamespace: include and exclude: exclude is ignored", async () => {
  const ns = new FilteredKVNamespace(await seeded(), { include: sections12, exclude: section1 });
  assert.deepEqual(await served(ns), allKeys.slice(0, 4));
  assert.deepEqual(await listed(ns), allKeys.slice(0, 4));
});

test("FilteredKVNamespace: neither: every key", async () => {
  const ns = new FilteredKVNamespace(await seeded());
  assert.deepEqual(await served(ns), allKeys);
  assert.deepEqual(await listed(ns), allKeys);
});

test("FilteredKVNamespace: list: pages are full, keys left out don't count", async () => {
  const storage = new MemoryStorage();
  // Every other key is left out
  for (let i = 0; i < 20; i++) {
    await storage.put(`key${String(i).padStart(2, "0")}`, { value: encoder.encode(String(i)) });
  }
  const ns = new FilteredKVNamespace(storage, { exclude: { test: (key) => Number(key.substring(3)) % 2 === 1 } });
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await ns.list({ limit: 3, cursor });
    pages.push(page.keys.map(({ name }) => name));
    assert.equal(page.list_complete, page.cursor === "");
    cursor = page.cursor;
  } while (cursor !== "");
  assert.deepEqual(pages, [
    ["key00", "key02", "key04"],
    ["key06", "key08", "key10"],
    ["key12", "key14", "key16"],
    ["key18"],
  ]);
  // A prefix narrows further
  assert.deepEqual(await listed(ns, { prefix: "key1" }), ["key10", "key12", "key14", "key16", "key18"]);
});

test("FilteredKVNamespace: list: a page may end on keys left out, the next one is then empty and complete", async () => {
  const storage = new MemoryStorage();
  for (const key of ["a", "b", "c"]) await storage.put(key, { value: encoder.encode(key) });
  const ns = new FilteredKVNamespace(storage, { include: /^[ab]$/ });
  const first = await ns.list({ limit: 2 });
  assert.deepEqual(first.keys.map(({ name }) => name), ["a", "b"]);
  assert.equal(first.list_complete, false);
  assert.deepEqual(await ns.list({ limit: 2, cursor: first.cursor }), { keys: [], list_complete: true, cursor: "" });
});

test("FilteredKVNamespace: map: keys are looked up and listed through the mapper", async () => {
  const storage = await seeded();
  const ns = new FilteredKVNamespace(storage, { map: prefixMapper, include: sections12 });
  assert.equal(await ns.get("prefix:section1key1"), "value11");
  assert.deepEqual(await ns.getWithMetadata("prefix:section2key2"), { value: "value22", metadata: { section: 2 } });
  // Filters apply to the storage's keys
  assert.equal(await ns.get("prefix:section3key1"), null);
  assert.deepEqual(await listed(ns, { limit: 2 }), ["prefix:section1key1", "prefix:section1key2"]);
  // Listing again doesn't prefix twice (the storage's keys are untouched)
  assert.deepEqual(await listed(ns, { limit: 1 }), ["prefix:section1key1"]);
  assert.ok(await storage.has("section1key1"));
});

test("FilteredKVNamespace: read-only: put and delete reject, storing nothing", async () => {
  const storage = await seeded();
  const ns = new FilteredKVNamespace(storage, { readOnly: true });
  await assert.rejects(ns.put("key", "value", { metadata: { a: 1 } }), {
    name: "TypeError",
    message: "Unable to put into read-only namespace",
  });
  await assert.rejects(ns.delete("section1key1"), {
    name: "TypeError",
    message: "Unable to delete from read-only namespace",
  });
  // Even for keys KV would refuse: the namespace is read-only first
  await assert.rejects(ns.put("", "value"), { message: "Unable to put into read-only namespace" });
  assert.equal(await storage.get("key"), undefined);
  assert.ok(await storage.has("section1key1"));
});

test("FilteredKVNamespace: writable: put and delete reach the storage, through the mapper", async () => {
  const storage = await seeded();
  const ns = new FilteredKVNamespace(storage, { map: prefixMapper });
  await ns.put("prefix:key", "value", { metadata: { a: 1 } });
  assert.deepEqual((await storage.get("key"))?.value, encoder.encode("value"));
  assert.deepEqual(await ns.getWithMetadata("prefix:key"), { value: "value", metadata: { a: 1 } });
  await ns.delete("prefix:section1key1");
  assert.equal(await storage.has("section1key1"), false);
});

test("FilteredKVNamespace: KV's validation still applies", async () => {
  const ns = new FilteredKVNamespace(await seeded(), { map: prefixMapper, include: sections12 });
  await assert.rejects(ns.get(42 as any), {
    name: "TypeError",
    message: "Failed to execute 'get' on 'KvNamespace': parameter 1 is not of type 'string'.",
  });
  await assert.rejects(ns.get("prefix:"), { name: "TypeError", message: "Key name cannot be empty." });
  await assert.rejects(ns.get("x".repeat(513)), {
    message: "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
  });
  await assert.rejects(ns.list({ limit: 1001 }), {
    message: "KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
  });
});
