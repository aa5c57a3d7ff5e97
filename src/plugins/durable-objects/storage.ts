// A Durable Object's transactional storage: values are V8-serialised
// (structured clone), writes made without an intervening await are flushed
// to the backend together as one batch, reads see unflushed writes in
// program order, every operation closes the object's input gate and every
// write holds its output gate until confirmed. Transactions use optimistic
// concurrency control.
import { AsyncLocalStorage } from "node:async_hooks";
import { deserialize, serialize } from "node:v8";
import { handledDeferred } from "../../shared/data.js";
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
  type Layer,
  type Overlay,
  type RangeOptions,
  inKeyRange,
  layerLookup,
  snapshotKeys,
  snapshotRange,
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
   * Whether the backend may half-apply a batch when the process dies or a
   * write fails (files): batches of several keys then go through a journal
   * holding the old values, so a batch is undone if it didn't finish
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

/**
 * Checks list() options, and makes the key bounds strings: keys are, so
 * `{ start: 2 }` means "2", as production converts it
 */
function validateListOptions(options: DurableObjectListOptions): DurableObjectListOptions {
  if (options.limit !== undefined && options.limit <= 0) {
    throw new TypeError("List limit must be positive.");
  }
  if (options.start !== undefined && options.startAfter !== undefined) {
    throw new TypeError("list() cannot be called with both start and startAfter values.");
  }
  const bound = (value: unknown) => (value === undefined ? undefined : String(value));
  return {
    ...options,
    start: bound(options.start),
    startAfter: bound(options.startAfter),
    end: bound(options.end),
    prefix: bound(options.prefix),
  };
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
interface Batch extends Layer {
  readonly overlay: Overlay;
  /** Set by deleteAll(): keys older than the batch's own writes are deleted */
  cleared: boolean;
  /** Deleted keys whose prior existence only the backend knows */
  readonly lookups: Set<string>;
  /** Of `lookups`, the keys the backend had (once flushed) */
  existed?: Set<string>;
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch(): Batch {
  // Writers await it; an unawaited failed write mustn't crash the process
  const { promise: done, resolve, reject } = handledDeferred();
  return { overlay: new Map(), cleared: false, lookups: new Set(), done, resolve, reject };
}

/** A write set standing for every key (deleteAll()) */
const ALL_KEYS = Symbol("ALL_KEYS");
type WriteSet = Set<string> | typeof ALL_KEYS;

/** What a transaction read: keys, and ranges it listed */
export interface ReadSet {
  keys: Set<string>;
  ranges: RangeOptions[];
}

function readSetIntersects(readSet: ReadSet, writeSet: WriteSet): boolean {
  if (writeSet === ALL_KEYS) return readSet.keys.size > 0 || readSet.ranges.length > 0;
  for (const key of writeSet) {
    if (readSet.keys.has(key)) return true;
    for (const range of readSet.ranges) if (inKeyRange(key, range)) return true;
  }
  return false;
}

interface Journal {
  /** Each key the batch writes, with its value before (null: absent) */
  undo: [key: string, value: Uint8Array | null, metadata: unknown][];
}

const kLayers = Symbol("kLayers");
const kCommitted = Symbol("kCommitted");
const kGet = Symbol("kGet");
const kList = Symbol("kList");
const kGetAlarm = Symbol("kGetAlarm");
const kHas = Symbol("kHas");
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
  /** Resolves once a journal left by a crash has been dealt with */
  #ready?: Promise<void>;

  /** Writes not yet handed to the backend */
  #pending?: Batch;
  /** The batch being written to the backend */
  #flushing?: Batch;
  /** Resolves when every write so far has been confirmed (never rejects) */
  #settled: Promise<void> = Promise.resolve();
  #flushes = 0;
  /** Backend reads in flight: a flush waits for those that began before it */
  readonly #reads = new Set<Promise<unknown>>();

  // Optimistic concurrency control: keys written by recent commits
  #commitCount = 0;
  readonly #writeSets = new Map<number, WriteSet>();
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

  // --- Reads, shared with transactions -----------------------------------

  /** Unconfirmed writes, newest first */
  get [kLayers](): Layer[] {
    const layers: Layer[] = [];
    if (this.#pending) layers.push(this.#pending);
    if (this.#flushing) layers.push(this.#flushing);
    return layers;
  }

  /** Runs `read` against the backend, tracked so later flushes wait for it */
  #readInner<T>(read: (inner: Storage) => Promise<T>): Promise<T> {
    const ready = this.#ready;
    const promise = ready === undefined ? read(this.#inner) : ready.then(() => read(this.#inner));
    this.#reads.add(promise);
    const untrack = () => this.#reads.delete(promise);
    promise.then(untrack, untrack);
    return promise;
  }

  /** Values of `keys` (in key order), as `layers` over the backend see them now */
  [kGet](layers: readonly Layer[], keys: string[]): Promise<Map<string, unknown>> {
    keys.sort(compareKeys);
    const read = this.#readInner(snapshotKeys(layers, keys));
    return read.then((values) => {
      const result = new Map<string, unknown>();
      for (let i = 0; i < keys.length; i++) {
        const stored = values[i];
        if (stored !== undefined) result.set(keys[i], deserializeValue(stored));
      }
      return result;
    });
  }

  [kList](layers: readonly Layer[], options: DurableObjectListOptions): Promise<Map<string, unknown>> {
    let { start, limit } = options;
    const { startAfter } = options;
    if (startAfter !== undefined) {
      start = startAfter;
      if (limit !== undefined) limit++;
    }
    const range = { start, end: options.end, prefix: options.prefix, reverse: options.reverse, limit };
    const read = this.#readInner(snapshotRange(layers, range, HIDDEN_KEYS));
    return read.then((entries) => {
      const result = new Map<string, unknown>();
      for (const [key, stored] of entries) {
        if (key === startAfter) continue;
        if (options.limit !== undefined && result.size >= options.limit) break;
        result.set(key, deserializeValue(stored));
      }
      return result;
    });
  }

  [kGetAlarm](layers: readonly Layer[]): Promise<number | null> {
    const shadowed = layerLookup(layers, ALARM_KEY);
    if (shadowed !== undefined) return Promise.resolve(alarmOf(shadowed));
    return this.#readInner((inner) => inner.get(ALARM_KEY)).then(alarmOf);
  }

  /** Whether each of `keys` exists, as `layers` over the backend see them now */
  [kHas](layers: readonly Layer[], keys: string[]): Promise<boolean[]> {
    const result: boolean[] = [];
    const innerKeys: string[] = [];
    const innerIndices: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const shadowed = layerLookup(layers, keys[i]);
      if (shadowed === undefined) {
        innerKeys.push(keys[i]);
        innerIndices.push(i);
      } else {
        result[i] = shadowed !== null;
      }
    }
    if (innerKeys.length === 0) return Promise.resolve(result);
    return this.#readInner(async (inner) => {
      const found = await Promise.all(innerKeys.map((key) => inner.has(key)));
      for (let i = 0; i < innerKeys.length; i++) result[innerIndices[i]] = found[i];
      return result;
    });
  }

  // --- Writes -------------------------------------------------------------

  #recordCommit(writeSet: WriteSet): void {
    this.#commitCount++;
    this.#writeSets.set(this.#commitCount, writeSet);
    this.#writeSets.delete(this.#commitCount - MAX_REMEMBERED_COMMITS);
  }

  /** Whether a commit since `startCount` wrote anything in `readSet` */
  #conflicts(startCount: number, readSet: ReadSet): boolean {
    for (let t = startCount + 1; t <= this.#commitCount; t++) {
      const writeSet = this.#writeSets.get(t);
      if (writeSet === undefined) return true; // forgotten: assume the worst
      if (readSetIntersects(readSet, writeSet)) return true;
    }
    return false;
  }

  /** The batch the next writes go in */
  #batch(): Batch {
    let batch = this.#pending;
    if (batch === undefined) {
      batch = this.#pending = newBatch();
      // Writes of the same tick go in the same batch
      queueMicrotask(this.#scheduleFlush);
    }
    return batch;
  }

  /**
   * Adds `writes` to the next flush, synchronously, so later reads see them
   * in program order. Deleted keys whose existence isn't known yet go in the
   * batch's lookups.
   */
  #stage(writes: Iterable<[string, StoredValueMeta | null]>, lookups?: string[]): Batch {
    const batch = this.#batch();
    const keys = new Set<string>();
    for (const [key, value] of writes) {
      batch.overlay.set(key, value);
      keys.add(key);
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
      // Reads that started before this flush must not see it
      if (this.#reads.size > 0) await Promise.allSettled([...this.#reads]);
      if (batch.lookups.size > 0) {
        const lookups = [...batch.lookups];
        const found = await Promise.all(lookups.map((key) => this.#inner.has(key)));
        batch.existed = new Set(lookups.filter((_, i) => found[i]));
      }
      await this.#apply(batch);
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

  async #apply(batch: Batch): Promise<void> {
    const inner = this.#inner;
    const puts: [string, StoredValueMeta][] = [];
    const deletes: string[] = [];
    for (const [key, value] of batch.overlay) {
      if (value === null) deletes.push(key);
      else puts.push([key, value]);
    }
    if (batch.cleared) {
      // deleteAll(): every key the backend has that the batch doesn't write
      const { keys } = await inner.list({}, true);
      for (const { name } of keys) {
        if (!HIDDEN_KEYS.has(name) && !batch.overlay.has(name)) deletes.push(name);
      }
    }
    if (puts.length + deletes.length === 0) return;
    if (inner.applyBatch !== undefined) return inner.applyBatch(puts, deletes);
    if (!this.#journal || puts.length + deletes.length === 1) {
      // One key: a single atomic write
      if (puts.length > 0) await inner.putMany(puts);
      if (deletes.length > 0) await inner.deleteMany(deletes);
      return;
    }

    // Several keys, and the backend can't write them atomically: note the
    // old values first, so a batch cut short (by a failure or a crash) is
    // undone rather than left half-applied
    const keys = [...puts.map(([key]) => key), ...deletes];
    const old = await inner.getMany(keys);
    const journal: Journal = {
      undo: keys.map((key, i) => [key, old[i]?.value ?? null, old[i]?.metadata]),
    };
    await inner.put(JOURNAL_KEY, { value: serialize(journal) });
    try {
      if (puts.length > 0) await inner.putMany(puts);
      if (deletes.length > 0) await inner.deleteMany(deletes);
    } catch (e) {
      // If the undo fails too, the journal stays, and the next storage
      // opened here undoes the batch
      await this.#undo(journal).catch(() => {});
      throw e;
    }
    await inner.delete(JOURNAL_KEY);
  }

  async #undo(journal: Journal): Promise<void> {
    const puts: [string, StoredValueMeta][] = [];
    const deletes: string[] = [];
    for (const [key, value, metadata] of journal.undo) {
      if (value === null) deletes.push(key);
      else puts.push([key, { value, metadata }]);
    }
    if (puts.length > 0) await this.#inner.putMany(puts);
    if (deletes.length > 0) await this.#inner.deleteMany(deletes);
    await this.#inner.delete(JOURNAL_KEY);
  }

  /** Undoes a batch a killed process (or a failed write) left half-applied */
  async #recover(): Promise<void> {
    const stored = await this.#inner.get(JOURNAL_KEY, true);
    if (stored === undefined) return;
    let journal: Journal;
    try {
      journal = deserialize(stored.value);
    } catch {
      // A torn journal: the batch itself never started
      await this.#inner.delete(JOURNAL_KEY);
      return;
    }
    await this.#undo(journal);
  }

  /** Stages writes, returning a promise of their confirmation, gated */
  #write<T>(
    options: DurableObjectPutOptions | undefined,
    batch: Batch,
    result: (batch: Batch) => T
  ): Promise<T> {
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
      const read = this[kGet](this[kLayers], normaliseKeys(keys));
      return runWithInputGateClosed(() => read, options?.allowConcurrency);
    }
    const key = normaliseKey(keys);
    const read = this[kGet](this[kLayers], [key]);
    return runWithInputGateClosed(() => read, options?.allowConcurrency).then((values) => values.get(key));
  }

  put(key: string, value: unknown, options?: DurableObjectPutOptions): Promise<void>;
  put(entries: Record<string, unknown>, options?: DurableObjectPutOptions): Promise<void>;
  // put() and delete() check their arguments synchronously, throwing, as in
  // Miniflare 2; what happens after is their promise's
  put(keyEntries: unknown, valueOptions?: unknown, options?: DurableObjectPutOptions): Promise<void> {
    if (keyEntries === undefined) throw undefinedKeyError("put", "DurableObjectStorage");
    const entries = normalisePutEntries(keyEntries, valueOptions);
    if (typeof keyEntries === "object" && keyEntries !== null && options === undefined) {
      options = valueOptions as DurableObjectPutOptions | undefined;
    }
    return this.#write(options, this.#stage(entries), () => undefined);
  }

  delete(key: string, options?: DurableObjectPutOptions): Promise<boolean>;
  delete(keys: string[], options?: DurableObjectPutOptions): Promise<number>;
  delete(keys: unknown, options?: DurableObjectPutOptions): Promise<boolean | number> {
    if (keys === undefined) throw undefinedKeyError("delete", "DurableObjectStorage");
    const many = Array.isArray(keys);
    const names = many ? normaliseKeys(keys) : [normaliseKey(keys)];
    const layers = this[kLayers];
    let known = 0;
    const lookups: string[] = [];
    const writes: [string, null][] = [];
    for (const name of new Set(names)) {
      // A key repeated in one call is deleted (and counted) once
      const shadowed = layerLookup(layers, name);
      if (shadowed === undefined) lookups.push(name);
      else if (shadowed !== null) known++;
      writes.push([name, null]);
    }
    return this.#write(options, this.#stage(writes, lookups), (batch) => {
      let count = known;
      for (const name of lookups) if (batch.existed?.has(name)) count++;
      return many ? count : count > 0;
    });
  }

  /**
   * Deletes every key present now (not the alarm). Writes made after the
   * call, even before it resolves, are kept.
   */
  async deleteAll(options?: DurableObjectPutOptions): Promise<void> {
    const batch = this.#batch();
    batch.overlay.clear();
    batch.lookups.clear();
    batch.cleared = true;
    this.#recordCommit(ALL_KEYS);
    return this.#write(options, batch, () => undefined);
  }

  async list(options: DurableObjectListOptions = {}): Promise<Map<string, unknown>> {
    options = validateListOptions(options);
    const read = this[kList](this[kLayers], options);
    return runWithInputGateClosed(() => read, options.allowConcurrency);
  }

  async getAlarm(options?: DurableObjectGetOptions): Promise<number | null> {
    if (!this[kAlarmExists]) return null;
    const read = this[kGetAlarm](this[kLayers]);
    return runWithInputGateClosed(() => read, options?.allowConcurrency);
  }

  async setAlarm(scheduledTime: number | Date, options?: DurableObjectPutOptions): Promise<void> {
    if (!this[kAlarmExists]) {
      throw new Error(
        "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
      );
    }
    const time = alarmTime(scheduledTime);
    return this.#write(options, this.#stage([[ALARM_KEY, alarmEntry(time)]]), () => undefined);
  }

  async deleteAlarm(options?: DurableObjectPutOptions): Promise<void> {
    return this.#write(options, this.#stage([[ALARM_KEY, null]]), () => undefined);
  }

  /** Resolves once every write made so far has been confirmed (or failed) */
  async sync(): Promise<void> {
    // A pending batch joins the flush chain on the next microtask
    while (this.#pending !== undefined || this.#flushes > 0) {
      if (this.#pending !== undefined) await Promise.resolve();
      await this.#settled;
    }
  }

  transaction<T>(
    closure: (txn: DurableObjectTransaction) => Promise<T>,
    options?: DurableObjectPutOptions
  ): Promise<T> {
    type Done = { done: true; result: T; confirmed?: Promise<void> };
    // What the output gate waits for: the writes' confirmation once staged,
    // so only a failed write fails the response. A closure that throws fails
    // just the transaction's promise (left to the caller: unhandled if
    // nobody awaits it, as in production).
    let settleGate!: (confirmed?: Promise<void>) => void;
    const gate = new Promise<void>((resolve) => (settleGate = resolve));
    type Attempt = Done | { done: false };
    const attempt = async (): Promise<Attempt> => {
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
      // Validate and stage synchronously: no other write can interleave.
      // Once staged, the writes are visible to later reads (and later
      // transactions): only their confirmation is still to come.
      if (this.#conflicts(txn[kStartCount], txn[kReadSet])) return { done: false };
      const confirmed = txn[kOverlay].size > 0 ? this.#stage(txn[kOverlay]).done : undefined;
      return { done: true, result, confirmed };
    };
    const run = async (): Promise<T> => {
      try {
        return await attempts();
      } finally {
        settleGate(); // (no effect if the writes were staged)
      }
    };
    const attempts = async (): Promise<T> => {
      const first = await attempt();
      let outcome: Done;
      if (first.done) {
        outcome = first;
      } else {
        // Conflicted: retry one at a time, so n concurrent transactions on
        // the same keys take about 2n attempts instead of n²/2. A retry
        // holds the others back only until its writes are staged, not
        // until they're confirmed, so their flushes coalesce.
        const retry = async (): Promise<Done> => {
          for (;;) {
            const next = await attempt();
            if (next.done) return next;
          }
        };
        const held = retryingStorage.getStore();
        if (held?.has(this)) {
          outcome = await retry();
        } else {
          const inside = new Set(held);
          inside.add(this);
          outcome = await this.#retryMutex.runWith(() => retryingStorage.run(inside, retry));
        }
      }
      settleGate(outcome.confirmed);
      await outcome.confirmed;
      return outcome.result;
    };
    if (!options?.allowUnconfirmed) {
      // (Seen by the output gate, if there is one; marked handled so that a
      // failed write outside any request isn't also an unhandled rejection:
      // the caller sees it through the result)
      gate.catch(() => {});
      waitUntilOnOutputGate(gate);
    }
    return runWithInputGateClosed(run, options?.allowConcurrency);
  }
}

export class DurableObjectTransaction {
  readonly #storage: DurableObjectStorage;
  readonly [kStartCount]: number;
  readonly [kReadSet]: ReadSet = { keys: new Set(), ranges: [] };
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

  #layers(): Layer[] {
    return [{ overlay: this[kOverlay] }, ...this.#storage[kLayers]];
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
    const many = Array.isArray(keys);
    const names = many ? normaliseKeys(keys) : [normaliseKey(keys)];
    for (const name of names) this[kReadSet].keys.add(name);
    const read = this.#storage[kGet](this.#layers(), names);
    const values = await runWithInputGateClosed(() => read, options?.allowConcurrency);
    return many ? values : values.get(names[0]);
  }

  put(key: string, value: unknown, options?: DurableObjectPutOptions): Promise<void>;
  put(entries: Record<string, unknown>, options?: DurableObjectPutOptions): Promise<void>;
  // As in Miniflare 2: a missing key and a finished transaction throw
  // synchronously, other argument errors reject
  put(keyEntries: unknown, valueOptions?: unknown, _options?: DurableObjectPutOptions): Promise<void> {
    if (keyEntries === undefined) throw undefinedKeyError("put", "DurableObjectTransaction");
    this.#check("put");
    return this.#put(keyEntries, valueOptions);
  }

  async #put(keyEntries: unknown, valueOptions: unknown): Promise<void> {
    const entries = normalisePutEntries(keyEntries, valueOptions);
    this.#markWritten(entries.map(([key]) => key));
    for (const [key, value] of entries) this[kOverlay].set(key, value);
  }

  delete(key: string, options?: DurableObjectPutOptions): Promise<boolean>;
  delete(keys: string[], options?: DurableObjectPutOptions): Promise<number>;
  delete(keys: unknown, options?: DurableObjectPutOptions): Promise<boolean | number> {
    if (keys === undefined) throw undefinedKeyError("delete", "DurableObjectTransaction");
    this.#check("delete");
    return this.#delete(keys, options);
  }

  async #delete(keys: unknown, options?: DurableObjectPutOptions): Promise<boolean | number> {
    const many = Array.isArray(keys);
    const names = [...new Set(many ? normaliseKeys(keys) : [normaliseKey(keys)])];
    this.#markWritten(names);
    // Whether each existed is read before they are marked deleted
    for (const name of names) this[kReadSet].keys.add(name);
    const read = this.#storage[kHas](this.#layers(), names);
    for (const name of names) this[kOverlay].set(name, null);
    const existing = await runWithInputGateClosed(() => read, options?.allowConcurrency);
    let count = 0;
    for (const found of existing) if (found) count++;
    return many ? count : count > 0;
  }

  deleteAll(): never {
    throw new Error("Cannot call deleteAll() within a transaction");
  }

  async list(options: DurableObjectListOptions = {}): Promise<Map<string, unknown>> {
    this.#check("list");
    options = validateListOptions(options);
    // The whole range counts as read, so a key added to it is a conflict
    const { start, startAfter, end, prefix } = options;
    this[kReadSet].ranges.push({ start: start ?? startAfter, end, prefix });
    const read = this.#storage[kList](this.#layers(), options);
    return runWithInputGateClosed(() => read, options.allowConcurrency);
  }

  async getAlarm(options?: DurableObjectGetOptions): Promise<number | null> {
    this.#check("getAlarm");
    if (!this.#storage[kAlarmExists]) return null;
    this[kReadSet].keys.add(ALARM_KEY);
    const read = this.#storage[kGetAlarm](this.#layers());
    return runWithInputGateClosed(() => read, options?.allowConcurrency);
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
