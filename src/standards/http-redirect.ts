/**
 * Redirect following for `fetch()`. Workers count every followed redirect as
 * another subrequest, so fetch() asks Node's fetch for each hop with
 * `redirect: "manual"` and follows redirects itself, as undici would (the
 * "HTTP-redirect fetch" steps of the Fetch standard), knowing every hop
 * without reading undici's internal state, which differs between the undici
 * each Node major bundles.
 *
 * https://fetch.spec.whatwg.org/#http-redirect-fetch
 */
import { base } from "./http-base.js";

type BaseRequest = globalThis.Request;
type BaseResponse = globalThis.Response;

/** https://fetch.spec.whatwg.org/#redirect-status */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Hops after which following stops, as in undici and browsers */
const MAX_REDIRECTS = 20;
/** https://fetch.spec.whatwg.org/#request-body-header-name */
const REQUEST_BODY_HEADERS = [
  "content-encoding",
  "content-language",
  "content-location",
  "content-type",
  // undici computes it from the body, but a user-set one would be stale
  "content-length",
];
/** Credentials not sent on to another origin (as undici does) */
const CROSS_ORIGIN_DROPPED_HEADERS = ["authorization", "proxy-authorization", "cookie"];

/**
 * The error undici rejects with for a network error, so following redirects
 * ourselves fails the way Node's fetch does
 */
export function redirectNetworkError(cause: unknown): TypeError {
  return new TypeError("fetch failed", { cause });
}

/**
 * The request for the redirect `response` (to `request`) asks to follow, or
 * `undefined` if it isn't a redirect to follow (then it's the response).
 * Throws the network error undici would for redirects it can't follow.
 *
 * @param redirectCount redirects followed so far
 * @param replay a clone of `request` taken before it was sent, to send its
 * body again; `undefined` if the body was a stream (undici can't send those
 * again either) or there was none
 */
export function nextRedirectRequest(
  request: BaseRequest,
  response: BaseResponse,
  redirectCount: number,
  replay: BaseRequest | undefined
): BaseRequest | undefined {
  if (!REDIRECT_STATUSES.has(response.status)) return undefined;
  const location = response.headers.get("location");
  if (location === null) return undefined;

  const currentURL = new URL(request.url);
  let url: URL;
  try {
    url = new URL(location, currentURL);
  } catch (e) {
    throw redirectNetworkError(e);
  }
  if (url.hash === "") url.hash = currentURL.hash;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw redirectNetworkError(new Error("URL scheme must be a HTTP(S) scheme"));
  }
  if (redirectCount >= MAX_REDIRECTS) {
    throw redirectNetworkError(new Error("redirect count exceeded"));
  }
  const hasBody = request.body !== null;
  if (response.status !== 303 && hasBody && replay === undefined) {
    throw redirectNetworkError(
      new Error("cannot follow a redirect that resends a streamed request body")
    );
  }

  const headers = new (base().Headers)(request.headers);
  let method = request.method;
  let body: ReadableStream | null = hasBody ? (replay?.body ?? null) : null;
  if (
    ((response.status === 301 || response.status === 302) && method === "POST") ||
    (response.status === 303 && method !== "GET" && method !== "HEAD")
  ) {
    method = "GET";
    body = null;
    for (const name of REQUEST_BODY_HEADERS) headers.delete(name);
  }
  if (url.origin !== currentURL.origin) {
    for (const name of CROSS_ORIGIN_DROPPED_HEADERS) headers.delete(name);
  }
  return new (base().Request)(url, {
    method,
    headers,
    body,
    redirect: "manual",
    signal: request.signal,
    keepalive: request.keepalive,
    ...(body === null ? {} : { duplex: "half" }),
  } as RequestInit);
}
