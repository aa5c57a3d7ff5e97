import assert from "node:assert/strict";
import { test } from "node:test";
import { DOMException } from "../../src/standards/domexception.js";
import { atob, btoa } from "../../src/standards/encoding.js";

function isInvalidCharacter(error: unknown): boolean {
  assert(error instanceof DOMException);
  assert.equal(error.name, "InvalidCharacterError");
  assert.equal(error.message, "Invalid character");
  assert.equal(error.code, DOMException.INVALID_CHARACTER_ERR);
  return true;
}

test("btoa: encodes binary strings as base64", () => {
  assert.equal(btoa(""), "");
  assert.equal(btoa("test"), "dGVzdA==");
  assert.equal(btoa("\x00\xff\x80"), "AP+A");
  assert.equal(btoa(42 as unknown as string), "NDI=");
});
test("btoa: throws on characters outside Latin-1", () => {
  assert.throws(() => btoa("✓"), isInvalidCharacter);
  assert.throws(() => btoa("abc\u0100"), isInvalidCharacter);
});
test("atob: decodes base64 to binary strings", () => {
  assert.equal(atob(""), "");
  assert.equal(atob("dGVzdA=="), "test");
  assert.equal(atob("dGVzdA"), "test");
  assert.equal(atob("AP+A"), "\x00\xff\x80");
});
test("atob: ignores ASCII whitespace", () => {
  assert.equal(atob(" dG\tVz\nd\fA=\r= "), "test");
});
test("atob: throws on characters outside base64 alphabet", () => {
  assert.throws(() => atob("dGVzdA==!"), isInvalidCharacter);
  assert.throws(() => atob("dGVz-A=="), isInvalidCharacter);
  assert.throws(() => atob("dGVz_A=="), isInvalidCharacter);
  assert.throws(() => atob("dGVz\vdA=="), isInvalidCharacter);
  assert.throws(() => atob("✓"), isInvalidCharacter);
});
test("atob/btoa: round trip every byte", () => {
  let binary = "";
  for (let i = 0; i < 256; i++) binary += String.fromCharCode(i);
  assert.equal(atob(btoa(binary)), binary);
});
