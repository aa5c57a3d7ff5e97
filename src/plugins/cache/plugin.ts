import path from "node:path";
import { resolveStoragePersist } from "../../shared/data.js";
import { Option, OptionType, Plugin, type PluginContext, type SetupResult } from "../../shared/plugin.js";
import type { StorageFactory } from "../../shared/storage.js";
import { CacheStorage, type CacheStorageOptions } from "./storage.js";

export interface CacheOptions {
  cache?: boolean;
  cachePersist?: boolean | string;
  cacheWarnUsage?: boolean;
}

/** Folder for `cachePersist: true`, relative to the working directory (as Miniflare 2's) */
const DEFAULT_PERSIST_PATH = path.join(".mf", "cache");

/**
 * The Cache API: the `caches` global (`caches.default`, `caches.open(name)`),
 * kept in memory, in files or in Redis (`cachePersist`)
 */
export class CachePlugin extends Plugin<CacheOptions> implements CacheOptions {
  @Option({
    type: OptionType.BOOLEAN,
    description: "Enable default/named caches (enabled by default)",
    negatable: true,
    logName: "Cache",
    fromWrangler: ({ miniflare }) => miniflare?.cache,
  })
  cache?: boolean;

  @Option({
    type: OptionType.BOOLEAN_STRING,
    description: "Persist cached data (in .mf/cache, the given folder, or a redis:// URL)",
    logName: "Cache Persistence",
    fromWrangler: ({ miniflare }) => miniflare?.cache_persist,
  })
  cachePersist?: boolean | string;

  @Option({
    type: OptionType.NONE,
    fromWrangler: ({ workers_dev }) => workers_dev,
  })
  cacheWarnUsage?: boolean;

  #unblockedCaches?: CacheStorage;

  constructor(ctx: PluginContext, options?: CacheOptions) {
    super(ctx);
    this.assignOptions(options);
  }

  #storageOptions(): CacheStorageOptions {
    const cachePersist =
      this.cachePersist === true
        ? path.resolve(DEFAULT_PERSIST_PATH)
        : resolveStoragePersist(this.ctx.rootPath, this.cachePersist);
    return { cache: this.cache, cachePersist, cacheWarnUsage: this.cacheWarnUsage };
  }

  setup(storageFactory: StorageFactory): SetupResult {
    const options = this.#storageOptions();
    const formDataFiles = this.ctx.compat.isEnabled("formdata_parser_supports_files");
    const blockGlobalAsyncIO = !this.ctx.globalAsyncIO;
    const clock = this.ctx.clock;
    const caches = new CacheStorage(options, this.ctx.log, storageFactory, { formDataFiles, clock, blockGlobalAsyncIO });
    // Caches for the API (Miniflare#getCaches), usable outside requests
    this.#unblockedCaches = blockGlobalAsyncIO
      ? new CacheStorage(options, this.ctx.log, storageFactory, { formDataFiles, clock })
      : caches;
    return { globals: { caches } };
  }

  /** The caches as the worker sees them, but usable outside a request */
  getCaches(): CacheStorage {
    if (this.#unblockedCaches === undefined) throw new TypeError("CachePlugin: setup() hasn't run");
    return this.#unblockedCaches;
  }
}
