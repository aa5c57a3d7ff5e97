import { ReadableStream } from "node:stream/web";
import { types } from "node:util";
import { assertInRequest, getRequestContext } from "../../shared/context.js";
import { type Clock, defaultClock, millisToSeconds, viewToArray, viewToBuffer } from "../../shared/data.js";
import type { Storage, StoredKeyMeta } from "../../shared/storage.js";
import { waitForOpenInputGate, waitForOpenOutputGate } from "../../shared/sync/gate.js";

const MIN_CACHE_TTL = 60; /* 60s */
const MIN_EXPIRATION = -2147483648;
const MAX_EXPIRATION = 2147483647;
const MAX_LIST_KEYS = 1000;
const MAX_KEY_SIZE = 512; /* 512B */
const MAX_VALUE_SIZE = 25 * 1024 * 1024; /* 25MiB */
const MAX_METADATA_SIZE = 1024; /* 1KiB */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type KVGetValueType = "text" | "json" | "arrayBuffer" | "stream";
export type KVPutValueType = string | ArrayBuffer | ArrayBufferView | ReadableStream;

export interface KVGetOptions<Type extends KVGetValueType = KVGetValueType> {
  type: Type;
  /** Accepted and checked, but meaningless locally (one "edge location") */
  cacheTtl?: number;
}

export interface KVPutOptions<Meta = unknown> {
  expiration?: string | number;
  expirationTtl?: string | number;
  metadata?: Meta;
}

export interface KVListOptions {
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export interface KVListResult<Meta = unknown> {
  keys: StoredKeyMeta<Meta>[];
  cursor: string;
  list_complete: boolean;
}

export interface KVValueMeta<Value, Meta = unknown> {
  value: Value | null;
  metadata: Meta | null;
}

export interface KVNamespaceOptions {
  clock?: Clock;
  /** Only allow calls while handling a request (as bound in workers) */
  blockGlobalAsyncIO?: boolean;
}

const getValueTypes = new Set(["text", "json", "arrayBuffer", "stream"]);

function kvError(method: string, status: number, message: string): Error {
  return new Error(`KV ${method} failed: ${status} ${message}`);
}

function keyTypeError(op: string): TypeError {
  return new TypeError(`Failed to execute '${op}' on 'KvNamespace': parameter 1 is not of type 'string'.`);
}

function validateKey(method: string, key: string): void {
  if (key === "") throw new TypeError("Key name cannot be empty.");
  if (key === ".") throw new TypeError('"." is not allowed as a key name.');
  if (key === "..") throw new TypeError('".." is not allowed as a key name.');
  // Cheap bound first: UTF-8 takes at most 3 bytes per UTF-16 unit
  if (key.length * 3 > MAX_KEY_SIZE) {
    const length = Buffer.byteLength(key);
    if (length > MAX_KEY_SIZE) {
      throw kvError(
        method,
        414,
        `UTF-8 encoded length of ${length} exceeds key length limit of ${MAX_KEY_SIZE}.`
      );
    }
  }
}

function validateGetOptions(options?: KVGetValueType | Partial<KVGetOptions>): KVGetValueType {
  const string = typeof options === "string";
  const type = string ? options : (options?.type ?? "text");
  const cacheTtl = string ? undefined : options?.cacheTtl;
  if (cacheTtl && (isNaN(cacheTtl) || cacheTtl < MIN_CACHE_TTL)) {
    throw kvError(
      "GET",
      400,
      `Invalid cache_ttl of ${cacheTtl}. Cache TTL must be at least ${MIN_CACHE_TTL}.`
    );
  }
  if (!getValueTypes.has(type)) {
    throw new TypeError(
      'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".'
    );
  }
  return type;
}

/** Numbers are rounded, strings parsed, anything else ignored */
function normaliseInt(value: unknown): number | undefined {
  if (typeof value === "string") return parseInt(value);
  if (typeof value === "number") return Math.round(value);
  return undefined;
}

function checkInt32(value: number): void {
  if (value < MIN_EXPIRATION || value > MAX_EXPIRATION) {
    throw new TypeError(
      `Value out of range. Must be between ${MIN_EXPIRATION} and ${MAX_EXPIRATION} (inclusive).`
    );
  }
}

function convertStoredToGetValue(stored: Uint8Array, type: KVGetValueType): unknown {
  switch (type) {
    case "text":
      return decoder.decode(stored);
    case "arrayBuffer":
      return viewToBuffer(stored);
    case "json":
      return JSON.parse(decoder.decode(stored));
    case "stream":
      return new ReadableStream({
        type: "bytes",
        async pull(controller) {
          await waitForOpenInputGate();
          controller.enqueue(stored);
          controller.close();
          controller.byobRequest?.respond(0);
        },
      });
  }
}

const putTypeError =
  "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";

/**
 * Reads a stream, keeping at most MAX_VALUE_SIZE bytes: the chunk that goes
 * past the limit ends the read (the stream is cancelled) and the put is
 * rejected, so a huge stream is never read to its end.
 */
async function readStream(stream: ReadableStream): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  // (leaving the loop early cancels the stream)
  for await (const chunk of stream as AsyncIterable<unknown>) {
    let bytes: Uint8Array;
    if (typeof chunk === "string") bytes = encoder.encode(chunk);
    else if (ArrayBuffer.isView(chunk)) bytes = viewToArray(chunk);
    else if (types.isAnyArrayBuffer(chunk)) bytes = new Uint8Array(chunk);
    else throw new TypeError(putTypeError);
    length += bytes.byteLength;
    if (length > MAX_VALUE_SIZE) throw streamSizeError(length);
    chunks.push(bytes);
  }
  // (Buffer.concat() may return a view of Node's shared Buffer pool)
  const result = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return result;
}

/** Only the bytes read so far are known: the stream may have had more */
function streamSizeError(length: number): Error {
  return kvError("PUT", 413, `Value length of at least ${length} exceeds limit of ${MAX_VALUE_SIZE}.`);
}

function valueSizeError(length: number): Error {
  return kvError("PUT", 413, `Value length of ${length} exceeds limit of ${MAX_VALUE_SIZE}.`);
}

/** Turns put() options into an absolute expiration (seconds), validating them */
function putExpiration(options: KVPutOptions, now: number): number | undefined {
  const expirationTtl = normaliseInt(options.expirationTtl);
  if (expirationTtl !== undefined) {
    checkInt32(expirationTtl);
    if (isNaN(expirationTtl) || expirationTtl <= 0) {
      throw kvError(
        "PUT",
        400,
        `Invalid expiration_ttl of ${options.expirationTtl}. Please specify integer greater than 0.`
      );
    }
    if (expirationTtl < MIN_CACHE_TTL) {
      throw kvError(
        "PUT",
        400,
        `Invalid expiration_ttl of ${options.expirationTtl}. Expiration TTL must be at least ${MIN_CACHE_TTL}.`
      );
    }
    return now + expirationTtl;
  }
  const expiration = normaliseInt(options.expiration);
  if (expiration !== undefined) {
    checkInt32(expiration);
    if (isNaN(expiration) || expiration <= now) {
      throw kvError(
        "PUT",
        400,
        `Invalid expiration of ${options.expiration}. Please specify integer greater than the current number of seconds since the UNIX epoch.`
      );
    }
    if (expiration < now + MIN_CACHE_TTL) {
      throw kvError(
        "PUT",
        400,
        `Invalid expiration of ${options.expiration}. Expiration times must be at least ${MIN_CACHE_TTL} seconds in the future.`
      );
    }
  }
  return expiration;
}

/**
 * Workers KV. Every call counts as one subrequest, writes wait for the
 * output gate, results wait for the input gate, and the worker's frozen
 * clock moves on after each call. Validation errors are thrown before
 * anything is stored.
 */
export class KVNamespace {
  readonly #storage: Storage;
  readonly #clock: Clock;
  readonly #blockGlobalAsyncIO: boolean;

  constructor(storage: Storage, { clock = defaultClock, blockGlobalAsyncIO = false }: KVNamespaceOptions = {}) {
    this.#storage = storage;
    this.#clock = clock;
    this.#blockGlobalAsyncIO = blockGlobalAsyncIO;
  }

  #begin(op: string, method: string, key: unknown): ReturnType<typeof getRequestContext> {
    if (this.#blockGlobalAsyncIO) assertInRequest();
    const ctx = getRequestContext();
    ctx?.incrementInternalSubrequests();
    if (typeof key !== "string") throw keyTypeError(op);
    validateKey(method, key);
    return ctx;
  }

  get(key: string, options?: "text" | Partial<KVGetOptions<"text">>): Promise<string | null>;
  get<Value = unknown>(key: string, options: "json" | KVGetOptions<"json">): Promise<Value | null>;
  get(key: string, options: "arrayBuffer" | KVGetOptions<"arrayBuffer">): Promise<ArrayBuffer | null>;
  get(key: string, options: "stream" | KVGetOptions<"stream">): Promise<ReadableStream | null>;
  async get(key: string, options?: KVGetValueType | Partial<KVGetOptions>): Promise<unknown> {
    const ctx = this.#begin("get", "GET", key);
    const type = validateGetOptions(options);
    const stored = await this.#storage.get(key, true);
    const gate = waitForOpenInputGate();
    if (gate !== undefined) await gate;
    ctx?.advanceCurrentTime();
    if (stored === undefined) return null;
    return convertStoredToGetValue(stored.value, type);
  }

  async getWithMetadata<Value = unknown, Meta = unknown>(
    key: string,
    options?: KVGetValueType | Partial<KVGetOptions>
  ): Promise<KVValueMeta<Value, Meta>> {
    const ctx = this.#begin("getWithMetadata", "GET", key);
    const type = validateGetOptions(options);
    const stored = await this.#storage.get<Meta>(key);
    const gate = waitForOpenInputGate();
    if (gate !== undefined) await gate;
    ctx?.advanceCurrentTime();
    if (stored === undefined) return { value: null, metadata: null };
    const { value, metadata = null } = stored;
    return { value: convertStoredToGetValue(value, type) as Value, metadata };
  }

  async put<Meta = unknown>(
    key: string,
    value: KVPutValueType,
    options: KVPutOptions<Meta> = {}
  ): Promise<void> {
    const ctx = this.#begin("put", "PUT", key);

    let stored: Uint8Array;
    if (typeof value === "string") stored = encoder.encode(value);
    else if (value instanceof ReadableStream) stored = await readStream(value);
    else if (types.isArrayBuffer(value)) stored = new Uint8Array(value);
    else if (ArrayBuffer.isView(value)) stored = viewToArray(value);
    else throw new TypeError(putTypeError);

    const expiration = putExpiration(options, millisToSeconds(this.#clock()));
    if (stored.byteLength > MAX_VALUE_SIZE) throw valueSizeError(stored.byteLength);
    const metadataLength = options.metadata && Buffer.byteLength(JSON.stringify(options.metadata));
    if (metadataLength && metadataLength > MAX_METADATA_SIZE) {
      throw kvError(
        "PUT",
        413,
        `Metadata length of ${metadataLength} exceeds limit of ${MAX_METADATA_SIZE}.`
      );
    }

    const outputGate = waitForOpenOutputGate();
    if (outputGate !== undefined) await outputGate;
    await this.#storage.put(key, { value: stored, expiration, metadata: options.metadata });
    const inputGate = waitForOpenInputGate();
    if (inputGate !== undefined) await inputGate;
    ctx?.advanceCurrentTime();
  }

  async delete(key: string): Promise<void> {
    const ctx = this.#begin("delete", "DELETE", key);
    const outputGate = waitForOpenOutputGate();
    if (outputGate !== undefined) await outputGate;
    await this.#storage.delete(key);
    const inputGate = waitForOpenInputGate();
    if (inputGate !== undefined) await inputGate;
    ctx?.advanceCurrentTime();
  }

  async list<Meta = unknown>({ prefix = "", limit = MAX_LIST_KEYS, cursor }: KVListOptions = {}): Promise<
    KVListResult<Meta>
  > {
    if (this.#blockGlobalAsyncIO) assertInRequest();
    const ctx = getRequestContext();
    ctx?.incrementInternalSubrequests();
    if (isNaN(limit) || limit < 1) {
      throw kvError(
        "GET",
        400,
        `Invalid key_count_limit of ${limit}. Please specify an integer greater than 0.`
      );
    }
    if (limit > MAX_LIST_KEYS) {
      throw kvError(
        "GET",
        400,
        `Invalid key_count_limit of ${limit}. Please specify an integer less than ${MAX_LIST_KEYS}.`
      );
    }
    const res = await this.#storage.list<Meta>({ prefix, limit: Number(limit), cursor });
    const gate = waitForOpenInputGate();
    if (gate !== undefined) await gate;
    ctx?.advanceCurrentTime();
    return { keys: res.keys, cursor: res.cursor, list_complete: res.cursor === "" };
  }
}
