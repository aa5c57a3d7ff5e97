/**
 * Workers `Request` and `Response`, behaving like Miniflare 2.14.4's,
 * with their compatibility flags, the request context and gates.
 *
 * `Request` and `Response` wrap (not subclass) Node's built-in undici classes,
 * reachable as `_kInner`. On top of them they add:
 * - `Request#cf` (deep-cloned), `Response#encodeBody`, `Response#webSocket`
 *   (with the status 101 rules), `Response#waitUntil()`;
 * - optionally, own enumerable getters, so `Object.keys()` lists the body
 *   properties (`workers_api_getters_setters_on_prototype` off: production
 *   before 2022-01-31, and always in Miniflare 2);
 * - bodies that are always readable byte streams, with chunk validation,
 *   optional input gating and copy-on-clone;
 * - `formData()` with Miniflare 2's (busboy's) behaviour, optionally returning
 *   files as strings (`formdata_parser_supports_files` off);
 * - getters for properties Workers don't implement, which throw.
 *
 * `fetch` lives in fetch.ts. Helpers live in http-base.ts (lazy built-ins,
 * headers, streams), http-body.ts (what a body was made of), http-formdata.ts
 * (form parsing) and http-log.ts (`logResponse`).
 */
import { waitForOpenInputGate } from "../shared/sync/gate.js";
import {
  _isByteStream,
  base,
  brandBodyStream,
  bufferSourceToArray,
  buildNotBufferSourceError,
  fixedLengthOf,
  isBufferSource,
  isHeadersImmutable,
  isNativelyImmutable,
  makeHeadersImmutable,
} from "./http-base.js";
import { adoptBodyInit, bodyInitLength } from "./http-body.js";
import { formDataParserFor } from "./http-formdata.js";

export {
  _headersFromIncomingRequest,
  _isBodyStream,
  _isByteStream,
  kBodyStreamBrand,
  kFixedLength,
  splitCookiesString,
} from "./http-base.js";
export { logResponse, type LogResponseOptions } from "./http-log.js";

const utf8Encoder = new TextEncoder();

type BaseRequest = globalThis.Request;
type BaseResponse = globalThis.Response;
type BaseBody = BaseRequest | BaseResponse;

/** The `cf` object of a request (incoming properties or fetch options) */
export type CfProperties = Record<string, any>;
export type IncomingRequestCfProperties = CfProperties;
export type RequestInitCfProperties = CfProperties;

export type BodyInit = globalThis.BodyInit;
export type HeadersInit = globalThis.HeadersInit;

const inspect = Symbol.for("nodejs.util.inspect.custom");

export const _kInner = Symbol("kInner");
const kBodyStream = Symbol("kBodyStream");
const kInputGated = Symbol("kInputGated");
const kFormDataFiles = Symbol("kFormDataFiles");
const kEnumerableGetters = Symbol("kEnumerableGetters");
const kCloned = Symbol("kCloned");
/**
 * url/redirected of a response whose inner one doesn't tell them (rebuilt,
 * or fetched by following redirects ourselves), and the URLs our fetch()
 * went through
 */
const kResponseInfo = Symbol("kResponseInfo");
export const kWaitUntil = Symbol("kWaitUntil");
// A Response made from a well-formed string keeps the string, and its undici
// response has no body: making the body stream costs ~11µs on Node 20, more
// than the rest of the response. text() and json() return the string; the
// stream is only made (in a holder response) when something needs it.
const kTextSource = Symbol("kTextSource");
const kTextUsed = Symbol("kTextUsed");
const kBodyHolder = Symbol("kBodyHolder");
/** A response body's length in bytes, when known from what it was made of */
const kBodyLength = Symbol("kBodyLength");

/** @internal What fetch() knows of a response that its inner one doesn't tell */
export interface _ResponseInfo {
  url: string;
  redirected: boolean;
  urlList?: URL[];
}

// Internal state lives under module-private symbols: invisible to
// Object.keys() and unreachable without the symbol
function defineHidden(object: object, key: symbol, value: unknown): void {
  (object as Record<symbol, unknown>)[key] = value;
}

const enumerableDescriptors = new Map<object, PropertyDescriptorMap>();

function enumerableDescriptorsOf(prototype: object, keys: readonly string[]): PropertyDescriptorMap {
  let descriptors = enumerableDescriptors.get(prototype);
  if (descriptors === undefined) {
    descriptors = {};
    for (const key of [...enumerableBodyKeys, ...keys]) {
      const owner = key in Body.prototype && !Object.hasOwn(prototype, key) ? Body.prototype : prototype;
      const descriptor = Object.getOwnPropertyDescriptor(owner, key)!;
      descriptors[key] = { ...descriptor, enumerable: true };
    }
    enumerableDescriptors.set(prototype, descriptors);
  }
  return descriptors;
}

function unimplemented(klass: "Request" | "Response", property: string): never {
  throw new Error(
    `Failed to get the '${property}' property on '${klass}': the property is not implemented.`
  );
}

function nonCircularClone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value));
}

// Set while fetch() wraps undici's response: its immutable headers are wanted
let keepImmutableHeaders = false;

/**
 * Response headers made immutable by undici itself (fetch responses,
 * `Response.redirect()`) can't be made mutable again, so such responses are
 * rebuilt (Miniflare 2 reset undici's headers guard instead).
 */
function adoptResponse(inner: BaseResponse): [BaseResponse, _ResponseInfo | undefined] {
  if (keepImmutableHeaders || !isNativelyImmutable(inner.headers)) return [inner, undefined];
  try {
    const rebuilt = new (base().Response)(inner.body, {
      status: inner.status,
      statusText: inner.statusText,
      headers: inner.headers,
    });
    const info = { url: inner.url, redirected: inner.redirected };
    return [rebuilt, info];
  } catch {
    // e.g. Response.error()'s status 0: keep as is
    return [inner, undefined];
  }
}

/** What holds a body: the inner object, or the string body's holder */
function bodySource(body: Body): BaseBody {
  let holder = body[kBodyHolder];
  if (holder !== undefined) return holder;
  const text = body[kTextSource];
  if (text !== undefined) {
    holder = new (base().Response)(text);
    body[kTextSource] = undefined;
    body[kBodyLength] = Buffer.byteLength(text);
  } else if (body[kTextUsed]) {
    // Read already: a disturbed empty body, so reading again fails as usual
    holder = new (base().Response)("");
    void holder.body!.cancel();
  } else {
    return body[_kInner];
  }
  body[kBodyHolder] = holder;
  return holder;
}

const enumerableBodyKeys = ["body", "bodyUsed", "headers"] as const;

/** Body mixin shared by `Request` and `Response`, wrapping an undici body */
export class Body<Inner extends BaseBody = BaseBody> {
  declare [_kInner]: Inner;
  declare [kInputGated]: boolean;
  declare [kFormDataFiles]: boolean;
  declare [kCloned]: boolean;
  declare [kBodyStream]: ReadableStream<Uint8Array> | undefined;
  /** The body's string, while it is pending (see kTextSource) */
  declare [kTextSource]: string | undefined;
  /** Whether the string body was read without ever making a stream */
  declare [kTextUsed]: boolean;
  /** An undici response holding the string body's stream, once made */
  declare [kBodyHolder]: BaseBody | undefined;
  declare [kResponseInfo]: _ResponseInfo | undefined;
  declare [kEnumerableGetters]: boolean;
  declare [kBodyLength]: number | undefined;

  constructor(inner: Inner) {
    let info: _ResponseInfo | undefined;
    if (inner instanceof base().Response) {
      [inner, info] = adoptResponse(inner) as [Inner, _ResponseInfo | undefined];
    }
    defineHidden(this, _kInner, inner);
    defineHidden(this, kInputGated, false);
    defineHidden(this, kFormDataFiles, true);
    defineHidden(this, kCloned, false);
    defineHidden(this, kBodyStream, undefined);
    defineHidden(this, kTextSource, undefined);
    defineHidden(this, kTextUsed, false);
    defineHidden(this, kBodyHolder, undefined);
    defineHidden(this, kResponseInfo, info);
    defineHidden(this, kEnumerableGetters, false);
  }

  [inspect](): Inner {
    return this[_kInner];
  }

  get headers(): Headers {
    return this[_kInner].headers;
  }

  get body(): ReadableStream<Uint8Array> | null {
    const body = bodySource(this).body;
    if (body === null) return null;
    let stream = this[kBodyStream];
    if (stream !== undefined) return stream;
    if (!this[kInputGated] && _isByteStream(body)) {
      stream = body;
    } else {
      stream = this.#createByteStream(body);
    }
    brandBodyStream(stream, this.headers.get("content-length"));
    this[kBodyStream] = stream;
    return stream;
  }

  // Wraps undici's body in a byte stream that validates chunks, waits for the
  // input gate if gated, and copies chunks of cloned bodies (enqueuing a chunk
  // in a byte stream detaches its buffer, which the other clone may share)
  #createByteStream(body: ReadableStream<unknown>): ReadableStream<Uint8Array> {
    let reader: ReadableStreamDefaultReader<unknown> | undefined;
    const source: UnderlyingByteSource = {
      type: "bytes",
      pull: async (controller) => {
        reader ??= body.getReader();
        let { done, value } = await reader.read();
        for (let empty = 1; !done && isBufferSource(value) && value.byteLength === 0; empty++) {
          // A source that only makes empty chunks mustn't starve the process
          if (empty % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
          ({ done, value } = await reader.read());
        }
        if (this[kInputGated]) await waitForOpenInputGate();
        if (isBufferSource(value)) {
          if (value.byteLength) {
            let array = bufferSourceToArray(value);
            // Enqueuing in a byte stream detaches the chunk's buffer, so
            // always enqueue a copy: the chunk may be the worker's own (a
            // stream may enqueue the same buffer again and again, which
            // works in production), or shared with a clone or Node's Buffer
            // pool. (Buffer#slice would make another view, not a copy.)
            array = Uint8Array.prototype.slice.call(array);
            controller.enqueue(array as Uint8Array<ArrayBuffer>);
          }
        } else if (value) {
          return controller.error(new TypeError(buildNotBufferSourceError(value)));
        }
        if (done) {
          controller.close();
          controller.byobRequest?.respond(0);
        }
      },
      cancel: (reason) => {
        reader ??= body.getReader();
        return reader.cancel(reason);
      },
    };
    return new ReadableStream(source);
  }

  get bodyUsed(): boolean {
    const holder = this[kBodyHolder];
    if (holder !== undefined) return holder.bodyUsed;
    if (this[kTextSource] !== undefined) return false;
    return this[kTextUsed] || this[_kInner].bodyUsed;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const source = this.#takeTextSource();
    if (source !== undefined) {
      // (TextEncoder's result has a buffer of exactly its length)
      const bytes = utf8Encoder.encode(source).buffer;
      if (this[kInputGated]) await waitForOpenInputGate();
      return bytes;
    }
    const body = await bodySource(this).arrayBuffer();
    if (this[kInputGated]) await waitForOpenInputGate();
    return body;
  }

  async blob(): Promise<Blob> {
    const body = await bodySource(this).blob();
    if (this[kInputGated]) await waitForOpenInputGate();
    return body;
  }

  async formData(): Promise<FormData> {
    const contentType = this.headers.get("content-type");
    if (contentType === null) {
      throw new TypeError("Parsing a Body as FormData requires a Content-Type header.");
    }
    const parse = formDataParserFor(contentType);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await bodySource(this).arrayBuffer());
    } catch (e) {
      throw new TypeError(e instanceof Error ? e.message : String(e));
    }
    const formData = parse(bytes, this[kFormDataFiles], base());
    if (this[kInputGated]) await waitForOpenInputGate();
    return formData;
  }

  /** The pending string body, if any, marking the body used */
  #takeTextSource(): string | undefined {
    const source = this[kTextSource];
    if (source === undefined) return undefined;
    this[kTextSource] = undefined;
    this[kTextUsed] = true;
    return source;
  }

  async json<T = any>(): Promise<T> {
    const source = this.#takeTextSource();
    if (source !== undefined) {
      const value = JSON.parse(source) as T;
      if (this[kInputGated]) await waitForOpenInputGate();
      return value;
    }
    const body = (await bodySource(this).json()) as T;
    if (this[kInputGated]) await waitForOpenInputGate();
    return body;
  }

  async text(): Promise<string> {
    const source = this.#takeTextSource();
    if (source !== undefined) {
      if (this[kInputGated]) await waitForOpenInputGate();
      return source;
    }
    const body = await bodySource(this).text();
    if (this[kInputGated]) await waitForOpenInputGate();
    return body;
  }
}

/** Makes reading the body (and its consumers) wait for the input gate */
export function withInputGating<B extends Body>(body: B): B {
  body[kInputGated] = true;
  return body;
}

/**
 * Copies the getters onto the instance as own enumerable properties, as
 * Workers did before `workers_api_getters_setters_on_prototype` (and as
 * Miniflare 2 always does): `Object.keys(request)` then lists them. Costly
 * (defining accessors is slow in V8), so only done when the flag is off.
 */
export function withEnumerableGetters<B extends Body>(body: B): B {
  if (body[kEnumerableGetters]) return body;
  body[kEnumerableGetters] = true;
  if (body instanceof Request) {
    Object.defineProperties(body, enumerableDescriptorsOf(Request.prototype, enumerableRequestKeys));
  } else if (body instanceof Response) {
    Object.defineProperties(body, enumerableDescriptorsOf(Response.prototype, enumerableResponseKeys));
  }
  return body;
}

/** Makes `formData()` return file parts as strings */
export function withStringFormDataFiles<B extends Body>(body: B): B {
  body[kFormDataFiles] = false;
  return body;
}

/** Makes the headers throw `TypeError("immutable")` when mutated */
export function withImmutableHeaders<B extends Body>(body: B): B {
  makeHeadersImmutable(body.headers);
  return body;
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

export interface RequestInit extends globalThis.RequestInit {
  cf?: CfProperties;
  duplex?: "half";
}

export type RequestInfo = string | URL | Request | BaseRequest;

const enumerableRequestKeys = ["cf", "signal", "redirect", "url", "method"] as const;

// Keys of RequestInit that undici understands (others, e.g. cf, are dropped)
const requestInitKeys = [
  "method",
  "keepalive",
  "headers",
  "body",
  "redirect",
  "integrity",
  "signal",
  "credentials",
  "mode",
  "referrer",
  "referrerPolicy",
  "window",
  "dispatcher",
  "duplex",
] as const;

function cloneRequestInit(init: object): RequestInit {
  const result: Record<string, unknown> = {};
  for (const key of requestInitKeys) {
    if (key in init) result[key] = (init as Record<string, unknown>)[key];
  }
  return result as RequestInit;
}

/**
 * An init that isn't a dictionary throws WebIDL's error naming its context,
 * as Miniflare 2's undici did ("Dictionary: ..."; Node's own says "undefined: ...")
 */
function checkInitDictionary(init: unknown): void {
  if (init === undefined || init === null || typeof init === "object" || typeof init === "function") return;
  throw new TypeError(`Dictionary: Expected ${String(init)} to be one of: Null, Undefined, Object.`);
}

/** Whether `input` is a Request, but neither ours nor our undici's */
function isForeignRequest(input: unknown, BaseRequest: typeof globalThis.Request): input is globalThis.Request {
  return (
    typeof input === "object" &&
    input !== null &&
    !(input instanceof Request) &&
    !(input instanceof BaseRequest) &&
    Object.prototype.toString.call(input) === "[object Request]" &&
    typeof (input as { url?: unknown }).url === "string"
  );
}

/** A foreign Request as a URL and an init (`init`'s own keys win) */
function adoptForeignRequest(
  input: globalThis.Request,
  init: RequestInit | Request | undefined
): [string, RequestInit | Request] {
  const adopted: RequestInit = {
    method: input.method,
    headers: [...input.headers],
    redirect: input.redirect,
    integrity: input.integrity,
    keepalive: input.keepalive,
    signal: input.signal,
  };
  if (input.body !== null) {
    adopted.body = input.body as unknown as BodyInit;
    adopted.duplex = "half";
  }
  const cf = (input as { cf?: CfProperties }).cf;
  if (cf !== undefined) adopted.cf = cf;
  if (init instanceof Request) return [input.url, init];
  return [input.url, { ...adopted, ...init }];
}

let setRequestCf: (request: Request, cf: CfProperties | undefined) => void;
let hasStreamedBody: (request: Request) => boolean;

/**
 * Sets a request's cf object as is, without the deep copy the constructor
 * makes (the caller made its own). @internal
 */
export function _setRequestCf(request: Request, cf: CfProperties | undefined): void {
  setRequestCf(request, cf);
}

/**
 * Whether a request's body was given as a stream: fetch() then keeps no copy
 * of it to send again on a 307/308 redirect. @internal
 */
export function _hasStreamedBody(request: Request): boolean {
  return hasStreamedBody(request);
}

export class Request extends Body<BaseRequest> {
  static {
    setRequestCf = (request, cf) => {
      request.#cf = cf;
    };
    hasStreamedBody = (request) => request.#streamedBody;
  }

  #cf?: CfProperties;
  /**
   * Whether the body was given as a stream: fetch() then doesn't keep a copy
   * to send again when following a 307/308 redirect, as undici doesn't
   */
  #streamedBody = false;

  constructor(input: RequestInfo, init?: RequestInit | Request) {
    const { Request: BaseRequest } = base();
    // A Request of another copy of undici (the `undici` package a user
    // installed, any major) is taken apart into its URL and init
    if (isForeignRequest(input, BaseRequest)) [input, init] = adoptForeignRequest(input, init);
    const contentLength = fixedLengthOf(init?.body);
    const cf =
      typeof input === "object" && input !== null && #cf in input
        ? (init?.cf ?? input.#cf)
        : init?.cf;

    let streamedBody = input instanceof Request && input.#streamedBody;
    let inner: BaseRequest;
    if (input instanceof BaseRequest && !init) {
      inner = input;
    } else {
      if (input instanceof Request) input = input[_kInner];
      let baseInit: RequestInit | undefined;
      if (init) {
        baseInit = cloneRequestInit(init instanceof Request ? init[_kInner] : init);
        // Copy ArrayBuffers so undici doesn't detach the caller's buffer
        if (baseInit.body instanceof ArrayBuffer) {
          baseInit.body = baseInit.body.slice(0);
        }
        baseInit.body = adoptBodyInit(baseInit.body);
        if (init instanceof Request) {
          streamedBody = init.#streamedBody;
        } else if (baseInit.body !== undefined && baseInit.body !== null) {
          streamedBody = baseInit.body instanceof ReadableStream;
        }
        if (baseInit.body instanceof ReadableStream) baseInit.duplex = "half";
      }
      inner = new BaseRequest(input as string | URL | BaseRequest, baseInit);
    }
    super(inner);
    this.#cf = cf ? nonCircularClone(cf) : undefined;
    this.#streamedBody = streamedBody;
    if (contentLength !== undefined) {
      this.headers.set("content-length", contentLength.toString());
    }
  }

  clone(): Request {
    const innerClone = this[_kInner].clone();
    // undici replaced our inner body with one branch of a tee
    this[kBodyStream] = undefined;
    const clone = new Request(innerClone);
    clone[kInputGated] = this[kInputGated];
    clone[kFormDataFiles] = this[kFormDataFiles];
    if (this[kEnumerableGetters]) withEnumerableGetters(clone);
    if (isHeadersImmutable(this.headers)) makeHeadersImmutable(clone.headers);
    clone.#cf = this.#cf ? nonCircularClone(this.#cf) : undefined;
    clone.#streamedBody = this.#streamedBody;
    this[kCloned] = true;
    clone[kCloned] = true;
    return clone;
  }

  get method(): string {
    return this[_kInner].method;
  }

  get url(): string {
    return this[_kInner].url;
  }

  get redirect(): RequestRedirect {
    return this[_kInner].redirect;
  }

  get signal(): AbortSignal {
    return this[_kInner].signal;
  }

  get cf(): CfProperties | undefined {
    return this.#cf;
  }

  get context(): never {
    return unimplemented("Request", "context");
  }

  get mode(): never {
    return unimplemented("Request", "mode");
  }

  get credentials(): never {
    return unimplemented("Request", "credentials");
  }

  get integrity(): never {
    return unimplemented("Request", "integrity");
  }

  get cache(): never {
    return unimplemented("Request", "cache");
  }
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

export interface ResponseInit extends globalThis.ResponseInit {
  encodeBody?: "automatic" | "manual";
  /** The worker's end of a `WebSocketPair`; requires status 101 */
  webSocket?: any;
}

const nullBodyStatus = [101, 204, 205, 304];

const enumerableResponseKeys = [
  "webSocket",
  "url",
  "redirected",
  "ok",
  "statusText",
  "status",
] as const;

export class Response extends Body<BaseResponse> {
  static redirect(url: string | URL, status = 302): Response {
    const res = base().Response.redirect(url, status);
    return new Response(res.body, res);
  }

  static json(data: any, init?: ResponseInit | Response): Response {
    // Serialised here, so the body is a string of known length
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch {
      // Node's own throws the same error, worded as it words it
    }
    if (text === undefined) {
      const res = base().Response.json(data, init as globalThis.ResponseInit);
      return new Response(res.body, res);
    }
    const headers = new (base().Headers)(init?.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(text, { status: init?.status, statusText: init?.statusText, headers });
  }

  #encodeBody: "automatic" | "manual" = "automatic";
  #status?: number;
  #webSocket?: any;
  declare [kWaitUntil]: Promise<unknown[]> | undefined;

  constructor(body?: BodyInit | null, init?: ResponseInit | Response | BaseResponse) {
    const { Response: BaseResponse } = base();
    checkInitDictionary(init);
    const contentLength = fixedLengthOf(body);
    let encodeBody: string | undefined;
    let status: number | undefined;
    let webSocket: any;
    let textSource: string | undefined;
    let bodyLength: number | undefined;

    let inner: BaseResponse;
    if (init instanceof BaseResponse && body === init.body) {
      inner = init;
    } else {
      if (body instanceof ArrayBuffer) body = body.slice(0);
      body = adoptBodyInit(body);
      let baseInit: globalThis.ResponseInit | BaseResponse | undefined;
      if (init instanceof Response) {
        encodeBody = init.#encodeBody;
        status = init.#status;
        webSocket = init.#webSocket;
        baseInit = init[_kInner];
      } else if (init && !(init instanceof BaseResponse)) {
        encodeBody = init.encodeBody;
        if (init.webSocket) {
          if (init.status !== 101) {
            throw new RangeError("Responses with a WebSocket must have status code 101.");
          }
          status = init.status;
          webSocket = init.webSocket;
          // undici rejects 101, so the inner response pretends to be a 200
          init = { ...init, status: 200 };
        }
        if (init.status !== undefined && nullBodyStatus.includes(init.status) && body === "") {
          body = null;
        }
        baseInit = init;
      } else {
        baseInit = init;
      }
      // (A lone surrogate would read back as U+FFFD, so only well-formed;
      // undici rejects bodies with null-body statuses, so leave those to it)
      if (
        typeof body === "string" &&
        body.isWellFormed() &&
        !nullBodyStatus.includes(baseInit?.status ?? 200)
      ) {
        inner = new BaseResponse(null, baseInit);
        if (!inner.headers.has("content-type")) {
          inner.headers.set("content-type", "text/plain;charset=UTF-8");
        }
        textSource = body;
      } else {
        inner = new BaseResponse(body, baseInit);
        bodyLength = bodyInitLength(body);
      }
    }
    super(inner);
    this[kTextSource] = textSource;
    defineHidden(this, kBodyLength, bodyLength);

    encodeBody ??= "automatic";
    if (encodeBody !== "automatic" && encodeBody !== "manual") {
      throw new TypeError(`encodeBody: unexpected value: ${encodeBody}`);
    }
    this.#encodeBody = encodeBody;
    this.#status = status;
    this.#webSocket = webSocket;
    if (contentLength !== undefined) {
      this.headers.set("content-length", contentLength.toString());
    }
    defineHidden(this, kWaitUntil, undefined);
  }

  clone(): Response {
    if (this.#webSocket) {
      throw new TypeError("Cannot clone a response to a WebSocket handshake.");
    }
    let clone: Response;
    const text = this[kTextSource];
    if (text !== undefined) {
      clone = new Response(text, this[_kInner].clone());
    } else {
      const holder = this[kBodyHolder] ?? (this[kTextUsed] ? bodySource(this) : undefined);
      const innerClone = this[_kInner].clone();
      // undici replaced our body with one branch of a tee
      const bodyClone = holder === undefined ? innerClone : holder.clone();
      this[kBodyStream] = undefined;
      clone = new Response(bodyClone.body, innerClone);
    }
    clone[kInputGated] = this[kInputGated];
    clone[kFormDataFiles] = this[kFormDataFiles];
    if (this[kEnumerableGetters]) withEnumerableGetters(clone);
    clone.#encodeBody = this.#encodeBody;
    clone.#status = this.#status;
    clone[kWaitUntil] = this[kWaitUntil];
    clone[kResponseInfo] = this[kResponseInfo] ?? clone[kResponseInfo];
    clone[kBodyLength] ??= this[kBodyLength];
    this[kCloned] = true;
    clone[kCloned] = true;
    return clone;
  }

  get encodeBody(): "automatic" | "manual" {
    return this.#encodeBody;
  }

  get webSocket(): any {
    return this.#webSocket;
  }

  /** Resolves to the results of the waitUntil promises of the handler */
  waitUntil(): Promise<unknown[]> {
    return this[kWaitUntil] ?? Promise.resolve([]);
  }

  get status(): number {
    return this.#status ?? this[_kInner].status;
  }

  get statusText(): string {
    return this[_kInner].statusText;
  }

  get ok(): boolean {
    return this[_kInner].ok;
  }

  get redirected(): boolean {
    return this[kResponseInfo]?.redirected ?? this[_kInner].redirected;
  }

  get url(): string {
    return this[kResponseInfo]?.url ?? this[_kInner].url;
  }

  get type(): never {
    return unimplemented("Response", "type");
  }

  get useFinalUrl(): never {
    return unimplemented("Response", "useFinalUrl");
  }
}

/** Attaches a handler's waitUntil promise, wrapping a built-in Response */
export function withWaitUntil(
  res: Response | BaseResponse,
  waitUntil: Promise<unknown[]>
): Response {
  const resWaitUntil = res instanceof Response ? res : new Response(res.body, res);
  resWaitUntil[kWaitUntil] = waitUntil;
  return resWaitUntil;
}

/**
 * Wraps a response fetch() received: its headers stay immutable, and `info`
 * (when fetch() followed redirects itself) gives its url, redirected and URL
 * list. @internal
 */
export function _responseFromFetch(baseRes: BaseResponse, info: _ResponseInfo | undefined): Response {
  let res: Response;
  keepImmutableHeaders = true;
  try {
    res = new Response(nullBodyStatus.includes(baseRes.status) ? null : baseRes.body, baseRes);
  } finally {
    keepImmutableHeaders = false;
  }
  res[kResponseInfo] = info;
  makeHeadersImmutable(res.headers);
  return res;
}

/**
 * The URLs a response went through, redirects included: all of them for
 * responses of Miniflare's fetch(), just the URL for any other response that
 * wasn't redirected
 */
export function _getURLList(res: Response | BaseResponse): URL[] | undefined {
  if (res instanceof Response) {
    const urlList = res[kResponseInfo]?.urlList;
    if (urlList !== undefined) return urlList;
  }
  if (res.redirected || res.url === "") return undefined;
  return [new URL(res.url)];
}

/**
 * A response's body, if it is still the string it was made with: taken,
 * marking the body used. Lets the server write it without a stream.
 * @internal
 */
export function _takeBodyText(res: Response): string | undefined {
  const text = res[kTextSource];
  if (text === undefined) return undefined;
  res[kTextSource] = undefined;
  res[kTextUsed] = true;
  return text;
}

/**
 * The actual length of a response's body, if known without reading it: the
 * body was given as a string, buffer, Blob or URLSearchParams
 */
export function _getBodyLength(res: Response | BaseResponse): number | undefined {
  if (!(res instanceof Response)) return undefined;
  const text = res[kTextSource];
  if (text !== undefined) return Buffer.byteLength(text);
  return res[kBodyLength];
}
