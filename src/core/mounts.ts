// Mounts: other workers run by the same host, each from its own options.
// The host (core.ts) turns the parent's `mounts` option into workers with
// these helpers, and hands out a `Mount` for `getMount(name)`.
import { resolveStoragePersist } from "../shared/data.js";
import type { Context } from "../shared/runner.js";
import { MiniflareCoreError } from "../plugins/core/errors.js";
import type { Request, Response } from "../standards/index.js";
import type { MiniflareCoreMount } from "../shared/plugin.js";
import type { CorePluginSignatures, PluginInstances, PreparedWorker, Worker } from "./worker.js";

/** The parent: the worker given by the top-level options (mounts are named) */
export const PARENT = "";

/**
 * What every mount inherits from the parent: `watch`, and where the parent
 * persists KV, cache and Durable Object data (resolved against the parent's
 * root, so a path means the same folder; `true` stays `true`, which each
 * mount resolves against its own root). Nothing else passes down.
 */
export function inheritedMountOptions(parent: Worker<any>, watching: boolean): Context {
  const inherited: Context = { watch: watching || undefined };
  const plugins = parent.plugins as Context;
  const rootPath = parent.rootPath ?? process.cwd();
  const persists: [key: string, value: unknown][] = [
    ["kvPersist", plugins.KVPlugin?.kvPersist],
    ["cachePersist", plugins.CachePlugin?.cachePersist],
    ["durableObjectsPersist", plugins.DurableObjectsPlugin?.durableObjectsPersist],
  ];
  for (const [key, value] of persists) {
    const resolved = resolveStoragePersist(rootPath, value as boolean | string | undefined);
    if (resolved !== undefined) inherited[key] = resolved;
  }
  return inherited;
}

/**
 * The options mount `name` runs with: a string is a folder configured by its
 * own wrangler.toml, package.json and .env (taken as given, "@" included:
 * only the CLI and wrangler.toml split off an environment); an object is
 * used as is. Both go over `inherited`.
 */
export function mountWorkerOptions(name: string, raw: unknown, inherited: Context, overrides?: Context): Context {
  if (name === "") throw new MiniflareCoreError("ERR_MOUNT_NO_NAME", "Mount name cannot be empty");
  let options: Context =
    typeof raw === "string"
      ? {
          ...inherited,
          rootPath: raw,
          packagePath: true,
          envPathDefaultFallback: true,
          wranglerConfigPath: true,
        }
      : { ...inherited, ...(raw as Context) };
  if (overrides !== undefined) options = { ...options, ...overrides };
  // Even `mounts: undefined` counts, as in Miniflare 2 (and `workers`, the
  // other form of several workers)
  if ("mounts" in options || "workers" in options) {
    throw new MiniflareCoreError("ERR_MOUNT_NESTED", "Nested mounts are unsupported");
  }
  return options;
}

/** A mount's `name` option, if set, must be the name it's mounted as */
export function checkMountName(name: string, worker: Worker<any>): void {
  const serviceName = worker.plugins.CorePlugin.name;
  if (serviceName !== undefined && serviceName !== name) {
    throw new MiniflareCoreError(
      "ERR_MOUNT_NAME_MISMATCH",
      `Mounted name "${name}" must match service name "${serviceName}"`
    );
  }
}

/** What a `Mount` asks of its host */
export interface MountHost {
  /** Resolves once the host's current initialisation is done */
  ready(): Promise<void>;
  dispatchFetch(worker: Worker<any>, input: RequestInfo | URL | Request, init?: RequestInit): Promise<Response>;
  dispatchScheduled(worker: Worker<any>, scheduledTime?: number, cron?: string): Promise<unknown[]>;
  /** Merges `options` over the mount's own and reloads every worker */
  setOptions(name: string, worker: Worker<any>, options: Context): Promise<void>;
  /** Reloads every worker */
  reload(): Promise<void>;
}

/**
 * One mounted worker, as `getMount(name)` returns it: the host's API aimed
 * at that worker alone (no routing). Its options and reloads go through the
 * host, which reloads every worker together; dispose() stays the host's.
 */
export class Mount<Plugins extends CorePluginSignatures = CorePluginSignatures> {
  readonly #host: MountHost;
  readonly #name: string;
  readonly #worker: Worker<Plugins>;

  constructor(host: MountHost, name: string, worker: Worker<Plugins>) {
    this.#host = host;
    this.#name = name;
    this.#worker = worker;
  }

  async getPlugins(): Promise<PluginInstances<Plugins>> {
    await this.#host.ready();
    return this.#worker.plugins;
  }

  async getGlobalScope(): Promise<Context> {
    await this.#host.ready();
    return this.#worker.globalScope!;
  }

  async getBindings(): Promise<Context> {
    await this.#host.ready();
    return this.#worker.bindings!;
  }

  async getModuleExports(): Promise<Context> {
    await this.#host.ready();
    return this.#worker.moduleExports!;
  }

  async dispatchFetch(input: RequestInfo | URL | Request, init?: RequestInit): Promise<Response> {
    await this.#host.ready();
    return this.#host.dispatchFetch(this.#worker, input, init);
  }

  async dispatchScheduled<WaitUntil extends any[] = unknown[]>(
    scheduledTime?: number,
    cron?: string
  ): Promise<WaitUntil> {
    await this.#host.ready();
    return this.#host.dispatchScheduled(this.#worker, scheduledTime, cron) as Promise<WaitUntil>;
  }

  /**
   * Merges `options` shallowly over this mount's options and reloads. They
   * hold until the parent's own options are set again.
   */
  setOptions(options: Context): Promise<void> {
    return this.#host.setOptions(this.#name, this.#worker, options);
  }

  /** Reloads every worker of the host, as a mount's reload did in Miniflare 2 */
  reload(): Promise<void> {
    return this.#host.reload();
  }
}

/**
 * The workers by name, as plugins see them: the parent if it has a `name`,
 * and every mount (Durable Objects' `script_name`, service bindings)
 */
export function namedWorkers(
  workers: ReadonlyMap<string, Worker<any>>,
  prepared: ReadonlyMap<Worker<any>, PreparedWorker>
): Map<string, MiniflareCoreMount> {
  const named = new Map<string, MiniflareCoreMount>();
  for (const [key, worker] of workers) {
    const name = key === PARENT ? worker.plugins.CorePlugin.name : key;
    if (name === undefined) continue;
    named.set(name, {
      moduleExports: prepared.get(worker)!.moduleExports,
      bindings: prepared.get(worker)!.bindings,
      dispatchFetch: (request) => worker.dispatchFetch(request, true),
      usageModel: worker.plugins.CorePlugin.usageModel,
    });
  }
  return named;
}
