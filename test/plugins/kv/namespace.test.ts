import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { ReadableStream } from "node:stream/web";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { KVNamespace } from "../../../src/plugins/kv/namespace.js";
import { IN_REQUEST_ERROR_MESSAGE, RequestContext } from "../../../src/shared/context.js";
import { OutputGate } from "../../../src/shared/sync/gate.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { waitsForInputGate } from "../../helpers/http.js";
import { deferred, flushTurns, timeMovesOn, track } from "../../helpers/sync.js";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const execFileAsync = promisify(execFile);
// The compiled modules under test, for child processes
const namespaceModule = fileURLToPath(new URL("../../../src/plugins/kv/namespace.js", import.meta.url));
const memoryModule = fileURLToPath(new URL("../../../src/storage/memory.js", import.meta.url));

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const utf8 = (s: string) => encoder.encode(s);

/** Seconds since the epoch the tests start at (a whole second) */
const NOW = 1_000_000_000;

interface Setup {
  ns: KVNamespace;
  storage: MemoryStorage;
  /** The current time in seconds: set it to move the clock */
  time: { seconds: number };
}

/** A namespace over memory storage sharing a mutable clock */
function setup(options: { blockGlobalAsyncIO?: boolean } = {}): Setup {
  const time = { seconds: NOW };
  const clock = () => time.seconds * 1000;
  const storage = new MemoryStorage(new Map(), clock);
  const ns = new KVNamespace(storage, { clock, ...options });
  return { ns, storage, time };
}

type ErrorClass = typeof Error | typeof TypeError;

/** Asserts `promise` rejects with exactly an instance of `klass` with `message` */
async function assertRejects(promise: Promise<unknown>, klass: ErrorClass, message: string): Promise<void> {
  await assert.rejects(promise, (e: any) => {
    assert.equal(e?.constructor, klass, `expected ${klass.name}, got ${e}`);
    assert.equal(e.message, message);
    return true;
  });
}

const KEY_TYPE = (op: string) => `Failed to execute '${op}' on 'KvNamespace': parameter 1 is not of type 'string'.`;
const KEY_LENGTH = (method: string, length: number) =>
  `KV ${method} failed: 414 UTF-8 encoded length of ${length} exceeds key length limit of 512.`;
const PUT_TYPE =
  "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";
const RESPONSE_TYPE = 'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".';
const OUT_OF_RANGE = "Value out of range. Must be between -2147483648 and 2147483647 (inclusive).";
const MAX_VALUE = 25 * 1024 * 1024;

/**
 * Stores "existing" (with metadata and an expiration), runs `put` (which must
 * reject with `klass`/`message`) against "existing" and against "absent",
 * then checks neither key changed
 */
async function assertPutRejects(
  { ns }: Setup,
  put: (key: string) => Promise<unknown>,
  klass: ErrorClass,
  message: string
): Promise<void> {
  await ns.put("existing", "old", { metadata: { old: true }, expirationTtl: 3600 });
  await assertRejects(put("existing"), klass, message);
  await assertRejects(put("absent"), klass, message);
  assert.deepEqual(await ns.getWithMetadata("existing"), { value: "old", metadata: { old: true } });
  assert.equal(await ns.get("absent"), null);
  assert.deepEqual((await ns.list()).keys, [
    { name: "existing", expiration: NOW + 3600, metadata: { old: true } },
  ]);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function streamOf(chunks: unknown[], type?: "bytes"): ReadableStream {
  return new ReadableStream({
    type,
    start(controller: ReadableStreamDefaultController) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  } as any);
}

const names = (result: { keys: { name: string }[] }) => result.keys.map(({ name }) => name);

// ---------------------------------------------------------------------------
// get
// ---------------------------------------------------------------------------

test("KVNamespace: get: missing key is null for every type", async () => {
  const { ns } = setup();
  assert.equal(await ns.get("missing"), null);
  for (const type of ["text", "json", "arrayBuffer", "stream"] as const) {
    assert.equal(await ns.get("missing", type as any), null);
    assert.equal(await ns.get("missing", { type } as any), null);
  }
});

test("KVNamespace: get: text by default and with type text", async () => {
  const { ns } = setup();
  await ns.put("key", "välue €");
  assert.equal(await ns.get("key"), "välue €");
  assert.equal(await ns.get("key", "text"), "välue €");
  assert.equal(await ns.get("key", { type: "text" }), "välue €");
  // An options object without a type is text too
  assert.equal(await ns.get("key", {}), "välue €");
});

test("KVNamespace: get: json parses the value", async () => {
  const { ns } = setup();
  await ns.put("key", '{"a":[1,2,{"b":null}],"c":"d"}');
  assert.deepEqual(await ns.get("key", "json"), { a: [1, 2, { b: null }], c: "d" });
  assert.deepEqual(await ns.get("key", { type: "json" }), { a: [1, 2, { b: null }], c: "d" });
  await ns.put("number", "42");
  assert.equal(await ns.get("number", "json"), 42);
  await ns.put("invalid", "not json");
  await assert.rejects(ns.get("invalid", "json"), SyntaxError);
});

test("KVNamespace: get: arrayBuffer is an ArrayBuffer holding exactly the bytes", async () => {
  const { ns } = setup();
  await ns.put("key", new Uint8Array([0, 1, 2, 255]));
  for (const buffer of [await ns.get("key", "arrayBuffer"), await ns.get("key", { type: "arrayBuffer" })]) {
    assert.ok(buffer instanceof ArrayBuffer);
    assert.equal(buffer.byteLength, 4);
    assert.deepEqual([...new Uint8Array(buffer)], [0, 1, 2, 255]);
  }
  // Each call gets its own copy
  const a = (await ns.get("key", "arrayBuffer"))!;
  new Uint8Array(a)[0] = 9;
  assert.deepEqual([...new Uint8Array((await ns.get("key", "arrayBuffer"))!)], [0, 1, 2, 255]);
});

test("KVNamespace: get: stream is a ReadableStream of the value's bytes", async () => {
  const { ns } = setup();
  await ns.put("key", "streamed value");
  const stream = await ns.get("key", "stream");
  assert.ok(stream instanceof ReadableStream);
  assert.equal(decoder.decode(await readAll(stream)), "streamed value");
  const objectForm = await ns.get("key", { type: "stream" });
  assert.ok(objectForm instanceof ReadableStream);
  assert.equal(decoder.decode(await readAll(objectForm)), "streamed value");
});

test("KVNamespace: get: stream is a byte stream (BYOB readers work)", async () => {
  const { ns } = setup();
  await ns.put("short", "value");
  const stream = (await ns.get("short", "stream"))!;
  const reader = stream.getReader({ mode: "byob" });
  const first = await reader.read(new Uint8Array(32));
  assert.equal(first.done, false);
  assert.equal(decoder.decode(first.value), "value");
  const second = await reader.read(new Uint8Array(32));
  assert.equal(second.done, true);

  // A value longer than the reader's buffer comes out in pieces
  const long = "0123456789".repeat(10);
  await ns.put("long", long);
  const longReader = (await ns.get("long", "stream"))!.getReader({ mode: "byob" });
  let text = "";
  for (;;) {
    const { done, value } = await longReader.read(new Uint8Array(32));
    if (done) break;
    assert.ok(value.byteLength <= 32);
    text += decoder.decode(value);
  }
  assert.equal(text, long);
});

test("KVNamespace: get: cacheTtl of at least 60 is accepted and ignored", async () => {
  const { ns } = setup();
  await ns.put("key", '{"a":1}');
  assert.equal(await ns.get("key", { cacheTtl: 60 }), '{"a":1}');
  assert.deepEqual(await ns.get("key", { type: "json", cacheTtl: 3600 }), { a: 1 });
  assert.deepEqual(await ns.getWithMetadata("key", { type: "text", cacheTtl: 61 }), {
    value: '{"a":1}',
    metadata: null,
  });
});

test("KVNamespace: get: cacheTtl under 60 throws", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  const message = (ttl: number) =>
    `KV GET failed: 400 Invalid cache_ttl of ${ttl}. Cache TTL must be at least 60.`;
  await assertRejects(ns.get("key", { cacheTtl: 59 }), Error, message(59));
  await assertRejects(ns.get("key", { type: "json", cacheTtl: 1 }), Error, message(1));
  await assertRejects(ns.get("key", { cacheTtl: -60 }), Error, message(-60));
  await assertRejects(ns.getWithMetadata("key", { cacheTtl: 59 }), Error, message(59));
  // Miniflare 2 only checks truthy cacheTtls: 0 and NaN are ignored (checked
  // against miniflare@2.14.4)
  assert.equal(await ns.get("key", { cacheTtl: 0 }), "value");
  assert.equal(await ns.get("key", { cacheTtl: NaN }), "value");
});

test("KVNamespace: get: unknown type throws TypeError", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  await assertRejects(ns.get("key", "bad" as any), TypeError, RESPONSE_TYPE);
  await assertRejects(ns.get("key", { type: "blob" } as any), TypeError, RESPONSE_TYPE);
  await assertRejects(ns.get("missing", "Text" as any), TypeError, RESPONSE_TYPE);
  await assertRejects(ns.getWithMetadata("key", "bad" as any), TypeError, RESPONSE_TYPE);
});

// ---------------------------------------------------------------------------
// getWithMetadata
// ---------------------------------------------------------------------------

test("KVNamespace: getWithMetadata: value and metadata", async () => {
  const { ns } = setup();
  await ns.put("key", '{"v":1}', { metadata: { m: [1, "two"] } });
  assert.deepEqual(await ns.getWithMetadata("key"), { value: '{"v":1}', metadata: { m: [1, "two"] } });
  assert.deepEqual(await ns.getWithMetadata("key", "text"), { value: '{"v":1}', metadata: { m: [1, "two"] } });
  assert.deepEqual(await ns.getWithMetadata("key", "json"), { value: { v: 1 }, metadata: { m: [1, "two"] } });
  assert.deepEqual(await ns.getWithMetadata("key", { type: "json" }), { value: { v: 1 }, metadata: { m: [1, "two"] } });

  const buffer = await ns.getWithMetadata<ArrayBuffer>("key", "arrayBuffer");
  assert.ok(buffer.value instanceof ArrayBuffer);
  assert.equal(decoder.decode(buffer.value), '{"v":1}');
  assert.deepEqual(buffer.metadata, { m: [1, "two"] });

  const stream = await ns.getWithMetadata<ReadableStream<Uint8Array>>("key", "stream");
  assert.ok(stream.value instanceof ReadableStream);
  assert.equal(decoder.decode(await readAll(stream.value)), '{"v":1}');
  assert.deepEqual(stream.metadata, { m: [1, "two"] });
});

test("KVNamespace: getWithMetadata: metadata is null when absent", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  const result = await ns.getWithMetadata("key");
  assert.deepEqual(result, { value: "value", metadata: null });
  assert.equal(result.metadata, null);
  assert.deepEqual(Object.keys(result), ["value", "metadata"]);
  // An expiration isn't metadata
  await ns.put("expiring", "value", { expirationTtl: 60 });
  assert.deepEqual(await ns.getWithMetadata("expiring"), { value: "value", metadata: null });
});

test("KVNamespace: getWithMetadata: both null when missing, for every type", async () => {
  const { ns } = setup();
  for (const type of [undefined, "text", "json", "arrayBuffer", "stream"] as const) {
    assert.deepEqual(await ns.getWithMetadata("missing", type), { value: null, metadata: null });
  }
});

// ---------------------------------------------------------------------------
// put
// ---------------------------------------------------------------------------

test("KVNamespace: put: strings are stored as UTF-8", async () => {
  const { ns } = setup();
  assert.equal(await ns.put("key", "välue €😀"), undefined);
  assert.equal(await ns.get("key"), "välue €😀");
  assert.deepEqual(new Uint8Array((await ns.get("key", "arrayBuffer"))!), utf8("välue €😀"));
  await ns.put("empty", "");
  assert.equal(await ns.get("empty"), "");
});

test("KVNamespace: put: ArrayBuffers and ArrayBufferViews store only the view's bytes", async () => {
  const { ns } = setup();
  const bytes = async (key: string) => [...new Uint8Array((await ns.get(key, "arrayBuffer"))!)];

  await ns.put("buffer", new Uint8Array([1, 2, 3]).buffer);
  assert.deepEqual(await bytes("buffer"), [1, 2, 3]);

  const array = new Uint8Array([1, 2, 3, 4, 5, 6]);
  await ns.put("uint8", array.subarray(2, 5));
  assert.deepEqual(await bytes("uint8"), [3, 4, 5]);

  await ns.put("dataview", new DataView(array.buffer, 1, 2));
  assert.deepEqual(await bytes("dataview"), [2, 3]);

  const int16 = new Int16Array([0x0102, 0x0304, 0x0506]);
  await ns.put("int16", int16.subarray(1, 2));
  assert.deepEqual(await bytes("int16"), [...new Uint8Array(int16.buffer, 2, 2)]);

  await ns.put("float64", new Float64Array([1.5]));
  assert.deepEqual(await bytes("float64"), [...new Uint8Array(new Float64Array([1.5]).buffer)]);

  await ns.put("buffer-node", Buffer.from("node"));
  assert.equal(await ns.get("buffer-node"), "node");

  // The value is copied: changing the source afterwards changes nothing
  const source = new Uint8Array([7, 7]);
  await ns.put("copied", source);
  source[0] = 0;
  assert.deepEqual(await bytes("copied"), [7, 7]);
});

test("KVNamespace: put: ReadableStreams are read and their chunks joined", async () => {
  const { ns } = setup();
  await ns.put("stream", streamOf([utf8("chunk1 "), utf8("chunk2 "), utf8("chunk3")]));
  assert.equal(await ns.get("stream"), "chunk1 chunk2 chunk3");

  await ns.put("strings", streamOf(["ab", utf8("cd"), "é€", new Uint8Array([0x21]).buffer]));
  assert.equal(await ns.get("strings"), "abcdé€!");

  await ns.put("bytes", streamOf([utf8("byte "), utf8("stream")], "bytes"));
  assert.equal(await ns.get("bytes"), "byte stream");

  await ns.put("empty", streamOf([]));
  assert.equal(await ns.get("empty"), "");

  // A stream got from KV can be put back (streaming values put as streams is
  // checked in a child process by the Buffer pool test below)
  await ns.put("single", "single value");
  await ns.put("copy", (await ns.get("single", "stream"))!);
  assert.equal(await ns.get("copy"), "single value");
});

test("KVNamespace: get: streaming values leaves Node's shared Buffer pool intact", async () => {
  // A byte stream detaches the ArrayBuffer of each chunk it enqueues: if
  // that's Node's shared Buffer pool (small Buffers, Buffer.concat() results
  // and Buffer#slice() views of them), every later Buffer.from() in the
  // process throws, the test runner's too. So this runs in a child process.
  const script = `
    const { KVNamespace } = await import(${JSON.stringify(pathToFileURL(namespaceModule).href)});
    const { MemoryStorage } = await import(${JSON.stringify(pathToFileURL(memoryModule).href)});
    const ns = new KVNamespace(new MemoryStorage());
    const streamOf = (chunks) => new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
    await ns.put("chunks", streamOf([new Uint8Array([97]), new Uint8Array([98])]));
    await ns.put("buffer-chunk", streamOf([Buffer.from("c")]));
    await ns.put("buffer", Buffer.from("d"));
    let text = "";
    for (const key of ["chunks", "buffer-chunk", "buffer"]) {
      for await (const chunk of await ns.get(key, "stream")) text += new TextDecoder().decode(chunk);
      Buffer.from("pooled");
    }
    process.stdout.write(text + ":" + Buffer.from("ok").toString());
  `;
  const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script]).catch(
    (e) => assert.fail(`child failed: ${e.stderr.split("\n").find((l: string) => /Error/.test(l))}`)
  );
  assert.equal(stdout, "abcd:ok");
});

test("KVNamespace: put: other value types throw TypeError", async () => {
  const s = setup();
  for (const value of [42, {}, null, undefined, true, [1, 2], new Blob(["blob"])]) {
    await assertPutRejects(s, (key) => s.ns.put(key, value as any), TypeError, PUT_TYPE);
  }
});

test("KVNamespace: put: expirationTtl sets expiration to now + ttl", async () => {
  const { ns, time } = setup();
  await ns.put("number", "value", { expirationTtl: 60 });
  await ns.put("string", "value", { expirationTtl: "120" });
  // Numbers are rounded, strings parsed as integers (as Miniflare 2)
  await ns.put("float", "value", { expirationTtl: 120.6 });
  await ns.put("string-float", "value", { expirationTtl: "120.9" });
  assert.deepEqual((await ns.list()).keys, [
    { name: "float", expiration: NOW + 121, metadata: undefined },
    { name: "number", expiration: NOW + 60, metadata: undefined },
    { name: "string", expiration: NOW + 120, metadata: undefined },
    { name: "string-float", expiration: NOW + 120, metadata: undefined },
  ]);

  time.seconds = NOW + 59;
  assert.equal(await ns.get("number"), "value");
  time.seconds = NOW + 60;
  assert.equal(await ns.get("number"), null);
  assert.deepEqual(await ns.getWithMetadata("number"), { value: null, metadata: null });
  assert.deepEqual(names(await ns.list()), ["float", "string", "string-float"]);
  time.seconds = NOW + 120;
  assert.deepEqual(names(await ns.list()), ["float"]);
  assert.equal(await ns.get("string"), null);
  time.seconds = NOW + 121;
  assert.deepEqual(names(await ns.list()), []);
});

test("KVNamespace: put: absolute expiration", async () => {
  const { ns, time } = setup();
  await ns.put("number", "value", { expiration: NOW + 60 });
  await ns.put("string", "value", { expiration: String(NOW + 1000) });
  await ns.put("max", "value", { expiration: 2147483647 });
  assert.deepEqual((await ns.list()).keys, [
    { name: "max", expiration: 2147483647, metadata: undefined },
    { name: "number", expiration: NOW + 60, metadata: undefined },
    { name: "string", expiration: NOW + 1000, metadata: undefined },
  ]);
  time.seconds = NOW + 59;
  assert.equal(await ns.get("number", "arrayBuffer") instanceof ArrayBuffer, true);
  time.seconds = NOW + 60;
  assert.equal(await ns.get("number"), null);
  assert.deepEqual(names(await ns.list()), ["max", "string"]);
  time.seconds = NOW + 1000;
  assert.equal(await ns.get("string"), null);
  assert.deepEqual(names(await ns.list()), ["max"]);
});

test("KVNamespace: put: expirationTtl wins over expiration", async () => {
  const { ns } = setup();
  // The (invalid) expiration is never looked at
  await ns.put("invalid-expiration", "value", { expiration: 1, expirationTtl: 120 });
  await ns.put("later-expiration", "value", { expiration: NOW + 1000, expirationTtl: 60 });
  assert.deepEqual((await ns.list()).keys, [
    { name: "invalid-expiration", expiration: NOW + 120, metadata: undefined },
    { name: "later-expiration", expiration: NOW + 60, metadata: undefined },
  ]);
  // ...but an invalid TTL is still an error
  await assertRejects(
    ns.put("key", "value", { expiration: NOW + 1000, expirationTtl: 30 }),
    Error,
    "KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60."
  );
});

test("KVNamespace: put: metadata round-trips with JSON semantics", async () => {
  const { ns } = setup();
  const metadata = { n: 1, s: "two", list: [1, { b: null }], date: new Date(0), missing: undefined };
  await ns.put("key", "value", { metadata });
  const expected = { n: 1, s: "two", list: [1, { b: null }], date: "1970-01-01T00:00:00.000Z" };
  assert.deepEqual((await ns.getWithMetadata("key")).metadata, expected);
  assert.deepEqual((await ns.list()).keys, [{ name: "key", expiration: undefined, metadata: expected }]);

  // Stored as a copy: changing the object afterwards changes nothing, nor
  // does changing what a read returned
  metadata.n = 2;
  const read = (await ns.getWithMetadata<string, any>("key")).metadata;
  read.s = "changed";
  assert.deepEqual((await ns.getWithMetadata("key")).metadata, expected);

  // Primitive metadata
  await ns.put("string", "value", { metadata: "meta" });
  assert.equal((await ns.getWithMetadata("string")).metadata, "meta");
  await ns.put("zero", "value", { metadata: 0 });
  assert.equal((await ns.getWithMetadata("zero")).metadata, 0);
});

test("KVNamespace: put: overwriting replaces value, metadata and expiration", async () => {
  const { ns } = setup();
  await ns.put("key", "first", { metadata: { version: 1 }, expirationTtl: 60 });
  await ns.put("key", "second", { metadata: { version: 2 }, expiration: NOW + 3600 });
  assert.deepEqual(await ns.getWithMetadata("key"), { value: "second", metadata: { version: 2 } });
  assert.deepEqual((await ns.list()).keys, [{ name: "key", expiration: NOW + 3600, metadata: { version: 2 } }]);

  // Without options, the metadata and expiration are gone
  await ns.put("key", "third");
  assert.deepEqual(await ns.getWithMetadata("key"), { value: "third", metadata: null });
  assert.deepEqual((await ns.list()).keys, [{ name: "key", expiration: undefined, metadata: undefined }]);
});

// ---------------------------------------------------------------------------
// put validation
// ---------------------------------------------------------------------------

test("KVNamespace: put: value of more than 25MiB throws, exactly 25MiB works", async () => {
  const s = setup();
  const message = "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.";
  await assertPutRejects(s, (key) => s.ns.put(key, new Uint8Array(MAX_VALUE + 1)), Error, message);
  await assertPutRejects(s, (key) => s.ns.put(key, "x".repeat(MAX_VALUE + 1)), Error, message);
  // Multi-byte characters count as bytes
  await assertPutRejects(
    s,
    (key) => s.ns.put(key, "é".repeat(MAX_VALUE / 2) + "x"),
    Error,
    message
  );
  // As a stream, in chunks that are each under the limit
  const mib = new Uint8Array(1024 * 1024);
  await assertPutRejects(
    s,
    (key) => s.ns.put(key, streamOf([...Array(25).fill(mib), new Uint8Array(1)])),
    Error,
    "KV PUT failed: 413 Value length of at least 26214401 exceeds limit of 26214400."
  );

  await s.ns.put("exact", new Uint8Array(MAX_VALUE).fill(1));
  assert.equal((await s.ns.get("exact", "arrayBuffer"))!.byteLength, MAX_VALUE);
  await s.ns.put("exact-stream", streamOf(Array(25).fill(mib)));
  assert.equal((await s.ns.get("exact-stream", "arrayBuffer"))!.byteLength, MAX_VALUE);
});

test("KVNamespace: put: a stream over the limit is cancelled once past it, never read to its end (reliability check 2)", async () => {
  const s = setup();
  const mib = 1024 * 1024;
  const reads: { pulled: number; cancelled: boolean }[] = [];
  // 64 MiB, made one MiB at a time as it is read
  const huge = () => {
    const read = { pulled: 0, cancelled: false };
    reads.push(read);
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (read.pulled === 64) return controller.close();
        read.pulled++;
        controller.enqueue(new Uint8Array(mib));
      },
      cancel() {
        read.cancelled = true;
      },
    });
  };
  await assertPutRejects(
    s,
    (key) => s.ns.put(key, huge()),
    Error,
    `KV PUT failed: 413 Value length of at least ${26 * mib} exceeds limit of 26214400.`
  );
  assert.equal(reads.length, 2);
  for (const { pulled, cancelled } of reads) {
    assert.ok(cancelled);
    // The chunk past the limit, and the one the stream queued ahead at most
    assert.ok(pulled <= 27, `${pulled} MiB read`);
  }
});

test("KVNamespace: put: metadata over 1024 bytes of JSON throws, 1024 works", async () => {
  const s = setup();
  // JSON.stringify adds the two quotes
  await assertPutRejects(
    s,
    (key) => s.ns.put(key, "value", { metadata: "x".repeat(1023) }),
    Error,
    "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024."
  );
  // Counted in UTF-8 bytes: {"a":"€€€..."} is 8 + 3n bytes
  await assertPutRejects(
    s,
    (key) => s.ns.put(key, "value", { metadata: { a: "€".repeat(339) } }),
    Error,
    "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024."
  );
  await s.ns.put("exact", "value", { metadata: "x".repeat(1022) });
  assert.equal((await s.ns.getWithMetadata("exact")).metadata, "x".repeat(1022));
});

test("KVNamespace: put: invalid expirationTtl throws", async () => {
  const s = setup();
  const notPositive = (x: unknown) =>
    `KV PUT failed: 400 Invalid expiration_ttl of ${x}. Please specify integer greater than 0.`;
  const tooShort = (x: unknown) =>
    `KV PUT failed: 400 Invalid expiration_ttl of ${x}. Expiration TTL must be at least 60.`;
  const cases: [unknown, ErrorClass, string][] = [
    [0, Error, notPositive(0)],
    [-1, Error, notPositive(-1)],
    ["nope", Error, notPositive("nope")],
    ["0", Error, notPositive("0")],
    [59, Error, tooShort(59)],
    ["59", Error, tooShort("59")],
    [59.4, Error, tooShort(59.4)],
    [2147483648, TypeError, OUT_OF_RANGE],
    [-2147483649, TypeError, OUT_OF_RANGE],
    ["9999999999", TypeError, OUT_OF_RANGE],
  ];
  for (const [expirationTtl, klass, message] of cases) {
    await assertPutRejects(s, (key) => s.ns.put(key, "value", { expirationTtl: expirationTtl as any }), klass, message);
  }
});

test("KVNamespace: put: invalid expiration throws", async () => {
  const s = setup();
  const notFuture = (x: unknown) =>
    `KV PUT failed: 400 Invalid expiration of ${x}. Please specify integer greater than the current number of seconds since the UNIX epoch.`;
  const tooSoon = (x: unknown) =>
    `KV PUT failed: 400 Invalid expiration of ${x}. Expiration times must be at least 60 seconds in the future.`;
  const cases: [unknown, ErrorClass, string][] = [
    [NOW, Error, notFuture(NOW)],
    [NOW - 1, Error, notFuture(NOW - 1)],
    [0, Error, notFuture(0)],
    [-5, Error, notFuture(-5)],
    ["nope", Error, notFuture("nope")],
    [NOW + 1, Error, tooSoon(NOW + 1)],
    [NOW + 59, Error, tooSoon(NOW + 59)],
    [String(NOW + 59), Error, tooSoon(String(NOW + 59))],
    [2147483648, TypeError, OUT_OF_RANGE],
    [-2147483649, TypeError, OUT_OF_RANGE],
  ];
  for (const [expiration, klass, message] of cases) {
    await assertPutRejects(s, (key) => s.ns.put(key, "value", { expiration: expiration as any }), klass, message);
  }
  // Relative to the clock, not real time
  s.time.seconds = NOW + 1000;
  await assertRejects(s.ns.put("key", "value", { expiration: NOW + 1000 }), Error, notFuture(NOW + 1000));
  await s.ns.put("key", "value", { expiration: NOW + 1060 });
  assert.equal((await s.ns.list({ prefix: "key" })).keys[0].expiration, NOW + 1060);
});

// ---------------------------------------------------------------------------
// Key validation
// ---------------------------------------------------------------------------

/** Each keyed operation on `key`, with its operation and method names */
function keyedOps(ns: KVNamespace, key: any): [op: string, method: string, promise: () => Promise<unknown>][] {
  return [
    ["get", "GET", () => ns.get(key)],
    ["getWithMetadata", "GET", () => ns.getWithMetadata(key)],
    ["put", "PUT", () => ns.put(key, "value")],
    ["delete", "DELETE", () => ns.delete(key)],
  ];
}

test("KVNamespace: non-string keys throw TypeError naming the operation", async () => {
  const { ns } = setup();
  for (const key of [undefined, null, 1, {}, Symbol("key"), ["key"]]) {
    for (const [op, , call] of keyedOps(ns, key)) {
      await assertRejects(call(), TypeError, KEY_TYPE(op));
    }
  }
  // A missing key too
  await assertRejects((ns.get as any)(), TypeError, KEY_TYPE("get"));
  assert.deepEqual((await ns.list()).keys, []);
});

test("KVNamespace: empty, '.' and '..' keys throw TypeError", async () => {
  const { ns } = setup();
  const cases: [string, string][] = [
    ["", "Key name cannot be empty."],
    [".", '"." is not allowed as a key name.'],
    ["..", '".." is not allowed as a key name.'],
  ];
  for (const [key, message] of cases) {
    for (const [, , call] of keyedOps(ns, key)) {
      await assertRejects(call(), TypeError, message);
    }
  }
  assert.deepEqual((await ns.list()).keys, []);
  // Other dotted keys are fine
  for (const key of ["...", "./a", "a/..", " . "]) {
    await ns.put(key, key);
    assert.equal(await ns.get(key), key);
  }
});

test("KVNamespace: keys over 512 UTF-8 bytes throw", async () => {
  const { ns } = setup();
  const cases: [string, number][] = [
    ["x".repeat(513), 513],
    ["x".repeat(1000), 1000],
    // Multi-byte characters are counted in bytes, not characters
    ["€".repeat(171), 513], // 3 bytes each
    ["é".repeat(256) + "a", 513], // 2 bytes each
    ["😀".repeat(128) + "a", 513], // 4 bytes each
  ];
  for (const [key, length] of cases) {
    for (const [, method, call] of keyedOps(ns, key)) {
      await assertRejects(call(), Error, KEY_LENGTH(method, length));
    }
  }
  assert.deepEqual((await ns.list()).keys, []);
});

test("KVNamespace: 512-byte keys work", async () => {
  const { ns } = setup();
  const keys = ["x".repeat(512), "€".repeat(170) + "ab", "😀".repeat(128), "é".repeat(256)];
  for (const key of keys) {
    assert.equal(Buffer.byteLength(key), 512);
    await ns.put(key, "value", { metadata: { key: key.length } });
    assert.equal(await ns.get(key), "value");
    assert.deepEqual(await ns.getWithMetadata(key), { value: "value", metadata: { key: key.length } });
  }
  assert.deepEqual(names(await ns.list()).sort(), [...keys].sort());
  for (const key of keys) await ns.delete(key);
  assert.deepEqual((await ns.list()).keys, []);
});

// ---------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------

test("KVNamespace: delete: removes the key and resolves undefined", async () => {
  const { ns } = setup();
  await ns.put("key", "value", { metadata: { m: 1 } });
  await ns.put("other", "value");
  assert.equal(await ns.delete("key"), undefined);
  assert.equal(await ns.get("key"), null);
  assert.deepEqual(await ns.getWithMetadata("key"), { value: null, metadata: null });
  assert.deepEqual(names(await ns.list()), ["other"]);
  // Missing keys are fine, and deleting twice too
  assert.equal(await ns.delete("key"), undefined);
  assert.equal(await ns.delete("never-existed"), undefined);
  assert.deepEqual(names(await ns.list()), ["other"]);
});

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

test("KVNamespace: list: empty namespace", async () => {
  const { ns } = setup();
  assert.deepEqual(await ns.list(), { keys: [], cursor: "", list_complete: true });
  assert.deepEqual(await ns.list({ prefix: "a", limit: 5 }), { keys: [], cursor: "", list_complete: true });
});

test("KVNamespace: list: keys sorted by UTF-8 bytes", async () => {
  const { ns } = setup();
  // Inserted out of order. U+FF61 sorts before U+1F600 in UTF-8, though its
  // UTF-16 code unit is above the emoji's surrogates
  const sorted = ["A", "B", "a", "a\u0000", "aa", "b", "é", "€", "\uFF61", "😀"];
  for (const key of ["😀", "b", "€", "a", "\uFF61", "B", "aa", "é", "A", "a\u0000"]) {
    await ns.put(key, "value");
  }
  assert.deepEqual(names(await ns.list()), sorted);
});

test("KVNamespace: list: key objects are exactly { name, expiration, metadata }", async () => {
  const { ns } = setup();
  await ns.put("plain", "value");
  await ns.put("with-both", "value", { expirationTtl: 100, metadata: { a: 1 } });
  await ns.put("with-meta", "value", { metadata: "m" });
  const result = await ns.list();
  assert.deepEqual(Object.keys(result).sort(), ["cursor", "keys", "list_complete"]);
  assert.deepEqual(result.keys, [
    { name: "plain", expiration: undefined, metadata: undefined },
    { name: "with-both", expiration: NOW + 100, metadata: { a: 1 } },
    { name: "with-meta", expiration: undefined, metadata: "m" },
  ]);
  // The properties are there even when undefined
  for (const key of result.keys) {
    assert.deepEqual(Object.keys(key), ["name", "expiration", "metadata"]);
  }
  assert.ok("expiration" in result.keys[0] && "metadata" in result.keys[0]);
});

test("KVNamespace: list: prefix", async () => {
  const { ns } = setup();
  for (const key of ["a", "ab", "abc", "abd", "b", "ba", "Ab"]) await ns.put(key, "value");
  assert.deepEqual(names(await ns.list({ prefix: "ab" })), ["ab", "abc", "abd"]);
  assert.deepEqual(names(await ns.list({ prefix: "a" })), ["a", "ab", "abc", "abd"]);
  assert.deepEqual(names(await ns.list({ prefix: "b" })), ["b", "ba"]);
  assert.deepEqual(names(await ns.list({ prefix: "c" })), []);
  assert.deepEqual(names(await ns.list({ prefix: "" })), ["Ab", "a", "ab", "abc", "abd", "b", "ba"]);
});

test("KVNamespace: list: limit and cursor paging", async () => {
  const { ns } = setup();
  for (const key of ["k5", "k3", "k1", "k4", "k2"]) await ns.put(key, "value", { metadata: key });

  const page1 = await ns.list({ limit: 2 });
  assert.deepEqual(page1, {
    keys: [
      { name: "k1", expiration: undefined, metadata: "k1" },
      { name: "k2", expiration: undefined, metadata: "k2" },
    ],
    cursor: Buffer.from("k2").toString("base64"),
    list_complete: false,
  });
  const page2 = await ns.list({ limit: 2, cursor: page1.cursor });
  assert.deepEqual(names(page2), ["k3", "k4"]);
  assert.equal(page2.cursor, Buffer.from("k4").toString("base64"));
  assert.equal(page2.list_complete, false);
  const page3 = await ns.list({ limit: 2, cursor: page2.cursor });
  assert.deepEqual(page3, { keys: [{ name: "k5", expiration: undefined, metadata: "k5" }], cursor: "", list_complete: true });

  // A page ending exactly at the last key is complete
  const exact = await ns.list({ limit: 5 });
  assert.deepEqual(names(exact), ["k1", "k2", "k3", "k4", "k5"]);
  assert.equal(exact.cursor, "");
  assert.equal(exact.list_complete, true);
  const last = await ns.list({ limit: 1, cursor: Buffer.from("k4").toString("base64") });
  assert.deepEqual(last, { keys: [{ name: "k5", expiration: undefined, metadata: "k5" }], cursor: "", list_complete: true });

  // An empty cursor starts from the beginning
  assert.deepEqual(names(await ns.list({ limit: 1, cursor: "" })), ["k1"]);
});

test("KVNamespace: list: cursor of a multi-byte key is base64 of its UTF-8", async () => {
  const { ns } = setup();
  for (const key of ["é1", "é2", "😀"]) await ns.put(key, "value");
  const page1 = await ns.list({ limit: 1 });
  assert.equal(page1.cursor, Buffer.from("é1", "utf8").toString("base64"));
  const page2 = await ns.list({ limit: 1, cursor: page1.cursor });
  assert.deepEqual(names(page2), ["é2"]);
  assert.deepEqual(names(await ns.list({ limit: 1, cursor: page2.cursor })), ["😀"]);
});

test("KVNamespace: list: paging with a prefix", async () => {
  const { ns } = setup();
  for (const key of ["a", "p1", "p2", "p3", "q"]) await ns.put(key, "value");
  const page1 = await ns.list({ prefix: "p", limit: 2 });
  assert.deepEqual(names(page1), ["p1", "p2"]);
  assert.equal(page1.list_complete, false);
  const page2 = await ns.list({ prefix: "p", limit: 2, cursor: page1.cursor });
  assert.deepEqual(page2, { keys: [{ name: "p3", expiration: undefined, metadata: undefined }], cursor: "", list_complete: true });
});

test("KVNamespace: list: expired keys are omitted, pages still fill", async () => {
  const { ns, time } = setup();
  await ns.put("a", "value", { expirationTtl: 60 });
  await ns.put("b", "value");
  await ns.put("c", "value", { expirationTtl: 60 });
  await ns.put("d", "value", { expirationTtl: 120 });
  await ns.put("e", "value");
  assert.deepEqual(names(await ns.list()), ["a", "b", "c", "d", "e"]);
  time.seconds = NOW + 60;
  assert.deepEqual(names(await ns.list()), ["b", "d", "e"]);
  const page1 = await ns.list({ limit: 2 });
  assert.deepEqual(names(page1), ["b", "d"]);
  assert.equal(page1.list_complete, false);
  const page2 = await ns.list({ limit: 2, cursor: page1.cursor });
  assert.deepEqual(page2, { keys: [{ name: "e", expiration: undefined, metadata: undefined }], cursor: "", list_complete: true });
  // Expiring between pages
  time.seconds = NOW + 120;
  assert.deepEqual(names(await ns.list({ limit: 2, cursor: Buffer.from("b").toString("base64") })), ["e"]);
});

test("KVNamespace: list: paging is stable when the cursor's key is deleted", async () => {
  const { ns } = setup();
  for (const key of ["a", "b", "c", "d", "e"]) await ns.put(key, "value");
  const page1 = await ns.list({ limit: 2 });
  assert.deepEqual(names(page1), ["a", "b"]);
  await ns.delete("b");
  // Added before the cursor: not seen
  await ns.put("aa", "value");
  const page2 = await ns.list({ limit: 2, cursor: page1.cursor });
  assert.deepEqual(names(page2), ["c", "d"]);
  await ns.delete("d");
  await ns.delete("c");
  const page3 = await ns.list({ limit: 2, cursor: page2.cursor });
  assert.deepEqual(page3, { keys: [{ name: "e", expiration: undefined, metadata: undefined }], cursor: "", list_complete: true });
});

test("KVNamespace: list: invalid limits throw, 1 and 1000 work", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  const tooSmall = (x: unknown) =>
    `KV GET failed: 400 Invalid key_count_limit of ${x}. Please specify an integer greater than 0.`;
  await assertRejects(ns.list({ limit: 0 }), Error, tooSmall(0));
  await assertRejects(ns.list({ limit: -1 }), Error, tooSmall(-1));
  await assertRejects(ns.list({ limit: NaN }), Error, tooSmall(NaN));
  await assertRejects(
    ns.list({ limit: 1001 }),
    Error,
    "KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000."
  );
  assert.deepEqual(names(await ns.list({ limit: 1 })), ["key"]);
  assert.deepEqual(names(await ns.list({ limit: 1000 })), ["key"]);
});

test("KVNamespace: list: at most 1000 keys by default", async () => {
  const { ns } = setup();
  for (let i = 0; i < 1001; i++) await ns.put(`key${String(i).padStart(4, "0")}`, "");
  const page1 = await ns.list();
  assert.equal(page1.keys.length, 1000);
  assert.equal(page1.list_complete, false);
  assert.equal(page1.cursor, Buffer.from("key0999").toString("base64"));
  const page2 = await ns.list({ cursor: page1.cursor });
  assert.deepEqual(names(page2), ["key1000"]);
  assert.equal(page2.list_complete, true);
});

// ---------------------------------------------------------------------------
// Request context, gates
// ---------------------------------------------------------------------------

test("KVNamespace: each operation counts one internal subrequest", async () => {
  const { ns } = setup();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    await ns.put("key", "value");
    assert.equal(ctx.internalSubrequests, 1);
    await ns.get("key");
    assert.equal(ctx.internalSubrequests, 2);
    await ns.getWithMetadata("key");
    assert.equal(ctx.internalSubrequests, 3);
    await ns.list();
    assert.equal(ctx.internalSubrequests, 4);
    await ns.delete("key");
    assert.equal(ctx.internalSubrequests, 5);
  });
  assert.equal(ctx.externalSubrequests, 0);
});

test("KVNamespace: the 1001st operation in a request throws", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  const ctx = new RequestContext();
  const message =
    "Too many API requests by single worker invocation. Workers can make up to 1000 KV and Durable Object requests per invocation.";
  await ctx.runWith(async () => {
    for (let i = 0; i < 1000; i++) await ns.get("key");
    assert.equal(ctx.internalSubrequests, 1000);
    await assertRejects(ns.get("key"), Error, message);
    await assertRejects(ns.put("other", "value"), Error, message);
    await assertRejects(ns.list(), Error, message);
  });
  // Nothing was written by the rejected put
  assert.equal(await ns.get("other"), null);
  // A new request starts from zero
  await new RequestContext().runWith(() => ns.get("key"));
});

test("KVNamespace: operations advance the request's frozen time", async () => {
  const { ns } = setup();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    const before = ctx.currentTime;
    await timeMovesOn(before);
    assert.equal(ctx.currentTime, before);
    await ns.get("key");
    const afterGet = ctx.currentTime;
    assert.ok(afterGet > before);
    await timeMovesOn(afterGet);
    await ns.put("key", "value");
    assert.ok(ctx.currentTime > afterGet);
  });
});

test("KVNamespace: blockGlobalAsyncIO: operations outside a request throw", async () => {
  const { ns, storage } = setup({ blockGlobalAsyncIO: true });
  await assertRejects(ns.get("key"), Error, IN_REQUEST_ERROR_MESSAGE);
  await assertRejects(ns.getWithMetadata("key"), Error, IN_REQUEST_ERROR_MESSAGE);
  await assertRejects(ns.put("key", "value"), Error, IN_REQUEST_ERROR_MESSAGE);
  await assertRejects(ns.delete("key"), Error, IN_REQUEST_ERROR_MESSAGE);
  await assertRejects(ns.list(), Error, IN_REQUEST_ERROR_MESSAGE);
  assert.equal(await storage.has("key"), false);

  // Inside a request, they work
  await new RequestContext().runWith(async () => {
    await ns.put("key", "value", { metadata: 1 });
    assert.equal(await ns.get("key"), "value");
    assert.deepEqual(await ns.getWithMetadata("key"), { value: "value", metadata: 1 });
    assert.deepEqual(names(await ns.list()), ["key"]);
    await ns.delete("key");
    assert.equal(await ns.get("key"), null);
  });

  // Without the option, they work outside requests too
  const { ns: ungated } = setup();
  await ungated.put("key", "value");
  assert.equal(await ungated.get("key"), "value");
});

test("KVNamespace: results wait for the input gate", async () => {
  const { ns } = setup();
  await ns.put("key", "value");
  assert.equal(await waitsForInputGate(() => ns.get("key")), "value");
});

test("KVNamespace: put and delete wait for the output gate before writing", async () => {
  const { ns, storage } = setup();
  const gate = new OutputGate();
  const pending = deferred();
  await gate.runWith(async () => {
    gate.waitUntil(pending.promise);
    const put = ns.put("key", "value");
    const putState = track(put);
    await flushTurns();
    assert.equal(putState.settled, false);
    assert.equal(await storage.has("key"), false);
    pending.resolve();
    await put;
    assert.equal(await storage.has("key"), true);
  });

  const gate2 = new OutputGate();
  const pending2 = deferred();
  await gate2.runWith(async () => {
    gate2.waitUntil(pending2.promise);
    const del = ns.delete("key");
    await flushTurns();
    assert.equal(await storage.has("key"), true);
    pending2.resolve();
    await del;
    assert.equal(await storage.has("key"), false);
  });
});
