import path from "node:path";
import { createRequire } from "node:module";
import type { Matcher } from "./runner.js";

const encoder = new TextEncoder();

/** Compares strings with numeric awareness ("2021-11-10" style dates) */
const digitRuns = /(\d+)/;

/**
 * Compares strings with runs of digits compared as numbers, so
 * "2021-9-1" < "2021-11-10" (compatibility dates, version parts). Written
 * out rather than using `Intl.Collator`, which takes ~8ms to create.
 */
export function numericCompare(a: string, b: string): number {
  const as = a.split(digitRuns);
  const bs = b.split(digitRuns);
  // split() with a capture group alternates text, digits, text, ...
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i];
    const y = bs[i];
    if (x === y) continue;
    if (i % 2 === 1) {
      // Digit runs by value: leading zeros don't count ("03" equals "3")
      const xValue = x.replace(/^0+/, "");
      const yValue = y.replace(/^0+/, "");
      if (xValue.length !== yValue.length) return xValue.length < yValue.length ? -1 : 1;
      if (xValue !== yValue) return xValue < yValue ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return as.length === bs.length ? 0 : as.length < bs.length ? -1 : 1;
}

export function arrayCompare(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return a.length - b.length;
}

/** Orders strings by their UTF-8 bytes, as Workers storage does */
export function lexicographicCompare(x: string, y: string): number {
  return arrayCompare(encoder.encode(x), encoder.encode(y));
}

export function addAll<T>(set: Set<T>, values: Iterable<T>): void {
  for (const value of values) set.add(value);
}

export function viewToArray(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function viewToBuffer(view: ArrayBufferView): ArrayBuffer {
  return view.buffer.slice(
    view.byteOffset,
    view.byteOffset + view.byteLength
  ) as ArrayBuffer;
}

export function base64Encode(value: string): string {
  return Buffer.from(value, "utf8").toString("base64");
}

export function base64Decode(encoded: string): string {
  return Buffer.from(encoded, "base64").toString("utf8");
}

export function randomHex(digits = 8): string {
  let result = "";
  for (let i = 0; i < digits; i++) {
    result += Math.floor(Math.random() * 16).toString(16);
  }
  return result;
}

// "**/*.ext" (as the default module rules use) needs no glob engine
const simpleExtensionGlob = /^\*\*\/\*(\.[A-Za-z0-9]+)$/;
const require = createRequire(import.meta.url);

/**
 * Builds a matcher from globs; a glob starting with "!" excludes. Globs
 * match anywhere in the (absolute) path, as Miniflare 2's rules do.
 */
export function globsToMatcher(globs: string[] = []): Matcher {
  const include: string[] = [];
  const ignore: string[] = [];
  for (const glob of globs) {
    if (glob.startsWith("!")) ignore.push(glob.slice(1));
    else include.push(glob);
  }
  let isMatch: (value: string) => boolean;
  const extensions = include.map((glob) => simpleExtensionGlob.exec(glob)?.[1]);
  if (include.length === 0) {
    isMatch = () => false;
  } else if (ignore.length === 0 && extensions.every((ext) => ext !== undefined)) {
    // The same as picomatch's `contains` mode for these globs: the extension
    // may be followed by anything ("**/*.js" matches "x.json", as in
    // Miniflare 2)
    const patterns = extensions.map((ext) => new RegExp(`(?:^|/)[^/]*\\${ext}`));
    isMatch = (value) => patterns.some((pattern) => pattern.test(value));
  } else {
    // picomatch is only loaded for globs that need it
    const picomatch = require("picomatch") as typeof import("picomatch");
    isMatch = picomatch(include, { dot: true, bash: true, contains: true, ignore });
  }
  return {
    test: (value: string) => isMatch(value),
    toString: () => globs.join(", "),
  };
}

/** "kvPersist" → "kv-persist" */
export function kebabCase(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** "kvPersist" → "kv Persist", "HTTPPlugin" → "HTTP Plugin" */
export function spaceCase(s: string): string {
  s = s.replace(/(.)([A-Z][a-z]+)/g, "$1 $2");
  return s.replace(/([a-z0-9])([A-Z])/g, "$1 $2");
}

/** "kvPersist" → "Kv Persist" */
export function titleCase(s: string): string {
  return spaceCase(s)
    .split(" ")
    .map((word) => (word ? word[0].toUpperCase() + word.substring(1) : word))
    .join(" ");
}

const urlRegexp = /^([a-z]+:)?\/\//i;

/** Resolves a persist option: URLs are kept, other strings resolved */
export function resolveStoragePersist(
  rootPath: string,
  persist?: boolean | string
): boolean | string | undefined {
  if (typeof persist === "string") {
    if (urlRegexp.test(persist)) return persist;
    return path.resolve(rootPath, persist);
  }
  return persist;
}

export function millisToSeconds(millis: number): number {
  return Math.floor(millis / 1000);
}

export type Clock = () => number;
export const defaultClock: Clock = () => Date.now();

/**
 * Timers that fire by a Clock's time. Code that waits for a point in time
 * (Durable Object alarms) takes these together with its Clock, so tests can
 * inject a fake pair and move time on instead of waiting for it. A callback
 * may return a promise: real timers ignore it, a fake one can await it.
 */
export interface Timers {
  setTimeout(callback: () => unknown, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers: a pending one keeps the process alive, as any timer does */
export const defaultTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};

/** B/KiB/MiB formatting used by "Worker reloaded! (...)" */
export function formatSize(bytes: number): string {
  // Units switch at half of the next one, so 512B shows as 0.50KiB
  if (bytes >= 512 * 1024) return `${(bytes / (1024 * 1024)).toFixed(2)}MiB`;
  if (bytes >= 512) return `${(bytes / 1024).toFixed(2)}KiB`;
  return `${bytes}B`;
}

export type Awaitable<T> = T | Promise<T>;

/** A promise with its resolve and reject (Node 20 has no Promise.withResolvers) */
export interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * A Deferred whose rejection, if nobody awaits it, doesn't crash the process
 * (those who await it still get the error)
 */
export function handledDeferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * Workers Sites' manifest keys start with this path segment. The Cache API
 * never stores responses for URLs whose path starts with "/" and it, so
 * edits to a site are served at once (kv-asset-handler caches what it reads).
 */
export const SITES_NO_CACHE_PREFIX = "$__MINIFLARE_SITES__$/";
