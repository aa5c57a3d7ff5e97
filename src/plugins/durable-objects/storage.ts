// A Durable Object's transactional storage: values are V8-serialised
// (structured clone), writes made without an intervening await are flushed
// to the backend together as one batch, reads see unflushed writes, every
// operation closes the object's input gate and every write holds its output
// gate until confirmed. Transactions use optimistic concurrency control.
import { AsyncLocalStorage } from "node:async_hooks";
import { deserialize, serialize } from "node:v8";
import type { Storage, StoredValueMeta } from "../../shared/storage.js";
import { Mutex } from "../../shared/sync/mutex.js";
import {
  OutputGate,
  runWithInputGateClosed,
  waitUntilOnOutputGate,
} from "../../shared/sync/gate.js";
import { compareKeys } from "../../storage/keys.js";
import { DurableObjectError } from "./errors.js";
import {
  type Overlay,
  overlayGetMany,
  overlayListNames,
  overlayLookup,
} from "./shadow.js";

const MAX_KEYS = 128;
const MAX_KEY_SIZE = 2048; /* 2KiB */
const MAX_VALUE_SIZE = 128 * 1024; /* 128KiB */
// V8's serialisation adds a header and tags: allow some slack over the limit
const ENFORCED_MAX_VALUE_SIZE = MAX_VALUE_SIZE + 32;
/** Commits remembered for validating transactions */
const MAX_REMEMBERED_COMMITS = 128;

/** Hidden key holding the object's alarm time (in its metadata) */
export const ALARM_KEY = "__MINIFLARE_ALARMS__";
/** Hidden key holding a multi-key batch while it is being applied */
export const JOURNAL_KEY = "__MINIFLARE_JOURNAL__";
const HIDDEN_KEYS: ReadonlySet<string> = new Set([ALARM_KEY, JOURNAL_KEY]);
const EMPTY = new Uint8Array(0);

export interface DurableObjectGetOptions {
  allowConcurrency?: boolean;
  noCache?: boolean;
}

export interface DurableObjectPutOptions extends DurableObjectGetOptions {
  allowUnconfirmed?: boolean;
}

export interface DurableObjectListOptions extends DurableObjectGetOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

/** Where an object's alarm is scheduled (see alarms.ts) */
export interface AlarmBridge {
  setAlarm(scheduledTime: number): Promise<void>;
  deleteAlarm(): Promise<void>;
}

export interface DurableObjectStorageOptions {
  alarms?: AlarmBridge;
  /**
   * Whether `putMany`/`deleteMany` on the backend may half-apply when the
   * process dies (files): multi-key batches then go through a journal
   */
  journal?: boolean;
  /** Called when a write fails: the object's in-memory state is suspect */
  onWriteFailure?: (error: unknown) => void;
}

function undefinedKeyError(op: string, target: string): TypeError {
  return new TypeError(
    `Failed to execute '${op}' on '${target}': parameter 1 is not of type 'variant'. (key is undefined)`
  );
}

function assertKeySize(key: string, many = false): void {
  // Quick check before counting bytes: UTF-8 is at most 3 bytes per UTF-16 unit
  if (key.length * 3 <= MAX_KEY_SIZE || Buffer.byteLength(key) <= MAX_KEY_SIZE) return;
  if (many) {
    throw new RangeError(`Key "${key}" is larger than the limit of ${MAX_KEY_SIZE} bytes.`);
  }
  throw new RangeError(`Keys cannot be larger than ${MAX_KEY_SIZE} bytes.`);
}

function serializeValue(value: unknown, key?: string): StoredValueMeta {
  const serialized = serialize(value);
  if (serialized.byteLength > ENFORCED_MAX_VALUE_SIZE) {
    if (key !== undefined) {
      throw new RangeError(`Value for key "${key}" is above the limit of ${MAX_VALUE_SIZE} bytes.`);
    }
    throw new RangeError(`Values cannot be larger than ${MAX_VALUE_SIZE} bytes.`);
  }
  return { value: serialized };
}

function deserializeValue(stored: StoredValueMeta): unknown {
  try {
    return deserialize(stored.value);
  } catch (e: any) {
    throw new DurableObjectError(
      "ERR_DESERIALIZATION",
      "Unable to deserialize stored Durable Object data due to an invalid or unsupported version.\n" +
        "The Durable Object data storage format changed in Miniflare 2. You cannot load Durable Object data created with Miniflare 1 and must delete it.",
      e
    );
  }
}

/** Validated keys of a get() or delete(): strings, at most 128 */
function normaliseKeys(keys: unknown[]): string[] {
  if (keys.length > MAX_KEYS) {
    throw new RangeError(`Maximum number of keys is ${MAX_KEYS}.`);
  }
  const result: string[] = [];
  for (const key of keys) {
    if (key === undefined) continue;
    const name = String(key);
    assertKeySize(name, true);
    result.push(name);
  }
  return result;
}

function normaliseKey(key: unknown): string {
  const name = String(key);
  assertKeySize(name);
  return name;
}

/** Validated, serialised entries of a put() */
function normalisePutEntries(keyEntries: unknown, value: unknown): [string, StoredValueMeta][] {
  if (typeof keyEntries !== "object" || keyEntries === null) {
    const key = normaliseKey(keyEntries);
    if (value === undefined) throw new TypeError("put() called with undefined value.");
    return [[key, serializeValue(value)]];
  }
  const entries = Object.entries(keyEntries);
  if (entries.length > MAX_KEYS) {
    throw new RangeError(`Maximum number of pairs is ${MAX_KEYS}.`);
  }
  const result: [string, StoredValueMeta][] = [];
  for (const [key, entryValue] of entries) {
    assertKeySize(key, true);
    if (entryValue === undefined) continue;
    result.push([key, serializeValue(entryValue, key)]);
  }
  return result;
}

function validateListOptions(options: DurableObjectListOptions): void {
  if (options.limit !== undefined && options.limit <= 0) {
    throw new TypeError("List limit must be positive.");
  }
  if (options.start !== undefined && options.startAfter !== undefined) {
    throw new TypeError("list() cannot be called with both start and startAfter values.");
  }
}

function alarmTime(scheduledTime: number | Date): number {
  const time = typeof scheduledTime === "number" ? scheduledTime : scheduledTime.getTime();
  if (typeof time !== "number" || Number.isNaN(time)) {
    throw new TypeError("setAlarm() requires a number or a Date");
  }
  if (time <= 0) {
    throw new TypeError("setAlarm() cannot be called with an alarm time <= 0");
  }
  return time;
}

function alarmEntry(time: number | null): StoredValueMeta | null {
  return time === null ? null : { value: EMPTY, metadata: { scheduledTime: time } };
}

function alarmOf(stored: StoredValueMeta | null | undefined): number | null {
  const time = (stored?.metadata as { scheduledTime?: unknown } | undefined)?.scheduledTime;
  return typeof time === "number" ? time : null;
}

/** One flush to the backend: the writes of one tick (or one transaction) */
interface Batch {
  readonly overlay: Overlay;
  /** Deleted keys whose prior existence is only known to the backend */
  readonly lookups: Set<string>;
  /** Of `lookups`, the keys the backend had (once flushed) */
  existed?: Set<string>;
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Writers await it; an unawaited failed write mustn't crash the process
  done.catch(() => {});
  return { overlay: new Map(), lookups: new Set(), done, resolve, reject };
}

const kInner = Symbol("kInner");
const kCommitted = Symbol("kCommitted");
const kGetMany = Symbol("kGetMany");
const kGetOne = Symbol("kGetOne");
const kListNames = Symbol("kListNames");
const kList = Symbol("kList");
const kGetAlarm = Symbol("kGetAlarm");
const kHas = Symbol("kHas");
const kCommitCount = Symbol("kCommitCount");
const kStartCount = Symbol("kStartCount");
const kReadSet = Symbol("kReadSet");
const kOverlay = Symbol("kOverlay");
const kRolledBack = Symbol("kRolledBack");
/** False once the object turns out to have no alarm() handler */
export const kAlarmExists = Symbol("kAlarmExists");

// Marks transactions re-running after a conflict, so retries run one at a
// time and a transaction nested in a retry doesn't wait for itself
const retryingStorage = new AsyncLocalStorage<Set<DurableObjectStorage>>();

export class DurableObjectStorage {
  readonly #inner: Storage;
  readonly #alarms?: AlarmBridge;
  readonly #journal: boolean;
  readonly #onWriteFailure?: (error: unknown) => void;
  /** Resolves once a journal left by a crash has been replayed */
  #ready?: Promise<void>;

  /** Writes not yet handed to the backend */
  #pending?: Batch;
  /** The batch being written to the backend */
  #flushing?: Batch;
  /** Resolves when every write so far has been confirmed (never rejects) */
  #settled: Promise<void> = Promise.resolve();
  #flushes = 0;

  // Optimistic concurrency control: keys written by recent commits
  #commitCount = 0;
  readonly #writeSets = new Map<number, Set<string>>();
  /** Key sets collecting writes while a deleteAll() lists */
  readonly #writeObservers = new Set<Set<string>>();
  readonly #retryMutex = new Mutex();

  [kAlarmExists] = true;

  constructor(inner: Storage, options: DurableObjectStorageOptions = {}) {
    this.#inner = inner;
    this.#alarms = options.alarms;
    this.#journal = options.journal ?? false;
    this.#onWriteFailure = options.onWriteFailure;
    if (this.#journal) {
      this.#ready = this.#recover();
      this.#ready.catch(() => {});
    }
  }

  // --- Internals shared with transactions -------------------------------

  /** Unconfirmed writes, newest first */
  get [kInner](): Overlay[] {
    const overlays: Overlay[] = [];
    if (this.#pending) overlays.push(this.#pending.overlay);
    if (this.#flushing) overlays.push(this.#flushing.overlay);
    return overlays;
  }

  async #getStored(overlays: readonly Overlay[], keys: string[]): Promise<(StoredValueMeta | undefined)[]> {
    if (this.#ready) await this.#ready;
    return overlayGetMany(overlays, this.#inner, keys);
  }

  async [kGetMany](overlays: readonly Overlay[], keys: string[]): Promise<Map<string, unknown>> {
    keys.sort(compareKeys);
    const values = await this.#getStored(overlays, keys);
    const result = new Map<string, unknown>();
    for (let i = 0; i < keys.length; i++) {
      const stored = values[i];
      if (stored !== undefined) result.set(keys[i], deserializeValue(stored));
    }
    return result;
  }

  async [kGetOne](overlays: readonly Overlay[], key: string): Promise<unknown> {
    const [stored] = await this.#getStored(overlays, [key]);
    return stored === undefined ? undefined : deserializeValue(stored);
  }

  async [kListNames](overlays: readonly Overlay[], options: DurableObjectListOptions): Promise<string[]> {
    if (this.#ready) await this.#ready;
    let { start, limit } = options;
    const { startAfter } = options;
    if (startAfter !== undefined) {
      start = startAfter;
      if (limit !== undefined) limit++;
    }
    const names = await overlayListNames(
      overlays,
      this.#inner,
      { start, end: options.end, prefix: options.prefix, reverse: options.reverse, limit },
      HIDDEN_KEYS
    );
    if (startAfter !== undefined) {
      const index = names.indexOf(startAfter);
      if (index !== -1) names.splice(index, 1);
      if (options.limit !== undefined && names.length > options.limit) names.length = options.limit;
    }
    return names;
  }

  async [kList](overlays: readonly Overlay[], options: DurableObjectListOptions): Promise<Map<string, unknown>> {
    const names = await this[kListNames](overlays, options);
    const values = await this.#getStored(overlays, names);
    const result = new Map<string, unknown>();
    for (let i = 0; i < names.length; i++) {
      const stored = values[i];
      // undefined if deleted between listing and reading
      if (stored !== undefined) result.set(names[i], deserializeValue(stored));
    }
    return result;
  }

  async [kGetAlarm](overlays: readonly Overlay[]): Promise<number | null> {
    const shadowed = overlayLookup(overlays, ALARM_KEY);
    if (shadowed !== undefined) return alarmOf(shadowed);
    if (this.#ready) await this.#ready;
    return alarmOf(await this.#inner.get(ALARM_KEY));
  }

  /** Whether `key` exists as `overlays` over the backend see it */
  async [kHas](overlays: readonly Overlay[], key: string): Promise<boolean> {
    const shadowed = overlayLookup(overlays, key);
    if (shadowed !== undefined) return shadowed !== null;
    if (this.#ready) await this.#ready;
    return this.#inner.has(key);
  }

  get [kCommitCount](): number {
    return this.#commitCount;
  }

  #recordCommit(keys: Iterable<string>): void {
    const writeSet = new Set(keys);
    this.#commitCount++;
    this.#writeSets.set(this.#commitCount, writeSet);
    this.#writeSets.delete(this.#commitCount - MAX_REMEMBERED_COMMITS);
    for (const observer of this.#writeObservers) {
      for (const key of writeSet) observer.add(key);
    }
  }

  /** Whether a commit since `startCount` wrote any key in `readSet` */
  #conflicts(startCount: number, readSet: ReadonlySet<string>): boolean {
    for (let t = startCount + 1; t <= this.#commitCount; t++) {
      const writeSet = this.#writeSets.get(t);
      if (writeSet === undefined) return true; // forgotten: assume the worst
      for (const key of writeSet) if (readSet.has(key)) return true;
    }
    return false;
  }

  /**
   * Adds `writes` to the next flush, synchronously, so later reads see them
   * in program order. Returns the batch; deleted keys whose existence isn't
   * known yet are added to its lookups.
   */
  #stage(writes: Iterable<[string, StoredValueMeta | null]>, lookups?: string[]): Batch {
    let batch = this.#pending;
    if (batch === undefined) {
      batch = this.#pending = newBatch();
      // Writes of the same tick go in the same batch
      queueMicrotask(this.#scheduleFlush);
    }
    const keys: string[] = [];
    for (const [key, value] of writes) {
      batch.overlay.set(key, value);
      keys.push(key);
    }
    if (lookups) for (const key of lookups) batch.lookups.add(key);
    this.#recordCommit(keys);
    return batch;
  }

  #scheduleFlush = (): void => {
    const batch = this.#pending;
    if (batch === undefined) return;
    this.#flushes++;
    this.#settled = this.#settled.then(() => this.#flush(batch));
  };

  async #flush(batch: Batch): Promise<void> {
    // Only now does the batch stop collecting writes
    if (this.#pending === batch) this.#pending = undefined;
    this.#flushing = batch;
    try {
      if (this.#ready) await this.#ready;
      if (batch.lookups.size > 0) {
        const lookups = [...batch.lookups];
        const found = await Promise.all(lookups.map((key) => this.#inner.has(key)));
        batch.existed = new Set(lookups.filter((_, i) => found[i]));
      }
      await this.#apply(batch.overlay);
      const alarm = batch.overlay.get(ALARM_KEY);
      if (alarm !== undefined && this.#alarms) {
        const time = alarmOf(alarm);
        if (time === null) await this.#alarms.deleteAlarm();
        else await this.#alarms.setAlarm(time);
      }
      batch.resolve();
    } catch (e) {
      batch.reject(e);
      this.#onWriteFailure?.(e);
    } finally {
      // Confirmed writes are read from the backend from now on; failed ones
      // are forgotten, so they are never visible
      if (this.#flushing === batch) this.#flushing = undefined;
      this.#flushes--;
    }
  }

  async #apply(overlay: Overlay): Promise<void> {
    const puts: [string, StoredValueMeta][] = [];
    const deletes: string[] = [];
    for (const [key, value] of overlay) {
      if (value === null) deletes.push(key);
      else puts.push([key, value]);
    }
    const journal = this.#journal && puts.length + deletes.length > 1;
    if (journal) {
      await this.#inner.put(JOURNAL_KEY, {
        value: serialize({ puts: puts.map(([key, { value, metadata }]) => [key, value, metadata]), deletes }),
      });
    }
    if (puts.length > 0) await this.#inner.putMany(puts);
    if (deletes.length > 0) await this.#inner.deleteMany(deletes);
    if (journal) await this.#inner.delete(JOURNAL_KEY);
  }

  /** Finishes a batch a killed process left half-applied */
  async #recover(): Promise<void> {
    const stored = await this.#inner.get(JOURNAL_KEY, true);
    if (stored === undefined) return;
    let journal: { puts: [string, Uint8Array, unknown][]; deletes: string[] };
    try {
      journal = deserialize(stored.value);
    } catch {
      // Torn journal: the batch never started applying
      await this.#inner.delete(JOURNAL_KEY);
      return;
    }
    const puts = journal.puts.map(
      ([key, value, metadata]) => [key, { value, metadata }] as [string, StoredValueMeta]
    );
    if (puts.length > 0) await this.#inner.putMany(puts);
    if (journal.deletes.length > 0) await this.#inner.deleteMany(journal.deletes);
    await this.#inner.delete(JOURNAL_KEY);
  }

  /** Stages `writes`, returning a promise of their confirmation, gated */
  #write<T>(
    options: DurableObjectPutOptions | undefined,
    stage: () => Batch,
    result: (batch: Batch) => T
  ): Promise<T> {
    const batch = stage();
    const confirmed = batch.done.then(() => result(batch));
    return waitUntilOnOutputGate(
      runWithInputGateClosed(() => confirmed, options?.allowConcurrency),
      options?.allowUnconfirmed
    );
  }

  // --- Public API ---------------------------------------------------------

  get(key: string, options?: DurableObjectGetOptions): Promise<unknown>;
  get(keys: string[], options?: DurableObjectGetOptions): Promise<Map<string, unknown>>;
  async get(keys: unknown, options?: DurableObjectGetOptions): Promise<unknown> {
    if (keys === undefined) throw undefinedKeyError("get", "DurableObjectStorage");
    if (Array.isArray(keys)) {
      const names = normaliseKeys(keys);
      return runWithInputGateClosed(() => this[kGetMany](this[kInner], names), options?.allowConcurrency);
    }
    const name = normaliseKey(keys);
    return runWithInputGateClosed(() => this[kGetOne](this[kInner], name), options?.allowConcurrency);
  }

  put(key: string, value: unknown, options?: DurableObjectPutOptions): Promise<void>;
  put(entries: Record<string, unknown>, options?: DurableObjectPutOptions): Promise<void>;
  async put(keyEntries: unknown, valueOptions?: unknown, options?: DurableObjectPutOptions): Promise<void> {
    if (keyEntries === undefined) throw undefinedKeyError("put", "DurableObjectStorage");
    const entries = normalisePutEntries(keyEntries, valueOptions);
    if (typeof keyEntries === "object" && keyEntries !== null && options === undefined) {
      options = valueOptions as DurableObjectPutOptions | undefined;
    }
    return this.#write(options, () => this.#stage(entries), () => undefined);
  }

  delete(key: string, options?: DurableObjectPutOptions): Promise<boolean>;
  delete(keys: string[], options?: DurableObjectPutOptions): Promise<number>;
  async delete(keys: unknown, options?: DurableObjectPutOptions): Promise<boolean | number> {
    if (keys === undefined) throw undefinedKeyError("delete", "DurableObjectStorage");
    const many = Array.isArray(keys);
    const names = many ? normaliseKeys(keys) : [normaliseKey(keys)];
    let known = 0;
    const lookups: string[] = [];
    return this.#write(
      options,
      () => {
        const overlays = this[kInner];
        const writes: [string, null][] = [];
        const seen = new Set<string>();
        for (const name of names) {
          // A key repeated in one call is deleted (and counted) once
          if (seen.has(name)) continue;
          seen.add(name);
          const shadowed = overlayLookup(overlays, name);
          if (shadowed === undefined) {
            lookups.push(name);
          } else if (shadowed !== null) {
            known++;
          }
          writes.push([name, null]);
        }
        return this.#stage(writes, lookups);
      },
      (batch) => {
        let count = known;
        for (const name of lookups) if (batch.existed?.has(name)) count++;
        return many ? count : count > 0;
      }
    );
  }

  async deleteAll(options?: DurableObjectPutOptions): Promise<void> {
    // Deletes the keys present now: writes made while listing are kept
    const written = new Set<string>();
    this.#writeObservers.add(written);
    let names: string[];
    try {
      names = await runWithInputGateClosed(
        () => this[kListNames](this[kInner], {}),
        options?.allowConcurrency
      );
    } finally {
      this.#writeObservers.delete(written);
    }
    const writes: [string, null][] = [];
    for (const name of names) if (!written.has(name)) writes.push([name, null]);
    if (writes.length === 0) return;
    return this.#write(options, () => this.#stage(writes), () => undefined);
  }

  async list(options: DurableObjectListOptions = {}): Promise<Map<string, unknown>> {
    validateListOptions(options);
    return runWithInputGateClosed(() => this[kList](this[kInner], options), options.allowConcurrency);
  }

  async getAlarm(options?: DurableObjectGetOptions): Promise<number | null> {
    if (!this[kAlarmExists]) return null;
    return runWithInputGateClosed(() => this[kGetAlarm](this[kInner]), options?.allowConcurrency);
  }

  async setAlarm(scheduledTime: number | Date, options?: DurableObjectPutOptions): Promise<void> {
    if (!this[kAlarmExists]) {
      throw new Error(
        "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
      );
    }
    const time = alarmTime(scheduledTime);
    return this.#write(options, () => this.#stage([[ALARM_KEY, alarmEntry(time)]]), () => undefined);
  }

  async deleteAlarm(options?: DurableObjectPutOptions): Promise<void> {
    return this.#write(options, () => this.#stage([[ALARM_KEY, null]]), () => undefined);
  }

  /** Resolves once every write made so far has been confirmed (or failed) */
  sync(): Promise<void> {
    return this.#flushes === 0 && this.#pending === undefined
      ? Promise.resolve()
      : this.#settledAfterPending();
  }

  async #settledAfterPending(): Promise<void> {
    // A pending batch is chained on the next microtask
    while (this.#pending !== undefined || this.#flushes > 0) {
      if (this.#pending !== undefined) await Promise.resolve();
      await this.#settled;
    }
  }

  transaction<T>(
    closure: (txn: DurableObjectTransaction) => Promise<T>,
    options?: DurableObjectPutOptions
  ): Promise<T> {
    const run = async (): Promise<T> => {
      const attempt = async (): Promise<{ done: true; result: T } | { done: false }> => {
        const txn = new DurableObjectTransaction(this, this.#commitCount);
        // The closure's own writes go to the transaction, not the object's
        // output gate: nothing it sends should wait for them
        const outputGate = new OutputGate();
        let result: T;
        try {
          result = await outputGate.runWith(() => closure(txn));
        } finally {
          txn[kCommitted] = true;
        }
        if (txn[kRolledBack]) return { done: true, result };
        // Validate and apply synchronously: no other write can interleave
        if (this.#conflicts(txn[kStartCount], txn[kReadSet])) return { done: false };
        if (txn[kOverlay].size > 0) await this.#stage(txn[kOverlay]).done;
        return { done: true, result };
      };
      const first = await attempt();
      if (first.done) return first.result;
      // Conflicted: retry one at a time, so n concurrent transactions on the
      // same keys take about 2n attempts instead of n²/2
      const held = retryingStorage.getStore();
      const retry = async (): Promise<T> => {
        for (;;) {
          const next = await attempt();
          if (next.done) return next.result;
        }
      };
      if (held?.has(this)) return retry();
      const inside = new Set(held);
      inside.add(this);
      return this.#retryMutex.runWith(() => retryingStorage.run(inside, retry));
    };
    return waitUntilOnOutputGate(
      runWithInputGateClosed(run, options?.allowConcurrency),
      options?.allowUnconfirmed
    );
  }
}

export class DurableObjectTransaction {
  readonly #storage: DurableObjectStorage;
  readonly [kStartCount]: number;
  readonly [kReadSet] = new Set<string>();
  /** This transaction's writes */
  readonly [kOverlay]: Overlay = new Map();
  [kRolledBack] = false;
  [kCommitted] = false;

  constructor(storage: DurableObjectStorage, startCount: number) {
    this.#storage = storage;
    this[kStartCount] = startCount;
  }

  #check(op: string): void {
    if (this[kRolledBack]) throw new Error(`Cannot ${op}() on rolled back transaction`);
    if (this[kCommitted]) {
      throw new Error(
        `Cannot call ${op}() on transaction that has already committed: did you move \`txn\` outside of the closure?`
      );
    }
  }

  #overlays(): Overlay[] {
    return [this[kOverlay], ...this.#storage[kInner]];
  }

  #markWritten(keys: string[]): void {
    let count = 0;
    for (const key of this[kOverlay].keys()) if (key !== ALARM_KEY) count++;
    for (const key of keys) if (!this[kOverlay].has(key)) count++;
    if (count > MAX_KEYS) {
      throw new Error(`Maximum number of keys modified in a transaction is ${MAX_KEYS}.`);
    }
  }

  get(key: string, options?: DurableObjectGetOptions): Promise<unknown>;
  get(keys: string[], options?: DurableObjectGetOptions): Promise<Map<string, unknown>>;
  async get(keys: unknown, options?: DurableObjectGetOptions): Promise<unknown> {
    if (keys === undefined) throw undefinedKeyError("get", "DurableObjectTransaction");
    this.#check("get");
    if (Array.isArray(keys)) {
      const names = normaliseKeys(keys);
      for (const name of names) this[kReadSet].add(name);
      return runWithInputGateClosed(
        () => this.#storage[kGetMany](this.#overlays(), names),
        options?.allowConcurrency
      );
    }
    const name = normaliseKey(keys);
    this[kReadSet].add(name);
    return runWithInputGateClosed(
      () => this.#storage[kGetOne](this.#overlays(), name),
      options?.allowConcurrency
    );
  }

  put(key: string, value: unknown, options?: DurableObjectPutOptions): Promise<void>;
  put(entries: Record<string, unknown>, options?: DurableObjectPutOptions): Promise<void>;
  async put(keyEntries: unknown, valueOptions?: unknown, _options?: DurableObjectPutOptions): Promise<void> {
    if (keyEntries === undefined) throw undefinedKeyError("put", "DurableObjectTransaction");
    this.#check("put");
    const entries = normalisePutEntries(keyEntries, valueOptions);
    this.#markWritten(entries.map(([key]) => key));
    for (const [key, value] of entries) this[kOverlay].set(key, value);
  }

  delete(key: string, options?: DurableObjectPutOptions): Promise<boolean>;
  delete(keys: string[], options?: DurableObjectPutOptions): Promise<number>;
  async delete(keys: unknown, options?: DurableObjectPutOptions): Promise<boolean | number> {
    if (keys === undefined) throw undefinedKeyError("delete", "DurableObjectTransaction");
    this.#check("delete");
    const many = Array.isArray(keys);
    const names = many ? normaliseKeys(keys) : [normaliseKey(keys)];
    this.#markWritten(names);
    // Existence is read before anything is marked deleted
    const overlays = this.#overlays();
    const existing = await runWithInputGateClosed(
      () => Promise.all(names.map((name) => this.#storage[kHas](overlays, name))),
      options?.allowConcurrency
    );
    let count = 0;
    const seen = new Set<string>();
    for (let i = 0; i < names.length; i++) {
      this[kReadSet].add(names[i]);
      if (existing[i] && !seen.has(names[i])) count++;
      seen.add(names[i]);
    }
    for (const name of names) this[kOverlay].set(name, null);
    return many ? count : count > 0;
  }

  deleteAll(): never {
    throw new Error("Cannot call deleteAll() within a transaction");
  }

  async list(options: DurableObjectListOptions = {}): Promise<Map<string, unknown>> {
    this.#check("list");
    validateListOptions(options);
    const result = await runWithInputGateClosed(
      () => this.#storage[kList](this.#overlays(), options),
      options.allowConcurrency
    );
    for (const key of result.keys()) this[kReadSet].add(key);
    return result;
  }

  async getAlarm(options?: DurableObjectGetOptions): Promise<number | null> {
    this.#check("getAlarm");
    if (!this.#storage[kAlarmExists]) return null;
    this[kReadSet].add(ALARM_KEY);
    return runWithInputGateClosed(
      () => this.#storage[kGetAlarm](this.#overlays()),
      options?.allowConcurrency
    );
  }

  async setAlarm(scheduledTime: number | Date, _options?: DurableObjectPutOptions): Promise<void> {
    this.#check("setAlarm");
    if (!this.#storage[kAlarmExists]) {
      throw new Error(
        "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
      );
    }
    this[kOverlay].set(ALARM_KEY, alarmEntry(alarmTime(scheduledTime)));
  }

  async deleteAlarm(_options?: DurableObjectPutOptions): Promise<void> {
    this.#check("deleteAlarm");
    this[kOverlay].set(ALARM_KEY, null);
  }

  rollback(): void {
    if (this[kRolledBack]) return;
    this.#check("rollback");
    this[kRolledBack] = true;
  }
}
