// The `miniflare` command. The only file that touches process.exit and the
// console; parsing lives in args.ts, the server in http-server/.
import type http from "node:http";
import type https from "node:https";
import fs from "node:fs/promises";
import path from "node:path";
import { red } from "kleur/colors";
import { Log, LogLevel, Miniflare, type MiniflareOptions, PLUGINS, updateCheck } from "../index.js";
import { packageVersion } from "../shared/package.js";
import { ParseError, buildHelp, parseArgv } from "./args.js";
import { openBrowser } from "./browser.js";

/**
 * The command's log: straight to stdout. (console.log formats its arguments
 * first, which costs a few per cent of a server's time with one line per
 * request.)
 */
class CliLog extends Log {
  override log(message: string): void {
    process.stdout.write(message + "\n");
  }

  // Mounts' lines name them, as with Miniflare 2's CLI: `[mf:inf:api]`
  override forMount(name: string): Log {
    return new CliLog(this.level, { suffix: name });
  }
}

/** Options the CLI sets on top of what was parsed, as Miniflare 2 did */
export function cliOptions(parsed: Record<string, unknown>): MiniflareOptions {
  const options = { ...parsed } as MiniflareOptions & Record<string, unknown>;
  options.wranglerConfigPath ??= true;
  options.packagePath ??= true;
  options.envPathDefaultFallback = true;
  if (options.buildWatchPaths !== undefined || options.liveReload) options.watch = true;
  if (options.repl) {
    // The REPL needs no script and may use I/O from the prompt
    options.scriptRequired = !!options.scriptPath;
    options.watch = false;
    options.globalAsyncIO = true;
    options.globalTimers = true;
    options.globalRandom = true;
  }
  const level = options.verbose
    ? LogLevel.VERBOSE
    : options.debug
      ? LogLevel.DEBUG
      : LogLevel.INFO;
  options.log = new CliLog(level);
  options.sourceMap = true;
  options.logUnhandledRejections = true;
  return options;
}


/**
 * A failure that stops the command: printed once, as an `[mf:err]` log line
 * (the command's log is at least at info level, so it always prints).
 * Miniflare 2 printed it a second time without the prefix.
 */
function reportFatal(log: Log, error: unknown): void {
  log.error(error as Error);
}

async function openURL(mf: Miniflare, server: http.Server): Promise<void> {
  const url = await mf.getOpenURL(server);
  if (url === undefined) return;
  await openBrowser(url, { warn: (message) => mf.log.warn(message) });
}

async function checkForUpdates(mf: Miniflare): Promise<void> {
  const { CorePlugin } = await mf.getPlugins();
  if (CorePlugin.updateCheck === false) return;
  try {
    const cacheDir = path.resolve("node_modules", ".mf");
    await fs.mkdir(cacheDir, { recursive: true });
    await updateCheck({
      pkg: { name: "miniflare", version: packageVersion() },
      lastCheckFile: path.join(cacheDir, "update-check"),
      log: mf.log,
    });
  } catch (e: any) {
    mf.log.debug("Unable to check for updates: " + e.stack);
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let parsed: Record<string, unknown>;
  try {
    parsed = parseArgv(PLUGINS, argv);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    if (e.code === "ERR_VERSION") {
      console.error(e.message);
      return 0;
    }
    console.error(buildHelp(PLUGINS, undefined, process.stderr.columns));
    if (e.code === "ERR_HELP") return 0;
    console.error(`\n${red(e.message)}`);
    return 1;
  }

  const options = cliOptions(parsed);
  const mf = new Miniflare(options);
  const log = options.log!;
  if (options.repl) {
    try {
      const server = await mf.startREPL();
      await new Promise<void>((resolve) => server.on("exit", resolve));
    } catch (e: any) {
      reportFatal(log, e);
      await mf.dispose();
      return 1;
    }
    await mf.dispose();
    return 0;
  }

  // Stopping is set up before the server starts: a Ctrl-C just after
  // "Listening on" (while the update check runs, say) still exits cleanly
  let server: http.Server | https.Server | undefined;
  const stop = async () => {
    const { closeServer } = await import("../http-server/server.js");
    if (server !== undefined) await closeServer(server);
    await mf.dispose();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    server = await mf.startServer();
    // Crons (--cron, wrangler [triggers]) fire on their schedule
    await mf.startScheduler();
  } catch (e: any) {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    reportFatal(log, e);
    if (server !== undefined) {
      const { closeServer } = await import("../http-server/server.js");
      await closeServer(server);
    }
    await mf.dispose();
    return 1;
  }
  await openURL(mf, server);
  await checkForUpdates(mf);
  return new Promise<number>(() => {}); // serves until stopped
}
