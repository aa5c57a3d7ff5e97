import type http from "node:http";
import type https from "node:https";
import { createRequire } from "node:module";
import type repl from "node:repl";
import { MiniflareCore, type MiniflareCoreContext } from "./core/core.js";
import { NoOpLog, type Log } from "./shared/log.js";
import type { Options } from "./shared/plugin.js";
import { VMScriptRunner } from "./runtime/index.js";
import type { CacheStorage } from "./plugins/cache/index.js";
import type { KVNamespace } from "./plugins/kv/index.js";
import type { CronScheduler } from "./plugins/scheduler/scheduler.js";
import type {
  DurableObjectId,
  DurableObjectNamespace,
  DurableObjectStorage,
} from "./plugins/durable-objects/index.js";
import { PLUGINS, type Plugins } from "./plugins.js";

export type MiniflareOptions = Options<Plugins> & {
  /** Where logs go (default: NoOpLog, which prints nothing) */
  log?: Log;
  /** Map stack traces of built workers back to their sources */
  sourceMap?: boolean;
  /** Throw ERR_NO_SCRIPT when no script is found (default: true) */
  scriptRequired?: boolean;
};

/**
 * A fully-local Cloudflare Workers simulator.
 *
 * @example
 * const mf = new Miniflare({ modules: true, script: `export default {
 *   fetch: () => new Response("hello")
 * }` });
 * const res = await mf.dispatchFetch("http://localhost/");
 * console.log(await res.text()); // hello
 * await mf.dispose();
 */
export class Miniflare extends MiniflareCore<Plugins> {
  /** Schedulers startScheduler() made, stopped by dispose() */
  readonly #schedulers = new Set<CronScheduler>();

  /**
   * @param host @internal The time and timers alarms fire by (tests inject a
   * fake pair; users never pass this)
   */
  constructor(options: MiniflareOptions = {}, host: Pick<MiniflareCoreContext, "clock" | "timers"> = {}) {
    const { log = new NoOpLog(), sourceMap, scriptRequired, ...rest } = options;
    if (sourceMap) installSourceMapSupport();
    super(
      PLUGINS,
      { log, scriptRunner: new VMScriptRunner(), scriptRequired: scriptRequired ?? true, clock: host.clock, timers: host.timers },
      rest
    );
  }

  /**
   * An HTTP server dispatching to this worker, not yet listening: HTTPS if
   * an `https*` option is set. `options` are passed to Node's createServer.
   */
  async createServer(options?: http.ServerOptions & https.ServerOptions): Promise<http.Server | https.Server> {
    // The server code is only loaded by those who serve
    const { createServer } = await import("./http-server/server.js");
    return createServer(this, options);
  }

  /**
   * Fires the `crons` option's scheduled events on their schedule, following
   * reloads, until the returned scheduler's dispose() or this instance's
   */
  async startScheduler(): Promise<CronScheduler> {
    const { startScheduler } = await import("./plugins/scheduler/scheduler.js");
    const scheduler = await startScheduler(this);
    this.#schedulers.add(scheduler);
    return scheduler;
  }

  /** Stops the schedulers started here, then disposes the workers (MiniflareCore#dispose) */
  override async dispose(): Promise<void> {
    const schedulers = [...this.#schedulers];
    this.#schedulers.clear();
    await Promise.all(schedulers.map((scheduler) => scheduler.dispose()));
    await super.dispose();
  }

  /** Starts an HTTP(S) server on the `host` and `port` options */
  async startServer(options?: http.ServerOptions & https.ServerOptions): Promise<http.Server | https.Server> {
    const { startServer } = await import("./http-server/server.js");
    return startServer(this, options);
  }

  /**
   * The URL the `open` option opens, or undefined if it's off. Given the
   * running server, its real port is used.
   */
  async getOpenURL(server?: http.Server): Promise<string | undefined> {
    const { getOpenURL } = await import("./http-server/server.js");
    return getOpenURL(this, server);
  }

  /** Starts a REPL in the worker's global scope, with bindings as `env` */
  startREPL(): Promise<repl.REPLServer> {
    return startREPL(this);
  }

  /**
   * A KV namespace, for reading and writing the data the worker sees from
   * outside it (tests, scripts). Usable outside requests.
   */
  async getKVNamespace(namespace: string): Promise<KVNamespace> {
    const plugin = (await this.getPlugins()).KVPlugin;
    return plugin.getNamespace(this.getPluginStorage("KVPlugin"), namespace);
  }

  /** The caches the worker sees (`caches`), usable outside a request */
  async getCaches(): Promise<CacheStorage> {
    return (await this.getPlugins()).CachePlugin.getCaches();
  }

  /**
   * The namespace of Durable Objects bound as `objectName`. Its stubs also
   * have a non-standard `storage()` method returning the object's storage.
   */
  async getDurableObjectNamespace(objectName: string): Promise<DurableObjectNamespace> {
    const plugin = (await this.getPlugins()).DurableObjectsPlugin;
    return plugin.getNamespace(this.getPluginStorage("DurableObjectsPlugin"), objectName, true);
  }

  /** The storage of the object with `id`, without constructing the object */
  async getDurableObjectStorage(id: DurableObjectId): Promise<DurableObjectStorage> {
    const plugin = (await this.getPlugins()).DurableObjectsPlugin;
    return plugin.getStorage(this.getPluginStorage("DurableObjectsPlugin"), id);
  }
}

/**
 * Starts a Node REPL in the worker's global scope, with bindings as `env`.
 * (node:repl costs ~15ms to load, so it's only loaded here.)
 */
export async function startREPL(mf: MiniflareCore): Promise<repl.REPLServer> {
  const { startREPL } = await import("./repl.js");
  return startREPL(mf);
}

let sourceMapsInstalled = false;
function installSourceMapSupport(): void {
  if (sourceMapsInstalled) return;
  sourceMapsInstalled = true;
  // Maps stack frames through the //# sourceMappingURL comments of the
  // files they point at. Errors created inside the worker's vm context are
  // formatted by the host's Error.prepareStackTrace too (Node falls back to
  // the main context's), so this covers worker code. The cache is emptied
  // between errors so rebuilt files are re-read.
  const require = createRequire(import.meta.url);
  const sourceMapSupport = require("source-map-support") as typeof import("source-map-support");
  sourceMapSupport.install({ emptyCacheBetweenOperations: true, environment: "node" });
}
