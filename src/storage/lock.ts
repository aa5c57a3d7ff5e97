// One process per persist folder (check 24). Two processes on the same
// folder would each run their own instance of every Durable Object and
// overwrite each other's writes, so the second fails fast instead.
//
// The lock is a file, `.miniflare.lock`, holding the owner's pid and host
// name. It's made exclusively, so of two processes starting at once only
// one gets it. A lock whose process is gone (killed, crashed) is taken over;
// one from another host can't be checked, and counts as held.
// Within one process any number of instances may share a folder, as
// Miniflare 2 allowed; the file goes when the last of them lets go, or when
// the process exits.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomHex } from "../shared/data.js";
import { FileStorageError } from "./errors.js";

export const LOCK_FILE_NAME = ".miniflare.lock";

interface LockOwner {
  pid: number;
  host: string;
}

interface HeldLock {
  file: string;
  holders: number;
}

/** Folders this process holds, by real path */
const held = new Map<string, HeldLock>();

/**
 * The folder's real path (creating it): one folder reached through a
 * symlink, or spelled differently, is one lock
 */
function lockKey(folder: string): string {
  const resolved = path.resolve(folder);
  createFolder(resolved);
  return fs.realpathSync.native(resolved);
}

let exitHookInstalled = false;

function readOwner(file: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(file, "utf8"));
    if (typeof owner?.pid === "number" && typeof owner?.host === "string") return owner;
  } catch {
    // Missing, or half-written by a process killed while making it
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: any) {
    // EPERM: it exists, but belongs to someone else
    return e?.code === "EPERM";
  }
}

/**
 * Whether a lock's owner may still be using the folder. A process on another
 * host (a container sharing a volume, a shared drive) can't be checked, so
 * its lock counts as held: the error says which file to delete if it's stale.
 */
function ownerLive(owner: LockOwner | undefined): boolean {
  if (owner === undefined) return false;
  if (owner.host !== os.hostname()) return true;
  return owner.pid !== process.pid && isAlive(owner.pid);
}

function lockedError(folder: string, owner: LockOwner): FileStorageError {
  const where = owner.host === os.hostname() ? "" : ` on host ${owner.host}`;
  return new FileStorageError(
    "ERR_LOCKED",
    `Persist directory ${folder} is locked by pid ${owner.pid}${where}: another Miniflare process is using it. ` +
      `Stop that process or persist to another directory. If no such process is running Miniflare, ` +
      `delete ${path.join(folder, LOCK_FILE_NAME)}`
  );
}

/** Flushes a directory's entries, where the file system allows it */
function syncDirectorySync(dir: string): void {
  if (process.platform === "win32") return;
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some file systems (SMB, some FUSE mounts) can't flush a directory
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Creates `folder` and its missing parents, each flushed into its parent */
function createFolder(folder: string): void {
  const first = fs.mkdirSync(folder, { recursive: true });
  if (first === undefined) return;
  for (let dir = folder; ; dir = path.dirname(dir)) {
    syncDirectorySync(path.dirname(dir));
    if (dir === first || path.dirname(dir) === dir) break;
  }
}

function releaseAllSync(): void {
  for (const { file } of held.values()) {
    if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
  }
  held.clear();
}

/** Creates the lock file, or returns false if one exists */
function create(file: string): boolean {
  const content = JSON.stringify({ pid: process.pid, host: os.hostname() });
  // Written whole under a temporary name, then linked into place: a reader
  // never sees a lock file without its owner
  const temp = `${file}.${process.pid}-${randomHex()}`;
  fs.writeFileSync(temp, content, { flag: "wx" });
  try {
    fs.linkSync(temp, file);
    return true;
  } catch (e: any) {
    if (e?.code === "EEXIST") return false;
    if (!NO_HARD_LINKS.has(e?.code)) throw e;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  // No hard links here (FAT, exFAT, some network mounts): created in place,
  // still exclusively. A reader may see it half-written, which counts as
  // stale; the JSON is a few bytes, written at once.
  try {
    fs.writeFileSync(file, content, { flag: "wx" });
    return true;
  } catch (e: any) {
    if (e?.code === "EEXIST") return false;
    throw e;
  }
}

const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);

/**
 * Takes the lock of `folder` for this process (creating the folder), or
 * throws ERR_LOCKED if a live process holds it. Every call needs its own
 * releaseLock().
 */
export function acquireLock(folder: string): void {
  const resolved = lockKey(folder);
  const existing = held.get(resolved);
  if (existing !== undefined) {
    existing.holders++;
    return;
  }
  const file = path.join(resolved, LOCK_FILE_NAME);
  for (let attempt = 0; ; attempt++) {
    if (create(file)) break;
    const owner = readOwner(file);
    // Our own pid, though we don't hold it: left by an earlier process that
    // had the same pid (after a restart), so stale
    if (owner?.pid === process.pid && owner.host === os.hostname()) break;
    if (ownerLive(owner)) throw lockedError(resolved, owner!);
    if (attempt >= 3) throw lockedError(resolved, owner ?? { pid: -1, host: os.hostname() });
    // Stale: move it aside, making sure it's still the stale one we read
    const aside = `${file}.stale-${process.pid}-${randomHex()}`;
    try {
      fs.renameSync(file, aside);
    } catch {
      continue; // someone else took it over or removed it: try again
    }
    const moved = readOwner(aside);
    if (moved !== undefined && ownerLive(moved)) {
      // Another process took it over between our read and the rename: put
      // theirs back (unless yet another lock exists by now) and give up
      try {
        fs.copyFileSync(aside, file, fs.constants.COPYFILE_EXCL);
      } catch {
        // Another lock is in place by now
      }
      fs.rmSync(aside, { force: true });
      throw lockedError(resolved, moved);
    }
    fs.rmSync(aside, { force: true });
  }
  held.set(resolved, { file, holders: 1 });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", releaseAllSync);
  }
}

/** Lets go of one acquireLock() of `folder`; the last one removes the file */
export function releaseLock(folder: string): void {
  let resolved = path.resolve(folder);
  try {
    resolved = fs.realpathSync.native(resolved);
  } catch {
    // Gone already (and its lock file with it)
  }
  const lock = held.get(resolved);
  if (lock === undefined) return;
  if (--lock.holders > 0) return;
  held.delete(resolved);
  if (readOwner(lock.file)?.pid === process.pid) fs.rmSync(lock.file, { force: true });
}
