import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import { Redis } from "ioredis";
import type { Storage } from "../../src/shared/storage.js";
import {
  PluginStorageFactory,
  VariedStorageFactory,
  fileNamespaceDirectory,
  LAYOUT_FOLDER,
  namespaceDirectory,
  pluginStorageName,
} from "../../src/storage/factory.js";
import { encodeName, FileStorage } from "../../src/storage/file.js";
import { LOCK_FILE_NAME } from "../../src/storage/lock.js";
import { MemoryStorage } from "../../src/storage/memory.js";
import { RedisStorage } from "../../src/storage/redis.js";
import { startRedisServer } from "../helpers/redis.js";
import { useTmp } from "../helpers/tmp.js";
import { adversarialKeys, names, text, utf8 } from "./contract.js";

async function put(storage: Storage, key: string, value: string): Promise<void> {
  await storage.put(key, { value: utf8(value) });
}

async function read(storage: Storage, key: string): Promise<string | undefined> {
  const entry = await storage.get(key);
  return entry && text(entry.value);
}

/** Whether `child` is strictly inside `parent` */
function isInside(parent: string, child: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

describe("VariedStorageFactory", () => {
  test("no persist: one MemoryStorage per namespace, kept for the factory's life", async () => {
    const factory = new VariedStorageFactory();
    const a = factory.storage("a");
    assert.ok(a instanceof MemoryStorage);
    await put(a, "key", "in a");
    assert.equal(factory.storage("a"), a);
    assert.equal(factory.storage("a", false), a);
    assert.equal(await read(factory.storage("a"), "key"), "in a");

    const b = factory.storage("b");
    assert.ok(b instanceof MemoryStorage);
    assert.notEqual(b, a);
    assert.equal(await b.has("key"), false);
    await put(b, "key", "in b");
    assert.equal(await read(a, "key"), "in a");

    // Another factory has its own
    assert.equal(await new VariedStorageFactory().storage("a").has("key"), false);
    await factory.dispose();
  });

  test("memory storages can be shared through the constructor's map", async () => {
    const storages = new Map<string, MemoryStorage>();
    await put(new VariedStorageFactory(storages).storage("ns"), "key", "kept");
    assert.equal(await read(new VariedStorageFactory(storages).storage("ns"), "key"), "kept");
  });

  test("persist true must be resolved first", () => {
    assert.throws(() => new VariedStorageFactory().storage("ns", true), TypeError);
  });

  test("a path: FileStorage under namespaceDirectory(<path>/mfs1, namespace)", async (t) => {
    const tmp = await useTmp(t);
    const factory = new VariedStorageFactory();
    const storage = factory.storage("ns", tmp);
    assert.ok(storage instanceof FileStorage);
    await put(storage, "key", "value");
    const file = path.join(fileNamespaceDirectory(tmp, "ns"), encodeName("key"));
    assert.equal(fileNamespaceDirectory(tmp, "ns"), namespaceDirectory(path.join(tmp, LAYOUT_FOLDER), "ns"));
    assert.equal(file, path.join(tmp, "mfs1", "ns", "key"));
    assert.ok((await fs.readFile(file)).toString().startsWith("value"));

    // Nested namespaces are nested directories
    const nested = factory.storage("kv:NS", tmp);
    await put(nested, "key", "nested");
    assert.equal(namespaceDirectory(tmp, "kv:NS"), path.join(tmp, "kv", "NS"));
    const nestedFile = path.join(fileNamespaceDirectory(tmp, "kv:NS"), "key");
    assert.ok((await fs.readFile(nestedFile)).toString().startsWith("nested"));

    // A new storage on the same path sees the data
    assert.equal(await read(new VariedStorageFactory().storage("ns", tmp), "key"), "value");
    assert.equal(await read(factory.storage("other", tmp), "key"), undefined);
  });

  test("namespaceDirectory never leaves the root", () => {
    const root = path.resolve("/storage/root");
    const spaces = [...adversarialKeys, ":", "::", "a:..", "..:..", "a:../..:b", "kv:../../x"];
    const seen = new Map<string, string>();
    for (const space of spaces) {
      const dir = namespaceDirectory(root, space);
      assert.ok(isInside(root, dir), `${JSON.stringify(space)} → ${dir}`);
      assert.equal(dir.split(path.sep).length - root.split(path.sep).length, space.split(":").length);
      assert.equal(seen.get(dir) ?? space, space, `${JSON.stringify(space)} and ${JSON.stringify(seen.get(dir))}`);
      seen.set(dir, space);
    }
  });

  test("a redis:// URL: RedisStorage", async () => {
    const server = await startRedisServer();
    const factory = new VariedStorageFactory();
    const connection = new Redis(server.url);
    try {
      const storage = factory.storage("ns", server.url);
      assert.ok(storage instanceof RedisStorage);
      await put(storage, "key", "in redis");
      assert.equal(await read(factory.storage("ns", server.url), "key"), "in redis");
      assert.equal(await read(factory.storage("other", server.url), "key"), undefined);
      assert.equal(await read(new RedisStorage(connection, "ns"), "key"), "in redis");
    } finally {
      // Connections first: the server must outlive them
      await factory.dispose();
      await connection.quit();
      await server.stop();
    }
  });
});

describe("PluginStorageFactory", () => {
  test("memory: namespaces are prefixed with the plugin's name", async () => {
    const inner = new VariedStorageFactory();
    const kv = new PluginStorageFactory(inner, "KVPlugin");
    const cache = new PluginStorageFactory(inner, "CachePlugin");
    const storage = kv.storage("NS");
    assert.ok(storage instanceof MemoryStorage);
    assert.equal(storage, inner.storage("kv:NS"));
    assert.equal(kv.storage("NS", false), storage);
    assert.equal(cache.storage("NS"), inner.storage("cache:NS"));
    assert.notEqual(cache.storage("NS"), storage);
  });

  test("persist true: <cwd>/.mf/<plugin>/mfs1/<namespace>", async (t) => {
    const tmp = await fs.realpath(await useTmp(t));
    const kv = new PluginStorageFactory(new VariedStorageFactory(), "KVPlugin");
    const cwd = process.cwd();
    let storage: Storage;
    process.chdir(tmp);
    try {
      storage = kv.storage("NS", true);
    } finally {
      process.chdir(cwd);
    }
    assert.ok(storage instanceof FileStorage);
    await put(storage, "key", "value");
    const file = path.join(tmp, ".mf", "kv", "mfs1", "NS", "key");
    assert.ok((await fs.readFile(file)).toString().startsWith("value"));
    assert.deepEqual(await fs.readdir(path.join(tmp, ".mf")), ["kv"]);
  });

  test("persist true with another default root", async (t) => {
    const tmp = await useTmp(t);
    const objects = new PluginStorageFactory(new VariedStorageFactory(), "DurableObjectsPlugin", path.join(tmp, "state"));
    await put(objects.storage("OBJECT", true), "key", "value");
    assert.equal(await read(new FileStorage(path.join(tmp, "state", "durableobjects", "mfs1", "OBJECT")), "key"), "value");
  });

  test("a path: <path>/mfs1/<namespace>, without the plugin's name", async (t) => {
    const tmp = await useTmp(t);
    const kv = new PluginStorageFactory(new VariedStorageFactory(), "KVPlugin");
    const storage = kv.storage("NS", tmp);
    assert.ok(storage instanceof FileStorage);
    await put(storage, "key", "value");
    assert.deepEqual((await fs.readdir(tmp)).sort(), [LOCK_FILE_NAME, "mfs1"]);
    assert.equal(await read(new FileStorage(path.join(tmp, "mfs1", "NS")), "key"), "value");
    assert.deepEqual(names(await storage.list()), ["key"]);
  });

  test("a redis:// URL: namespaces are prefixed with the plugin's name", async () => {
    const server = await startRedisServer();
    const inner = new VariedStorageFactory();
    const connection = new Redis(server.url);
    try {
      const kv = new PluginStorageFactory(inner, "KVPlugin");
      await put(kv.storage("NS", server.url), "key", "value");
      assert.equal(await read(new RedisStorage(connection, "kv:NS"), "key"), "value");
      assert.equal(await read(new RedisStorage(connection, "NS"), "key"), undefined);
    } finally {
      await inner.dispose();
      await connection.quit();
      await server.stop();
    }
  });
});

test("pluginStorageName", () => {
  assert.equal(pluginStorageName("DurableObjectsPlugin"), "durableobjects");
  assert.equal(pluginStorageName("KVPlugin"), "kv");
  assert.equal(pluginStorageName("CachePlugin"), "cache");
  assert.equal(pluginStorageName("R2Plugin"), "r2");
});
