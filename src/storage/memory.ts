import { type Clock, defaultClock, millisToSeconds } from "../shared/data.js";
import {
  type RangeOptions,
  Storage,
  type StorageListOptions,
  type StorageListResult,
  type StoredKeyMeta,
  type StoredMeta,
  type StoredValueMeta,
  type StoredValueMetaRange,
  storedRange,
} from "../shared/storage.js";
import { compareKeys } from "./keys.js";
import { type KeyRange, type ListSource, type NamesResult, listKeys } from "./list.js";

/** An entry as MemoryStorage keeps it */
export interface MemoryEntry {
  value: Uint8Array;
  expiration?: number;
  /** Metadata as JSON, so every read gets its own copy */
  metadata?: string;
}

// Copies into a new ArrayBuffer of exactly the bytes: Buffer#slice() would
// only make a view, maybe of Node's shared Buffer pool, which a byte stream
// enqueuing the value would detach
const copy = (value: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(value);

// Each map's keys in order, rebuilt when a list follows an insert or delete;
// kept per map so storages sharing a map see each other's keys
const sortedKeys = new WeakMap<Map<string, MemoryEntry>, string[]>();

/** First index in sorted `names` for which `before` is false */
function search(names: string[], before: (name: string) => boolean): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (before(names[mid])) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Entries in a Map, kept for the life of the Miniflare instance (across
 * reloads). Values and metadata are copied on the way in and out, so callers
 * never share them.
 */
export class MemoryStorage extends Storage implements ListSource<unknown> {
  readonly #map: Map<string, MemoryEntry>;
  readonly #clock: Clock;

  constructor(map = new Map<string, MemoryEntry>(), clock: Clock = defaultClock) {
    super();
    this.#map = map;
    this.#clock = clock;
  }

  #live(key: string): MemoryEntry | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    if (
      entry.expiration !== undefined &&
      entry.expiration <= millisToSeconds(this.#clock())
    ) {
      this.#map.delete(key);
      sortedKeys.delete(this.#map);
      return undefined;
    }
    return entry;
  }

  async has(key: string): Promise<boolean> {
    return this.#live(key) !== undefined;
  }

  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    return {
      expiration: entry.expiration,
      metadata: entry.metadata === undefined ? undefined : JSON.parse(entry.metadata),
    };
  }

  async get<Meta = unknown>(
    key: string,
    skipMetadata?: boolean
  ): Promise<StoredValueMeta<Meta> | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    if (skipMetadata) return { value: copy(entry.value) };
    return {
      value: copy(entry.value),
      expiration: entry.expiration,
      metadata: entry.metadata === undefined ? undefined : JSON.parse(entry.metadata),
    };
  }

  async getRange<Meta = unknown>(
    key: string,
    range: RangeOptions = {},
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    const { value, expiration, metadata } = entry;
    const stored = { value, expiration, metadata: metadata === undefined ? undefined : JSON.parse(metadata) };
    const result = storedRange<Meta>(stored, range, skipMetadata);
    result.value = copy(result.value);
    return result;
  }

  async put<Meta = unknown>(key: string, value: StoredValueMeta<Meta>): Promise<void> {
    this.putSync(key, value);
  }

  /** @internal put() without the promise, for callers on a hot path */
  putSync<Meta = unknown>(key: string, { value, expiration, metadata }: StoredValueMeta<Meta>): void {
    // Serialise before touching the map, so a bad value changes nothing
    const json = metadata === undefined ? undefined : JSON.stringify(metadata);
    if (!this.#map.has(key)) sortedKeys.delete(this.#map);
    this.#map.set(key, { value: copy(value), expiration, metadata: json });
  }

  async putMany<Meta = unknown>(data: [key: string, value: StoredValueMeta<Meta>][]): Promise<void> {
    return this.applyBatch(data, []);
  }

  async applyBatch(puts: [key: string, value: StoredValueMeta][], deletes: string[]): Promise<void> {
    // All or nothing: serialise every entry before storing any, and store
    // synchronously, so nothing sees half of it
    const entries = puts.map(([key, { value, expiration, metadata }]) => {
      const json = metadata === undefined ? undefined : JSON.stringify(metadata);
      return [key, { value: copy(value), expiration, metadata: json }] as const;
    });
    for (const [key, entry] of entries) {
      if (!this.#map.has(key)) sortedKeys.delete(this.#map);
      this.#map.set(key, entry);
    }
    for (const key of deletes) {
      if (this.#map.delete(key)) sortedKeys.delete(this.#map);
    }
  }

  async delete(key: string): Promise<boolean> {
    const existed = this.#live(key) !== undefined;
    if (this.#map.delete(key)) sortedKeys.delete(this.#map);
    return existed;
  }

  async deleteMany(keys: string[]): Promise<number> {
    let count = 0;
    for (const key of keys) if (await this.delete(key)) count++;
    return count;
  }

  list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    return listKeys(this as ListSource<Meta>, options, skipMetadata);
  }

  /** @internal */
  names(range: KeyRange, reverse: boolean, limit: number): NamesResult {
    let sorted = sortedKeys.get(this.#map);
    if (sorted === undefined) {
      sorted = [...this.#map.keys()].sort(compareKeys);
      sortedKeys.set(this.#map, sorted);
    }
    const { lower, lowerInclusive, upper, prefix } = range;
    let from = 0;
    if (lower !== undefined) {
      from = search(sorted, (name) => {
        const order = compareKeys(name, lower);
        return order < 0 || (order === 0 && !lowerInclusive);
      });
    }
    let to = sorted.length;
    if (upper !== undefined) to = search(sorted, (name) => compareKeys(name, upper) < 0);
    if (prefix !== "") {
      // Keys with the prefix are one block, starting at or after `from`
      const end = search(sorted, (name) => compareKeys(name, prefix) < 0 || name.startsWith(prefix));
      if (end < to) to = end;
    }
    if (to <= from) return { names: [], complete: true };
    if (to - from <= limit) {
      const names = sorted.slice(from, to);
      return { names: reverse ? names.reverse() : names, complete: true };
    }
    if (reverse) return { names: sorted.slice(to - limit, to).reverse(), complete: false };
    return { names: sorted.slice(from, from + limit), complete: false };
  }

  /** @internal */
  meta<Meta>(names: string[], skipMetadata: boolean): (StoredKeyMeta<Meta> | undefined)[] {
    return names.map((name) => {
      const entry = this.#live(name);
      if (entry === undefined) return undefined;
      // Both properties are always present, as in Miniflare 2's list results
      return {
        name,
        expiration: entry.expiration,
        metadata:
          skipMetadata || entry.metadata === undefined ? undefined : JSON.parse(entry.metadata),
      };
    });
  }
}
