// The behaviour every Storage backend shares, as one suite each backend's
// test file runs against its own storage (see storageContract()).
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import type { Clock } from "../../src/shared/data.js";
import type {
  StorageListOptions,
  StorageListResult,
  Storage,
  StoredKeyMeta,
} from "../../src/shared/storage.js";
import { compareKeys } from "../../src/storage/keys.js";

// ---------------------------------------------------------------------------
// Helpers, also used by the backend-specific test files
// ---------------------------------------------------------------------------

export interface StorageHandle {
  storage: Storage;
  cleanup?: () => Promise<void>;
}

/** A fresh, empty storage reading the time from `clock` */
export type StorageSetup = (clock: Clock) => Promise<StorageHandle>;

export interface ContractOptions {
  /** How many generated keys the property test stores */
  propertyKeys: number;
  /** Seed of the property test's key generator */
  seed?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const utf8 = (s: string): Uint8Array => encoder.encode(s);
export const text = (bytes: Uint8Array): string => decoder.decode(bytes);

/**
 * WTF-8 of a string, written independently of src/storage/keys.ts: UTF-8,
 * with each lone surrogate encoded as if it were a code point
 */
export function wtf8(s: string): Buffer {
  const bytes: number[] = [];
  // for..of yields whole code points, and lone surrogates on their own
  for (const char of s) {
    const code = char.codePointAt(0)!;
    if (code < 0x80) bytes.push(code);
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    else if (code < 0x10000) {
      bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    } else {
      bytes.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 0x3f),
        0x80 | ((code >> 6) & 0x3f),
        0x80 | (code & 0x3f)
      );
    }
  }
  return Buffer.from(bytes);
}

/** The documented key order: UTF-8 bytes, lone surrogates by code point */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(wtf8(a), wtf8(b));
}

/** A seeded pseudo-random number generator (mulberry32), in [0, 1) */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `items` in a seeded random order */
export function shuffle<T>(items: T[], seed: number): T[] {
  const rand = random(seed);
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [result[i], result[j]] = [result[j], result[i]];
  }
  return result;
}

/** Whether two byte arrays hold the same bytes (whatever their classes) */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * A string for assertion messages: everything outside printable ASCII
 * escaped (terminals swallow some controls), long strings cut
 */
export function show(s: string): string {
  const cut = s.length > 80 ? s.substring(0, 80) : s;
  const escaped = cut.replace(/[^\x20-\x7e]|\\|"/g, (c) =>
    c === "\\" || c === '"' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
  );
  return `"${escaped}"${s.length > 80 ? `…(${s.length} code units)` : ""}`;
}

/** Asserts two lists of keys are equal, reporting the first difference briefly */
export function assertKeys(actual: string[], expected: string[], label = "keys"): void {
  const length = Math.max(actual.length, expected.length);
  for (let i = 0; i < length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(
        `${label}: first difference at index ${i} of ${actual.length} (expected ${expected.length}): ` +
          `got ${actual[i] === undefined ? "nothing" : show(actual[i])}, ` +
          `expected ${expected[i] === undefined ? "nothing" : show(expected[i])}`
      );
    }
  }
}

/** Every page of a listing, following cursors until "" */
export async function listPages(
  storage: Storage,
  options: StorageListOptions = {},
  maxPages = 100_000
): Promise<StorageListResult<StoredKeyMeta>[]> {
  const pages: StorageListResult<StoredKeyMeta>[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await storage.list({ ...options, cursor });
    pages.push(page);
    if (page.cursor === "") return pages;
    assert.notEqual(page.cursor, cursor, "a cursor must move on");
    cursor = page.cursor;
    assert.ok(pages.length < maxPages, "listing never finished");
  }
}

export const names = (result: StorageListResult<StoredKeyMeta>): string[] =>
  result.keys.map(({ name }) => name);

/** A mutable clock starting at a whole second near the real time */
export class TestClock {
  /** Milliseconds */
  now: number;
  readonly fn: Clock = () => this.now;

  constructor() {
    // Near the real time, so Redis's own expiry (by wall clock) agrees
    this.now = Math.floor(Date.now() / 1000) * 1000;
  }

  get seconds(): number {
    return Math.floor(this.now / 1000);
  }

  set seconds(seconds: number) {
    this.now = seconds * 1000;
  }
}

// ---------------------------------------------------------------------------
// Key corpora
// ---------------------------------------------------------------------------

/** Keys that trip up naive file, Redis or URL-based layouts */
export const adversarialKeys: string[] = [
  "/",
  "a/b",
  "a:b",
  "a\\b",
  "a|b",
  "..",
  ".",
  "../x",
  "a/../../b",
  "con",
  "CON",
  "CON.txt",
  "nul",
  "a/con",
  "a?b",
  "a*b",
  "a_b",
  "/lead",
  " lead",
  "trail ",
  "trail/",
  "...",
  "k\u0000nul",
  "k\nnl",
  "foo",
  "foo.meta.json",
  "User",
  "user",
  "\u00e9".repeat(256),
  "k".repeat(512),
  "\u{1F600}",
  "a",
  "a/b/c",
  "p",
  "p/q",
  "x~y",
  "%41",
  "a%2Fb",
  "\ud800",
  "a\udc00b",
  "",
];

/** Generates `count` distinct keys of every kind, deterministically */
export function generateKeys(count: number, seed: number): string[] {
  const rand = random(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(items: T[]): T => items[int(items.length)];
  const punctuation = ["/", ".", ":", "%", "~", "\\", "\u0000", "\n", " ", "..", "-", "_", "*", "?", "|", "con", "%2F"];
  const pieces: (() => string)[] = [
    // A small alphabet, so keys share long prefixes
    () => pick(["a", "b", "c"]),
    () => pick(["a", "b", "c"]),
    () => String.fromCharCode(0x20 + int(0x5f)),
    () => pick(punctuation),
    () => pick(["\u00e9", "\u00df", "\u4e2d", "\u0800", "\u07ff", "\u007f", "\u0080"]),
    // U+E000..U+FFFF: after surrogates in UTF-16, before them in UTF-8
    () => pick(["\ue000", "\uffff", "\ufffd", String.fromCharCode(0xe000 + int(0x2000))]),
    // Above U+FFFF: a surrogate pair
    () => String.fromCodePoint(pick([0x10000, 0x1f600, 0x10ffff, 0x10000 + int(0x100000)])),
    // A lone surrogate (unless the next piece pairs it)
    () => String.fromCharCode(pick([0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd800 + int(0x800)])),
    () => "0123456789"[int(10)],
  ];
  const keys = new Set<string>();
  const list: string[] = [];
  while (keys.size < count) {
    let key: string;
    const roll = rand();
    if (roll < 0.15 && list.length > 0) {
      // An existing key extended, so keys are prefixes of others
      key = pick(list) + pick(pieces)();
    } else {
      const pieceCount = roll < 0.85 ? 1 + int(8) : roll < 0.95 ? 9 + int(32) : 100 + int(200);
      key = "";
      for (let i = 0; i < pieceCount; i++) key += pick(pieces)();
    }
    if (!keys.has(key)) {
      keys.add(key);
      list.push(key);
    }
  }
  return list;
}

// ---------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------

export function storageContract(name: string, setup: StorageSetup, options: ContractOptions): void {
  /** A fresh storage and its clock, cleaned up after the test */
  async function make(t: TestContext): Promise<{ storage: Storage; clock: TestClock }> {
    const clock = new TestClock();
    const { storage, cleanup } = await setup(clock.fn);
    if (cleanup) t.after(cleanup);
    return { storage, clock };
  }

  /** Puts each key with its own value and metadata */
  async function putKeys(storage: Storage, keys: string[]): Promise<void> {
    for (const key of keys) await storage.put(key, { value: utf8(`value of ${key}`), metadata: { key } });
  }

  describe(name, () => {
    // -- has, head, get ------------------------------------------------------

    test("missing keys: has false, head/get/getRange undefined, delete false", async (t) => {
      const { storage } = await make(t);
      assert.equal(await storage.has("missing"), false);
      assert.equal(await storage.head("missing"), undefined);
      assert.equal(await storage.get("missing"), undefined);
      assert.equal(await storage.get("missing", true), undefined);
      assert.equal(await storage.getRange("missing", { offset: 1 }), undefined);
      // A missing key wins over an impossible range
      assert.equal(await storage.getRange("missing", { suffix: 0 }), undefined);
      assert.equal(await storage.delete("missing"), false);
      const list = await storage.list();
      assert.deepEqual(list.keys, []);
      assert.equal(list.cursor, "");
    });

    test("put then has/head/get return the entry", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 1000;
      await storage.put("key", { value: utf8("value"), expiration, metadata: { a: 1, b: ["c"] } });
      assert.equal(await storage.has("key"), true);
      assert.equal(await storage.has("key2"), false);

      const head = await storage.head("key");
      assert.equal(head?.expiration, expiration);
      assert.deepEqual(head?.metadata, { a: 1, b: ["c"] });

      const got = await storage.get("key");
      assert.ok(got !== undefined);
      assert.ok(got.value instanceof Uint8Array);
      assert.equal(text(got.value), "value");
      assert.equal(got.expiration, expiration);
      assert.deepEqual(got.metadata, { a: 1, b: ["c"] });
    });

    test("get with skipMetadata returns only the value", async (t) => {
      const { storage, clock } = await make(t);
      await storage.put("key", { value: utf8("value"), expiration: clock.seconds + 1000, metadata: { a: 1 } });
      const got = await storage.get("key", true);
      assert.ok(got !== undefined);
      assert.equal(text(got.value), "value");
      assert.equal(got.metadata, undefined);
      assert.equal(got.expiration, undefined);
    });

    test("entries without expiration or metadata read back without them", async (t) => {
      const { storage } = await make(t);
      await storage.put("key", { value: utf8("v") });
      const got = await storage.get("key");
      assert.equal(text(got!.value), "v");
      assert.equal(got!.expiration, undefined);
      assert.equal(got!.metadata, undefined);
      const head = await storage.head("key");
      assert.ok(head !== undefined);
      assert.equal(head.expiration, undefined);
      assert.equal(head.metadata, undefined);
      const [listed] = (await storage.list()).keys;
      assert.equal(listed.name, "key");
      assert.equal(listed.expiration, undefined);
      assert.equal(listed.metadata, undefined);
    });

    test("empty and binary values round-trip exactly", async (t) => {
      const { storage } = await make(t);
      const binary = new Uint8Array(256).map((_, i) => i);
      await storage.put("empty", { value: new Uint8Array(0) });
      await storage.put("binary", { value: binary });
      // A view into a larger buffer stores only its own bytes
      const backing = new Uint8Array([9, 9, 1, 2, 3, 9, 9]);
      await storage.put("view", { value: new Uint8Array(backing.buffer, 2, 3) });

      assert.equal(await storage.has("empty"), true);
      assert.equal((await storage.get("empty"))!.value.byteLength, 0);
      assert.deepEqual([...(await storage.get("binary"))!.value], [...binary]);
      assert.deepEqual([...(await storage.get("view"))!.value], [1, 2, 3]);
    });

    // -- getRange --------------------------------------------------------------

    test("getRange: every form of range", async (t) => {
      const { storage } = await make(t);
      await storage.put("key", { value: utf8("0123456789") });
      const cases: [Parameters<Storage["getRange"]>[1], string, number, number][] = [
        [undefined, "0123456789", 0, 10],
        [{}, "0123456789", 0, 10],
        [{ offset: 0 }, "0123456789", 0, 10],
        [{ offset: 3 }, "3456789", 3, 7],
        [{ offset: 9 }, "9", 9, 1],
        [{ length: 4 }, "0123", 0, 4],
        [{ length: 10 }, "0123456789", 0, 10],
        [{ length: 50 }, "0123456789", 0, 10],
        [{ offset: 2, length: 3 }, "234", 2, 3],
        [{ offset: 8, length: 5 }, "89", 8, 2],
        [{ suffix: 3 }, "789", 7, 3],
        [{ suffix: 10 }, "0123456789", 0, 10],
        [{ suffix: 20 }, "0123456789", 0, 10],
        // suffix wins over offset and length
        [{ suffix: 2, offset: 1, length: 1 }, "89", 8, 2],
      ];
      for (const [range, expected, offset, length] of cases) {
        const result = await storage.getRange("key", range);
        assert.ok(result !== undefined, JSON.stringify(range));
        assert.equal(text(result.value), expected, JSON.stringify(range));
        assert.deepEqual(result.range, { offset, length }, JSON.stringify(range));
      }
    });

    test("getRange: impossible ranges throw", async (t) => {
      const { storage } = await make(t);
      await storage.put("key", { value: utf8("0123456789") });
      await assert.rejects(storage.getRange("key", { suffix: 0 }), { message: "Suffix must be > 0" });
      await assert.rejects(storage.getRange("key", { suffix: -1 }), { message: "Suffix must be > 0" });
      await assert.rejects(storage.getRange("key", { offset: -1 }), { message: "Offset must be >= 0" });
      await assert.rejects(storage.getRange("key", { offset: 11 }), { message: "Offset must be < size" });
      await assert.rejects(storage.getRange("key", { length: 0 }), { message: "Length must be > 0" });
      await assert.rejects(storage.getRange("key", { offset: 2, length: -3 }), { message: "Length must be > 0" });
      // Nothing changed
      assert.equal(text((await storage.get("key"))!.value), "0123456789");
    });

    test("getRange: metadata and expiration unless skipped", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 1000;
      await storage.put("key", { value: utf8("0123456789"), expiration, metadata: { m: true } });
      const full = await storage.getRange("key", { offset: 1, length: 2 });
      assert.equal(text(full!.value), "12");
      assert.equal(full!.expiration, expiration);
      assert.deepEqual(full!.metadata, { m: true });
      const skipped = await storage.getRange("key", { offset: 1, length: 2 }, true);
      assert.equal(text(skipped!.value), "12");
      assert.equal(skipped!.expiration, undefined);
      assert.equal(skipped!.metadata, undefined);
    });

    // -- put -----------------------------------------------------------------

    test("put overwrites the value, metadata and expiration", async (t) => {
      const { storage, clock } = await make(t);
      const first = clock.seconds + 10;
      await storage.put("key", { value: utf8("one"), expiration: first, metadata: { n: 1, only1: true } });
      await storage.put("key", { value: utf8("two"), metadata: { n: 2 } });
      let got = await storage.get("key");
      assert.equal(text(got!.value), "two");
      assert.equal(got!.expiration, undefined);
      // Replaced, not merged
      assert.deepEqual(got!.metadata, { n: 2 });

      // The first expiration is really gone: the entry outlives it
      clock.seconds = first + 5;
      assert.equal(await storage.has("key"), true);
      assert.equal(text((await storage.get("key"))!.value), "two");

      // And metadata can be removed by a put without it, expiration added
      const second = clock.seconds + 10;
      await storage.put("key", { value: utf8("three"), expiration: second });
      got = await storage.get("key");
      assert.equal(text(got!.value), "three");
      assert.equal(got!.expiration, second);
      assert.equal(got!.metadata, undefined);
      assert.equal((await storage.head("key"))!.metadata, undefined);
      const [listed] = (await storage.list()).keys;
      assert.equal(listed.expiration, second);
      assert.equal(listed.metadata, undefined);
      clock.seconds = second;
      assert.equal(await storage.get("key"), undefined);
    });

    test("values are copied: mutating a Uint8Array after put or after get changes nothing stored", async (t) => {
      const { storage } = await make(t);
      const input = new Uint8Array([1, 2, 3, 4]);
      await storage.put("key", { value: input });
      input.fill(0);
      const got = await storage.get("key");
      assert.deepEqual([...got!.value], [1, 2, 3, 4]);
      got!.value.fill(7);
      assert.deepEqual([...(await storage.get("key"))!.value], [1, 2, 3, 4]);
      const range = await storage.getRange("key", { offset: 1, length: 2 });
      range!.value.fill(7);
      assert.deepEqual([...(await storage.get("key"))!.value], [1, 2, 3, 4]);
    });

    test("values are copied: mutating a Buffer after put or after get changes nothing stored", async (t) => {
      const { storage } = await make(t);
      // Buffer#slice() is a view, not a copy, unlike Uint8Array#slice()
      const input = Buffer.from([1, 2, 3, 4]);
      await storage.put("key", { value: input });
      input.fill(0);
      const got = await storage.get("key");
      assert.deepEqual([...got!.value], [1, 2, 3, 4]);
      got!.value.fill(7);
      assert.deepEqual([...(await storage.get("key"))!.value], [1, 2, 3, 4]);
      const range = await storage.getRange("key", { offset: 1, length: 2 });
      range!.value.fill(7);
      assert.deepEqual([...(await storage.get("key"))!.value], [1, 2, 3, 4]);
    });

    test("put with metadata JSON can't represent rejects and keeps the old entry", async (t) => {
      const { storage } = await make(t);
      await storage.put("key", { value: utf8("old"), metadata: { old: true } });
      await assert.rejects(storage.put("key", { value: utf8("new"), metadata: { big: 1n } }));
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await assert.rejects(storage.put("key", { value: utf8("new"), metadata: circular }));
      const got = await storage.get("key");
      assert.equal(text(got!.value), "old");
      assert.deepEqual(got!.metadata, { old: true });
      await assert.rejects(storage.put("other", { value: utf8("new"), metadata: { big: 1n } }));
      assert.equal(await storage.has("other"), false);
    });

    // -- metadata ------------------------------------------------------------

    test("metadata round-trips with JSON semantics", async (t) => {
      const { storage } = await make(t);
      const cases: [unknown, unknown][] = [
        [{ a: 1, b: { c: [1, "two", null, true] } }, { a: 1, b: { c: [1, "two", null, true] } }],
        [{ dropped: undefined, kept: 1 }, { kept: 1 }],
        [[1, undefined, () => 1], [1, null, null]],
        [{ date: new Date(0) }, { date: "1970-01-01T00:00:00.000Z" }],
        [{ nan: NaN, inf: Infinity, neg: -0 }, { nan: null, inf: null, neg: 0 }],
        [{ toJSON: () => "custom" }, "custom"],
        ["a string", "a string"],
        ["", ""],
        [0, 0],
        [false, false],
        [null, null],
        [{ "\u{1F600}": "\u00e9\u4e2d", "": "" }, { "\u{1F600}": "\u00e9\u4e2d", "": "" }],
      ];
      for (let i = 0; i < cases.length; i++) {
        const [input, expected] = cases[i];
        const key = `key${i}`;
        await storage.put(key, { value: utf8("v"), metadata: input });
        const message = `metadata ${i}: ${JSON.stringify(expected)}`;
        assert.deepEqual((await storage.get(key))!.metadata, expected, message);
        assert.deepEqual((await storage.head(key))!.metadata, expected, message);
        assert.deepEqual((await storage.getRange(key))!.metadata, expected, message);
        const listed = (await storage.list({ prefix: key, end: `${key}\u0000` })).keys;
        assert.equal(listed.length, 1);
        assert.deepEqual(listed[0].metadata, expected, message);
      }
    });

    test("metadata is copied: mutating it after put or after reading changes nothing stored", async (t) => {
      const { storage } = await make(t);
      const metadata = { nested: { n: 1 }, list: [1] };
      await storage.put("key", { value: utf8("v"), metadata });
      metadata.nested.n = 2;
      metadata.list.push(2);
      const got = await storage.get<typeof metadata>("key");
      assert.deepEqual(got!.metadata, { nested: { n: 1 }, list: [1] });
      got!.metadata!.nested.n = 3;
      const head = await storage.head<typeof metadata>("key");
      assert.deepEqual(head!.metadata, { nested: { n: 1 }, list: [1] });
      head!.metadata!.list.push(3);
      const listed = (await storage.list<typeof metadata>()).keys[0];
      assert.deepEqual(listed.metadata, { nested: { n: 1 }, list: [1] });
      listed.metadata!.nested.n = 4;
      assert.deepEqual((await storage.get("key"))!.metadata, { nested: { n: 1 }, list: [1] });
    });

    // -- delete ----------------------------------------------------------------

    test("delete returns whether the key existed", async (t) => {
      const { storage } = await make(t);
      await storage.put("key", { value: utf8("v") });
      await storage.put("other", { value: utf8("o") });
      assert.equal(await storage.delete("key"), true);
      assert.equal(await storage.has("key"), false);
      assert.equal(await storage.get("key"), undefined);
      assert.equal(await storage.delete("key"), false);
      assert.equal(await storage.delete("never"), false);
      // Others untouched
      assert.equal(text((await storage.get("other"))!.value), "o");
      assertKeys(names(await storage.list()), ["other"]);
      // A deleted key can be put again
      await storage.put("key", { value: utf8("again") });
      assert.equal(text((await storage.get("key"))!.value), "again");
    });

    test("delete of an expired entry returns false", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 10;
      await storage.put("key", { value: utf8("v"), expiration });
      await storage.put("live", { value: utf8("v"), expiration });
      assert.equal(await storage.delete("live"), true);
      clock.seconds = expiration;
      assert.equal(await storage.delete("key"), false);
      assert.equal(await storage.has("key"), false);
    });

    test("concurrent deletes of one key: exactly one returns true", async (t) => {
      const { storage } = await make(t);
      for (let trial = 0; trial < 20; trial++) {
        await storage.put("key", { value: utf8("v") });
        const results = await Promise.all([storage.delete("key"), storage.delete("key"), storage.delete("key")]);
        assert.equal(results.filter(Boolean).length, 1, `trial ${trial}: ${results}`);
      }
      assert.equal(await storage.has("key"), false);
    });

    // -- expiration ------------------------------------------------------------

    test("entries expire at their expiration, by the injected clock", async (t) => {
      const { storage, clock } = await make(t);
      const start = clock.seconds;
      const expiration = start + 60;
      await storage.put("a", { value: utf8("a") });
      await storage.put("b", { value: utf8("b"), expiration, metadata: { b: 1 } });
      await storage.put("c", { value: utf8("c") });

      // Up to the last millisecond before it, the entry is there
      for (const now of [start * 1000, (expiration - 1) * 1000, expiration * 1000 - 1]) {
        clock.now = now;
        assert.equal(await storage.has("b"), true);
        assert.equal((await storage.head("b"))?.expiration, expiration);
        assert.equal(text((await storage.get("b"))!.value), "b");
        assert.equal(text((await storage.getRange("b", { suffix: 1 }))!.value), "b");
        const list = await storage.list();
        assertKeys(names(list), ["a", "b", "c"]);
        assert.equal(list.keys[1].expiration, expiration);
        assert.equal(await storage.hasMany(["a", "b", "c"]), 3);
      }

      // From the expiration on, it's gone from every read
      for (const now of [expiration * 1000, expiration * 1000 + 999, (expiration + 3600) * 1000]) {
        clock.now = now;
        assert.equal(await storage.has("b"), false);
        assert.equal(await storage.head("b"), undefined);
        assert.equal(await storage.get("b"), undefined);
        assert.equal(await storage.get("b", true), undefined);
        assert.equal(await storage.getRange("b", { suffix: 1 }), undefined);
        assertKeys(names(await storage.list()), ["a", "c"]);
        assertKeys(names(await storage.list({ reverse: true })), ["c", "a"]);
        assertKeys(names(await storage.list({ prefix: "b" })), []);
        assert.equal(await storage.hasMany(["a", "b", "c"]), 2);
        assert.deepEqual(
          (await storage.getMany(["a", "b", "c"])).map((entry) => entry && text(entry.value)),
          ["a", undefined, "c"]
        );
      }
    });

    test("an entry put with a past expiration is never visible", async (t) => {
      const { storage, clock } = await make(t);
      await storage.put("now", { value: utf8("v"), expiration: clock.seconds });
      await storage.put("past", { value: utf8("v"), expiration: clock.seconds - 100 });
      assert.equal(await storage.has("now"), false);
      assert.equal(await storage.get("past"), undefined);
      assertKeys(names(await storage.list()), []);
    });

    test("expired entries are skipped across list pages", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 10;
      for (const key of ["a", "b", "c", "d", "e", "f"]) {
        const expires = key === "c" || key === "d" || key === "f";
        await storage.put(key, { value: utf8(key), expiration: expires ? expiration : undefined });
      }
      clock.seconds = expiration;
      const pages = await listPages(storage, { limit: 2 });
      assert.deepEqual(pages.map(names), [["a", "b"], ["e"]]);
      const reverse = await listPages(storage, { limit: 2, reverse: true });
      assert.deepEqual(reverse.map(names), [["e", "b"], ["a"]]);
    });

    // -- list --------------------------------------------------------------------

    test("list orders keys by UTF-8 bytes, not UTF-16 code units", async (t) => {
      const { storage } = await make(t);
      const expected = [
        "",
        "A",
        "Z",
        "a",
        "aa",
        "ab",
        "b",
        "\u007f",
        "\u0080",
        "\u00e9",
        "\u07ff",
        "\u0800",
        "\ud7ff",
        "\ue000",
        "\ufffd",
        "\uffff",
        "\u{10000}",
        "\u{1F600}",
        "\u{1F600}a",
        "\u{10FFFF}",
      ];
      await putKeys(storage, shuffle(expected, 1));
      assertKeys(names(await storage.list()), expected);
      assertKeys(names(await storage.list({ reverse: true })), [...expected].reverse());
      // "\uffff" is before an emoji although it's after it in UTF-16
      assert.ok("\uffff" > "\u{1F600}");
      assertKeys(names(await storage.list({ start: "\uffff", end: "\u{1F600}\u0000" })), [
        "\uffff",
        "\u{10000}",
        "\u{1F600}",
      ]);
    });

    test("list orders lone surrogates by code point (as their WTF-8 bytes)", async (t) => {
      const { storage } = await make(t);
      // U+D800..U+DFFF come after U+D7FF and before U+E000, and every
      // lone surrogate before every code point above U+FFFF
      const expected = [
        "\ud7ff",
        "\ud800",
        "\ud800a",
        "\udbff",
        "\udc00",
        "\udfff",
        "\ue000",
        "\uffff",
        "\u{10000}",
        "\u{10FFFF}",
      ];
      await putKeys(storage, shuffle(expected, 2));
      assertKeys(names(await storage.list()), expected);
      assertKeys(names(await storage.list({ reverse: true })), [...expected].reverse());
      // Paging hands each key over by its cursor
      const pages = await listPages(storage, { limit: 1 }, 20);
      assertKeys(pages.flatMap(names), expected, "paged");
      assertKeys(names(await storage.list({ start: "\ud800" })), expected.slice(1), "start");
      assertKeys(names(await storage.list({ start: "\ud800", end: "\u{10000}" })), expected.slice(1, -2), "start and end");
      const fromStart = await listPages(storage, { start: "\ud800", limit: 1 }, 20);
      assertKeys(fromStart.flatMap(names), expected.slice(1), "paged from start");
    });

    test("list: prefix", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "a/b", "a/c", "ab", "a\uffff", "a\u{1F600}", "b", "b/a", "", "A/b"]);
      assertKeys(names(await storage.list({ prefix: "a" })), ["a", "a/b", "a/c", "ab", "a\uffff", "a\u{1F600}"]);
      assertKeys(names(await storage.list({ prefix: "a/" })), ["a/b", "a/c"]);
      assertKeys(names(await storage.list({ prefix: "b" })), ["b", "b/a"]);
      assertKeys(names(await storage.list({ prefix: "c" })), []);
      assertKeys(names(await storage.list({ prefix: "a\uffff" })), ["a\uffff"]);
      assertKeys(names(await storage.list({ prefix: "" })), names(await storage.list()));
      assertKeys(names(await storage.list({ prefix: "a", reverse: true })), [
        "a\u{1F600}",
        "a\uffff",
        "ab",
        "a/c",
        "a/b",
        "a",
      ]);
    });

    test("list: excludePrefix", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "a/b", "a/c", "ab", "b", "b/a"]);
      assertKeys(names(await storage.list({ excludePrefix: "a/" })), ["a", "ab", "b", "b/a"]);
      assertKeys(names(await storage.list({ excludePrefix: "a" })), ["b", "b/a"]);
      assertKeys(names(await storage.list({ prefix: "a", excludePrefix: "a/" })), ["a", "ab"]);
      assertKeys(names(await storage.list({ excludePrefix: "a/", reverse: true })), ["b/a", "b", "ab", "a"]);
      const pages = await listPages(storage, { excludePrefix: "a/", limit: 1 });
      assertKeys(pages.flatMap(names), ["a", "ab", "b", "b/a"]);
      assert.equal(pages.length, 4);
    });

    test("list: start (inclusive) and end (exclusive)", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "b", "ba", "c", "d", "e"]);
      assertKeys(names(await storage.list({ start: "b" })), ["b", "ba", "c", "d", "e"]);
      assertKeys(names(await storage.list({ start: "bb" })), ["c", "d", "e"]);
      assertKeys(names(await storage.list({ end: "c" })), ["a", "b", "ba"]);
      assertKeys(names(await storage.list({ end: "c\u0000" })), ["a", "b", "ba", "c"]);
      assertKeys(names(await storage.list({ start: "b", end: "d" })), ["b", "ba", "c"]);
      assertKeys(names(await storage.list({ start: "b", end: "d", reverse: true })), ["c", "ba", "b"]);
      assertKeys(names(await storage.list({ start: "b", end: "b" })), []);
      assertKeys(names(await storage.list({ start: "d", end: "b" })), []);
      assertKeys(names(await storage.list({ start: "b", prefix: "c" })), ["c"]);
      assertKeys(names(await storage.list({ start: "bb", prefix: "b" })), []);
      assertKeys(names(await storage.list({ start: "b", end: "e", prefix: "b" })), ["b", "ba"]);
      assertKeys(names(await storage.list({ end: "b", prefix: "b" })), []);
      const pages = await listPages(storage, { start: "b", end: "e", limit: 2 });
      assert.deepEqual(pages.map(names), [["b", "ba"], ["c", "d"]]);
      const reverse = await listPages(storage, { start: "b", end: "e", limit: 2, reverse: true });
      assert.deepEqual(reverse.map(names), [["d", "c"], ["ba", "b"]]);
    });

    test("list: limit and cursor page through every key, forward and reverse", async (t) => {
      const { storage } = await make(t);
      const keys = Array.from({ length: 37 }, (_, i) => `key${String(i).padStart(2, "0")}`);
      await putKeys(storage, [...keys].reverse());
      for (const limit of [1, 2, 3, 10, 36, 37, 38, 1000]) {
        for (const reverse of [false, true]) {
          const pages = await listPages(storage, { limit, reverse });
          const label = `limit ${limit}${reverse ? " reverse" : ""}`;
          assertKeys(pages.flatMap(names), reverse ? [...keys].reverse() : keys, label);
          // Full pages until the last, and no empty page at the end
          assert.equal(pages.length, Math.ceil(keys.length / limit), label);
          for (const page of pages.slice(0, -1)) {
            assert.equal(page.keys.length, limit, label);
            assert.notEqual(page.cursor, "", label);
          }
          assert.ok(pages[pages.length - 1].keys.length > 0, label);
          // Metadata comes with every page
          for (const page of pages) {
            for (const key of page.keys) assert.deepEqual(key.metadata, { key: key.name });
          }
        }
      }
    });

    test("list: cursor is \"\" exactly when the listing is complete", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "b", "c", "d"]);
      let page = await storage.list({ limit: 4 });
      assertKeys(names(page), ["a", "b", "c", "d"]);
      assert.equal(page.cursor, "");
      page = await storage.list({ limit: 3 });
      assertKeys(names(page), ["a", "b", "c"]);
      assert.notEqual(page.cursor, "");
      page = await storage.list({ limit: 3, cursor: page.cursor });
      assertKeys(names(page), ["d"]);
      assert.equal(page.cursor, "");
      page = await storage.list({ limit: 2 });
      page = await storage.list({ limit: 2, cursor: page.cursor });
      assertKeys(names(page), ["c", "d"]);
      assert.equal(page.cursor, "");
      page = await storage.list();
      assert.equal(page.cursor, "");
      // With a prefix, keys after the prefix don't count as more
      page = await storage.list({ prefix: "b", limit: 1 });
      assertKeys(names(page), ["b"]);
      assert.equal(page.cursor, "");
      page = await storage.list({ end: "c", limit: 2 });
      assertKeys(names(page), ["a", "b"]);
      assert.equal(page.cursor, "");
      page = await storage.list({ reverse: true, start: "c", limit: 2 });
      assertKeys(names(page), ["d", "c"]);
      assert.equal(page.cursor, "");
    });

    test("list: a cursor survives its key being deleted (stable pagination)", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["page0", "page1", "page2", "page3", "page4"]);
      let page = await storage.list({ limit: 2 });
      assertKeys(names(page), ["page0", "page1"]);
      assert.equal(await storage.delete("page1"), true);
      page = await storage.list({ limit: 2, cursor: page.cursor });
      assertKeys(names(page), ["page2", "page3"]);
      assert.notEqual(page.cursor, "");
      page = await storage.list({ limit: 2, cursor: page.cursor });
      assertKeys(names(page), ["page4"]);
      assert.equal(page.cursor, "");

      // The same in reverse, deleting the cursor's key and the next one
      page = await storage.list({ limit: 1, reverse: true });
      assertKeys(names(page), ["page4"]);
      await storage.delete("page4");
      await storage.delete("page3");
      page = await storage.list({ limit: 1, reverse: true, cursor: page.cursor });
      assertKeys(names(page), ["page2"]);
      // Keys put behind the cursor meanwhile aren't listed, those ahead are
      await storage.put("page5", { value: utf8("v") });
      await storage.put("page1", { value: utf8("v") });
      page = await storage.list({ limit: 5, reverse: true, cursor: page.cursor });
      assertKeys(names(page), ["page1", "page0"]);
      assert.equal(page.cursor, "");
    });

    test("list: delimiter rolls keys up into delimitedPrefixes", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "b/1", "b/2", "b/3/x", "c/1", "d", "d/", "e"]);
      assert.equal("delimitedPrefixes" in (await storage.list()), false);

      let result = await storage.list({ delimiter: "/" });
      assertKeys(names(result), ["a", "d", "e"]);
      assert.deepEqual(result.delimitedPrefixes, ["b/", "c/", "d/"]);
      assert.equal(result.cursor, "");

      result = await storage.list({ delimiter: "/", reverse: true });
      assertKeys(names(result), ["e", "d", "a"]);
      assert.deepEqual(result.delimitedPrefixes, ["d/", "c/", "b/"]);

      // After a prefix, only the part after it is looked at
      result = await storage.list({ delimiter: "/", prefix: "b/" });
      assertKeys(names(result), ["b/1", "b/2"]);
      assert.deepEqual(result.delimitedPrefixes, ["b/3/"]);
      result = await storage.list({ delimiter: "/", prefix: "b" });
      assertKeys(names(result), []);
      assert.deepEqual(result.delimitedPrefixes, ["b/"]);

      // No match: every key is a key, and delimitedPrefixes is []
      result = await storage.list({ delimiter: "#" });
      assertKeys(names(result), ["a", "b/1", "b/2", "b/3/x", "c/1", "d", "d/", "e"]);
      assert.deepEqual(result.delimitedPrefixes, []);

      // Longer delimiters
      await storage.put("x::y::z", { value: utf8("v") });
      await storage.put("x::w", { value: utf8("v") });
      result = await storage.list({ delimiter: "::", prefix: "x" });
      assertKeys(names(result), []);
      assert.deepEqual(result.delimitedPrefixes, ["x::"]);
      result = await storage.list({ delimiter: "::", prefix: "x::" });
      assertKeys(names(result), ["x::w"]);
      assert.deepEqual(result.delimitedPrefixes, ["x::y::"]);
    });

    test("list: delimited prefixes count towards the limit, and cursors continue after a group", async (t) => {
      const { storage } = await make(t);
      await putKeys(storage, ["a", "b/1", "b/2", "b/3", "c", "d/1", "d/2/x", "e"]);
      const forward = await listPages(storage, { delimiter: "/", limit: 2 });
      assert.deepEqual(
        forward.map((page) => [names(page), page.delimitedPrefixes]),
        [
          [["a"], ["b/"]],
          [["c"], ["d/"]],
          [["e"], []],
        ]
      );
      const reverse = await listPages(storage, { delimiter: "/", limit: 2, reverse: true });
      assert.deepEqual(
        reverse.map((page) => [names(page), page.delimitedPrefixes]),
        [
          [["e"], ["d/"]],
          [["c"], ["b/"]],
          [["a"], []],
        ]
      );
      const one = await listPages(storage, { delimiter: "/", limit: 1 });
      assert.deepEqual(
        one.map((page) => [...names(page), ...page.delimitedPrefixes!]),
        [["a"], ["b/"], ["c"], ["d/"], ["e"]]
      );
      // A group ending the listing leaves no page behind it
      const last = await listPages(storage, { delimiter: "/", prefix: "d", limit: 1 });
      assert.deepEqual(
        last.map((page) => [names(page), page.delimitedPrefixes]),
        [[[], ["d/"]]]
      );
    });

    test("list: a rolled-up group larger than a batch is skipped whole", async (t) => {
      const { storage } = await make(t);
      const group = Array.from({ length: 70 }, (_, i) => `g/${String(i).padStart(2, "0")}`);
      await storage.putMany([...group, "f", "h"].map((key) => [key, { value: utf8(key) }]));
      for (const reverse of [false, true]) {
        const pages = await listPages(storage, { delimiter: "/", limit: 1, reverse });
        const items = pages.map((page) => [...names(page), ...page.delimitedPrefixes!]);
        assert.deepEqual(items, reverse ? [["h"], ["g/"], ["f"]] : [["f"], ["g/"], ["h"]]);
      }
      const pages = await listPages(storage, { delimiter: "/", limit: 2 });
      assert.deepEqual(
        pages.map((page) => [names(page), page.delimitedPrefixes]),
        [
          [["f"], ["g/"]],
          [["h"], []],
        ]
      );
    });

    test("list: skipMetadata leaves metadata out, names and expirations in", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 1000;
      await storage.put("a", { value: utf8("a"), metadata: { a: 1 } });
      await storage.put("b", { value: utf8("b"), metadata: { b: 1 }, expiration });
      const skipped = await storage.list({}, true);
      assertKeys(names(skipped), ["a", "b"]);
      assert.equal(skipped.keys[0].metadata, undefined);
      assert.equal(skipped.keys[1].metadata, undefined);
      assert.equal(skipped.keys[1].expiration, expiration);
      const full = await storage.list({}, false);
      assert.deepEqual(full.keys[0].metadata, { a: 1 });
      assert.deepEqual(full.keys[1].metadata, { b: 1 });
      assert.equal(full.keys[1].expiration, expiration);
    });

    // -- batches -------------------------------------------------------------

    test("hasMany, getMany, putMany, deleteMany", async (t) => {
      const { storage, clock } = await make(t);
      const expiration = clock.seconds + 10;
      await storage.putMany([
        ["a", { value: utf8("A"), metadata: { a: 1 } }],
        ["b", { value: utf8("B"), expiration }],
        ["c", { value: utf8("C") }],
        ["soon", { value: utf8("S"), expiration }],
      ]);
      assert.equal(await storage.hasMany(["a", "b", "c", "missing"]), 3);
      assert.equal(await storage.hasMany([]), 0);

      const got = await storage.getMany(["c", "missing", "a", "b"]);
      assert.equal(got.length, 4);
      assert.equal(text(got[0]!.value), "C");
      assert.equal(got[1], undefined);
      assert.equal(text(got[2]!.value), "A");
      assert.deepEqual(got[2]!.metadata, { a: 1 });
      assert.equal(got[3]!.expiration, expiration);
      const skipped = await storage.getMany(["a"], true);
      assert.equal(text(skipped[0]!.value), "A");
      assert.equal(skipped[0]!.metadata, undefined);
      assert.deepEqual(await storage.getMany([]), []);

      await storage.putMany([]);
      assertKeys(names(await storage.list()), ["a", "b", "c", "soon"]);

      // Expired and missing keys don't count as deleted
      clock.seconds = expiration;
      assert.equal(await storage.hasMany(["a", "b", "c", "soon"]), 2);
      assert.equal(await storage.deleteMany(["a", "b", "missing"]), 1);
      assert.equal(await storage.deleteMany([]), 0);
      assertKeys(names(await storage.list()), ["c"]);
      assert.equal(await storage.deleteMany(["c", "soon"]), 1);
      assertKeys(names(await storage.list()), []);
    });

    test("putMany overwrites existing entries whole", async (t) => {
      const { storage, clock } = await make(t);
      await storage.put("a", { value: utf8("old"), metadata: { old: true }, expiration: clock.seconds + 5 });
      await storage.putMany([
        ["a", { value: utf8("new") }],
        ["b", { value: utf8("b"), metadata: { b: true } }],
      ]);
      clock.seconds += 10;
      const a = await storage.get("a");
      assert.equal(text(a!.value), "new");
      assert.equal(a!.metadata, undefined);
      assert.equal(a!.expiration, undefined);
      assert.deepEqual((await storage.get("b"))!.metadata, { b: true });
    });

    test("putMany with an entry that can't be serialised rejects and stores nothing", async (t) => {
      const { storage } = await make(t);
      await storage.put("a", { value: utf8("old") });
      await assert.rejects(
        storage.putMany([
          ["a", { value: utf8("new") }],
          ["b", { value: utf8("b") }],
          ["c", { value: utf8("c"), metadata: { big: 1n } }],
        ])
      );
      // Let any write still under way land
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(text((await storage.get("a"))!.value), "old");
      assert.equal(await storage.hasMany(["b", "c"]), 0);
      assertKeys(names(await storage.list()), ["a"]);
    });

    // -- keys of every kind ----------------------------------------------------

    test("adversarial keys round-trip and list exactly, in order", async (t) => {
      const { storage } = await make(t);
      const keys = adversarialKeys;
      assert.equal(new Set(keys).size, keys.length);
      assert.equal(Buffer.byteLength(keys.find((key) => key.startsWith("\u00e9"))!), 512);
      for (let i = 0; i < keys.length; i++) {
        await storage.put(keys[i], { value: utf8(`value ${i}`), metadata: { i } });
      }
      for (let i = 0; i < keys.length; i++) {
        const got = await storage.get(keys[i]);
        assert.ok(got !== undefined, `get ${show(keys[i])}`);
        assert.equal(text(got.value), `value ${i}`, `get ${show(keys[i])}`);
        assert.deepEqual(got.metadata, { i }, `get ${show(keys[i])}`);
        assert.equal(await storage.has(keys[i]), true, `has ${show(keys[i])}`);
      }
      const expected = [...keys].sort(byteOrder);
      const listed = await storage.list();
      assertKeys(names(listed), expected);
      for (const key of listed.keys) assert.deepEqual(key.metadata, { i: keys.indexOf(key.name) });
      assertKeys(names(await storage.list({ reverse: true })), [...expected].reverse(), "reverse");
      assertKeys((await listPages(storage, { limit: 7 })).flatMap(names), expected, "paged");
      for (const prefix of ["a", "a/", "p", "foo", "k", ".", "/", "\u00e9"]) {
        assertKeys(
          names(await storage.list({ prefix })),
          expected.filter((key) => key.startsWith(prefix)),
          `prefix ${show(prefix)}`
        );
      }
      // Deleting one of a family leaves the others
      assert.equal(await storage.delete("a/b"), true);
      assert.equal(await storage.has("a"), true);
      assert.equal(await storage.has("a/b/c"), true);
      assert.equal(await storage.delete("foo"), true);
      assert.equal(await storage.has("foo.meta.json"), true);
      assert.equal(await storage.delete("user"), true);
      assert.equal(await storage.has("User"), true);
      assert.equal(await storage.delete(""), true);
      assert.equal(await storage.has(""), false);
      // Deleting everything leaves nothing listed
      assert.equal(await storage.deleteMany(keys), keys.length - 4);
      assertKeys(names(await storage.list()), []);
    });

    test(`${options.propertyKeys} generated keys round-trip and list in order`, async (t) => {
      const { storage } = await make(t);
      const seed = options.seed ?? 0x5eed;
      const keys = generateKeys(options.propertyKeys, seed);
      const valueOf = (i: number) => utf8(i % 97 === 0 ? `${i}:${"x".repeat(5000)}` : `${i}`);
      const chunk = 250;
      for (let i = 0; i < keys.length; i += chunk) {
        await storage.putMany(
          keys.slice(i, i + chunk).map((key, j) => [
            key,
            { value: valueOf(i + j), metadata: (i + j) % 3 === 0 ? { i: i + j } : undefined },
          ])
        );
      }
      for (let i = 0; i < keys.length; i += chunk) {
        const got = await storage.getMany(keys.slice(i, i + chunk));
        for (let j = 0; j < got.length; j++) {
          const key = keys[i + j];
          assert.ok(got[j] !== undefined, `get ${show(key)} (seed ${seed})`);
          assert.ok(sameBytes(got[j]!.value, valueOf(i + j)), `value of ${show(key)} (seed ${seed})`);
        }
      }

      const expected = [...keys].sort(byteOrder);
      const listed = await storage.list();
      assertKeys(names(listed), expected, `list (seed ${seed})`);
      const index = new Map(keys.map((key, i) => [key, i]));
      for (const { name, metadata } of listed.keys) {
        const i = index.get(name)!;
        assert.deepEqual(metadata, i % 3 === 0 ? { i } : undefined, `metadata of ${show(name)}`);
      }

      // compareKeys is the same order as UTF-8 bytes for well-formed keys
      const wellFormed = keys.filter((key) => key.isWellFormed());
      assert.ok(wellFormed.length > keys.length / 4);
      const rand = random(seed + 1);
      for (let n = 0; n < 2000; n++) {
        const a = wellFormed[Math.floor(rand() * wellFormed.length)];
        const b = wellFormed[Math.floor(rand() * wellFormed.length)];
        const bytes = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
        assert.equal(Math.sign(compareKeys(a, b)), bytes, `compareKeys(${show(a)}, ${show(b)})`);
      }
      const sortedWellFormed = [...wellFormed].sort(compareKeys);
      assertKeys(sortedWellFormed, expected.filter((key) => key.isWellFormed()), "compareKeys sort");

      // Paging, both ways
      const limit = Math.ceil(keys.length / 6);
      assertKeys((await listPages(storage, { limit })).flatMap(names), expected, "paged");
      assertKeys(
        (await listPages(storage, { limit, reverse: true })).flatMap(names),
        [...expected].reverse(),
        "paged in reverse"
      );

      // Prefixes of whole code points, well-formed (see the report on lone
      // surrogates in prefixes)
      let prefixes = 0;
      for (let n = 0; prefixes < 6 && n < 1000; n++) {
        const key = keys[Math.floor(rand() * keys.length)];
        const prefix = Array.from(key).slice(0, 1 + Math.floor(rand() * 2)).join("");
        if (prefix === "" || !prefix.isWellFormed()) continue;
        prefixes++;
        assertKeys(
          names(await storage.list({ prefix })),
          expected.filter((candidate) => candidate.startsWith(prefix)),
          `prefix ${show(prefix)}`
        );
      }
      assert.equal(prefixes, 6);

      // Delete a third, check the rest
      const gone = keys.filter((_, i) => i % 3 === 1);
      assert.equal(await storage.deleteMany(gone), gone.length);
      const goneSet = new Set(gone);
      assertKeys(names(await storage.list()), expected.filter((key) => !goneSet.has(key)), "after deletes");
    });
  });
}
