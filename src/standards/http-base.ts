/**
 * Low-level helpers for the Workers `Request`/`Response` wrappers: lazy
 * access to Node's built-in undici classes, the
 * process-wide `Headers.prototype.getAll()` patch, header immutability,
 * body stream brands and byte-stream detection.
 *
 * Node defines `Request`, `Response`, `Headers`, `FormData` and `File` as
 * lazy globals: the first access loads Node's bundled undici (~60ms). Nothing
 * here touches them at import time, so importing Miniflare stays cheap until
 * a request/response is actually needed.
 */
import type { IncomingMessage } from "node:http";

declare global {
  interface Headers {
    /** Miniflare 2 extension: only valid for `Set-Cookie` */
    getAll(key: string): string[];
  }
}

// ---------------------------------------------------------------------------
// Lazy built-in classes
// ---------------------------------------------------------------------------

export interface BaseClasses {
  Request: typeof globalThis.Request;
  Response: typeof globalThis.Response;
  Headers: typeof globalThis.Headers;
  FormData: typeof globalThis.FormData;
  File: typeof globalThis.File;
  fetch: typeof globalThis.fetch;
}

type Getter<T> = () => T;

// Captures the global's current definition without triggering Node's lazy
// loader. If someone later replaces the global (e.g. with our own wrapper
// class), we still resolve Node's original class.
function captureGlobal<T>(name: string): Getter<T> {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, name);
  if (descriptor === undefined) {
    return () => {
      throw new TypeError(`${name} is not available in this version of Node.js`);
    };
  }
  if (descriptor.get === undefined) {
    const value = descriptor.value as T;
    return () => value;
  }
  const get = descriptor.get;
  let value: T | undefined;
  return () => {
    if (value !== undefined) return value;
    // Node's lazy getter redefines the global as a data property: if the
    // global was replaced in the meantime, put the replacement back
    const current = Object.getOwnPropertyDescriptor(globalThis, name);
    value = get.call(globalThis) as T;
    if (current !== undefined && current.get !== get) {
      Object.defineProperty(globalThis, name, current);
    }
    return value;
  };
}

const lazyRequest = captureGlobal<typeof globalThis.Request>("Request");
const lazyResponse = captureGlobal<typeof globalThis.Response>("Response");
const lazyHeaders = captureGlobal<typeof globalThis.Headers>("Headers");
const lazyFormData = captureGlobal<typeof globalThis.FormData>("FormData");
const lazyFile = captureGlobal<typeof globalThis.File>("File");
const lazyFetch = captureGlobal<typeof globalThis.fetch>("fetch");

let baseClasses: BaseClasses | undefined;

/** Node's built-in (undici) classes, loaded on first use */
export function base(): BaseClasses {
  if (baseClasses !== undefined) return baseClasses;
  const Headers = lazyHeaders();
  installGetAll(Headers);
  baseClasses = {
    Request: lazyRequest(),
    Response: lazyResponse(),
    Headers,
    FormData: lazyFormData(),
    File: lazyFile(),
    fetch: lazyFetch(),
  };
  return baseClasses;
}

// ---------------------------------------------------------------------------
// Headers.prototype.getAll (process-wide, as Miniflare 2 does)
// ---------------------------------------------------------------------------

function isCookieWhitespace(char: string): boolean {
  return char === " " || char === "\t" || char === "\n" || char === "\r";
}

/**
 * Splits a combined `Set-Cookie` header value (cookies joined with ", ") back
 * into individual cookies. A comma only separates cookies if what follows it
 * looks like `name=`, so commas inside `Expires` dates are kept.
 */
export function splitCookiesString(value: string): string[] {
  const cookies: string[] = [];
  const length = value.length;
  let start = 0;
  let i = 0;
  while (i < length) {
    if (value[i] === ",") {
      let next = i + 1;
      while (next < length && isCookieWhitespace(value[next])) next++;
      let end = next;
      while (end < length && value[end] !== "=" && value[end] !== ";" && value[end] !== ",") {
        end++;
      }
      if (end < length && value[end] === "=" && end > next) {
        const cookie = value.slice(start, i).trim();
        if (cookie !== "") cookies.push(cookie);
        start = next;
        i = next;
        continue;
      }
    }
    i++;
  }
  const last = value.slice(start).trim();
  if (last !== "") cookies.push(last);
  return cookies;
}

function getAll(this: Headers, key: string): string[] {
  if (String(key).toLowerCase() !== "set-cookie") {
    throw new TypeError('getAll() can only be used with the header name "Set-Cookie".');
  }
  const value = this.get("set-cookie");
  return value ? splitCookiesString(value) : [];
}

let getAllInstalled = false;
function installGetAll(HeadersClass: typeof globalThis.Headers): void {
  if (getAllInstalled) return;
  getAllInstalled = true;
  // Plain assignment, like Miniflare 2 (the method is enumerable)
  (HeadersClass.prototype as Headers).getAll = getAll;
}

// Install the patch as soon as anyone touches the global `Headers`, without
// loading undici ourselves at import time
{
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, "Headers");
  if (descriptor?.get !== undefined && descriptor.configurable) {
    const originalSet = descriptor.set;
    Object.defineProperty(globalThis, "Headers", {
      configurable: true,
      enumerable: descriptor.enumerable,
      get() {
        const HeadersClass = lazyHeaders();
        installGetAll(HeadersClass);
        // Leave a plain data property behind, like Node's own lazy getter
        Object.defineProperty(globalThis, "Headers", {
          configurable: true,
          enumerable: descriptor.enumerable,
          writable: true,
          value: HeadersClass,
        });
        return HeadersClass;
      },
      set(value: unknown) {
        if (originalSet !== undefined) originalSet.call(globalThis, value);
        else {
          Object.defineProperty(globalThis, "Headers", {
            configurable: true,
            enumerable: descriptor.enumerable,
            writable: true,
            value,
          });
        }
      },
    });
  } else if (typeof globalThis.Headers === "function") {
    installGetAll(globalThis.Headers);
  }
}

// ---------------------------------------------------------------------------
// Header immutability
// ---------------------------------------------------------------------------

// Node's undici keeps the headers guard in a private field, so immutability
// is emulated with own-property overrides of the mutating methods. Headers
// made immutable natively by undici (fetch responses, Response.redirect())
// are detected by probing `delete`, which throws before doing anything.
const PROBE_HEADER = "x-miniflare-immutability-probe";
const overriddenHeaders = new WeakSet<Headers>();

function throwImmutable(): never {
  throw new TypeError("immutable");
}

export function isNativelyImmutable(headers: Headers): boolean {
  try {
    base().Headers.prototype.delete.call(headers, PROBE_HEADER);
    return false;
  } catch {
    return true;
  }
}

export function isHeadersImmutable(headers: Headers): boolean {
  return overriddenHeaders.has(headers) || isNativelyImmutable(headers);
}

// Immutable headers get a prototype whose append/delete/set throw, derived
// once from their own prototype: swapping a prototype V8 has seen before is
// far cheaper than defining three own properties on every response.
const immutablePrototypes = new WeakMap<object, object>();
const mutablePrototypes = new WeakMap<object, object>();

function immutablePrototypeOf(prototype: object): object {
  let immutable = immutablePrototypes.get(prototype);
  if (immutable === undefined) {
    const method = { configurable: true, enumerable: false, writable: true, value: throwImmutable };
    immutable = Object.create(prototype, { append: method, delete: method, set: method }) as object;
    immutablePrototypes.set(prototype, immutable);
    mutablePrototypes.set(immutable, prototype);
  }
  return immutable;
}

export function makeHeadersImmutable(headers: Headers): void {
  if (isHeadersImmutable(headers)) return;
  Object.setPrototypeOf(headers, immutablePrototypeOf(Object.getPrototypeOf(headers)));
  overriddenHeaders.add(headers);
}

/** Undoes `makeHeadersImmutable()` (natively immutable headers stay so) */
export function makeHeadersMutable(headers: Headers): void {
  if (!overriddenHeaders.has(headers)) return;
  const prototype = mutablePrototypes.get(Object.getPrototypeOf(headers));
  if (prototype !== undefined) Object.setPrototypeOf(headers, prototype);
  overriddenHeaders.delete(headers);
}

// ---------------------------------------------------------------------------
// Incoming Node requests
// ---------------------------------------------------------------------------

const incomingSkippedHeaders = new Set([
  "transfer-encoding",
  "connection",
  "keep-alive",
  "expect",
]);

/**
 * Converts a Node `IncomingMessage`'s headers to `Headers`, dropping
 * hop-by-hop headers that describe the connection to Miniflare
 */
export function _headersFromIncomingRequest(req: IncomingMessage): Headers {
  const headers = new (base().Headers)();
  for (const [name, values] of Object.entries(req.headers)) {
    if (incomingSkippedHeaders.has(name)) continue;
    if (Array.isArray(values)) {
      for (const value of values) headers.append(name, value);
    } else if (values !== undefined) {
      headers.append(name, values);
    }
  }
  return headers;
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/**
 * Set (to `true`) on every stream returned by a `Request`/`Response`'s `body`.
 * R2 accepts such streams as having a known length. Well-known so
 * `streams.ts` (e.g. a patched `tee()`) can copy it without importing us.
 */
export const kBodyStreamBrand = Symbol.for("miniflare.bodyStream");
/**
 * A stream's known length in bytes: set by `FixedLengthStream` (streams.ts)
 * on its readable side, and by `body` from a `Content-Length` header.
 * Request/Response bodies with it get a `Content-Length` header.
 */
export const kFixedLength = Symbol.for("miniflare.fixedLength");

/** Returns the known length of a body, if it is a fixed-length stream */
export function fixedLengthOf(body: unknown): number | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const length = (body as Record<symbol, unknown>)[kFixedLength];
  return typeof length === "number" ? length : undefined;
}

export function _isBodyStream(stream: ReadableStream): boolean {
  return (stream as unknown as Record<symbol, unknown>)[kBodyStreamBrand] === true;
}

/** Marks a stream as a body stream, remembering a Content-Length if any */
export function brandBodyStream(stream: ReadableStream, contentLength: string | null): void {
  if (!(kBodyStreamBrand in stream)) {
    Object.defineProperty(stream, kBodyStreamBrand, { value: true });
  }
  if (contentLength !== null && !(kFixedLength in stream)) {
    const length = parseInt(contentLength);
    if (!Number.isNaN(length)) {
      Object.defineProperty(stream, kFixedLength, { value: length });
    }
  }
}

function findSymbol(object: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(object).find(
    (symbol) => symbol.description === description
  );
}

let streamStateSymbol: symbol | undefined;

/** Whether `stream` is a readable byte stream (supports BYOB readers) */
export function _isByteStream(stream: ReadableStream): boolean {
  streamStateSymbol ??= findSymbol(stream, "kState");
  if (streamStateSymbol === undefined) return false;
  const state = (stream as unknown as Record<symbol, { controller?: unknown } | undefined>)[
    streamStateSymbol
  ];
  return state?.controller instanceof ReadableByteStreamController;
}

export function isBufferSource(chunk: unknown): chunk is ArrayBuffer | ArrayBufferView {
  return chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk);
}

export function bufferSourceToArray(chunk: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

export function buildNotBufferSourceError(value: unknown): string {
  const isString = typeof value === "string";
  return (
    "This TransformStream is being used as a byte stream, but received " +
    (isString
      ? "a string on its writable side. If you wish to write a string, " +
        "you'll probably want to explicitly UTF-8-encode it with TextEncoder."
      : "an object of non-ArrayBuffer/ArrayBufferView type on its writable side.")
  );
}

/** Header fetch() sends with the request depth, so an upstream Miniflare can detect loops */
export const _kLoopHeader = "MF-Loop";
