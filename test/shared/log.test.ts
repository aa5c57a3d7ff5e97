import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { $ as colors } from "kleur/colors";
import { Log, LogLevel, NoOpLog, type LogOptions } from "../../src/shared/log.js";

// Colours depend on whether stdout is a TTY and on FORCE_COLOR/NO_COLOR
// eslint-disable-next-line no-control-regex
const ansiRegexp = /\x1b\[[0-9;]*m/g;
function stripAnsi(s: string): string {
  return s.replace(ansiRegexp, "");
}

/** A Log capturing what it would print with console.log */
class CapturingLog extends Log {
  readonly lines: string[] = [];
  constructor(level?: LogLevel, opts?: LogOptions) {
    super(level, opts);
  }
  override log(message: string): void {
    this.lines.push(message);
  }
  get plain(): string[] {
    return this.lines.map(stripAnsi);
  }
}

function logAtEveryLevel(log: Log): void {
  log.error(new Error("error message"));
  log.warn("warn message");
  log.info("info message");
  log.debug("debug message");
  log.verbose("verbose message");
}

/** Replaces console.log while `closure` runs, returning what was logged */
function captureConsoleLog(closure: () => void): unknown[][] {
  const calls: unknown[][] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void calls.push(args);
  try {
    closure();
  } finally {
    console.log = original;
  }
  return calls;
}

/** Runs `closure` with kleur colours forced on (or off) */
function withColours<T>(enabled: boolean, closure: () => T): T {
  const previous = colors.enabled;
  colors.enabled = enabled;
  try {
    return closure();
  } finally {
    colors.enabled = previous;
  }
}

test("LogLevel: values", () => {
  assert.equal(LogLevel.NONE, 0);
  assert.equal(LogLevel.ERROR, 1);
  assert.equal(LogLevel.WARN, 2);
  assert.equal(LogLevel.INFO, 3);
  assert.equal(LogLevel.DEBUG, 4);
  assert.equal(LogLevel.VERBOSE, 5);
});

test("Log: logWithLevel: prefixes messages with the level", () => {
  const log = new CapturingLog(LogLevel.VERBOSE);
  log.warn("warn message");
  log.info("info message");
  log.debug("debug message");
  log.verbose("verbose message");
  log.logWithLevel(LogLevel.ERROR, "error message");
  assert.deepEqual(log.plain, [
    "[mf:wrn] warn message",
    "[mf:inf] info message",
    "[mf:dbg] debug message",
    "[mf:vrb] verbose message",
    "[mf:err] error message",
  ]);
});

test("Log: constructor: defaults to the INFO level", () => {
  const log = new CapturingLog();
  assert.equal(log.level, LogLevel.INFO);
  assert.equal(new Log().level, LogLevel.INFO);
  log.warn("warn message");
  log.info("info message");
  log.debug("debug message");
  log.verbose("verbose message");
  assert.deepEqual(log.plain, ["[mf:wrn] warn message", "[mf:inf] info message"]);
});

test("Log: logWithLevel: only logs messages at or below the log's level", () => {
  const expected: Record<LogLevel, string[]> = {
    [LogLevel.NONE]: [],
    [LogLevel.ERROR]: ["err"],
    [LogLevel.WARN]: ["err", "wrn"],
    [LogLevel.INFO]: ["err", "wrn", "inf"],
    [LogLevel.DEBUG]: ["err", "wrn", "inf", "dbg"],
    [LogLevel.VERBOSE]: ["err", "wrn", "inf", "dbg", "vrb"],
  };
  for (const level of [
    LogLevel.ERROR,
    LogLevel.WARN,
    LogLevel.INFO,
    LogLevel.DEBUG,
    LogLevel.VERBOSE,
  ]) {
    const log = new CapturingLog(level);
    logAtEveryLevel(log);
    const prefixes = log.plain.map((line) => /^\[mf:(\w+)\]/.exec(line)?.[1]);
    assert.deepEqual(prefixes, expected[level], LogLevel[level]);
  }
  // NONE logs nothing (and error() throws, see below)
  const none = new CapturingLog(LogLevel.NONE);
  none.warn("warn message");
  none.info("info message");
  none.debug("debug message");
  none.verbose("verbose message");
  none.logWithLevel(LogLevel.ERROR, "error message");
  assert.deepEqual(none.lines, []);
});

test("Log: logWithLevel: uses the prefix and suffix options", () => {
  const mount = new CapturingLog(LogLevel.INFO, { suffix: "mount" });
  mount.info("message");
  mount.warn("warning");
  assert.deepEqual(mount.plain, ["[mf:inf:mount] message", "[mf:wrn:mount] warning"]);

  const custom = new CapturingLog(LogLevel.INFO, { prefix: "custom" });
  custom.info("message");
  assert.deepEqual(custom.plain, ["[custom:inf] message"]);

  const both = new CapturingLog(LogLevel.INFO, { prefix: "a", suffix: "b" });
  both.info("message");
  assert.deepEqual(both.plain, ["[a:inf:b] message"]);

  const empty = new CapturingLog(LogLevel.INFO, { prefix: "", suffix: "" });
  empty.info("message");
  assert.deepEqual(empty.plain, ["[inf] message"]);

  const suffixOnly = new CapturingLog(LogLevel.INFO, { prefix: "", suffix: "s" });
  suffixOnly.info("message");
  assert.deepEqual(suffixOnly.plain, ["[inf:s] message"]);
});

test("Log: logWithLevel: colours lines by level", () => {
  withColours(true, () => {
    const log = new CapturingLog(LogLevel.VERBOSE);
    log.logWithLevel(LogLevel.ERROR, "error");
    log.warn("warn");
    log.info("info");
    log.debug("debug");
    log.verbose("verbose");
    assert.deepEqual(log.lines, [
      "\x1b[31m[mf:err] error\x1b[39m", // red
      "\x1b[33m[mf:wrn] warn\x1b[39m", // yellow
      "\x1b[32m[mf:inf] info\x1b[39m", // green
      "\x1b[90m[mf:dbg] debug\x1b[39m", // grey
      "\x1b[2m\x1b[90m[mf:vrb] verbose\x1b[39m\x1b[22m", // dim grey
    ]);
  });
  withColours(false, () => {
    const log = new CapturingLog(LogLevel.INFO);
    log.info("info");
    assert.deepEqual(log.lines, ["[mf:inf] info"]);
  });
});

test("Log: log: prints the raw message with console.log at any level", () => {
  for (const level of [LogLevel.NONE, LogLevel.INFO]) {
    const log = new Log(level);
    const calls = withColours(true, () =>
      captureConsoleLog(() => log.log("raw message"))
    );
    assert.deepEqual(calls, [["raw message"]]);
  }
  // Levelled messages go through log() too
  const calls = captureConsoleLog(() => new Log(LogLevel.INFO).info("info"));
  assert.equal(calls.length, 1);
  assert.equal(stripAnsi(String(calls[0][0])), "[mf:inf] info");
});

test("Log: error: prints the error's stack", () => {
  const log = new CapturingLog(LogLevel.ERROR);
  const error = new TypeError("something broke");
  log.error(error);
  assert.equal(log.plain.length, 1);
  const lines = log.plain[0].split("\n");
  assert.equal(lines[0], "[mf:err] TypeError: something broke");
  assert.ok(lines.length > 1);
  assert.deepEqual(lines.slice(1), error.stack!.split("\n").slice(1));
  assert.match(lines[1], /^ {4}at /);
});

test("Log: error: dims stack frames outside the project and inside node_modules", () => {
  const cwd = process.cwd();
  const error = new Error("dimming");
  const inside = `    at inside (${path.join(cwd, "src", "file.js")}:1:1)`;
  const outside = `    at outside (${path.join(path.parse(cwd).root, "elsewhere-entirely", "file.js")}:1:1)`;
  const dependency = `    at dependency (${path.join(cwd, "node_modules", "dep", "index.js")}:1:1)`;
  const internal = "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)";
  error.stack = ["Error: dimming", inside, outside, dependency, internal].join("\n");

  const log = new CapturingLog(LogLevel.ERROR);
  withColours(true, () => log.error(error));
  assert.equal(log.lines.length, 1);
  // Strip the red wrapping around the whole entry
  const body = log.lines[0].replace(/^\x1b\[31m/, "").replace(/\x1b\[39m$/, "");
  const lines = body.split("\n");
  assert.equal(lines[0], "[mf:err] Error: dimming");
  const isDim = (line: string) => line.startsWith("\x1b[2m") && line.endsWith("\x1b[22m");
  assert.equal(lines[1], inside);
  assert.ok(isDim(lines[2]), JSON.stringify(lines[2]));
  assert.ok(isDim(lines[3]), JSON.stringify(lines[3]));
  assert.ok(isDim(lines[4]), JSON.stringify(lines[4]));
  assert.deepEqual(lines.map(stripAnsi), [
    "[mf:err] Error: dimming",
    inside,
    outside,
    dependency,
    internal,
  ]);
});

test("Log: error: logs the error's cause chain with \"Cause: \"", () => {
  const root = new RangeError("root cause");
  const middle = new Error("middle", { cause: root });
  const top = new Error("top", { cause: middle });
  const log = new CapturingLog(LogLevel.ERROR);
  log.error(top);
  const firstLines = log.plain.map((entry) => entry.split("\n")[0]);
  assert.deepEqual(firstLines, [
    "[mf:err] Error: top",
    "[mf:err] Cause: Error: middle",
    "[mf:err] Cause: RangeError: root cause",
  ]);
  // Each cause is printed with its own stack
  for (const entry of log.plain) assert.match(entry, /\n {4}at /);
  // The causes themselves aren't changed
  assert.match(middle.stack!, /^Error: middle/);
  assert.match(root.stack!, /^RangeError: root cause/);
});

test("Log: error: logs errors without a stack with toString()", () => {
  const error = new Error("no stack");
  Object.defineProperty(error, "stack", { value: undefined });
  const log = new CapturingLog(LogLevel.ERROR);
  log.error(error);
  assert.deepEqual(log.plain, ["[mf:err] Error: no stack"]);
});

test("Log: error: rethrows the error when the level is NONE", () => {
  const log = new CapturingLog(LogLevel.NONE);
  const error = new Error("not swallowed");
  assert.throws(
    () => log.error(error),
    (thrown) => thrown === error
  );
  assert.deepEqual(log.lines, []);
});

test("Log: error: doesn't throw at ERROR level and above", () => {
  for (const level of [LogLevel.ERROR, LogLevel.WARN, LogLevel.VERBOSE]) {
    const log = new CapturingLog(level);
    log.error(new Error("logged"));
    assert.equal(log.plain.length, 1);
  }
});

test("NoOpLog: prints nothing", () => {
  const log = new NoOpLog(LogLevel.VERBOSE);
  const calls = captureConsoleLog(() => {
    (log as Log).log("raw");
    log.warn("warn");
    log.info("info");
    log.debug("debug");
    log.verbose("verbose");
    log.logWithLevel(LogLevel.ERROR, "error");
  });
  assert.deepEqual(calls, []);
  // Default level is still INFO
  assert.equal(new NoOpLog().level, LogLevel.INFO);
  assert.ok(new NoOpLog() instanceof Log);
});

test("NoOpLog: error: rethrows the error", () => {
  const log = new NoOpLog();
  const error = new TypeError("rethrown");
  const calls = captureConsoleLog(() => {
    assert.throws(
      () => log.error(error),
      (thrown) => thrown === error
    );
  });
  assert.deepEqual(calls, []);
});
