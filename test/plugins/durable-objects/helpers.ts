// Test doubles shared by the Durable Object storage and transaction tests
import { deserialize } from "node:v8";
import type { AlarmBridge } from "../../../src/plugins/durable-objects/storage.js";
import {
  type RangeOptions,
  Storage,
  type StorageListOptions,
  type StorageListResult,
  type StoredKeyMeta,
  type StoredMeta,
  type StoredValueMeta,
  type StoredValueMetaRange,
} from "../../../src/shared/storage.js";
import { MemoryStorage } from "../../../src/storage/memory.js";

// Measured with Miniflare 2.14.4 for the binding name "OBJ"
export const OBJ_TEST_ID = "cb2c1c98032ff982ed0ae3295d657a13d5e2265df0260f79efc7d8331b43d049";
export const OBJ_UNICODE_ID = "c7e793e2676a1a142515357f73e4254f0566b486f72c8125efc7d8331b43d049";
export const OBJ_SUFFIX = "efc7d8331b43d049";

/** Miniflare 2's message when requests recurse more than 16 times */
export const DEPTH_MESSAGE =
  "Subrequest depth limit exceeded. This request recursed through Workers too many times. " +
  "This can happen e.g. if you have a Worker or Durable Object that calls other Workers or " +
  "objects recursively.\nWorkers and objects can recurse up to 16 times.\nIf you're trying " +
  "to fetch from an origin server, make sure you've set the `upstream` option.";

export interface Call {
  method: string;
  keys: string[];
  /** Deserialised values, for putMany and put */
  values?: unknown[];
}

/**
 * A backend (MemoryStorage unless given another) that records every call
 * and lets a test hold or fail any of them through `hook`, which runs
 * before the call reaches the inner storage
 */
export class TestStorage extends Storage {
  readonly calls: Call[] = [];
  hook?: (call: Call) => Promise<void> | void;

  constructor(readonly inner: Storage = new MemoryStorage()) {
    super();
  }

  async #enter(method: string, keys: string[], values?: unknown[]): Promise<void> {
    const call: Call = { method, keys, values };
    this.calls.push(call);
    await this.hook?.(call);
  }

  callsOf(method: string): Call[] {
    return this.calls.filter((call) => call.method === method);
  }

  async has(key: string): Promise<boolean> {
    await this.#enter("has", [key]);
    return this.inner.has(key);
  }
  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    await this.#enter("head", [key]);
    return this.inner.head<Meta>(key);
  }
  async get<Meta = unknown>(key: string, skipMetadata?: boolean): Promise<StoredValueMeta<Meta> | undefined> {
    await this.#enter("get", [key]);
    return this.inner.get<Meta>(key, skipMetadata);
  }
  async getRange<Meta = unknown>(
    key: string,
    range?: RangeOptions,
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    await this.#enter("getRange", [key]);
    return this.inner.getRange<Meta>(key, range, skipMetadata);
  }
  async put<Meta = unknown>(key: string, value: StoredValueMeta<Meta>): Promise<void> {
    await this.#enter("put", [key]);
    return this.inner.put(key, value);
  }
  async delete(key: string): Promise<boolean> {
    await this.#enter("delete", [key]);
    return this.inner.delete(key);
  }
  async list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    await this.#enter("list", []);
    return this.inner.list<Meta>(options, skipMetadata);
  }
  async hasMany(keys: string[]): Promise<number> {
    await this.#enter("hasMany", [...keys]);
    return this.inner.hasMany(keys);
  }
  async getMany<Meta = unknown>(keys: string[], skipMetadata?: boolean): Promise<(StoredValueMeta<Meta> | undefined)[]> {
    await this.#enter("getMany", [...keys]);
    return this.inner.getMany<Meta>(keys, skipMetadata);
  }
  async putMany<Meta = unknown>(data: [key: string, value: StoredValueMeta<Meta>][]): Promise<void> {
    await this.#enter(
      "putMany",
      data.map(([key]) => key),
      data.map(([, { value }]) => tryDeserialize(value))
    );
    return this.inner.putMany(data);
  }
  async deleteMany(keys: string[]): Promise<number> {
    await this.#enter("deleteMany", [...keys]);
    return this.inner.deleteMany(keys);
  }
}

export function tryDeserialize(value: Uint8Array): unknown {
  try {
    return deserialize(value);
  } catch {
    return "<undecodable>";
  }
}

export const WRITE_METHODS = new Set(["put", "putMany", "delete", "deleteMany", "has", "hasMany"]);

/** An alarm bridge recording what it is asked to do */
export class TestAlarms implements AlarmBridge {
  readonly calls: (number | "delete")[] = [];
  async setAlarm(scheduledTime: number): Promise<void> {
    this.calls.push(scheduledTime);
  }
  async deleteAlarm(): Promise<void> {
    this.calls.push("delete");
  }
}
