import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { deserialize } from "node:v8";
import { DURABLE_OBJECTS_MINIFLARE2_LAYOUT } from "../../src/plugins/durable-objects/plugin.js";
import { KV_MINIFLARE2_LAYOUT } from "../../src/plugins/kv/plugin.js";
import { LogLevel } from "../../src/shared/log.js";
import type { Storage, StorageFactory, StoredValueMeta } from "../../src/shared/storage.js";
import { fileNamespaceDirectory, LAYOUT_FOLDER, VariedStorageFactory } from "../../src/storage/factory.js";
import { FileStorage } from "../../src/storage/file.js";
import { MemoryStorage } from "../../src/storage/memory.js";
import {
  type Miniflare2Layout,
  MIGRATED_MARKER,
  type MigrateOptions,
  migrateMiniflare2,
} from "../../src/storage/migrate.js";
import { fixturePath } from "../helpers/fixtures.js";
import { TestLog } from "../helpers/log.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const OBJECT = "COUNTER:b32eac942a66c07b60b29df172f8543d0484fb5511aea6f76075e2f903ff62b7";
const FAR_FUTURE = 2147483000;
const utf8 = (text: string) => new TextEncoder().encode(text);

/** The info line of a migration into `persist` of what `moved`, from `from` */
function migratedLine(moved: string, persist: string, { from = [persist], note = "" } = {}): string {
  const to = path.join(persist, LAYOUT_FOLDER);
  return `Migrated ${moved} from Miniflare 2's ${from.join(" and ")} to ${to} (old files left in place${note})`;
}

interface Expected {
  value: string | Uint8Array;
  expiration?: number;
  metadata?: unknown;
}

// What Miniflare 2.14.4 was asked to store when it wrote test/fixtures/miniflare2/kv
const KV_FIXTURE: Record<string, Record<string, Expected>> = {
  NS: {
    Upper: { value: "v:Upper" },
    con: { value: "v:con" },
    "a/b": { value: "v:a/b" },
    binary: { value: Uint8Array.of(0x00, 0xff, 0x01, 0x02) },
    plain: { value: "v:plain" },
    "q?x": { value: "v:q?x" },
    "sp ace": { value: "v:sp ace" },
    "unicode-é✓": { value: "v:unicode-é✓" },
    "user:1": { value: "v:user:1" },
    withboth: { value: "b", expiration: FAR_FUTURE, metadata: [1, "two"] },
    withexp: { value: "e", expiration: FAR_FUTURE },
    withmeta: { value: "m", metadata: { a: 1, s: "é" } },
  },
  OTHER: { k: { value: "other" } },
};

/** A copy of part of the Miniflare 2 fixture, as a persist folder */
async function copyFixture(t: TestContext, part: "kv" | "do"): Promise<string> {
  const dir = path.join(await useTmp(t), part);
  await fs.cp(fixturePath("miniflare2", part), dir, { recursive: true, preserveTimestamps: true });
  return dir;
}

/** A storage factory as Miniflare uses, disposed (unlocked) after the test */
function useFactory(t: TestContext): VariedStorageFactory {
  const factory = new VariedStorageFactory();
  t.after(() => factory.dispose());
  return factory;
}

function migrate(factory: StorageFactory, options: Partial<MigrateOptions> & { persist: string; log: TestLog }) {
  return migrateMiniflare2(factory, { layout: KV_MINIFLARE2_LAYOUT, sources: [options.persist], ...options });
}

/** Every file and folder under `dir` but the new layout's, with contents and modification times */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const dirent of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(dirent.parentPath, dirent.name);
    const relative = path.relative(dir, file);
    if (relative.split(path.sep)[0] === LAYOUT_FOLDER || relative === ".miniflare.lock") continue;
    const stat = await fs.lstat(file);
    if (dirent.isDirectory()) {
      result.set(relative + "/", `${stat.mode} ${stat.mtimeMs}`);
    } else {
      const hash = createHash("sha256").update(await fs.readFile(file)).digest("hex");
      result.set(relative, `${stat.mode} ${stat.mtimeMs} ${stat.size} ${hash}`);
    }
  }
  return result;
}

/** A namespace's entries in the new layout, by key */
async function entriesOf(storage: Storage): Promise<Map<string, StoredValueMeta>> {
  const entries = new Map<string, StoredValueMeta>();
  for (const { name } of (await storage.list()).keys) entries.set(name, (await storage.get(name))!);
  return entries;
}

function assertEntries(actual: Map<string, StoredValueMeta>, expected: Record<string, Expected>): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort());
  for (const [key, { value, expiration, metadata }] of Object.entries(expected)) {
    const entry = actual.get(key)!;
    const bytes = typeof value === "string" ? utf8(value) : value;
    assert.deepEqual(new Uint8Array(entry.value), bytes, `value of ${JSON.stringify(key)}`);
    assert.equal(entry.expiration, expiration, `expiration of ${JSON.stringify(key)}`);
    assert.deepEqual(entry.metadata, metadata, `metadata of ${JSON.stringify(key)}`);
  }
}

/** Every .meta.json Miniflare 2 wrote under `dir` (key, expiration, metadata) */
async function sidecars(dir: string): Promise<{ key: string; expiration?: number; metadata?: unknown }[]> {
  const found = [];
  for (const dirent of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!dirent.name.endsWith(".meta.json")) continue;
    found.push(JSON.parse(await fs.readFile(path.join(dirent.parentPath, dirent.name), "utf8")));
  }
  return found;
}

test("migrateMiniflare2: KV: every key, value, metadata and expiration of Miniflare 2's folder comes through", async (t) => {
  const persist = await copyFixture(t, "kv");
  const factory = useFactory(t);
  const result = await migrate(factory, { persist, log: new TestLog() });
  assert.equal(result?.keys, 13);
  assert.equal(result?.namespaces, 2);
  for (const [namespace, expected] of Object.entries(KV_FIXTURE)) {
    assertEntries(await entriesOf(factory.storage(namespace, persist)), expected);
  }
  // What the fixture's sidecars say, independently of the table above
  const ns = await entriesOf(factory.storage("NS", persist));
  const metas = await sidecars(path.join(persist, "NS"));
  assert.equal(metas.length, 6);
  for (const { key, expiration, metadata } of metas) {
    assert.equal(ns.get(key)?.expiration, expiration, key);
    assert.deepEqual(ns.get(key)?.metadata, metadata, key);
  }
});

test("migrateMiniflare2: Durable Objects: each object's keys, its alarm and the alarm store come through", async (t) => {
  const persist = await copyFixture(t, "do");
  const factory = useFactory(t);
  const log = new TestLog();
  const result = await migrate(factory, { layout: DURABLE_OBJECTS_MINIFLARE2_LAYOUT, persist, log });
  assert.equal(result?.keys, 3);
  assert.equal(result?.namespaces, 1);
  const object = await entriesOf(factory.storage(OBJECT, persist));
  assert.deepEqual([...object.keys()], ["Weird/Key:é", "__MINIFLARE_ALARMS__", "count", "map"]);
  assert.equal(deserialize(object.get("count")!.value), 3);
  assert.deepEqual(deserialize(object.get("map")!.value), new Map([["a", 1]]));
  assert.equal(deserialize(object.get("Weird/Key:é")!.value), "x");
  assert.deepEqual(object.get("__MINIFLARE_ALARMS__")!.metadata, { scheduledTime: 4102444800000 });
  const alarms = await entriesOf(factory.storage("__MINIFLARE_ALARMS__", persist));
  assert.deepEqual([...alarms.keys()], [OBJECT]);
  assert.deepEqual(alarms.get(OBJECT)!.metadata, { scheduledTime: 4102444800000 });
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("3 Durable Object keys in 1 object and 1 alarm", persist),
  ]);
});

test("migrateMiniflare2: logs what moved, where from and where to", async (t) => {
  const persist = await copyFixture(t, "kv");
  const log = new TestLog();
  await migrate(useFactory(t), { persist, log });
  assert.deepEqual(log.logs, [
    [
      LogLevel.INFO,
      `Migrated 13 KV keys in 2 namespaces from Miniflare 2's ${persist} to ${persist}${path.sep}mfs1 ` +
        "(old files left in place)",
    ],
  ]);
});

test("migrateMiniflare2: leaves the old folders byte for byte as they were", async (t) => {
  for (const [part, layout] of [["kv", KV_MINIFLARE2_LAYOUT], ["do", DURABLE_OBJECTS_MINIFLARE2_LAYOUT]] as const) {
    const persist = await copyFixture(t, part);
    const before = await snapshot(persist);
    assert.ok(before.size > 5);
    const factory = new VariedStorageFactory();
    await migrate(factory, { layout, persist, log: new TestLog() });
    // New things only go in the new layout's folder (and the lock, while in use)
    const topLevel = new Set([...before.keys()].map((file) => file.split(/[/\\]/)[0]));
    assert.deepEqual((await fs.readdir(persist)).sort(), [...topLevel, ".miniflare.lock", LAYOUT_FOLDER].sort());
    await factory.dispose();
    assert.deepEqual(await snapshot(persist), before);
  }
});

test("migrateMiniflare2: runs once: a key deleted after the migration stays deleted", async (t) => {
  const persist = await copyFixture(t, "kv");
  const factory = useFactory(t);
  await migrate(factory, { persist, log: new TestLog() });
  const ns = factory.storage("NS", persist);
  assert.equal(await ns.delete("plain"), true);
  await ns.put("added", { value: utf8("after") });
  assert.ok(await fs.stat(path.join(fileNamespaceDirectory(persist, "NS"), MIGRATED_MARKER)));

  const log = new TestLog();
  assert.equal(await migrate(factory, { persist, log }), undefined);
  assert.deepEqual(log.logs, []);
  assert.equal(await ns.get("plain"), undefined);
  assert.equal(await ns.has("added"), true);
  // Another process (another factory) on the same folder later: the same
  await factory.dispose();
  const later = useFactory(t);
  assert.equal(await migrate(later, { persist, log }), undefined);
  assert.equal(await later.storage("NS", persist).get("plain"), undefined);
});

test("migrateMiniflare2: a namespace Miniflare 2 wrote to since stays as migrated; a new one is migrated", async (t) => {
  const persist = await copyFixture(t, "kv");
  const factory = useFactory(t);
  await migrate(factory, { persist, log: new TestLog() });
  await writeFiles(persist, { "NS/late": "late", "NEW/k": "new" });
  const log = new TestLog();
  const result = await migrate(factory, { persist, log });
  assert.equal(result?.keys, 1);
  assert.equal(await factory.storage("NS", persist).get("late"), undefined);
  assert.deepEqual(new Uint8Array((await factory.storage("NEW", persist).get("k"))!.value), utf8("new"));
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("1 KV key in 1 namespace", persist),
  ]);
});

/** File storage whose batch writes land `budget` entries, then fail (as a full disk or a crash would) */
class FailingFileStorage extends FileStorage {
  readonly #budget: { entries: number };

  constructor(root: string, budget: { entries: number }) {
    super(root);
    this.#budget = budget;
  }

  override async putMany<Meta = unknown>(data: [string, StoredValueMeta<Meta>][]): Promise<void> {
    for (const [key, value] of data) {
      if (this.#budget.entries-- <= 0) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
      await this.put(key, value);
    }
  }
}

test("migrateMiniflare2: a write failing part way fails the start with no marker; the next start finishes", async (t) => {
  const persist = await copyFixture(t, "kv");
  const before = await snapshot(persist);
  const budget = { entries: 5 };
  const failing: StorageFactory = {
    storage: (namespace) => new FailingFileStorage(fileNamespaceDirectory(persist, namespace), budget),
  };
  const log = new TestLog();
  await assert.rejects(migrate(failing, { persist, log }), {
    name: "FileStorageError [ERR_MIGRATION]",
    message:
      `Couldn't migrate KV namespace "NS" from Miniflare 2: ENOSPC: no space left on device\n` +
      "Its old files are untouched, and the next start carries on where this one stopped.",
  });
  assert.deepEqual(log.logs, []);
  const written = await entriesOf(new FileStorage(fileNamespaceDirectory(persist, "NS")));
  assert.equal(written.size, 5);
  await assert.rejects(fs.stat(path.join(fileNamespaceDirectory(persist, "NS"), MIGRATED_MARKER)), { code: "ENOENT" });

  // The next start: everything, with those written before counted as migrated
  const factory = useFactory(t);
  const result = await migrate(factory, { persist, log });
  assert.deepEqual({ keys: result?.keys, present: result?.present }, { keys: 13, present: 0 });
  for (const [namespace, expected] of Object.entries(KV_FIXTURE)) {
    assertEntries(await entriesOf(factory.storage(namespace, persist)), expected);
  }
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("13 KV keys in 2 namespaces", persist),
  ]);
  assert.deepEqual(await snapshot(persist), before);
});

test("migrateMiniflare2: expired entries are left out", async (t) => {
  const persist = await useTmp(t);
  // Ahead of the real clock, which the new layout's storage goes by
  const now = Math.floor(Date.now() / 1000) + 3600;
  await writeFiles(persist, {
    "NS/gone": "gone",
    "NS/gone.meta.json": JSON.stringify({ key: "gone", expiration: now - 1 }),
    "NS/now": "now",
    "NS/now.meta.json": JSON.stringify({ key: "now", expiration: now }),
    "NS/kept": "kept",
    "NS/kept.meta.json": JSON.stringify({ key: "kept", expiration: now + 60, metadata: { m: 1 } }),
  });
  const factory = useFactory(t);
  const log = new TestLog();
  const result = await migrate(factory, { persist, log, clock: () => now * 1000 });
  assert.equal(result?.expired, 2);
  const ns = await entriesOf(factory.storage("NS", persist));
  assert.deepEqual([...ns.keys()], ["kept"]);
  assert.equal(ns.get("kept")!.expiration, now + 60);
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("1 KV key in 1 namespace", persist, { note: "; 2 expired keys left out" }),
  ]);
});

test("migrateMiniflare2: keys already in the new layout are kept as they are", async (t) => {
  const persist = await copyFixture(t, "kv");
  const factory = useFactory(t);
  const ns = factory.storage("NS", persist);
  await ns.put("plain", { value: utf8("newer"), metadata: { mine: true } });
  await ns.put("mine", { value: utf8("only here") });
  const log = new TestLog();
  const result = await migrate(factory, { persist, log });
  assert.deepEqual({ keys: result?.keys, present: result?.present }, { keys: 12, present: 1 });
  const entries = await entriesOf(ns);
  assertEntries(entries, {
    ...KV_FIXTURE.NS,
    plain: { value: "newer", metadata: { mine: true } },
    mine: { value: "only here" },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("12 KV keys in 2 namespaces", persist, {
      note: `; 1 key already in ${path.join(persist, LAYOUT_FOLDER)} kept as it was`,
    }),
  ]);
});

test("migrateMiniflare2: binary and large values come through exactly", async (t) => {
  const persist = await useTmp(t);
  const everyByte = Uint8Array.from({ length: 256 * 4 }, (_, i) => i % 256);
  // Three values over the batch size between them: written in two batches
  const large = [randomBytes(7 * 1024 * 1024), randomBytes(7 * 1024 * 1024), randomBytes(7 * 1024 * 1024 + 3)];
  await writeFiles(persist, {
    "NS/bytes": everyByte,
    "NS/empty": new Uint8Array(0),
    "NS/large/0": large[0],
    "NS/large/1": large[1],
    "NS/large/2": large[2],
    // A value that looks like this package's trailer, in a subfolder
    "NS/x/mfs1": Buffer.concat([Buffer.from('{"key":"x"}'), Buffer.from([11, 0, 0, 0]), Buffer.from("mfs1")]),
  });
  const factory = useFactory(t);
  await migrate(factory, { persist, log: new TestLog() });
  const ns = factory.storage("NS", persist);
  assert.deepEqual(new Uint8Array((await ns.get("bytes"))!.value), everyByte);
  assert.equal((await ns.get("empty"))!.value.byteLength, 0);
  for (let i = 0; i < large.length; i++) {
    assert.ok(Buffer.from((await ns.get(`large/${i}`))!.value).equals(large[i]), `large/${i}`);
  }
  assert.equal((await ns.get("x/mfs1"))!.value.byteLength, 19);
});

test("migrateMiniflare2: keys Miniflare 2 changed to make a path, and its half-done writes", async (t) => {
  const persist = await useTmp(t);
  await writeFiles(persist, {
    // Characters Windows can't have in a name
    "NS/a_b_c_d_": "1",
    "NS/a_b_c_d_.meta.json": JSON.stringify({ key: 'a<b>c*d"' }),
    "NS/__": "2",
    "NS/__.meta.json": JSON.stringify({ key: ".." }),
    "NS/_/x": "3",
    "NS/_/x.meta.json": JSON.stringify({ key: "nul|x" }),
    // Linux lets a name end in ". ", Windows doesn't
    "NS/trailing. ": "4",
    // Keys ending in .meta.json with no value beside them (values, not sidecars)
    "NS/k.meta.json": "not json",
    "NS/j.meta.json": JSON.stringify({ no: "key" }),
    // A sidecar whose value Miniflare 2 deleted before being stopped
    "NS/deleted.meta.json": JSON.stringify({ key: "deleted", metadata: 1 }),
    // A value whose sidecar is broken
    "NS/broken": "5",
    "NS/broken.meta.json": "{",
    // Upper case needs no sidecar
    "NS/Cased": "6",
  });
  const factory = useFactory(t);
  const log = new TestLog();
  await migrate(factory, { persist, log });
  assertEntries(await entriesOf(factory.storage("NS", persist)), {
    'a<b>c*d"': { value: "1" },
    "..": { value: "2" },
    "nul|x": { value: "3" },
    "trailing. ": { value: "4" },
    "k.meta.json": { value: "not json" },
    "j.meta.json": { value: JSON.stringify({ no: "key" }) },
    broken: { value: "5" },
    Cased: { value: "6" },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    `Couldn't fully migrate KV namespace "NS" from Miniflare 2: key "broken" (${path.join(persist, "NS", "broken")}): ` +
      "its .meta.json file isn't JSON, so its metadata and expiration are lost; migrated without them",
  ]);
  // A broken sidecar can't get better: the namespace is done
  assert.ok(await fs.stat(path.join(fileNamespaceDirectory(persist, "NS"), MIGRATED_MARKER)));
});

test("migrateMiniflare2: a file that can't be read is warned about; its namespace is tried again next start", async (t) => {
  const tmp = await useTmp(t);
  const persist = path.join(tmp, "persist");
  await writeFiles(tmp, { "persist/NS/fine": "fine", "elsewhere/target": "late" });
  await fs.symlink(path.join(tmp, "missing"), path.join(persist, "NS", "link"));
  const factory = useFactory(t);
  const log = new TestLog();
  const result = await migrate(factory, { persist, log });
  assert.equal(result?.incomplete, 1);
  assert.equal((await factory.storage("NS", persist).list()).keys.length, 1);
  const warnings = log.logsAtLevel(LogLevel.WARN);
  assert.equal(warnings.length, 2);
  const prefix = `Couldn't fully migrate KV namespace "NS" from Miniflare 2: `;
  assert.ok(warnings[0].startsWith(`${prefix}key "link" (${path.join(persist, "NS", "link")}) couldn't be read: ENOENT`));
  assert.equal(
    warnings[1],
    `${prefix}it will be tried again on the next start, keeping what was migrated`
  );
  await assert.rejects(fs.stat(path.join(fileNamespaceDirectory(persist, "NS"), MIGRATED_MARKER)));

  // Fixed: the next start finishes
  await fs.rm(path.join(persist, "NS", "link"));
  await fs.symlink(path.join(tmp, "elsewhere", "target"), path.join(persist, "NS", "link"));
  log.clear();
  const next = await migrate(factory, { persist, log });
  assert.equal(next?.incomplete, 0);
  assert.deepEqual((await factory.storage("NS", persist).list()).keys.map(({ name }) => name), ["fine", "link"]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  assert.ok(await fs.stat(path.join(fileNamespaceDirectory(persist, "NS"), MIGRATED_MARKER)));
});

test("migrateMiniflare2: reads this package's own files from before the new layout's folder", async (t) => {
  const persist = await useTmp(t);
  const old = new FileStorage(path.join(persist, "NS"));
  const long = "k".repeat(400);
  await old.put("user:1", { value: utf8("one"), metadata: { m: 1 }, expiration: FAR_FUTURE });
  await old.put(long, { value: utf8("long") });
  await old.put("plain", { value: utf8("plain") });
  // Not a sidecar of "plain" here
  await old.put("plain.meta.json", { value: utf8(JSON.stringify({ key: "other", metadata: 1 })) });
  const log = new TestLog();
  const factory = useFactory(t);
  await migrate(factory, { persist, log });
  assertEntries(await entriesOf(factory.storage("NS", persist)), {
    "user:1": { value: "one", metadata: { m: 1 }, expiration: FAR_FUTURE },
    [long]: { value: "long" },
    plain: { value: "plain" },
    "plain.meta.json": { value: JSON.stringify({ key: "other", metadata: 1 }) },
  });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("migrateMiniflare2: KV and Durable Objects persisting to one folder each migrate only their own", async (t) => {
  const persist = await copyFixture(t, "kv");
  await fs.cp(fixturePath("miniflare2", "do"), persist, { recursive: true });
  const factory = useFactory(t);
  const kv = await migrate(factory, { persist, log: new TestLog() });
  assert.deepEqual({ keys: kv?.keys, namespaces: kv?.namespaces }, { keys: 13, namespaces: 2 });
  const objects = await migrate(factory, { layout: DURABLE_OBJECTS_MINIFLARE2_LAYOUT, persist, log: new TestLog() });
  assert.deepEqual({ keys: objects?.keys, namespaces: objects?.namespaces }, { keys: 3, namespaces: 1 });
  assert.equal(deserialize((await factory.storage(OBJECT, persist).get("count"))!.value), 3);
});

test("migrateMiniflare2: migrations of one folder at once in a process take turns, and only one migrates", async (t) => {
  const persist = await copyFixture(t, "kv");
  const factory = useFactory(t);
  const logs = [new TestLog(), new TestLog(), new TestLog()];
  const results = await Promise.all(logs.map((log) => migrate(factory, { persist, log })));
  assert.deepEqual(results.map((result) => result?.keys), [13, undefined, undefined]);
  assert.deepEqual(logs.map((log) => log.logs.length), [1, 0, 0]);
});

test("migrateMiniflare2: storage that isn't files gets nothing, and nothing is written", async (t) => {
  const persist = await copyFixture(t, "kv");
  const before = await snapshot(persist);
  const memory: StorageFactory = { storage: () => new MemoryStorage() };
  const log = new TestLog();
  assert.equal(await migrate(memory, { persist, log }), undefined);
  assert.deepEqual(log.logs, []);
  assert.deepEqual((await fs.readdir(persist)).sort(), ["NS", "OTHER"]);
  assert.deepEqual(await snapshot(persist), before);
});

test("migrateMiniflare2: an old folder that isn't there, or is empty, migrates nothing", async (t) => {
  const tmp = await useTmp(t);
  const factory = useFactory(t);
  const log = new TestLog();
  assert.equal(await migrate(factory, { persist: path.join(tmp, "missing"), log }), undefined);
  await fs.mkdir(path.join(tmp, "empty", "NS"), { recursive: true });
  const result = await migrate(factory, { persist: path.join(tmp, "empty"), log });
  assert.deepEqual({ keys: result?.keys, namespaces: result?.namespaces }, { keys: 0, namespaces: 0 });
  assert.deepEqual(log.logs, []);
});

test("migrateMiniflare2: of several old folders, the newest file of a key wins", async (t) => {
  const tmp = await useTmp(t);
  const [older, newer, persist] = ["older", "newer", "persist"].map((name) => path.join(tmp, name));
  await writeFiles(older, { "NS/both": "older", "NS/only-older": "o" });
  await writeFiles(newer, { "NS/both": "newer" });
  await fs.utimes(path.join(older, "NS", "both"), new Date(1000), new Date(1000));
  const factory = useFactory(t);
  const log = new TestLog();
  const layout: Miniflare2Layout = KV_MINIFLARE2_LAYOUT;
  await migrate(factory, { layout, persist, sources: [newer, older], log });
  assertEntries(await entriesOf(factory.storage("NS", persist)), { both: { value: "newer" }, "only-older": { value: "o" } });
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [
    migratedLine("2 KV keys in 1 namespace", persist, { from: [newer, older] }),
  ]);
});
