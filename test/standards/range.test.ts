import assert from "node:assert/strict";
import { test } from "node:test";
import { getRangeResponse, parseRanges } from "../../src/standards/range.js";

test("parseRanges: single, open-ended and suffix ranges, ends clamped", () => {
  assert.deepEqual(parseRanges("bytes=0-3", 10), [[0, 3]]);
  assert.deepEqual(parseRanges("bytes=2-", 10), [[2, 9]]);
  assert.deepEqual(parseRanges("bytes=-3", 10), [[7, 9]]);
  assert.deepEqual(parseRanges("bytes=5-100", 10), [[5, 9]]);
  assert.deepEqual(parseRanges("bytes=1-1,3-4", 10), [
    [1, 1],
    [3, 4],
  ]);
});

test("parseRanges: the unit is case-insensitive and spaces are allowed", () => {
  assert.deepEqual(parseRanges("  BYTES = 1 - 2 , 4 - ", 10), [
    [1, 2],
    [4, 9],
  ]);
});

test("parseRanges: the whole body for no specs, or a suffix at least the body's length", () => {
  assert.deepEqual(parseRanges("bytes=", 10), []);
  assert.deepEqual(parseRanges("bytes=   ", 10), []);
  assert.deepEqual(parseRanges("bytes=-10", 10), []);
  assert.deepEqual(parseRanges("bytes=-20", 10), []);
});

test("parseRanges: a zero-length suffix is skipped", () => {
  assert.deepEqual(parseRanges("bytes=-0", 10), []);
  assert.deepEqual(parseRanges("bytes=-0,1-2", 10), [[1, 2]]);
});

test("parseRanges: unsatisfiable or malformed headers give undefined", () => {
  for (const header of ["items=0-1", "bytes=3-1", "bytes=10-", "bytes=10-12", "bytes=-", "bytes=a-b", "bytes=1-2,x"]) {
    assert.equal(parseRanges(header, 10), undefined, header);
  }
});

const body = new TextEncoder().encode("0123456789");

test("getRangeResponse: one range gives 206 with Content-Range and Content-Length", async () => {
  const res = getRangeResponse("bytes=2-4", 200, new Headers({ "Content-Type": "text/plain" }), body);
  assert.equal(res.status, 206);
  assert.equal(res.headers.get("Content-Range"), "bytes 2-4/10");
  assert.equal(res.headers.get("Content-Length"), "3");
  assert.equal(await res.text(), "234");
});

test("getRangeResponse: unsatisfiable gives 416 with the length", async () => {
  const res = getRangeResponse("bytes=20-", 200, new Headers({ ETag: '"a"' }), body);
  assert.equal(res.status, 416);
  assert.equal(res.headers.get("Content-Range"), "bytes */10");
  assert.equal(res.headers.get("ETag"), null);
  assert.equal(await res.text(), "");
});

test("getRangeResponse: the whole body keeps the stored status and headers", async () => {
  const res = getRangeResponse("bytes=-10", 203, new Headers({ "X-Key": "v" }), body);
  assert.equal(res.status, 203);
  assert.equal(res.headers.get("X-Key"), "v");
  assert.equal(await res.text(), "0123456789");
});

test("getRangeResponse: several ranges give multipart/byteranges", async () => {
  const res = getRangeResponse(
    "bytes=1-2,-3",
    200,
    new Headers({ "Content-Type": "text/plain", "Content-Length": "10" }),
    body
  );
  assert.equal(res.status, 206);
  const contentType = res.headers.get("Content-Type")!;
  const match = /^multipart\/byteranges; boundary=(miniflare-boundary-\d{16})$/.exec(contentType);
  assert.ok(match, contentType);
  const boundary = match[1];
  // The stored length was the whole body's
  assert.equal(res.headers.get("Content-Length"), null);
  assert.equal(
    await res.text(),
    `--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 1-2/10\r\n\r\n12\r\n` +
      `--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 7-9/10\r\n\r\n789\r\n` +
      `--${boundary}--`
  );
});
