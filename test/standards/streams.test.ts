import assert from "node:assert/strict";
import { test } from "node:test";
import { arrayBuffer, text } from "node:stream/consumers";
import { setImmediate } from "node:timers/promises";
import * as webStreams from "node:stream/web";
import { _isByteStream, kBodyStreamBrand, kFixedLength } from "../../src/standards/http-base.js";
import {
  type ArrayBufferViewConstructor,
  CompressionStream,
  CompressionStreamImpl,
  DecompressionStream,
  DecompressionStreamImpl,
  FixedLengthStream,
  IdentityTransformStream,
  _isDisturbedStream,
  _isFixedLengthStream,
  convertToByteStream,
  convertToRegularStream,
  createTransformStreamStandIn,
  kContentLength,
  proxyDisableStreamConstructor,
} from "../../src/standards/streams.js";
import { NON_ARRAY_CHUNK_MESSAGE, STRING_CHUNK_MESSAGE } from "../helpers/http.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function chunkedStream(chunks: number[][]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const chunk = chunks.shift();
      assert(chunk);
      controller.enqueue(new Uint8Array(chunk));
      if (chunks.length === 0) controller.close();
    },
  }) as ReadableStream<Uint8Array>;
}

function regularStream<T>(chunks: T[]): ReadableStream<T> {
  return new ReadableStream<T>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

// Repeatedly calls readAtLeast() on the rest of one buffer
async function* byobReadAtLeast<Ctor extends ArrayBufferViewConstructor>(
  stream: ReadableStream<Uint8Array>,
  minBytes: number,
  bufferLength: number,
  ctor: Ctor
): AsyncGenerator<ReadableStreamReadResult<InstanceType<Ctor>>> {
  let buffer = new ArrayBuffer(bufferLength);
  let offset = 0;
  const reader = stream.getReader({ mode: "byob" });
  const bytesPerElement: number = (ctor as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
  const Constructor = ctor as unknown as new (
    buffer: ArrayBuffer,
    byteOffset: number,
    length: number
  ) => ArrayBufferView;
  for (;;) {
    const view = new Constructor(
      buffer,
      offset,
      (buffer.byteLength - offset) / bytesPerElement
    ) as InstanceType<Ctor>;
    const result = await reader.readAtLeast(minBytes, view);
    yield result;
    if (result.value) {
      buffer = result.value.buffer as ArrayBuffer;
      offset += result.value.byteLength;
    }
  }
}

async function nextRead<T>(
  reads: AsyncGenerator<ReadableStreamReadResult<T>>
): Promise<ReadableStreamReadResult<T>> {
  const { value } = await reads.next();
  assert(value);
  return value;
}

test("ReadableStreamBYOBReader: readAtLeast: reads at least n bytes", async () => {
  const reads = byobReadAtLeast(chunkedStream([[1, 2, 3], [4], [5, 6]]), 4, 8, Uint8Array);
  const result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3, 4]));
});
test("ReadableStreamBYOBReader: readAtLeast: reads more than n bytes if available", async () => {
  const reads = byobReadAtLeast(chunkedStream([[1, 2, 3], [4, 5], [7]]), 4, 8, Uint8Array);
  const result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3, 4, 5]));
});
test("ReadableStreamBYOBReader: readAtLeast: reads less than n bytes if EOF reached", async () => {
  const reads = byobReadAtLeast(chunkedStream([[1], [2, 3], [4, 5]]), 3, 8, Uint8Array);
  let result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3]));
  // The read reaching the end still isn't done: it returned bytes
  result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint8Array([4, 5]));
  result = await nextRead(reads);
  assert.equal(result.done, true);
  assert.deepEqual(result.value, new Uint8Array([]));
});
test("ReadableStreamBYOBReader: readAtLeast: reads with Uint32Arrays", async () => {
  const stream = chunkedStream([
    [0x01, 0x02, 0x03],
    [0x04, 0x05],
    [0x06, 0x07, 0x08],
    [0x09, 0x10, 0x11, 0x12],
  ]);
  const reads = byobReadAtLeast(stream, 5, 20, Uint32Array);
  // At least 5 bytes, in whole 4-byte elements: 2 elements
  let result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint32Array([0x04030201, 0x08070605]));
  result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint32Array([0x12111009]));
  result = await nextRead(reads);
  assert.equal(result.done, true);
  assert.deepEqual(result.value, new Uint32Array([]));
});
test("ReadableStreamBYOBReader: readAtLeast: throws with Uint32Arrays on partial read", async () => {
  const stream = chunkedStream([
    [0x01, 0x02, 0x03, 0x04],
    [0x05, 0x06, 0x07],
  ]);
  const reads = byobReadAtLeast(stream, 5, 20, Uint32Array);
  await assert.rejects(reads.next(), {
    name: "TypeError",
    message: "Invalid state: Partial read",
  });
});
test("ReadableStreamBYOBReader: readAtLeast: reads with DataViews", async () => {
  const reads = byobReadAtLeast(chunkedStream([[1, 2], [3], [4, 5]]), 3, 8, DataView);
  const result = await nextRead(reads);
  assert.equal(result.done, false);
  assert(result.value instanceof DataView);
  assert.deepEqual(
    new Uint8Array(result.value.buffer, result.value.byteOffset, result.value.byteLength),
    new Uint8Array([1, 2, 3])
  );
});
test("ReadableStreamBYOBReader: readAtLeast: reads into a view with an offset", async () => {
  const reader = chunkedStream([[1, 2], [3, 4]]).getReader({ mode: "byob" });
  const view = new Uint8Array(new ArrayBuffer(8), 2, 6);
  const result = await reader.readAtLeast(3, view);
  assert.equal(result.done, false);
  assert.equal(result.value?.byteOffset, 2);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3, 4]));
});
test("ReadableStreamBYOBReader: readAtLeast: throws with invalid minimum number of bytes", async () => {
  for (const minBytes of [-3, 0, "not a number"]) {
    const reader = chunkedStream([]).getReader({ mode: "byob" });
    await assert.rejects(reader.readAtLeast(minBytes as number, new Uint8Array(8)), {
      name: "TypeError",
      message: `Requested invalid minimum number of bytes to read (${minBytes}).`,
    });
  }
});
test("ReadableStreamBYOBReader: readAtLeast: throws with non-positive-sized TypedArray", async () => {
  const reader = chunkedStream([]).getReader({ mode: "byob" });
  await assert.rejects(reader.readAtLeast(3, new Uint8Array(new ArrayBuffer(8), 0, 0)), {
    name: "TypeError",
    message: 'You must call read() on a "byob" reader with a positive-sized TypedArray object.',
  });
});
test("ReadableStreamBYOBReader: readAtLeast: throws if minimum number of bytes exceeds buffer size", async () => {
  const reader = chunkedStream([]).getReader({ mode: "byob" });
  await assert.rejects(reader.readAtLeast(4, new Uint8Array(new ArrayBuffer(8), 0, 3)), {
    name: "TypeError",
    message: "Minimum bytes to read (4) exceeds size of buffer (3).",
  });
});

test("ReadableStream: tee: returns byte streams when teeing byte stream", async () => {
  const stream = chunkedStream([[1, 2, 3], [4]]);
  assert(_isByteStream(stream));
  const [stream1, stream2] = stream.tee();
  assert(_isByteStream(stream1));
  assert(_isByteStream(stream2));
  // Reading one branch as a byte stream detaches its chunks: the other
  // branch must have its own copies
  const reader1 = stream1.getReader({ mode: "byob" });
  const first = await reader1.readAtLeast(4, new Uint8Array(8));
  assert.deepEqual(first.value, new Uint8Array([1, 2, 3, 4]));
  const reader2 = stream2.getReader({ mode: "byob" });
  const second = await reader2.readAtLeast(4, new Uint8Array(8));
  assert.deepEqual(second.value, new Uint8Array([1, 2, 3, 4]));
  assert.equal((await reader1.read(new Uint8Array(1))).done, true);
  assert.equal((await reader2.read(new Uint8Array(1))).done, true);
});
test("ReadableStream: tee: returns regular stream when teeing regular stream", async () => {
  const stream = regularStream(["value"]);
  assert(!_isByteStream(stream));
  const [stream1, stream2] = stream.tee();
  assert(!_isByteStream(stream1));
  assert(!_isByteStream(stream2));
  assert.equal(await text(stream1 as webStreams.ReadableStream), "value");
  assert.equal(await text(stream2 as webStreams.ReadableStream), "value");
});
test("ReadableStream: tee: copies known length and body stream markers", () => {
  const { readable } = new FixedLengthStream(3);
  Object.defineProperty(readable, kBodyStreamBrand, { value: true });
  const [stream1, stream2] = readable.tee();
  for (const branch of [stream1, stream2]) {
    const record = branch as unknown as Record<symbol, unknown>;
    assert.equal(record[kContentLength], 3);
    assert.equal(record[kBodyStreamBrand], true);
  }
  const [plain] = regularStream([]).tee();
  assert(!(kContentLength in plain));
  assert(!(kBodyStreamBrand in plain));
});
test("ReadableStream: tee: throws on illegal invocation", () => {
  const stream = regularStream([]);
  const tee = stream.tee;
  assert.throws(() => tee.call(undefined as unknown as ReadableStream), {
    name: "TypeError",
    message: "Illegal invocation",
  });
  assert.throws(() => tee.call({} as ReadableStream), {
    name: "TypeError",
    message: "Illegal invocation",
  });
});

async function writeAll(writable: WritableStream, chunks: unknown[]): Promise<void> {
  const writer = writable.getWriter();
  for (const chunk of chunks) void writer.write(chunk).catch(() => {});
  void writer.close().catch(() => {});
}

async function identityCheck(stream: TransformStream): Promise<void> {
  void writeAll(stream.writable, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  const reader = stream.readable.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([1, 2]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([3]));
  assert.equal((await reader.read()).done, true);
}
async function identityByobCheck(stream: TransformStream): Promise<void> {
  void writeAll(stream.writable, [new Uint8Array([1]), new Uint8Array([2, 3])]);
  const reads = byobReadAtLeast(stream.readable, 3, 8, Uint8Array);
  let result = await nextRead(reads);
  assert.equal(result.done, false);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3]));
  result = await nextRead(reads);
  assert.equal(result.done, true);
  assert.deepEqual(result.value, new Uint8Array([]));
}
async function stringChunkCheck(stream: TransformStream): Promise<void> {
  const writer = stream.writable.getWriter();
  void writer.write("how much chunk would a chunk-chuck chuck?");
  const reader = stream.readable.getReader();
  await assert.rejects(reader.read(), { name: "TypeError", message: STRING_CHUNK_MESSAGE });
  // Once errored, further writes fail with the same error
  await assert.rejects(writer.write(new Uint8Array([1])), {
    name: "TypeError",
    message: STRING_CHUNK_MESSAGE,
  });
}
async function nonArrayChunkCheck(stream: TransformStream): Promise<void> {
  const writer = stream.writable.getWriter();
  void writer.write(42).catch(() => {});
  const reader = stream.readable.getReader();
  await assert.rejects(reader.read(), { name: "TypeError", message: NON_ARRAY_CHUNK_MESSAGE });
}

test("IdentityTransformStream: behaves as identity transform", () =>
  identityCheck(new IdentityTransformStream()));
test("IdentityTransformStream: permits BYOB reads", () =>
  identityByobCheck(new IdentityTransformStream()));
test("IdentityTransformStream: throws on string chunks", () =>
  stringChunkCheck(new IdentityTransformStream()));
test("IdentityTransformStream: throws on non-ArrayBuffer/ArrayBufferView chunks", () =>
  nonArrayChunkCheck(new IdentityTransformStream()));
test("IdentityTransformStream: doesn't throw on empty chunk write", async () => {
  const { readable, writable } = new IdentityTransformStream();
  void writeAll(writable, [new Uint8Array(), new Uint8Array([1]), new Uint8Array()]);
  const array = new Uint8Array(await arrayBuffer(readable as webStreams.ReadableStream));
  assert.deepEqual(array, new Uint8Array([1]));
});
test("IdentityTransformStream: accepts ArrayBuffers and other views", async () => {
  const { readable, writable } = new IdentityTransformStream();
  const buffer = new Uint8Array([1, 2]).buffer;
  const view = new DataView(new Uint8Array([0, 3, 4, 0]).buffer, 1, 2);
  void writeAll(writable, [buffer, view, new Uint16Array([0x0605])]);
  const array = new Uint8Array(await arrayBuffer(readable as webStreams.ReadableStream));
  assert.deepEqual(array, new Uint8Array([1, 2, 3, 4, 5, 6]));
});
test("IdentityTransformStream: readable side is a byte stream", () => {
  const stream = new IdentityTransformStream();
  assert(_isByteStream(stream.readable));
  assert.equal(stream.readable, stream.readable);
  assert(stream instanceof TransformStream);
});
test("IdentityTransformStream: accepts pooled Buffer chunks", async () => {
  const { readable, writable } = new IdentityTransformStream();
  void writeAll(writable, [Buffer.from("ab"), Buffer.from("cd")]);
  assert.equal(await text(readable as webStreams.ReadableStream), "abcd");
});
test("IdentityTransformStream: cancelling readable side cancels writable side", async () => {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  await readable.cancel(new Error("cancelled"));
  await assert.rejects(writer.closed, { message: "cancelled" });
});

test("FixedLengthStream: requires non-negative integer expected length", () => {
  const expectations = {
    name: "TypeError",
    message: "FixedLengthStream requires a non-negative integer expected length.",
  };
  // @ts-expect-error intentionally testing incorrect types
  assert.throws(() => new FixedLengthStream(), expectations);
  assert.throws(() => new FixedLengthStream(-42), expectations);
  assert.throws(() => new FixedLengthStream("3" as unknown as number), expectations);
  new FixedLengthStream(0);
});
test("FixedLengthStream: throws if too many bytes written", async () => {
  const { readable, writable } = new FixedLengthStream(3);
  const writer = writable.getWriter();
  void writer.write(new Uint8Array([1, 2]));
  void writer.write(new Uint8Array([3, 4]));
  const reader = readable.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([1, 2]));
  const expectations = {
    name: "TypeError",
    message: "Attempt to write too many bytes through a FixedLengthStream.",
  };
  await assert.rejects(reader.read(), expectations);
  await assert.rejects(writer.write(new Uint8Array([5])), expectations);
});
test("FixedLengthStream: throws if too few bytes written", async () => {
  const { readable, writable } = new FixedLengthStream(3);
  const writer = writable.getWriter();
  void writer.write(new Uint8Array([1, 2]));
  const closePromise = writer.close();
  const reader = readable.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([1, 2]));
  const expectations = {
    name: "TypeError",
    message: "FixedLengthStream did not see all expected bytes before close().",
  };
  await assert.rejects(closePromise, expectations);
  await assert.rejects(reader.read(), expectations);
});
test("FixedLengthStream: behaves as identity transform if just right number of bytes written", () =>
  identityCheck(new FixedLengthStream(3)));
test("FixedLengthStream: permits BYOB reads", () => identityByobCheck(new FixedLengthStream(3)));
test("FixedLengthStream: throws on string chunks", () => stringChunkCheck(new FixedLengthStream(5)));
test("FixedLengthStream: throws on non-ArrayBuffer/ArrayBufferView chunks", () =>
  nonArrayChunkCheck(new FixedLengthStream(5)));
test("FixedLengthStream: marks readable side with expected length", async () => {
  assert.equal(kContentLength, Symbol.for("miniflare.fixedLength"));
  assert.equal(kContentLength, kFixedLength);
  const stream = new FixedLengthStream(3);
  const record = stream.readable as unknown as Record<symbol, unknown>;
  assert.equal(record[kContentLength], 3);
  assert(_isFixedLengthStream(stream.readable));
  assert.equal(new FixedLengthStream(0).readable[kContentLength as keyof ReadableStream], 0);
  assert(!_isFixedLengthStream(new IdentityTransformStream().readable));
  assert(stream instanceof IdentityTransformStream);
});

test("convertToByteStream: converts regular stream, skipping empty chunks", async () => {
  const source = regularStream([new Uint8Array([1]), new Uint8Array(), new Uint8Array([2, 3])]);
  const stream = convertToByteStream(source);
  assert(_isByteStream(stream));
  const reads = byobReadAtLeast(stream, 3, 8, Uint8Array);
  let result = await nextRead(reads);
  assert.deepEqual(result.value, new Uint8Array([1, 2, 3]));
  result = await nextRead(reads);
  assert.equal(result.done, true);
});
test("convertToByteStream: copies chunks if cloning", async () => {
  const chunk = new Uint8Array([1, 2]);
  const stream = convertToByteStream(regularStream([chunk]), true);
  assert.deepEqual(new Uint8Array(await arrayBuffer(stream as webStreams.ReadableStream)), chunk);
  assert.equal(chunk.byteLength, 2); // not detached
});
test("convertToByteStream: propagates errors and cancellation", async () => {
  const errored = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("source error"));
    },
  });
  await assert.rejects(convertToByteStream(errored).getReader().read(), {
    message: "source error",
  });
  let reason: unknown;
  const source = new ReadableStream<Uint8Array>({ cancel: (r) => void (reason = r) });
  await convertToByteStream(source).cancel("bye");
  assert.equal(reason, "bye");
});
test("convertToRegularStream: converts byte stream, skipping empty chunks", async () => {
  const stream = convertToRegularStream(chunkedStream([[1, 2], [3]]));
  assert(!_isByteStream(stream));
  const reader = stream.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([1, 2]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([3]));
  assert.equal((await reader.read()).done, true);
});
test("_isDisturbedStream: determines if a stream has been read", async () => {
  const stream = regularStream([new Uint8Array([1])]);
  assert(!_isDisturbedStream(stream));
  await stream.getReader().read();
  assert(_isDisturbedStream(stream));
});

async function compressionCheck(
  Compressor: typeof CompressionStream,
  Decompressor: typeof DecompressionStream,
  format: "gzip" | "deflate"
): Promise<void> {
  const data = "".padStart(1024, "x");
  const compressor = new Compressor(format);
  void writeAll(compressor.writable, [encoder.encode(data)]);
  const compressed = await arrayBuffer(compressor.readable as webStreams.ReadableStream);
  assert(compressed.byteLength < data.length);

  const decompressor = new Decompressor(format);
  void writeAll(decompressor.writable, [new Uint8Array(compressed)]);
  const decompressed = await arrayBuffer(decompressor.readable as webStreams.ReadableStream);
  assert.equal(decoder.decode(decompressed), data);
}
for (const format of ["gzip", "deflate"] as const) {
  test(`(De)CompressionStream: (de)compresses ${format} data`, () =>
    compressionCheck(CompressionStream, DecompressionStream, format));
  test(`(De)CompressionStreamImpl: (de)compresses ${format} data`, () =>
    compressionCheck(CompressionStreamImpl, DecompressionStreamImpl, format));
}
test("(De)CompressionStream: interoperates with Node's implementation", async () => {
  const compressor = new CompressionStream("gzip");
  void writeAll(compressor.writable, [encoder.encode("hello")]);
  const decompressor = new webStreams.DecompressionStream("gzip");
  const decompressed = await text(
    (compressor.readable as webStreams.ReadableStream).pipeThrough(decompressor)
  );
  assert.equal(decompressed, "hello");
});
test("(De)CompressionStream: errors on invalid compressed data", async () => {
  const decompressor = new DecompressionStream("gzip");
  void writeAll(decompressor.writable, [new Uint8Array([1, 2, 3, 4])]);
  await assert.rejects(arrayBuffer(decompressor.readable as webStreams.ReadableStream));
});
test("(De)CompressionStream: throws on invalid format", () => {
  const expectations = {
    name: "TypeError",
    message: "The compression format must be either 'deflate' or 'gzip'.",
  };
  // @ts-expect-error intentionally testing incorrect types
  assert.throws(() => new CompressionStream("invalid"), expectations);
  // @ts-expect-error intentionally testing incorrect types
  assert.throws(() => new DecompressionStream("invalid"), expectations);
});
test("(De)CompressionStreamImpl: uses Node's implementation if available", () => {
  assert.equal(CompressionStreamImpl, webStreams.CompressionStream);
  assert.equal(DecompressionStreamImpl, webStreams.DecompressionStream);
});

test("proxyDisableStreamConstructor: throws when constructing", () => {
  const classes = [ReadableStream, WritableStream, TransformStream] as unknown as (new () => object)[];
  for (const Class of classes) {
    const Proxied = proxyDisableStreamConstructor(Class) as unknown as new () => unknown;
    assert.throws(() => new Proxied(), {
      name: "Error",
      message: `To use the new ${Class.name}() constructor, enable the streams_enable_constructors feature flag.`,
    });
    // Everything else still works
    assert(new Class() instanceof Proxied);
    assert.equal(Proxied.prototype, Class.prototype);
  }
});
test("createTransformStreamStandIn: constructs IdentityTransformStream, warning if transformer given", async () => {
  const warnings: string[] = [];
  const StandIn = createTransformStreamStandIn({ warn: (message) => warnings.push(message) });
  const stream = new StandIn();
  assert(stream instanceof IdentityTransformStream);
  assert.deepEqual(warnings, []);
  // The transformer is ignored
  const transformed = new (StandIn as unknown as typeof TransformStream)({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      controller.enqueue(chunk);
    },
  });
  assert(transformed instanceof IdentityTransformStream);
  assert.deepEqual(warnings, [
    "To use the new TransformStream() constructor with a custom transformer, enable the transformstream_enable_standard_constructor feature flag.",
  ]);
  await identityCheck(transformed);
  await setImmediate();
});
