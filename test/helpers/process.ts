// Child processes for tests: `node` running a script or the `miniflare`
// command, with their output collected, killed when the test ends
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { rootPath } from "./fixtures.js";

export const binPath = path.join(rootPath, "bin", "miniflare.js");

export interface Run {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved */
  output: () => string;
  /** stdout so far */
  stdout: () => string;
  /** stderr so far */
  stderr: () => string;
  /** Resolves to the exit code (null when killed by a signal) */
  exited: Promise<number | null>;
}

/**
 * Runs plain `node` with `args` (no NODE_OPTIONS, no colours), SIGKILLed
 * after the test if it's still running
 */
export function runNode(t: TestContext, args: string[], cwd = rootPath, env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, NODE_OPTIONS: "", FORCE_COLOR: "0", NO_COLOR: "1", ...env },
  });
  let output = "";
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    output += chunk;
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await exited;
  });
  return { child, output: () => output, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs `miniflare` (bin/miniflare.js) with `args` */
export function runBin(t: TestContext, args: string[], cwd = rootPath, env: NodeJS.ProcessEnv = {}): Run {
  return runNode(t, [binPath, ...args], cwd, env);
}

/** Waits for `pattern` in the output, failing if the process exits first or after `timeout` ms */
export async function waitForOutput(run: Run, pattern: RegExp | string, timeout = 10_000): Promise<RegExpMatchArray> {
  const regexp = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
  const deadline = Date.now() + timeout;
  for (;;) {
    const match = run.output().match(regexp);
    if (match) return match;
    if (run.child.exitCode !== null || run.child.signalCode !== null || Date.now() > deadline) {
      throw new Error(`Expected ${regexp} in output:\n${run.output()}`);
    }
    await sleep(25);
  }
}

/** Resolves to the exit code, or rejects if the process takes longer than `ms` */
export async function exitsWithin(run: Run, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Still running after ${ms}ms:\n${run.output()}`)), ms);
  });
  try {
    return await Promise.race([run.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
