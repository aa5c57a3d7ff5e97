import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Watcher } from "../../src/core/watch.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

test("Watcher: a file change is reported once, well before the next poll", async (t) => {
  const tmp = await useTmp(t);
  const file = path.join(tmp, "worker.mjs");
  await writeFiles(tmp, { "worker.mjs": "// v0\n" });
  const reports: { path: string; at: number }[] = [];
  const watcher = new Watcher((changed) => reports.push({ path: changed, at: performance.now() }));
  t.after(() => watcher.dispose());
  watcher.watch([file]);
  await sleep(50);

  const latencies: number[] = [];
  for (let i = 1; i <= 8; i++) {
    const before = reports.length;
    const written = performance.now();
    await fs.writeFile(file, `// v${i}\n`.repeat(i));
    for (let j = 0; j < 100 && reports.length === before; j++) await sleep(5);
    assert.equal(reports.length, before + 1, `change ${i} reported`);
    latencies.push(reports[before].at - written);
    // Long enough for the poller to see the same change too, then a random
    // wait, so writes don't fall in step with the polling
    await sleep(400 + Math.random() * 250);
    assert.equal(reports.length, before + 1, `change ${i} reported once`);
  }
  assert.ok(reports.every((report) => report.path === file));
  // Polling alone (every 250 ms, plus the 50 ms debounce) averages ~175 ms;
  // the folder watch, ~55 ms
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  assert.ok(mean < 120, `mean latency ${mean.toFixed(0)} ms (${latencies.map((l) => l.toFixed(0))})`);
});

test("Watcher: an editor's save by rename is noticed", async (t) => {
  const tmp = await useTmp(t);
  const file = path.join(tmp, "worker.mjs");
  await writeFiles(tmp, { "worker.mjs": "// v0\n" });
  const reports: string[] = [];
  const watcher = new Watcher((changed) => reports.push(changed));
  t.after(() => watcher.dispose());
  watcher.watch([file]);
  await sleep(50);

  // Write a temporary file, then rename it over the watched one
  const temp = path.join(tmp, ".worker.mjs.swp");
  await fs.writeFile(temp, "// v1 saved by rename\n");
  await fs.rename(temp, file);
  for (let j = 0; j < 100 && reports.length === 0; j++) await sleep(5);
  assert.deepEqual(reports, [file]);

  // And later changes to the new file still are
  await sleep(400);
  await fs.writeFile(file, "// v2, longer than before\n");
  for (let j = 0; j < 100 && reports.length === 1; j++) await sleep(5);
  assert.deepEqual(reports, [file, file]);
});
