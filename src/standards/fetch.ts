/**
 * Workers `fetch`, behaving like Miniflare 2.14.4's: subrequest counting
 * (each followed redirect too), gate waits, frozen-clock advancing, immutable
 * input-gated responses and outgoing header massaging. `createCompatFetch`
 * adds the request-context check and the `fetch_refuses_unknown_protocols`
 * handling on top. Redirects are followed in ./http-redirect.ts; Request and
 * Response are ./http.ts's.
 */
import { createRequire } from "node:module";
import type { MockAgent } from "undici";
import type { Compatibility } from "../shared/compat.js";
import { assertInRequest, getRequestContext } from "../shared/context.js";
import type { Log } from "../shared/log.js";
import { waitForOpenInputGate, waitForOpenOutputGate } from "../shared/sync/gate.js";
import { _kLoopHeader, base, makeHeadersMutable } from "./http-base.js";
import {
  type _ResponseInfo,
  _hasStreamedBody,
  _kInner,
  _responseFromFetch,
  Request,
  type RequestInfo,
  type RequestInit,
  type Response,
  withEnumerableGetters,
  withInputGating,
  withStringFormDataFiles,
} from "./http.js";
import { nextRedirectRequest } from "./http-redirect.js";

type BaseRequest = globalThis.Request;
type BaseResponse = globalThis.Response;

export { _kLoopHeader } from "./http-base.js";

// undici adds these to every request: only send them if the user set them
const kDefaultHeadersToRemove = ["accept", "accept-language", "sec-fetch-mode", "user-agent"];
const methodsExpectingPayload = ["PUT", "POST", "PATCH"];

/** Anything undici can dispatch through (Agent, MockAgent, ...) */
export interface DispatcherLike {
  dispatch(options: any, handler: any): boolean;
  close?(...args: any[]): any;
  destroy?(...args: any[]): any;
  isMockActive?: boolean;
}

function isDispatcher(value: unknown): value is DispatcherLike {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as DispatcherLike).dispatch === "function" &&
    typeof (value as DispatcherLike).destroy === "function"
  );
}

const globalDispatcherSymbol = Symbol.for("undici.globalDispatcher.1");

function getGlobalDispatcher(): DispatcherLike | undefined {
  return (globalThis as unknown as Record<symbol, DispatcherLike | undefined>)[
    globalDispatcherSymbol
  ];
}

/** Removes headers undici added from each dispatched request */
class MiniflareDispatcher implements DispatcherLike {
  readonly #inner: DispatcherLike;
  readonly #removeHeaders: string[];

  constructor(inner: DispatcherLike, removeHeaders: string[]) {
    this.#inner = inner;
    this.#removeHeaders = removeHeaders;
  }

  dispatch(options: { headers?: unknown }, handler: unknown): boolean {
    const headers = options.headers;
    if (Array.isArray(headers)) {
      let i = 0;
      while (i < headers.length) {
        if (this.#removeHeaders.includes(String(headers[i]).toLowerCase())) {
          headers.splice(i, 2);
        } else {
          i += 2;
        }
      }
    } else if (typeof headers === "object" && headers !== null) {
      const record = headers as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (this.#removeHeaders.includes(key.toLowerCase())) delete record[key];
      }
    }
    return this.#inner.dispatch(options, handler);
  }

  close(...args: any[]): any {
    return this.#inner.close?.(...args);
  }

  destroy(...args: any[]): any {
    return this.#inner.destroy?.(...args);
  }

  get isMockActive(): boolean {
    return this.#inner.isMockActive ?? false;
  }
}

/** Cancels a request clone's body unless it was handed on (and so locked) */
function discardBody(request: BaseRequest | undefined): void {
  const body = request?.body;
  if (body && !body.locked) body.cancel().catch(() => {});
}

/**
 * Fetches `req`, following redirects one hop at a time (see
 * ./http-redirect.ts): each hop counts as another subrequest, and the
 * response's url, redirected and URL list come from the hops
 */
async function fetchFollowingRedirects(
  req: Request,
  fetchInit: RequestInit | undefined
): Promise<[BaseResponse, _ResponseInfo]> {
  const ctx = getRequestContext();
  const init = { ...fetchInit, redirect: "manual" } as RequestInit;
  let request = req[_kInner];
  const urlList = [new URL(request.url)];
  for (;;) {
    // A copy of the body to send again if a 307/308 asks to (a streamed
    // body isn't kept: teeing would buffer all of it)
    const replay =
      request.body !== null && !_hasStreamedBody(req) ? request.clone() : undefined;
    const response = await base().fetch(request, init);
    let next: BaseRequest | undefined;
    try {
      next = nextRedirectRequest(request, response, urlList.length - 1, replay);
    } finally {
      if (next === undefined) discardBody(replay);
    }
    if (next === undefined) {
      return [response, { url: response.url, redirected: urlList.length > 1, urlList }];
    }
    // The replayed body is the next request's, unless the redirect dropped it
    if (next.body === null) discardBody(replay);
    await response.body?.cancel().catch(() => {});
    // Each followed redirect is another subrequest
    ctx?.incrementExternalSubrequests();
    urlList.push(new URL(next.url));
    request = next;
  }
}

/**
 * Miniflare's fetch. Bind `this` to an undici dispatcher (e.g. a `MockAgent`
 * from `createFetchMock()`) to send requests through it.
 */
export async function fetch(
  this: unknown,
  input: RequestInfo,
  init?: RequestInit | Request
): Promise<Response> {
  const ctx = getRequestContext();
  ctx?.incrementExternalSubrequests();
  await waitForOpenOutputGate();

  const req = new Request(input, init);
  // WebSocket handshakes are made by `ws`, not undici (loaded on first use)
  if (req.method === "GET" && req.headers.get("upgrade")?.toLowerCase() === "websocket") {
    const { _upgradingFetch } = await import("./websocket-fetch.js");
    return _upgradingFetch(req);
  }
  makeHeadersMutable(req.headers);
  // Host is derived from the URL, CF-Connecting-IP is for incoming requests
  req.headers.delete("host");
  req.headers.delete("cf-connecting-ip");
  // Lets an upstream Miniflare detect loops
  req.headers.set(_kLoopHeader, String(ctx?.requestDepth ?? 1));
  // undici rejects Content-Length: 0 on requests without payloads
  if (
    !methodsExpectingPayload.includes(req.method) &&
    req.headers.get("content-length") === "0"
  ) {
    req.headers.delete("content-length");
  }
  const removeHeaders = kDefaultHeadersToRemove.filter((header) => !req.headers.has(header));

  const innerDispatcher = isDispatcher(this) ? this : getGlobalDispatcher();
  const fetchInit =
    innerDispatcher === undefined
      ? undefined
      : ({ dispatcher: new MiniflareDispatcher(innerDispatcher, removeHeaders) } as RequestInit);
  let baseRes: BaseResponse;
  let info: _ResponseInfo | undefined;
  if (req.redirect === "follow") {
    [baseRes, info] = await fetchFollowingRedirects(req, fetchInit);
  } else {
    baseRes = await base().fetch(req[_kInner], fetchInit);
  }

  const res = _responseFromFetch(baseRes, info);
  await waitForOpenInputGate();
  ctx?.advanceCurrentTime();
  return withInputGating(res);
}

/** Creates an undici `MockAgent` to pass as the `fetchMock` option */
export function createFetchMock(): MockAgent {
  // npm undici is heavy: only load it when a mock is actually wanted
  const require = createRequire(import.meta.url);
  const { MockAgent } = require("undici") as typeof import("undici");
  return new MockAgent();
}

export function _urlFromRequestInput(input: RequestInfo): URL {
  if (input instanceof URL) return input;
  if (input instanceof Request || input instanceof base().Request) {
    return new URL(input.url);
  }
  return new URL(input);
}

export function _buildUnknownProtocolWarning(url: URL): string {
  let warning =
    "Worker passed an invalid URL to fetch(). URLs passed to fetch() must " +
    "begin with either 'http:' or 'https:', not '" +
    url.protocol +
    "'. Due to a historical bug, any other protocol used here will be " +
    "treated the same as 'http:'. We plan to correct this bug in the future, " +
    "so please update your Worker to use 'http:' or 'https:' for all fetch() " +
    "URLs.";
  if (url.protocol === "ws:" || url.protocol === "wss:") {
    warning +=
      " Note that fetch() treats WebSockets as a special kind of HTTP " +
      "request, therefore WebSockets should use 'http:'/'https:', not " +
      "'ws:'/'wss:'.";
  }
  return warning;
}

export type FetchFunction = (
  input: RequestInfo,
  init?: RequestInit | Request
) => Promise<Response>;

export interface CompatFetchContext {
  log: Log;
  compat: Compatibility;
  globalAsyncIO?: boolean;
  /** Dispatcher for the default inner fetch (ignored if `inner` is given) */
  fetchMock?: unknown;
}

/**
 * The worker-facing fetch: throws outside a request unless `globalAsyncIO`,
 * refuses (or warns about and rewrites to http:) unknown protocols, and
 * returns file parts as strings from `formData()` unless
 * `formdata_parser_supports_files`.
 */
export function createCompatFetch(
  { log, compat, globalAsyncIO, fetchMock }: CompatFetchContext,
  inner?: FetchFunction
): FetchFunction {
  inner ??= fetchMock === undefined ? fetch : fetch.bind(fetchMock);
  const innerFetch = inner;
  const refusesUnknown = compat.isEnabled("fetch_refuses_unknown_protocols");
  const formDataFiles = compat.isEnabled("formdata_parser_supports_files");
  const gettersOnPrototype = compat.isEnabled("workers_api_getters_setters_on_prototype");
  return async (input, init) => {
    if (!globalAsyncIO) assertInRequest();
    const url = _urlFromRequestInput(input);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      if (refusesUnknown) {
        throw new TypeError(`Fetch API cannot load: ${url.toString()}`);
      }
      log.warn(_buildUnknownProtocolWarning(url));
      // Keep everything but the URL from the input
      if (init) {
        init = new Request(input, init);
      } else if (input instanceof base().Request) {
        init = new Request(input);
      } else if (input instanceof Request) {
        init = input;
      }
      input = url.toString().replace(url.protocol, "http:");
    }
    let res = await innerFetch(input, init);
    if (!formDataFiles) res = withStringFormDataFiles(res);
    if (!gettersOnPrototype) res = withEnumerableGetters(res);
    return res;
  };
}
