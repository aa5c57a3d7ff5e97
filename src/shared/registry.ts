/**
 * State one host keeps for all its workers, across their reloads: Durable
 * Object instances and their storages, today. Each kind is declared by the
 * plugin that owns it, as a typed key, so nothing is looked up by a string
 * and every value comes back with its owner's type. The host decides when
 * everything is dropped (`reset()`, when a new set of workers is committed).
 */
export interface RegistryEntry {
  /** Drops everything kept: the next use starts afresh */
  reset(): void;
}

/** One kind of host state: its owner creates the value on first use */
export class RegistryKey<Entry extends RegistryEntry> {
  constructor(
    readonly name: string,
    readonly create: () => Entry
  ) {}
}

export class HostRegistry {
  readonly #entries = new Map<RegistryKey<RegistryEntry>, RegistryEntry>();

  get<Entry extends RegistryEntry>(key: RegistryKey<Entry>): Entry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = key.create();
      this.#entries.set(key, entry);
    }
    // Only `key.create()` ever makes the entry stored under `key`
    return entry as Entry;
  }

  reset(): void {
    for (const entry of this.#entries.values()) entry.reset();
  }
}
