// Check 14: an acknowledged write survives an operating-system crash. No
// test can cut the power, so these record the file system calls instead:
// the data is flushed before the rename that publishes it, the directory
// after it, and the write (or a Durable Object's response) resolves only
// once both flushes have finished.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FileStorage } from "../../src/storage/file.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { until } from "../helpers/sync.js";
import { useTmp } from "../helpers/tmp.js";
import { utf8 } from "./contract.js";

type Event = string;

/**
 * Records fsyncs and renames under `root` as "datasync <name>",
 * "sync <name>", "synced <name>" (when a flush finished) and
 * "rename <from> <to>", with temporary files named "temp". Flushes take
 * `delay` ms, so anything that doesn't wait for them shows up.
 */
async function recordFileSystem(
  t: TestContext,
  root: string,
  delay: number | ((name: string) => number) = 0
): Promise<Event[]> {
  const events: Event[] = [];
  const name = (file: string) => {
    const relative = path.relative(root, String(file));
    if (relative === "") return ".";
    const base = path.basename(relative);
    return base.startsWith(".tmp-") ? path.join(path.dirname(relative), "temp") : relative;
  };
  const opened = new WeakMap<object, string>();
  const realOpen = fs.open;
  const realRename = fs.rename;
  // FileHandle isn't exported: its prototype is that of any handle
  const probe = await realOpen(path.join(root, ".probe"), "w");
  const handleProto = Object.getPrototypeOf(probe);
  await probe.close();
  await fs.rm(path.join(root, ".probe"));
  const realSync = handleProto.sync;
  const realDatasync = handleProto.datasync;

  (fs as any).open = async function (file: string, ...rest: unknown[]) {
    const handle = await realOpen.call(fs, file, ...(rest as [any]));
    opened.set(handle, name(file));
    return handle;
  };
  (fs as any).rename = async function (from: string, to: string) {
    await realRename.call(fs, from, to);
    events.push(`rename ${name(from)} ${name(to)}`);
  };
  const flush = (kind: string, real: () => Promise<void>) =>
    async function (this: object) {
      const file = opened.get(this) ?? "?";
      events.push(`${kind} ${file}`);
      await sleep(typeof delay === "number" ? delay : delay(file));
      await real.call(this);
      events.push(`synced ${file}`);
    };
  handleProto.sync = flush("sync", realSync);
  handleProto.datasync = flush("datasync", realDatasync);
  t.after(() => {
    (fs as any).open = realOpen;
    (fs as any).rename = realRename;
    handleProto.sync = realSync;
    handleProto.datasync = realDatasync;
  });
  return events;
}

test("FileStorage: a put flushes its data before the rename, and the directory before it resolves", async (t) => {
  const tmp = await useTmp(t);
  const storage = new FileStorage(path.join(tmp, "ns"));
  await storage.put("first", { value: utf8("creates the directory") });
  const events = await recordFileSystem(t, path.join(tmp, "ns"), 20);

  await storage.put("key", { value: utf8("value") });
  events.push("resolved");
  assert.deepEqual(events, [
    "datasync temp",
    "synced temp",
    "rename temp key",
    "sync .",
    "synced .",
    "resolved",
  ]);
});

test("FileStorage: the first put also flushes the new directory's parent", async (t) => {
  const tmp = await useTmp(t);
  const events = await recordFileSystem(t, tmp, 0);
  const storage = new FileStorage(path.join(tmp, "a", "b"));
  await storage.put("key", { value: utf8("value") });
  events.push("resolved");
  // "a" and "a/b" were made: tmp must learn a's name, and a b's, before
  // the entry is published
  const rename = events.indexOf("rename a/b/temp a/b/key");
  assert.ok(events.indexOf("synced .") !== -1 && events.indexOf("synced .") < rename, events.join("\n"));
  assert.ok(events.indexOf("synced a") !== -1 && events.indexOf("synced a") < rename, events.join("\n"));
  assert.deepEqual(events.slice(-3), ["sync a/b", "synced a/b", "resolved"]);
});

test("FileStorage: concurrent first writes to a new namespace all wait for its folder to be flushed into its parent", async (t) => {
  const tmp = await useTmp(t);
  // The parent's flush is slow: a writer that didn't wait for it would
  // resolve first
  const events = await recordFileSystem(t, tmp, (name) => (name === "." ? 200 : 0));
  const storage = new FileStorage(path.join(tmp, "ns"));
  const other = new FileStorage(path.join(tmp, "ns")); // another instance, same folder
  await Promise.all([
    storage.put("a", { value: utf8("a") }).then(() => events.push("resolved a")),
    other.put("b", { value: utf8("b") }).then(() => events.push("resolved b")),
  ]);
  const parentFlushed = events.indexOf("synced .");
  assert.ok(parentFlushed !== -1, events.join("\n"));
  assert.ok(parentFlushed < events.indexOf("resolved a"), events.join("\n"));
  assert.ok(parentFlushed < events.indexOf("resolved b"), events.join("\n"));
});

test("FileStorage: a write to a folder another writer is still flushing into place waits for that flush", async (t) => {
  const tmp = await useTmp(t);
  const events = await recordFileSystem(t, tmp, (name) => (name === "." ? 200 : 0));
  const storage = new FileStorage(path.join(tmp, "ns"));
  const other = new FileStorage(path.join(tmp, "ns"));
  const a = storage.put("a", { value: utf8("a") }).then(() => events.push("resolved a"));
  // The folder exists now, but its parent isn't flushed yet: b finds it there
  await until(() => events.includes("sync ."), "the parent's flush starting");
  const b = other.put("b", { value: utf8("b") }).then(() => events.push("resolved b"));
  await Promise.all([a, b]);
  const parentFlushed = events.indexOf("synced .");
  assert.ok(parentFlushed !== -1 && parentFlushed < events.indexOf("resolved b"), events.join("\n"));
});

test("FileStorage: a delete resolves after the directory is flushed", async (t) => {
  const tmp = await useTmp(t);
  const storage = new FileStorage(tmp);
  await storage.put("key", { value: utf8("value") });
  const events = await recordFileSystem(t, tmp, 20);
  assert.equal(await storage.delete("key"), true);
  events.push("resolved");
  assert.deepEqual(events, ["sync .", "synced .", "resolved"]);
  // Deleting nothing flushes nothing
  assert.equal(await storage.delete("key"), false);
  assert.deepEqual(events.slice(3), []);
});

test("FileStorage: putMany flushes every file, then the directory once, before resolving", async (t) => {
  const tmp = await useTmp(t);
  const storage = new FileStorage(tmp);
  await storage.put("first", { value: utf8("creates the directory") });
  const events = await recordFileSystem(t, tmp, 10);
  await storage.putMany(["a", "b", "c"].map((key) => [key, { value: utf8(key) }]));
  events.push("resolved");
  assert.equal(events.filter((e) => e === "datasync temp").length, 3);
  const lastRename = Math.max(...["a", "b", "c"].map((key) => events.indexOf(`rename temp ${key}`)));
  assert.ok(lastRename > 0, events.join("\n"));
  assert.deepEqual(events.slice(lastRename + 1), ["sync .", "synced .", "resolved"]);
});

test("FileStorage: concurrent writes share directory flushes, each starting after its rename", async (t) => {
  const tmp = await useTmp(t);
  const storage = new FileStorage(tmp);
  await storage.put("first", { value: utf8("creates the directory") });
  const events = await recordFileSystem(t, tmp, 30);
  const done: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      storage.put(`k${i}`, { value: utf8(String(i)) }).then(() => {
        done.push(i);
        events.push(`resolved k${i}`);
      })
    )
  );
  assert.equal(done.length, 20);
  const syncs = events.filter((e) => e === "sync .").length;
  assert.ok(syncs >= 1 && syncs < 20, `${syncs} directory flushes for 20 puts`);
  // Each put resolved after a directory flush that started after its rename
  for (let i = 0; i < 20; i++) {
    const renamed = events.indexOf(`rename temp k${i}`);
    const resolved = events.indexOf(`resolved k${i}`);
    const flushStarted = events.indexOf("sync .", renamed);
    assert.ok(flushStarted > renamed, `k${i}: no flush after its rename`);
    const flushEnded = events.indexOf("synced .", flushStarted);
    assert.ok(flushEnded !== -1 && flushEnded < resolved, `k${i} resolved before its flush ended`);
  }
});

/** A worker whose object OBJECT (named "a") runs `objectFetch` */
function objectWorker(persist: string, objectFetch: string) {
  return {
    modules: true,
    durableObjects: { OBJECT: "Object" },
    durableObjectsPersist: persist,
    script: `
      export class Object {
        constructor(state) { this.storage = state.storage; }
        async fetch(request) { ${objectFetch} }
      }
      export default {
        fetch(request, env) {
          return env.OBJECT.get(env.OBJECT.idFromName("a")).fetch(request);
        },
      };`,
  };
}

/** An object fetch that puts ?v= under "key" without awaiting it, and replies "<reply> <v>" */
function putThenReply(putOptions: string, reply: string): string {
  return `const value = new URL(request.url).searchParams.get("v");
    this.storage.put("key", value${putOptions}); // not awaited
    return new Response("${reply} " + value);`;
}

test("Durable Objects on files: the response waits for an unawaited put to be flushed (check 14)", async (t) => {
  const tmp = await useTmp(t);
  const persist = path.join(tmp, "do");
  const mf = useMiniflare(t, objectWorker(persist, putThenReply("", "stored")));
  // Made once, unrecorded, so the folders exist
  assert.equal(await (await mf.dispatchFetch("http://localhost/?v=0")).text(), "stored 0");
  const events = await recordFileSystem(t, persist, 50);

  const res = await mf.dispatchFetch("http://localhost/?v=1");
  events.push("response");
  assert.equal(await res.text(), "stored 1");
  const flushes = events.filter((e) => e.startsWith("synced "));
  assert.ok(flushes.length >= 2, events.join("\n"));
  // The data and its directory were flushed before the response was released
  const response = events.indexOf("response");
  const dataFlushed = events.findIndex((e) => /^synced .*temp$/.test(e));
  const renamed = events.findIndex((e) => /^rename .*temp .*key$/.test(e));
  const dirFlushed = events.findIndex((e, i) => i > renamed && e.startsWith("synced ") && !e.endsWith("temp"));
  assert.ok(dataFlushed !== -1 && dataFlushed < renamed, events.join("\n"));
  assert.ok(renamed !== -1 && dirFlushed > renamed && dirFlushed < response, events.join("\n"));
  // And the value is there for a new instance reading the same folder
  await mf.dispose();
  const again = useMiniflare(t, objectWorker(persist, `return new Response(String(await this.storage.get("key")));`));
  assert.equal(await (await again.dispatchFetch("http://localhost/")).text(), "1");
});

test("Durable Objects on files: dispose() waits for writes still under way (allowUnconfirmed)", async (t) => {
  const tmp = await useTmp(t);
  const persist = path.join(tmp, "do");
  const mf = useMiniflare(t, objectWorker(persist, putThenReply(", { allowUnconfirmed: true }", "sent")));
  assert.equal(await (await mf.dispatchFetch("http://localhost/?v=0")).text(), "sent 0");
  // That first write has landed (folders made) before recording starts
  const ns = await mf.getDurableObjectNamespace("OBJECT");
  await (await mf.getDurableObjectStorage(ns.idFromName("a"))).sync();
  // Slow flushes: the response goes out long before the write lands
  const events = await recordFileSystem(t, persist, 100);
  assert.equal(await (await mf.dispatchFetch("http://localhost/?v=1")).text(), "sent 1");
  assert.ok(!events.some((e) => /^rename .*key$/.test(e)), events.join("\n"));
  await mf.dispose();
  assert.ok(events.some((e) => /^rename .*key$/.test(e)), `dispose() returned before the write landed:\n${events.join("\n")}`);
});
