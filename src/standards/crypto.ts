/**
 * The worker's `crypto` global: Node's Web Crypto, plus
 *
 * - `crypto.DigestStream`, a `WritableStream` hashing what is written to it;
 * - `MD5` in `subtle.digest()` and `subtle.timingSafeEqual()`;
 * - translation between the Workers-only `NODE-ED25519` algorithm and the
 *   standard `Ed25519` (in whichever direction the running Node needs);
 * - `X448`/`Ed448` rejected as in the Workers runtime;
 * - `getRandomValues()`/`subtle.generateKey()` only allowed inside a request
 *   unless `globalRandom` is set.
 */
import { createHash, timingSafeEqual, webcrypto } from "node:crypto";
import { viewToBuffer } from "../shared/data.js";
import { DOMException } from "./domexception.js";
import { bufferSourceToArray, buildNotBufferSourceError, isBufferSource } from "./http-base.js";
import { assertsInRequest } from "./timers.js";

// Node's Web Crypto types and the DOM library's are structurally the same,
// but TypeScript can't always tell: use the DOM ones throughout
const subtle = webcrypto.subtle as unknown as SubtleCrypto;

export const CryptoKey: typeof globalThis.CryptoKey =
  globalThis.CryptoKey ?? (webcrypto as unknown as { CryptoKey: typeof globalThis.CryptoKey }).CryptoKey;

const SUPPORTED_DIGESTS = ["sha-1", "sha-256", "sha-384", "sha-512", "md5"];

function unrecognizedName(): DOMException {
  return new DOMException("Unrecognized name.", "NotSupportedError");
}

function algorithmName(algorithm: unknown): string | undefined {
  if (typeof algorithm === "string") return algorithm;
  return (algorithm as { name?: string } | undefined)?.name;
}

/**
 * A `WritableStream` of bytes whose `digest` resolves to the hash of
 * everything written, once the stream is closed.
 */
export class DigestStream extends WritableStream<BufferSource> {
  readonly digest: Promise<ArrayBuffer>;

  constructor(algorithm: AlgorithmIdentifier) {
    const name = algorithmName(algorithm);
    if (!(name && SUPPORTED_DIGESTS.includes(name.toLowerCase()))) {
      throw unrecognizedName();
    }
    // "SHA-256" → "SHA256", as Node's hash names are case-insensitive
    const hash = createHash(name.replace("-", ""));
    let resolveDigest!: (digest: ArrayBuffer) => void;
    const digest = new Promise<ArrayBuffer>((resolve) => (resolveDigest = resolve));
    super({
      write(chunk) {
        if (!isBufferSource(chunk)) {
          throw new TypeError(buildNotBufferSourceError(chunk));
        }
        hash.update(bufferSourceToArray(chunk));
      },
      close() {
        resolveDigest(viewToBuffer(hash.digest()));
      },
    });
    this.digest = digest;
  }
}

// ---------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------

// Old Node versions only knew Ed25519 as "NODE-ED25519", as the Workers
// runtime did; newer ones only know the standard name. Detected on first use.
let modernEd25519: Promise<boolean> | undefined;
function usesModernEd25519(): Promise<boolean> {
  return (modernEd25519 ??= subtle
    .generateKey({ name: "Ed25519", namedCurve: "Ed25519" } as EcKeyGenParams, false, [
      "sign",
      "verify",
    ])
    .then(
      () => true,
      () => false
    ));
}

type Algorithm = AlgorithmIdentifier & { name?: string; namedCurve?: string };

function isNodeEd25519(algorithm: unknown): boolean {
  return (
    typeof algorithm === "object" &&
    algorithm !== null &&
    (algorithm as Algorithm).name === "NODE-ED25519" &&
    (algorithm as Algorithm).namedCurve === "NODE-ED25519"
  );
}

/** Translates a worker's algorithm to one the running Node understands */
async function toNodeAlgorithm<A>(algorithm: A): Promise<A> {
  if (typeof algorithm !== "object" || algorithm === null) return algorithm;
  const name = (algorithm as { name?: unknown }).name;
  if (name === "X448" || name === "Ed448") throw unrecognizedName();
  if (name === "Ed25519" && !(await usesModernEd25519())) {
    return { name: "NODE-ED25519", namedCurve: "NODE-ED25519" } as A;
  }
  if (isNodeEd25519(algorithm) && (await usesModernEd25519())) {
    return { name: "Ed25519", namedCurve: "Ed25519" } as A;
  }
  return algorithm;
}

/** Keys handed to the worker always use the Workers name, "Ed25519" */
function toWorkerKey(key: CryptoKey): CryptoKey {
  const algorithm = key.algorithm as { name: string };
  if (algorithm.name === "NODE-ED25519") algorithm.name = "Ed25519";
  return key;
}

/** Translates a worker's key back to one the running Node understands */
async function toNodeKey(key: CryptoKey): Promise<CryptoKey> {
  if (key.algorithm.name === "Ed25519" && !(await usesModernEd25519())) {
    return new Proxy(key, {
      get(target, property, receiver) {
        if (property === "algorithm") return { name: "NODE-ED25519" };
        return Reflect.get(target, property, receiver);
      },
    });
  }
  return key;
}

// ---------------------------------------------------------------------------
// SubtleCrypto overrides
// ---------------------------------------------------------------------------

function digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer> {
  if (algorithmName(algorithm)?.toLowerCase() === "md5") {
    const bytes = isBufferSource(data) ? bufferSourceToArray(data) : data;
    const hash = createHash("md5").update(bytes as Uint8Array);
    return Promise.resolve(viewToBuffer(hash.digest()));
  }
  return subtle.digest(algorithm, data);
}

async function generateKey(
  algorithm: AlgorithmIdentifier,
  extractable: boolean,
  keyUsages: KeyUsage[]
): Promise<CryptoKey | CryptoKeyPair> {
  const key = await subtle.generateKey(await toNodeAlgorithm(algorithm), extractable, keyUsages);
  if (key instanceof CryptoKey) return toWorkerKey(key);
  const pair = key as CryptoKeyPair;
  pair.publicKey = toWorkerKey(pair.publicKey);
  pair.privateKey = toWorkerKey(pair.privateKey);
  return pair;
}

async function importKey(
  format: KeyFormat,
  keyData: BufferSource | JsonWebKey,
  algorithm: AlgorithmIdentifier,
  extractable: boolean,
  keyUsages: KeyUsage[]
): Promise<CryptoKey> {
  // Raw NODE-ED25519 keys are always public keys in the Workers runtime
  const forcePublic = format === "raw" && isNodeEd25519(algorithm);
  let nodeAlgorithm = await toNodeAlgorithm(algorithm);
  if (forcePublic) nodeAlgorithm = { ...(nodeAlgorithm as object), public: true } as unknown as Algorithm;
  const key = await (
    subtle.importKey as (...args: unknown[]) => Promise<CryptoKey>
  )(format, keyData, nodeAlgorithm, extractable, keyUsages);
  return toWorkerKey(key);
}

async function exportKey(format: KeyFormat, key: CryptoKey): Promise<ArrayBuffer | JsonWebKey> {
  return subtle.exportKey(format, await toNodeKey(key));
}

async function sign(
  algorithm: AlgorithmIdentifier,
  key: CryptoKey,
  data: BufferSource
): Promise<ArrayBuffer> {
  return subtle.sign(await toNodeAlgorithm(algorithm), await toNodeKey(key), data);
}

async function verify(
  algorithm: AlgorithmIdentifier,
  key: CryptoKey,
  signature: BufferSource,
  data: BufferSource
): Promise<boolean> {
  return subtle.verify(
    await toNodeAlgorithm(algorithm),
    await toNodeKey(key),
    signature,
    data
  );
}

/** `SubtleCrypto` with the Workers-only `timingSafeEqual()` */
export interface WorkerSubtleCrypto extends SubtleCrypto {
  timingSafeEqual(a: ArrayBufferView, b: ArrayBufferView): boolean;
}

/** The worker's `crypto` global */
export interface WorkerCrypto extends Crypto {
  readonly subtle: WorkerSubtleCrypto;
  readonly DigestStream: typeof DigestStream;
}

// Binds methods looked up on a proxy to the real object, so brand checks pass
function bound(target: object, property: string | symbol): unknown {
  const value = Reflect.get(target, property, target);
  return typeof value === "function" ? value.bind(target) : value;
}

/**
 * Builds the worker's `crypto` object. With `blockGlobalRandom`,
 * `getRandomValues()` and `subtle.generateKey()` throw outside a request.
 */
export function createCrypto(blockGlobalRandom = false): WorkerCrypto {
  const getRandomValues = assertsInRequest(
    webcrypto.getRandomValues.bind(webcrypto),
    blockGlobalRandom
  );
  const assertingGenerateKey = assertsInRequest(generateKey, blockGlobalRandom);
  const overrides: Record<string | symbol, unknown> = {
    digest,
    generateKey: assertingGenerateKey,
    importKey,
    exportKey,
    sign,
    verify,
    timingSafeEqual,
  };
  const workerSubtle = new Proxy(subtle, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property];
      return bound(target, property);
    },
  });
  return new Proxy(webcrypto as unknown as Crypto, {
    get(target, property) {
      if (property === "getRandomValues") return getRandomValues;
      if (property === "subtle") return workerSubtle;
      if (property === "DigestStream") return DigestStream;
      return bound(target, property);
    },
  }) as WorkerCrypto;
}
