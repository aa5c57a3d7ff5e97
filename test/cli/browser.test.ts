// `--open`: which opener runs on each platform, how its failures are
// reported, and (outside Windows) the real thing with a stand-in opener on
// the PATH that records the URL instead of starting a browser.
import assert from "node:assert/strict";
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type OpenCommand, type Spawn, openBrowser, openCommand } from "../../src/cli/browser.js";
import { runBin, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const URL_WITH_QUERY = "http://localhost:8787/a b?x=1&y=2|3";

test("openCommand: the platform's opener, detached and without stdio", () => {
  const detached: SpawnOptions = { detached: true, stdio: "ignore" };
  const cases: [NodeJS.Platform, OpenCommand][] = [
    ["darwin", { command: "open", args: [URL_WITH_QUERY], options: detached }],
    ["linux", { command: "xdg-open", args: [URL_WITH_QUERY], options: detached }],
    ["freebsd", { command: "xdg-open", args: [URL_WITH_QUERY], options: detached }],
    [
      "win32",
      {
        command: "C:\\Windows\\system32\\cmd.exe",
        // The URL is quoted so cmd doesn't split it at & or |
        args: ["/d", "/c", "start", '""', `"${URL_WITH_QUERY}"`],
        options: { ...detached, windowsVerbatimArguments: true, windowsHide: true },
      },
    ],
  ];
  for (const [platform, expected] of cases) {
    assert.deepEqual(
      openCommand(URL_WITH_QUERY, platform, { ComSpec: "C:\\Windows\\system32\\cmd.exe" }),
      expected,
      platform
    );
  }
  // Without ComSpec, cmd.exe from the PATH; a " can't end the quoted URL
  assert.deepEqual(openCommand('http://x/"&calc', "win32", {}).command, "cmd.exe");
  assert.deepEqual(openCommand('http://x/"&calc', "win32", {}).args.at(-1), '"http://x/%22&calc"');
});

/** A stand-in ChildProcess: an emitter whose unref() is counted */
class FakeChild extends EventEmitter {
  unrefs = 0;
  unref(): void {
    this.unrefs++;
  }
}

function fakeSpawn(behave: (child: FakeChild) => void): { spawn: Spawn; calls: unknown[][]; child: FakeChild } {
  const child = new FakeChild();
  const calls: unknown[][] = [];
  const spawn: Spawn = (...args) => {
    calls.push(args);
    queueMicrotask(() => behave(child));
    return child as unknown as ChildProcess;
  };
  return { spawn, calls, child };
}

test("openBrowser: spawns the opener for the platform and doesn't wait for it", async () => {
  const warnings: string[] = [];
  const { spawn, calls, child } = fakeSpawn((c) => c.emit("spawn"));
  await openBrowser("http://localhost:8787/", { warn: (m) => warnings.push(m), platform: "linux", spawn });
  assert.deepEqual(calls, [["xdg-open", ["http://localhost:8787/"], { detached: true, stdio: "ignore" }]]);
  assert.equal(child.unrefs, 1);
  // Exiting successfully later says nothing
  child.emit("exit", 0, null);
  assert.deepEqual(warnings, []);
});

test("openBrowser: a missing opener is a warning", async () => {
  const warnings: string[] = [];
  const { spawn } = fakeSpawn((c) =>
    c.emit("error", Object.assign(new Error("spawn xdg-open ENOENT"), { code: "ENOENT" }))
  );
  await openBrowser("http://localhost:8787/", { warn: (m) => warnings.push(m), platform: "linux", spawn });
  assert.deepEqual(warnings, ["Unable to open browser: xdg-open not found"]);
});

test("openBrowser: an opener that fails, or can't be spawned at all, is a warning", async () => {
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  for (const exit of [[1, null], [null, "SIGTERM"]]) {
    const { spawn, child } = fakeSpawn((c) => c.emit("spawn"));
    await openBrowser("http://localhost:8787/", { warn, platform: "darwin", spawn });
    child.emit("exit", ...exit);
  }
  assert.deepEqual(warnings, [
    "Unable to open browser: open exited with code 1",
    "Unable to open browser: open was killed by SIGTERM",
  ]);

  warnings.length = 0;
  const throwing: Spawn = () => {
    throw new TypeError("bad arguments");
  };
  await openBrowser("http://localhost:8787/", { warn, platform: "linux", spawn: throwing });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^Unable to open browser: TypeError: bad arguments/);
});

// ---------------------------------------------------------------------------
// Real processes (a shell script stands in for the opener)

const posix = process.platform !== "win32";

/** A directory holding `open` and `xdg-open` scripts that write their argument to `record` */
async function standInOpeners(t: TestContext): Promise<{ bin: string; record: string }> {
  const tmp = await useTmp(t);
  const bin = path.join(tmp, "bin");
  const record = path.join(tmp, "opened.txt");
  const script = `#!/bin/sh\nprintf '%s' "$1" > "${record}.tmp" && mv "${record}.tmp" "${record}"\n`;
  await writeFiles(bin, { open: script, "xdg-open": script });
  await fs.chmod(path.join(bin, "open"), 0o755);
  await fs.chmod(path.join(bin, "xdg-open"), 0o755);
  return { bin, record };
}

async function waitForFile(file: string, timeout = 10_000): Promise<string> {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fs.readFile(file, "utf8");
    } catch (e: any) {
      if (e.code !== "ENOENT" || Date.now() > deadline) throw e;
    }
    await sleep(25);
  }
}

test("openBrowser: runs the real opener process with the URL", { skip: !posix && "POSIX shell" }, async (t) => {
  const { bin, record } = await standInOpeners(t);
  const warnings: string[] = [];
  const withPath: Spawn = (command, args, options) =>
    spawn(command, args, { ...options, env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` } });
  await openBrowser(URL_WITH_QUERY, { warn: (m) => warnings.push(m), spawn: withPath });
  assert.equal(await waitForFile(record), URL_WITH_QUERY);
  assert.deepEqual(warnings, []);
});

/** `miniflare worker.js --port 0 ...args` with `PATH` */
async function startCLI(t: TestContext, args: string[], PATH: string) {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.js": `addEventListener("fetch", (e) => e.respondWith(new Response("hi")));`,
  });
  const run = runBin(t, ["worker.js", "--port", "0", "--no-update-check", "--no-cf-fetch", ...args], tmp, { PATH });
  const [, port] = await waitForOutput(run, /Listening on \S+:(\d+)/);
  return { run, port };
}

test("CLI: --open opens the server's URL once it listens", { skip: !posix && "POSIX shell" }, async (t) => {
  const { bin, record } = await standInOpeners(t);
  const { run, port } = await startCLI(t, ["--open"], `${bin}${path.delimiter}${process.env.PATH}`);
  assert.equal(await waitForFile(record), `http://localhost:${port}/`);
  assert.doesNotMatch(run.output(), /Unable to open browser/);
});

test("CLI: --open <url> opens that URL", { skip: !posix && "POSIX shell" }, async (t) => {
  const { bin, record } = await standInOpeners(t);
  await startCLI(t, ["--open", "http://example.com/page?a=1"], `${bin}${path.delimiter}${process.env.PATH}`);
  assert.equal(await waitForFile(record), "http://example.com/page?a=1");
});

test("CLI: --open without an opener warns and keeps serving", { skip: !posix && "POSIX shell" }, async (t) => {
  // A PATH with no opener on it (node is run by its full path)
  const empty = await useTmp(t);
  const { run, port } = await startCLI(t, ["--open"], empty);
  const opener = process.platform === "darwin" ? "open" : "xdg-open";
  await waitForOutput(run, `[mf:wrn] Unable to open browser: ${opener} not found`);
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(await res.text(), "hi");
  assert.equal(run.child.exitCode, null);
});
