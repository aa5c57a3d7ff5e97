import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { test } from "node:test";
import { RequestContext } from "../../src/shared/context.js";
import { CryptoKey, DigestStream, createCrypto } from "../../src/standards/crypto.js";
import { DOMException } from "../../src/standards/domexception.js";
import { IN_REQUEST_MESSAGE, NON_ARRAY_CHUNK_MESSAGE, STRING_CHUNK_MESSAGE } from "../helpers/http.js";

const crypto = createCrypto();
const encoder = new TextEncoder();

// Checks error is the DOMException thrown for unsupported algorithms
function isNotSupported(error: unknown): true {
  assert(error instanceof DOMException);
  assert.equal(error.name, "NotSupportedError");
  assert.equal(error.message, "Unrecognized name.");
  return true;
}

const digestAlgorithms: AlgorithmIdentifier[] = [
  "SHA-1",
  "Sha-256",
  "sha-384",
  "SHA-512",
  "mD5",
  { name: "ShA-1" },
];
for (const algorithm of digestAlgorithms) {
  test(`DigestStream: computes ${JSON.stringify(algorithm)} digest`, async () => {
    const stream = new DigestStream(algorithm);
    const writer = stream.getWriter();
    await writer.write(encoder.encode("a"));
    await writer.write(encoder.encode("bb").buffer);
    await writer.write(new DataView(encoder.encode("ccc").buffer));
    await writer.close();
    const digest = await stream.digest;
    assert(digest instanceof ArrayBuffer);
    const expected = await crypto.subtle.digest(algorithm, encoder.encode("abbccc"));
    assert.deepEqual(digest, expected);
  });
}
test("DigestStream: throws on unsupported algorithm", () => {
  // md4 is supported by Node's createHash(), but not by Workers
  for (const algorithm of ["md4", { name: "sha-224" }, {}, undefined]) {
    assert.throws(() => new DigestStream(algorithm as AlgorithmIdentifier), isNotSupported);
  }
});
const invalidChunkCases: [string, unknown, string][] = [
  ["string", "a", STRING_CHUNK_MESSAGE],
  ["non-ArrayBuffer/ArrayBufferView", 42, NON_ARRAY_CHUNK_MESSAGE],
];
for (const [title, chunk, message] of invalidChunkCases) {
  test(`DigestStream: throws on ${title} chunks`, async () => {
    const writer = new DigestStream("sha-1").getWriter();
    await assert.rejects(writer.write(chunk as BufferSource), { name: "TypeError", message });
  });
}
test("DigestStream: is a WritableStream", () => {
  assert(new DigestStream("sha-256") instanceof WritableStream);
});

test("crypto: provides DigestStream", () => {
  assert.equal(crypto.DigestStream, DigestStream);
});

const md5Inputs: [string, BufferSource][] = [
  ["Uint8Array", encoder.encode("test")],
  ["DataView", new DataView(encoder.encode("test").buffer)],
  ["ArrayBuffer", encoder.encode("test").buffer],
  ["offset view", new Uint8Array(encoder.encode("xtestx").buffer, 1, 4)],
];
for (const [title, data] of md5Inputs) {
  test(`crypto: computes md5 digest of ${title}`, async () => {
    const digest = await crypto.subtle.digest("md5", data);
    assert(digest instanceof ArrayBuffer);
    assert.equal(Buffer.from(digest).toString("hex"), "098f6bcd4621d373cade4e832627b4f6");
    const objectDigest = await crypto.subtle.digest({ name: "MD5" }, data);
    assert.deepEqual(objectDigest, digest);
  });
}
test("crypto: computes other digest", async () => {
  const digest = await crypto.subtle.digest("sha-1", encoder.encode("test"));
  assert.equal(
    Buffer.from(digest).toString("hex"),
    "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
  );
});

const NODE_ED25519 = { name: "NODE-ED25519", namedCurve: "NODE-ED25519" };
test("crypto: generateKey supports NODE-ED25519 algorithm", async () => {
  const pair = (await crypto.subtle.generateKey(NODE_ED25519, false, ["sign", "verify"])) as CryptoKeyPair;
  assert(pair.privateKey instanceof CryptoKey);
  assert.equal(pair.publicKey.algorithm.name, "Ed25519");
  assert.equal(pair.privateKey.algorithm.name, "Ed25519");
});
test("crypto: importKey supports NODE-ED25519 public keys", async () => {
  const publicKey = Buffer.from(
    "953e73cb91a2494a33cd7180f05d5bbe6b5ca43cc66eb93ca38c6fc83cb18f29",
    "hex"
  );
  const key = await crypto.subtle.importKey("raw", publicKey, NODE_ED25519, true, ["verify"]);
  assert.equal(key.type, "public");
  assert.equal(key.algorithm.name, "Ed25519");
});
test("crypto: importKey fails for NODE-ED25519 private keys", async () => {
  const privateKey = Buffer.from(
    "f0d3c325a99ef50181faa238e07224ec9fee292e7ebf6585560bab64654ec620" +
      "9c6afa31187898a43f7ab18c3552c2cd349e912c16c803a2a6ccbd546896fe8e",
    "hex"
  );
  await assert.rejects(
    crypto.subtle.importKey("raw", privateKey, NODE_ED25519, false, ["sign"])
  );
});
test("crypto: exportKey fails for NODE-ED25519 private keys", async () => {
  const { privateKey } = (await crypto.subtle.generateKey(NODE_ED25519, false, [
    "sign",
  ])) as CryptoKeyPair;
  assert.notEqual(privateKey, null);
  await assert.rejects(crypto.subtle.exportKey("raw", privateKey));
});
test("crypto: signs and verifies with NODE-ED25519 and Ed25519 interchangeably", async () => {
  const { privateKey, publicKey } = (await crypto.subtle.generateKey(NODE_ED25519, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const data = encoder.encode("message");
  const signature = await crypto.subtle.sign(NODE_ED25519, privateKey, data);
  assert.equal(signature.byteLength, 64);
  assert(await crypto.subtle.verify({ name: "Ed25519" }, publicKey, signature, data));
  assert(await crypto.subtle.verify(NODE_ED25519, publicKey, signature, data));
  assert(!(await crypto.subtle.verify(NODE_ED25519, publicKey, signature, encoder.encode("x"))));
  const raw = await crypto.subtle.exportKey("raw", publicKey);
  assert.equal((raw as ArrayBuffer).byteLength, 32);
});
test("crypto: rejects X448 and Ed448 algorithms", async () => {
  for (const name of ["X448", "Ed448"]) {
    const algorithm = { name, namedCurve: name };
    for (const promise of [
      crypto.subtle.generateKey(algorithm, false, ["sign"]),
      crypto.subtle.importKey("raw", new Uint8Array(57), algorithm, false, ["verify"]),
      crypto.subtle.sign(algorithm, {} as CryptoKey, new Uint8Array()),
      crypto.subtle.verify(algorithm, {} as CryptoKey, new Uint8Array(), new Uint8Array()),
    ]) {
      await assert.rejects(promise, isNotSupported);
    }
  }
});
test("crypto: subtle.timingSafeEqual compares buffers", () => {
  const subtle = crypto.subtle;
  assert.equal(subtle.timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(subtle.timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
  assert.throws(() => subtle.timingSafeEqual(new Uint8Array([1]), new Uint8Array([1, 2])), {
    code: "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH",
  });
});

// Checking other functions aren't broken by the proxies...

test("crypto: gets random values", () => {
  const array = new Uint8Array(8);
  assert.equal(crypto.getRandomValues(array), array);
  assert.notDeepEqual(array, new Uint8Array(8));
});
test("crypto: generates random UUID", () => {
  assert.match(crypto.randomUUID(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
test("crypto: generates aes key", async () => {
  const key = (await crypto.subtle.generateKey({ name: "aes-gcm", length: 256 }, true, [
    "encrypt",
    "decrypt",
  ])) as CryptoKey;
  const exported = (await crypto.subtle.exportKey("raw", key)) as ArrayBuffer;
  assert.equal(exported.byteLength, 32);
});
test("crypto: encrypts and decrypts", async () => {
  const key = (await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, [
    "encrypt",
    "decrypt",
  ])) as CryptoKey;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const encrypted = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, encoder.encode("hi"));
  const decrypted = await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, encrypted);
  assert.equal(new TextDecoder().decode(decrypted), "hi");
});
test("crypto: is a Crypto instance", () => {
  assert(crypto instanceof webcrypto.constructor);
  assert.equal(CryptoKey, globalThis.CryptoKey);
});

test("crypto: getRandomValues and generateKey throw outside request if blocked", async () => {
  const blocking = createCrypto(true);
  assert.throws(() => blocking.getRandomValues(new Uint8Array(8)), {
    name: "Error",
    message: IN_REQUEST_MESSAGE,
  });
  assert.throws(
    () => blocking.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"]),
    { name: "Error", message: IN_REQUEST_MESSAGE }
  );
  // Non-random functions are never blocked
  assert.equal(blocking.randomUUID().length, 36);
  await blocking.subtle.digest("SHA-256", new Uint8Array());
});
test("crypto: getRandomValues and generateKey allowed inside request if blocked", async () => {
  const blocking = createCrypto(true);
  await new RequestContext().runWith(async () => {
    blocking.getRandomValues(new Uint8Array(8));
    await blocking.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"]);
  });
});
