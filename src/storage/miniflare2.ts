// Reads the folders Miniflare 2 persisted to, for migrate.ts. Only reads:
// nothing here opens a file for writing.
//
// Miniflare 2's layout: <persist>/<namespace>/<key as a path>, holding the
// value's raw bytes. "/", "\", ":" and "|" in a key made folders, other
// characters a path can't hold became "_", and the path was cut to 255
// characters. A key changed that way, or with an expiration or metadata, got
// a sidecar <file>.meta.json holding {key, expiration, metadata}, written
// after the value (so a crash between the two leaves a value without its
// sidecar) and deleted after it (leaving a sidecar without its value).
// Miniflare 2 listed every file not ending in ".meta.json", naming it by its
// sidecar's key or else by its path.
//
// Files this package wrote to a persist folder itself, before its namespaces
// moved into LAYOUT_FOLDER, sit at the top of a namespace's folder and end in
// its entry trailer (see file.ts); they are read too.
import fs from "node:fs/promises";
import path from "node:path";
import { LAYOUT_FOLDER } from "./factory.js";
import { encodeName } from "./file.js";

const META_SUFFIX = ".meta.json";
const MAGIC = "mfs1";
const TRAILER_SIZE = 8; /* u32le header length + magic */
// Miniflare 2 cut a key's path to 255 UTF-16 code units
const MINIFLARE2_MAX_PATH = 255;
// A 255-character path is at most 128 folders deep: deeper is a symlink loop
const MAX_DEPTH = 128;
const OBJECT_ID = /^[0-9a-f]{64}$/;
const ALARM_STORE = "__MINIFLARE_ALARMS__";
/** Temporary files this package's storage leaves while writing */
const TEMP_FILE = /^\.(?:tmp|expired)-/;

/** One namespace found in an old folder */
export interface FoundNamespace {
  namespace: string;
  dir: string;
  /**
   * What this namespace's entries are called in the log line when they
   * aren't the user's keys (["alarm", "alarms"]); it isn't counted as one of
   * the plugin's namespaces then
   */
  tally?: [singular: string, plural: string];
}

/** An old entry, before its value is read */
export interface OldEntry {
  key: string;
  file: string;
  mtimeMs: number;
  expiration?: number;
  metadata?: unknown;
  /** Written by this package (value, header, trailer) rather than by Miniflare 2 */
  trailer: boolean;
}

export interface OldNamespace {
  entries: OldEntry[];
  /** False when a file or folder couldn't be read: the namespace isn't done */
  complete: boolean;
}

export type Warn = (message: string) => void;

type Dirent = { name: string; isDirectory(): boolean; isSymbolicLink(): boolean };

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (e: any) {
    if (e?.code === "ENOENT" || e?.code === "ENOTDIR") return [];
    throw e;
  }
}

async function isDirectory(dir: string, dirent: Dirent): Promise<boolean> {
  if (dirent.isDirectory()) return true;
  if (!dirent.isSymbolicLink()) return false;
  return (await fs.stat(path.join(dir, dirent.name)).catch(() => undefined))?.isDirectory() ?? false;
}

/** Folders of a directory, skipping hidden ones and the new layout's */
export async function subfolders(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const dirent of await readdirOrEmpty(dir)) {
    if (dirent.name.startsWith(".") || dirent.name === LAYOUT_FOLDER) continue;
    if (await isDirectory(dir, dirent)) names.push(dirent.name);
  }
  return names.sort();
}

/** Every folder straight under `folder` is a namespace of that name (KV's layout) */
export async function topLevelNamespaces(folder: string): Promise<FoundNamespace[]> {
  return (await subfolders(folder)).map((name) => ({ namespace: name, dir: path.join(folder, name) }));
}

/**
 * Whether a folder holds Durable Objects (Miniflare 2's alarm store, or only
 * folders named by object ids): KV and Durable Objects persisting to one
 * folder shared it in Miniflare 2
 */
export async function isDurableObjectsFolder(dir: string): Promise<boolean> {
  if (path.basename(dir) === ALARM_STORE) return true;
  const dirents = (await readdirOrEmpty(dir)).filter((dirent) => !dirent.name.startsWith("."));
  if (dirents.length === 0) return false;
  for (const dirent of dirents) {
    if (!OBJECT_ID.test(dirent.name) || !(await isDirectory(dir, dirent))) return false;
  }
  return true;
}

/**
 * Miniflare 2's Durable Objects layout: each object in <binding>/<hex id>
 * (namespace "<binding>:<hex id>"), and every scheduled alarm in the store
 * __MINIFLARE_ALARMS__, keyed "<binding>:<hex id>"
 */
export async function durableObjectNamespaces(folder: string): Promise<FoundNamespace[]> {
  const found: FoundNamespace[] = [];
  for (const binding of await subfolders(folder)) {
    const dir = path.join(folder, binding);
    if (binding === ALARM_STORE) {
      found.push({ namespace: binding, dir, tally: ["alarm", "alarms"] });
      continue;
    }
    for (const id of await subfolders(dir)) {
      if (OBJECT_ID.test(id)) found.push({ namespace: `${binding}:${id}`, dir: path.join(dir, id) });
    }
  }
  return found;
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

/** The entries in an old namespace folder, with the keys Miniflare 2 gave them */
export async function readOldNamespace(dir: string, warn: Warn): Promise<OldNamespace> {
  const result: OldNamespace = { entries: [], complete: true };
  const walk = async (folder: string, rel: string[]): Promise<void> => {
    let dirents: Dirent[];
    try {
      dirents = await readdirOrEmpty(folder);
    } catch (e: any) {
      warn(`folder "${rel.join("/")}" (${folder}) couldn't be read: ${e?.message ?? e}`);
      result.complete = false;
      return;
    }
    const files = new Set<string>();
    for (const dirent of dirents) {
      if (rel.length === 0 && TEMP_FILE.test(dirent.name)) continue;
      if (!(await isDirectory(folder, dirent))) files.add(dirent.name);
      else if (rel.length < MAX_DEPTH) await walk(path.join(folder, dirent.name), [...rel, dirent.name]);
      else warn(`folder ${path.join(folder, dirent.name)} is nested too deeply (a link to itself?), skipped`);
    }
    for (const name of [...files].sort()) {
      const file = path.join(folder, name);
      const pathKey = [...rel, name].join("/");
      try {
        const entry = await readOldEntry(file, name, pathKey, rel.length === 0, files, warn);
        if (entry !== undefined) result.entries.push(entry);
      } catch (e: any) {
        warn(`key "${pathKey}" (${file}) couldn't be read: ${e?.message ?? e}`);
        result.complete = false;
      }
    }
  };
  await walk(dir, []);
  return result;
}

/** The entry this package wrote to `file` (named `name`), if it is one */
async function ourEntry(file: string, name: string): Promise<Sidecar | undefined> {
  const decoded = decodeTrailer(await fs.readFile(file));
  if (decoded === undefined || encodeName(decoded.header.key as string) !== name) return undefined;
  return decoded.header;
}

async function readOldEntry(
  file: string,
  name: string,
  pathKey: string,
  topLevel: boolean,
  siblings: Set<string>,
  warn: Warn
): Promise<OldEntry | undefined> {
  const { mtimeMs } = await fs.stat(file);
  // This package's files only ever sat at the top, named by encodeName():
  // its key "x.meta.json" is an entry, never Miniflare 2's sidecar of "x"
  if (topLevel) {
    const header = await ourEntry(file, name);
    if (header !== undefined) {
      return { key: header.key as string, file, mtimeMs, ...meta(header.expiration, header.metadata), trailer: true };
    }
  }
  let sidecarFile: string | undefined;
  if (name.endsWith(META_SUFFIX)) {
    // The sidecar of the file beside it, read with that file
    if (siblings.has(name.substring(0, name.length - META_SUFFIX.length))) return undefined;
    // A sidecar whose value is gone (a delete Miniflare 2 didn't finish):
    // Miniflare 2 always wrote the key into it
    if (typeof parseSidecar(await fs.readFile(file, "utf8"))?.key === "string") return undefined;
    // Otherwise a key ending in ".meta.json", which Miniflare 2 could get() but not list()
  } else if (siblings.has(name + META_SUFFIX)) {
    sidecarFile = file + META_SUFFIX;
    if (topLevel && (await ourEntry(sidecarFile, name + META_SUFFIX)) !== undefined) sidecarFile = undefined;
  }
  let sidecar: Sidecar | undefined;
  if (sidecarFile !== undefined) {
    sidecar = parseSidecar(await fs.readFile(sidecarFile, "utf8"));
    if (sidecar === undefined) {
      warn(
        `key "${pathKey}" (${file}): its ${META_SUFFIX} file isn't JSON, ` +
          "so its metadata and expiration are lost; migrated without them"
      );
    }
  }
  const key = typeof sidecar?.key === "string" ? sidecar.key : pathKey;
  if (sidecar === undefined && pathKey.length >= MINIFLARE2_MAX_PATH) {
    warn(
      `key "${pathKey}" (${file}) may be a longer key Miniflare 2 cut to ${MINIFLARE2_MAX_PATH} characters; ` +
        `migrated as "${pathKey}"`
    );
  }
  return { key, file, mtimeMs, ...meta(sidecar?.expiration, sidecar?.metadata), trailer: false };
}

function meta(expiration: unknown, metadata: unknown): { expiration?: number; metadata?: unknown } {
  return {
    expiration: typeof expiration === "number" && Number.isFinite(expiration) ? expiration : undefined,
    metadata,
  };
}

/** An old entry's value, exactly as its file holds it */
export async function readOldValue(entry: OldEntry): Promise<Uint8Array> {
  const data = await fs.readFile(entry.file);
  if (!entry.trailer) return data;
  const decoded = decodeTrailer(data);
  if (decoded === undefined) throw new Error("its file changed while it was being migrated");
  return data.subarray(0, decoded.valueLength);
}
