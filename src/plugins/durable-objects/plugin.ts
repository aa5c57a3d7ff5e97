import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RequestContext, usageModelExternalSubrequestLimit } from "../../shared/context.js";
import { defaultClock, resolveStoragePersist } from "../../shared/data.js";
import {
  type MiniflareCoreMount,
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../../shared/plugin.js";
import type { Context } from "../../shared/runner.js";
import type { StorageFactory } from "../../shared/storage.js";
import { ALARM_STORE_NAMESPACE, AlarmStore } from "./alarms.js";
import { DurableObjectError } from "./errors.js";
import {
  DurableObjectId,
  type DurableObjectInstance,
  DurableObjectNamespace,
  DurableObjectState,
  kAlarm,
  kInstance,
  kObjectName,
  kOnReset,
  kResetObject,
} from "./namespace.js";
import { DURABLE_OBJECTS, type DurableObjectRegistry, idFromObjectKey, objectKey } from "./registry.js";
import { ALARM_KEY, DurableObjectStorage, JOURNAL_KEY, kAlarmExists } from "./storage.js";
import { type Miniflare2Layout, migrateMiniflare2 } from "../../storage/migrate.js";
import { durableObjectNamespaces } from "../../storage/miniflare2.js";

export type DurableObjectsObjectOptions =
  | string
  | {
      className: string;
      /** A mounted worker exporting the class */
      scriptName?: string;
      /** A module file exporting the class (Miniflare 1's form) */
      scriptPath?: string;
    };

export interface DurableObjectsOptions {
  durableObjects?: Record<string, DurableObjectsObjectOptions>;
  durableObjectsPersist?: boolean | string;
  durableObjectsAlarms?: boolean;
}

interface ProcessedDurableObject {
  name: string;
  className: string;
  scriptName?: string;
  /** Absolute path of a module file exporting the class */
  scriptPath?: string;
}

/** Default folder for `durableObjectsPersist: true`, relative to the working directory */
export const DEFAULT_PERSIST_PATH = path.join(".mf", "do");

/** Miniflare 2's folder for `durableObjectsPersist: true` */
const MINIFLARE2_PERSIST_PATH = path.join(".mf", "durableobjects");

/** Miniflare 2 kept each object in <binding>/<hex id>, and alarms in their own store */
export const DURABLE_OBJECTS_MINIFLARE2_LAYOUT: Miniflare2Layout = {
  what: "Durable Object",
  unit: ["object", "objects"],
  hiddenKeys: new Set([ALARM_KEY, JOURNAL_KEY]),
  findNamespaces: durableObjectNamespaces,
};

const redisURL = /^rediss?:\/\//;

/** How long dispose() waits for writes still under way */
const DISPOSE_WRITES_TIMEOUT = 10_000; /* ms */
// Production retries a failing alarm up to 6 times, from 2 seconds on, doubling
const ALARM_RETRIES = 6;
const ALARM_RETRY_BASE = 2_000;

/** Whether a wrangler `script_name` is a module path rather than a mount's name */
function isScriptPath(scriptName: string): boolean {
  return /[\\/]/.test(scriptName) || /\.[cm]?js$/.test(scriptName);
}

/** `--do NAME=CLASS[@MOUNT]`: the last "@" separates the mount */
function fromEntries(entries: [string, string][]): Record<string, DurableObjectsObjectOptions> {
  const objects: Record<string, DurableObjectsObjectOptions> = {};
  for (const [name, value] of entries) {
    const at = value.lastIndexOf("@");
    objects[name] =
      at === -1
        ? value
        : { className: value.substring(0, at), scriptName: value.substring(at + 1) };
  }
  return objects;
}

interface FoundClass {
  constructor: new (state: DurableObjectState, env: Context) => DurableObjectInstance;
  env: Context;
}

export class DurableObjectsPlugin
  extends Plugin<DurableObjectsOptions>
  implements DurableObjectsOptions
{
  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=CLASS[@MOUNT]",
    name: "do",
    alias: "o",
    description: "Durable Object to bind",
    logName: "Durable Objects",
    fromEntries,
    fromWrangler: ({ durable_objects }, configDir) => {
      const bindings = durable_objects?.bindings;
      if (bindings === undefined) return undefined;
      const objects: Record<string, DurableObjectsObjectOptions> = {};
      for (const { name, class_name, script_name } of bindings) {
        objects[name] =
          script_name !== undefined && isScriptPath(script_name)
            ? { className: class_name, scriptPath: path.resolve(configDir, script_name) }
            : { className: class_name, scriptName: script_name };
      }
      return objects;
    },
  })
  durableObjects?: Record<string, DurableObjectsObjectOptions>;

  @Option({
    type: OptionType.BOOLEAN_STRING,
    name: "do-persist",
    description: "Persist Durable Object data (to optional path)",
    logName: "Durable Objects Persistence",
    fromWrangler: ({ miniflare }) => miniflare?.durable_objects_persist,
  })
  durableObjectsPersist?: boolean | string;

  @Option({
    type: OptionType.BOOLEAN,
    name: "do-alarms",
    description: "Enable Durable Object alarms (enabled by default)",
    negatable: true,
    logName: "Durable Object Alarms",
    fromWrangler: ({ miniflare }) => miniflare?.durable_objects_alarms,
  })
  durableObjectsAlarms?: boolean;

  readonly #persist?: boolean | string;
  readonly #objects: ProcessedDurableObject[];
  readonly #alarmStore?: AlarmStore;
  readonly #alarmRetries = new Map<string, number>();
  #storageFactory?: StorageFactory;
  #classes = new Map<string, FoundClass>();
  /** Resolves once reload() has found the classes */
  #loaded?: Promise<void>;
  #resolveLoaded?: () => void;

  constructor(ctx: PluginContext, options?: DurableObjectsOptions) {
    super(ctx);
    this.assignOptions(options);
    this.#persist =
      this.durableObjectsPersist === true
        ? path.resolve(DEFAULT_PERSIST_PATH)
        : resolveStoragePersist(ctx.rootPath, this.durableObjectsPersist);
    this.#objects = Object.entries(this.durableObjects ?? {}).map(([name, options]) => {
      if (typeof options === "string") return { name, className: options };
      const { className, scriptName, scriptPath } = options;
      return {
        name,
        className,
        scriptName,
        scriptPath: scriptPath === undefined ? undefined : path.resolve(ctx.rootPath, scriptPath),
      };
    });
    if (this.durableObjectsAlarms !== false) {
      this.#alarmStore = new AlarmStore(ctx.log, { clock: ctx.clock, timers: ctx.timers });
    }
  }

  /** Declaring a Durable Object runs the script as modules */
  static impliesModules(options?: DurableObjectsOptions): boolean {
    return Object.keys(options?.durableObjects ?? {}).length > 0;
  }

  /**
   * The host's live objects and their storages: one of each per id across
   * the whole host (mounts included), dropped when the host commits a reload
   */
  get #registry(): DurableObjectRegistry {
    return this.ctx.registry.get(DURABLE_OBJECTS);
  }

  /** The storage of the object with `id` (one per id, shared with the object) */
  getStorage(storage: StorageFactory, id: DurableObjectId): DurableObjectStorage {
    const key = objectKey(id);
    const registry = this.#registry;
    const existing = registry.getStorage(key);
    if (existing !== undefined) return existing;
    const inner = storage.storage(key, this.#persist);
    const objectStorage: DurableObjectStorage = new DurableObjectStorage(inner, {
      alarms: this.#alarmStore?.bridge(key),
      // Files can't write several keys atomically: journal those batches
      journal: inner.applyBatch === undefined,
      onWriteFailure: (error) => {
        // The object's memory may reflect writes that never landed: reset it
        registry.getState(key)?.[kResetObject](error);
        registry.deleteStorage(key, objectStorage);
      },
    });
    registry.setStorage(key, objectStorage);
    return objectStorage;
  }

  /** The object with `id`, constructed on first use */
  async getObject(storage: StorageFactory, id: DurableObjectId): Promise<DurableObjectState> {
    if (this.#loaded === undefined) {
      throw new TypeError("beforeReload() must be called before getObject()");
    }
    await this.#loaded;
    const key = objectKey(id);
    const registry = this.#registry;
    const existing = registry.getState(key);
    if (existing !== undefined) return existing;

    const objectName = id[kObjectName];
    const found = this.#classes.get(objectName);
    if (found === undefined) {
      throw new TypeError(`No Durable Object bound as "${objectName}"`);
    }
    // The object's own id has no name
    const objectStorage = this.getStorage(storage, id);
    const state = new DurableObjectState(new DurableObjectId(objectName, id.toString()), objectStorage);
    state[kOnReset] = () => registry.deleteState(key, state);
    registry.setState(key, state);
    try {
      const instance = new found.constructor(state, found.env);
      state[kInstance] = instance;
      objectStorage[kAlarmExists] = typeof instance?.alarm === "function";
    } catch (e) {
      // Constructing again on the next request may succeed
      registry.deleteState(key);
      throw e;
    }
    return state;
  }

  async getInstance(storage: StorageFactory, id: DurableObjectId): Promise<DurableObjectInstance> {
    return (await this.getObject(storage, id))[kInstance]!;
  }

  /**
   * A namespace of objects bound as `objectName`. With `hostStubs`, its
   * stubs have the non-standard `storage()` method.
   */
  getNamespace(storage: StorageFactory, objectName: string, hostStubs = false): DurableObjectNamespace {
    return new DurableObjectNamespace(
      objectName,
      (id) => this.getObject(storage, id),
      this.ctx,
      hostStubs ? async (id) => this.getStorage(storage, id) : undefined
    );
  }

  /** Ids of the objects of `objectName` constructed since the last reload */
  getObjects(_storage: StorageFactory, objectName: string): DurableObjectId[] {
    return this.#registry.ids(objectName);
  }

  /** Runs scheduled alarms now: all of them, or only those of `ids` */
  async flushAlarms(_storage: StorageFactory, ids?: DurableObjectId[]): Promise<void> {
    await this.#alarmStore?.flushAlarms(ids?.map(objectKey));
  }

  async setup(storageFactory: StorageFactory): Promise<SetupResult> {
    this.#storageFactory = storageFactory;
    // Data Miniflare 2 persisted first (once): `true` was .mf/durableobjects there
    const persist = this.#persist;
    if (typeof persist === "string" && !redisURL.test(persist)) {
      const sources = [persist];
      if (this.durableObjectsPersist === true) sources.push(path.resolve(MINIFLARE2_PERSIST_PATH));
      await migrateMiniflare2(storageFactory, {
        layout: DURABLE_OBJECTS_MINIFLARE2_LAYOUT,
        persist,
        sources,
        log: this.ctx.log,
        clock: this.ctx.clock,
      });
    }
    const bindings: Context = {};
    for (const { name } of this.#objects) {
      bindings[name] = this.getNamespace(storageFactory, name);
    }
    // Opening the store at setup also locks a persist folder now, alarms or
    // not, so a second process fails at start rather than at its first
    // request to an object
    if (this.#objects.length > 0 || this.#alarmStore) {
      const alarmStorage = storageFactory.storage(ALARM_STORE_NAMESPACE, this.#persist);
      if (this.#alarmStore) await this.#alarmStore.setup(alarmStorage);
    }
    const additionalEntries: string[] = [];
    for (const { scriptPath } of this.#objects) {
      if (scriptPath !== undefined && !additionalEntries.includes(scriptPath)) {
        additionalEntries.push(scriptPath);
      }
    }
    return {
      bindings,
      requiresModuleExports: this.#objects.length > 0,
      additionalEntries,
    };
  }

  beforeReload(): void {
    // Objects asked for during the reload wait for the new classes
    if (this.#resolveLoaded === undefined) {
      this.#loaded = new Promise((resolve) => (this.#resolveLoaded = resolve));
    }
  }

  verify(moduleExports: Context, mounts: ReadonlyMap<string, MiniflareCoreMount>): void {
    this.#findClasses(moduleExports, {}, mounts);
  }

  reload(bindings: Context, moduleExports: Context, mounts: Map<string, MiniflareCoreMount>): void {
    try {
      this.#classes = this.#findClasses(moduleExports, bindings, mounts);
    } finally {
      // On failure the previous worker keeps serving, with its classes
      this.#resolveLoaded?.();
      this.#resolveLoaded = undefined;
    }
    if (this.#alarmStore && this.#storageFactory) {
      const storageFactory = this.#storageFactory;
      this.#alarmStore.start((key) => this.#runAlarm(storageFactory, key));
    }
  }

  /**
   * Each bound object's class, and the env its instances get: that of the
   * worker defining the class (another mount's for `script_name`), as in
   * production
   */
  #findClasses(
    moduleExports: Context,
    bindings: Context,
    mounts: ReadonlyMap<string, MiniflareCoreMount>
  ): Map<string, FoundClass> {
    const classes = new Map<string, FoundClass>();
    for (const { name, className, scriptName, scriptPath } of this.#objects) {
      let exports: Context | undefined = moduleExports;
      let env = bindings;
      let script: string | undefined;
      if (scriptPath !== undefined) {
        // A module file beside wrangler.toml, run for its exports: ours
        exports = mounts.get(scriptPath)?.moduleExports;
        script = path.relative("", scriptPath);
      } else if (scriptName !== undefined) {
        const mount = mounts.get(scriptName);
        if (mount?.moduleExports === undefined) {
          throw new DurableObjectError(
            "ERR_SCRIPT_NOT_FOUND",
            `Script "${scriptName}" for Durable Object "${name}" not found.\nMake sure "${scriptName}" is mounted so Miniflare knows where to find it.`
          );
        }
        exports = mount.moduleExports;
        env = mount.bindings ?? bindings;
        script = scriptName;
      }
      const constructor = exports?.[className];
      if (typeof constructor !== "function") {
        const inScript = script === undefined ? "" : ` in script "${script}"`;
        throw new DurableObjectError(
          "ERR_CLASS_NOT_FOUND",
          `Class "${className}"${inScript} for Durable Object "${name}" not found`
        );
      }
      classes.set(name, { constructor, env });
    }
    return classes;
  }


  async #runAlarm(storage: StorageFactory, key: string): Promise<void> {
    const id = idFromObjectKey(key);
    if (!this.#objects.some(({ name }) => name === id[kObjectName])) {
      this.ctx.log.warn(`Skipping alarm of unbound Durable Object "${id[kObjectName]}"`);
      await this.#alarmStore?.deleteAlarm(key);
      return;
    }
    const state = await this.getObject(storage, id);
    const context = new RequestContext({
      requestDepth: 1,
      pipelineDepth: 1,
      durableObject: true,
      externalSubrequestLimit: usageModelExternalSubrequestLimit(this.ctx.usageModel),
    });
    try {
      await context.runWith(() => state[kAlarm]());
      this.#alarmRetries.delete(key);
    } catch (e: any) {
      if (e instanceof DurableObjectError && e.code === "ERR_NO_HANDLER") throw e;
      // At least once: retry with back-off, unless the handler set a new alarm
      const retries = this.#alarmRetries.get(key) ?? 0;
      if (retries < ALARM_RETRIES && (await state.storage.getAlarm()) === null) {
        this.#alarmRetries.set(key, retries + 1);
        const delay = ALARM_RETRY_BASE * 2 ** retries;
        await state.storage.setAlarm((this.ctx.clock ?? defaultClock)() + delay);
        this.ctx.log.warn(
          `Alarm of Durable Object "${key}" threw, retrying in ${delay / 1000}s (retry ${retries + 1} of ${ALARM_RETRIES})`
        );
      } else {
        this.#alarmRetries.delete(key);
      }
      throw e;
    }
  }

  async dispose(): Promise<void> {
    this.#alarmStore?.dispose();
    // Anyone waiting for classes would wait forever otherwise
    this.#resolveLoaded?.();
    // Writes still under way land before the storage goes (and with it a
    // persist folder's lock): a failed one was reported to its request
    const storages: Promise<void>[] = [];
    for (const storage of this.#registry.storages()) storages.push(storage.sync().catch(() => {}));
    // (bounded: a backend that never answers mustn't hold up exit)
    await Promise.race([Promise.all(storages), sleep(DISPOSE_WRITES_TIMEOUT, undefined, { ref: false })]);
  }
}
