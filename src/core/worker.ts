// One worker of a host: its options, plugin instances, compatibility, root
// path and global scope. The host (core.ts) decides when it reloads; a
// reload is prepare() (run the script into a new global scope, which
// nothing sees yet) then commit() (swap it in) or abort() (throw it away).
import { Compatibility } from "../shared/compat.js";
import { addAll, type Clock, formatSize, type Timers } from "../shared/data.js";
import type { Log } from "../shared/log.js";
import { type MiniflareCoreMount, type PluginContext, logOptions } from "../shared/plugin.js";
import type { HostRegistry } from "../shared/registry.js";
import type { Context, ScriptRunner, ScriptRunnerResult } from "../shared/runner.js";
import type { StorageFactory } from "../shared/storage.js";
import {
  type Request,
  type Response,
  ServiceWorkerGlobalScope,
  kAddModuleFetchListener,
  kAddModuleQueueListener,
  kAddModuleScheduledListener,
  kDispatchFetch,
  kDispatchScheduled,
  kDispose,
  withEnumerableGetters,
  withImmutableHeaders,
  withStringFormDataFiles,
} from "../standards/index.js";
import {
  type PluginEntries,
  type SplitOptions,
  loadOptions,
  optionsEqual,
  splitPluginOptions,
  throwNoScriptError,
  unsupportedOptionKeys,
} from "./options.js";
import { expandWorkersOption } from "./workers-option.js";
import { type CorePluginSignatures, type PluginInstances, PluginSet } from "./plugin-set.js";

export type { CorePluginSignatures, PluginInstances } from "./plugin-set.js";

const MAX_BUNDLE_SIZE = 1024 * 1024; /* 1MiB */

/** What a worker takes from its host */
export interface WorkerHost {
  readonly log: Log;
  readonly registry: HostRegistry;
  readonly scriptRunner?: ScriptRunner;
  readonly scriptRequired?: boolean;
  readonly scriptRunForModuleExports?: boolean;
  readonly clock?: Clock;
  readonly timers?: Timers;
  getPluginStorage(name: string): StorageFactory;
  /** Logs a warning once per host */
  warnOnce(message: string): void;
  /** Whether the options given have the `workers` form (the parent's do) */
  readonly expandsWorkers?: boolean;
}

/** A new version of a worker, run but not serving yet */
export interface PreparedWorker {
  readonly globalScope: ServiceWorkerGlobalScope;
  readonly bindings: Context;
  readonly moduleExports: Context;
  readonly result?: ScriptRunnerResult;
  readonly watchPaths: Set<string>;
}

/** What plugins receive in their context; any change re-creates them all */
interface ContextKey {
  rootPath: string;
  usageModel?: string;
  globalAsyncIO?: boolean;
  fetchMock?: unknown;
}

function contextChanged(previous: ContextKey | undefined, next: ContextKey): boolean {
  if (previous === undefined) return false;
  return (
    previous.rootPath !== next.rootPath ||
    previous.usageModel !== next.usageModel ||
    previous.globalAsyncIO !== next.globalAsyncIO ||
    previous.fetchMock !== next.fetchMock
  );
}

export class Worker<Plugins extends CorePluginSignatures = CorePluginSignatures> {
  readonly #host: WorkerHost;
  readonly #plugins: PluginEntries;
  /** Options as given (API or CLI), merged over by each setOptions() */
  #given: Context;
  #overrides: SplitOptions;
  /** Why the given options couldn't be split, thrown at the next init() */
  #optionsError?: unknown;
  #previousOptions?: SplitOptions;
  #previousContext?: ContextKey;
  #compat?: Compatibility;
  #watch?: boolean;
  readonly #pluginSet: PluginSet<Plugins>;
  #wranglerConfigPath?: string;
  #globalScope?: ServiceWorkerGlobalScope;
  #bindings?: Context;
  #moduleExports?: Context;
  /** What init() changed, for discard() to put back until adopt() */
  #undo?: {
    previousOptions?: SplitOptions;
    previousContext?: ContextKey;
    compat?: Compatibility;
    watch?: boolean;
    wranglerConfigPath?: string;
  };

  constructor(host: WorkerHost, plugins: PluginEntries, options: Context) {
    this.#host = host;
    this.#plugins = plugins;
    this.#pluginSet = new PluginSet(plugins, host.log, (name) => host.getPluginStorage(name));
    this.#given = options;
    this.#overrides = this.#split(options);
  }

  #split(options: Context): SplitOptions {
    this.#optionsError = undefined;
    // (only the host's options have `workers`: a mount with them is nested)
    if (this.#host.expandsWorkers) {
      try {
        options = expandWorkersOption(options);
      } catch (e) {
        // Thrown by init(), as every other options error is
        this.#optionsError = e;
        return {};
      }
    }
    for (const name of unsupportedOptionKeys(this.#plugins, options)) {
      this.#host.warnOnce(`Option "${name}" is not supported yet, and is ignored`);
    }
    return splitPluginOptions(this.#plugins, options);
  }

  /** Merges `options` shallowly over the given ones; init() applies them */
  setOptions(options: Context): void {
    this.#given = { ...this.#given, ...options };
    this.#overrides = this.#split(this.#given);
  }

  /** Plugin instances, once init() has run */
  get plugins(): PluginInstances<Plugins> {
    return this.#pluginSet.instances;
  }

  get compat(): Compatibility {
    return this.#compat!;
  }

  get globalScope(): ServiceWorkerGlobalScope | undefined {
    return this.#globalScope;
  }

  get bindings(): Context | undefined {
    return this.#bindings;
  }

  get moduleExports(): Context | undefined {
    return this.#moduleExports;
  }

  /** The `watch` option at the last init() */
  get watch(): boolean | undefined {
    return this.#watch;
  }

  get wranglerConfigPath(): string | undefined {
    return this.#wranglerConfigPath;
  }

  /**
   * Loads options (API over wrangler.toml), re-creates the plugins whose
   * options changed (all of them with `reloadAll`) and runs their setups
   */
  async init(reloadAll = false): Promise<void> {
    if (this.#optionsError !== undefined) throw this.#optionsError;
    const log = this.#host.log;
    log.debug("Initialising worker...");
    this.#undo ??= {
      previousOptions: this.#previousOptions,
      previousContext: this.#previousContext,
      compat: this.#compat,
      watch: this.#watch,
      wranglerConfigPath: this.#wranglerConfigPath,
    };
    const previous = this.#previousOptions;
    const { options, rootPath } = await loadOptions(this.#plugins, this.#overrides, {
      log,
      warnOnce: (message) => this.#host.warnOnce(message),
      // Known before the file is read, so a broken one is still watched
      onConfigPath: (configPath) => (this.#wranglerConfigPath = configPath),
    });
    const core = options.CorePlugin;
    this.#watch = core.watch;

    const context: ContextKey = {
      rootPath,
      usageModel: core.usageModel,
      globalAsyncIO: core.globalAsyncIO,
      fetchMock: core.fetchMock,
    };
    let ctxUpdate = contextChanged(this.#previousContext, context) || reloadAll;
    this.#previousContext = context;
    // A new object when it changes: the version serving keeps its own
    if (!this.#compat?.matches(core.compatibilityDate, core.compatibilityFlags)) {
      if (this.#compat !== undefined) ctxUpdate = true;
      this.#compat = new Compatibility(core.compatibilityDate, core.compatibilityFlags);
    }
    const ctx: PluginContext = {
      log,
      compat: this.#compat,
      rootPath,
      usageModel: core.usageModel,
      globalAsyncIO: core.globalAsyncIO,
      fetchMock: core.fetchMock,
      clock: this.#host.clock,
      timers: this.#host.timers,
      registry: this.#host.registry,
    };

    logOptions(this.#plugins, log, options);
    const enabled = this.#compat.enabled;
    log.debug(`Enabled Compatibility Flags:${enabled.length === 0 ? " <none>" : ""}`);
    for (const flag of enabled) log.debug(`- ${flag}`);

    const unchanged = (name: string) =>
      previous !== undefined && !ctxUpdate && optionsEqual(previous[name], options[name]);
    await this.#pluginSet.create(ctx, options, unchanged);
    this.#previousOptions = options;
  }

  /** The folder its paths resolve against, at the last init() */
  get rootPath(): string | undefined {
    return this.#previousContext?.rootPath;
  }

  /**
   * Throws ERR_NO_SCRIPT if no plugin gave a script and the host requires
   * one (the host asks only a worker that has no mounts)
   */
  requireScript(): void {
    if (this.#host.scriptRequired && !this.#pluginSet.hasScript) {
      throwNoScriptError(this.plugins.CorePlugin.modules);
    }
  }

  /** Re-runs the hooks of the plugins that read `changed` (see PluginSet) */
  rerunFor(changed: string, onRebuilt: () => void): Promise<void> {
    return this.#pluginSet.rerunFor(changed, onRebuilt);
  }

  /** Absolute paths of the scripts plugins gave */
  scriptPaths(): Set<string> {
    return this.#pluginSet.scriptPaths();
  }

  /**
   * The version init() made will be committed: plugin instances it replaced
   * are disposed. Then every plugin is told (beforeReload).
   */
  async adopt(): Promise<void> {
    this.#undo = undefined;
    await this.#pluginSet.adopt();
    await this.#pluginSet.beforeReload();
  }

  /**
   * The version init() made won't be committed: its options, compatibility
   * and plugin instances go, and the serving version's come back
   */
  async discard(): Promise<void> {
    const undo = this.#undo;
    this.#undo = undefined;
    await this.#pluginSet.discard();
    // (a worker's first version has nothing to go back to)
    if (undo === undefined || undo.previousOptions === undefined) return;
    this.#previousOptions = undo.previousOptions;
    this.#previousContext = undo.previousContext;
    this.#compat = undo.compat;
    this.#watch = undo.watch;
    this.#wranglerConfigPath = undo.wranglerConfigPath;
  }

  /**
   * Runs the script into a new global scope, which serves nothing until
   * commit(). If the script throws, the new scope is thrown away and the
   * current one keeps serving.
   */
  async prepare(): Promise<PreparedWorker> {
    this.#host.log.debug("Reloading worker...");
    const merged = this.#pluginSet.merge(this.#wranglerConfigPath ? [this.#wranglerConfigPath] : []);
    const { modules, processedModuleRules, logUnhandledRejections } = this.plugins.CorePlugin;
    const globalScope = new ServiceWorkerGlobalScope(
      this.#host.log,
      merged.globals,
      merged.bindings,
      modules,
      logUnhandledRejections
    );
    let moduleExports: Context = {};
    let result: ScriptRunnerResult | undefined;
    const runScript =
      merged.script &&
      (!this.#host.scriptRunForModuleExports || (modules && merged.requiresModuleExports));
    if (runScript) {
      if (!this.#host.scriptRunner) throw new TypeError("Running scripts requires a script runner");
      this.#host.log.verbose("Running script...");
      try {
        result = await this.#host.scriptRunner.run(
          globalScope,
          merged.script!,
          modules ? processedModuleRules : undefined,
          merged.additionalModules,
          this.#compat,
          modules ? merged.additionalEntries : undefined
        );
      } catch (e) {
        globalScope[kDispose]();
        throw e;
      }
      addAll(merged.watchPaths, result.watch ?? []);
      moduleExports = result.exports ?? {};
      addModuleHandlers(globalScope, result.exports);
    }
    return { globalScope, bindings: merged.bindings, moduleExports, result, watchPaths: merged.watchPaths };
  }

  /**
   * Makes `prepared` the version that serves, and hands it to the plugins,
   * with `named`: the host's workers by name (for Durable Objects'
   * `script_name` and service bindings)
   */
  async commit(prepared: PreparedWorker, named: ReadonlyMap<string, MiniflareCoreMount>): Promise<void> {
    this.#globalScope?.[kDispose]();
    this.#globalScope = prepared.globalScope;
    this.#bindings = prepared.bindings;
    this.#moduleExports = prepared.moduleExports;
    await this.#pluginSet.reload(prepared.bindings, prepared.moduleExports, mountsOf(prepared, named));
  }

  /** Throws if the plugins' reload() would refuse `prepared` (see commit()) */
  verify(prepared: PreparedWorker, named: ReadonlyMap<string, MiniflareCoreMount>): void {
    this.#pluginSet.verify(prepared.moduleExports, mountsOf(prepared, named));
  }

  /** Throws away a version that will never serve */
  abort(prepared: PreparedWorker): void {
    prepared.globalScope[kDispose]();
  }

  /** Logs that `prepared`, now committed, serves */
  announce(prepared: PreparedWorker): void {
    if (!prepared.result) return;
    const log = this.#host.log;
    const size = prepared.result.bundleSize;
    log.info(`Worker reloaded!${size !== undefined ? ` (${formatSize(size)})` : ""}`);
    if (size !== undefined && size > MAX_BUNDLE_SIZE) {
      log.warn(
        "Worker's uncompressed size exceeds the 1MiB limit! Note that your worker will be compressed during upload so you may still be able to deploy it."
      );
    }
  }

  dispatchFetch(request: Request, proxy: boolean): Promise<Response> {
    const compat = this.#compat!;
    if (!compat.isEnabled("formdata_parser_supports_files")) {
      request = withStringFormDataFiles(request);
    }
    if (!compat.isEnabled("workers_api_getters_setters_on_prototype")) {
      request = withEnumerableGetters(request);
    }
    request = withImmutableHeaders(request);
    return this.#globalScope![kDispatchFetch](request, proxy);
  }

  dispatchScheduled(scheduledTime?: number, cron?: string): Promise<unknown[]> {
    return this.#globalScope![kDispatchScheduled](scheduledTime, cron);
  }

  async dispose(): Promise<void> {
    await this.#pluginSet.dispose();
    this.#globalScope?.[kDispose]();
  }
}

function addModuleHandlers(globalScope: ServiceWorkerGlobalScope, exports?: Context): void {
  const defaults = exports?.default;
  const fetch = defaults?.fetch?.bind(defaults);
  if (fetch) globalScope[kAddModuleFetchListener](fetch);
  const scheduled = defaults?.scheduled?.bind(defaults);
  if (scheduled) globalScope[kAddModuleScheduledListener](scheduled);
  const queue = defaults?.queue?.bind(defaults);
  if (queue) globalScope[kAddModuleQueueListener](queue);
}

/** The host's named workers, and module files run for their exports, by path */
function mountsOf(
  prepared: PreparedWorker,
  named: ReadonlyMap<string, MiniflareCoreMount>
): Map<string, MiniflareCoreMount> {
  const mounts = new Map<string, MiniflareCoreMount>(named);
  for (const [filePath, exports] of prepared.result?.additionalExports ?? []) {
    mounts.set(filePath, { moduleExports: exports });
  }
  return mounts;
}
