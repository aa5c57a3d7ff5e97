export { Cache, type CacheInterface, type CacheMatchOptions, type CachedMeta, NoOpCache } from "./cache.js";
export { CacheError, type CacheErrorCode } from "./errors.js";
export { type CacheOptions, CachePlugin } from "./plugin.js";
export { CacheStorage } from "./storage.js";
