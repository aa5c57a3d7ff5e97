// Carries data persisted to files by Miniflare 2 (or by this package before
// its namespaces moved into LAYOUT_FOLDER) into the current layout, once.
//
// Miniflare 2's folder: <persist>/<namespace>/<key as a path>, the value's
// raw bytes; "/", "\", ":" and "|" in a key made folders, and a key changed
// to make a path (or with an expiration or metadata) got a sidecar
// <file>.meta.json holding {key, expiration, metadata}. Files this package
// wrote there before LAYOUT_FOLDER end in its entry trailer, and are read too.
//
// The old files are only ever read. For each namespace found there, every
// entry not yet expired and not already in the new layout is written to it,
// then a marker file is written in the namespace's new folder. A namespace
// with a marker is never migrated again: a key deleted since stays deleted.
// A crash (or a failed write) before the marker leaves no marker, so the next
// start finishes the job, keeping what was written, and a failed write fails
// the start rather than letting the worker run on part of the data.
import fs from "node:fs/promises";
import path from "node:path";
import { millisToSeconds, randomHex } from "../shared/data.js";
import type { Log } from "../shared/log.js";
import type { StorageFactory, StoredValueMeta } from "../shared/storage.js";
import { fileNamespaceDirectory, LAYOUT_FOLDER } from "./factory.js";
import { encodeName, FileStorage } from "./file.js";

/** In a namespace's new folder: its old data has been migrated */
export const MIGRATED_MARKER = ".miniflare2-migrated";
const META_SUFFIX = ".meta.json";
const MAGIC = "mfs1";
const TRAILER_SIZE = 8; /* u32le header length + magic */
// Miniflare 2 cut a key's path to 255 UTF-16 code units
const MINIFLARE2_MAX_PATH = 255;
const MAX_DEPTH = 64;
const BATCH_ENTRIES = 64;
const BATCH_BYTES = 16 * 1024 * 1024; /* 16MiB */

/** One namespace found in an old folder */
export interface FoundNamespace {
  namespace: string;
  dir: string;
  /** Whether it counts in the log line (not an internal store) */
  counted: boolean;
}

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
  keys: number;
  namespaces: number;
  /** Entries kept because the new layout already had their key */
  present: number;
  expired: number;
}

/** Folders of a directory, skipping hidden ones and the new layout's */
export async function subfolders(dir: string): Promise<string[]> {
  const dirents = await readdirOrEmpty(dir);
  const names: string[] = [];
  for (const dirent of dirents) {
    if (dirent.name.startsWith(".") || dirent.name === LAYOUT_FOLDER) continue;
    if (await isDirectory(dir, dirent)) names.push(dirent.name);
  }
  return names.sort();
}

/** Every folder straight under `folder` is a namespace of that name (KV's layout) */
export async function topLevelNamespaces(folder: string): Promise<FoundNamespace[]> {
  return (await subfolders(folder)).map((name) => ({
    namespace: name,
    dir: path.join(folder, name),
    counted: true,
  }));
}

async function readdirOrEmpty(dir: string) {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (e: any) {
    if (e?.code === "ENOENT" || e?.code === "ENOTDIR") return [];
    throw e;
  }
}

async function isDirectory(dir: string, dirent: { name: string; isDirectory(): boolean; isSymbolicLink(): boolean }) {
  if (dirent.isDirectory()) return true;
  if (!dirent.isSymbolicLink()) return false;
  return (await fs.stat(path.join(dir, dirent.name)).catch(() => undefined))?.isDirectory() ?? false;
}

/** An old entry, before its value is read */
interface OldEntry {
  key: string;
  file: string;
  mtimeMs: number;
  expiration?: number;
  metadata?: unknown;
  /** Written by this package (value, header, trailer) rather than by Miniflare 2 */
  trailer: boolean;
}

interface Sidecar {
  key?: unknown;
  expiration?: unknown;
  metadata?: unknown;
}

function parseSidecar(text: string): Sidecar | undefined {
  try {
    const parsed = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
  } catch {}
  return undefined;
}

/** An entry file of this package: value, JSON header, u32le header length, "mfs1" */
function decodeTrailer(data: Buffer): { header: Sidecar; valueLength: number } | undefined {
  if (data.byteLength < TRAILER_SIZE) return undefined;
  if (data.toString("latin1", data.byteLength - 4) !== MAGIC) return undefined;
  const headerLength = data.readUInt32LE(data.byteLength - TRAILER_SIZE);
  const valueLength = data.byteLength - TRAILER_SIZE - headerLength;
  if (valueLength < 0) return undefined;
  const header = parseSidecar(data.toString("utf8", valueLength, valueLength + headerLength));
  if (typeof header?.key !== "string") return undefined;
  return { header, valueLength };
}

/** Temporary files this package's storage leaves while writing */
const tempFile = /^\.(?:tmp|expired)-/;

type Warn = (message: string) => void;

/** The entries in an old namespace folder (keys as Miniflare 2 listed them) */
async function readOldNamespace(dir: string, warn: Warn): Promise<OldEntry[]> {
  const entries: OldEntry[] = [];
  const walk = async (folder: string, rel: string[]): Promise<void> => {
    const files = new Set<string>();
    for (const dirent of await readdirOrEmpty(folder)) {
      if (rel.length === 0 && tempFile.test(dirent.name)) continue;
      if (await isDirectory(folder, dirent)) {
        if (rel.length < MAX_DEPTH) await walk(path.join(folder, dirent.name), [...rel, dirent.name]);
      } else {
        files.add(dirent.name);
      }
    }
    for (const name of [...files].sort()) {
      const file = path.join(folder, name);
      const pathKey = [...rel, name].join("/");
      try {
        const entry = await readOldEntry(file, name, pathKey, rel.length === 0, files, warn);
        if (entry !== undefined) entries.push(entry);
      } catch (e: any) {
        warn(`key "${pathKey}" (${file}) could not be read: ${e?.message ?? e}`);
      }
    }
  };
  await walk(dir, []);
  return entries;
}

async function readOldEntry(
  file: string,
  name: string,
  pathKey: string,
  topLevel: boolean,
  siblings: Set<string>,
  warn: Warn
): Promise<OldEntry | undefined> {
  let sidecarFile: string | undefined;
  if (name.endsWith(META_SUFFIX)) {
    // The sidecar of the file beside it, read with that file
    if (siblings.has(name.substring(0, name.length - META_SUFFIX.length))) return undefined;
    // A sidecar whose value is gone (a delete Miniflare 2 didn't finish)
    if (parseSidecar(await fs.readFile(file, "utf8")) !== undefined) return undefined;
    // Otherwise a key ending in ".meta.json", which Miniflare 2 could get() but not list()
  } else if (siblings.has(name + META_SUFFIX)) {
    sidecarFile = file + META_SUFFIX;
  }
  const { mtimeMs } = await fs.stat(file);
  if (topLevel && sidecarFile === undefined) {
    const decoded = decodeTrailer(await fs.readFile(file));
    if (decoded !== undefined && encodeName(decoded.header.key as string) === name) {
      const { key, expiration, metadata } = decoded.header;
      return {
        key: key as string,
        file,
        mtimeMs,
        expiration: typeof expiration === "number" ? expiration : undefined,
        metadata,
        trailer: true,
      };
    }
  }
  let sidecar: Sidecar | undefined;
  if (sidecarFile !== undefined) {
    sidecar = parseSidecar(await fs.readFile(sidecarFile, "utf8"));
    if (sidecar === undefined) {
      warn(`key "${pathKey}" (${file}): its ${META_SUFFIX} file isn't JSON, so its metadata and expiration are lost; migrated without them`);
    }
  }
  const key = typeof sidecar?.key === "string" ? sidecar.key : pathKey;
  if (sidecar === undefined && pathKey.length >= MINIFLARE2_MAX_PATH) {
    warn(`key "${pathKey}" (${file}) may be a longer key Miniflare 2 cut to ${MINIFLARE2_MAX_PATH} characters; migrated as "${pathKey}"`);
  }
  return {
    key,
    file,
    mtimeMs,
    expiration: typeof sidecar?.expiration === "number" ? sidecar.expiration : undefined,
    metadata: sidecar?.metadata,
    trailer: false,
  };
}

async function readValue(entry: OldEntry): Promise<Uint8Array> {
  const data = await fs.readFile(entry.file);
  if (!entry.trailer) return data;
  return data.subarray(0, decodeTrailer(data)!.valueLength);
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
  if (process.platform === "win32") return;
  const folder = await fs.open(dir, "r");
  try {
    await folder.sync();
  } catch {
    // Some file systems can't flush a folder: the rename is as durable as it gets
  } finally {
    await folder.close();
  }
}

function displayPath(dir: string): string {
  return path.relative("", dir) || ".";
}

function plural(count: number, [singular, pluralForm]: [string, string]): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

export interface MigrateOptions {
  layout: Miniflare2Layout;
  /** The persist folder the plugin now uses */
  persist: string;
  /** Old folders, in the order to read them (a key in several: the newest file wins) */
  sources: string[];
  log: Log;
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

async function migrate(
  storageFactory: StorageFactory,
  { layout, persist, sources, log }: MigrateOptions
): Promise<MigrationResult | undefined> {
  persist = path.resolve(persist);
  // Namespaces by name, with every old folder holding part of each
  const found = new Map<string, { dirs: { dir: string; source: string }[]; counted: boolean }>();
  for (let source of sources) {
    source = path.resolve(source);
    for (const { namespace, dir, counted } of await layout.findNamespaces(source)) {
      const existing = found.get(namespace);
      if (existing) existing.dirs.push({ dir, source });
      else found.set(namespace, { dirs: [{ dir, source }], counted });
    }
  }
  const pending = [];
  for (const [namespace, where] of found) {
    const marker = path.join(fileNamespaceDirectory(persist, namespace), MIGRATED_MARKER);
    if (!(await fs.access(marker).then(() => true, () => false))) pending.push({ namespace, ...where });
  }
  if (pending.length === 0) return undefined;
  // Opening a storage takes the folder's lock before anything is written;
  // a storage that isn't files (a factory given by a test) has no old data
  if (!(storageFactory.storage(pending[0].namespace, persist) instanceof FileStorage)) return undefined;

  const result: MigrationResult = { keys: 0, namespaces: 0, present: 0, expired: 0 };
  const from = new Set<string>();
  for (const { namespace, dirs, counted } of pending) {
    const storage = storageFactory.storage(namespace, persist);
    const warn: Warn = (message) =>
      log.warn(`Couldn't fully migrate ${layout.what} ${layout.unit[0]} "${namespace}" from Miniflare 2: ${message}`);
    // Of several files with one key (old folders merged), the newest wins
    const entries = new Map<string, OldEntry & { source: string }>();
    for (const { dir, source } of dirs) {
      for (const entry of await readOldNamespace(dir, warn)) {
        const other = entries.get(entry.key);
        if (other === undefined || entry.mtimeMs > other.mtimeMs) entries.set(entry.key, { ...entry, source });
      }
    }
    const now = millisToSeconds(Date.now());
    let migrated = 0;
    let batch: [string, StoredValueMeta][] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length > 0) await storage.putMany(batch);
      batch = [];
      batchBytes = 0;
    };
    for (const entry of entries.values()) {
      if (entry.expiration !== undefined && entry.expiration <= now) {
        result.expired++;
        continue;
      }
      // Never overwrite what the new layout already has
      if (await storage.has(entry.key)) {
        result.present++;
        continue;
      }
      let value: Uint8Array;
      try {
        value = await readValue(entry);
      } catch (e: any) {
        warn(`key "${entry.key}" (${entry.file}) could not be read: ${e?.message ?? e}`);
        continue;
      }
      batch.push([entry.key, { value, expiration: entry.expiration, metadata: entry.metadata }]);
      batchBytes += value.byteLength;
      if (batch.length >= BATCH_ENTRIES || batchBytes >= BATCH_BYTES) await flush();
      if (!layout.hiddenKeys?.has(entry.key)) migrated++;
      from.add(entry.source);
    }
    await flush();
    // Only once every entry is durably written
    await writeDurably(
      path.join(fileNamespaceDirectory(persist, namespace), MIGRATED_MARKER),
      JSON.stringify({ from: dirs.map(({ dir }) => dir), keys: migrated, migratedAt: new Date().toISOString() }) + "\n"
    );
    if (counted && migrated > 0) {
      result.keys += migrated;
      result.namespaces++;
    }
  }
  logResult(log, layout, result, [...from]);
  return result;
}

function logResult(log: Log, layout: Miniflare2Layout, result: MigrationResult, from: string[]): void {
  const notes: string[] = [];
  if (result.present > 0) {
    notes.push(`${plural(result.present, ["key", "keys"])} already here kept as ${result.present === 1 ? "it was" : "they were"}`);
  }
  if (result.expired > 0) notes.push(`${result.expired} expired left out`);
  const note = notes.length > 0 ? `; ${notes.join(", ")}` : "";
  if (result.keys === 0) {
    if (notes.length > 0) log.debug(`Nothing to migrate from Miniflare 2's ${layout.what} data${note.replace(";", ":")}`);
    return;
  }
  const folders = from.map((dir) => displayPath(dir)).join(" and ");
  log.info(
    `Migrated ${plural(result.keys, [`${layout.what} key`, `${layout.what} keys`])} in ${plural(result.namespaces, layout.unit)} ` +
      `from Miniflare 2's ${folders} (left in place${note})`
  );
}
