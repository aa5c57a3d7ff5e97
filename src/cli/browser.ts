// `--open`: hands the URL to the platform's own opener, which starts the
// user's default browser. The opener runs detached and isn't waited for, so
// the command never depends on it; if it can't be started or fails, that's
// a warning, never an error.
import { type ChildProcess, type SpawnOptions, spawn as nodeSpawn } from "node:child_process";

export interface OpenCommand {
  command: string;
  args: string[];
  options: SpawnOptions;
}

/** The process that opens `url` on `platform` */
export function openCommand(
  url: string,
  platform: NodeJS.Platform = process.platform,
  env: NodeJS.ProcessEnv = process.env
): OpenCommand {
  const options: SpawnOptions = { detached: true, stdio: "ignore" };
  if (platform === "darwin") return { command: "open", args: [url], options };
  if (platform === "win32") {
    // `start` is built into cmd; its first quoted argument is the window's
    // title, hence the "". The URL is quoted too, so cmd takes & and | in it
    // literally, and passed verbatim (Node would escape the quotes). A
    // serialised URL has no " of its own; one given with --open might.
    const quoted = `"${url.replaceAll('"', "%22")}"`;
    return {
      command: env.ComSpec ?? "cmd.exe",
      args: ["/d", "/c", "start", '""', quoted],
      options: { ...options, windowsVerbatimArguments: true, windowsHide: true },
    };
  }
  // Linux, the BSDs, ...: freedesktop.org's opener
  return { command: "xdg-open", args: [url], options };
}

export type Spawn = (command: string, args: string[], options: SpawnOptions) => ChildProcess;

export interface OpenBrowserOptions {
  /** Told when the opener can't be started or fails */
  warn: (message: string) => void;
  platform?: NodeJS.Platform;
  spawn?: Spawn;
}

/**
 * Starts the opener for `url`, resolving once it has started (or failed to).
 * Never rejects: problems go to `warn`.
 */
export function openBrowser(url: string, { warn, platform, spawn = nodeSpawn }: OpenBrowserOptions): Promise<void> {
  const { command, args, options } = openCommand(url, platform);
  const unable = (reason: string) => warn(`Unable to open browser: ${reason}`);
  let child: ChildProcess;
  try {
    child = spawn(command, args, options);
  } catch (e: any) {
    unable(e?.stack ?? String(e));
    return Promise.resolve();
  }
  // Its exit doesn't keep the command running
  child.unref();
  child.once("exit", (code, signal) => {
    if (code !== 0) unable(`${command} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
  });
  return new Promise<void>((resolve) => {
    child.once("spawn", () => resolve());
    child.once("error", (e: NodeJS.ErrnoException) => {
      unable(e.code === "ENOENT" ? `${command} not found` : (e.stack ?? String(e)));
      resolve();
    });
  });
}
