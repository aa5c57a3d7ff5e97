// A KV namespace showing part of a storage, maybe under other key names, and
// maybe read-only: Workers Sites' `__STATIC_CONTENT` is one over the site's
// folder. Everything else (validation, value types, gates, pagination) is
// KVNamespace's.
import type { Matcher } from "../../shared/runner.js";
import {
  type RangeOptions,
  Storage,
  type StorageListOptions,
  type StorageListResult,
  type StoredKeyMeta,
  type StoredMeta,
  type StoredValueMeta,
  type StoredValueMetaRange,
} from "../../shared/storage.js";
import {
  type KVGetOptions,
  type KVGetValueType,
  type KVListOptions,
  type KVListResult,
  KVNamespace,
  type KVNamespaceOptions,
  type KVPutOptions,
  type KVPutValueType,
  type KVValueMeta,
} from "../kv/namespace.js";

/** Names keys as the namespace shows them, and back */
export interface KeyMapper {
  /** The storage key of a key a worker gave */
  lookup(key: string): string;
  /** The key a worker sees for a storage key */
  reverseLookup(key: string): string;
}

export interface FilteredKVStorageNamespaceOptions {
  /** put() and delete() reject with a TypeError */
  readOnly?: boolean;
  map?: KeyMapper;
  /** Only storage keys this matches are seen (`exclude` is then ignored) */
  include?: Matcher;
  /** Storage keys this matches aren't seen, unless `include` is given */
  exclude?: Matcher;
}

/**
 * Whether a storage key is seen through a namespace with these options. As
 * in Miniflare 2 (and its docs), `include` wins: with it, `exclude` is
 * ignored.
 */
export function isIncluded({ include, exclude }: FilteredKVStorageNamespaceOptions, key: string): boolean {
  if (include !== undefined) return include.test(key);
  if (exclude !== undefined) return !exclude.test(key);
  return true;
}

/**
 * The keys of a storage that a namespace's options include. Lists come in
 * full pages: keys left out don't count towards the limit.
 */
class FilteredStorage extends Storage {
  readonly #storage: Storage;
  readonly #included: (key: string) => boolean;

  constructor(storage: Storage, included: (key: string) => boolean) {
    super();
    this.#storage = storage;
    this.#included = included;
  }

  async has(key: string): Promise<boolean> {
    return this.#included(key) && this.#storage.has(key);
  }

  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    return this.#included(key) ? this.#storage.head<Meta>(key) : undefined;
  }

  async get<Meta = unknown>(key: string, skipMetadata?: boolean): Promise<StoredValueMeta<Meta> | undefined> {
    return this.#included(key) ? this.#storage.get<Meta>(key, skipMetadata) : undefined;
  }

  async getRange<Meta = unknown>(
    key: string,
    range?: RangeOptions,
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    return this.#included(key) ? this.#storage.getRange<Meta>(key, range, skipMetadata) : undefined;
  }

  put<Meta = unknown>(key: string, value: StoredValueMeta<Meta>): Promise<void> {
    return this.#storage.put(key, value);
  }

  delete(key: string): Promise<boolean> {
    return this.#storage.delete(key);
  }

  async list<Meta = unknown>(
    options: StorageListOptions = {},
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    const limit = options.limit ?? Infinity;
    const keys: StoredKeyMeta<Meta>[] = [];
    let cursor = options.cursor;
    for (;;) {
      const page = await this.#storage.list<Meta>(
        { ...options, cursor, limit: limit === Infinity ? undefined : limit - keys.length },
        skipMetadata
      );
      for (const key of page.keys) if (this.#included(key.name)) keys.push(key);
      // Done, or the page is full: the inner cursor carries on after the
      // last key looked at, included or not
      if (page.cursor === "" || keys.length >= limit) return { keys, cursor: page.cursor };
      cursor = page.cursor;
    }
  }
}

export class FilteredKVNamespace extends KVNamespace {
  readonly #options: FilteredKVStorageNamespaceOptions;

  constructor(storage: Storage, options: FilteredKVStorageNamespaceOptions = {}, kvOptions?: KVNamespaceOptions) {
    super(new FilteredStorage(storage, (key) => isIncluded(options, key)), kvOptions);
    this.#options = options;
  }

  /** The storage key of `key` (anything but a string is KVNamespace's to reject) */
  #lookup<Key>(key: Key): Key | string {
    return typeof key === "string" && this.#options.map ? this.#options.map.lookup(key) : key;
  }

  override get(key: string, options?: KVGetValueType | Partial<KVGetOptions>): Promise<any> {
    return super.get(this.#lookup(key), options as any);
  }

  override getWithMetadata<Value = unknown, Meta = unknown>(
    key: string,
    options?: KVGetValueType | Partial<KVGetOptions>
  ): Promise<KVValueMeta<Value, Meta>> {
    return super.getWithMetadata<Value, Meta>(this.#lookup(key), options);
  }

  override async put<Meta = unknown>(key: string, value: KVPutValueType, options?: KVPutOptions<Meta>): Promise<void> {
    if (this.#options.readOnly) throw new TypeError("Unable to put into read-only namespace");
    return super.put(this.#lookup(key), value, options);
  }

  override async delete(key: string): Promise<void> {
    if (this.#options.readOnly) throw new TypeError("Unable to delete from read-only namespace");
    return super.delete(this.#lookup(key));
  }

  override async list<Meta = unknown>(options?: KVListOptions): Promise<KVListResult<Meta>> {
    const { keys, cursor, list_complete } = await super.list<Meta>(options);
    const map = this.#options.map;
    if (map !== undefined) for (const key of keys) key.name = map.reverseLookup(key.name);
    // (in Miniflare 2's order of properties)
    return { keys, list_complete, cursor };
  }
}
