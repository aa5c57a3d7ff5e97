import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { VariedStorageFactory } from "../../src/storage/factory.js";
import { RedisStorage } from "../../src/storage/redis.js";
import { type RedisServer, startRedisServer } from "../helpers/redis.js";
import { until } from "../helpers/sync.js";
import { names, show, storageContract, text, utf8 } from "./contract.js";

/** How many clients the server has connected */
async function clientCount(connection: Redis): Promise<number> {
  const list = (await connection.client("LIST")) as string;
  return list.split("\n").filter((line) => line.trim() !== "").length;
}

describe("redis", () => {
  let server: RedisServer | undefined;
  let connection: Redis;
  let namespaces = 0;
  /** A namespace no other test has used */
  const freshNamespace = () => `test:${process.pid}:${++namespaces}`;

  before(async () => {
    server = await startRedisServer();
    connection = new Redis(server.url);
  });
  after(async () => {
    await connection?.quit();
    await server?.stop();
  });

  storageContract(
    "RedisStorage",
    async (clock) => ({ storage: new RedisStorage(connection, freshNamespace(), clock) }),
    { propertyKeys: 2000 }
  );

  test("RedisStorage: namespaces never see each other's keys", async () => {
    const base = freshNamespace();
    // Namespaces that are prefixes of each other or spell out the layout
    const spaces = ["a", "a:", "a:v", "a:v:b", "a:i", "a:1:a", "1:a", "miniflare:1:a", "", ":", "kv", "kv:NS", "\u00e9", "e", "\ud800"].map(
      (space) => `${base}${space}`
    );
    spaces.push("a", "a:v:b", "");
    const keys = ["b", "v:b", "b:v:x", "i", "", "x", ":v:b", "1:a:v:b", "NS", "v:"];
    const storages = spaces.map((space) => new RedisStorage(connection, space));
    for (let s = 0; s < storages.length; s++) {
      await storages[s].putMany(keys.map((key) => [key, { value: utf8(`${s}|${key}`), metadata: { s } }]));
    }
    const sorted = [...keys].sort();
    for (let s = 0; s < storages.length; s++) {
      const label = `namespace ${show(spaces[s])}`;
      assert.deepEqual(names(await storages[s].list()), sorted, label);
      for (const key of keys) {
        const got = await storages[s].get(key);
        assert.equal(text(got!.value), `${s}|${key}`, `${label}, key ${show(key)}`);
        assert.deepEqual(got!.metadata, { s });
      }
    }
    // Deleting in one leaves the others whole
    assert.equal(await storages[3].deleteMany(keys), keys.length);
    assert.deepEqual(names(await storages[3].list()), []);
    for (let s = 0; s < storages.length; s++) {
      if (s !== 3) assert.deepEqual(names(await storages[s].list()), sorted, show(spaces[s]));
    }
    for (const storage of storages) await storage.deleteMany(keys);
  });

  test("RedisStorage: instances on one namespace share entries", async () => {
    const space = freshNamespace();
    const other = new Redis(server!.url);
    try {
      const a = new RedisStorage(connection, space);
      const b = new RedisStorage(other, space);
      await a.put("key", { value: utf8("v"), metadata: { m: 1 } });
      assert.deepEqual((await b.get("key"))!.metadata, { m: 1 });
      assert.equal(await b.delete("key"), true);
      assert.equal(await a.has("key"), false);
    } finally {
      await other.quit();
    }
  });

  test("RedisStorage: putMany lands all at once (readers see none or all)", async (t) => {
    const writerConnection = new Redis(server!.url);
    const readerConnection = new Redis(server!.url);
    try {
      let partial = 0;
      let between = 0;
      for (let round = 0; round < 3; round++) {
        const space = freshNamespace();
        const writer = new RedisStorage(writerConnection, space);
        const reader = new RedisStorage(readerConnection, space);
        const count = 2000;
        const data = Array.from({ length: count }, (_, i): [string, { value: Uint8Array }] => [
          `key${i}`,
          { value: utf8(`value${i}`) },
        ]);
        let done = false;
        const seen: number[] = [];
        const reading = (async () => {
          while (!done) seen.push((await reader.list({}, true)).keys.length);
        })();
        // The reader is listing before the write starts
        await until(() => seen.length > 0, "a first listing");
        await writer.putMany(data);
        done = true;
        await reading;
        seen.push((await reader.list({}, true)).keys.length);
        partial += seen.filter((n) => n !== 0 && n !== count).length;
        between += seen.length;
        assert.equal(seen[seen.length - 1], count);
        assert.equal(await reader.hasMany(data.map(([key]) => key)), count);
      }
      t.diagnostic(`listings read while putMany ran: ${between}`);
      assert.equal(partial, 0, "a listing saw some of a putMany's entries but not all");
    } finally {
      await writerConnection.quit();
      await readerConnection.quit();
    }
  });

  test("RedisStorage: putMany with an entry that can't be serialised stores nothing", async () => {
    const storage = new RedisStorage(connection, freshNamespace());
    await assert.rejects(
      storage.putMany([
        ["a", { value: utf8("a") }],
        ["b", { value: utf8("b"), metadata: { big: 1n } }],
      ])
    );
    assert.equal(await storage.hasMany(["a", "b"]), 0);
    // The connection is still usable
    await storage.put("c", { value: utf8("c") });
    assert.deepEqual(names(await storage.list()), ["c"]);
  });

  test("VariedStorageFactory: dispose() closes its Redis connection", async () => {
    const before = await clientCount(connection);
    const factory = new VariedStorageFactory();
    const storage = factory.storage("disposal", server!.url);
    assert.ok(storage instanceof RedisStorage);
    await storage.put("key", { value: utf8("v") });
    // One connection per URL, however many namespaces
    const second = factory.storage("disposal2", server!.url);
    await second.put("key", { value: utf8("v") });
    assert.equal(await clientCount(connection), before + 1);
    await factory.dispose();
    // The server counts the connection until it has seen it close
    let after = await clientCount(connection);
    await until(async () => (after = await clientCount(connection)) === before, "the connection closed").catch(() => {});
    assert.equal(after, before);
    // The data outlives the connection
    assert.equal(text((await new RedisStorage(connection, "disposal").get("key"))!.value), "v");
  });
});
