// Layers of unconfirmed writes over a Storage. A Durable Object's storage
// keeps writes that haven't reached the backend yet in layers (one per
// flush batch), and a transaction keeps its own. Reads look through the
// layers, newest first, before asking the backend. Reads take what they
// need from the layers synchronously, when they are called, so a write made
// after a read never shows in it.
import type { Storage, StoredValueMeta } from "../../shared/storage.js";
import { compareKeys } from "../../storage/keys.js";

/** key → new value, or null if deleted */
export type Overlay = Map<string, StoredValueMeta | null>;

export interface Layer {
  readonly overlay: Overlay;
  /** deleteAll(): every key older than this layer is gone */
  readonly cleared?: boolean;
}

/** The newest value of `key` in `layers`: a value, null (deleted) or undefined (untouched) */
export function layerLookup(layers: readonly Layer[], key: string): StoredValueMeta | null | undefined {
  for (const layer of layers) {
    const value = layer.overlay.get(key);
    if (value !== undefined) return value;
    if (layer.cleared) return null;
  }
  return undefined;
}

/** A value read from a layer, copied so the reader can't change the layer */
function copyOf(stored: StoredValueMeta): StoredValueMeta {
  // (not slice(): values may be Buffers, whose slice() is a view)
  return { value: new Uint8Array(stored.value), metadata: stored.metadata };
}

/**
 * Reads `keys`: what the layers know is taken now, the rest is read from
 * `inner` by the returned function.
 */
export function snapshotKeys(
  layers: readonly Layer[],
  keys: readonly string[]
): (inner: Storage) => Promise<(StoredValueMeta | undefined)[]> {
  const result: (StoredValueMeta | undefined)[] = new Array(keys.length);
  const innerKeys: string[] = [];
  const innerIndices: number[] = [];
  for (let i = 0; i < keys.length; i++) {
    const value = layerLookup(layers, keys[i]);
    if (value === undefined) {
      innerKeys.push(keys[i]);
      innerIndices.push(i);
    } else if (value !== null) {
      result[i] = copyOf(value);
    }
  }
  return async (inner) => {
    if (innerKeys.length === 1) {
      result[innerIndices[0]] = await inner.get(innerKeys[0], true);
    } else if (innerKeys.length > 0) {
      const values = await inner.getMany(innerKeys, true);
      for (let i = 0; i < innerKeys.length; i++) result[innerIndices[i]] = values[i];
    }
    return result;
  };
}

export interface RangeOptions {
  start?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

export function inKeyRange(key: string, { start, end, prefix }: RangeOptions): boolean {
  if (start !== undefined && compareKeys(key, start) < 0) return false;
  if (end !== undefined && compareKeys(key, end) >= 0) return false;
  return prefix === undefined || key.startsWith(prefix);
}

/**
 * Lists a key range with values: what the layers know is taken now, the
 * rest is read from `inner` by the returned function. At most `limit`
 * entries, never `hidden` ones, in key order (reversed if asked).
 */
export function snapshotRange(
  layers: readonly Layer[],
  options: RangeOptions,
  hidden: ReadonlySet<string>
): (inner: Storage) => Promise<[string, StoredValueMeta][]> {
  // Only layers up to the newest deleteAll() matter, and the backend only
  // if there was none
  let oldest = layers.length - 1;
  for (let i = 0; i < layers.length; i++) {
    if (layers[i].cleared) {
      oldest = i;
      break;
    }
  }
  const innerVisible = !layers.slice(0, oldest + 1).some((layer) => layer.cleared);
  const shadowed = new Map<string, StoredValueMeta | null>();
  for (let i = oldest; i >= 0; i--) {
    for (const [key, value] of layers[i].overlay) {
      if (!hidden.has(key) && inKeyRange(key, options)) {
        shadowed.set(key, value === null ? null : copyOf(value));
      }
    }
  }

  return async (inner) => {
    const entries = new Map<string, StoredValueMeta | undefined>();
    if (innerVisible) {
      let deleted = 0;
      for (const value of shadowed.values()) if (value === null) deleted++;
      const { limit } = options;
      const { keys } = await inner.list(
        {
          start: options.start,
          end: options.end,
          prefix: options.prefix,
          reverse: options.reverse,
          limit: limit === undefined ? undefined : limit + deleted + hidden.size,
        },
        true
      );
      for (const { name } of keys) {
        if (!hidden.has(name) && !shadowed.has(name)) entries.set(name, undefined);
      }
    }
    for (const [key, value] of shadowed) if (value !== null) entries.set(key, value);
    let names = [...entries.keys()].sort(compareKeys);
    if (options.reverse) names.reverse();
    if (options.limit !== undefined && names.length > options.limit) {
      names = names.slice(0, options.limit);
    }
    const innerNames = names.filter((name) => entries.get(name) === undefined);
    if (innerNames.length > 0) {
      const values = await inner.getMany(innerNames, true);
      for (let i = 0; i < innerNames.length; i++) entries.set(innerNames[i], values[i]);
    }
    const result: [string, StoredValueMeta][] = [];
    for (const name of names) {
      const value = entries.get(name);
      if (value !== undefined) result.push([name, value]);
    }
    return result;
  };
}
