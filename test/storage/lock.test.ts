// Check 24: one process per persist directory, run with real processes
import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { pathToFileURL } from "node:url";
import { Miniflare } from "../../src/miniflare.js";
import { FileStorageError } from "../../src/storage/errors.js";
import { VariedStorageFactory } from "../../src/storage/factory.js";
import { acquireLock, LOCK_FILE_NAME, releaseLock } from "../../src/storage/lock.js";
import { rootPath } from "../helpers/fixtures.js";
import { type Run, runBin, runNode, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const lockModule = pathToFileURL(path.join(rootPath, "dist", "src", "storage", "lock.js")).href;

/** A process that takes the lock of `dir`, says "locked", and waits for stdin to close */
function lockingChild(t: TestContext, dir: string): Run {
  const script = `
    import { acquireLock } from ${JSON.stringify(lockModule)};
    acquireLock(${JSON.stringify(dir)});
    console.log("locked");
    process.stdin.resume();
    process.stdin.on("end", () => process.exit(0));
  `;
  return runNode(t, ["--input-type=module", "-e", script], dir);
}

async function lockOwner(dir: string): Promise<{ pid: number; host: string } | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, LOCK_FILE_NAME), "utf8"));
  } catch {
    return undefined;
  }
}

test("lock: a second process fails fast with ERR_LOCKED naming the owner's pid, until the owner exits", async (t) => {
  const dir = await useTmp(t);
  const owner = lockingChild(t, dir);
  await waitForOutput(owner, "locked");
  assert.deepEqual(await lockOwner(dir), { pid: owner.child.pid, host: os.hostname() });

  assert.throws(
    () => acquireLock(dir),
    (error: any) => {
      assert.ok(error instanceof FileStorageError);
      assert.equal(error.code, "ERR_LOCKED");
      assert.match(error.message, new RegExp(`locked by pid ${owner.child.pid}\\b`));
      assert.ok(error.message.includes(path.join(realpathSync(dir), LOCK_FILE_NAME)), error.message);
      return true;
    }
  );
  // The lock file is still the owner's
  assert.equal((await lockOwner(dir))?.pid, owner.child.pid);

  // A clean exit removes the lock: now this process gets it
  owner.child.stdin!.end();
  assert.equal(await owner.exited, 0);
  assert.equal(await lockOwner(dir), undefined);
  acquireLock(dir);
  t.after(() => releaseLock(dir));
  assert.equal((await lockOwner(dir))?.pid, process.pid);
});

test("lock: a lock left by a killed process is taken over", async (t) => {
  const dir = await useTmp(t);
  const owner = lockingChild(t, dir);
  await waitForOutput(owner, "locked");
  owner.child.kill("SIGKILL");
  await owner.exited;
  assert.equal((await lockOwner(dir))?.pid, owner.child.pid, "SIGKILL leaves the lock file");

  acquireLock(dir);
  t.after(() => releaseLock(dir));
  assert.equal((await lockOwner(dir))?.pid, process.pid);
  // No stale or temporary files are left beside it
  assert.deepEqual(await fs.readdir(dir), [LOCK_FILE_NAME]);
});

test("lock: a lock from another host counts as held: ERR_LOCKED names the host", async (t) => {
  const dir = await useTmp(t);
  const real = await fs.realpath(dir);
  await fs.writeFile(path.join(dir, LOCK_FILE_NAME), JSON.stringify({ pid: 1234, host: "elsewhere" }));
  assert.throws(
    () => acquireLock(dir),
    (error: any) => {
      assert.equal(error.code, "ERR_LOCKED");
      assert.ok(error.message.includes("locked by pid 1234 on host elsewhere: "), error.message);
      assert.ok(error.message.endsWith(`delete ${path.join(real, LOCK_FILE_NAME)}`), error.message);
      return true;
    }
  );
  assert.equal((await lockOwner(dir))?.host, "elsewhere");
});

test("lock: a half-written lock file is treated as stale", async (t) => {
  for (const content of ["", "{", "not json"]) {
    const dir = await useTmp(t);
    await fs.writeFile(path.join(dir, LOCK_FILE_NAME), content);
    acquireLock(dir);
    assert.equal((await lockOwner(dir))?.pid, process.pid, JSON.stringify(content));
    releaseLock(dir);
    assert.equal(await lockOwner(dir), undefined);
  }
});

test("lock: instances in one process share a directory; the last release removes the file", async (t) => {
  const dir = await useTmp(t);
  // The same folder through a symlink is the same lock
  const link = `${dir}-link`;
  await fs.symlink(dir, link);
  t.after(() => fs.rm(link, { force: true }));
  acquireLock(dir);
  acquireLock(link);
  releaseLock(dir);
  assert.equal((await lockOwner(dir))?.pid, process.pid, "still held by the second");
  releaseLock(link);
  assert.equal(await lockOwner(dir), undefined);
  releaseLock(dir); // more releases than acquires do nothing
});

test("lock: the storage factory locks a persist directory on first use and releases it on dispose", async (t) => {
  const dir = await useTmp(t);
  const factory = new VariedStorageFactory();
  assert.equal(await lockOwner(dir), undefined);
  const storage = factory.storage("NAMESPACE", dir);
  assert.equal((await lockOwner(dir))?.pid, process.pid);
  // The lock file is no entry
  await storage.put("key", { value: new Uint8Array([1]) });
  assert.deepEqual((await storage.list()).keys.map((key) => key.name), ["key"]);
  await factory.dispose();
  assert.equal(await lockOwner(dir), undefined);
});

test("lock: new Miniflare on a directory another process persists to fails with ERR_LOCKED", async (t) => {
  const dir = await useTmp(t);
  const owner = lockingChild(t, dir);
  await waitForOutput(owner, "locked");
  const mf = new Miniflare({ script: "addEventListener('fetch', () => {})", kvNamespaces: ["NS"], kvPersist: dir });
  t.after(() => mf.dispose());
  await assert.rejects(mf.getKVNamespace("NS"), (error: any) => {
    assert.equal(error.code, "ERR_LOCKED");
    assert.match(error.message, new RegExp(`locked by pid ${owner.child.pid}\\b`));
    return true;
  });
});

test("lock: a second `miniflare` on the same --kv-persist directory exits with the error; the first keeps serving", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (e) => e.respondWith(NS.get("k").then((v) => new Response(String(v)))));`,
  });
  const args = ["worker.js", "--kv", "NS", "--kv-persist", "data", "--port", "0", "--no-update-check"];
  const first = runBin(t, args, tmp);
  await waitForOutput(first, "Listening on");
  const second = runBin(t, args, tmp);
  const code = await second.exited;
  assert.notEqual(code, 0);
  assert.match(second.output(), new RegExp(`locked by pid ${first.child.pid}\\b`));
  assert.equal(first.child.exitCode, null, "the first is still running");
  first.child.kill("SIGINT");
  assert.equal(await first.exited, 0);
  // Its lock went with it
  assert.equal(await lockOwner(path.join(tmp, "data")), undefined);
});

test("lock: Durable Objects with alarms off still fail at start on a locked folder", async (t) => {
  const dir = await useTmp(t);
  const owner = lockingChild(t, dir);
  await waitForOutput(owner, "locked");
  const mf = new Miniflare({
    modules: true,
    script: "export class O {} export default { fetch() { return new Response('no object used'); } }",
    durableObjects: { O: "O" },
    durableObjectsPersist: dir,
    durableObjectsAlarms: false,
  });
  t.after(() => mf.dispose());
  // Even a request that never touches an object: the instance didn't start
  await assert.rejects(mf.dispatchFetch("http://localhost/"), { code: "ERR_LOCKED" });
});
