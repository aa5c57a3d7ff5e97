// Redis storage, through ioredis.
//
// Layout, for a namespace N (the factory passes "<plugin>:<name>", e.g.
// "kv:TEST_NAMESPACE"), with P = "miniflare:<length of N>:N:":
// - P + "v:" + key: a hash with the value ("v"), the expiration in seconds
//   ("x", "" if none) and the metadata as JSON ("m", absent if none). Redis
//   expires it itself too (PEXPIREAT).
// - P + "i": a sorted set of every key, all with score 0, so Redis orders
//   them by their bytes: list() reads ranges of it instead of SCANning.
// Writes change the hash and the index in one MULTI, so they are atomic,
// putMany() included. The namespace's length in the prefix keeps namespaces
// apart whatever they contain (Miniflare 2's "N:value:key" layout let
// namespaces of different plugins, or "a" and "a:value:b", collide).
import type { ChainableCommander, Redis } from "ioredis";
import { type Clock, defaultClock, millisToSeconds } from "../shared/data.js";
import {
  type RangeOptions,
  Storage,
  type StorageListOptions,
  type StorageListResult,
  type StoredKeyMeta,
  type StoredMeta,
  type StoredValueMeta,
  type StoredValueMetaRange,
  storedRange,
} from "../shared/storage.js";
import { decodeKey, encodeKey } from "./keys.js";
import { type KeyRange, type ListSource, type NamesResult, listKeys } from "./list.js";

// Deletes an entry (and its index member) if it is gone, or still holds
// the expiration it was read with: never a fresh entry written meanwhile
const PRUNE_SCRIPT = `
local x = redis.call('HGET', KEYS[1], 'x')
if x == false or (ARGV[2] ~= '' and x == ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0`;

// Deletes an entry, returning the expiration it had (false if none existed)
const DELETE_SCRIPT = `
local x = redis.call('HGET', KEYS[1], 'x')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return x`;

interface MiniflareRedis extends Redis {
  mfPrune(entry: Buffer, index: Buffer, member: Buffer, expiration: string): Promise<number>;
  mfDelete(entry: Buffer, index: Buffer, member: Buffer): Promise<string | null>;
}

interface MiniflareChain extends ChainableCommander {
  mfDelete(entry: Buffer, index: Buffer, member: Buffer): this;
}

const PREFIX_END = Buffer.from([0xff]); /* no UTF-8 byte is 0xff */

function defineScripts(redis: Redis): MiniflareRedis {
  const mf = redis as MiniflareRedis;
  if (typeof mf.mfPrune !== "function") {
    redis.defineCommand("mfPrune", { numberOfKeys: 2, lua: PRUNE_SCRIPT });
    redis.defineCommand("mfDelete", { numberOfKeys: 2, lua: DELETE_SCRIPT });
  }
  return mf;
}

/** A copy: ioredis' Buffers may be views into its network buffers */
function toArray(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer);
}

/** Throws the first error of a MULTI's or pipeline's results */
function check(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) throw new Error("Redis transaction aborted");
  return results.map(([error, result]) => {
    if (error) throw error;
    return result;
  });
}

export class RedisStorage extends Storage implements ListSource<unknown> {
  readonly #redis: MiniflareRedis;
  readonly #prefix: Buffer;
  readonly #index: Buffer;
  readonly #clock: Clock;

  constructor(connection: Redis, namespace: string, clock: Clock = defaultClock) {
    super();
    this.#redis = defineScripts(connection);
    this.#prefix = Buffer.concat([
      Buffer.from(`miniflare:${namespace.length}:`),
      encodeKey(namespace),
      Buffer.from(":"),
    ]);
    this.#index = Buffer.concat([this.#prefix, Buffer.from("i")]);
    this.#clock = clock;
  }

  #entryKey(member: Buffer): Buffer {
    return Buffer.concat([this.#prefix, Buffer.from("v:"), member]);
  }

  #expired(expiration: string | Buffer | null): boolean {
    if (!expiration || expiration.length === 0) return false;
    return Number(expiration) <= millisToSeconds(this.#clock());
  }

  /** Removes an entry read as expired (or an index member left behind) */
  async #prune(member: Buffer, expiration: string | Buffer | null): Promise<void> {
    await this.#redis.mfPrune(this.#entryKey(member), this.#index, member, expiration?.toString() ?? "");
  }

  /** Reads fields of an entry; undefined if it's gone or expired */
  async #read(key: string, fields: string[]): Promise<(Buffer | null)[] | undefined> {
    const member = encodeKey(key);
    // "x" first: it's present (maybe "") in every entry
    const values = await this.#redis.hmgetBuffer(this.#entryKey(member), "x", ...fields);
    const [expiration] = values;
    if (expiration === null) return undefined;
    if (this.#expired(expiration)) {
      await this.#prune(member, expiration);
      return undefined;
    }
    return values;
  }

  async has(key: string): Promise<boolean> {
    return (await this.#read(key, [])) !== undefined;
  }

  async head<Meta = unknown>(key: string): Promise<StoredMeta<Meta> | undefined> {
    const values = await this.#read(key, ["m"]);
    if (values === undefined) return undefined;
    const [expiration, metadata] = values;
    return {
      expiration: expiration!.length ? Number(expiration) : undefined,
      metadata: metadata === null ? undefined : JSON.parse(metadata.toString()),
    };
  }

  async get<Meta = unknown>(
    key: string,
    skipMetadata?: boolean
  ): Promise<StoredValueMeta<Meta> | undefined> {
    const values = await this.#read(key, skipMetadata ? ["v"] : ["v", "m"]);
    if (values === undefined) return undefined;
    const [expiration, value, metadata] = values;
    if (skipMetadata) return { value: toArray(value ?? Buffer.alloc(0)) };
    return {
      value: toArray(value ?? Buffer.alloc(0)),
      expiration: expiration!.length ? Number(expiration) : undefined,
      metadata: metadata ? JSON.parse(metadata.toString()) : undefined,
    };
  }

  async getRange<Meta = unknown>(
    key: string,
    range: RangeOptions = {},
    skipMetadata?: boolean
  ): Promise<StoredValueMetaRange<Meta> | undefined> {
    const stored = await this.get<Meta>(key, skipMetadata);
    return stored === undefined ? undefined : storedRange(stored, range, skipMetadata);
  }

  #queuePut(multi: ChainableCommander, key: string, { value, expiration, metadata }: StoredValueMeta): void {
    const member = encodeKey(key);
    const entry = this.#entryKey(member);
    const fields: (string | Buffer)[] = [
      "v",
      Buffer.from(value.buffer, value.byteOffset, value.byteLength),
      "x",
      expiration === undefined ? "" : String(expiration),
    ];
    if (metadata !== undefined) fields.push("m", JSON.stringify(metadata));
    multi.del(entry).hset(entry, ...fields);
    if (expiration !== undefined) multi.pexpireat(entry, expiration * 1000);
    multi.zadd(this.#index, 0, member);
  }

  async put<Meta = unknown>(key: string, value: StoredValueMeta<Meta>): Promise<void> {
    const multi = this.#redis.multi();
    this.#queuePut(multi, key, value);
    check(await multi.exec());
  }

  async putMany<Meta = unknown>(data: [key: string, value: StoredValueMeta<Meta>][]): Promise<void> {
    if (data.length === 0) return;
    const multi = this.#redis.multi();
    for (const [key, value] of data) this.#queuePut(multi, key, value);
    check(await multi.exec());
  }

  /** One MULTI: all or nothing */
  async applyBatch(puts: [key: string, value: StoredValueMeta][], deletes: string[]): Promise<void> {
    const multi = this.#redis.multi() as MiniflareChain;
    for (const [key, value] of puts) this.#queuePut(multi, key, value);
    for (const key of deletes) {
      const member = encodeKey(key);
      multi.mfDelete(this.#entryKey(member), this.#index, member);
    }
    check(await multi.exec());
  }

  async delete(key: string): Promise<boolean> {
    const member = encodeKey(key);
    const expiration = await this.#redis.mfDelete(this.#entryKey(member), this.#index, member);
    return expiration !== null && !this.#expired(expiration);
  }

  async deleteMany(keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const multi = this.#redis.multi() as MiniflareChain;
    for (const key of keys) {
      const member = encodeKey(key);
      multi.mfDelete(this.#entryKey(member), this.#index, member);
    }
    let count = 0;
    for (const expiration of check(await multi.exec())) {
      if (expiration !== null && !this.#expired(expiration as string)) count++;
    }
    return count;
  }

  list<Meta = unknown>(
    options?: StorageListOptions,
    skipMetadata?: boolean
  ): Promise<StorageListResult<StoredKeyMeta<Meta>>> {
    return listKeys(this as ListSource<Meta>, options, skipMetadata);
  }

  /** @internal */
  async names(range: KeyRange, reverse: boolean, limit: number): Promise<NamesResult> {
    const { lower, lowerInclusive, upper, prefix } = range;
    const min =
      lower === undefined
        ? "-"
        : Buffer.concat([Buffer.from(lowerInclusive ? "[" : "("), encodeKey(lower)]);
    // Every key starting with the prefix is below prefix + 0xff
    let upperBytes = upper === undefined ? undefined : encodeKey(upper);
    if (prefix !== "") {
      const prefixEnd = Buffer.concat([encodeKey(prefix), PREFIX_END]);
      if (upperBytes === undefined || Buffer.compare(prefixEnd, upperBytes) < 0) {
        upperBytes = prefixEnd;
      }
    }
    const max = upperBytes === undefined ? "+" : Buffer.concat([Buffer.from("("), upperBytes]);
    const limited = Number.isFinite(limit);
    const args: (string | Buffer | number)[] = limited ? ["LIMIT", 0, limit] : [];
    const members = reverse
      ? await (this.#redis.zrevrangebylexBuffer as any)(this.#index, max, min, ...args)
      : await (this.#redis.zrangebylexBuffer as any)(this.#index, min, max, ...args);
    const names = (members as Buffer[]).map(decodeKey);
    return { names, complete: !limited || names.length < limit };
  }

  /** @internal */
  async meta<Meta>(names: string[], skipMetadata: boolean): Promise<(StoredKeyMeta<Meta> | undefined)[]> {
    if (names.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    const members = names.map(encodeKey);
    for (const member of members) {
      if (skipMetadata) pipeline.hmgetBuffer(this.#entryKey(member), "x");
      else pipeline.hmgetBuffer(this.#entryKey(member), "x", "m");
    }
    const results = check(await pipeline.exec()) as (Buffer | null)[][];
    const prunes: Promise<void>[] = [];
    const keys = results.map(([expiration, metadata], i): StoredKeyMeta<Meta> | undefined => {
      if (expiration === null || this.#expired(expiration)) {
        prunes.push(this.#prune(members[i], expiration));
        return undefined;
      }
      return {
        name: names[i],
        expiration: expiration.length ? Number(expiration) : undefined,
        metadata: metadata ? JSON.parse(metadata.toString()) : undefined,
      };
    });
    await Promise.all(prunes);
    return keys;
  }
}
