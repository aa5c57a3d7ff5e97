import path from "node:path";
import type { Compatibility } from "./compat.js";
import type { UsageModel } from "./context.js";
import { type Clock, type Timers, titleCase } from "./data.js";
import type { Log } from "./log.js";
import type { HostRegistry } from "./registry.js";
import type { AdditionalModules, Context, ScriptBlueprint } from "./runner.js";
import type { StorageFactory } from "./storage.js";
import type { WranglerConfig } from "./wrangler.js";

/** How an option is typed on the command line */
export enum OptionType {
  NONE, // API only
  BOOLEAN,
  NUMBER,
  STRING,
  STRING_POSITIONAL,
  BOOLEAN_STRING,
  BOOLEAN_NUMBER,
  ARRAY,
  OBJECT,
}

export interface OptionMetadata {
  type: OptionType;
  /** Shown in --help for OBJECT options, e.g. "NAME=PATH" */
  typeFormat?: string;
  /** CLI flag name, derived from the key when absent */
  name?: string;
  alias?: string;
  description?: string;
  negatable?: boolean;
  /** Name in the debug options log, derived from the key when absent */
  logName?: string;
  logValue?: (value: any) => string | undefined;
  /** Turns CLI KEY=VALUE entries into the option value */
  fromEntries?: (entries: [key: string, value: string][]) => any;
  /** Reads the option from wrangler.toml */
  fromWrangler?: (config: WranglerConfig, configDir: string, log: Log) => any;
}

export type OptionsMetadata = Map<string | symbol, OptionMetadata>;

/** Declares a plugin option; the CLI, wrangler loader and logs derive from it */
export function Option(metadata: OptionMetadata) {
  return function (prototype: any, key: string | symbol): void {
    // Each plugin class gets its own map (don't add to a parent's)
    if (!Object.prototype.hasOwnProperty.call(prototype, "opts")) {
      const inherited: OptionsMetadata | undefined = prototype.opts;
      Object.defineProperty(prototype, "opts", {
        value: new Map(inherited ?? []),
        writable: true,
        configurable: true,
      });
    }
    (prototype.opts as OptionsMetadata).set(key, metadata);
  };
}

export interface PluginContext {
  log: Log;
  compat: Compatibility;
  rootPath: string;
  usageModel?: UsageModel;
  globalAsyncIO?: boolean;
  fetchMock?: unknown;
  /** The time Durable Object alarms fire by (default: Date.now()) */
  clock?: Clock;
  /** Timers firing by `clock`'s time (default: Node's) */
  timers?: Timers;
  /**
   * State the host keeps for every plugin (and mount) of one Miniflare
   * instance across reloads, by typed keys its owners declare
   */
  registry: HostRegistry;
}

export interface BeforeSetupResult {
  watch?: string[];
}

export interface SetupResult extends BeforeSetupResult {
  globals?: Context;
  bindings?: Context;
  script?: ScriptBlueprint;
  requiresModuleExports?: boolean;
  /**
   * Module files to run after the entry, in the same global scope, for
   * their exports (e.g. Durable Object classes given by path). reload()
   * finds each one's exports in its mounts map, keyed by the absolute path.
   */
  additionalEntries?: string[];
  additionalModules?: AdditionalModules;
}

/** A mount as plugins see it in reload() */
export interface MiniflareCoreMount {
  moduleExports?: Context;
  /** The worker's env: a Durable Object class it defines gets it */
  bindings?: Context;
  dispatchFetch?: (request: any) => Promise<any>;
  usageModel?: UsageModel;
}

export abstract class Plugin<Options extends Context = Context> {
  // Set by the @Option decorator on the subclass prototype
  declare readonly opts?: OptionsMetadata;

  readonly ctx: PluginContext;

  protected constructor(ctx: PluginContext) {
    this.ctx = ctx;
  }

  /**
   * Copies declared options onto the instance. Must be called by each
   * subclass constructor *after* super(): field initialisers would otherwise
   * reset them.
   */
  protected assignOptions(options?: Options): void {
    if (options === undefined || this.opts === undefined) return;
    for (const key of this.opts.keys()) {
      (this as any)[key] = (options as any)[key];
    }
  }

  beforeSetup?(): BeforeSetupResult | Promise<BeforeSetupResult> | void | Promise<void>;
  setup?(storageFactory: StorageFactory): SetupResult | Promise<SetupResult> | void | Promise<void>;
  /**
   * A new version is about to be committed: its script has run. Not called
   * when a reload fails, so nothing opened here is left waiting.
   */
  beforeReload?(): void | Promise<void>;
  /**
   * Checks, before anything is told of a new version, that reload() will
   * take it: throws what reload() would (a service or a Durable Object
   * class not found), so a reload that can't complete changes nothing.
   */
  verify?(moduleExports: Context, mounts: ReadonlyMap<string, MiniflareCoreMount>): void;
  reload?(
    bindings: Context,
    moduleExports: Context,
    mounts: Map<string, MiniflareCoreMount>
  ): void | Promise<void>;
  dispose?(): void | Promise<void>;
}

export type PluginSignature = {
  new (ctx: PluginContext, options?: Context): Plugin<Context>;
  prototype: { opts?: OptionsMetadata };
  /** Whether these options turn the `modules` option on (when it isn't given) */
  impliesModules?(options?: Context): boolean;
};
export type PluginSignatures = { [pluginName: string]: PluginSignature };

type PluginOptionsOf<P> = P extends new (
  ctx: PluginContext,
  options?: infer Options
) => Plugin<any>
  ? Options
  : never;

export type PluginOptions<Plugins extends PluginSignatures> = {
  [key in keyof Plugins]: PluginOptionsOf<Plugins[key]>;
};

type UnionToIntersection<U> = (
  U extends any ? (k: U) => void : never
) extends (k: infer I) => void
  ? I
  : never;

export type Options<Plugins extends PluginSignatures> = UnionToIntersection<
  PluginOptions<Plugins>[keyof PluginOptions<Plugins>]
>;

/**
 * `logValue` for path options that may be `true` (meaning `defaultName`):
 * shows the path relative to the working directory
 */
export function logPathOption(defaultName: string) {
  return (value: boolean | string): string | undefined => {
    if (value === true) return defaultName;
    if (value === false) return undefined;
    return path.relative("", value);
  };
}

/** Logs every set option at debug level ("- Title Name: value") */
export function logOptions<Plugins extends PluginSignatures>(
  plugins: [keyof Plugins & string, PluginSignature][],
  log: Log,
  options: Record<string, Context>
): void {
  log.debug("Options:");
  for (const [name, plugin] of plugins) {
    const pluginOptions = options[name] ?? {};
    for (const [key, meta] of plugin.prototype.opts?.entries() ?? []) {
      const value = pluginOptions[key as string];
      if (value === undefined || meta.type === OptionType.NONE) continue;
      const keyName =
        meta.logName ??
        titleCase(typeof key === "symbol" ? "<symbol>" : key);
      let str: string | undefined;
      if (meta.logValue) {
        str = meta.logValue(value);
        if (str === undefined) continue;
      } else if (meta.type === OptionType.OBJECT) {
        str = Object.keys(value).join(", ");
      } else if (meta.type === OptionType.ARRAY) {
        str = value.join(", ");
      } else {
        str = String(value);
      }
      log.debug(`- ${keyName}: ${str}`);
    }
  }
}
