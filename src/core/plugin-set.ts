// One worker's plugin instances and what their hooks returned. The worker
// (worker.ts) decides when each hook runs; this keeps the instances typed
// by their classes and the setup results they gave.
import path from "node:path";
import { addAll } from "../shared/data.js";
import type { Log } from "../shared/log.js";
import type {
  MiniflareCoreMount,
  PluginContext,
  PluginSignatures,
  SetupResult,
} from "../shared/plugin.js";
import type { AdditionalModules, Context, ScriptBlueprint } from "../shared/runner.js";
import type { StorageFactory } from "../shared/storage.js";
import type { CorePlugin } from "../plugins/core/plugin.js";
import type { PluginEntries, SplitOptions } from "./options.js";

/** Plugin classes by name: CorePlugin is always there */
export type CorePluginSignatures = PluginSignatures & { CorePlugin: typeof CorePlugin };

/** One instance of each plugin, by name, typed by its class */
export type PluginInstances<Plugins extends PluginSignatures> = {
  [Name in keyof Plugins]: InstanceType<NonNullable<Plugins[Name]>>;
};

/** Every plugin's setup result, merged in plugin order (later ones win) */
export interface MergedSetup {
  globals: Context;
  bindings: Context;
  additionalModules: AdditionalModules;
  script?: ScriptBlueprint;
  requiresModuleExports: boolean;
  additionalEntries: string[];
  /** Files the hooks read */
  watchPaths: Set<string>;
}

export class PluginSet<Plugins extends CorePluginSignatures> {
  readonly #entries: PluginEntries;
  readonly #log: Log;
  readonly #storage: (name: string) => StorageFactory;
  // Kept as one object across re-creations: callers may hold it
  readonly #instances = {} as PluginInstances<Plugins>;
  readonly #beforeSetupWatch = new Map<string, Set<string>>();
  readonly #setupWatch = new Map<string, Set<string>>();
  readonly #setupResults = new Map<string, SetupResult>();
  /**
   * While a new version is being made: the instances create() replaced and
   * what every hook had returned before, for discard() to put back. adopt()
   * disposes the replaced instances once the new version is committed.
   */
  #undo?: {
    /** No version was made before: nothing to go back to */
    first: boolean;
    replaced: Map<string, PluginInstances<CorePluginSignatures>[string]>;
    beforeSetupWatch: Map<string, Set<string>>;
    setupWatch: Map<string, Set<string>>;
    setupResults: Map<string, SetupResult>;
  };

  constructor(entries: PluginEntries, log: Log, storage: (name: string) => StorageFactory) {
    this.#entries = entries;
    this.#log = log;
    this.#storage = storage;
  }

  get instances(): PluginInstances<Plugins> {
    return this.#instances;
  }

  #get(name: string): PluginInstances<CorePluginSignatures>[string] | undefined {
    return (this.#instances as PluginInstances<CorePluginSignatures>)[name];
  }

  /**
   * Re-creates every plugin but the `unchanged` ones, runs their
   * beforeSetup, then their setup; and the setup of the plugin giving the
   * script if a build (beforeSetup) may have rewritten it. The instances
   * replaced stay alive until adopt(), or come back with discard().
   */
  async create(
    ctx: PluginContext,
    options: SplitOptions,
    unchanged: (name: string) => boolean
  ): Promise<void> {
    const instances: Record<string, unknown> = this.#instances;
    const undo = (this.#undo ??= {
      first: Object.keys(instances).length === 0,
      replaced: new Map(),
      beforeSetupWatch: new Map(this.#beforeSetupWatch),
      setupWatch: new Map(this.#setupWatch),
      setupResults: new Map(this.#setupResults),
    });
    let ranBeforeSetup = false;
    for (const [name, plugin] of this.#entries) {
      if (unchanged(name)) continue;
      const existing = this.#get(name);
      if (existing !== undefined) {
        if (undo.replaced.has(name)) await this.#disposeInstance(name, existing);
        else undo.replaced.set(name, existing);
      }
      instances[name] = new plugin(ctx, options[name]);
      if (await this.#runBeforeSetup(name)) ranBeforeSetup = true;
    }
    for (const [name] of this.#entries) {
      const rebuilt = ranBeforeSetup && this.#setupResults.get(name)?.script;
      if (unchanged(name) && !rebuilt) continue;
      await this.#runSetup(name);
    }
  }

  async #runBeforeSetup(name: string): Promise<boolean> {
    const instance = this.#get(name)!;
    if (!instance.beforeSetup) return false;
    this.#log.verbose(`- beforeSetup(${name})`);
    const result = await instance.beforeSetup();
    recordWatch(this.#beforeSetupWatch, name, result?.watch);
    return true;
  }

  async #runSetup(name: string): Promise<boolean> {
    const instance = this.#get(name)!;
    if (!instance.setup) return false;
    this.#log.verbose(`- setup(${name})`);
    const result = await instance.setup(this.#storage(name));
    recordWatch(this.#setupWatch, name, result?.watch);
    this.#setupResults.set(name, result ?? {});
    return true;
  }

  /**
   * Re-runs the hooks of the plugins that read `changed` (a build's
   * beforeSetup, then the setups reading the script it rewrote).
   * `onRebuilt` is called as soon as a build has run.
   */
  async rerunFor(changed: string, onRebuilt: () => void): Promise<void> {
    let ranBeforeSetup = false;
    for (const [name] of this.#entries) {
      if (this.#beforeSetupWatch.get(name)?.has(changed)) {
        await this.#runBeforeSetup(name);
        ranBeforeSetup = true;
        onRebuilt();
      }
      if (this.#setupWatch.get(name)?.has(changed)) await this.#runSetup(name);
    }
    if (ranBeforeSetup) {
      for (const [name] of this.#entries) {
        if (this.#setupResults.get(name)?.script) await this.#runSetup(name);
      }
    }
  }

  /** Whether a plugin gave a script */
  get hasScript(): boolean {
    return Boolean(this.#setupResults.get("CorePlugin")?.script);
  }

  /** Absolute paths of the scripts plugins gave */
  scriptPaths(): Set<string> {
    const paths = new Set<string>();
    for (const result of this.#setupResults.values()) {
      if (result.script) paths.add(path.resolve(result.script.filePath));
    }
    return paths;
  }

  /** `watchPaths` come first in the merged ones */
  merge(watchPaths: Iterable<string> = []): MergedSetup {
    const merged: MergedSetup = {
      globals: {},
      bindings: {},
      additionalModules: {},
      requiresModuleExports: false,
      additionalEntries: [],
      watchPaths: new Set(watchPaths),
    };
    for (const [name] of this.#entries) {
      const result = this.#setupResults.get(name);
      Object.assign(merged.globals, result?.globals);
      Object.assign(merged.bindings, result?.bindings);
      Object.assign(merged.additionalModules, result?.additionalModules);
      if (result?.script) {
        if (merged.script) throw new TypeError("Multiple plugins returned a script");
        merged.script = result.script;
      }
      if (result?.requiresModuleExports) merged.requiresModuleExports = true;
      for (const entry of result?.additionalEntries ?? []) {
        if (!merged.additionalEntries.includes(entry)) merged.additionalEntries.push(entry);
      }
      addAll(merged.watchPaths, this.#beforeSetupWatch.get(name) ?? []);
      addAll(merged.watchPaths, this.#setupWatch.get(name) ?? []);
    }
    return merged;
  }

  verify(moduleExports: Context, mounts: ReadonlyMap<string, MiniflareCoreMount>): void {
    for (const [name] of this.#entries) this.#get(name)!.verify?.(moduleExports, mounts);
  }

  async beforeReload(): Promise<void> {
    for (const [name] of this.#entries) {
      const instance = this.#get(name)!;
      if (instance.beforeReload) {
        this.#log.verbose(`- beforeReload(${name})`);
        await instance.beforeReload();
      }
    }
  }

  async reload(bindings: Context, moduleExports: Context, mounts: Map<string, MiniflareCoreMount>): Promise<void> {
    for (const [name] of this.#entries) {
      const instance = this.#get(name)!;
      if (instance.reload) {
        this.#log.verbose(`- reload(${name})`);
        await instance.reload(bindings, moduleExports, mounts);
      }
    }
  }

  /** The new version is committed: the instances it replaced go */
  async adopt(): Promise<void> {
    const undo = this.#undo;
    this.#undo = undefined;
    for (const [name, instance] of undo?.replaced ?? []) await this.#disposeInstance(name, instance);
  }

  /**
   * The new version won't be committed: its new instances go, and the ones
   * they replaced come back with their hooks' results. (Plugins created for
   * a worker's first version have nothing to go back to, and stay.)
   */
  async discard(): Promise<void> {
    const undo = this.#undo;
    this.#undo = undefined;
    if (undo === undefined || undo.first) return;
    const instances: Record<string, unknown> = this.#instances;
    for (const [name, previous] of undo.replaced) {
      await this.#disposeInstance(name, this.#get(name)!);
      instances[name] = previous;
    }
    for (const [data, saved] of [
      [this.#beforeSetupWatch, undo.beforeSetupWatch],
      [this.#setupWatch, undo.setupWatch],
    ] as const) {
      data.clear();
      for (const [name, paths] of saved) data.set(name, paths);
    }
    this.#setupResults.clear();
    for (const [name, result] of undo.setupResults) this.#setupResults.set(name, result);
  }

  async #disposeInstance(name: string, instance: PluginInstances<CorePluginSignatures>[string]): Promise<void> {
    if (instance.dispose) {
      this.#log.verbose(`- dispose(${name})`);
      await instance.dispose();
    }
  }

  async dispose(): Promise<void> {
    // Instances replaced by a version never committed go too
    await this.adopt();
    for (const [name] of this.#entries) {
      const instance = this.#get(name);
      if (instance !== undefined) await this.#disposeInstance(name, instance);
    }
  }
}

function recordWatch(data: Map<string, Set<string>>, name: string, watch?: string[]): void {
  if (watch) data.set(name, new Set(watch.map((p) => path.resolve(p))));
  else data.delete(name);
}
