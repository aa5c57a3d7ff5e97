// Carries data persisted to files by Miniflare 2 (or by this package before
// its namespaces moved into LAYOUT_FOLDER) into the current layout, once.
// How the old folders are read is in miniflare2.ts; they are never written.
//
// For each namespace found in an old folder without a marker in its new
// folder: every entry not expired and not already in the new layout is
// written to it, then the marker. A namespace with a marker is never
// migrated again, so a key deleted since stays deleted. The marker is only
// written once every entry is durably in: a crash (or a failed write) before
// it leaves none, and the next start finishes the job, keeping what was
// written. A failed write fails the start rather than letting the worker run
// on part of the data; a file that can't be read is warned about, and its
// namespace is tried again on the next start.
import fs from "node:fs/promises";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { type Clock, defaultClock, millisToSeconds, randomHex } from "../shared/data.js";
import type { Log } from "../shared/log.js";
import type { Storage, StorageFactory, StoredValueMeta } from "../shared/storage.js";
import { FileStorageError } from "./errors.js";
import { fileNamespaceDirectory, LAYOUT_FOLDER } from "./factory.js";
import { FileStorage, syncDirectory } from "./file.js";
import {
  type FoundNamespace,
  type OldEntry,
  readOldNamespace,
  readOldValue,
  type Warn,
} from "./miniflare2.js";

/** In a namespace's new folder: its old data has been migrated */
export const MIGRATED_MARKER = ".miniflare2-migrated";
const BATCH_ENTRIES = 64;
const BATCH_BYTES = 16 * 1024 * 1024; /* 16MiB */

/** How a plugin's namespaces sat in a Miniflare 2 persist folder */
export interface Miniflare2Layout {
  /** What the data is called in messages: "KV", "Durable Object" */
  what: string;
  /** What one namespace is called: ["namespace", "namespaces"] */
  unit: [singular: string, plural: string];
  /** Keys the plugin keeps for itself, not counted as the user's */
  hiddenKeys?: ReadonlySet<string>;
  /** The namespaces in an old folder (only reads it) */
  findNamespaces(folder: string): Promise<FoundNamespace[]>;
}

export interface MigrationResult {
  /** The user's keys written (or found written by an interrupted migration) */
  keys: number;
  /** Namespaces with anything migrated */
  namespaces: number;
  /** Entries of namespaces with a `tally`, by its singular name */
  tallies: Map<string, { unit: [string, string]; count: number }>;
  /** Entries kept as the new layout already had them, differently */
  present: number;
  /** Entries left out as they had expired */
  expired: number;
  /** Namespaces left unmarked, to retry, as a file couldn't be read */
  incomplete: number;
}

export interface MigrateOptions {
  layout: Miniflare2Layout;
  /** The persist folder the plugin now uses */
  persist: string;
  /** Old folders, in the order to read them (a key in several: the newest file wins) */
  sources: string[];
  log: Log;
  /** The current time, in milliseconds since the epoch, to tell what has expired */
  clock?: Clock;
}

interface PendingNamespace {
  namespace: string;
  dirs: { dir: string; source: string }[];
  tally?: [string, string];
}

/** Migrations under way in this process, by persist folder and layout */
const running = new Map<string, Promise<unknown>>();

/**
 * Migrates a plugin's old file-persisted data into `persist`, once per
 * namespace, logging what moved. Storage that isn't files (memory, Redis)
 * has nothing to migrate. Instances of one process sharing the folder take
 * turns; other processes are kept out by the folder's lock.
 */
export async function migrateMiniflare2(
  storageFactory: StorageFactory,
  options: MigrateOptions
): Promise<MigrationResult | undefined> {
  const key = `${path.resolve(options.persist)}\0${options.layout.what}`;
  const previous = running.get(key) ?? Promise.resolve();
  const migration = previous.catch(() => {}).then(() => migrate(storageFactory, options));
  running.set(key, migration);
  try {
    return await migration;
  } finally {
    if (running.get(key) === migration) running.delete(key);
  }
}

/** Namespaces in the old folders, with every old folder holding part of each */
async function findOld(layout: Miniflare2Layout, sources: string[]): Promise<PendingNamespace[]> {
  const found = new Map<string, PendingNamespace>();
  for (let source of sources) {
    source = path.resolve(source);
    for (const { namespace, dir, tally } of await layout.findNamespaces(source)) {
      const existing = found.get(namespace);
      if (existing) existing.dirs.push({ dir, source });
      else found.set(namespace, { namespace, dirs: [{ dir, source }], tally });
    }
  }
  return [...found.values()];
}

function markerPath(persist: string, namespace: string): string {
  return path.join(fileNamespaceDirectory(persist, namespace), MIGRATED_MARKER);
}

async function unmarked(persist: string, namespaces: PendingNamespace[]): Promise<PendingNamespace[]> {
  const pending: PendingNamespace[] = [];
  for (const found of namespaces) {
    const marker = markerPath(persist, found.namespace);
    if (!(await fs.access(marker).then(() => true, () => false))) pending.push(found);
  }
  return pending;
}

async function migrate(storageFactory: StorageFactory, options: MigrateOptions): Promise<MigrationResult | undefined> {
  const persist = path.resolve(options.persist);
  let pending = await unmarked(persist, await findOld(options.layout, options.sources));
  if (pending.length === 0) return undefined;
  // Opening a storage takes the folder's lock, so no other process migrates
  // (or has migrated) between the markers' check below and their writing. A
  // storage that isn't files (a factory given by a test) has no old data.
  if (!(storageFactory.storage(pending[0].namespace, persist) instanceof FileStorage)) return undefined;
  pending = await unmarked(persist, pending);

  const result: MigrationResult = { keys: 0, namespaces: 0, tallies: new Map(), present: 0, expired: 0, incomplete: 0 };
  const from = new Set<string>();
  for (const found of pending) {
    const storage = storageFactory.storage(found.namespace, persist);
    const { migrated, hidden, complete } = await migrateNamespace(storage, found, options, result, from);
    if (found.tally !== undefined) {
      const [singular] = found.tally;
      const tally = result.tallies.get(singular) ?? { unit: found.tally, count: 0 };
      tally.count += migrated;
      result.tallies.set(singular, tally);
    } else if (migrated + hidden > 0) {
      result.keys += migrated;
      result.namespaces++;
    }
    if (complete) {
      // Only once every entry is durably written
      const marker = { from: found.dirs.map(({ dir }) => dir), keys: migrated, migratedAt: new Date().toISOString() };
      await writeDurably(markerPath(persist, found.namespace), JSON.stringify(marker) + "\n");
    } else {
      result.incomplete++;
    }
  }
  logResult(options, result, [...from]);
  return result;
}

/** Reads a namespace's old folders: of several files with one key, the newest wins */
async function readOld(found: PendingNamespace, warn: Warn) {
  const entries = new Map<string, OldEntry & { source: string }>();
  let complete = true;
  for (const { dir, source } of found.dirs) {
    const old = await readOldNamespace(dir, warn);
    complete &&= old.complete;
    for (const entry of old.entries) {
      const other = entries.get(entry.key);
      if (other === undefined || entry.mtimeMs > other.mtimeMs) entries.set(entry.key, { ...entry, source });
    }
  }
  return { entries: [...entries.values()], complete };
}

/** Whether the new layout's entry is the old one, written by a migration that was cut short */
function sameEntry(present: StoredValueMeta, value: Uint8Array, entry: OldEntry): boolean {
  return (
    Buffer.from(present.value.buffer, present.value.byteOffset, present.value.byteLength).equals(value) &&
    present.expiration === entry.expiration &&
    isDeepStrictEqual(present.metadata, entry.metadata)
  );
}

async function migrateNamespace(
  storage: Storage,
  found: PendingNamespace,
  { layout, log, clock = defaultClock }: MigrateOptions,
  result: MigrationResult,
  from: Set<string>
): Promise<{ migrated: number; hidden: number; complete: boolean }> {
  const what = `${layout.what} ${found.tally?.[0] ?? layout.unit[0]} "${found.namespace}"`;
  const warn: Warn = (message) => log.warn(`Couldn't fully migrate ${what} from Miniflare 2: ${message}`);
  const { entries, complete: readAll } = await readOld(found, warn);
  let complete = readAll;
  const now = millisToSeconds(clock());
  const counts = { migrated: 0, hidden: 0 };
  const batch = new Batch(storage, what);
  for (const entry of entries) {
    if (entry.expiration !== undefined && entry.expiration <= now) {
      result.expired++;
      continue;
    }
    let value: Uint8Array;
    try {
      value = await readOldValue(entry);
    } catch (e: any) {
      warn(`key "${entry.key}" (${entry.file}) couldn't be read: ${e?.message ?? e}`);
      complete = false;
      continue;
    }
    // Never overwrite what the new layout already has
    const present = await storage.get(entry.key);
    if (present !== undefined && !sameEntry(present, value, entry)) {
      result.present++;
      continue;
    }
    if (present === undefined) {
      await batch.add(entry.key, { value, expiration: entry.expiration, metadata: entry.metadata });
    }
    if (layout.hiddenKeys?.has(entry.key)) counts.hidden++;
    else counts.migrated++;
    from.add(entry.source);
  }
  await batch.flush();
  if (!complete) warn("it will be tried again on the next start, keeping what was migrated");
  return { ...counts, complete };
}

/** Writes entries a few at a time; a failed write fails the migration */
class Batch {
  readonly #storage: Storage;
  readonly #what: string;
  #entries: [string, StoredValueMeta][] = [];
  #bytes = 0;

  constructor(storage: Storage, what: string) {
    this.#storage = storage;
    this.#what = what;
  }

  async add(key: string, entry: StoredValueMeta): Promise<void> {
    this.#entries.push([key, entry]);
    this.#bytes += entry.value.byteLength;
    if (this.#entries.length >= BATCH_ENTRIES || this.#bytes >= BATCH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    const entries = this.#entries;
    this.#entries = [];
    this.#bytes = 0;
    if (entries.length === 0) return;
    try {
      await this.#storage.putMany(entries);
    } catch (e: any) {
      throw new FileStorageError(
        "ERR_MIGRATION",
        `Couldn't migrate ${this.#what} from Miniflare 2: ${e?.message ?? e}\n` +
          "Its old files are untouched, and the next start carries on where this one stopped.",
        e instanceof Error ? e : undefined
      );
    }
  }
}

/** Writes a file atomically and durably (temporary file, flush, rename, flush the folder) */
async function writeDurably(file: string, contents: string): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.tmp-${process.pid}-${randomHex()}`);
  const handle = await fs.open(temp, "wx");
  try {
    await handle.writeFile(contents);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, file);
  } catch (e) {
    await fs.rm(temp, { force: true });
    throw e;
  }
  await syncDirectory(dir);
}

/** A folder as the log shows it: relative to the working directory when inside it */
function displayPath(dir: string): string {
  const relative = path.relative("", dir);
  if (relative === "") return ".";
  return relative.startsWith("..") || path.isAbsolute(relative) ? dir : relative;
}

function plural(count: number, [singular, pluralForm]: [string, string]): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

function logResult({ layout, persist, log }: MigrateOptions, result: MigrationResult, from: string[]): void {
  const to = displayPath(path.join(path.resolve(persist), LAYOUT_FOLDER));
  const notes: string[] = [];
  if (result.present > 0) {
    const they = result.present === 1 ? "it was" : "they were";
    notes.push(`${plural(result.present, ["key", "keys"])} already in ${to} kept as ${they}`);
  }
  if (result.expired > 0) notes.push(`${plural(result.expired, ["expired key", "expired keys"])} left out`);
  const moved: string[] = [];
  if (result.namespaces > 0) {
    const keys = plural(result.keys, [`${layout.what} key`, `${layout.what} keys`]);
    moved.push(`${keys} in ${plural(result.namespaces, layout.unit)}`);
  }
  for (const { unit, count } of result.tallies.values()) if (count > 0) moved.push(plural(count, unit));
  if (moved.length === 0) {
    if (notes.length > 0) log.debug(`Nothing to migrate from Miniflare 2's ${layout.what} data: ${notes.join(", ")}`);
    return;
  }
  const folders = from.map((dir) => displayPath(dir)).join(" and ");
  const note = notes.length > 0 ? `; ${notes.join(", ")}` : "";
  log.info(`Migrated ${moved.join(" and ")} from Miniflare 2's ${folders} to ${to} (old files left in place${note})`);
}
