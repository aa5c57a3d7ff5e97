/**
 * lol-html instances for transforms, one per transform running at a time.
 *
 * The module (html-rewriter-wasm's 0.9 MB of wasm) is compiled once, on the
 * first transform that reads its body: importing Miniflare, or making a
 * rewriter, costs nothing. Instances cost about 0.6 ms and 1.2 MB of linear
 * memory each to make, so ended ones wait here to be reused, newest first.
 * An instance goes back only if it is clean: no exception crossed its wasm
 * frames, its rewriter was freed and wasm holds no JavaScript object (so an
 * idle instance keeps no handler, nor the worker behind it, alive). One whose
 * memory grew past MAX_MEMORY_BYTES (a huge chunk) is dropped instead.
 *
 * After a burst of concurrent transforms, the extra instances are dropped
 * once no transform has started for IDLE_TRIM_MS; KEEP_IDLE stay. The timer
 * doing it is unref'd: it never keeps Node running.
 */
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import { LolHtmlInstance, checkModule } from "./wasm.js";

const require = createRequire(import.meta.url);

/** Idle instances kept however long the pool is quiet */
const KEEP_IDLE = 2;
/** Idle instances kept at most */
const MAX_IDLE = 64;
const IDLE_TRIM_MS = 10_000;
/** An instance whose memory grew past this isn't reused */
const MAX_MEMORY_BYTES = 32 * 1024 * 1024;

export interface LolHtmlPoolStats {
  /** Instances serving a transform now */
  busy: number;
  /** Instances waiting to be reused */
  idle: number;
  /** Instances made so far */
  created: number;
  /** Instances dropped at the end of a transform (not clean, or too big) */
  discarded: number;
  /** Linear memory of the idle instances, in bytes */
  idleMemoryBytes: number;
}

export class LolHtmlPool {
  #module: WebAssembly.Module | undefined;
  #compiling: Promise<WebAssembly.Module> | undefined;
  readonly #idle: LolHtmlInstance[] = [];
  #busy = 0;
  #created = 0;
  #discarded = 0;
  #trimTimer: NodeJS.Timeout | undefined;
  #startedSinceTrim = false;

  /** Whether the module has been compiled (by a first transform) */
  get loaded(): boolean {
    return this.#module !== undefined;
  }

  get stats(): LolHtmlPoolStats {
    let idleMemoryBytes = 0;
    for (const instance of this.#idle) idleMemoryBytes += instance.memoryBytes;
    return {
      busy: this.#busy,
      idle: this.#idle.length,
      created: this.#created,
      discarded: this.#discarded,
      idleMemoryBytes,
    };
  }

  /** An instance for one transform: give it back with release() */
  acquire(): LolHtmlInstance | Promise<LolHtmlInstance> {
    const module = this.#module;
    if (module === undefined) return this.#compile().then(() => this.acquire());
    this.#startedSinceTrim = true;
    const instance = this.#idle.pop() ?? this.#create(module);
    this.#busy++;
    return instance;
  }

  /** Takes back an instance whose transform is over (however it ended) */
  release(instance: LolHtmlInstance): void {
    this.#busy--;
    if (!instance.reusable || instance.memoryBytes > MAX_MEMORY_BYTES) {
      this.#discarded++;
      return;
    }
    if (this.#idle.length >= MAX_IDLE) return;
    this.#idle.push(instance);
    if (this.#idle.length > KEEP_IDLE) this.#scheduleTrim();
  }

  /** Drops idle instances down to `keep` */
  trim(keep = KEEP_IDLE): void {
    if (this.#idle.length > keep) this.#idle.length = keep;
  }

  #scheduleTrim(): void {
    if (this.#trimTimer !== undefined) return;
    this.#startedSinceTrim = false;
    this.#trimTimer = setTimeout(() => {
      this.#trimTimer = undefined;
      if (this.#startedSinceTrim) {
        // Still in use: look again later
        if (this.#idle.length > KEEP_IDLE) this.#scheduleTrim();
      } else {
        this.trim();
      }
    }, IDLE_TRIM_MS).unref();
  }

  #create(module: WebAssembly.Module): LolHtmlInstance {
    let instance: LolHtmlInstance;
    try {
      instance = new LolHtmlInstance(module);
    } catch (error) {
      if (error instanceof WebAssembly.LinkError) {
        const version = packageVersion();
        throw new Error(`html-rewriter-wasm ${version} isn't the version HTMLRewriter was written for (0.4.1)`, {
          cause: error,
        });
      }
      throw error;
    }
    this.#created++;
    return instance;
  }

  #compile(): Promise<WebAssembly.Module> {
    this.#compiling ??= (async () => {
      try {
        // Found through module resolution, so the bundle finds it too
        const bytes = await fs.readFile(require.resolve("html-rewriter-wasm/dist/html_rewriter_bg.wasm"));
        const module = await WebAssembly.compile(bytes);
        checkModule(module, packageVersion());
        this.#module = module;
        return module;
      } catch (error) {
        // Let a later transform try again
        this.#compiling = undefined;
        throw error;
      }
    })();
    return this.#compiling;
  }
}

function packageVersion(): string {
  return (require("html-rewriter-wasm/package.json") as { version: string }).version;
}

/** The process's instances: every Miniflare and HTMLRewriter shares them */
export const lolHtmlPool = new LolHtmlPool();
