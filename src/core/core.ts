import path from "node:path";
import type { Clock, Timers } from "../shared/data.js";
import { TypedEventTarget } from "../shared/event.js";
import { Mutex } from "../shared/sync/mutex.js";
import { Log } from "../shared/log.js";
import { HostRegistry } from "../shared/registry.js";
import type { Context, ScriptRunner } from "../shared/runner.js";
import type { StorageFactory } from "../shared/storage.js";
import { PluginStorageFactory, VariedStorageFactory } from "../storage/factory.js";
import { Request, type Response, kDispatchFetch } from "../standards/index.js";
import { MiniflareCoreError } from "../plugins/core/errors.js";
import { dispatchFetchTo, dispatchScheduledTo } from "./dispatch.js";
import { Mount, type MountHost, PARENT, inheritedMountOptions, mountWorkerOptions, namedWorkers } from "./mounts.js";
import { type PluginEntries, getPluginEntries } from "./options.js";
import { Routing, buildRouting } from "./routing.js";
import { WatchedFiles } from "./watch.js";
import {
  type CorePluginSignatures,
  type PluginInstances,
  type PreparedWorker,
  Worker,
} from "./worker.js";

export type { CorePluginSignatures, PluginInstances } from "./worker.js";

// After a build, its rewrite of the script isn't a change of its own
const IGNORE_SCRIPT_CHANGES_AFTER_BUILD = 1000; /* ms */


export interface MiniflareCoreContext {
  log: Log;
  storageFactory?: StorageFactory;
  scriptRunner?: ScriptRunner;
  /** Throw ERR_NO_SCRIPT when no script is found (default false; the Miniflare class sets it) */
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
  readonly #parent: Worker<Plugins>;
  /**
   * The workers serving, by name: the parent under "", then each mount.
   * During a reload, `#next` holds the set being prepared (new mounts
   * included, removed ones left out); a commit makes it `#workers`.
   */
  #workers = new Map<string, Worker<Plugins>>();
  #next?: Map<string, Worker<Plugins>>;
  /** Undefined without mounts, so plain dispatch never matches a route */
  #routing?: Routing<Worker<Plugins>>;
  #nextRouting?: Routing<Worker<Plugins>>;
  readonly #mountHandles = new WeakMap<Worker<Plugins>, Mount<Plugins>>();
  /** Options set through getMount(name).setOptions(), by mount name */
  readonly #mountOverrides = new Map<string, Context>();
  #reloaded = false;
  /** Every file the workers depend on, watched once watching is on */
  readonly #files = new WatchedFiles((changed) => this.#onFileChanged(changed));
  #initPromise: Promise<void>;
  // Reloads run one at a time
  readonly #mutex = new Mutex();
  /** Decided once, at the first initialisation */
  #watching?: boolean;
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
    this.#parent = new Worker<Plugins>(this.#workerHost(), this.#plugins, options);
    this.#workers.set(PARENT, this.#parent);
    this.#initPromise = this.#initAndReload(false, true);
    // Errors surface on the first awaited call; don't also report them as
    // unhandled if the caller never awaits anything
    this.#initPromise.catch(() => {});
  }

  /** What a worker takes from the host; a mount logs with its name */
  #workerHost(mountName?: string) {
    const ctx = this.#ctx;
    const log = mountName === undefined ? ctx.log : ctx.log.forMount(mountName);
    return {
      log,
      registry: this.#registry,
      scriptRunner: ctx.scriptRunner,
      scriptRequired: ctx.scriptRequired,
      // A mount always runs its script (Miniflare 2 did too)
      scriptRunForModuleExports: mountName === undefined ? ctx.scriptRunForModuleExports : false,
      clock: ctx.clock,
      timers: ctx.timers,
      getPluginStorage: (name: string) => this.getPluginStorage(name),
      warnOnce: (message: string) => this.#warnOnce(message),
      expandsWorkers: mountName === undefined,
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

  /**
   * Initialises and reloads; if either fails, mounts created for this
   * attempt are disposed and the previous workers keep serving
   */
  #initAndReload(reloadAll: boolean, dispatchReloadEvent: boolean): Promise<void> {
    return this.#discardOnError(async () => {
      await this.#init(reloadAll);
      await this.#reload(dispatchReloadEvent);
    });
  }

  async #discardOnError(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (e) {
      const next = this.#next;
      this.#next = undefined;
      this.#nextRouting = undefined;
      // Workers serving go back to their options and plugins; new ones go
      for (const worker of this.#workers.values()) await worker.discard();
      for (const [name, worker] of next ?? []) {
        if (this.#workers.get(name) !== worker) await worker.dispose();
      }
      throw e;
    }
  }

  /**
   * Initialises the parent, then its mounts (updating the ones it had,
   * creating new ones), into `#next`, and works out their routes. Mounts no
   * longer listed are left out; the commit disposes them.
   */
  async #init(reloadAll = false): Promise<void> {
    const parent = this.#parent;
    await parent.init(reloadAll);
    this.#watching ??= parent.watch ?? false;
    const next = new Map<string, Worker<Plugins>>([[PARENT, parent]]);
    this.#next = next;
    const mounts = parent.plugins.CorePlugin.mounts;
    if (mounts !== undefined) {
      const inherited = inheritedMountOptions(parent, this.#watching);
      for (const [name, raw] of Object.entries(mounts)) {
        const options = mountWorkerOptions(name, raw, inherited, this.#mountOverrides.get(name));
        await this.#initMount(next, name, options, reloadAll);
      }
    }
    // A parent with mounts needs no script of its own
    if (next.size === 1) parent.requireScript();
    this.#nextRouting = buildRouting(this.#parent, next, this.#ctx.log);
  }

  async #initMount(
    next: Map<string, Worker<Plugins>>,
    name: string,
    options: Context,
    reloadAll: boolean
  ): Promise<void> {
    const log = this.#ctx.log;
    const existing = this.#workers.get(name);
    if (existing !== undefined) {
      log.verbose(`Updating mount "${name}"...`);
      next.set(name, existing);
      existing.setOptions(options);
      await existing.init(reloadAll);
      existing.requireScript();
      return;
    }
    log.debug(`Mounting "${name}"...`);
    const worker = new Worker<Plugins>(this.#workerHost(name), this.#plugins, options);
    // In `next` before init, so a failure disposes it
    next.set(name, worker);
    try {
      await worker.init();
      worker.requireScript();
    } catch (e) {
      throw new MiniflareCoreError("ERR_MOUNT", `Error mounting "${name}"`, e as Error);
    }
  }

  /**
   * Prepares every worker (runs its script into a scope nothing sees yet),
   * then commits them all; if any fails, aborts those prepared and the
   * previous set keeps serving, whole: scopes, plugins' state and Durable
   * Objects. Nothing is told a reload is coming before every script ran.
   */
  async #reload(dispatchReloadEvent = true): Promise<void> {
    const nextWorkers = this.#next ?? this.#workers;
    const prepared = await this.#prepare(nextWorkers);
    const named = namedWorkers(nextWorkers, prepared);
    try {
      for (const [worker, next] of prepared) worker.verify(next, named);
    } catch (e) {
      for (const [worker, next] of prepared) worker.abort(next);
      throw e;
    }
    for (const worker of prepared.keys()) await worker.adopt();
    // Objects of the previous version are dropped: the new one builds its own
    this.#registry.reset();
    for (const [worker, next] of prepared) await worker.commit(next, named);
    for (const [name, worker] of this.#workers) {
      if (nextWorkers.get(name) === worker) continue;
      this.#ctx.log.debug(`Unmounting "${name}"...`);
      await worker.dispose();
    }
    if (this.#next !== undefined) this.#routing = this.#nextRouting;
    this.#workers = nextWorkers;
    this.#next = undefined;
    this.#nextRouting = undefined;

    const worker = this.#parent;
    if (dispatchReloadEvent) {
      this.dispatchEvent(new ReloadEvent("reload", { plugins: worker.plugins, initial: !this.#reloaded }));
    }
    this.#reloaded = true;
    const watchPaths = new Set<string>();
    for (const [worker, next] of prepared) {
      worker.announce(next);
      for (const watchPath of next.watchPaths) watchPaths.add(watchPath);
    }
    this.#files.update(watchPaths, this.#watching ?? false, this.#ctx.log);
  }

  async #prepare(workers: Map<string, Worker<Plugins>>): Promise<Map<Worker<Plugins>, PreparedWorker>> {
    const prepared = new Map<Worker<Plugins>, PreparedWorker>();
    for (const [name, worker] of workers) {
      try {
        prepared.set(worker, await worker.prepare());
      } catch (e) {
        // (the worker that failed threw its own new scope away)
        for (const [worker, next] of prepared) worker.abort(next);
        // A new mount whose script throws failed to mount
        if (name !== PARENT && this.#workers.get(name) !== worker) {
          throw new MiniflareCoreError("ERR_MOUNT", `Error mounting "${name}"`, e as Error);
        }
        throw e;
      }
    }
    return prepared;
  }

  /** Every file the current worker depends on */
  get watchPaths(): ReadonlySet<string> {
    return this.#files.paths;
  }

  // Re-runs what depends on the changed file, then reloads: wrangler.toml
  // re-reads every option, other files re-run the hooks of the plugins that
  // read them. Module files are read again by the reload itself.
  #onFileChanged(changed: string): void {
    const log = this.#ctx.log;
    log.debug(`${path.relative("", changed)} changed...`);
    const workers = [...this.#workers.values()];
    if (this.#ignoreScriptChanges && workers.some((worker) => worker.scriptPaths().has(changed))) {
      // A build just rewrote the script: its own reload covers it
      log.verbose("Ignoring script change after build...");
      return;
    }
    const reloading = this.#mutex.runWith(() =>
      this.#discardOnError(async () => {
        // A wrangler.toml (the parent's or a mount's) re-reads every option
        if (workers.some((worker) => changed === worker.wranglerConfigPath)) await this.#init();
        const onRebuilt = () => this.#ignoreScriptChangesFor(IGNORE_SCRIPT_CHANGES_AFTER_BUILD);
        for (const worker of (this.#next ?? this.#workers).values()) await worker.rerunFor(changed, onRebuilt);
        // Only reload once the queue of changes has drained
        if (!this.#mutex.hasWaiting) await this.#reload();
      })
    );
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
    await this.#mutex.runWith(() => this.#initAndReload(true, true));
  }

  /** Merges `options` shallowly over the previous options and reloads */
  async setOptions(options: Context, dispatchReloadEvent = true): Promise<void> {
    await this.#initPromise;
    await this.#mutex.runWith(async () => {
      this.#parent.setOptions(options);
      // Options set through a mount's handle give way to the parent's
      this.#mountOverrides.clear();
      await this.#initAndReload(false, dispatchReloadEvent);
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

  /** The parent worker's plugin instances, by name */
  async getPlugins(): Promise<PluginInstances<Plugins>> {
    await this.#initPromise;
    return this.#parent.plugins;
  }

  async getGlobalScope(): Promise<Context> {
    await this.#initPromise;
    return this.#parent.globalScope!;
  }

  async getBindings(): Promise<Context> {
    await this.#initPromise;
    return this.#parent.bindings!;
  }

  async getModuleExports(): Promise<Context> {
    await this.#initPromise;
    return this.#parent.moduleExports!;
  }

  /** The mounted worker `name`, or undefined if there is none */
  async getMount(name: string): Promise<Mount<Plugins> | undefined> {
    await this.#initPromise;
    const worker = name === PARENT ? undefined : this.#workers.get(name);
    if (worker === undefined) return undefined;
    let mount = this.#mountHandles.get(worker);
    if (mount === undefined) {
      mount = new Mount(this.#mountHost, name, worker);
      this.#mountHandles.set(worker, mount);
    }
    return mount;
  }

  readonly #mountHost: MountHost = {
    ready: () => this.#initPromise,
    dispatchFetch: (worker: Worker<any>, input: RequestInfo | URL | Request, init?: RequestInit) =>
      dispatchFetchTo(worker, toRequest(input, init)),
    dispatchScheduled: (worker: Worker<any>, scheduledTime?: number, cron?: string) =>
      dispatchScheduledTo(worker, scheduledTime, cron),
    setOptions: (name: string, worker: Worker<any>, options: Context) => this.#setMountOptions(name, worker, options),
    reload: () => this.reload(),
  };

  async #setMountOptions(name: string, worker: Worker<any>, options: Context): Promise<void> {
    await this.#initPromise;
    await this.#mutex.runWith(async () => {
      if (this.#workers.get(name) !== worker) {
        throw new TypeError(`"${name}" is no longer mounted: its handle can't set options`);
      }
      const previous = this.#mountOverrides.get(name);
      this.#mountOverrides.set(name, { ...previous, ...options });
      try {
        await this.#initAndReload(false, true);
      } catch (e) {
        if (previous === undefined) this.#mountOverrides.delete(name);
        else this.#mountOverrides.set(name, previous);
        throw e;
      }
    });
  }

  /** The worker whose route matches `url` most specifically, else the parent */
  #match(url: string | URL): Worker<Plugins> {
    return this.#routing?.match(url) ?? this.#parent;
  }

  /** Dispatches to the worker the request's URL routes to (the parent without mounts) */
  async dispatchFetch(input: RequestInfo | URL | Request, init?: RequestInit): Promise<Response> {
    await this.#initPromise;
    const request = toRequest(input, init);
    return dispatchFetchTo(this.#match(request.url), request);
  }

  async [kDispatchFetch](request: Request, proxy = false): Promise<Response> {
    await this.#initPromise;
    return this.#parent.dispatchFetch(request, proxy);
  }

  /**
   * Dispatches a scheduled event to the parent, or, given the `url` of a
   * `/cdn-cgi/mf/scheduled` request, to the worker it routes to
   */
  async dispatchScheduled<WaitUntil extends any[] = unknown[]>(
    scheduledTime?: number,
    cron?: string,
    url?: string | URL
  ): Promise<WaitUntil> {
    await this.#initPromise;
    const worker = url === undefined ? this.#parent : this.#match(url);
    return dispatchScheduledTo(worker, scheduledTime, cron) as Promise<WaitUntil>;
  }

  async dispose(): Promise<void> {
    // Dispose even if initialisation failed, so nothing is left running
    await this.#initPromise.catch(() => {});
    await this.#mutex.runWith(async () => {
      for (const [name, worker] of this.#workers) {
        if (name !== PARENT) this.#ctx.log.debug(`Unmounting "${name}"...`);
        await worker.dispose();
      }
      this.#workers = new Map([[PARENT, this.#parent]]);
      this.#routing = undefined;
      this.#registry.reset();
      this.#files.dispose();
      // Closes connections (Redis); in-memory data goes with the instance
      if (this.#ownsStorageFactory) await this.#storageFactory.dispose?.();
      clearTimeout(this.#ignoreScriptChangesTimeout);
    });
  }
}

function toRequest(input: RequestInfo | URL | Request, init?: RequestInit): Request {
  return input instanceof Request && init === undefined ? input : new Request(input as any, init as any);
}
