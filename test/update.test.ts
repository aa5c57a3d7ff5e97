import assert from "node:assert/strict";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { LogLevel } from "../src/shared/log.js";
import { updateCheck } from "../src/update.js";
import { TestLog } from "./helpers/log.js";
import { useTmp } from "./helpers/tmp.js";

async function useRegistry(t: TestContext, version: string): Promise<{ url: string; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? "");
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ version }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, hits };
}

const pkg = { name: "miniflare", version: "2.14.4" };

test("updateCheck: warns about newer versions and major bumps, once a day", async (t) => {
  const tmp = await useTmp(t);
  const lastCheckFile = path.join(tmp, "update-check");
  const registry = await useRegistry(t, "3.0.1");
  const log = new TestLog();
  const now = 1_000_000_000_000;
  await updateCheck({ pkg, lastCheckFile, log, now, registry: registry.url });
  assert.deepEqual(registry.hits, ["/miniflare/latest"]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Miniflare 3.0.1 is available, but you're using 2.14.4. Update for improved compatibility with Cloudflare Workers.",
    "3.0.1 includes breaking changes.Make sure you check the changelog before upgrading.",
  ]);
  assert.equal(await fs.readFile(lastCheckFile, "utf8"), String(now));

  // Within a day: no request at all
  await updateCheck({ pkg, lastCheckFile, log, now: now + 86_399_999, registry: registry.url });
  assert.equal(registry.hits.length, 1);
  // A day later: checks again
  await updateCheck({ pkg, lastCheckFile, log, now: now + 86_400_000, registry: registry.url });
  assert.equal(registry.hits.length, 2);
});

test("updateCheck: a newer minor version warns without the breaking-changes line", async (t) => {
  const tmp = await useTmp(t);
  const registry = await useRegistry(t, "2.14.10");
  const log = new TestLog();
  await updateCheck({ pkg, lastCheckFile: path.join(tmp, "check"), log, registry: registry.url });
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Miniflare 2.14.10 is available, but you're using 2.14.4. Update for improved compatibility with Cloudflare Workers.",
  ]);
});

test("updateCheck: the same or an older version says nothing", async (t) => {
  const tmp = await useTmp(t);
  for (const version of ["2.14.4", "2.9.0"]) {
    const registry = await useRegistry(t, version);
    const log = new TestLog();
    await updateCheck({ pkg, lastCheckFile: path.join(tmp, version), log, registry: registry.url });
    assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  }
});

test("updateCheck: versions compare as semver, releases above their pre-releases", async () => {
  const { _compareVersions } = await import("../src/update.js");
  assert.ok(_compareVersions("2.14.4", "2.14.4-rc.1") > 0);
  assert.ok(_compareVersions("2.14.4-rc.1", "2.14.4") < 0);
  assert.ok(_compareVersions("2.14.10", "2.14.9") > 0);
  assert.ok(_compareVersions("3.0.0-beta.2", "3.0.0-beta.10") < 0);
  assert.equal(_compareVersions("2.14.4", "2.14.4"), 0);
});
