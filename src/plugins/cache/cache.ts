// One cache of the Cache API (`caches.default` or `caches.open(name)`): a
// Storage namespace of responses keyed by URL (or `cf.cacheKey`), stored with
// an expiration worked out as a shared HTTP cache would (http-cache-semantics).
import { createRequire } from "node:module";
import type CachePolicy from "http-cache-semantics";
import { assertInRequest, getRequestContext } from "../../shared/context.js";
import { type Clock, defaultClock, millisToSeconds, SITES_NO_CACHE_PREFIX } from "../../shared/data.js";
import type { Storage } from "../../shared/storage.js";
import { waitForOpenInputGate, waitForOpenOutputGate } from "../../shared/sync/gate.js";
import {
  Request,
  type RequestInfo,
  Response,
  withImmutableHeaders,
  withStringFormDataFiles,
} from "../../standards/http.js";
import { getRangeResponse } from "../../standards/range.js";
import { CacheError } from "./errors.js";

/** What is stored beside a cached body */
export interface CachedMeta {
  status: number;
  headers: [name: string, value: string][];
}

export interface CacheMatchOptions {
  /** Match (or delete) whatever the request's method: Workers only cache GETs */
  ignoreMethod?: boolean;
}

/** The Cache interface, shared by real caches and the no-op one (`cache: false`) */
export interface CacheInterface {
  put(req: RequestInfo, res: Response | globalThis.Response): Promise<undefined>;
  match(req: RequestInfo, options?: CacheMatchOptions): Promise<Response | undefined>;
  delete(req: RequestInfo, options?: CacheMatchOptions): Promise<boolean>;
}

export interface InternalCacheOptions {
  /** `formData()` of matched responses returns files (`formdata_parser_supports_files`) */
  formDataFiles?: boolean;
  clock?: Clock;
  /** Operations throw outside a request handler (`globalAsyncIO` off) */
  blockGlobalAsyncIO?: boolean;
}

/** What an operation reads of its request */
interface CacheRequest {
  url: string;
  method: string;
  headers: Headers;
  cf?: { cacheKey?: unknown };
}

// (Made at first use: Node loads its fetch implementation at the first
// Headers made, which importing Miniflare shouldn't pay for)
let noHeaders: Headers | undefined;

/**
 * The request of an operation. A URL or a string naming one is read as a GET
 * without headers, without building a Request (most calls pass a URL string);
 * anything else goes through `new Request()`, which throws its usual errors.
 */
function toRequest(req: RequestInfo): CacheRequest {
  if (req instanceof Request) return req;
  if (req instanceof globalThis.Request) return req;
  if (req instanceof URL) return { url: req.href, method: "GET", headers: (noHeaders ??= new Headers()) };
  if (typeof req === "string" && URL.canParse(req)) {
    return { url: new URL(req).href, method: "GET", headers: (noHeaders ??= new Headers()) };
  }
  return new Request(req);
}

function cacheKey(req: CacheRequest): string {
  const cacheKey = req.cf?.cacheKey;
  if (cacheKey) return String(cacheKey);
  try {
    return new URL(req.url).toString();
  } catch {
    throw new TypeError("Invalid URL. Cache API keys must be fully-qualified, valid URLs.");
  }
}

/** Lower-cased names to (last) values: what http-cache-semantics reads */
function headersObject(headers: Headers): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of headers) result[name] = value;
  return result;
}

const PRIVATE_SET_COOKIE = /private=set-cookie/i;

const require = createRequire(import.meta.url);

/**
 * A CachePolicy whose "now" is a Clock's (one class per clock). The library
 * loads at the first cache made, not at startup.
 */
function policyClass(clock: Clock): typeof CachePolicy {
  const CachePolicyClass = require("http-cache-semantics") as typeof CachePolicy;
  return class ClockedCachePolicy extends CachePolicyClass {
    now(): number {
      return clock();
    }
  };
}

/**
 * How long (ms) Cloudflare's cache keeps `res` for `req`, or undefined when it
 * doesn't store it. The request's Cache-Control is ignored; Set-Cookie stops
 * storing unless Cache-Control has `private=set-cookie`; 429 and 503 count as
 * 200.
 */
function expirationTtl(Policy: typeof CachePolicy, req: CacheRequest, res: Response | globalThis.Response): number | undefined {
  const reqHeaders = headersObject(req.headers);
  delete reqHeaders["cache-control"];
  const resHeaders = headersObject(res.headers);
  const cacheControl = resHeaders["cache-control"];
  if (cacheControl !== undefined && PRIVATE_SET_COOKIE.test(cacheControl)) {
    resHeaders["cache-control"] = cacheControl.replace(PRIVATE_SET_COOKIE, "");
    delete resHeaders["set-cookie"];
  }
  if ("set-cookie" in resHeaders) return undefined;
  const status = res.status === 429 || res.status === 503 ? 200 : res.status;
  const policy = new Policy(
    { url: req.url, method: req.method, headers: reqHeaders },
    { status, headers: resHeaders },
    { shared: true }
  );
  return policy.storable() ? policy.timeToLive() : undefined;
}

/**
 * The headers stored for a response: all of them, except Set-Cookie when
 * Cache-Control has `private=set-cookie` (Cloudflare strips it; Miniflare 2
 * stored it)
 */
function storedHeaders(res: Response | globalThis.Response): [string, string][] {
  const headers = [...res.headers];
  const cacheControl = res.headers.get("Cache-Control");
  if (cacheControl === null || !PRIVATE_SET_COOKIE.test(cacheControl)) return headers;
  return headers.filter(([name]) => name !== "set-cookie");
}

const ETAG = /^(?:W\/)?"(.+)"$/;
function etagValue(value: string): string | undefined {
  return ETAG.exec(value.trim())?.[1];
}

// RFC 1123 dates only, as Cloudflare compares them
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;
function httpDate(value: string): number {
  return HTTP_DATE.test(value) ? Date.parse(value) : NaN;
}

/** True when the request's If-None-Match or If-Modified-Since says it has the response */
function notModified(reqHeaders: Headers, resHeaders: Headers): boolean {
  const ifNoneMatch = reqHeaders.get("If-None-Match");
  const etagHeader = resHeaders.get("ETag");
  if (ifNoneMatch !== null && etagHeader !== null) {
    const etag = etagValue(etagHeader);
    if (etag !== undefined) {
      if (ifNoneMatch.trim() === "*") return true;
      // Weak comparison: W/ prefixes don't matter
      if (ifNoneMatch.split(",").some((candidate) => etagValue(candidate) === etag)) return true;
    }
  }
  const ifModifiedSince = reqHeaders.get("If-Modified-Since");
  const lastModified = resHeaders.get("Last-Modified");
  if (ifModifiedSince !== null && lastModified !== null) {
    // (NaN compares false: a date in another format never matches)
    if (httpDate(lastModified) <= httpDate(ifModifiedSince)) return true;
  }
  return false;
}

function matchResponse(req: CacheRequest, status: number, headers: Headers, body: Uint8Array<ArrayBuffer>): Response {
  if (notModified(req.headers, headers)) return new Response(null, { status: 304, headers });
  const range = req.headers.get("Range");
  if (range !== null) return getRangeResponse(range, status, headers, body);
  return new Response(body, { status, headers });
}

export class Cache implements CacheInterface {
  readonly #storage: Storage;
  readonly #formDataFiles: boolean;
  readonly #clock: Clock;
  readonly #Policy: typeof CachePolicy;
  readonly #blockGlobalAsyncIO: boolean;

  constructor(
    storage: Storage,
    { formDataFiles = true, clock = defaultClock, blockGlobalAsyncIO = false }: InternalCacheOptions = {}
  ) {
    this.#storage = storage;
    this.#formDataFiles = formDataFiles;
    this.#clock = clock;
    this.#Policy = policyClass(clock);
    this.#blockGlobalAsyncIO = blockGlobalAsyncIO;
  }

  #begin(): ReturnType<typeof getRequestContext> {
    if (this.#blockGlobalAsyncIO) assertInRequest();
    const ctx = getRequestContext();
    ctx?.incrementExternalSubrequests();
    return ctx;
  }

  async put(req: RequestInfo, res: Response | globalThis.Response): Promise<undefined> {
    const ctx = this.#begin();
    const request = toRequest(req);
    if (res instanceof Response && res.webSocket) {
      throw new TypeError("Cannot cache WebSocket upgrade response.");
    }
    if (request.method !== "GET") throw new TypeError("Cannot cache response to non-GET request.");
    if (res.status === 206) {
      throw new TypeError("Cannot cache response to a range request (206 Partial Content).");
    }
    if (res.headers.get("Vary")?.includes("*")) {
      throw new TypeError("Cannot cache response with 'Vary: *' header.");
    }
    const key = cacheKey(request);
    if (new URL(request.url).pathname.startsWith("/" + SITES_NO_CACHE_PREFIX)) return;
    const ttl = expirationTtl(this.#Policy, request, res);
    // (A response already stale when stored would never be matched)
    if (ttl === undefined || ttl <= 0) return;
    const metadata: CachedMeta = { status: res.status, headers: storedHeaders(res) };
    const value = new Uint8Array(await res.arrayBuffer());
    const outputGate = waitForOpenOutputGate();
    if (outputGate !== undefined) await outputGate;
    await this.#storage.put<CachedMeta>(key, {
      value,
      expiration: millisToSeconds(this.#clock() + ttl),
      metadata,
    });
    const inputGate = waitForOpenInputGate();
    if (inputGate !== undefined) await inputGate;
    ctx?.advanceCurrentTime();
  }

  async match(req: RequestInfo, options?: CacheMatchOptions): Promise<Response | undefined> {
    const ctx = this.#begin();
    const request = toRequest(req);
    if (request.method !== "GET" && !options?.ignoreMethod) return undefined;
    const cached = await this.#storage.get<CachedMeta>(cacheKey(request));
    const inputGate = waitForOpenInputGate();
    if (inputGate !== undefined) await inputGate;
    ctx?.advanceCurrentTime();
    if (cached === undefined) return undefined;
    if (cached.metadata === undefined || cached.metadata === null) {
      throw new CacheError(
        "ERR_DESERIALIZATION",
        "Unable to deserialize stored cached data due to missing metadata.\n" +
          "The cached data storage format changed in Miniflare 2. You cannot load cached data created with Miniflare 1 and must delete it."
      );
    }
    const headers = new Headers(cached.metadata.headers);
    headers.set("CF-Cache-Status", "HIT");
    let res = matchResponse(request, cached.metadata.status, headers, cached.value as Uint8Array<ArrayBuffer>);
    if (!this.#formDataFiles) res = withStringFormDataFiles(res);
    return withImmutableHeaders(res);
  }

  async delete(req: RequestInfo, options?: CacheMatchOptions): Promise<boolean> {
    const ctx = this.#begin();
    const request = toRequest(req);
    if (request.method !== "GET" && !options?.ignoreMethod) return false;
    const key = cacheKey(request);
    const outputGate = waitForOpenOutputGate();
    if (outputGate !== undefined) await outputGate;
    const deleted = await this.#storage.delete(key);
    const inputGate = waitForOpenInputGate();
    if (inputGate !== undefined) await inputGate;
    ctx?.advanceCurrentTime();
    return deleted;
  }
}

/** The cache of `cache: false`: stores nothing, matches nothing */
export class NoOpCache implements CacheInterface {
  async put(_req: RequestInfo, _res: Response | globalThis.Response): Promise<undefined> {
    return undefined;
  }

  async match(_req: RequestInfo, _options?: CacheMatchOptions): Promise<Response | undefined> {
    return undefined;
  }

  async delete(_req: RequestInfo, _options?: CacheMatchOptions): Promise<boolean> {
    return false;
  }
}
