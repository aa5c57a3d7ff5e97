import path from "node:path";
import {
  RequestContext,
  usageModelExternalSubrequestLimit,
} from "../shared/context.js";
import type { Clock, Timers } from "../shared/data.js";
import { TypedEventTarget } from "../shared/event.js";
import { Mutex } from "../shared/sync/mutex.js";
import type { Log } from "../shared/log.js";
import { HostRegistry } from "../shared/registry.js";
import type { Context, ScriptRunner } from "../shared/runner.js";
import type { StorageFactory } from "../shared/storage.js";
import { PluginStorageFactory, VariedStorageFactory } from "../storage/factory.js";
import { _kLoopHeader, Request, type Response, kDispatchFetch } from "../standards/index.js";
import { type PluginEntries, getPluginEntries } from "./options.js";
import { Watcher } from "./watch.js";
import {
  type CorePluginSignatures,
  type PluginInstances,
  type PreparedWorker,
  Worker,
} from "./worker.js";

export type { CorePluginSignatures, PluginInstances } from "./worker.js";

// After a build, its rewrite of the script isn't a change of its own
const IGNORE_SCRIPT_CHANGES_AFTER_BUILD = 1000; /* ms */
/** The worker given by the top-level options (mounts will add named ones) */
const DEFAULT_WORKER = "";

function pathsToString(paths: Iterable<string>): string {
  return [...paths].map((p) => path.relative("", p)).sort().join(", ");
}

export interface MiniflareCoreContext {
  log: Log;
  storageFactory?: StorageFactory;
  scriptRunner?: ScriptRunner;
  /** Throw ERR_NO_SCRIPT when no script is found (default true) */
  scriptRequired?: boolean;
  /** Only run the script when modules are needed (test environments) */
  scriptRunForModuleExports?: boolean;
  /**
   * The time and timers Durable Object alarms fire by (default: Date.now()
   * and Node's timers). Tests inject a fake pair and move time on.
   */
  clock?: Clock;
  timers?: Timers;
}

export class ReloadEvent<Plugins> extends Event {
  readonly plugins: Plugins;
  readonly initial: boolean;

  constructor(type: "reload", init: { plugins: Plugins; initial: boolean }) {
    super(type);
    this.plugins = init.plugins;
    this.initial = init.initial;
  }
}

type CoreEventMap<Plugins extends CorePluginSignatures> = {
  reload: ReloadEvent<PluginInstances<Plugins>>;
};

/**
 * The host: owns the storage, the reload mutex, the file watcher, the
 * registry of state shared by its workers (Durable Objects) and its workers
 * by name, and keeps Miniflare 2's public API. Each worker (worker.ts) owns
 * its options, plugins, compatibility and global scope. A reload prepares
 * every worker, then commits them all.
 */
export class MiniflareCore<
  Plugins extends CorePluginSignatures = CorePluginSignatures,
> extends TypedEventTarget<CoreEventMap<Plugins>> {
  readonly #plugins: PluginEntries;
  readonly #ctx: MiniflareCoreContext;
  readonly #registry = new HostRegistry();
  readonly #storageFactory: StorageFactory;
  /** Only a factory made here is disposed here (a given one may be shared) */
  readonly #ownsStorageFactory: boolean;
  readonly #pluginStorages = new Map<string, PluginStorageFactory>();
  /**
   * Workers by name: only the default one for now. Mounts will add theirs,
   * and a router (route patterns to worker names) will pick the one a
   * request goes to; until then every request goes to the default worker.
   */
  readonly #workers = new Map<string, Worker<Plugins>>();
  #reloaded = false;
  #watchPaths = new Set<string>();
  #initPromise: Promise<void>;
  // Reloads run one at a time
  readonly #mutex = new Mutex();
  /** Decided once, at the first initialisation */
  #watching?: boolean;
  #watcher?: Watcher;
  #ignoreScriptChanges = false;
  #ignoreScriptChangesTimeout?: NodeJS.Timeout;
  /** Warnings given already: each is given once per instance, not at every reload */
  readonly #warned = new Set<string>();

  constructor(plugins: Plugins, ctx: MiniflareCoreContext, options: Context = {}) {
    super();
    this.#plugins = getPluginEntries(plugins);
    this.#ctx = ctx;
    this.#ownsStorageFactory = ctx.storageFactory === undefined;
    this.#storageFactory = ctx.storageFactory ?? new VariedStorageFactory();
    this.#workers.set(DEFAULT_WORKER, new Worker<Plugins>(this.#workerHost(), this.#plugins, options));
    this.#initPromise = this.#init().then(() => this.#reload());
    // Errors surface on the first awaited call; don't also report them as
    // unhandled if the caller never awaits anything
    this.#initPromise.catch(() => {});
  }

  #workerHost() {
    const ctx = this.#ctx;
    return {
      log: ctx.log,
      registry: this.#registry,
      scriptRunner: ctx.scriptRunner,
      scriptRequired: ctx.scriptRequired,
      scriptRunForModuleExports: ctx.scriptRunForModuleExports,
      clock: ctx.clock,
      timers: ctx.timers,
      getPluginStorage: (name: string) => this.getPluginStorage(name),
      warnOnce: (message: string) => this.#warnOnce(message),
    };
  }

  get log(): Log {
    return this.#ctx.log;
  }

  #warnOnce(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#ctx.log.warn(message);
  }

  get #worker(): Worker<Plugins> {
    return this.#workers.get(DEFAULT_WORKER)!;
  }

  async #init(reloadAll = false): Promise<void> {
    for (const worker of this.#workers.values()) await worker.init(reloadAll);
    this.#watching ??= this.#worker.watch ?? false;
  }

  /**
   * Prepares every worker (runs its script into a scope nothing sees yet),
   * then commits them all; if any fails, aborts those prepared and the
   * previous set keeps serving, whole: scopes, plugins' state and Durable
   * Objects. Nothing is told a reload is coming before every script ran.
   */
  async #reload(dispatchReloadEvent = true): Promise<void> {
    const prepared = await this.#prepare();
    for (const worker of prepared.keys()) await worker.beforeReload();
    // Objects of the previous version are dropped: the new one builds its own
    this.#registry.reset();
    for (const [worker, next] of prepared) await worker.commit(next);

    const worker = this.#worker;
    if (dispatchReloadEvent) {
      this.dispatchEvent(new ReloadEvent("reload", { plugins: worker.plugins, initial: !this.#reloaded }));
    }
    this.#reloaded = true;
    const watchPaths = new Set<string>();
    for (const [worker, next] of prepared) {
      worker.announce(next);
      for (const watchPath of next.watchPaths) watchPaths.add(watchPath);
    }
    this.#updateWatcher(watchPaths);
  }

  async #prepare(): Promise<Map<Worker<Plugins>, PreparedWorker>> {
    const prepared = new Map<Worker<Plugins>, PreparedWorker>();
    try {
      for (const worker of this.#workers.values()) prepared.set(worker, await worker.prepare());
    } catch (e) {
      // (the worker that failed threw its own new scope away)
      for (const [worker, next] of prepared) worker.abort(next);
      throw e;
    }
    return prepared;
  }

  /** Every file the current worker depends on */
  get watchPaths(): ReadonlySet<string> {
    return this.#watchPaths;
  }

  #updateWatcher(watchPaths: Set<string>): void {
    const previous = this.#watchPaths;
    this.#watchPaths = watchPaths;
    if (!this.#watching) return;
    this.#watcher ??= new Watcher((changed) => this.#onFileChanged(changed));
    const log = this.#ctx.log;
    const removed = [...previous].filter((p) => !watchPaths.has(p));
    const added = [...watchPaths].filter((p) => !previous.has(p));
    if (removed.length > 0) {
      log.debug(`Unwatching ${pathsToString(removed)}...`);
      this.#watcher.unwatch(removed);
    }
    if (added.length > 0) {
      log.debug(`Watching ${pathsToString(watchPaths)}...`);
      this.#watcher.watch(added);
    }
  }

  // Re-runs what depends on the changed file, then reloads: wrangler.toml
  // re-reads every option, other files re-run the hooks of the plugins that
  // read them. Module files are read again by the reload itself.
  #onFileChanged(changed: string): void {
    const log = this.#ctx.log;
    log.debug(`${path.relative("", changed)} changed...`);
    const worker = this.#worker;
    if (this.#ignoreScriptChanges && worker.scriptPaths().has(changed)) {
      // A build just rewrote the script: its own reload covers it
      log.verbose("Ignoring script change after build...");
      return;
    }
    const reloading = this.#mutex.runWith(async () => {
      if (changed === worker.wranglerConfigPath) await this.#init();
      await worker.rerunFor(changed, () => this.#ignoreScriptChangesFor(IGNORE_SCRIPT_CHANGES_AFTER_BUILD));
      // Only reload once the queue of changes has drained
      if (!this.#mutex.hasWaiting) await this.#reload();
    });
    reloading.catch((error) => {
      try {
        log.error(error);
      } catch {
        // NoOpLog rethrows: a failed reload must not crash the process, and
        // the previous worker keeps serving
      }
    });
  }

  #ignoreScriptChangesFor(ms: number): void {
    this.#ignoreScriptChanges = true;
    clearTimeout(this.#ignoreScriptChangesTimeout);
    this.#ignoreScriptChangesTimeout = setTimeout(() => (this.#ignoreScriptChanges = false), ms);
  }

  /** Re-creates every plugin, re-reading every file, and reloads */
  async reload(): Promise<void> {
    await this.#initPromise;
    await this.#mutex.runWith(async () => {
      await this.#init(true);
      await this.#reload();
    });
  }

  /** Merges `options` shallowly over the previous options and reloads */
  async setOptions(options: Context, dispatchReloadEvent = true): Promise<void> {
    await this.#initPromise;
    await this.#mutex.runWith(async () => {
      this.#worker.setOptions(options);
      await this.#init();
      await this.#reload(dispatchReloadEvent);
    });
  }

  /** The storage factory `name`'s plugin stores through */
  getPluginStorage(name: string): StorageFactory {
    let storage = this.#pluginStorages.get(name);
    if (storage === undefined) {
      storage = new PluginStorageFactory(this.#storageFactory, name);
      this.#pluginStorages.set(name, storage);
    }
    return storage;
  }

  /** The default worker's plugin instances, by name */
  async getPlugins(): Promise<PluginInstances<Plugins>> {
    await this.#initPromise;
    return this.#worker.plugins;
  }

  async getGlobalScope(): Promise<Context> {
    await this.#initPromise;
    return this.#worker.globalScope!;
  }

  async getBindings(): Promise<Context> {
    await this.#initPromise;
    return this.#worker.bindings!;
  }

  async getModuleExports(): Promise<Context> {
    await this.#initPromise;
    return this.#worker.moduleExports!;
  }

  async dispatchFetch(input: RequestInfo | URL | Request, init?: RequestInit): Promise<Response> {
    await this.#initPromise;
    let request =
      input instanceof Request && init === undefined ? input : new Request(input as any, init as any);
    const { upstreamURL, usageModel } = this.#worker.plugins.CorePlugin;
    if (upstreamURL && !request.url.startsWith(upstreamURL.toString())) {
      // Resolve the path and query relative to the upstream's path
      const url = new URL(request.url);
      let pathQuery = url.pathname + url.search;
      if (pathQuery.startsWith("/")) pathQuery = pathQuery.substring(1);
      request = new Request(new URL(pathQuery, upstreamURL), request);
      // The worker sees the request as the upstream would get it, Host
      // included (Miniflare 2 kept the incoming one)
      request.headers.set("host", upstreamURL.host);
    }
    const loop = request.headers.get(_kLoopHeader);
    const requestDepth = (loop === null ? 0 : parseInt(loop) || 0) + 1;
    if (loop !== null) request.headers.delete(_kLoopHeader);
    const context = new RequestContext({
      requestDepth,
      pipelineDepth: 1,
      externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
    });
    return context.runWith(() => this[kDispatchFetch](request, upstreamURL !== undefined));
  }

  async [kDispatchFetch](request: Request, proxy = false): Promise<Response> {
    await this.#initPromise;
    return this.#worker.dispatchFetch(request, proxy);
  }

  async dispatchScheduled<WaitUntil extends any[] = unknown[]>(
    scheduledTime?: number,
    cron?: string
  ): Promise<WaitUntil> {
    await this.#initPromise;
    const worker = this.#worker;
    const { usageModel } = worker.plugins.CorePlugin;
    const context = new RequestContext({
      externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
    });
    return context.runWith(() => worker.dispatchScheduled(scheduledTime, cron)) as Promise<WaitUntil>;
  }

  async dispose(): Promise<void> {
    // Dispose even if initialisation failed, so nothing is left running
    await this.#initPromise.catch(() => {});
    await this.#mutex.runWith(async () => {
      for (const worker of this.#workers.values()) await worker.dispose();
      this.#registry.reset();
      this.#watcher?.dispose();
      this.#watcher = undefined;
      // Closes connections (Redis); in-memory data goes with the instance
      if (this.#ownsStorageFactory) await this.#storageFactory.dispose?.();
      this.#watchPaths = new Set();
      clearTimeout(this.#ignoreScriptChangesTimeout);
    });
  }
}
