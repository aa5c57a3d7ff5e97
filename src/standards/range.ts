// HTTP Range requests (RFC 9110 §14) over a body held in memory, as the
// Cache API answers them (R2 reads ranges the same way).
import { Response } from "./http.js";

/** An inclusive byte range: [first, last] */
export type ByteRange = [start: number, end: number];

const UNIT = /^ *bytes *=/i;
const SPEC = /^ *(\d+)? *- *(\d+)? *$/;

/**
 * The ranges a `Range` header asks of a body of `length` bytes:
 * - `undefined` when it can't be satisfied (another unit, a malformed spec,
 *   a start at or past the end): the answer is 416;
 * - `[]` for the whole body (no specs, or a suffix at least as long as the
 *   body);
 * - otherwise the ranges, in the order asked, ends clamped to the body.
 * A suffix of 0 bytes (`-0`) asks for nothing and is skipped.
 */
export function parseRanges(header: string, length: number): ByteRange[] | undefined {
  const unit = UNIT.exec(header);
  if (unit === null) return undefined;
  const specs = header.substring(unit[0].length);
  if (specs.trim() === "") return [];
  const ranges: ByteRange[] = [];
  for (const spec of specs.split(",")) {
    const match = SPEC.exec(spec);
    if (match === null) return undefined;
    const [, first, last] = match;
    if (first !== undefined) {
      const start = parseInt(first);
      const end = last === undefined ? length - 1 : parseInt(last);
      if (start > end || start >= length) return undefined;
      ranges.push([start, Math.min(end, length - 1)]);
    } else if (last !== undefined) {
      const suffix = parseInt(last);
      if (suffix >= length) return [];
      if (suffix > 0) ranges.push([length - suffix, length - 1]);
    } else {
      return undefined;
    }
  }
  return ranges;
}

const encoder = new TextEncoder();

function multipartBoundary(): string {
  const digits = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER).toString().padStart(16, "0");
  return `miniflare-boundary-${digits}`;
}

/**
 * The response to a request with `Range: rangeHeader` for a stored response:
 * 416 with `Content-Range: bytes *\/<length>` when unsatisfiable, the whole
 * response when the header asks for all of it, 206 with `Content-Range` for
 * one range, and 206 `multipart/byteranges` for several. `headers` is used
 * (and changed) as the response's.
 */
export function getRangeResponse(
  rangeHeader: string,
  status: number,
  headers: Headers,
  body: Uint8Array<ArrayBuffer>
): Response {
  const length = body.byteLength;
  const ranges = parseRanges(rangeHeader, length);
  if (ranges === undefined) {
    return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${length}` } });
  }
  if (ranges.length === 0) return new Response(body, { status, headers });
  if (ranges.length === 1) {
    const [start, end] = ranges[0];
    headers.set("Content-Range", `bytes ${start}-${end}/${length}`);
    headers.set("Content-Length", `${end - start + 1}`);
    return new Response(body.slice(start, end + 1), { status: 206, headers });
  }
  const contentType = headers.get("Content-Type");
  const boundary = multipartBoundary();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (const [start, end] of ranges) {
    const head =
      `--${boundary}\r\nContent-Type: ${contentType}\r\n` + `Content-Range: bytes ${start}-${end}/${length}\r\n\r\n`;
    parts.push(encoder.encode(head), body.subarray(start, end + 1), encoder.encode("\r\n"));
  }
  parts.push(encoder.encode(`--${boundary}--`));
  // (A stored Content-Length is the whole body's)
  headers.delete("Content-Length");
  headers.set("Content-Type", `multipart/byteranges; boundary=${boundary}`);
  return new Response(new Blob(parts), { status: 206, headers });
}
