// Child processes for tests: `node` running a script or the `miniflare`
// command, with their output collected, killed when the test ends
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { TestContext } from "node:test";
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
  /**
   * Resolves to the exit code (null when killed by a signal) once the
   * process has exited and all its output has been read: at "exit" the
   * last chunks may still be on their way
   */
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
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
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

/**
 * Waits for `pattern` in the output, checking as each chunk arrives; fails if
 * the process ends without it. `timeout` only bounds a failure.
 */
export async function waitForOutput(run: Run, pattern: RegExp | string, timeout = 20_000): Promise<RegExpMatchArray> {
  const regexp = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
  const { stdout, stderr } = run.child;
  let check!: () => void;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<RegExpMatchArray>((resolve, reject) => {
      check = () => {
        const match = run.output().match(regexp);
        if (match) resolve(match);
      };
      // Registered after runNode()'s own listeners, so output() has the chunk
      stdout!.on("data", check);
      stderr!.on("data", check);
      check();
      void run.exited.then(() => {
        check();
        reject(new Error(`Exited without ${regexp} in output:\n${run.output()}`));
      });
      timer = setTimeout(() => reject(new Error(`No ${regexp} in output within ${timeout}ms:\n${run.output()}`)), timeout);
    });
  } finally {
    clearTimeout(timer);
    stdout!.off("data", check);
    stderr!.off("data", check);
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
