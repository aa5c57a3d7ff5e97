// File-system storage: one file per entry in the namespace's directory.
//
// Unlike Miniflare 2's layout (key = relative path, metadata in a sidecar
// file written separately), this is built to never lose or mix up data:
// - A key maps to exactly one file name and back (see encodeName()), so
//   every key works on every file system: "a/b", "..", "con", "A" beside
//   "a", 512-byte keys, "a" beside "a/b", "x.meta.json". Nothing a key holds
//   can make a file land outside the namespace directory.
// - The value, expiration and metadata are one file, written to a temporary
//   file and renamed into place. A reader sees the old entry or the new one,
//   whole, even with concurrent writers or a process killed mid-write.
//
// Entry file: <value bytes><header JSON><u32le header length>"mfs1". The value
// comes first, so `cat` shows it. Files without the trailer (written by hand
// or by Miniflare 2 for plain keys) read as a bare value.
//
// Writes are durable when they resolve: the temporary file is fsync'ed
// before the rename, and the directory after it (and after an unlink), so
// an operating-system crash or power cut loses no acknowledged write.
// Concurrent writes share their directory flushes.
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { type Clock, defaultClock, millisToSeconds, randomHex } from "../shared/data.js";
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
import { FileStorageError } from "./errors.js";
import { compareKeys, decodeKey, encodeKey } from "./keys.js";
import { type KeyRange, type ListSource, type NamesResult, inRange, listKeys } from "./list.js";

const MAGIC = Buffer.from("mfs1");
const TRAILER_SIZE = 8; /* u32 header length + magic */
const HEADER_READ_SIZE = 4096; /* 4KiB, enough for a typical header */
// File names stay well under the 255-byte limit of common file systems
const MAX_NAME_LENGTH = 200;
const HASHED_PREFIX_LENGTH = 160;
const STALE_TEMP_AGE = 10 * 60 * 1000; /* 10 minutes */
const META_CONCURRENCY = 64;

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, "0"));
const literalByte = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyz0123456789-_.") literalByte[c.charCodeAt(0)] = 1;
const plainName = /^[a-z0-9_-][a-z0-9_.-]*$/;
// Device names Windows reserves, with or without an extension
const reservedName = /^(?:con|prn|aux|nul|com\d|lpt\d)(?:\.|$)/;

/**
 * The file name of a key: lower-case letters, digits, "-", "_" and "."
 * stand for themselves; every other byte of the key's UTF-8 (WTF-8) form is
 * "%XX" with upper-case hex. Letters are never upper-case outside escapes,
 * so names differ even on case-insensitive file systems. A leading or
 * trailing "." and Windows device names are escaped too, so names never
 * start with "." (temporary files do). A name that would be too long is cut
 * and ends with "~" and a hash of the key; its key is read from the file.
 */
export function encodeName(key: string): string {
  let name: string;
  if (plainName.test(key) && !key.endsWith(".")) {
    name = key;
  } else {
    const bytes = encodeKey(key);
    name = "";
    for (const byte of bytes) {
      name += literalByte[byte] ? String.fromCharCode(byte) : `%${hex[byte]}`;
    }
    if (name.startsWith(".")) name = `%2E${name.substring(1)}`;
    if (name.endsWith(".")) name = `${name.substring(0, name.length - 1)}%2E`;
    if (name === "") return `~${hashKey(key)}`;
  }
  if (reservedName.test(name)) name = `%${hex[name.charCodeAt(0)]}${name.substring(1)}`;
  if (name.length > MAX_NAME_LENGTH) {
    let cut = HASHED_PREFIX_LENGTH;
    // Don't split an escape
    if (name[cut - 1] === "%") cut -= 1;
    else if (name[cut - 2] === "%") cut -= 2;
    name = `${name.substring(0, cut)}~${hashKey(key)}`;
  }
  return name;
}

function hashKey(key: string): string {
  return createHash("sha256").update(encodeKey(key)).digest("hex").substring(0, 32);
}

/** The key of a file name, or undefined if it must be read from the file */
export function decodeName(name: string): string | undefined {
  if (name.includes("~")) return undefined;
  if (!name.includes("%")) return name;
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "%") {
      bytes.push(parseInt(name.substring(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(name.charCodeAt(i));
    }
  }
  return decodeKey(Uint8Array.from(bytes));
}

interface Header {
  key: string;
  expiration?: number;
  metadata?: unknown;
}

interface Entry {
  header: Header;
  value: Uint8Array;
}

function encodeEntry(key: string, { value, expiration, metadata }: StoredValueMeta): Uint8Array[] {
  const header = Buffer.from(JSON.stringify({ key, expiration, metadata }));
  const trailer = Buffer.alloc(TRAILER_SIZE);
  trailer.writeUInt32LE(header.byteLength, 0);
  MAGIC.copy(trailer, 4);
  return [value, header, trailer];
}

/** The header length from the last bytes of a file, if it has our trailer */
function trailerHeaderLength(tail: Uint8Array, fileSize: number): number | undefined {
  if (tail.byteLength < TRAILER_SIZE) return undefined;
  const at = tail.byteLength - TRAILER_SIZE;
  for (let i = 0; i < 4; i++) if (tail[at + 4 + i] !== MAGIC[i]) return undefined;
  const length = Buffer.from(tail.buffer, tail.byteOffset + at, 4).readUInt32LE(0);
  return length + TRAILER_SIZE <= fileSize ? length : undefined;
}

function decodeEntry(data: Buffer, name: string): Entry {
  const headerLength = trailerHeaderLength(data, data.byteLength);
  if (headerLength === undefined) {
    return { header: { key: decodeName(name) ?? name }, value: data };
  }
  const valueLength = data.byteLength - TRAILER_SIZE - headerLength;
  const header = JSON.parse(
    data.toString("utf8", valueLength, valueLength + headerLength)
  ) as Header;
  return { header, value: data.subarray(0, valueLength) };
}

function isMissing(error: any): boolean {
  // EISDIR: a nested namespace's directory, never an entry
  return error?.code === "ENOENT" || error?.code === "ENOTDIR" || error?.code === "EISDIR";
}

let tempCounter = 0;

/** Runs `fn` over `items` with at most `limit` at a time */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// Windows can't open a directory to flush it: there, how durable a rename is
// when it returns is up to the file system
const canSyncDirectories = process.platform !== "win32";

// Errors of file systems that can't flush a directory (SMB/CIFS, some FUSE
// and WSL mounts): there, the rename is as durable as it gets
const CANNOT_SYNC_DIRECTORY = new Set(["EINVAL", "ENOTSUP", "EOPNOTSUPP", "EISDIR", "EPERM", "EACCES"]);

/**
 * Flushes a directory's entries (new, renamed and removed names) to disk
 * @internal
 */
export async function syncDirectory(dir: string): Promise<void> {
  if (!canSyncDirectories) return;
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } catch (e: any) {
    if (!CANNOT_SYNC_DIRECTORY.has(e?.code)) throw e;
  } finally {
    await handle.close();
  }
}

/**
 * Directories being created and flushed into their parents, by path, so a
 * writer that finds one already there waits until it's durable
 */
const creating = new Map<string, Promise<void>>();

export class FileStorage extends Storage implements ListSource<unknown> {
  readonly #root: string;
  readonly #clock: Clock;
  #tempSwept = false;
  /** The directory flush under way, and the one queued behind it */
  #rootSync?: Promise<void>;
  #nextRootSync?: Promise<void>;

  /** `root` is the namespace's directory, created on the first write */
  constructor(root: string, clock: Clock = defaultClock) {
    super();
    this.#root = path.resolve(root);
    this.#clock = clock;
  }

  #path(key: string): string {
    const name = encodeName(key);
    // encodeName() never produces these; checked so no bug can ever escape
    if (name.includes("/") || name.includes("\\") || name === "." || name === "..") {
      throw new FileStorageError(
        "ERR_TRAVERSAL",
        "Cannot store values outside of storage root directory"
      );
    }
    return path.join(this.#root, name);
  }

  #expired(header: Header): boolean {
    return header.expiration !== undefined && header.expiration <= millisToSeconds(this.#clock());
  }

  /** Errors must not show where data lives on the host */
  #hidePaths(error: any): Error {
    if (!(error instanceof Error) || error instanceof FileStorageError) return error;
    const message = error.message.split(this.#root).join("<storage>");
    const hidden = new Error(message);
    Object.assign(hidden, { code: (error as any).code });
    return hidden;
  }

  async #readEntry(file: string): Promise<Entry | undefined> {
    let data: Buffer;
    try {
      data = await fs.readFile(file);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.#hidePaths(e);
    }
    const entry = decodeEntry(data, path.basename(file));
    if (this.#expired(entry.header)) {
      await this.#removeExpired(file);
      return undefined;
    }
    return entry;
  }

  /** Reads only an entry's header (a file's last few KiB) */
  async #readHeader(file: string): Promise<Header | undefined> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "r");
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.#hidePaths(e);
    }
    let header: Header;
    try {
      const { size } = await handle.stat();
      const tailSize = Math.min(size, HEADER_READ_SIZE);
      let tail = Buffer.alloc(tailSize);
      await handle.read(tail, 0, tailSize, size - tailSize);
      const headerLength = trailerHeaderLength(tail, size);
      if (headerLength === undefined) {
        header = { key: decodeName(path.basename(file)) ?? path.basename(file) };
      } else {
        if (headerLength + TRAILER_SIZE > tailSize) {
          tail = Buffer.alloc(headerLength + TRAILER_SIZE);
          await handle.read(tail, 0, tail.byteLength, size - tail.byteLength);
        }
        const start = tail.byteLength - TRAILER_SIZE - headerLength;
        header = JSON.parse(tail.toString("utf8", start, start + headerLength));
      }
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.#hidePaths(e);
    } finally {
      await handle.close();
    }
    if (this.#expired(header)) {
      await this.#removeExpired(file);
      return undefined;
    }
    return header;
  }

  /**
   * Deletes an expired entry, without deleting a fresh one another writer
   * put there since it was read: the file is moved aside and checked first.
   */
  async #removeExpired(file: string): Promise<void> {
    const aside = path.join(this.#root, `.expired-${process.pid}-${++tempCounter}-${randomHex()}`);
    try {
      await fs.rename(file, aside);
    } catch {
      return; // already gone
    }
    try {
      const data = await fs.readFile(aside);
      if (!this.#expired(decodeEntry(data, path.basename(file)).header)) {
        // Put back, unless yet another write has landed since, durably
        await fs.link(aside, file).catch(() => {});
        await this.#syncRoot();
      }
    } finally {
      await fs.rm(aside, { force: true });
    }
  }

  /**
   * Flushes the namespace directory. A caller must get a flush that starts
   * after its own rename or unlink: one already under way may have missed
   * it, so callers arriving then share the next one.
   */
  #syncRoot(): Promise<void> {
    if (this.#rootSync === undefined) {
      const sync = syncDirectory(this.#root)
        .catch((e) => {
          throw this.#hidePaths(e);
        })
        .finally(() => {
          if (this.#rootSync === sync) this.#rootSync = undefined;
        });
      this.#rootSync = sync;
      return sync;
    }
    if (this.#nextRootSync === undefined) {
      const next = this.#rootSync
        .catch(() => {})
        .then(() => {
          this.#nextRootSync = undefined;
          return this.#syncRoot();
        });
      this.#nextRootSync = next;
    }
    return this.#nextRootSync;
  }

  /** Resolves once no writer here is still flushing this folder (or a parent) into place */
  async #folderDurable(): Promise<void> {
    if (creating.size === 0) return;
    for (let dir = this.#root; ; dir = path.dirname(dir)) {
      await creating.get(dir)?.catch(() => {});
      if (path.dirname(dir) === dir) return;
    }
  }

  /** Creates the namespace directory, durably: each new directory's parent learns its name */
  async #createRoot(): Promise<void> {
    // The topmost directory that didn't exist yet, if any
    const first = await fs.mkdir(this.#root, { recursive: true });
    // Made by another writer: wait until it (and its parents) are flushed
    if (first === undefined) return this.#folderDurable();
    const created: string[] = [];
    for (let dir = this.#root; ; dir = path.dirname(dir)) {
      created.push(dir);
      if (dir === first || path.dirname(dir) === dir) break;
    }
    const flushed = (async () => {
      for (const dir of created) await syncDirectory(path.dirname(dir));
    })();
    for (const dir of created) creating.set(dir, flushed);
    try {
      await flushed;
    } finally {
      for (const dir of created) if (creating.get(dir) === flushed) creating.delete(dir);
    }
  }

  async #write(file: string, chunks: Uint8Array[], syncRoot = true): Promise<void> {
    const temp = path.join(this.#root, `.tmp-${process.pid}-${++tempCounter}-${randomHex()}`);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(temp, "wx");
    } catch (e: any) {
      if (e?.code !== "ENOENT") throw this.#hidePaths(e);
      await this.#createRoot().catch((e) => {
        throw this.#hidePaths(e);
      });
      handle = await fs.open(temp, "wx").catch((e) => {
        throw this.#hidePaths(e);
      });
    }
    try {
      try {
        for (const chunk of chunks) {
          let written = 0;
          while (written < chunk.byteLength) {
            const { bytesWritten } = await handle.write(chunk, written);
            written += bytesWritten;
          }
        }
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, file);
    } catch (e) {
      await fs.rm(temp, { force: true });
      throw this.#hidePaths(e);
    }
    if (syncRoot) await this.#syncRoot();
    // The folder may have been made a moment ago by another writer, whose
    // flush of it into its parent isn't done yet
    await this.#folderDurable();
  }

  async has(key: string): Promise<boolean> {
    return (await this.#readHeader(this.#path(key))) !== undefined;
  }

  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    const header = await this.#readHeader(this.#path(key));
    if (header === undefined) return undefined;
    return { expiration: header.expiration, metadata: header.metadata as Meta };
  }

  async get<Meta = unknown>(
    key: string,
    skipMetadata?: boolean
  ): Promise<StoredValueMeta<Meta> | undefined> {
    const entry = await this.#readEntry(this.#path(key));
    if (entry === undefined) return undefined;
    if (skipMetadata) return { value: entry.value };
    const { expiration, metadata } = entry.header;
    return { value: entry.value, expiration, metadata: metadata as Meta };
  }

  async getRange<Meta = unknown>(
    key: string,
    range: RangeOptions = {},
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    const entry = await this.#readEntry(this.#path(key));
    if (entry === undefined) return undefined;
    const { expiration, metadata } = entry.header;
    return storedRange({ value: entry.value, expiration, metadata: metadata as Meta }, range, skipMetadata);
  }

  async put<Meta = unknown>(key: string, value: StoredValueMeta<Meta>): Promise<void> {
    const file = this.#path(key);
    await this.#write(file, encodeEntry(key, value));
  }

  async putMany<Meta = unknown>(data: [key: string, value: StoredValueMeta<Meta>][]): Promise<void> {
    // Encode every entry before writing any, so a bad one writes nothing
    const entries = data.map(([key, value]) => [this.#path(key), encodeEntry(key, value)] as const);
    await Promise.all(entries.map(([file, chunks]) => this.#write(file, chunks, false)));
    if (entries.length > 0) await this.#syncRoot();
  }

  async delete(key: string): Promise<boolean> {
    const file = this.#path(key);
    const header = await this.#readHeader(file);
    if (header === undefined) return false;
    try {
      await fs.unlink(file);
    } catch (e) {
      // Another delete got there first: only one of them deleted it
      if (isMissing(e)) return false;
      throw this.#hidePaths(e);
    }
    await this.#syncRoot();
    return true;
  }

  list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    return listKeys(this as ListSource<Meta>, options, skipMetadata);
  }

  /** Removes temporary files left behind by killed processes */
  async #sweepTemp(names: string[]): Promise<void> {
    this.#tempSwept = true;
    const now = Date.now();
    for (const name of names) {
      if (!name.startsWith(".tmp-") && !name.startsWith(".expired-")) continue;
      const file = path.join(this.#root, name);
      try {
        const { mtimeMs } = await fs.stat(file);
        if (now - mtimeMs > STALE_TEMP_AGE) await fs.rm(file, { force: true });
      } catch {
        // Someone else got there first
      }
    }
  }

  /** @internal */
  async names(range: KeyRange, reverse: boolean): Promise<NamesResult> {
    let dirents;
    try {
      dirents = await fs.readdir(this.#root, { withFileTypes: true });
    } catch (e) {
      if (isMissing(e)) return { names: [], complete: true };
      throw this.#hidePaths(e);
    }
    if (!this.#tempSwept) await this.#sweepTemp(dirents.map((dirent) => dirent.name));
    const names: string[] = [];
    const unnamed: string[] = [];
    for (const dirent of dirents) {
      if (!dirent.isFile() || dirent.name.startsWith(".")) continue;
      const name = decodeName(dirent.name);
      if (name === undefined) unnamed.push(dirent.name);
      // Files not named by encodeName() aren't entries (get() couldn't find them)
      else if (encodeName(name) === dirent.name && inRange(name, range)) names.push(name);
    }
    // Long keys are named in their files
    const headers = await mapLimit(unnamed, META_CONCURRENCY, (file) =>
      this.#readHeader(path.join(this.#root, file))
    );
    for (let i = 0; i < unnamed.length; i++) {
      const header = headers[i];
      if (header === undefined || encodeName(header.key) !== unnamed[i]) continue;
      if (inRange(header.key, range)) names.push(header.key);
    }
    names.sort(compareKeys);
    if (reverse) names.reverse();
    return { names, complete: true };
  }

  /** @internal */
  async meta<Meta>(names: string[], skipMetadata: boolean): Promise<(StoredKeyMeta<Meta> | undefined)[]> {
    return mapLimit(names, META_CONCURRENCY, async (name) => {
      const header = await this.#readHeader(this.#path(name));
      if (header === undefined) return undefined;
      return {
        name,
        expiration: header.expiration,
        metadata: skipMetadata ? undefined : (header.metadata as Meta),
      };
    });
  }
}
