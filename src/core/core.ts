import path from "node:path";
import { Compatibility } from "../shared/compat.js";
import {
  RequestContext,
  usageModelExternalSubrequestLimit,
} from "../shared/context.js";
import { addAll, type Clock, formatSize, type Timers } from "../shared/data.js";
import { TypedEventTarget } from "../shared/event.js";
import { Mutex } from "../shared/sync/mutex.js";
import type { Log } from "../shared/log.js";
import {
  type MiniflareCoreMount,
  type Plugin,
  type PluginContext,
  type PluginSignatures,
  type SetupResult,
  logOptions,
} from "../shared/plugin.js";
import type {
  AdditionalModules,
  Context,
  ScriptBlueprint,
  ScriptRunner,
  ScriptRunnerResult,
} from "../shared/runner.js";
import type { StorageFactory } from "../shared/storage.js";
import type { WranglerConfig } from "../shared/wrangler.js";
import { PluginStorageFactory, VariedStorageFactory } from "../storage/factory.js";
import {
  _kLoopHeader,
  Request,
  type Response,
  ServiceWorkerGlobalScope,
  kAddModuleFetchListener,
  kAddModuleScheduledListener,
  kAddModuleQueueListener,
  kDispatchFetch,
  kDispatchScheduled,
  kDispose,
  withImmutableHeaders,
  withEnumerableGetters,
  withStringFormDataFiles,
} from "../standards/index.js";
import type { CorePlugin } from "../plugins/core/plugin.js";
import {
  type PluginEntries,
  type SplitOptions,
  getPluginEntries,
  optionsEqual,
  splitPluginOptions,
  unsupportedOptionKeys,
  unsupportedWranglerSections,
  splitWranglerConfig,
  throwNoScriptError,
} from "./options.js";
import { Watcher } from "./watch.js";
import { readWranglerConfig, unknownMiniflareKeys } from "./wrangler.js";


const MAX_BUNDLE_SIZE = 1024 * 1024; /* 1MiB */
// After a build, its rewrite of the script isn't a change of its own
const IGNORE_SCRIPT_CHANGES_AFTER_BUILD = 1000; /* ms */

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

type PluginInstances = Record<string, Plugin> & { CorePlugin: CorePlugin };
type CoreEventMap = { reload: ReloadEvent<PluginInstances> };

/**
 * The engine: turns options (API over wrangler.toml) into plugin instances,
 * runs their hooks, builds a fresh global scope and runs the script on every
 * reload, and dispatches events to it.
 */
export class MiniflareCore extends TypedEventTarget<CoreEventMap> {
  readonly #plugins: PluginEntries;
  readonly #ctx: MiniflareCoreContext;
  readonly #sharedCache = new Map<string, unknown>();
  readonly #storageFactory: StorageFactory;
  /** Only a factory made here is disposed here (a given one may be shared) */
  readonly #ownsStorageFactory: boolean;
  readonly #pluginStorages = new Map<string, PluginStorageFactory>();
  #previousSetOptions: Context;
  #overrides: SplitOptions;
  #previousOptions?: SplitOptions;
  #compat?: Compatibility;
  #previousRootPath?: string;
  #previousUsageModel?: string;
  #previousGlobalAsyncIO?: boolean;
  #previousFetchMock?: unknown;
  #instances?: PluginInstances;
  #wranglerConfigPath?: string;
  #beforeSetupWatch = new Map<string, Set<string>>();
  #setupWatch = new Map<string, Set<string>>();
  #setupResults = new Map<string, SetupResult>();
  #reloaded = false;
  #watchPaths = new Set<string>();
  #globalScope?: ServiceWorkerGlobalScope;
  #bindings?: Context;
  #moduleExports?: Context;
  #initPromise: Promise<void>;
  // Reloads run one at a time
  readonly #mutex = new Mutex();
  /** Decided once, at the first initialisation */
  #watching?: boolean;
  #watcher?: Watcher;
  #ignoreScriptChanges = false;
  #ignoreScriptChangesTimeout?: NodeJS.Timeout;

  constructor(plugins: PluginSignatures, ctx: MiniflareCoreContext, options: Context = {}) {
    super();
    this.#plugins = getPluginEntries(plugins);
    this.#ctx = ctx;
    this.#ownsStorageFactory = ctx.storageFactory === undefined;
    this.#storageFactory = ctx.storageFactory ?? new VariedStorageFactory();
    this.#previousSetOptions = options;
    this.#overrides = splitPluginOptions(this.#plugins, options);
    this.#warnUnsupported(unsupportedOptionKeys(this.#plugins, options), "Option");
    this.#initPromise = this.#init().then(() => this.#reload());
    // Errors surface on the first awaited call; don't also report them as
    // unhandled if the caller never awaits anything
    this.#initPromise.catch(() => {});
  }

  get log(): Log {
    return this.#ctx.log;
  }

  /** Warnings given already: each is given once per instance, not at every reload */
  #warned = new Set<string>();
  #warnOnce(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#ctx.log.warn(message);
  }

  /** Miniflare 2 options of features not built yet are ignored, but never silently */
  #warnUnsupported(names: string[], what: string): void {
    for (const name of names) this.#warnOnce(`${what} "${name}" is not supported yet, and is ignored`);
  }

  /** Keys in wrangler.toml's [miniflare] that nothing reads (typos, mostly) are ignored, but never silently */
  #warnUnknownKeys(config: WranglerConfig): void {
    for (const { table, key, suggestion } of unknownMiniflareKeys(config)) {
      const hint = suggestion === undefined ? "" : `\nDid you mean "${suggestion}"?`;
      this.#warnOnce(`wrangler.toml ${table} key "${key}" is unknown, and is ignored${hint}`);
    }
  }

  async #loadOptions(): Promise<{ options: SplitOptions; rootPath: string }> {
    let options = this.#overrides;
    const core = options.CorePlugin;
    const rootPath = path.resolve(core.rootPath ?? process.cwd());
    const configOption = core.wranglerConfigPath;
    const configPath = configOption === true ? "wrangler.toml" : configOption;
    this.#wranglerConfigPath = undefined;
    if (configPath) {
      const resolved = path.resolve(rootPath, configPath);
      this.#wranglerConfigPath = resolved;
      try {
        const config = await readWranglerConfig(resolved, core.wranglerConfigEnv);
        this.#warnUnsupported(unsupportedWranglerSections(this.#plugins, config), "wrangler.toml section");
        this.#warnUnknownKeys(config);
        options = splitWranglerConfig(
          this.#plugins,
          this.#overrides,
          config,
          path.dirname(resolved),
          this.#ctx.log
        );
      } catch (e: any) {
        // A missing default wrangler.toml is fine, an explicit one isn't
        if (!(e.code === "ENOENT" && configOption === true)) throw e;
      }
    }
    // Some options need modules (Durable Objects): on unless said otherwise
    if (options.CorePlugin.modules === undefined) {
      for (const [name, plugin] of this.#plugins) {
        if (plugin.impliesModules?.(options[name])) {
          options = { ...options, CorePlugin: { ...options.CorePlugin, modules: true } };
          break;
        }
      }
    }
    return { options, rootPath };
  }

  async #init(reloadAll = false): Promise<void> {
    const log = this.#ctx.log;
    log.debug("Initialising worker...");
    const previous = this.#previousOptions;
    const { options, rootPath } = await this.#loadOptions();
    const core = options.CorePlugin;
    this.#watching ??= core.watch ?? false;

    // Anything plugins receive in their context changing re-creates them all
    let ctxUpdate =
      (this.#previousRootPath !== undefined && this.#previousRootPath !== rootPath) ||
      this.#previousUsageModel !== core.usageModel ||
      this.#previousGlobalAsyncIO !== core.globalAsyncIO ||
      this.#previousFetchMock !== core.fetchMock ||
      reloadAll;
    this.#previousRootPath = rootPath;
    this.#previousUsageModel = core.usageModel;
    this.#previousGlobalAsyncIO = core.globalAsyncIO;
    this.#previousFetchMock = core.fetchMock;
    if (this.#compat) {
      if (this.#compat.update(core.compatibilityDate, core.compatibilityFlags)) {
        ctxUpdate = true;
      }
    } else {
      this.#compat = new Compatibility(core.compatibilityDate, core.compatibilityFlags);
    }

    const ctx: PluginContext = {
      log,
      compat: this.#compat,
      rootPath,
      usageModel: core.usageModel,
      globalAsyncIO: core.globalAsyncIO,
      fetchMock: core.fetchMock,
      clock: this.#ctx.clock,
      timers: this.#ctx.timers,
      sharedCache: this.#sharedCache,
    };

    logOptions(this.#plugins, log, options);
    const enabled = this.#compat.enabled;
    log.debug(`Enabled Compatibility Flags:${enabled.length === 0 ? " <none>" : ""}`);
    for (const flag of enabled) log.debug(`- ${flag}`);

    const instances = (this.#instances ??= {} as PluginInstances);
    const unchanged = (name: string) =>
      previous !== undefined && !ctxUpdate && optionsEqual(previous[name], options[name]);

    let ranBeforeSetup = false;
    for (const [name, plugin] of this.#plugins) {
      if (unchanged(name)) continue;
      const existing = instances[name];
      if (existing?.dispose) {
        log.verbose(`- dispose(${name})`);
        await existing.dispose();
      }
      instances[name] = new plugin(ctx, options[name]);
      if (await this.#runBeforeSetup(name)) ranBeforeSetup = true;
    }
    for (const [name] of this.#plugins) {
      // A build may have rewritten the script, so re-read it
      const rebuilt = ranBeforeSetup && this.#setupResults.get(name)?.script;
      if (unchanged(name) && !rebuilt) continue;
      await this.#runSetup(name);
    }
    this.#previousOptions = options;

    if (
      (this.#ctx.scriptRequired ?? true) &&
      !this.#setupResults.get("CorePlugin")?.script
    ) {
      throwNoScriptError(core.modules);
    }
  }

  async #runBeforeSetup(name: string): Promise<boolean> {
    const instance = this.#instances![name];
    if (!instance.beforeSetup) return false;
    this.#ctx.log.verbose(`- beforeSetup(${name})`);
    const result = await instance.beforeSetup();
    this.#recordWatch(this.#beforeSetupWatch, name, result?.watch);
    return true;
  }

  async #runSetup(name: string): Promise<boolean> {
    const instance = this.#instances![name];
    if (!instance.setup) return false;
    this.#ctx.log.verbose(`- setup(${name})`);
    const result = await instance.setup(this.getPluginStorage(name));
    this.#recordWatch(this.#setupWatch, name, result?.watch);
    this.#setupResults.set(name, result ?? {});
    return true;
  }

  #recordWatch(data: Map<string, Set<string>>, name: string, watch?: string[]): void {
    if (watch) data.set(name, new Set(watch.map((p) => path.resolve(p))));
    else data.delete(name);
  }

  async #reload(dispatchReloadEvent = true): Promise<void> {
    const log = this.#ctx.log;
    log.debug("Reloading worker...");
    const instances = this.#instances!;

    for (const [name] of this.#plugins) {
      const instance = instances[name];
      if (instance.beforeReload) {
        log.verbose(`- beforeReload(${name})`);
        await instance.beforeReload();
      }
    }
    this.#sharedCache.clear();

    const globals: Context = {};
    const bindings: Context = {};
    const additionalModules: AdditionalModules = {};
    const watchPaths = new Set<string>();
    if (this.#wranglerConfigPath) watchPaths.add(this.#wranglerConfigPath);
    let script: ScriptBlueprint | undefined;
    let requiresModuleExports = false;
    const additionalEntries: string[] = [];
    for (const [name] of this.#plugins) {
      const result = this.#setupResults.get(name);
      Object.assign(globals, result?.globals);
      Object.assign(bindings, result?.bindings);
      Object.assign(additionalModules, result?.additionalModules);
      if (result?.script) {
        if (script) throw new TypeError("Multiple plugins returned a script");
        script = result.script;
      }
      if (result?.requiresModuleExports) requiresModuleExports = true;
      for (const entry of result?.additionalEntries ?? []) {
        if (!additionalEntries.includes(entry)) additionalEntries.push(entry);
      }
      addAll(watchPaths, this.#beforeSetupWatch.get(name) ?? []);
      addAll(watchPaths, this.#setupWatch.get(name) ?? []);
    }

    const { modules, processedModuleRules, logUnhandledRejections } = instances.CorePlugin;
    const globalScope = new ServiceWorkerGlobalScope(
      log,
      globals,
      bindings,
      modules,
      logUnhandledRejections
    );
    let moduleExports: Context = {};
    let result: ScriptRunnerResult | undefined;
    const runScript =
      script &&
      (!this.#ctx.scriptRunForModuleExports || (modules && requiresModuleExports));
    if (runScript) {
      if (!this.#ctx.scriptRunner) {
        throw new TypeError("Running scripts requires a script runner");
      }
      log.verbose("Running script...");
      try {
        result = await this.#ctx.scriptRunner.run(
          globalScope,
          script!,
          modules ? processedModuleRules : undefined,
          additionalModules,
          this.#compat,
          modules ? additionalEntries : undefined
        );
      } catch (e) {
        globalScope[kDispose]();
        throw e;
      }
      addAll(watchPaths, result.watch ?? []);
      moduleExports = result.exports ?? {};
      this.#addModuleHandlers(globalScope, result.exports);
    }

    // Swap only now, so requests arriving while the script ran (or after it
    // failed) still reach the previous worker
    this.#globalScope?.[kDispose]();
    this.#globalScope = globalScope;
    this.#bindings = bindings;
    this.#moduleExports = moduleExports;

    // Workers by name, for service bindings (mounts will add theirs)
    const mounts = new Map<string, MiniflareCoreMount>();
    // Module files run for their exports are found by path
    for (const [filePath, exports] of result?.additionalExports ?? []) {
      mounts.set(filePath, { moduleExports: exports });
    }
    for (const [pluginName] of this.#plugins) {
      const instance = instances[pluginName];
      if (instance.reload) {
        log.verbose(`- reload(${pluginName})`);
        await instance.reload(bindings, moduleExports, mounts);
      }
    }

    if (dispatchReloadEvent) {
      this.dispatchEvent(
        new ReloadEvent("reload", { plugins: instances, initial: !this.#reloaded })
      );
    }
    this.#reloaded = true;
    if (result) {
      const size = result.bundleSize;
      log.info(`Worker reloaded!${size !== undefined ? ` (${formatSize(size)})` : ""}`);
      if (size !== undefined && size > MAX_BUNDLE_SIZE) {
        log.warn(
          "Worker's uncompressed size exceeds the 1MiB limit! Note that your worker will be compressed during upload so you may still be able to deploy it."
        );
      }
    }
    this.#updateWatcher(watchPaths);
  }

  #addModuleHandlers(globalScope: ServiceWorkerGlobalScope, exports?: Context): void {
    const defaults = exports?.default;
    const fetch = defaults?.fetch?.bind(defaults);
    if (fetch) globalScope[kAddModuleFetchListener](fetch);
    const scheduled = defaults?.scheduled?.bind(defaults);
    if (scheduled) globalScope[kAddModuleScheduledListener](scheduled);
    const queue = defaults?.queue?.bind(defaults);
    if (queue) globalScope[kAddModuleQueueListener](queue);
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
    if (this.#ignoreScriptChanges && this.#scriptPaths().has(changed)) {
      // A build just rewrote the script: its own reload covers it
      log.verbose("Ignoring script change after build...");
      return;
    }
    const reloading = this.#mutex.runWith(async () => {
      if (changed === this.#wranglerConfigPath) await this.#init();
      let ranBeforeSetup = false;
      for (const [name] of this.#plugins) {
        if (this.#beforeSetupWatch.get(name)?.has(changed)) {
          await this.#runBeforeSetup(name);
          ranBeforeSetup = true;
          this.#ignoreScriptChanges = true;
          clearTimeout(this.#ignoreScriptChangesTimeout);
          this.#ignoreScriptChangesTimeout = setTimeout(
            () => (this.#ignoreScriptChanges = false),
            IGNORE_SCRIPT_CHANGES_AFTER_BUILD
          );
        }
        if (this.#setupWatch.get(name)?.has(changed)) await this.#runSetup(name);
      }
      if (ranBeforeSetup) {
        for (const [name] of this.#plugins) {
          if (this.#setupResults.get(name)?.script) await this.#runSetup(name);
        }
      }
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

  #scriptPaths(): Set<string> {
    const paths = new Set<string>();
    for (const result of this.#setupResults.values()) {
      if (result.script) paths.add(path.resolve(result.script.filePath));
    }
    return paths;
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
      options = { ...this.#previousSetOptions, ...options };
      this.#previousSetOptions = options;
      this.#overrides = splitPluginOptions(this.#plugins, options);
      this.#warnUnsupported(unsupportedOptionKeys(this.#plugins, options), "Option");
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

  async getPlugins(): Promise<PluginInstances> {
    await this.#initPromise;
    return this.#instances!;
  }

  async getGlobalScope(): Promise<Context> {
    await this.#initPromise;
    return this.#globalScope!;
  }

  async getBindings(): Promise<Context> {
    await this.#initPromise;
    return this.#bindings!;
  }

  async getModuleExports(): Promise<Context> {
    await this.#initPromise;
    return this.#moduleExports!;
  }

  async dispatchFetch(input: RequestInfo | URL | Request, init?: RequestInit): Promise<Response> {
    await this.#initPromise;
    let request =
      input instanceof Request && init === undefined ? input : new Request(input as any, init as any);
    const { upstreamURL, usageModel } = this.#instances!.CorePlugin;
    if (upstreamURL && !request.url.startsWith(upstreamURL.toString())) {
      // Resolve the path and query relative to the upstream's path
      const url = new URL(request.url);
      let pathQuery = url.pathname + url.search;
      if (pathQuery.startsWith("/")) pathQuery = pathQuery.substring(1);
      request = new Request(new URL(pathQuery, upstreamURL), request);
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
    if (!this.#compat!.isEnabled("formdata_parser_supports_files")) {
      request = withStringFormDataFiles(request);
    }
    if (!this.#compat!.isEnabled("workers_api_getters_setters_on_prototype")) {
      request = withEnumerableGetters(request);
    }
    request = withImmutableHeaders(request);
    return this.#globalScope![kDispatchFetch](request, proxy);
  }

  async dispatchScheduled<WaitUntil extends any[] = unknown[]>(
    scheduledTime?: number,
    cron?: string
  ): Promise<WaitUntil> {
    await this.#initPromise;
    const { usageModel } = this.#instances!.CorePlugin;
    const globalScope = this.#globalScope!;
    const context = new RequestContext({
      externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
    });
    return context.runWith(() => globalScope[kDispatchScheduled](scheduledTime, cron)) as Promise<WaitUntil>;
  }

  async dispose(): Promise<void> {
    // Dispose even if initialisation failed, so nothing is left running
    await this.#initPromise.catch(() => {});
    await this.#mutex.runWith(async () => {
      for (const [name] of this.#plugins) {
        const instance = this.#instances?.[name];
        if (instance?.dispose) {
          this.#ctx.log.verbose(`- dispose(${name})`);
          await instance.dispose();
        }
      }
      this.#globalScope?.[kDispose]();
      this.#sharedCache.clear();
      this.#watcher?.dispose();
      this.#watcher = undefined;
      // Closes connections (Redis); in-memory data goes with the instance
      if (this.#ownsStorageFactory) await this.#storageFactory.dispose?.();
      this.#watchPaths = new Set();
      clearTimeout(this.#ignoreScriptChangesTimeout);
    });
  }
}
