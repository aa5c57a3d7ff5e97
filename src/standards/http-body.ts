/**
 * What `Request`/`Response` need to know about a body they're given, found
 * from the body's public surface rather than from undici's internal state
 * (each Node major bundles its own undici, with its own private fields).
 */
import { base, isBufferSource } from "./http-base.js";

/**
 * Whether `value` is a FormData, from any copy of undici (Node's own, npm
 * `undici`'s, another Node major's) or any other implementation
 */
function isFormDataLike(value: object): value is FormData {
  return (
    Object.prototype.toString.call(value) === "[object FormData]" &&
    typeof (value as FormData).entries === "function"
  );
}

/**
 * Returns a body Node's own Request/Response accept as what it is. A
 * FormData from another copy of undici (such as npm `undici`'s, which
 * Miniflare 2 users pass to `dispatchFetch()`) is copied entry by entry into
 * one of Node's own: Node 24's undici checks FormData brands strictly and
 * would otherwise send it as the text "[object FormData]".
 */
export function adoptBodyInit<T>(body: T): T {
  if (typeof body !== "object" || body === null) return body;
  const { FormData } = base();
  if (body instanceof FormData || !isFormDataLike(body)) return body;
  const formData = new FormData();
  for (const [name, value] of body.entries()) {
    if (value instanceof Blob) {
      const fileName = (value as Partial<File>).name;
      if (typeof fileName === "string") formData.append(name, value, fileName);
      else formData.append(name, value);
    } else {
      formData.append(name, String(value));
    }
  }
  return formData as T;
}

/**
 * The length in bytes of the body `body` makes, if known without reading
 * it: strings, buffers, Blobs and URLSearchParams (a FormData's multipart
 * encoding and streams aren't known in advance)
 */
export function bodyInitLength(body: unknown): number | undefined {
  if (typeof body === "string") return Buffer.byteLength(body);
  if (typeof body !== "object" || body === null) return undefined;
  if (isBufferSource(body)) return body.byteLength;
  if (body instanceof Blob) return body.size;
  if (body instanceof URLSearchParams) return Buffer.byteLength(body.toString());
  return undefined;
}
