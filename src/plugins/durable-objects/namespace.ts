// Durable Object ids, namespaces, stubs and the per-object state.
import { createHash, webcrypto } from "node:crypto";
import type { Compatibility } from "../../shared/compat.js";
import {
  RequestContext,
  type UsageModel,
  getRequestContext,
  usageModelExternalSubrequestLimit,
} from "../../shared/context.js";
import type { Log } from "../../shared/log.js";
import { InputGate, OutputGate } from "../../shared/sync/gate.js";
import {
  Request,
  type RequestInfo,
  type RequestInit,
  Response,
  withImmutableHeaders,
  withInputGating,
} from "../../standards/http.js";
import { _buildUnknownProtocolWarning, _urlFromRequestInput } from "../../standards/fetch.js";
import { base } from "../../standards/http-base.js";
import { DurableObjectError } from "./errors.js";
import type { DurableObjectStorage } from "./storage.js";

const HEX_ID_REGEXP = /^[A-Fa-f0-9]{64}$/;
const JURISDICTIONS = ["eu", "fedramp"];
const MAX_CACHED_NAMED_IDS = 1024;

function hexEncode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

function validJurisdiction(jurisdiction: unknown): boolean {
  return jurisdiction === undefined || JURISDICTIONS.includes(jurisdiction as string);
}

export const kObjectName = Symbol("kObjectName");

export class DurableObjectId {
  readonly [kObjectName]: string;
  readonly #hexId: string;
  declare readonly name?: string;

  constructor(objectName: string, hexId: string, name?: string) {
    this[kObjectName] = objectName;
    this.#hexId = hexId;
    // Every id has the property, as in Miniflare 2: undefined unless the id
    // came from idFromName() (the id passed to an object has no name)
    Object.defineProperty(this, "name", { value: name, enumerable: true });
  }

  equals(other: DurableObjectId): boolean {
    if (!(other instanceof DurableObjectId)) return false;
    return this.#hexId === other.#hexId;
  }

  toString(): string {
    return this.#hexId;
  }
}

export const kInstance = Symbol("kInstance");
export const kFetch = Symbol("kFetch");
export const kAlarm = Symbol("kAlarm");
export const kRunWithGates = Symbol("kRunWithGates");
/** Set when the object must be thrown away (see DurableObjectState) */
export const kReset = Symbol("kReset");
/** Called (by the plugin) to forget a reset object */
export const kOnReset = Symbol("kOnReset");
/** Throws the object away: the next request constructs a new one */
export const kResetObject = Symbol("kResetObject");


export interface DurableObjectInstance {
  fetch?(request: Request): Response | Promise<Response>;
  alarm?(): unknown;
}

export class DurableObjectState {
  readonly id: DurableObjectId;
  readonly storage: DurableObjectStorage;
  readonly #inputGate = new InputGate();
  [kInstance]?: DurableObjectInstance;
  /** Set once the object is reset: why */
  [kReset]?: { cause: unknown };
  [kOnReset]?: () => void;

  constructor(id: DurableObjectId, storage: DurableObjectStorage) {
    this.id = id;
    this.storage = storage;
  }

  waitUntil(_promise: Promise<unknown>): void {
    // Durable Objects live on after a request: nothing to extend
  }

  /**
   * Delivers no other event to the object until `closure` settles. If it
   * throws, the object is reset, as in production: the next request gets a
   * freshly constructed instance.
   */
  blockConcurrencyWhile<T>(closure: () => Promise<T> | T): Promise<T> {
    const result = this.#inputGate.runWithClosed(async () => closure());
    result.catch((error) => this[kResetObject](error));
    return result;
  }

  [kResetObject](cause: unknown): void {
    if (this[kReset]) return;
    this[kReset] = { cause };
    this[kOnReset]?.();
  }

  [kRunWithGates]<T>(closure: () => Promise<T> | T): Promise<T> {
    const outputGate = new OutputGate();
    return outputGate.runWith(() =>
      this.#inputGate.runWith(() => {
        // Requests that waited on an object which was then reset fail with
        // the reason; later ones reach a freshly constructed object
        const reset = this[kReset];
        if (reset) throw reset.cause;
        return closure();
      })
    );
  }

  [kFetch](request: Request): Promise<Response> {
    return this[kRunWithGates](() => {
      const instance = this[kInstance];
      if (typeof instance?.fetch !== "function") {
        throw new DurableObjectError("ERR_NO_HANDLER", "No fetch handler defined in Durable Object");
      }
      return instance.fetch(request);
    });
  }

  [kAlarm](): Promise<unknown> {
    return this[kRunWithGates](async () => {
      // The alarm is spent once it runs: getAlarm() inside the handler is null
      await this.storage.deleteAlarm();
      const instance = this[kInstance];
      if (typeof instance?.alarm !== "function") {
        throw new DurableObjectError("ERR_NO_HANDLER", "No alarm handler defined in Durable Object");
      }
      return instance.alarm();
    });
  }
}

/** Finds (or constructs) the object with `id` */
export type DurableObjectFactory = (id: DurableObjectId) => Promise<DurableObjectState>;

export interface DurableObjectNamespaceContext {
  log: Log;
  compat: Compatibility;
  usageModel?: UsageModel;
}

export class DurableObjectStub {
  readonly id: DurableObjectId;
  readonly #factory: DurableObjectFactory;
  readonly #ctx?: DurableObjectNamespaceContext;

  constructor(factory: DurableObjectFactory, id: DurableObjectId, ctx?: DurableObjectNamespaceContext) {
    this.id = id;
    this.#factory = factory;
    this.#ctx = ctx;
  }

  get name(): string | undefined {
    return this.id.name;
  }

  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const ctx = this.#ctx;
    if (!ctx?.compat.isEnabled("durable_object_fetch_requires_full_url") && typeof input === "string") {
      // Relative URLs resolve against a placeholder host
      input = new URL(input, "https://fake-host");
    }
    const url = _urlFromRequestInput(input as RequestInfo);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      if (ctx?.compat.isEnabled("fetch_refuses_unknown_protocols")) {
        throw new TypeError(`Fetch API cannot load: ${url.toString()}`);
      }
      ctx?.log.warn(_buildUnknownProtocolWarning(url));
    }
    const request =
      input instanceof Request && init === undefined ? input : new Request(input as any, init);

    const parent = getRequestContext();
    parent?.incrementInternalSubrequests();
    const context = new RequestContext({
      requestDepth: (parent?.requestDepth ?? 0) + 1,
      pipelineDepth: 1,
      durableObject: true,
      externalSubrequestLimit: usageModelExternalSubrequestLimit(ctx?.usageModel),
    });
    const gated = withInputGating(withImmutableHeaders(request));
    const state = await this.#factory(this.id);
    const response: unknown = await context.runWith(() => state[kFetch](gated));
    parent?.advanceCurrentTime();
    if (!(response instanceof Response || response instanceof base().Response)) {
      throw new DurableObjectError(
        "ERR_RESPONSE_TYPE",
        "Durable Object fetch handler didn't respond with a Response object"
      );
    }
    return withImmutableHeaders(response as Response);
  }
}

/** A stub with Miniflare's non-standard `storage()`, for tests and scripts */
export class HostDurableObjectStub extends DurableObjectStub {
  readonly #getStorage: () => Promise<DurableObjectStorage>;

  constructor(
    factory: DurableObjectFactory,
    id: DurableObjectId,
    getStorage: () => Promise<DurableObjectStorage>,
    ctx?: DurableObjectNamespaceContext
  ) {
    super(factory, id, ctx);
    this.#getStorage = getStorage;
  }

  /** The object's transactional storage, as the object itself sees it */
  storage(): Promise<DurableObjectStorage> {
    return this.#getStorage();
  }
}

export class DurableObjectNamespace {
  readonly #objectName: string;
  readonly #factory: DurableObjectFactory;
  readonly #ctx?: DurableObjectNamespaceContext;
  readonly #objectNameHash: Uint8Array;
  readonly #objectNameHashHex: string;
  readonly #getStorage?: (id: DurableObjectId) => Promise<DurableObjectStorage>;
  /** name → hex id, for names seen recently */
  readonly #namedIds = new Map<string, string>();

  constructor(
    objectName: string,
    factory: DurableObjectFactory,
    ctx?: DurableObjectNamespaceContext,
    getStorage?: (id: DurableObjectId) => Promise<DurableObjectStorage>
  ) {
    this.#objectName = objectName;
    this.#factory = factory;
    this.#ctx = ctx;
    this.#getStorage = getStorage;
    // Every id of this namespace ends with these 8 bytes
    this.#objectNameHash = createHash("sha256").update(objectName).digest().subarray(0, 8);
    this.#objectNameHashHex = hexEncode(this.#objectNameHash);
  }

  jurisdiction(name: string): DurableObjectNamespace {
    if (!validJurisdiction(name)) {
      throw new TypeError(`jurisdiction called with an unsupported jurisdiction: "${name}"`);
    }
    return this;
  }

  newUniqueId(options?: { jurisdiction?: string }): DurableObjectId {
    if (!validJurisdiction(options?.jurisdiction)) {
      throw new TypeError(
        `newUniqueId called with an unsupported jurisdiction: "${options?.jurisdiction}"`
      );
    }
    // 0 | 8 bytes of time | 15 random bytes | 8 bytes of the class hash
    const id = new Uint8Array(32);
    new DataView(id.buffer).setBigUint64(1, BigInt(Date.now()));
    webcrypto.getRandomValues(id.subarray(9, 24));
    id.set(this.#objectNameHash, 24);
    return new DurableObjectId(this.#objectName, hexEncode(id));
  }

  idFromName(name: string): DurableObjectId {
    name = String(name);
    let hexId = this.#namedIds.get(name);
    if (hexId === undefined) {
      const id = createHash("sha256").update(this.#objectName).update(name).digest();
      // Named ids have the top bit set, so never equal a unique id
      id[0] |= 0b1000_0000;
      id.set(this.#objectNameHash, 24);
      hexId = hexEncode(id);
      // Workers tend to ask for the same few names over and over
      if (this.#namedIds.size >= MAX_CACHED_NAMED_IDS) this.#namedIds.clear();
      this.#namedIds.set(name, hexId);
    }
    return new DurableObjectId(this.#objectName, hexId, name);
  }

  idFromString(hexId: string): DurableObjectId {
    if (!HEX_ID_REGEXP.test(hexId)) {
      throw new TypeError("Invalid Durable Object ID. Durable Object IDs must be 64 hex digits.");
    }
    // Compared as written, as Miniflare 2 does: an id in upper case is foreign
    if (!hexId.endsWith(this.#objectNameHashHex)) {
      throw new TypeError(
        "Invalid Durable Object ID. The ID does not match this Durable Object class."
      );
    }
    return new DurableObjectId(this.#objectName, hexId.toLowerCase());
  }

  get(id: DurableObjectId): DurableObjectStub {
    if (
      !(id instanceof DurableObjectId) ||
      id[kObjectName] !== this.#objectName ||
      !id.toString().endsWith(this.#objectNameHashHex)
    ) {
      throw new TypeError("ID is not for this Durable Object class.");
    }
    const getStorage = this.#getStorage;
    if (getStorage !== undefined) {
      return new HostDurableObjectStub(this.#factory, id, () => getStorage(id), this.#ctx);
    }
    return new DurableObjectStub(this.#factory, id, this.#ctx);
  }
}
