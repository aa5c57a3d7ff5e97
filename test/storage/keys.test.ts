import assert from "node:assert/strict";
import { test } from "node:test";
import { compareKeys, decodeCursor, decodeKey, encodeCursor, encodeKey } from "../../src/storage/keys.js";
import { adversarialKeys, generateKeys, random, show, wtf8 } from "./contract.js";

/** Random strings of `kind`, from a seeded generator */
function randomStrings(count: number, seed: number, kind: "well-formed" | "any"): string[] {
  const rand = random(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const codePoint = (): string => {
    switch (int(kind === "any" ? 8 : 6)) {
      case 0:
        return String.fromCharCode(0x61 + int(3));
      case 1:
        return String.fromCharCode(int(0x80));
      case 2:
        return String.fromCharCode(0x80 + int(0x780));
      case 3:
        // U+0800..U+FFFF except surrogates, often U+E000..U+FFFF
        return String.fromCharCode(int(2) ? 0xe000 + int(0x2000) : 0x800 + int(0xd000));
      case 4:
      case 5:
        return String.fromCodePoint(0x10000 + int(0x100000));
      default:
        return String.fromCharCode(0xd800 + int(0x800));
    }
  };
  return Array.from({ length: count }, () => {
    let s = "";
    for (let n = int(6); n >= 0; n--) s += codePoint();
    return s;
  });
}

test("compareKeys agrees with Buffer.compare of UTF-8 for well-formed strings", () => {
  const strings = [...randomStrings(3000, 1, "well-formed"), ...generateKeys(2000, 2).filter((s) => s.isWellFormed())];
  for (const s of strings) assert.ok(s.isWellFormed());
  const rand = random(3);
  for (let n = 0; n < 50_000; n++) {
    const a = strings[Math.floor(rand() * strings.length)];
    // Often a near neighbour: the same string with its end changed
    const b =
      n % 2 ? strings[Math.floor(rand() * strings.length)] : Array.from(a).slice(0, -1).join("") + strings[n % strings.length];
    const expected = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.equal(Math.sign(compareKeys(a, b)), expected, `compareKeys(${show(a)}, ${show(b)})`);
    assert.equal(Math.sign(compareKeys(b, a)), expected === 0 ? 0 : -expected, `compareKeys(${show(b)}, ${show(a)})`);
  }
  const sorted = [...strings].sort(compareKeys);
  const byBytes = [...strings].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  assert.deepEqual(sorted, byBytes);
});

test("compareKeys: examples", () => {
  assert.equal(compareKeys("", ""), 0);
  assert.equal(compareKeys("a", "a"), 0);
  assert.ok(compareKeys("", "a") < 0);
  assert.ok(compareKeys("a", "ab") < 0);
  assert.ok(compareKeys("B", "a") < 0);
  assert.ok(compareKeys("\u00e9", "\ue000") < 0);
  // UTF-16 puts these the other way round
  assert.ok(compareKeys("\uffff", "\u{1F600}") < 0);
  assert.ok(compareKeys("\ue000", "\u{10000}") < 0);
  assert.ok(compareKeys("\u{1F600}", "\uffff") > 0);
  assert.ok(compareKeys("\u{10000}", "\u{10FFFF}") < 0);
});

test("compareKeys orders lone surrogates by code point, as their WTF-8 bytes", () => {
  // U+D800 is a code point below U+E000 and below every supplementary one
  const examples: [string, string][] = [
    ["\ud7ff", "\ud800"],
    ["\ud800", "\ue000"],
    ["\udfff", "\uffff"],
    ["\udc00", "\u{10000}"],
    ["\udfff", "\u{10FFFF}"],
    ["a\ud800", "a\ue000"],
  ];
  for (const [a, b] of examples) {
    assert.ok(Buffer.compare(wtf8(a), wtf8(b)) < 0);
    assert.ok(compareKeys(a, b) < 0, `compareKeys(${show(a)}, ${show(b)}) should be < 0`);
    assert.ok(compareKeys(b, a) > 0, `compareKeys(${show(b)}, ${show(a)}) should be > 0`);
  }
  const strings = randomStrings(3000, 4, "any");
  const rand = random(5);
  for (let n = 0; n < 20_000; n++) {
    const a = strings[Math.floor(rand() * strings.length)];
    const b = strings[Math.floor(rand() * strings.length)];
    const expected = Math.sign(Buffer.compare(wtf8(a), wtf8(b)));
    assert.equal(Math.sign(compareKeys(a, b)), expected, `compareKeys(${show(a)}, ${show(b)})`);
  }
});

test("encodeKey is UTF-8 for well-formed strings", () => {
  for (const s of [...randomStrings(3000, 6, "well-formed"), "", "a", "\u{1F600}", "\uffff"]) {
    assert.ok(encodeKey(s).equals(Buffer.from(s, "utf8")), show(s));
  }
});

test("encodeKey is WTF-8: lone surrogates as three bytes", () => {
  assert.deepEqual([...encodeKey("\ud800")], [0xed, 0xa0, 0x80]);
  assert.deepEqual([...encodeKey("\udfff")], [0xed, 0xbf, 0xbf]);
  assert.deepEqual([...encodeKey("a\udc00b")], [0x61, 0xed, 0xb0, 0x80, 0x62]);
  // A lone high surrogate before a pair
  assert.deepEqual([...encodeKey("\ud800\ud800\udc00")], [0xed, 0xa0, 0x80, 0xf0, 0x90, 0x80, 0x80]);
  // A pair then a lone low surrogate
  assert.deepEqual([...encodeKey("\ud83d\ude00\ude00")], [0xf0, 0x9f, 0x98, 0x80, 0xed, 0xb8, 0x80]);
  for (const s of randomStrings(3000, 7, "any")) {
    assert.ok(encodeKey(s).equals(wtf8(s)), show(s));
  }
});

test("decodeKey(encodeKey(s)) is s, lone surrogates included", () => {
  const strings = [
    ...randomStrings(5000, 8, "any"),
    ...generateKeys(2000, 9),
    ...adversarialKeys,
    "\ud800",
    "\udc00",
    "\ud800\ud800",
    "\udc00\ud800",
    "\ud800\udc00",
    "\u{10FFFF}\udbff",
    "\ufffd",
    "\u0000",
  ];
  assert.ok(strings.some((s) => !s.isWellFormed()));
  for (const s of strings) assert.equal(decodeKey(encodeKey(s)), s, show(s));
  // From a view into a larger buffer too
  const bytes = Buffer.concat([Buffer.from("xx"), encodeKey("a\ud800b"), Buffer.from("yy")]);
  assert.equal(decodeKey(bytes.subarray(2, bytes.length - 2)), "a\ud800b");
  assert.equal(decodeKey(new Uint8Array(bytes.buffer, bytes.byteOffset + 2, bytes.length - 4)), "a\ud800b");
});

test("cursors: base64 of the key, round-tripping every key", () => {
  assert.equal(encodeCursor("key"), Buffer.from("key").toString("base64"));
  assert.equal(encodeCursor("\u{1F600}/\u00e9"), Buffer.from("\u{1F600}/\u00e9").toString("base64"));
  assert.equal(decodeCursor(Buffer.from("a/b").toString("base64")), "a/b");
  for (const s of [...randomStrings(2000, 10, "any"), ...adversarialKeys]) {
    const cursor = encodeCursor(s);
    assert.match(cursor, /^[A-Za-z0-9+/]*={0,2}$/);
    assert.equal(decodeCursor(cursor), s, show(s));
  }
});
