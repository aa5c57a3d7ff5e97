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

export interface StorageListOptions {
  prefix?: string;
  excludePrefix?: string;
  start?: string;
  end?: string;
  reverse?: boolean;
  cursor?: string;
  limit?: number;
  delimiter?: string;
}

export interface StorageListResult<Key extends StoredKey = StoredKeyMeta> {
  keys: Key[];
  cursor: string;
  delimitedPrefixes: string[];
}

export abstract class Storage {
  abstract has(key: string): Promise<boolean>;
  abstract get<Meta = unknown>(
    key: string,
    skipMetadata?: boolean
  ): Promise<StoredValueMeta<Meta> | undefined>;
  abstract put<Meta = unknown>(
    key: string,
    value: StoredValueMeta<Meta>
  ): Promise<void>;
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
}

export interface StorageFactory {
  storage(namespace: string, persist?: boolean | string): Storage;
  dispose?(): Promise<void>;
}
