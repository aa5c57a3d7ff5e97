// Cron triggers (features §12): the crons option and its errors, and the
// scheduler firing them by an injected clock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SchedulerError } from "../../../src/plugins/scheduler/plugin.js";
import { LogLevel } from "../../../src/shared/log.js";
import { assertRejectsMiniflare } from "../../helpers/errors.js";
import { TestClock } from "../../helpers/clock.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useTmp, writeFiles } from "../../helpers/tmp.js";

const MINUTE = 60_000;

// Crons run in local time: pin it, so minutes line up on any machine
process.env.TZ = "UTC";

/** A modules worker whose scheduled handler reports (cron, time) to `fired` */
function scheduledWorker(fired: [string, number][]) {
  return {
    modules: true,
    script: `export default { scheduled(controller, env) { env.FIRED(controller.cron, controller.scheduledTime); } }`,
    bindings: { FIRED: (cron: string, time: number) => fired.push([cron, time]) },
  };
}

test("SchedulerPlugin: a cron that doesn't parse is a SchedulerError [ERR_INVALID_CRON]", async (t) => {
  const mf = useMiniflare(t, { script: "//", crons: ["* * * * *", "60 * * * *"] });
  await assertRejectsMiniflare(
    mf.getPlugins(),
    SchedulerError,
    "ERR_INVALID_CRON",
    'Unable to parse CRON "60 * * * *": Failed to parse 60: 60 is outside of constraint range of 0 - 59.'
  );
  const bad = useMiniflare(t, { script: "//", crons: ["nope"] });
  await assertRejectsMiniflare(
    bad.getPlugins(),
    SchedulerError,
    "ERR_INVALID_CRON",
    'Unable to parse CRON "nope": Invalid cron expression: expected 5 or 6 elements.'
  );
});

test("SchedulerPlugin: crons come from wrangler.toml's [triggers], and are logged", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "wrangler.toml": `[triggers]\ncrons = ["*/5 * * * *", "0 12 * * mon"]\n`, "worker.js": "//" });
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, { log, rootPath: tmp, scriptPath: "worker.js", wranglerConfigPath: true });
  const { SchedulerPlugin } = await mf.getPlugins();
  assert.deepEqual(SchedulerPlugin.crons, ["*/5 * * * *", "0 12 * * mon"]);
  assert.deepEqual(SchedulerPlugin.validatedCrons.map(([spec]) => spec), ["*/5 * * * *", "0 12 * * mon"]);
  assert.ok(log.logsAtLevel(LogLevel.DEBUG).includes("- CRON Expressions: */5 * * * *, 0 12 * * mon"));
  // No "not supported yet" warning any more
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
});

test("startScheduler: fires each cron when the clock reaches its time, logging SCHD", async (t) => {
  const clock = new TestClock();
  // On a ten-minute boundary: "* * * * *" is next due a minute on, and
  // "*/2 * * * *" two
  clock.now = Math.ceil(clock.now / (10 * MINUTE)) * 10 * MINUTE;
  const fired: [string, number][] = [];
  const log = new TestLog();
  const mf = useMiniflare(t, { log, ...scheduledWorker(fired), crons: ["* * * * *", "*/2 * * * *"] }, clock);
  const scheduler = await mf.startScheduler();
  t.after(() => scheduler.dispose());
  await clock.advance(MINUTE - 1);
  assert.equal(fired.length, 0);
  await clock.advance(1);
  assert.deepEqual(fired.map(([cron]) => cron), ["* * * * *"]);
  await clock.advance(MINUTE);
  assert.equal(fired.filter(([cron]) => cron === "* * * * *").length, 2);
  assert.equal(fired.filter(([cron]) => cron === "*/2 * * * *").length, 1);
  assert.ok(log.logs.some(([, line]) => /SCHD.*\* \* \* \* \*/.test(line)), "a SCHD line");
});

test("startScheduler: follows reloads that change the crons, and stops at dispose()", async (t) => {
  const clock = new TestClock();
  clock.now = Math.ceil(clock.now / MINUTE) * MINUTE;
  const fired: [string, number][] = [];
  const mf = useMiniflare(t, { ...scheduledWorker(fired), crons: ["* * * * *"] }, clock);
  const scheduler = await mf.startScheduler();
  await clock.advance(MINUTE);
  assert.deepEqual(fired.map(([cron]) => cron), ["* * * * *"]);
  // Every ten minutes from now on: nothing for the next minute
  await mf.setOptions({ crons: ["*/10 * * * *"] });
  fired.length = 0;
  const toTen = 10 * MINUTE - (clock.now % (10 * MINUTE));
  await clock.advance(toTen - 1);
  assert.equal(fired.length, 0);
  await clock.advance(1);
  assert.deepEqual(fired.map(([cron]) => cron), ["*/10 * * * *"]);
  await scheduler.dispose();
  await clock.advance(20 * MINUTE);
  assert.equal(fired.length, 1);
});

test("startScheduler: the instance's dispose() stops its schedulers", async (t) => {
  const clock = new TestClock();
  clock.now = Math.ceil(clock.now / MINUTE) * MINUTE;
  const fired: [string, number][] = [];
  const mf = useMiniflare(t, { ...scheduledWorker(fired), crons: ["* * * * *"], durableObjectsAlarms: false }, clock);
  await mf.startScheduler();
  await mf.startScheduler();
  await clock.advance(MINUTE);
  assert.equal(fired.length, 2);
  assert.equal(clock.pending, 2);
  await mf.dispose();
  // No timer left to fire into the disposed instance
  assert.equal(clock.pending, 0);
  await clock.advance(10 * MINUTE);
  assert.equal(fired.length, 2);
});

test("CLI: --cron is taken (and logged with --debug); a bad one stops the start with the SchedulerError", async (t) => {
  const { runBin, waitForOutput, exitsWithin } = await import("../../helpers/process.js");
  const tmp = await useTmp(t);
  await writeFiles(tmp, { "worker.mjs": `export default { fetch: () => new Response("ok"), scheduled() {} }` });
  const run = runBin(t, ["worker.mjs", "--modules", "--cron", "*/5 * * * *", "-t", "0 0 * * *", "--debug", "--port", "0", "--no-update-check", "--no-cf-fetch"], tmp);
  await waitForOutput(run, /Listening on 127\.0\.0\.1:\d+/);
  assert.match(run.stdout(), /- CRON Expressions: \*\/5 \* \* \* \*, 0 0 \* \* \*/);
  const bad = runBin(t, ["worker.mjs", "--modules", "--cron", "61 * * * *", "--port", "0", "--no-update-check"], tmp);
  assert.equal(await exitsWithin(bad, 20_000), 1);
  assert.match(bad.output(), /SchedulerError \[ERR_INVALID_CRON\]: Unable to parse CRON "61 \* \* \* \*"/);
});

test("startScheduler: a cron due further away than a Node timer can wait still fires once, on time", async (t) => {
  const clock = new TestClock();
  clock.now = Date.UTC(2030, 0, 2);
  const fired: [string, number][] = [];
  // (Durable Object alarms off: their 30-second scan would tick a million
  // times over the year this test moves the clock through)
  const mf = useMiniflare(t, { ...scheduledWorker(fired), crons: ["0 0 1 1 *"], durableObjectsAlarms: false }, clock);
  const scheduler = await mf.startScheduler();
  t.after(() => scheduler.dispose());
  // Next due on 1 January 2031: about 364 days, over Node's 24.8-day timer limit
  await clock.advance(Date.UTC(2031, 0, 1) - clock.now - 1);
  assert.equal(fired.length, 0);
  await clock.advance(1);
  assert.deepEqual(fired.map(([cron]) => cron), ["0 0 1 1 *"]);
});
