import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryStorage, type MemoryEntry } from "../../src/storage/memory.js";
import { names, storageContract, text, utf8 } from "./contract.js";

storageContract("MemoryStorage", async (clock) => ({ storage: new MemoryStorage(undefined, clock) }), {
  propertyKeys: 10_000,
});

test("MemoryStorage: instances over one map share their entries", async () => {
  const map = new Map<string, MemoryEntry>();
  const a = new MemoryStorage(map);
  const b = new MemoryStorage(map);
  await a.put("b", { value: utf8("1") });
  assert.equal(text((await b.get("b"))!.value), "1");
  // b's sorted view notices a's inserts and deletes
  assert.deepEqual(names(await b.list()), ["b"]);
  await a.put("a", { value: utf8("2") });
  assert.deepEqual(names(await b.list()), ["a", "b"]);
  assert.equal(await b.delete("b"), true);
  assert.equal(await a.has("b"), false);
  assert.deepEqual(names(await a.list()), ["a"]);
  assert.equal(map.size, 1);
});

test("MemoryStorage: a fresh instance starts empty", async () => {
  const a = new MemoryStorage();
  const b = new MemoryStorage();
  await a.put("key", { value: utf8("v") });
  assert.equal(await b.has("key"), false);
  assert.deepEqual(names(await b.list()), []);
});

test("MemoryStorage: the listing follows puts, deletes and expirations", async () => {
  let now = 1_000_000_000_000;
  const storage = new MemoryStorage(undefined, () => now);
  await storage.put("b", { value: utf8("b") });
  assert.deepEqual(names(await storage.list()), ["b"]);
  await storage.put("a", { value: utf8("a"), expiration: now / 1000 + 1 });
  await storage.put("c", { value: utf8("c") });
  assert.deepEqual(names(await storage.list()), ["a", "b", "c"]);
  // Overwriting doesn't duplicate
  await storage.put("b", { value: utf8("b2") });
  assert.deepEqual(names(await storage.list()), ["a", "b", "c"]);
  now += 1000;
  assert.deepEqual(names(await storage.list()), ["b", "c"]);
  await storage.put("a", { value: utf8("a") });
  assert.deepEqual(names(await storage.list()), ["a", "b", "c"]);
  await storage.delete("b");
  assert.deepEqual(names(await storage.list()), ["a", "c"]);
});
