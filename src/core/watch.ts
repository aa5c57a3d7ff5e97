import fs from "node:fs";
import path from "node:path";
import type { Log } from "../shared/log.js";

const POLL_INTERVAL = 250; /* ms */
const DEBOUNCE = 50; /* ms */

export type WatcherCallback = (path: string) => void;

export interface WatcherOptions {
  /** How often files are polled, in ms (250 unless given) */
  pollInterval?: number;
}

/** What a file looks like: a change of either means it changed */
function signature(filePath: string): string {
  try {
    const stat = fs.statSync(filePath);
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
  } catch {
    return "missing";
  }
}

function isDirectory(filePath: string): boolean {
  try {
    return fs.statSync(filePath).isDirectory();
  } catch {
    return false; // Doesn't exist (yet): polled for
  }
}

interface DirectoryWatch {
  watcher?: fs.FSWatcher;
  /** Watched file names in the directory */
  names: Set<string>;
}

/**
 * Watches files and directories, calling back with the watched path that
 * changed (debounced, once per burst of changes, and only if the file
 * really differs from when it was last reported).
 *
 * Files are noticed two ways: through fs.watch on their folder, which is
 * immediate and survives editors that save by renaming a new file into
 * place; and by polling, which also works where fs.watch doesn't (network
 * drives, some containers) and notices files created later. Directories
 * are watched recursively with fs.watch.
 */
export class Watcher {
  readonly #callback: WatcherCallback;
  readonly #watched = new Map<string, () => void>();
  readonly #timeouts = new Map<string, NodeJS.Timeout>();
  /** Each watched file's signature when last reported (or first watched) */
  readonly #seen = new Map<string, string>();
  readonly #directories = new Map<string, DirectoryWatch>();
  /** Watched paths watched as folders (the others are polled as files) */
  readonly #asFolders = new Set<string>();
  readonly #pollInterval: number;

  constructor(callback: WatcherCallback, options: WatcherOptions = {}) {
    this.#callback = callback;
    this.#pollInterval = options.pollInterval ?? POLL_INTERVAL;
  }

  #changed(watched: string): void {
    clearTimeout(this.#timeouts.get(watched));
    this.#timeouts.set(
      watched,
      setTimeout(() => {
        this.#timeouts.delete(watched);
        if (this.#seen.has(watched)) {
          // Reported already by the other mechanism, or nothing changed
          const now = signature(watched);
          if (now === this.#seen.get(watched)) return;
          this.#seen.set(watched, now);
        }
        this.#rewatchIfKindChanged(watched);
        this.#callback(watched);
      }, DEBOUNCE)
    );
  }

  /**
   * A path watched before it existed that is now a folder (or a watched
   * folder that was removed) is watched again as what it is now, so files
   * in a folder created later are noticed, and a folder removed and made
   * again is still watched
   */
  #rewatchIfKindChanged(watched: string): void {
    if (!this.#watched.has(watched)) return;
    if (isDirectory(watched) === this.#asFolders.has(watched)) return;
    this.#watched.get(watched)?.();
    this.#watched.delete(watched);
    this.watch([watched]);
  }

  #watchDirectoryOf(filePath: string): void {
    const dir = path.dirname(filePath);
    let entry = this.#directories.get(dir);
    if (entry === undefined) {
      entry = { names: new Set() };
      try {
        const watcher = fs.watch(dir, (_event, name) => {
          const names = this.#directories.get(dir)?.names;
          if (name === null) {
            // Unknown file: check them all
            for (const known of names ?? []) this.#changed(path.join(dir, known));
          } else if (names?.has(name.toString())) {
            this.#changed(path.join(dir, name.toString()));
          }
        });
        watcher.on("error", () => {}); // e.g. the folder was removed: polling goes on
        entry.watcher = watcher;
      } catch {
        // No such folder (yet), or no fs.watch here: polling covers it
      }
      this.#directories.set(dir, entry);
    }
    entry.names.add(path.basename(filePath));
  }

  #unwatchDirectoryOf(filePath: string): void {
    const dir = path.dirname(filePath);
    const entry = this.#directories.get(dir);
    if (entry === undefined) return;
    entry.names.delete(path.basename(filePath));
    if (entry.names.size === 0) {
      entry.watcher?.close();
      this.#directories.delete(dir);
    }
  }

  watch(paths: Iterable<string>): void {
    for (const watched of paths) {
      if (this.#watched.has(watched)) continue;
      if (isDirectory(watched)) {
        const watcher = fs.watch(watched, { recursive: true }, () => this.#changed(watched));
        // e.g. the directory was removed: watched again as a path to poll
        watcher.on("error", () => this.#changed(watched));
        this.#asFolders.add(watched);
        this.#watched.set(watched, () => {
          watcher.close();
          this.#asFolders.delete(watched);
        });
      } else {
        this.#seen.set(watched, signature(watched));
        this.#watchDirectoryOf(watched);
        const listener = (current: fs.Stats, previous: fs.Stats) => {
          if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) {
            this.#changed(watched);
          }
        };
        fs.watchFile(watched, { interval: this.#pollInterval }, listener);
        this.#watched.set(watched, () => {
          fs.unwatchFile(watched, listener);
          this.#unwatchDirectoryOf(watched);
          this.#seen.delete(watched);
        });
      }
    }
  }

  unwatch(paths: Iterable<string>): void {
    for (const watched of paths) {
      this.#watched.get(watched)?.();
      this.#watched.delete(watched);
      clearTimeout(this.#timeouts.get(watched));
      this.#timeouts.delete(watched);
    }
  }

  dispose(): void {
    this.unwatch([...this.#watched.keys()]);
  }
}

function pathsToString(paths: Iterable<string>): string {
  return [...paths].map((p) => path.relative("", p)).sort().join(", ");
}

/**
 * The set of files a host depends on, kept up to date at every reload; a
 * Watcher follows it while watching is on
 */
export class WatchedFiles {
  readonly #onChange: WatcherCallback;
  #paths: ReadonlySet<string> = new Set();
  #watcher?: Watcher;

  constructor(onChange: WatcherCallback) {
    this.#onChange = onChange;
  }

  get paths(): ReadonlySet<string> {
    return this.#paths;
  }

  /** Makes `paths` the set, watching what was added and unwatching what went */
  update(paths: ReadonlySet<string>, watching: boolean, log: Log): void {
    const previous = this.#paths;
    this.#paths = paths;
    if (!watching) return;
    this.#watcher ??= new Watcher(this.#onChange);
    const removed = [...previous].filter((p) => !paths.has(p));
    const added = [...paths].filter((p) => !previous.has(p));
    if (removed.length > 0) {
      log.debug(`Unwatching ${pathsToString(removed)}...`);
      this.#watcher.unwatch(removed);
    }
    if (added.length > 0) {
      log.debug(`Watching ${pathsToString(paths)}...`);
      this.#watcher.watch(added);
    }
  }

  dispose(): void {
    this.#watcher?.dispose();
    this.#watcher = undefined;
    this.#paths = new Set();
  }
}
