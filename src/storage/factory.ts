import { createRequire } from "node:module";
import path from "node:path";
import type { Redis } from "ioredis";
import type { Storage, StorageFactory } from "../shared/storage.js";
import { encodeName, FileStorage } from "./file.js";
import { acquireLock, releaseLock } from "./lock.js";
import { type MemoryEntry, MemoryStorage } from "./memory.js";
import { RedisStorage } from "./redis.js";

const redisURL = /^rediss?:\/\//;

/**
 * The folder inside a persist folder that holds this layout's namespaces.
 * Miniflare 2 kept its namespaces straight in the persist folder (`.mf/kv/NS`),
 * with keys as paths: a folder of its data left in place beside ours could
 * otherwise block our keys (its key "a/b" is a folder "a", where our key "a"
 * would go) or be read as ours. A name Miniflare 2 can't have given a
 * namespace (they are binding names), versioned after the entry format.
 */
export const LAYOUT_FOLDER = "mfs1";
const require = createRequire(import.meta.url);

/**
 * Chooses a backend from a persist option: memory when unset or false, Redis
 * for a redis:// or rediss:// URL, otherwise files under that directory.
 * Memory storages and Redis connections live as long as the factory, so
 * in-memory data survives reloads. A persist directory is locked against
 * other processes from its first use until dispose().
 */
export class VariedStorageFactory implements StorageFactory {
  readonly #memoryStorages: Map<string, MemoryStorage>;
  readonly #redisConnections: Map<string, Redis>;
  readonly #lockedDirectories = new Set<string>();

  constructor(
    memoryStorages = new Map<string, MemoryStorage>(),
    redisConnections = new Map<string, Redis>()
  ) {
    this.#memoryStorages = memoryStorages;
    this.#redisConnections = redisConnections;
  }

  storage(namespace: string, persist?: boolean | string): Storage {
    if (persist === undefined || persist === false) {
      let storage = this.#memoryStorages.get(namespace);
      if (storage === undefined) {
        storage = new MemoryStorage(new Map<string, MemoryEntry>());
        this.#memoryStorages.set(namespace, storage);
      }
      return storage;
    }
    if (persist === true) {
      throw new TypeError("persist must be resolved to a path or URL before storage()");
    }
    if (redisURL.test(persist)) {
      let connection = this.#redisConnections.get(persist);
      if (connection === undefined) {
        // ioredis is only loaded by those who use it
        const { Redis } = require("ioredis") as typeof import("ioredis");
        connection = new Redis(persist);
        // Failures surface on the commands that hit them; without a listener
        // ioredis would also print every reconnection attempt
        connection.on("error", () => {});
        this.#redisConnections.set(persist, connection);
      }
      return new RedisStorage(connection, namespace);
    }
    const directory = path.resolve(persist);
    if (!this.#lockedDirectories.has(directory)) {
      acquireLock(directory);
      this.#lockedDirectories.add(directory);
    }
    return new FileStorage(fileNamespaceDirectory(directory, namespace));
  }

  async dispose(): Promise<void> {
    for (const directory of this.#lockedDirectories) releaseLock(directory);
    this.#lockedDirectories.clear();
    const connections = [...this.#redisConnections.values()];
    this.#redisConnections.clear();
    await Promise.all(
      connections.map((connection) =>
        connection.quit().catch(() => {
          connection.disconnect();
        })
      )
    );
  }
}

// Binding names as they usually are ("TEST_NAMESPACE") stay readable
const plainSegment = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const reservedSegment = /^(?:con|prn|aux|nul|com\d|lpt\d)(?:\.|$)/i;

/**
 * A namespace's directory: "a:b" is a/b. Parts that are plain names (letters,
 * digits, "_", "-", inner ".") are kept; others are named as keys are, so a
 * namespace can't reach outside `root` either.
 */
export function namespaceDirectory(root: string, namespace: string): string {
  const parts = namespace.split(":").map((part) =>
    plainSegment.test(part) && !part.endsWith(".") && !reservedSegment.test(part)
      ? part
      : encodeName(part)
  );
  return path.join(root, ...parts);
}

/** Where a namespace persisted to the folder `persist` keeps its files */
export function fileNamespaceDirectory(persist: string, namespace: string): string {
  return namespaceDirectory(path.join(path.resolve(persist), LAYOUT_FOLDER), namespace);
}

/** "KVPlugin" → "kv", "DurableObjectsPlugin" → "durableobjects" */
export function pluginStorageName(pluginName: string): string {
  return pluginName.replace(/Plugin$/, "").toLowerCase();
}

/**
 * One plugin's view of the storage factory: in-memory and Redis namespaces
 * are prefixed with the plugin's name (so KV's "default" and the cache's
 * "default" are apart), and `persist: true` means ".mf/<plugin>" in the
 * working directory, as in Miniflare 2.
 */
export class PluginStorageFactory implements StorageFactory {
  readonly #inner: StorageFactory;
  readonly #name: string;
  readonly #defaultPersistRoot: string;

  constructor(inner: StorageFactory, pluginName: string, defaultPersistRoot = ".mf") {
    this.#inner = inner;
    this.#name = pluginStorageName(pluginName);
    this.#defaultPersistRoot = defaultPersistRoot;
  }

  storage(namespace: string, persist?: boolean | string): Storage {
    if (persist === undefined || persist === false || (typeof persist === "string" && redisURL.test(persist))) {
      return this.#inner.storage(`${this.#name}:${namespace}`, persist);
    }
    if (persist === true) persist = path.resolve(this.#defaultPersistRoot, this.#name);
    return this.#inner.storage(namespace, persist);
  }
}
