import fs from "node:fs";

const POLL_INTERVAL = 250; /* ms */
const DEBOUNCE = 50; /* ms */

export type WatcherCallback = (path: string) => void;

/**
 * Watches files and directories, calling back with the watched path that
 * changed (debounced, once per burst of changes). Files are polled, which
 * also notices files that don't exist yet being created; directories are
 * watched recursively with fs.watch.
 */
export class Watcher {
  readonly #callback: WatcherCallback;
  readonly #watched = new Map<string, () => void>();
  readonly #timeouts = new Map<string, NodeJS.Timeout>();

  constructor(callback: WatcherCallback) {
    this.#callback = callback;
  }

  #changed(path: string): void {
    clearTimeout(this.#timeouts.get(path));
    this.#timeouts.set(
      path,
      setTimeout(() => {
        this.#timeouts.delete(path);
        this.#callback(path);
      }, DEBOUNCE)
    );
  }

  watch(paths: Iterable<string>): void {
    for (const path of paths) {
      if (this.#watched.has(path)) continue;
      let isDirectory = false;
      try {
        isDirectory = fs.statSync(path).isDirectory();
      } catch {
        // Doesn't exist (yet): poll for it
      }
      if (isDirectory) {
        const watcher = fs.watch(path, { recursive: true }, () => this.#changed(path));
        watcher.on("error", () => {}); // e.g. the directory was removed
        this.#watched.set(path, () => watcher.close());
      } else {
        const listener = (current: fs.Stats, previous: fs.Stats) => {
          if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) {
            this.#changed(path);
          }
        };
        fs.watchFile(path, { interval: POLL_INTERVAL }, listener);
        this.#watched.set(path, () => fs.unwatchFile(path, listener));
      }
    }
  }

  unwatch(paths: Iterable<string>): void {
    for (const path of paths) {
      this.#watched.get(path)?.();
      this.#watched.delete(path);
      clearTimeout(this.#timeouts.get(path));
      this.#timeouts.delete(path);
    }
  }

  dispose(): void {
    this.unwatch([...this.#watched.keys()]);
  }
}
