import assert from "node:assert/strict";
import { unwatchFile, watch, watchFile } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Watcher } from "../../src/core/watch.js";
import { timerDue } from "../helpers/sync.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

// These tests assert what is noticed and how often, never how fast: with
// polling made too slow to matter, only the folder watch can notice a change
// inside the (generous) deadline.
const DEADLINE = 10_000; /* ms */
const SLOW_POLL = 60_000; /* ms */
const DEBOUNCE = 50; /* ms, the Watcher's */

async function waitFor(condition: () => boolean): Promise<boolean> {
  const end = Date.now() + DEADLINE;
  while (!condition()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/**
 * Whether fs.watch reports a write in this folder at all: where it can't
 * (no inotify instances left, some network or container file systems), the
 * Watcher must still notice changes, by polling
 */
async function folderWatchWorks(dir: string): Promise<boolean> {
  let fired = false;
  let watcher;
  try {
    watcher = watch(dir, () => (fired = true));
  } catch {
    return false;
  }
  watcher.on("error", () => {});
  try {
    await fs.writeFile(path.join(dir, "probe"), "probe");
    return await waitFor(() => fired);
  } finally {
    watcher.close();
    await fs.rm(path.join(dir, "probe"));
  }
}

/**
 * A watched worker.mjs in a new folder, and the paths reported. With
 * `pollInterval` "slow", polling is too slow to notice anything within the
 * deadline; but where fs.watch can't fire, polling is all there is, so the
 * same changes must then be noticed by it, at its usual interval.
 */
async function watchedFile(
  t: TestContext,
  pollInterval: number | "slow"
): Promise<{ tmp: string; file: string; reports: string[] }> {
  const tmp = await useTmp(t);
  const file = path.join(tmp, "worker.mjs");
  await writeFiles(tmp, { "worker.mjs": "// v0\n" });
  const reports: string[] = [];
  if (pollInterval === "slow") {
    const watchWorks = await folderWatchWorks(tmp);
    if (!watchWorks) t.diagnostic("fs.watch doesn't fire here: checking the polling fallback instead");
    pollInterval = watchWorks ? SLOW_POLL : 250;
  }
  const watcher = new Watcher((changed) => reports.push(changed), { pollInterval });
  t.after(() => watcher.dispose());
  watcher.watch([file]);
  await sleep(50);
  return { tmp, file, reports };
}

/**
 * Writes `contents` over the start of `file` in one write, without truncating
 * it first: a truncate and a write are two changes, which a loaded machine
 * can deliver further apart than the Watcher's debounce. (Each version here
 * is longer than the last, so nothing of the old one is left.)
 */
async function overwrite(file: string, contents: string): Promise<void> {
  const handle = await fs.open(file, "r+");
  try {
    await handle.write(contents, 0);
  } finally {
    await handle.close();
  }
}

/** Resolves at the next fs.watch event in `dir` (after the Watcher's own) */
function nextEvent(t: TestContext, dir: string): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(dir, () => {
      watcher.close();
      resolve();
    });
    t.after(() => watcher.close());
  });
}

test("Watcher: the folder watch notices each change without polling, and reports it once", async (t) => {
  const { tmp, file, reports } = await watchedFile(t, "slow");

  for (let i = 1; i <= 4; i++) {
    await overwrite(file, `// v${i}\n`.repeat(i));
    assert.ok(await waitFor(() => reports.length === i), `change ${i} reported`);
    // fs.watch often fires again for one write: another event for the same
    // contents (same mode, so same mtime and size) is no second report, once
    // its debounce (a later, longer timer) is past
    const event = nextEvent(t, tmp);
    await fs.chmod(file, (await fs.stat(file)).mode);
    await event;
    await timerDue(2 * DEBOUNCE);
    assert.equal(reports.length, i, `change ${i} reported once`);
  }
  assert.ok(reports.every((report) => report === file));
});

test("Watcher: a change seen by both the folder watch and the poller is reported once", async (t) => {
  const { file, reports } = await watchedFile(t, 50);

  // Node shares one poller per file: this listener hears what the Watcher's does
  let polled = 0;
  const onPoll = () => polled++;
  watchFile(file, { interval: 50 }, onPoll);
  t.after(() => unwatchFile(file, onPoll));
  for (let i = 1; i <= 4; i++) {
    await overwrite(file, `// v${i}\n`.repeat(i));
    assert.ok(await waitFor(() => reports.length === i), `change ${i} reported`);
    // The poller has seen the same change too, and its report is past
    // its debounce (a later, longer timer)
    assert.ok(await waitFor(() => polled >= i), `change ${i} polled`);
    await timerDue(2 * DEBOUNCE);
    assert.equal(reports.length, i, `change ${i} reported once`);
  }
});

test("Watcher: an editor's save by rename is noticed without polling", async (t) => {
  const { tmp, file, reports } = await watchedFile(t, "slow");

  // Write a temporary file, then rename it over the watched one
  const temp = path.join(tmp, ".worker.mjs.swp");
  await fs.writeFile(temp, "// v1 saved by rename\n");
  await fs.rename(temp, file);
  assert.ok(await waitFor(() => reports.length === 1), "save by rename reported");
  assert.deepEqual(reports, [file]);

  // And later changes to the new file still are
  await overwrite(file, "// v2, longer than before\n");
  assert.ok(await waitFor(() => reports.length === 2), "later change reported");
  assert.deepEqual(reports, [file, file]);
});
