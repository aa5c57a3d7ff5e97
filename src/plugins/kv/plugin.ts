import path from "node:path";
import { resolveStoragePersist } from "../../shared/data.js";
import {
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../../shared/plugin.js";
import type { StorageFactory } from "../../shared/storage.js";
import { type Miniflare2Layout, migrateMiniflare2 } from "../../storage/migrate.js";
import { isDurableObjectsFolder, topLevelNamespaces } from "../../storage/miniflare2.js";
import { KVNamespace } from "./namespace.js";

export interface KVOptions {
  kvNamespaces?: string[] | Record<string, string>;
  kvPersist?: boolean | string;
}

/** Folder for `kvPersist: true`, relative to the working directory (as Miniflare 2's) */
const DEFAULT_PERSIST_PATH = path.join(".mf", "kv");

/**
 * Miniflare 2 kept each namespace in a folder of its name (beside Durable
 * Objects' folders, when both persisted to one folder)
 */
export const KV_MINIFLARE2_LAYOUT: Miniflare2Layout = {
  what: "KV",
  unit: ["namespace", "namespaces"],
  async findNamespaces(folder) {
    const found = [];
    for (const namespace of await topLevelNamespaces(folder)) {
      if (!(await isDurableObjectsFolder(namespace.dir))) found.push(namespace);
    }
    return found;
  },
};

const redisURL = /^rediss?:\/\//;

export class KVPlugin extends Plugin<KVOptions> implements KVOptions {
  @Option({
    type: OptionType.ARRAY,
    name: "kv",
    alias: "k",
    description: "KV namespace to bind (repeatable)",
    logName: "KV Namespaces",
    logValue: (namespaces: KVOptions["kvNamespaces"]) =>
      [...namespaceIds(namespaces)].map(([binding, id]) => (binding === id ? id : `${binding} (${id})`)).join(", "),
    fromWrangler: ({ kv_namespaces }) => kv_namespaces?.map(({ binding }) => binding),
  })
  kvNamespaces?: string[] | Record<string, string>;

  @Option({
    type: OptionType.BOOLEAN_STRING,
    description: "Keep KV data between runs (in .mf/kv, the given folder, or a redis:// URL)",
    logName: "KV Persistence",
    fromWrangler: ({ miniflare }) => miniflare?.kv_persist,
  })
  kvPersist?: boolean | string;

  readonly #persist?: boolean | string;

  constructor(ctx: PluginContext, options?: KVOptions) {
    super(ctx);
    this.assignOptions(options);
    this.#persist =
      this.kvPersist === true
        ? path.resolve(DEFAULT_PERSIST_PATH)
        : resolveStoragePersist(ctx.rootPath, this.kvPersist);
  }

  /**
   * A namespace over this plugin's storage (never gated unless asked).
   * `namespace` is a namespace's name, or a binding of `kvNamespaces`'s
   * object form, which names the namespace it binds.
   */
  getNamespace(storage: StorageFactory, namespace: string, blockGlobalAsyncIO = false): KVNamespace {
    const id = namespaceIds(this.kvNamespaces).get(namespace) ?? namespace;
    return new KVNamespace(storage.storage(id, this.#persist), { blockGlobalAsyncIO });
  }

  async setup(storageFactory: StorageFactory): Promise<SetupResult> {
    // Data Miniflare 2 persisted to this folder first (once)
    const persist = this.#persist;
    if (typeof persist === "string" && !redisURL.test(persist)) {
      await migrateMiniflare2(storageFactory, {
        layout: KV_MINIFLARE2_LAYOUT,
        persist,
        sources: [persist],
        log: this.ctx.log,
        clock: this.ctx.clock,
      });
    }
    const blockGlobalAsyncIO = !this.ctx.globalAsyncIO;
    const bindings: Record<string, KVNamespace> = {};
    for (const [binding, id] of namespaceIds(this.kvNamespaces)) {
      bindings[binding] = new KVNamespace(storageFactory.storage(id, this.#persist), { blockGlobalAsyncIO });
    }
    return { bindings };
  }
}

/**
 * Bindings to the namespaces they bind: a list binds each namespace under its
 * own name; an object maps binding names to namespace names, so two workers
 * can share a namespace under different bindings
 */
function namespaceIds(namespaces: KVOptions["kvNamespaces"]): Map<string, string> {
  if (namespaces === undefined) return new Map();
  if (Array.isArray(namespaces)) return new Map(namespaces.map((name) => [name, name]));
  return new Map(Object.entries(namespaces));
}
