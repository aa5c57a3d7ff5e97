// The live Durable Objects of one host: one state and one storage per id,
// across every worker of the host and every plugin instance (a plugin
// re-created by an options change finds the objects of its predecessor).
import { RegistryKey, type RegistryEntry } from "../../shared/registry.js";
import { DurableObjectId, type DurableObjectState, kObjectName } from "./namespace.js";
import type { DurableObjectStorage } from "./storage.js";

/** `<binding>:<hex id>`: also the storage namespace of the object */
export function objectKey(id: DurableObjectId): string {
  return `${id[kObjectName]}:${id.toString()}`;
}

export function idFromObjectKey(key: string): DurableObjectId {
  const colon = key.lastIndexOf(":");
  return new DurableObjectId(key.substring(0, colon), key.substring(colon + 1));
}

export class DurableObjectRegistry implements RegistryEntry {
  readonly #states = new Map<string, DurableObjectState>();
  readonly #storages = new Map<string, DurableObjectStorage>();

  getState(key: string): DurableObjectState | undefined {
    return this.#states.get(key);
  }

  setState(key: string, state: DurableObjectState): void {
    this.#states.set(key, state);
  }

  /** Forgets the state of `key`, if it still is `state` (when given) */
  deleteState(key: string, state?: DurableObjectState): void {
    if (state === undefined || this.#states.get(key) === state) this.#states.delete(key);
  }

  /** Ids of the objects bound as `objectName` constructed since the last reset */
  ids(objectName: string): DurableObjectId[] {
    const ids: DurableObjectId[] = [];
    for (const key of this.#states.keys()) {
      const id = idFromObjectKey(key);
      if (id[kObjectName] === objectName) ids.push(id);
    }
    return ids;
  }

  getStorage(key: string): DurableObjectStorage | undefined {
    return this.#storages.get(key);
  }

  setStorage(key: string, storage: DurableObjectStorage): void {
    this.#storages.set(key, storage);
  }

  /** Forgets the storage of `key`, if it still is `storage` */
  deleteStorage(key: string, storage: DurableObjectStorage): void {
    if (this.#storages.get(key) === storage) this.#storages.delete(key);
  }

  storages(): IterableIterator<DurableObjectStorage> {
    return this.#storages.values();
  }

  reset(): void {
    this.#states.clear();
    this.#storages.clear();
  }
}

/** Where the host keeps the Durable Objects registry */
export const DURABLE_OBJECTS = new RegistryKey("durable-objects", () => new DurableObjectRegistry());
