// A read-only Storage over a Workers Site's folder: each file is an entry,
// keyed by its path relative to the folder with "/" between segments
// ("css/style.css"). Files are read when asked for, so an edit is served at
// once.
//
// No key reads outside the folder. Miniflare 2 joined the key to the folder
// and checked the result with a string prefix test, so "../site-secret/x"
// read a sibling folder whose name starts with the site folder's. Here a key
// must be a plain relative path ("", ".", ".." segments, backslashes and NUL
// are refused on every platform; drive letters, ":" and device names on
// Windows too), and the file it names, with symbolic links followed, must
// still be inside the folder (also followed): a link leading out of the
// folder is neither read nor listed.
import type { Dirent } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
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
} from "../../shared/storage.js";
import { compareKeys } from "../../storage/keys.js";
import { type KeyRange, type ListSource, type NamesResult, inRange, listKeys } from "../../storage/list.js";

const WINDOWS = process.platform === "win32";
// Names Windows opens as devices, whatever the folder or extension
const windowsDeviceName = /^(?:con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(?:\.|$)/i;

/** Whether `key` is a relative path that can only name something inside a folder */
export function isSitePath(key: string): boolean {
  if (key.includes("\\") || key.includes("\0")) return false;
  // Drive letters, alternate data streams
  if (WINDOWS && key.includes(":")) return false;
  for (const segment of key.split("/")) {
    if (segment === "" || segment === "." || segment === "..") return false;
    // Windows drops trailing dots and spaces ("..." and ".. " would be "..")
    if (WINDOWS && (segment.endsWith(".") || segment.endsWith(" ") || windowsDeviceName.test(segment))) {
      return false;
    }
  }
  return true;
}

/** Whether `file` is `dir` or inside it (both real, absolute paths) */
function isWithin(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative === "" || (relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

function isMissing(error: any): boolean {
  // ENOTDIR: a path through a file ("index.html/x"); ELOOP: a link cycle;
  // ENAMETOOLONG: no such file can exist
  const code = error?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP" || code === "ENAMETOOLONG";
}

/** A value of its own: a Buffer may share its memory with others */
function ownBytes(buffer: Buffer): Uint8Array {
  if (buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength) {
    return new Uint8Array(buffer.buffer, 0, buffer.byteLength);
  }
  return Uint8Array.prototype.slice.call(buffer);
}

export class SiteStorage extends Storage implements ListSource<unknown> {
  readonly #root: string;

  /** `root` is the site folder (it may not exist yet) */
  constructor(root: string) {
    super();
    this.#root = path.resolve(root);
  }

  /** The folder's real path, or undefined if it doesn't exist */
  async #realRoot(): Promise<string | undefined> {
    try {
      return await fs.realpath(this.#root);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** The real path of the regular file `key` names inside the folder, if any */
  async #file(key: string): Promise<string | undefined> {
    if (!isSitePath(key)) return undefined;
    const root = await this.#realRoot();
    if (root === undefined) return undefined;
    let file: string;
    try {
      file = await fs.realpath(path.join(root, ...key.split("/")));
      if (!isWithin(root, file) || file === root) return undefined;
      // Not a folder, nor a pipe or device, which could block a read forever
      if (!(await fs.stat(file)).isFile()) return undefined;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
    return file;
  }

  async #read(key: string): Promise<Uint8Array | undefined> {
    const file = await this.#file(key);
    if (file === undefined) return undefined;
    try {
      return ownBytes(await fs.readFile(file));
    } catch (e: any) {
      // Removed (or replaced by a folder) since it was found
      if (isMissing(e) || e?.code === "EISDIR") return undefined;
      throw e;
    }
  }

  async has(key: string): Promise<boolean> {
    return (await this.#file(key)) !== undefined;
  }

  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    return (await this.#file(key)) === undefined ? undefined : {};
  }

  async get<Meta = unknown>(key: string): Promise<StoredValueMeta<Meta> | undefined> {
    const value = await this.#read(key);
    return value === undefined ? undefined : { value };
  }

  async getRange<Meta = unknown>(
    key: string,
    range: RangeOptions = {},
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    const value = await this.#read(key);
    return value === undefined ? undefined : storedRange<Meta>({ value }, range, skipMetadata);
  }

  put(): Promise<void> {
    return Promise.reject(new TypeError("Unable to put into read-only namespace"));
  }

  delete(): Promise<boolean> {
    return Promise.reject(new TypeError("Unable to delete from read-only namespace"));
  }

  list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    return listKeys(this as ListSource<Meta>, options, skipMetadata);
  }

  /** Every file's key, in key order */
  async paths(): Promise<string[]> {
    const root = await this.#realRoot();
    if (root === undefined) return [];
    const found: string[] = [];
    await this.#walk(root, root, "", new Set([root]), found);
    return found.sort(compareKeys);
  }

  /**
   * Adds the keys of the files under `dir` (real path) to `found`. Links are
   * followed while they stay in the folder; `ancestors` (real paths) stops a
   * link back up the tree from looping.
   */
  async #walk(root: string, dir: string, prefix: string, ancestors: Set<string>, found: string[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (e) {
      // Removed while listing
      if (isMissing(e)) return;
      throw e;
    }
    for (const entry of entries) {
      const key = prefix + entry.name;
      // A name no key could read back (a backslash in a Linux file name)
      if (!isSitePath(key)) continue;
      let real = path.join(dir, entry.name);
      let isFile = entry.isFile();
      let isDirectory = entry.isDirectory();
      if (entry.isSymbolicLink()) {
        try {
          real = await fs.realpath(real);
          if (!isWithin(root, real)) continue;
          const stat = await fs.stat(real);
          isFile = stat.isFile();
          isDirectory = stat.isDirectory();
        } catch (e) {
          if (isMissing(e)) continue; // a dangling link
          throw e;
        }
      }
      if (isFile) {
        found.push(key);
      } else if (isDirectory && !ancestors.has(real)) {
        ancestors.add(real);
        await this.#walk(root, real, `${key}/`, ancestors, found);
        ancestors.delete(real);
      }
    }
  }

  /** @internal */
  async names(range: KeyRange, reverse: boolean): Promise<NamesResult> {
    const names = (await this.paths()).filter((name) => inRange(name, range));
    if (reverse) names.reverse();
    return { names, complete: true };
  }

  /** @internal */
  meta<Meta>(names: string[]): StoredKeyMeta<Meta>[] {
    // Files have no expiration or metadata (listed as undefined, as KV lists them)
    return names.map((name) => ({ name, expiration: undefined, metadata: undefined }));
  }
}
