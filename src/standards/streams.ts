/**
 * Workers-specific streams: `IdentityTransformStream`,
 * `FixedLengthStream`, `(De)CompressionStream`, the compatibility-flag
 * wrappers for the stream constructors, and two process-wide patches Miniflare
 * 2 applies to Node's streams:
 *
 * - `ReadableStreamBYOBReader.prototype.readAtLeast(minBytes, view)`, a
 *   Workers extension;
 * - `ReadableStream.prototype.tee()`, so teeing a byte stream gives byte
 *   streams whose chunks aren't shared (reading a chunk through a `Response`
 *   body detaches its buffer), and so known-length/body-stream markers are
 *   kept on both branches.
 */
import * as webStreams from "node:stream/web";
import type zlib from "node:zlib";

// Loaded on first use: only the fallback compression streams need it
const loadZlib = (): typeof zlib => process.getBuiltinModule("node:zlib");
import {
  _isByteStream,
  bufferSourceToArray,
  buildNotBufferSourceError,
  isBufferSource,
  kBodyStreamBrand,
} from "./http-base.js";

/**
 * Known length in bytes of a stream, set on `FixedLengthStream#readable`.
 * `Request`/`Response` set `Content-Length` from it. Registered with
 * `Symbol.for()` so it is the same symbol as `http-base.ts`'s `kFixedLength`.
 */
export const kContentLength = Symbol.for("miniflare.fixedLength");

export type ArrayBufferViewConstructor =
  | typeof Int8Array
  | typeof Uint8Array
  | typeof Uint8ClampedArray
  | typeof Int16Array
  | typeof Uint16Array
  | typeof Int32Array
  | typeof Uint32Array
  | typeof Float32Array
  | typeof Float64Array
  | typeof BigInt64Array
  | typeof BigUint64Array
  | typeof DataView;

declare global {
  interface ReadableStreamBYOBReader {
    /**
     * Workers extension: reads into `view` until at least `minBytes` bytes
     * have been read or the stream ends. `done` is only `true` once a call
     * reads nothing.
     */
    readAtLeast<T extends ArrayBufferView>(
      minBytes: number,
      view: T
    ): Promise<ReadableStreamReadResult<T>>;
  }
}
// Node's own declarations of the same class, so the two stay compatible
declare module "stream/web" {
  interface ReadableStreamBYOBReader {
    readAtLeast<T extends ArrayBufferView>(
      minBytes: number,
      view: T
    ): Promise<ReadableStreamReadResult<T>>;
  }
}

// ---------------------------------------------------------------------------
// Stream introspection and conversion
// ---------------------------------------------------------------------------

function findStreamState(stream: ReadableStream): { disturbed?: boolean } | undefined {
  for (const symbol of Object.getOwnPropertySymbols(stream)) {
    if (symbol.description === "kState") {
      return (stream as unknown as Record<symbol, { disturbed?: boolean }>)[symbol];
    }
  }
  return undefined;
}

/** @internal Whether `stream` has ever been read from or cancelled */
export function _isDisturbedStream(stream: ReadableStream): boolean {
  return !!findStreamState(stream)?.disturbed;
}

/** @internal Whether `stream` is the readable side of a `FixedLengthStream` */
export function _isFixedLengthStream(stream: ReadableStream): boolean {
  return (stream as unknown as Record<symbol, unknown>)[kContentLength] !== undefined;
}

/**
 * Returns a chunk that can be enqueued into a byte stream. Enqueuing
 * transfers (detaches) the chunk's whole buffer: if `copy` is set, or the
 * chunk only covers part of its buffer (e.g. a `Buffer` from Node's shared
 * pool, which Node 20 cannot transfer), a copy is enqueued instead.
 */
function enqueueable(chunk: Uint8Array, copy: boolean): Uint8Array {
  const whole =
    chunk.buffer instanceof ArrayBuffer &&
    chunk.byteOffset === 0 &&
    chunk.byteLength === chunk.buffer.byteLength;
  if (!copy && whole) return chunk;
  return Uint8Array.prototype.slice.call(chunk);
}

/**
 * Wraps a stream of `Uint8Array`s as a readable byte stream (one supporting
 * BYOB readers). Empty chunks are skipped, since a byte stream can't hold
 * them. With `clone`, every chunk is copied before being enqueued.
 */
export function convertToByteStream(
  stream: ReadableStream<Uint8Array>,
  clone = false
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  const byteStream = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      let result = await reader.read();
      while (!result.done && result.value.byteLength === 0) {
        result = await reader.read();
      }
      if (result.done) {
        // A BYOB read may be waiting: after closing, it must be answered
        // with 0 bytes to resolve as done
        queueMicrotask(() => {
          controller.close();
          controller.byobRequest?.respond(0);
        });
      } else {
        controller.enqueue(enqueueable(result.value, clone) as Uint8Array<ArrayBuffer>);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return byteStream as ReadableStream<Uint8Array>;
}

/** Wraps a (byte) stream as a regular stream, skipping empty chunks */
export function convertToRegularStream(
  stream: ReadableStream<Uint8Array>
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result = await reader.read();
      while (!result.done && result.value.byteLength === 0) {
        result = await reader.read();
      }
      if (result.done) queueMicrotask(() => controller.close());
      else controller.enqueue(result.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

// ---------------------------------------------------------------------------
// Process-wide patches
// ---------------------------------------------------------------------------

// Marks patched prototypes, so loading this module twice (e.g. two copies of
// the package) doesn't wrap `tee()` twice
const kPatched = Symbol.for("miniflare.streamsPatched");

type ViewConstructor = new (
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number
) => ArrayBufferView;

async function readAtLeast<T extends ArrayBufferView>(
  this: ReadableStreamBYOBReader,
  minBytes: number,
  view: T
): Promise<ReadableStreamReadResult<T>> {
  const { byteOffset, byteLength } = view;
  if (isNaN(minBytes) || minBytes <= 0) {
    throw new TypeError(
      `Requested invalid minimum number of bytes to read (${minBytes}).`
    );
  }
  if (byteLength <= 0) {
    throw new TypeError(
      'You must call read() on a "byob" reader with a positive-sized TypedArray object.'
    );
  }
  if (minBytes > byteLength) {
    throw new TypeError(
      `Minimum bytes to read (${minBytes}) exceeds size of buffer (${byteLength}).`
    );
  }

  // Reads go into the rest of the same buffer, which is transferred on every
  // read, so keep hold of the latest one
  const prototype = Object.getPrototypeOf(view);
  const Constructor: ViewConstructor = prototype.constructor;
  const bytesPerElement: number = prototype.BYTES_PER_ELEMENT ?? 1;
  let buffer = view.buffer;
  let bytesRead = 0;
  let done = false;
  while (bytesRead < minBytes) {
    const remaining = new Constructor(
      buffer,
      byteOffset + bytesRead,
      (byteLength - bytesRead) / bytesPerElement
    );
    const result = await this.read(remaining);
    if (result.value !== undefined) {
      buffer = result.value.buffer;
      bytesRead += result.value.byteLength;
    }
    if (result.done) {
      done = bytesRead === 0;
      break;
    }
  }
  const value = new Constructor(buffer, byteOffset, bytesRead / bytesPerElement) as T;
  return { value, done } as ReadableStreamReadResult<T>;
}

function copyMarker(from: ReadableStream, to: ReadableStream[], symbol: symbol): void {
  const value = (from as unknown as Record<symbol, unknown>)[symbol];
  if (value === undefined) return;
  for (const stream of to) Object.defineProperty(stream, symbol, { value });
}

function patchStreams(): void {
  const readerPrototype = ReadableStreamBYOBReader.prototype;
  const streamPrototype = ReadableStream.prototype;
  if ((streamPrototype as unknown as Record<symbol, unknown>)[kPatched]) return;
  Object.defineProperty(streamPrototype, kPatched, { value: true });

  Object.defineProperty(readerPrototype, "readAtLeast", {
    value: readAtLeast,
    writable: true,
    configurable: true,
  });

  const originalTee = streamPrototype.tee;
  Object.defineProperty(streamPrototype, "tee", {
    value: function tee(this: ReadableStream): [ReadableStream, ReadableStream] {
      if (!(this instanceof ReadableStream)) {
        throw new TypeError("Illegal invocation");
      }
      let branches = originalTee.call(this) as [ReadableStream, ReadableStream];
      if (_isByteStream(this)) {
        branches = [
          convertToByteStream(branches[0], true),
          convertToByteStream(branches[1], true),
        ];
      }
      copyMarker(this, branches, kBodyStreamBrand);
      copyMarker(this, branches, kContentLength);
      return branches;
    },
    writable: true,
    configurable: true,
  });
}
patchStreams();

// ---------------------------------------------------------------------------
// IdentityTransformStream and FixedLengthStream
// ---------------------------------------------------------------------------

// Subclass hooks, called for each (non-empty or empty) chunk and on close
const kTransformHook = Symbol("kTransformHook");
const kFlushHook = Symbol("kFlushHook");

const transformStreamReadable = Object.getOwnPropertyDescriptor(
  TransformStream.prototype,
  "readable"
)!.get!;

/**
 * A `TransformStream` passing bytes through unchanged. Only `ArrayBuffer`s
 * and `ArrayBufferView`s may be written; the readable side is a byte stream.
 */
export class IdentityTransformStream extends TransformStream<
  ArrayBuffer | ArrayBufferView,
  Uint8Array
> {
  #readable?: ReadableStream<Uint8Array>;

  constructor() {
    // `this` can't be used before `super()` returns, but the callbacks only
    // run once something is written, by when `self` is set
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    let self: IdentityTransformStream;
    super({
      transform(chunk, controller) {
        if (!isBufferSource(chunk)) {
          controller.error(new TypeError(buildNotBufferSourceError(chunk)));
          return;
        }
        const array = bufferSourceToArray(chunk);
        if (self[kTransformHook](array, controller)) controller.enqueue(array);
      },
      flush(controller) {
        self[kFlushHook](controller);
      },
    });
    self = this;
  }

  /** Returns `false` to drop the chunk (after erroring the stream) */
  [kTransformHook](
    _chunk: Uint8Array,
    _controller: TransformStreamDefaultController<Uint8Array>
  ): boolean {
    return true;
  }

  [kFlushHook](_controller: TransformStreamDefaultController<Uint8Array>): void {}

  static {
    // `readable` is declared as a property by TypeScript's DOM types, so it
    // can't be overridden with an accessor in the class body
    Object.defineProperty(this.prototype, "readable", {
      get(this: IdentityTransformStream): ReadableStream<Uint8Array> {
        return (this.#readable ??= convertToByteStream(
          transformStreamReadable.call(this)
        ));
      },
      configurable: true,
    });
  }
}

/**
 * An `IdentityTransformStream` that must see exactly `expectedLength` bytes.
 * Its readable side records the length, so a `Request`/`Response` with it as
 * body gets a `Content-Length` header.
 */
export class FixedLengthStream extends IdentityTransformStream {
  readonly #expectedLength: number;
  #bytesWritten = 0;

  constructor(expectedLength: number) {
    super();
    if (typeof expectedLength !== "number" || expectedLength < 0) {
      throw new TypeError(
        "FixedLengthStream requires a non-negative integer expected length."
      );
    }
    this.#expectedLength = expectedLength;
    Object.defineProperty(this.readable, kContentLength, { value: expectedLength });
  }

  override [kTransformHook](
    chunk: Uint8Array,
    controller: TransformStreamDefaultController<Uint8Array>
  ): boolean {
    this.#bytesWritten += chunk.byteLength;
    if (this.#bytesWritten > this.#expectedLength) {
      controller.error(
        new TypeError("Attempt to write too many bytes through a FixedLengthStream.")
      );
      return false;
    }
    return true;
  }

  override [kFlushHook](controller: TransformStreamDefaultController<Uint8Array>): void {
    if (this.#bytesWritten < this.#expectedLength) {
      controller.error(
        new TypeError("FixedLengthStream did not see all expected bytes before close().")
      );
    }
  }
}

// ---------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------

export type CompressionFormat = "gzip" | "deflate";

function assertCompressionFormat(format: unknown): asserts format is CompressionFormat {
  if (format !== "gzip" && format !== "deflate") {
    throw new TypeError("The compression format must be either 'deflate' or 'gzip'.");
  }
}

/** Drives a zlib stream from a `TransformStream` */
function zlibTransformer(
  zlibStream: zlib.Gzip | zlib.Deflate | zlib.Gunzip | zlib.Inflate
): Transformer<BufferSource, Uint8Array> {
  return {
    start(controller) {
      // Node hands out chunks from a shared pool: copy them
      zlibStream.on("data", (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk)));
      zlibStream.on("error", (error) => controller.error(error));
    },
    transform(chunk) {
      zlibStream.write(isBufferSource(chunk) ? bufferSourceToArray(chunk) : chunk);
    },
    flush() {
      return new Promise((resolve) => {
        zlibStream.once("close", () => {
          zlibStream.removeAllListeners();
          resolve();
        });
        zlibStream.end();
      });
    },
  };
}

/** Miniflare 2's own `CompressionStream`, built on `zlib` */
export class CompressionStream extends TransformStream<BufferSource, Uint8Array> {
  constructor(format: CompressionFormat) {
    assertCompressionFormat(format);
    super(
      zlibTransformer(format === "gzip" ? loadZlib().createGzip() : loadZlib().createDeflate())
    );
  }
}

/** Miniflare 2's own `DecompressionStream`, built on `zlib` */
export class DecompressionStream extends TransformStream<BufferSource, Uint8Array> {
  constructor(format: CompressionFormat) {
    assertCompressionFormat(format);
    super(
      zlibTransformer(format === "gzip" ? loadZlib().createGunzip() : loadZlib().createInflate())
    );
  }
}

const nodeStreams = webStreams as Partial<Record<string, unknown>>;

/**
 * What the worker's `CompressionStream` global should be: Node's own if it
 * has one (as Miniflare 2 does), else ours.
 */
export const CompressionStreamImpl = (nodeStreams.CompressionStream ??
  CompressionStream) as typeof CompressionStream;
/** As `CompressionStreamImpl`, for `DecompressionStream` */
export const DecompressionStreamImpl = (nodeStreams.DecompressionStream ??
  DecompressionStream) as typeof DecompressionStream;

// ---------------------------------------------------------------------------
// Compatibility flag wrappers
// ---------------------------------------------------------------------------

/**
 * For `streams_enable_constructors` being off: the class can still be used
 * (e.g. `instanceof`, statics), but `new` throws.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function proxyDisableStreamConstructor<T extends abstract new (...args: any[]) => any>(
  klass: T
): T {
  return new Proxy(klass, {
    construct() {
      throw new Error(
        `To use the new ${klass.name}() constructor, enable the streams_enable_constructors feature flag.`
      );
    },
  });
}

/**
 * For `transformstream_enable_standard_constructor` being off: the worker's
 * `TransformStream` is really an `IdentityTransformStream`, and passing a
 * transformer (which is ignored) logs a warning.
 */
export function createTransformStreamStandIn(log: {
  warn(message: string): void;
}): typeof IdentityTransformStream {
  const proxy: typeof IdentityTransformStream = new Proxy(IdentityTransformStream, {
    construct(target, args, newTarget) {
      if (args.length > 0) {
        log.warn(
          "To use the new TransformStream() constructor with a custom transformer, enable the transformstream_enable_standard_constructor feature flag."
        );
      }
      // The real class as new.target keeps construction on V8's fast path
      return Reflect.construct(target, args, newTarget === proxy ? target : newTarget);
    },
  });
  return proxy;
}
