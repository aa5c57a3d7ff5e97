import fs from "node:fs/promises";
import path from "node:path";
import {
  RequestContext,
  getRequestContext,
  usageModelExternalSubrequestLimit,
  type UsageModel,
} from "../../shared/context.js";
import { viewToBuffer } from "../../shared/data.js";
import type { Log } from "../../shared/log.js";
import {
  logPathOption,
  type MiniflareCoreMount,
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../../shared/plugin.js";
import type { Context } from "../../shared/runner.js";
import { Request, Response, withImmutableHeaders } from "../../standards/index.js";
import { MiniflareCoreError } from "../core/errors.js";

/** Key of the wrangler.toml [vars] option (not settable from the API) */
export const kWranglerBindings = Symbol("kWranglerBindings");

export type ServiceFetch = (request: Request) => Promise<Response>;

export interface ServiceBindingObject {
  service: string;
  environment?: string;
}

export type ServiceBindingOption = string | ServiceBindingObject | ServiceFetch;

export interface BindingsOptions {
  envPath?: boolean | string;
  [kWranglerBindings]?: Context;
  envPathDefaultFallback?: boolean;
  bindings?: Context;
  globals?: Context;
  wasmBindings?: Record<string, string>;
  textBlobBindings?: Record<string, string>;
  dataBlobBindings?: Record<string, string>;
  serviceBindings?: Record<string, ServiceBindingOption>;
}

interface ProcessedServiceBinding {
  name: string;
  service: string | ServiceFetch;
  environment: string;
}

type GetServiceFetch = (
  service: string
) => Promise<{ fetch: ServiceFetch; usageModel?: UsageModel }>;

/** A service binding: `env.SERVICE.fetch(...)` dispatches to another worker */
export class Fetcher {
  readonly #service: string | ServiceFetch;
  readonly #getServiceFetch: GetServiceFetch;
  readonly #defaultUsageModel?: UsageModel;

  constructor(
    service: string | ServiceFetch,
    getServiceFetch: GetServiceFetch,
    defaultUsageModel?: UsageModel
  ) {
    this.#service = service;
    this.#getServiceFetch = getServiceFetch;
    this.#defaultUsageModel = defaultUsageModel;
  }

  async fetch(input: any, init?: any): Promise<Response> {
    if (!(this instanceof Fetcher)) throw new TypeError("Illegal invocation");
    const request = new Request(input, init);
    let fetch: ServiceFetch;
    let usageModel = this.#defaultUsageModel;
    if (typeof this.#service === "function") {
      fetch = this.#service;
    } else {
      const target = await this.#getServiceFetch(this.#service);
      fetch = target.fetch;
      usageModel = target.usageModel;
    }
    // Service bindings keep the request depth but add to the pipeline depth
    const parent = getRequestContext();
    const context = new RequestContext({
      requestDepth: parent?.requestDepth ?? 1,
      pipelineDepth: (parent?.pipelineDepth ?? 0) + 1,
      externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
    });
    const response = await context.runWith(() => fetch(request));
    return withImmutableHeaders(response);
  }
}

function getServiceBindingName(
  log: Log,
  service: string,
  { name, binding }: { name?: string; binding?: string }
): string {
  if (name !== undefined && binding !== undefined && name !== binding) {
    throw new MiniflareCoreError(
      "ERR_SERVICE_NAME_MISMATCH",
      `Service "${service}" declared with \`name\`="${name}" and \`binding\`="${binding}".\nThe \`binding\` key should be used to define binding names.`
    );
  }
  if (name !== undefined) {
    log.warn(
      `Service "${service}" declared using deprecated syntax.\nThe \`name\` key should be removed and renamed to \`binding\`.`
    );
    return name;
  }
  if (binding !== undefined) return binding;
  throw new MiniflareCoreError(
    "ERR_SERVICE_NO_NAME",
    `Service "${service}" declared with neither \`binding\` nor \`name\` keys.\nThe \`binding\` key should be used to define binding names.`
  );
}

export class BindingsPlugin extends Plugin<BindingsOptions> implements BindingsOptions {
  @Option({
    type: OptionType.STRING,
    name: "env",
    alias: "e",
    description: ".env file to read secrets from",
    logValue: logPathOption(".env"),
    fromWrangler: ({ miniflare }) => miniflare?.env_path,
  })
  envPath?: boolean | string;

  @Option({
    type: OptionType.OBJECT,
    logName: "Wrangler Variables",
    fromWrangler: ({ vars }) => {
      if (!vars) return;
      // Wrangler stringifies every variable
      return Object.fromEntries(
        Object.entries(vars).map(([key, value]) => [key, String(value)])
      );
    },
  })
  [kWranglerBindings]?: Context;

  @Option({ type: OptionType.NONE })
  envPathDefaultFallback?: boolean;

  @Option({
    type: OptionType.OBJECT,
    alias: "b",
    description: "Binding to add to the environment",
    logName: "Custom Bindings",
  })
  bindings?: Context;

  @Option({
    type: OptionType.OBJECT,
    description: "Global to add to the global scope",
    logName: "Custom Globals",
    fromWrangler: ({ miniflare }) => miniflare?.globals,
  })
  globals?: Context;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=PATH",
    name: "wasm",
    description: "WebAssembly module file to bind",
    logName: "WASM Bindings",
    fromWrangler: ({ wasm_modules }) => wasm_modules,
  })
  wasmBindings?: Record<string, string>;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=PATH",
    name: "text-blob",
    description: "Text file to bind as a string",
    logName: "Text Blob Bindings",
    fromWrangler: ({ text_blobs }) => text_blobs,
  })
  textBlobBindings?: Record<string, string>;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=PATH",
    name: "data-blob",
    description: "File to bind as an ArrayBuffer",
    logName: "Data Blob Bindings",
    fromWrangler: ({ data_blobs }) => data_blobs,
  })
  dataBlobBindings?: Record<string, string>;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=MOUNT[@ENV]",
    name: "service",
    alias: "S",
    description: "Worker to bind as a service",
    fromEntries: (entries) =>
      Object.fromEntries(
        entries.map(([name, serviceEnvironment]) => {
          // The first "@" separates the service from its environment
          const at = serviceEnvironment.indexOf("@");
          if (at === -1) return [name, serviceEnvironment];
          return [
            name,
            {
              service: serviceEnvironment.substring(0, at),
              environment: serviceEnvironment.substring(at + 1),
            },
          ];
        })
      ),
    fromWrangler: ({ services, experimental_services }, _configDir, log) => {
      if (experimental_services) {
        log.warn(
          "Using the `experimental_services` key is deprecated. This key should be renamed to `services`."
        );
      }
      const all = [...(services ?? []), ...(experimental_services ?? [])];
      if (all.length === 0) return;
      const result: Record<string, ServiceBindingObject> = {};
      for (const { name, binding, service, environment } of all) {
        result[getServiceBindingName(log, service, { name, binding })] = {
          service,
          environment,
        };
      }
      return result;
    },
  })
  serviceBindings?: Record<string, ServiceBindingOption>;

  readonly #services: ProcessedServiceBinding[];
  #mountsReady?: Promise<void>;
  #resolveMountsReady?: () => void;
  #mounts?: Map<string, MiniflareCoreMount>;

  constructor(ctx: PluginContext, options?: BindingsOptions) {
    super(ctx);
    this.assignOptions(options);
    if (this.envPathDefaultFallback && this.envPath === undefined) {
      this.envPath = true;
    }
    this.#services = Object.entries(this.serviceBindings ?? {}).map(
      ([name, option]) => ({
        name,
        service: typeof option === "object" ? option.service : option,
        environment:
          (typeof option === "object" && option.environment) || "production",
      })
    );
    if (this.#services.length > 0) {
      ctx.log.warn(
        "Service bindings are experimental. There may be breaking changes in the future."
      );
    }
  }

  #getServiceFetch: GetServiceFetch = async (service) => {
    // Services resolve once every mount has reloaded
    await this.#mountsReady;
    const mount = this.#mounts?.get(service);
    if (!mount?.dispatchFetch) {
      throw new MiniflareCoreError(
        "ERR_SERVICE_NOT_MOUNTED",
        `Service "${service}" not found.\nMake sure "${service}" is mounted so Miniflare knows where to find it.`
      );
    }
    return { fetch: mount.dispatchFetch, usageModel: mount.usageModel };
  };

  async setup(): Promise<SetupResult> {
    const bindings: Context = {};
    const watch: string[] = [];
    // Priority (low to high): wrangler vars, .env, wasm, text, data,
    // services, custom bindings
    Object.assign(bindings, this[kWranglerBindings]);

    const envPath = this.envPath === true ? ".env" : this.envPath;
    if (envPath) {
      const resolved = path.resolve(this.ctx.rootPath, envPath);
      try {
        const contents = await fs.readFile(resolved, "utf8");
        const { default: dotenv } = await import("dotenv");
        Object.assign(bindings, dotenv.parse(contents));
      } catch (e: any) {
        // A missing default .env is fine, an explicit one isn't
        if (!(e.code === "ENOENT" && this.envPath === true)) throw e;
      }
      watch.push(resolved);
    }

    for (const [name, wasmPath] of Object.entries(this.wasmBindings ?? {})) {
      const resolved = path.resolve(this.ctx.rootPath, wasmPath);
      bindings[name] = new WebAssembly.Module(await fs.readFile(resolved));
      watch.push(resolved);
    }
    for (const [name, textPath] of Object.entries(this.textBlobBindings ?? {})) {
      const resolved = path.resolve(this.ctx.rootPath, textPath);
      bindings[name] = await fs.readFile(resolved, "utf8");
      watch.push(resolved);
    }
    for (const [name, dataPath] of Object.entries(this.dataBlobBindings ?? {})) {
      const resolved = path.resolve(this.ctx.rootPath, dataPath);
      bindings[name] = viewToBuffer(await fs.readFile(resolved));
      watch.push(resolved);
    }
    for (const { name, service } of this.#services) {
      bindings[name] = new Fetcher(service, this.#getServiceFetch, this.ctx.usageModel);
    }
    Object.assign(bindings, this.bindings);
    return { globals: this.globals, bindings, watch };
  }

  beforeReload(): void {
    this.#mounts = undefined;
    this.#mountsReady = new Promise((resolve) => (this.#resolveMountsReady = resolve));
  }

  verify(_moduleExports: Context, mounts: ReadonlyMap<string, MiniflareCoreMount>): void {
    for (const { name, service } of this.#services) {
      if (typeof service === "string" && !mounts.has(service)) {
        throw new MiniflareCoreError(
          "ERR_SERVICE_NOT_MOUNTED",
          `Service "${service}" for binding "${name}" not found.\nMake sure "${service}" is mounted so Miniflare knows where to find it.`
        );
      }
    }
  }

  reload(
    _bindings: Context,
    moduleExports: Context,
    mounts: Map<string, MiniflareCoreMount>
  ): void {
    try {
      this.verify(moduleExports, mounts);
      this.#mounts = mounts;
    } finally {
      // Calls waiting for the mounts fail rather than wait forever
      this.#resolveMountsReady?.();
    }
  }

  dispose(): void {
    this.beforeReload();
  }
}
