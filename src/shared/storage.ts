// The storage contract every backend (memory, file, Redis) implements.
// Backends live in src/storage/.

export interface StoredMeta<Meta = unknown> {
  /** Absolute expiration time in seconds since the epoch */
  expiration?: number;
  metadata?: Meta;
}

export interface StoredValue {
  value: Uint8Array;
}

export interface StoredValueMeta<Meta = unknown>
  extends StoredValue,
    StoredMeta<Meta> {}

export interface StoredKey {
  name: string;
}

export interface StoredKeyMeta<Meta = unknown>
  extends StoredKey,
    StoredMeta<Meta> {}

export interface RangeOptions {
  offset?: number;
  length?: number;
  /** The last `suffix` bytes (wins over offset and length) */
  suffix?: number;
}

export interface StoredValueMetaRange<Meta = unknown>
  extends StoredValueMeta<Meta> {
  range: { offset: number; length: number };
}

export interface StorageListOptions {
  /** Only keys starting with this */
  prefix?: string;
  /** Skip keys starting with this */
  excludePrefix?: string;
  /** Inclusive lower bound */
  start?: string;
  /** Exclusive upper bound */
  end?: string;
  reverse?: boolean;
  /** From a previous result: carry on after the key it ended at */
  cursor?: string;
  limit?: number;
  /**
   * Keys with `delimiter` after the prefix are rolled up into
   * `delimitedPrefixes` (prefix up to and including the delimiter)
   */
  delimiter?: string;
}

export interface StorageListResult<Key extends StoredKey = StoredKeyMeta> {
  keys: Key[];
  /** Empty when there is nothing more to list */
  cursor: string;
  /** Only set when a `delimiter` was given */
  delimitedPrefixes?: string[];
}

/**
 * A namespace of entries: a byte value with an optional expiration and
 * JSON-serialisable metadata per key. Keys are any JavaScript strings, and
 * are listed in UTF-8 byte order (lone surrogates in code point order).
 * Expired entries are never returned.
 */
export abstract class Storage {
  abstract has(key: string): Promise<boolean>;
  abstract head<Meta = unknown>(
    key: string
  ): Promise<StoredMeta<Meta> | undefined>;
  abstract get<Meta = unknown>(
    key: string,
    skipMetadata?: boolean
  ): Promise<StoredValueMeta<Meta> | undefined>;
  abstract getRange<Meta = unknown>(
    key: string,
    range?: RangeOptions,
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined>;
  abstract put<Meta = unknown>(
    key: string,
    value: StoredValueMeta<Meta>
  ): Promise<void>;
  /** Resolves true if the key existed (and hadn't expired) */
  abstract delete(key: string): Promise<boolean>;
  abstract list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>>;

  async hasMany(keys: string[]): Promise<number> {
    let count = 0;
    for (const found of await Promise.all(keys.map((key) => this.has(key)))) {
      if (found) count++;
    }
    return count;
  }

  getMany<Meta = unknown>(
    keys: string[],
    skipMetadata?: boolean
  ): Promise<(StoredValueMeta<Meta> | undefined)[]> {
    return Promise.all(keys.map((key) => this.get<Meta>(key, skipMetadata)));
  }

  async putMany<Meta = unknown>(
    data: [key: string, value: StoredValueMeta<Meta>][]
  ): Promise<void> {
    await Promise.all(data.map(([key, value]) => this.put(key, value)));
  }

  async deleteMany(keys: string[]): Promise<number> {
    let count = 0;
    for (const deleted of await Promise.all(keys.map((key) => this.delete(key)))) {
      if (deleted) count++;
    }
    return count;
  }

  /** Closes whatever the storage holds open (connections, handles) */
  /**
   * Writes `puts` and deletes `deletes` atomically, if the backend can
   * (Durable Object storage journals batches on backends that can't)
   */
  applyBatch?(puts: [key: string, value: StoredValueMeta][], deletes: string[]): Promise<void>;

  dispose?(): Promise<void>;
}

export interface StorageFactory {
  storage(namespace: string, persist?: boolean | string): Storage;
  dispose?(): Promise<void>;
}

/** A range of a stored value (a view of `stored.value`, not a copy) */
export function storedRange<Meta>(
  stored: StoredValueMeta<Meta>,
  range: RangeOptions,
  skipMetadata?: boolean
): StoredValueMetaRange<Meta> {
  const { offset, length } = parseRange(range, stored.value.byteLength);
  const result: StoredValueMetaRange<Meta> = {
    value: stored.value.subarray(offset, offset + length),
    range: { offset, length },
  };
  if (!skipMetadata) {
    result.expiration = stored.expiration;
    if (stored.metadata !== undefined) result.metadata = stored.metadata;
  }
  return result;
}

/**
 * Resolves a byte range of a value of `size` bytes, throwing the errors
 * Miniflare 2 throws for impossible ranges
 */
export function parseRange(
  { offset, length, suffix }: RangeOptions,
  size: number
): { offset: number; length: number } {
  if (suffix !== undefined) {
    if (suffix <= 0) throw new Error("Suffix must be > 0");
    if (suffix > size) suffix = size;
    offset = size - suffix;
    length = suffix;
  }
  offset ??= 0;
  length ??= size - offset;
  if (offset < 0) throw new Error("Offset must be >= 0");
  if (offset > size) throw new Error("Offset must be < size");
  if (length <= 0) throw new Error("Length must be > 0");
  if (offset + length > size) length = size - offset;
  return { offset, length };
}
