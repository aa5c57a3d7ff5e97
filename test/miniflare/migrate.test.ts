// Upgrading from Miniflare 2 end to end: data it persisted to files, given
// to `new Miniflare(...)` as it was
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { Miniflare, type MiniflareOptions } from "../../src/miniflare.js";
import { LogLevel } from "../../src/shared/log.js";
import { fixturePath } from "../helpers/fixtures.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

// Miniflare 2.14.4 wrote test/fixtures/miniflare2/do with a counter like this
// one, bound as COUNTER, whose object named "a" had counted to 3 (and kept a
// Map, a key with "/" and ":", and an alarm for 2100)
const COUNTER_SCRIPT = `
export class Counter {
  constructor(state) { this.storage = state.storage; }
  async fetch() {
    const count = ((await this.storage.get("count")) ?? 0) + 1;
    await this.storage.put("count", count);
    const map = await this.storage.get("map");
    return new Response(JSON.stringify({
      count,
      map: map && [...map],
      weird: await this.storage.get("Weird/Key:é"),
      alarm: await this.storage.getAlarm(),
      keys: [...(await this.storage.list()).keys()],
    }));
  }
  alarm() {}
}
export default {
  fetch: (request, env) => env.COUNTER.get(env.COUNTER.idFromName("a")).fetch(request),
};
`;
const ALARM_TIME = 4102444800000;

const KV_SCRIPT = `export default { fetch: () => new Response("") }`;

/** The info line of a migration into `persist` of what `moved`, from `from` */
function migratedLine(moved: string, from: string, persist: string): string {
  return `Migrated ${moved} from Miniflare 2's ${from} to ${path.join(persist, "mfs1")} (old files left in place)`;
}

function migratedLines(log: TestLog): string[] {
  return log.logsAtLevel(LogLevel.INFO).filter((line) => line.startsWith("Migrated"));
}

async function copyFixture(dir: string, part: "kv" | "do", to = dir): Promise<string> {
  await fs.cp(fixturePath("miniflare2", part), to, { recursive: true });
  return to;
}

async function count(mf: Miniflare): Promise<Record<string, unknown>> {
  return JSON.parse(await (await mf.dispatchFetch("http://localhost/")).text());
}

function useCwd(t: TestContext, cwd: string): void {
  const previous = process.cwd();
  process.chdir(cwd);
  t.after(() => process.chdir(previous));
}

test("Miniflare: upgrading: a Durable Object counter persisted by Miniflare 2 carries on", async (t) => {
  const persist = await copyFixture(path.join(await useTmp(t), "data"), "do");
  const log = new TestLog();
  const options: MiniflareOptions = {
    log,
    modules: true,
    script: COUNTER_SCRIPT,
    durableObjects: { COUNTER: "Counter" },
    durableObjectsPersist: persist,
  };
  const mf = new Miniflare(options);
  try {
    assert.deepEqual(await count(mf), {
      count: 4,
      map: [["a", 1]],
      weird: "x",
      alarm: ALARM_TIME,
      keys: ["Weird/Key:é", "count", "map"],
    });
    assert.equal((await count(mf)).count, 5);
  } finally {
    await mf.dispose();
  }
  assert.deepEqual(migratedLines(log), [
    migratedLine("3 Durable Object keys in 1 object and 1 alarm", persist, persist),
  ]);

  // The next start goes on from there, without migrating again
  log.clear();
  const again = useMiniflare(t, options);
  assert.equal((await count(again)).count, 6);
  assert.deepEqual(migratedLines(log), []);
  // Miniflare 2's files are as they were
  const count3 = path.join("COUNTER", "b32eac942a66c07b60b29df172f8543d0484fb5511aea6f76075e2f903ff62b7", "count");
  const [now, then] = [path.join(persist, count3), fixturePath("miniflare2", "do", count3)];
  assert.deepEqual(await fs.readFile(now), await fs.readFile(then));
});

test("Miniflare: upgrading: durableObjectsPersist: true takes .mf/durableobjects into .mf/do", async (t) => {
  const cwd = await useTmp(t);
  await copyFixture(cwd, "do", path.join(cwd, ".mf", "durableobjects"));
  useCwd(t, cwd);
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    modules: true,
    script: COUNTER_SCRIPT,
    durableObjects: { COUNTER: "Counter" },
    durableObjectsPersist: true,
  });
  assert.equal((await count(mf)).count, 4);
  assert.deepEqual(migratedLines(log), [
    migratedLine("3 Durable Object keys in 1 object and 1 alarm", path.join(".mf", "durableobjects"), ".mf/do"),
  ]);
  assert.ok(await fs.stat(path.join(cwd, ".mf", "do", "mfs1", "COUNTER")));
});

test("Miniflare: upgrading: KV persisted by Miniflare 2 reads back the same through getKVNamespace()", async (t) => {
  const persist = await copyFixture(path.join(await useTmp(t), "kv"), "kv");
  const log = new TestLog();
  const options = { log, modules: true, script: KV_SCRIPT, kvNamespaces: ["NS", "OTHER"], kvPersist: persist };
  const mf = useMiniflare(t, options);
  const ns = await mf.getKVNamespace("NS");
  const { keys, list_complete } = await ns.list();
  assert.equal(list_complete, true);
  assert.deepEqual(keys, [
    { name: "Upper", expiration: undefined, metadata: undefined },
    { name: "a/b", expiration: undefined, metadata: undefined },
    { name: "binary", expiration: undefined, metadata: undefined },
    { name: "con", expiration: undefined, metadata: undefined },
    { name: "plain", expiration: undefined, metadata: undefined },
    { name: "q?x", expiration: undefined, metadata: undefined },
    { name: "sp ace", expiration: undefined, metadata: undefined },
    { name: "unicode-é✓", expiration: undefined, metadata: undefined },
    { name: "user:1", expiration: undefined, metadata: undefined },
    { name: "withboth", expiration: 2147483000, metadata: [1, "two"] },
    { name: "withexp", expiration: 2147483000, metadata: undefined },
    { name: "withmeta", expiration: undefined, metadata: { a: 1, s: "é" } },
  ]);
  for (const { name } of keys) {
    if (["binary", "withboth", "withexp", "withmeta"].includes(name)) continue;
    assert.deepEqual(await ns.getWithMetadata(name), { value: `v:${name}`, metadata: null });
  }
  assert.deepEqual(new Uint8Array((await ns.get("binary", "arrayBuffer"))!), Uint8Array.of(0x00, 0xff, 0x01, 0x02));
  assert.deepEqual(await ns.getWithMetadata("withboth"), { value: "b", metadata: [1, "two"] });
  assert.deepEqual(await ns.getWithMetadata("withmeta"), { value: "m", metadata: { a: 1, s: "é" } });
  assert.equal(await (await mf.getKVNamespace("OTHER")).get("k"), "other");
  assert.deepEqual(migratedLines(log), [migratedLine("13 KV keys in 2 namespaces", persist, persist)]);
});

test("Miniflare: upgrading: kvPersist: true migrates Miniflare 2's .mf/kv in place", async (t) => {
  const cwd = await useTmp(t);
  await copyFixture(cwd, "kv", path.join(cwd, ".mf", "kv"));
  useCwd(t, cwd);
  const log = new TestLog();
  const mf = useMiniflare(t, { log, modules: true, script: KV_SCRIPT, kvNamespaces: ["NS"], kvPersist: true });
  assert.equal(await (await mf.getKVNamespace("NS")).get("user:1"), "v:user:1");
  const kv = path.join(".mf", "kv");
  assert.deepEqual(migratedLines(log), [migratedLine("13 KV keys in 2 namespaces", kv, kv)]);
});

test("Miniflare: upgrading: KV and Durable Objects sharing one folder in wrangler.toml", async (t) => {
  const root = await useTmp(t);
  await copyFixture(root, "kv", path.join(root, "data"));
  await copyFixture(root, "do", path.join(root, "data"));
  await writeFiles(root, {
    "wrangler.toml": `
      kv_namespaces = [{ binding = "NS" }]
      [durable_objects]
      bindings = [{ name = "COUNTER", class_name = "Counter" }]
      [miniflare]
      kv_persist = "data"
      durable_objects_persist = "data"
    `,
    "worker.mjs": COUNTER_SCRIPT,
  });
  const log = new TestLog();
  const mf = useMiniflare(t, { log, rootPath: root, scriptPath: "worker.mjs", wranglerConfigPath: true });
  assert.equal((await count(mf)).count, 4);
  assert.equal(await (await mf.getKVNamespace("NS")).get("plain"), "v:plain");
  const data = path.join(root, "data");
  assert.deepEqual(migratedLines(log), [
    migratedLine("13 KV keys in 2 namespaces", data, data),
    migratedLine("3 Durable Object keys in 1 object and 1 alarm", data, data),
  ]);
});
