// Key ordering and byte encoding shared by every backend.
//
// Storage keys are arbitrary JavaScript strings. They are ordered by their
// UTF-8 bytes, as Workers KV and Durable Object storage order them. A string
// with a lone surrogate has no UTF-8 form, so keys are encoded as WTF-8 (UTF-8
// that also encodes lone surrogates as 3 bytes): it is the same as UTF-8 for
// every well-formed string, it round-trips every string exactly, and its byte
// order is code point order.

const isHigh = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLow = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

/** The code point starting at unit `i` (a lone surrogate is its own) */
function codePointFrom(s: string, i: number): number {
  const unit = s.charCodeAt(i);
  if (isHigh(unit)) {
    const next = s.charCodeAt(i + 1);
    if (isLow(next)) return 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
  }
  return unit;
}

/** Compares keys by code point, which is UTF-8 (WTF-8) byte order */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 order is code point order except around surrogates
    if (x < 0xd800 && y < 0xd800) return x - y;
    if (i > 0 && isHigh(a.charCodeAt(i - 1))) {
      // Both have the same high surrogate before: a pair beats a lone one
      const xLow = isLow(x);
      const yLow = isLow(y);
      if (xLow && yLow) return x - y;
      if (xLow !== yLow) return xLow ? 1 : -1;
    }
    return codePointFrom(a, i) - codePointFrom(b, i);
  }
  return a.length - b.length;
}

/** Encodes a key as WTF-8 */
export function encodeKey(key: string): Buffer {
  if (key.isWellFormed()) return Buffer.from(key, "utf8");
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    let code = key.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < key.length) {
      const next = key.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
      }
    }
    if (code < 0x80) {
      bytes.push(code);
    } else if (code < 0x800) {
      bytes.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    } else {
      bytes.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 0x3f),
        0x80 | ((code >> 6) & 0x3f),
        0x80 | (code & 0x3f)
      );
    }
  }
  return Buffer.from(bytes);
}

/** Whether bytes contain an encoded lone surrogate (ED A0..BF xx) */
function hasEncodedSurrogate(bytes: Uint8Array): boolean {
  for (let i = bytes.indexOf(0xed); i !== -1; i = bytes.indexOf(0xed, i + 1)) {
    if (bytes[i + 1] >= 0xa0 && bytes[i + 1] <= 0xbf) return true;
  }
  return false;
}

/** Decodes a key encoded by encodeKey() */
export function decodeKey(bytes: Uint8Array): string {
  if (!hasEncodedSurrogate(bytes)) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  }
  let result = "";
  for (let i = 0; i < bytes.length; ) {
    const byte = bytes[i];
    let code: number;
    if (byte < 0x80) {
      code = byte;
      i += 1;
    } else if (byte < 0xe0) {
      code = ((byte & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      i += 2;
    } else if (byte < 0xf0) {
      code = ((byte & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      i += 3;
    } else {
      code =
        ((byte & 0x07) << 18) |
        ((bytes[i + 1] & 0x3f) << 12) |
        ((bytes[i + 2] & 0x3f) << 6) |
        (bytes[i + 3] & 0x3f);
      i += 4;
    }
    result += String.fromCodePoint(code);
  }
  return result;
}

/** A list cursor: base64 of the key the list ended at (as Miniflare 2) */
export function encodeCursor(key: string): string {
  return encodeKey(key).toString("base64");
}

export function decodeCursor(cursor: string): string {
  return decodeKey(Buffer.from(cursor, "base64"));
}
