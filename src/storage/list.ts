// list() for every backend. A backend supplies sorted names in a key range
// and the metadata of names; pagination, prefixes, delimiters and cursors
// are worked out here once, so all backends list the same way.
import type {
  StorageListOptions,
  StorageListResult,
  StoredKeyMeta,
} from "../shared/storage.js";
import { compareKeys, decodeCursor, encodeCursor } from "./keys.js";

/** The keys a list may return: lower ≤ key < upper, starting with prefix */
export interface KeyRange {
  lower?: string;
  /** Whether `lower` itself is in the range */
  lowerInclusive: boolean;
  /** Exclusive */
  upper?: string;
  prefix: string;
}

export interface NamesResult {
  /** Sorted (descending if reversed), maybe including expired entries */
  names: string[];
  /** False if there may be more names in the range after these */
  complete: boolean;
}

export interface ListSource<Meta> {
  /** Up to about `limit` names in `range`, nearest `lower` first (or `upper` if reversed) */
  names(range: KeyRange, reverse: boolean, limit: number): NamesResult | Promise<NamesResult>;
  /** Each name's key, or undefined if it has gone or expired */
  meta(
    names: string[],
    skipMetadata: boolean
  ): (StoredKeyMeta<Meta> | undefined)[] | Promise<(StoredKeyMeta<Meta> | undefined)[]>;
}

export function inRange(name: string, range: KeyRange): boolean {
  if (range.lower !== undefined) {
    const order = compareKeys(name, range.lower);
    if (order < 0 || (order === 0 && !range.lowerInclusive)) return false;
  }
  if (range.upper !== undefined && compareKeys(name, range.upper) >= 0) return false;
  return name.startsWith(range.prefix);
}

function maxKey(a: string | undefined, b: string): string {
  return a === undefined || compareKeys(a, b) < 0 ? b : a;
}

/** The range to list from options, narrowed past `after` (the cursor) */
function rangeOf(options: StorageListOptions, reverse: boolean, after?: string): KeyRange {
  const prefix = options.prefix ?? "";
  const range: KeyRange = {
    lower: maxKey(options.start, prefix),
    lowerInclusive: true,
    upper: options.end,
    prefix,
  };
  if (after !== undefined) {
    if (reverse) {
      if (range.upper === undefined || compareKeys(after, range.upper) < 0) range.upper = after;
    } else if (compareKeys(after, range.lower!) >= 0) {
      range.lower = after;
      range.lowerInclusive = false;
    }
  }
  return range;
}

/**
 * Lists keys. Unlike Miniflare 2, a cursor whose key has since been deleted
 * still carries on from where it was, instead of ending the listing.
 */
export async function listKeys<Meta>(
  source: ListSource<Meta>,
  options: StorageListOptions = {},
  skipMetadata = false
): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
  const reverse = options.reverse ?? false;
  const limit = options.limit ?? Infinity;
  const { delimiter, excludePrefix } = options;
  const prefix = options.prefix ?? "";
  const keys: StoredKeyMeta<Meta>[] = [];
  const delimitedPrefixes: string[] = [];
  let lastPrefix: string | undefined;
  let lastName: string | undefined;
  let more = false;
  let after = options.cursor ? decodeCursor(options.cursor) : undefined;

  // One more than is still needed, to tell whether there is a next page
  const wanted = (): number => Math.max(limit - keys.length - delimitedPrefixes.length + 1, 16);

  scan: for (;;) {
    const range = rangeOf(options, reverse, after);
    const batch = await source.names(range, reverse, wanted());
    const names = excludePrefix === undefined
      ? batch.names
      : batch.names.filter((name) => !name.startsWith(excludePrefix));
    // Metadata is read only as far as the page goes (a backend may return
    // every name in the range)
    for (let start = 0; start < names.length; ) {
      const chunk = names.slice(start, start + wanted());
      start += chunk.length;
      const metas = await source.meta(chunk, skipMetadata);
      for (let i = 0; i < chunk.length; i++) {
        const meta = metas[i];
        if (meta === undefined) continue; // expired or deleted meanwhile
        const name = chunk[i];
        // Keys under the last rolled-up prefix belong to it, even past the limit
        if (lastPrefix !== undefined && name.startsWith(lastPrefix)) {
          lastName = name;
          continue;
        }
        if (keys.length + delimitedPrefixes.length >= limit) {
          more = true;
          break scan;
        }
        lastName = name;
        const index = delimiter === undefined ? -1 : name.indexOf(delimiter, prefix.length);
        if (index !== -1 && delimiter !== "") {
          lastPrefix = name.substring(0, index + delimiter!.length);
          delimitedPrefixes.push(lastPrefix);
        } else {
          keys.push(meta);
        }
      }
    }
    if (batch.complete) break;
    if (batch.names.length === 0) break;
    after = batch.names[batch.names.length - 1];
  }

  const result: StorageListResult<StoredKeyMeta<Meta>> = {
    keys,
    cursor: more && lastName !== undefined ? encodeCursor(lastName) : "",
  };
  if (delimiter !== undefined) result.delimitedPrefixes = delimitedPrefixes;
  return result;
}
