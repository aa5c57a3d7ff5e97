import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { decodeName, encodeName, FileStorage } from "../../src/storage/file.js";
import { useTmp } from "../helpers/tmp.js";
import {
  adversarialKeys,
  generateKeys,
  names,
  random,
  sameBytes,
  show,
  storageContract,
  text,
  utf8,
} from "./contract.js";

const fileModule = fileURLToPath(new URL("../../src/storage/file.js", import.meta.url));

storageContract(
  "FileStorage",
  async (clock) => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "miniflare-test-"));
    return {
      storage: new FileStorage(path.join(dir, "ns"), clock),
      cleanup: () => fs.rm(dir, { recursive: true, force: true }),
    };
  },
  { propertyKeys: 2000 }
);

/** Every path under `dir` (relative, "/"-separated, directories ending "/") */
async function tree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .map((entry) => {
      const relative = path.relative(dir, path.join(entry.parentPath ?? entry.path, entry.name));
      return relative.split(path.sep).join("/") + (entry.isDirectory() ? "/" : "");
    })
    .sort();
}

describe("FileStorage", () => {
  test("entries persist across instances, which see each other's writes", async (t) => {
    const root = path.join(await useTmp(t), "ns");
    const expiration = Math.floor(Date.now() / 1000) + 3600;
    const first = new FileStorage(root);
    await first.put("a", { value: utf8("one"), metadata: { n: 1 }, expiration });
    await first.put("a/b", { value: utf8("two") });
    await first.put("k".repeat(300), { value: utf8("long") });

    const second = new FileStorage(root);
    const a = await second.get("a");
    assert.equal(text(a!.value), "one");
    assert.deepEqual(a!.metadata, { n: 1 });
    assert.equal(a!.expiration, expiration);
    assert.equal(text((await second.get("a/b"))!.value), "two");
    assert.equal(text((await second.get("k".repeat(300)))!.value), "long");
    assert.deepEqual(names(await second.list()), ["a", "a/b", "k".repeat(300)]);

    await second.put("c", { value: utf8("three") });
    assert.equal(await second.delete("a"), true);
    assert.equal(text((await first.get("c"))!.value), "three");
    assert.equal(await first.has("a"), false);
    assert.deepEqual(names(await first.list()), ["a/b", "c", "k".repeat(300)]);
  });

  test("the directory is only created by the first write", async (t) => {
    const root = path.join(await useTmp(t), "a", "b");
    const storage = new FileStorage(root);
    assert.equal(await storage.get("key"), undefined);
    assert.deepEqual(names(await storage.list()), []);
    assert.equal(await storage.delete("key"), false);
    await assert.rejects(fs.stat(root), { code: "ENOENT" });
    await storage.put("key", { value: utf8("v") });
    assert.ok((await fs.stat(root)).isDirectory());
  });

  test("no key creates, reads or deletes anything outside the directory", async (t) => {
    const tmp = await useTmp(t);
    const root = path.join(tmp, "inner", "ns");
    await fs.mkdir(path.join(tmp, "inner"));
    // Files a traversal would hit
    await fs.writeFile(path.join(tmp, "inner", "x"), "outside");
    await fs.writeFile(path.join(tmp, "b"), "outside");
    await fs.writeFile(path.join(tmp, "inner", "con"), "outside");
    const before = await tree(tmp);

    const storage = new FileStorage(root);
    const keys = [...new Set([
      ...adversarialKeys,
      "../b",
      "../../b",
      "./x",
      "..\\x",
      "..\\..\\b",
      "/tmp/x",
      "C:\\x",
      "ns/../x",
      "../ns2/x",
      "\u0000../x",
      ...generateKeys(300, 7).filter((key) => key.includes("/") || key.includes(".")),
    ])];
    for (const key of keys) await storage.put(key, { value: utf8("inside") });
    for (const key of ["../x", "../../b"]) assert.equal(text((await storage.get(key))!.value), "inside");
    for (const key of ["../con", "x", "b"]) assert.equal(await storage.get(key), undefined, key);

    const after = await tree(tmp);
    const added = after.filter((entry) => !before.includes(entry));
    assert.ok(added.includes("inner/ns/"));
    for (const entry of added) {
      if (entry === "inner/ns/") continue;
      assert.match(entry, /^inner\/ns\/[^/]+$/, `${entry} is not a file directly in the directory`);
    }
    assert.equal(added.length, keys.length + 1);
    // The files outside are untouched
    assert.equal(await fs.readFile(path.join(tmp, "inner", "x"), "utf8"), "outside");
    assert.equal(await fs.readFile(path.join(tmp, "b"), "utf8"), "outside");

    assert.equal(await storage.deleteMany(keys), keys.length);
    assert.equal(await storage.delete("../x"), false);
    assert.deepEqual(await tree(tmp), [...before, "inner/ns/"].sort());
    assert.equal(await fs.readFile(path.join(tmp, "inner", "con"), "utf8"), "outside");
  });

  test("a file starts with the value's bytes and ends with the trailer", async (t) => {
    const root = path.join(await useTmp(t), "ns");
    const storage = new FileStorage(root);
    await storage.put("plain", { value: utf8("hello world"), metadata: { m: "x".repeat(5000) }, expiration: 2e9 });
    let data = await fs.readFile(path.join(root, "plain"));
    assert.equal(data.subarray(0, 11).toString(), "hello world");
    assert.equal(data.subarray(-4).toString(), "mfs1");

    // Keys named by escapes or by a hash too
    for (const key of ["A/b", "\u{1F600}".repeat(100)]) {
      const name = encodeName(key);
      await storage.put(key, { value: utf8(`value of ${key}`) });
      data = await fs.readFile(path.join(root, name));
      assert.ok(data.toString().startsWith(`value of ${key}`), show(key));
    }
    assert.equal((await fs.readdir(root)).length, 3);
  });

  test("encodeName: safe, case-distinct, short names that decodeName inverts", () => {
    const keys = [
      ...adversarialKeys,
      ...generateKeys(3000, 11),
      "A",
      "Con",
      "COM1",
      "com1",
      "lpt9.txt",
      "aux.",
      "prn.tar.gz",
      ".hidden",
      "x.",
      "x..",
      "~",
      "%",
      "-",
      "_",
      "a".repeat(199),
      "a".repeat(200),
      "a".repeat(201),
      "%".repeat(100),
      "a%".repeat(100),
      "aa%".repeat(100),
      "\u00e9".repeat(100),
      ".".repeat(300),
      " ",
      "a ",
    ];
    const byName = new Map<string, string>();
    const byFoldedName = new Map<string, string>();
    for (const key of new Set(keys)) {
      const name = encodeName(key);
      const label = `${show(key)} → ${show(name)}`;
      assert.ok(name.length >= 1 && name.length <= 200, label);
      assert.ok(!name.includes("/") && !name.includes("\\"), label);
      assert.ok(!name.startsWith("."), label);
      assert.ok(!name.endsWith(".") && !name.endsWith(" "), label);
      assert.match(name, /^(?:[a-z0-9._~-]|%[0-9A-F]{2})+$/, label);
      // Outside escapes, no upper case
      assert.doesNotMatch(name.replace(/%[0-9A-F]{2}/g, ""), /[A-Z]/, label);
      assert.doesNotMatch(name, /^(?:con|prn|aux|nul|com\d|lpt\d)(?:\.|$)/i, label);
      const decoded = decodeName(name);
      if (decoded === undefined) assert.ok(name.includes("~"), label);
      else assert.equal(decoded, key, label);
      // Short keys are named in full (but for "", which has no name)
      if (key !== "" && Buffer.byteLength(key) <= 60) assert.notEqual(decoded, undefined, label);
      assert.equal(byName.get(name) ?? key, key, `${label} is also the name of ${show(byName.get(name) ?? "")}`);
      byName.set(name, key);
      const folded = name.toLowerCase();
      assert.equal(byFoldedName.get(folded) ?? key, key, `${label} differs from another only in case`);
      byFoldedName.set(folded, key);
    }
    assert.equal(encodeName("abc"), "abc");
    assert.equal(encodeName("a/b"), "a%2Fb");
  });

  test("concurrent writes of one key never tear: the value matches its metadata", async (t) => {
    const storage = new FileStorage(path.join(await useTmp(t), "ns"));
    const long = utf8(JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ i, s: "abcdefghijklmnop" }))));
    assert.ok(long.byteLength > 100_000);
    const short = utf8("{}");
    const seen = new Set<string>();
    for (let trial = 0; trial < 200; trial++) {
      const writes = [
        storage.put("key", { value: long, metadata: { which: "long" } }),
        storage.put("key", { value: short, metadata: { which: "short" } }),
      ];
      if (trial % 2) writes.reverse();
      const [, , during] = await Promise.all([...writes, storage.get<{ which: string }>("key")]);
      const after = await storage.get<{ which: string }>("key");
      for (const result of [during, after]) {
        if (result === undefined) {
          assert.equal(trial, 0, "an entry went missing");
          continue;
        }
        const which = result.metadata?.which;
        assert.ok(which === "long" || which === "short", `trial ${trial}: metadata ${JSON.stringify(result.metadata)}`);
        assert.ok(sameBytes(result.value, which === "long" ? long : short), `trial ${trial}: value doesn't match ${which}`);
      }
      seen.add(after!.metadata!.which);
    }
    assert.deepEqual(await storage.list().then(names), ["key"]);
  });

  test("a writer killed mid-write leaves the old or the new entry, whole", async (t) => {
    const tmp = await useTmp(t);
    const root = path.join(tmp, "ns");
    const script = path.join(tmp, "writer.mjs");
    const size = 20 * 1024 * 1024;
    await fs.writeFile(
      script,
      `import { FileStorage } from ${JSON.stringify(pathToFileURL(fileModule).href)};
const storage = new FileStorage(process.argv[2]);
const size = ${size};
const contents = { a: new Uint8Array(size).fill(0x61), b: new Uint8Array(size).fill(0x62) };
for (let i = 0; ; i++) {
  const which = i % 2 === 0 ? "a" : "b";
  await storage.put("key", { value: contents[which], metadata: { which, i } });
  if (i === 0) process.stdout.write("ready\\n");
}
`
    );
    const expected = { a: Buffer.alloc(size, 0x61), b: Buffer.alloc(size, 0x62) };
    const rand = random(Date.now());
    let leftovers = 0;
    for (let trial = 0; trial < 5; trial++) {
      const child = spawn(process.execPath, [script, root], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (data) => (stderr += data));
      const exit = new Promise<NodeJS.Signals | number | null>((resolve) =>
        child.once("exit", (code, signal) => resolve(signal ?? code))
      );
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (data) => {
          if (String(data).includes("ready")) resolve();
        });
        exit.then((code) => reject(new Error(`writer exited (${code}) before writing: ${stderr}`)));
      });
      await ready;
      const delay = 50 + Math.floor(rand() * 350);
      await sleep(delay);
      child.kill("SIGKILL");
      assert.equal(await exit, "SIGKILL", `the writer was still writing after ${delay}ms`);

      const storage = new FileStorage(root);
      const entry = await storage.get<{ which: "a" | "b"; i: number }>("key");
      const label = `trial ${trial}, killed after ${delay}ms`;
      assert.ok(entry !== undefined, label);
      const which = entry.metadata?.which;
      assert.ok(which === "a" || which === "b", `${label}: metadata ${JSON.stringify(entry.metadata)}`);
      assert.equal(entry.metadata!.i % 2, which === "a" ? 0 : 1, label);
      assert.equal(entry.value.byteLength, size, label);
      assert.ok(sameBytes(entry.value, expected[which]), `${label}: the value isn't all "${which}"`);
      // Leftover temporary files aren't keys
      assert.deepEqual(names(await storage.list()), ["key"], label);
      leftovers += (await fs.readdir(root)).filter((name) => name.startsWith(".")).length;
    }
    t.diagnostic(`temporary files left by killed writers: ${leftovers}`);
  });

  test("temporary files aren't listed, and stale ones are swept", async (t) => {
    const root = path.join(await useTmp(t), "ns");
    const storage = new FileStorage(root);
    await storage.put("real", { value: utf8("v") });
    // Looks like an entry, inside and out, but is a temporary file
    const entryBytes = await fs.readFile(path.join(root, "real"));
    await fs.writeFile(path.join(root, ".tmp-1-1-fresh"), entryBytes);
    await fs.writeFile(path.join(root, ".tmp-1-2-stale"), entryBytes);
    await fs.writeFile(path.join(root, ".expired-1-3-stale"), entryBytes);
    const old = new Date(Date.now() - 60 * 60 * 1000);
    await fs.utimes(path.join(root, ".tmp-1-2-stale"), old, old);
    await fs.utimes(path.join(root, ".expired-1-3-stale"), old, old);

    const fresh = new FileStorage(root);
    assert.deepEqual(names(await fresh.list()), ["real"]);
    assert.deepEqual((await fs.readdir(root)).sort(), [".tmp-1-1-fresh", "real"]);
    assert.equal(await fresh.has(".tmp-1-1-fresh"), false);
  });

  test("files written by hand: without the trailer, the whole file is the value", async (t) => {
    const root = path.join(await useTmp(t), "ns");
    await fs.mkdir(root, { recursive: true });
    await fs.writeFile(path.join(root, "hello"), "world");
    await fs.writeFile(path.join(root, "a%2Fb"), "slash");
    await fs.writeFile(path.join(root, "short"), "mfs1");
    // Not names encodeName() gives, so not entries
    await fs.writeFile(path.join(root, "Upper"), "x");
    await fs.writeFile(path.join(root, "a%2fb"), "x");
    await fs.mkdir(path.join(root, "sub"));
    await fs.writeFile(path.join(root, "sub", "file"), "x");

    const storage = new FileStorage(root);
    const hello = await storage.get("hello");
    assert.equal(text(hello!.value), "world");
    assert.equal(hello!.metadata, undefined);
    assert.equal(hello!.expiration, undefined);
    assert.equal(text((await storage.getRange("hello", { suffix: 2 }))!.value), "ld");
    assert.deepEqual(await storage.head("hello"), { expiration: undefined, metadata: undefined });
    assert.equal(text((await storage.get("a/b"))!.value), "slash");
    assert.equal(text((await storage.get("short"))!.value), "mfs1");
    assert.deepEqual(names(await storage.list()), ["a/b", "hello", "short"]);
    assert.equal(await storage.has("sub"), false);
    assert.equal(await storage.has("Upper"), false);

    // Written over, it becomes an entry like any other
    await storage.put("hello", { value: utf8("again"), metadata: { m: 1 } });
    assert.deepEqual((await storage.get("hello"))!.metadata, { m: 1 });
  });

  test("errors don't reveal where the data lives", async (t) => {
    const tmp = await useTmp(t);
    const check = async (storage: FileStorage, codes: string[], run: () => Promise<unknown>) => {
      const error = await run().then(
        () => assert.fail("expected an error"),
        (error: any) => error
      );
      assert.ok(error instanceof Error);
      assert.ok(codes.includes((error as any).code), `code ${(error as any).code}`);
      for (const shown of [error.message, String(error.stack), inspect(error), JSON.stringify(error)]) {
        assert.ok(!shown.includes(tmp), `the storage path shows in: ${shown}`);
      }
    };

    // The namespace's directory is a file
    await fs.writeFile(path.join(tmp, "ns"), "not a directory");
    const fileRoot = new FileStorage(path.join(tmp, "ns"));
    await check(fileRoot, ["ENOTDIR", "EEXIST"], () => fileRoot.put("key", { value: utf8("v") }));
    await check(fileRoot, ["ENOTDIR", "EEXIST"], () =>
      fileRoot.putMany([["key", { value: utf8("v") }]])
    );

    // A directory above it is a file
    const underFile = new FileStorage(path.join(tmp, "ns", "deeper", "ns"));
    await check(underFile, ["ENOTDIR", "EEXIST"], () => underFile.put("key", { value: utf8("v") }));

    // The entry's file is a directory
    const root = path.join(tmp, "root");
    await fs.mkdir(path.join(root, "key"), { recursive: true });
    const dirEntry = new FileStorage(root);
    await check(dirEntry, ["EISDIR", "ENOTEMPTY", "EEXIST", "EPERM"], () => dirEntry.put("key", { value: utf8("v") }));
    // ...and the failed write left no temporary file behind
    assert.deepEqual(await fs.readdir(root), ["key"]);
  });
});
