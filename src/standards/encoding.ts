/**
 * `atob` and `btoa`, throwing Miniflare 2's `DOMException`s
 * rather than Node's.
 */
import { DOMException } from "./domexception.js";

function invalidCharacter(): DOMException {
  return new DOMException("Invalid character", "InvalidCharacterError");
}

/** Encodes a "binary string" (every code unit ≤ 0xFF) as base64 */
export function btoa(data: string): string {
  const input = `${data}`;
  for (let i = 0; i < input.length; i++) {
    if (input.charCodeAt(i) > 0xff) throw invalidCharacter();
  }
  return Buffer.from(input, "latin1").toString("base64");
}

// Only these characters may appear once ASCII whitespace has been removed.
// Like Miniflare 2, padding placement and length are not validated.
const BASE64_ALPHABET = /^[A-Za-z0-9+/=]*$/;

/** Decodes base64 to a "binary string", ignoring ASCII whitespace */
export function atob(data: string): string {
  const input = `${data}`.replace(/[\t\n\f\r ]+/g, "");
  if (!BASE64_ALPHABET.test(input)) throw invalidCharacter();
  return Buffer.from(input, "base64").toString("latin1");
}
