// `caches`: the default cache and named ones, each a Storage namespace of the
// Cache plugin's.
import type { Log } from "../../shared/log.js";
import type { StorageFactory } from "../../shared/storage.js";
import { Cache, type CacheInterface, type InternalCacheOptions, NoOpCache } from "./cache.js";
import { CacheError } from "./errors.js";

const DEFAULT_CACHE_NAME = "default";
const MAX_CACHE_NAME_LENGTH = 1024;
const NO_OP_CACHE = new NoOpCache();

export interface CacheStorageOptions {
  /** false: every cache is a no-op one */
  cache?: boolean;
  /** Resolved: undefined/false for memory, a folder or a redis:// URL */
  cachePersist?: boolean | string;
  /** Warn once, at the first cache used, that workers.dev ignores caching */
  cacheWarnUsage?: boolean;
}

export class CacheStorage {
  readonly #options: CacheStorageOptions;
  readonly #log: Log;
  readonly #storageFactory: StorageFactory;
  readonly #internalOptions: InternalCacheOptions;
  #warnUsage: boolean;
  #defaultCache?: CacheInterface;

  constructor(
    options: CacheStorageOptions,
    log: Log,
    storageFactory: StorageFactory,
    internalOptions: InternalCacheOptions = {}
  ) {
    this.#options = options;
    this.#log = log;
    this.#storageFactory = storageFactory;
    this.#internalOptions = internalOptions;
    this.#warnUsage = options.cacheWarnUsage === true;
  }

  #maybeWarnUsage(): void {
    if (!this.#warnUsage) return;
    this.#warnUsage = false;
    this.#log.warn("Cache operations will have no impact if you deploy to a workers.dev subdomain!");
  }

  #cache(name: string): CacheInterface {
    if (this.#options.cache === false) return NO_OP_CACHE;
    this.#maybeWarnUsage();
    return new Cache(this.#storageFactory.storage(name, this.#options.cachePersist), this.#internalOptions);
  }

  get default(): CacheInterface {
    return (this.#defaultCache ??= this.#cache(DEFAULT_CACHE_NAME));
  }

  async open(cacheName: string): Promise<CacheInterface> {
    if (cacheName === DEFAULT_CACHE_NAME) {
      throw new CacheError("ERR_RESERVED", `"${cacheName}" is a reserved cache name`);
    }
    if (cacheName.length > MAX_CACHE_NAME_LENGTH) throw new TypeError("Cache name is too long.");
    return this.#cache(cacheName);
  }
}
