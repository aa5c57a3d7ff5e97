// Overlays of unconfirmed writes over a Storage. A Durable Object's storage
// keeps writes that haven't reached the backend yet (and a transaction keeps
// its own) in maps of key → value, or null for a delete. Reads look through
// the overlays, newest first, before asking the backend.
import type { Storage, StoredValueMeta } from "../../shared/storage.js";
import { compareKeys } from "../../storage/keys.js";

/** key → new value, or null if deleted */
export type Overlay = Map<string, StoredValueMeta | null>;

/** The newest overlay entry for `key`: a value, null (deleted) or undefined (untouched) */
export function overlayLookup(
  overlays: readonly Overlay[],
  key: string
): StoredValueMeta | null | undefined {
  for (const overlay of overlays) {
    const value = overlay.get(key);
    if (value !== undefined) return value;
  }
  return undefined;
}

export async function overlayGetMany(
  overlays: readonly Overlay[],
  inner: Storage,
  keys: string[]
): Promise<(StoredValueMeta | undefined)[]> {
  const result: (StoredValueMeta | undefined)[] = new Array(keys.length);
  const innerKeys: string[] = [];
  const innerIndices: number[] = [];
  for (let i = 0; i < keys.length; i++) {
    const value = overlayLookup(overlays, keys[i]);
    if (value === undefined) {
      innerKeys.push(keys[i]);
      innerIndices.push(i);
    } else {
      result[i] = value ?? undefined;
    }
  }
  if (innerKeys.length === 1) {
    result[innerIndices[0]] = await inner.get(innerKeys[0], true);
  } else if (innerKeys.length > 0) {
    const values = await inner.getMany(innerKeys, true);
    for (let i = 0; i < innerKeys.length; i++) result[innerIndices[i]] = values[i];
  }
  return result;
}

export interface OverlayListOptions {
  start?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

function matches(key: string, { start, end, prefix }: OverlayListOptions): boolean {
  if (start !== undefined && compareKeys(key, start) < 0) return false;
  if (end !== undefined && compareKeys(key, end) >= 0) return false;
  return prefix === undefined || key.startsWith(prefix);
}

/**
 * Sorted key names in range, as the overlays over `inner` see them.
 * `hidden` names are never returned. At most `limit` names.
 */
export async function overlayListNames(
  overlays: readonly Overlay[],
  inner: Storage,
  options: OverlayListOptions,
  hidden: ReadonlySet<string>
): Promise<string[]> {
  // Effective overlay state of every key in range
  const shadowed = new Map<string, boolean>(); // key → exists
  for (let i = overlays.length - 1; i >= 0; i--) {
    for (const [key, value] of overlays[i]) {
      if (matches(key, options)) shadowed.set(key, value !== null);
    }
  }
  let deleted = 0;
  for (const exists of shadowed.values()) if (!exists) deleted++;
  const { limit } = options;
  const innerLimit = limit === undefined ? undefined : limit + deleted + hidden.size;
  const { keys } = await inner.list(
    {
      start: options.start,
      end: options.end,
      prefix: options.prefix,
      reverse: options.reverse,
      limit: innerLimit,
    },
    true
  );
  const names: string[] = [];
  for (const { name } of keys) {
    if (hidden.has(name) || shadowed.has(name)) continue;
    names.push(name);
  }
  let merged = false;
  for (const [key, exists] of shadowed) {
    if (exists && !hidden.has(key)) {
      names.push(key);
      merged = true;
    }
  }
  if (merged) {
    names.sort(compareKeys);
    if (options.reverse) names.reverse();
  }
  if (limit !== undefined && names.length > limit) names.length = limit;
  return names;
}
