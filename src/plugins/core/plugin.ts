import fs from "node:fs/promises";
import path from "node:path";
import {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TextDecoderStream,
  TextEncoderStream,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
} from "node:stream/web";
import type { UsageModel } from "../../shared/context.js";
import { globsToMatcher } from "../../shared/data.js";
import {
  logPathOption,
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../../shared/plugin.js";
import {
  type AdditionalModules,
  type Context,
  type ModuleRule,
  type ProcessedModuleRule,
  STRING_SCRIPT_PATH,
} from "../../shared/runner.js";
import {
  CompressionStreamImpl,
  CryptoKey,
  createCompatFetch,
  createCrypto,
  createDate,
  createTimer,
  assertsInRequest,
  DecompressionStreamImpl,
  DOMException,
  FetchEvent,
  FixedLengthStream,
  IdentityTransformStream,
  Navigator,
  proxyDisableStreamConstructor,
  Request,
  Response,
  ScheduledEvent,
  Scheduler,
  WorkerGlobalScope,
  atob,
  btoa,
  createTransformStreamStandIn,
  withEnumerableGetters,
  withStringFormDataFiles,
} from "../../standards/index.js";
import { base } from "../../standards/http-base.js";
import { MiniflareCoreError } from "./errors.js";
import { mountOptions, routesFromWrangler } from "./routes.js";
import { URLPattern } from "./urlpattern.js";
import { createWorkerWebAssembly } from "./wasm.js";

export const DEFAULT_MODULE_RULES: ModuleRule[] = [
  { type: "ESModule", include: ["**/*.mjs"] },
  { type: "CommonJS", include: ["**/*.js", "**/*.cjs"] },
];

export interface CoreOptions {
  script?: string;
  scriptPath?: string;
  wranglerConfigPath?: boolean | string;
  wranglerConfigEnv?: string;
  packagePath?: boolean | string;
  modules?: boolean;
  modulesRules?: ModuleRule[];
  compatibilityDate?: string;
  compatibilityFlags?: string[];
  usageModel?: UsageModel;
  upstream?: string;
  watch?: boolean;
  debug?: boolean;
  verbose?: boolean;
  updateCheck?: boolean;
  repl?: boolean;
  rootPath?: string;
  mounts?: Record<string, string | CoreOptions | Context>;
  /**
   * Several workers at one level (a later Miniflare's form): the first is
   * the entry point, the others are reached by name or route. Top-level
   * options are shared (see core/mounts.ts's expandWorkersOption).
   */
  workers?: (CoreOptions | Context)[];
  name?: string;
  routes?: string[];
  logUnhandledRejections?: boolean;
  fetchMock?: unknown;
  globalAsyncIO?: boolean;
  globalTimers?: boolean;
  globalRandom?: boolean;
  actualTime?: boolean;
  inaccurateCpu?: boolean;
}

// Wraps a Request/Response class so instances parse form-data files as
// strings (formdata_parser_supports_files off) and/or have their getters as
// own properties (workers_api_getters_setters_on_prototype off)
function proxyBodyCompat<T extends object>(klass: T, stringFiles: boolean, ownGetters: boolean): T {
  if (!stringFiles && !ownGetters) return klass;
  const proxy: T = new Proxy(klass as any, {
    construct(target, args, newTarget) {
      // `new Proxy()` as new.target makes V8 build every instance the slow
      // way (a fresh hidden class each time, ~10x slower to construct and
      // use): construct the real class unless a subclass is being built
      let body = Reflect.construct(target, args, newTarget === proxy ? target : newTarget) as any;
      if (stringFiles) body = withStringFormDataFiles(body);
      if (ownGetters) body = withEnumerableGetters(body);
      return body;
    },
  });
  return proxy;
}

export class CorePlugin extends Plugin<CoreOptions> implements CoreOptions {
  @Option({ type: OptionType.NONE, logValue: () => STRING_SCRIPT_PATH })
  script?: string;

  @Option({
    type: OptionType.STRING_POSITIONAL,
    name: "script",
    fromWrangler: ({ build }, configDir) =>
      build?.upload?.main
        ? path.resolve(configDir, build.upload.dir ?? "dist", build.upload.main)
        : undefined,
  })
  scriptPath?: string;

  @Option({
    type: OptionType.STRING,
    name: "wrangler-config",
    alias: "c",
    description: "wrangler.toml to read options from",
    logValue: logPathOption("wrangler.toml"),
  })
  wranglerConfigPath?: boolean | string;

  @Option({
    type: OptionType.STRING,
    name: "wrangler-env",
    description: "[env.NAME] section of wrangler.toml to apply",
    logName: "Wrangler Environment",
  })
  wranglerConfigEnv?: string;

  @Option({
    type: OptionType.STRING,
    name: "package",
    description: "package.json to find the script in",
    logValue: logPathOption("package.json"),
  })
  packagePath?: boolean | string;

  @Option({
    type: OptionType.BOOLEAN,
    alias: "m",
    description: "Run the script as ES modules",
    fromWrangler: ({ build }) =>
      build?.upload?.format ? build.upload.format === "modules" : undefined,
  })
  modules?: boolean;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "TYPE=GLOB",
    description: "Module type for files matching a glob",
    logValue: (rules: ModuleRule[]) =>
      rules.map((rule) => `{${rule.type}: ${rule.include.join(", ")}}`).join(", "),
    fromEntries: (entries) =>
      entries.map(([type, include]) => ({
        type: type as ModuleRule["type"],
        include: [include],
        fallthrough: true,
      })),
    fromWrangler: ({ build }) =>
      build?.upload?.rules?.map(({ type, globs, fallthrough }) => ({
        type,
        include: globs,
        fallthrough,
      })),
  })
  modulesRules?: ModuleRule[];

  @Option({
    type: OptionType.STRING,
    name: "compat-date",
    description: "Compatibility date of the Workers runtime to emulate",
    fromWrangler: ({ compatibility_date }) => compatibility_date,
  })
  compatibilityDate?: string;

  @Option({
    type: OptionType.ARRAY,
    name: "compat-flag",
    description: "Compatibility flag to turn on or off",
    fromWrangler: ({ compatibility_flags }) => compatibility_flags,
  })
  compatibilityFlags?: string[];

  @Option({
    type: OptionType.STRING,
    name: "usage-model",
    description: "bundled (default) or unbound: sets the subrequest limit",
    fromWrangler: ({ usage_model }) => usage_model,
  })
  usageModel?: UsageModel;

  @Option({
    type: OptionType.STRING,
    alias: "u",
    description: "Origin that requests are sent on to",
    fromWrangler: ({ miniflare }) => miniflare?.upstream,
  })
  upstream?: string;

  @Option({
    type: OptionType.BOOLEAN,
    alias: "w",
    description: "Reload when files change",
    fromWrangler: ({ miniflare }) => {
      if (miniflare?.watch !== undefined) return miniflare.watch;
      if (miniflare?.live_reload) return true;
    },
  })
  watch?: boolean;

  @Option({ type: OptionType.BOOLEAN, alias: "d", description: "Log debug messages" })
  debug?: boolean;

  @Option({ type: OptionType.BOOLEAN, alias: "V", description: "Log verbose messages" })
  verbose?: boolean;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Check for a newer version at most once a day (on by default)",
    negatable: true,
    fromWrangler: ({ miniflare }) => miniflare?.update_check,
  })
  updateCheck?: boolean;

  @Option({ type: OptionType.BOOLEAN, logName: "REPL", description: "Start a REPL in the worker's global scope" })
  repl?: boolean;

  @Option({
    type: OptionType.STRING,
    name: "root",
    description: "Folder other paths resolve against",
  })
  rootPath?: string;

  @Option({
    type: OptionType.OBJECT,
    typeFormat: "NAME=PATH[@ENV]",
    description: "Run another worker, configured from a folder, beside this one",
    fromEntries: (entries) => Object.fromEntries(entries.map(([name, pathEnv]) => [name, mountOptions(pathEnv)])),
    fromWrangler: ({ miniflare }, configDir) =>
      miniflare?.mounts &&
      Object.fromEntries(
        Object.entries(miniflare.mounts).map(([name, pathEnv]) => [name, mountOptions(pathEnv, configDir)])
      ),
  })
  mounts?: Record<string, string | CoreOptions | Context>;

  @Option({
    type: OptionType.STRING,
    description: "This worker's service name (mounts and routes refer to it)",
    fromWrangler: ({ name }) => name,
  })
  name?: string;

  @Option({
    type: OptionType.ARRAY,
    description: "Route whose requests this worker handles",
    fromWrangler: (config) => routesFromWrangler(config),
  })
  routes?: string[];

  @Option({ type: OptionType.NONE })
  logUnhandledRejections?: boolean;

  @Option({ type: OptionType.NONE })
  fetchMock?: unknown;

  @Option({
    type: OptionType.BOOLEAN,
    name: "global-async-io",
    description: "Allow fetch and other I/O outside handlers",
    logName: "Allow Global Async I/O",
    fromWrangler: ({ miniflare }) => miniflare?.global_async_io,
  })
  globalAsyncIO?: boolean;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Allow timers outside handlers",
    logName: "Allow Global Timers",
    fromWrangler: ({ miniflare }) => miniflare?.global_timers,
  })
  globalTimers?: boolean;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Allow crypto random values outside handlers",
    logName: "Allow Global Secure Random",
    fromWrangler: ({ miniflare }) => miniflare?.global_random,
  })
  globalRandom?: boolean;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Don't freeze Date during requests",
    fromWrangler: ({ miniflare }) => miniflare?.actual_time,
  })
  actualTime?: boolean;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Log rough CPU times of requests",
    logName: "Inaccurate CPU Time Measurements",
    fromWrangler: ({ miniflare }) => miniflare?.inaccurate_cpu,
  })
  inaccurateCpu?: boolean;

  readonly processedModuleRules: ProcessedModuleRule[] = [];
  readonly upstreamURL?: URL;
  readonly #globals: Context;

  constructor(ctx: PluginContext, options?: CoreOptions) {
    super(ctx);
    this.assignOptions(options);

    if (this.upstream !== undefined) {
      try {
        this.upstreamURL = new URL(this.upstream);
      } catch {
        throw new MiniflareCoreError(
          "ERR_INVALID_UPSTREAM",
          `Invalid upstream URL: "${this.upstream}". Make sure you've included the protocol.`
        );
      }
    }

    if (this.mounts && Object.keys(this.mounts).length > 0) {
      ctx.log.warn("Mounts are experimental. There may be breaking changes in the future.");
    }

    if (this.inaccurateCpu) {
      ctx.log.warn(
        "CPU time measurements are experimental, highly inaccurate and not representative of deployed worker performance.\nThey should only be used for relative comparisons and may be removed in the future."
      );
    }

    this.#globals = this.#buildGlobals(ctx);
    if (this.modules) this.#processModuleRules();
  }

  #buildGlobals(ctx: PluginContext): Context {
    const extraGlobals: Context = {};

    const stringFiles = !ctx.compat.isEnabled("formdata_parser_supports_files");
    const ownGetters = !ctx.compat.isEnabled("workers_api_getters_setters_on_prototype");
    const CompatRequest = proxyBodyCompat(Request, stringFiles, ownGetters);
    const CompatResponse = proxyBodyCompat(Response, stringFiles, ownGetters);

    if (ctx.compat.isEnabled("global_navigator")) {
      extraGlobals.navigator = new Navigator();
      extraGlobals.Navigator = Navigator;
    }

    const streamConstructors = ctx.compat.isEnabled("streams_enable_constructors");
    const transformConstructor = ctx.compat.isEnabled(
      "transformstream_enable_standard_constructor"
    );
    let CompatReadableStream: unknown = ReadableStream;
    let CompatWritableStream: unknown = WritableStream;
    let CompatTransformStream: unknown = TransformStream;
    if (!streamConstructors) {
      CompatReadableStream = proxyDisableStreamConstructor(ReadableStream);
      CompatWritableStream = proxyDisableStreamConstructor(WritableStream);
      if (transformConstructor) {
        CompatTransformStream = proxyDisableStreamConstructor(TransformStream);
      }
    }
    if (!transformConstructor) {
      CompatTransformStream = createTransformStreamStandIn(ctx.log);
    }
    if (streamConstructors) {
      extraGlobals.ReadableByteStreamController = ReadableByteStreamController;
      extraGlobals.ReadableStreamBYOBRequest = ReadableStreamBYOBRequest;
      extraGlobals.ReadableStreamDefaultController = ReadableStreamDefaultController;
      extraGlobals.WritableStreamDefaultController = WritableStreamDefaultController;
      if (transformConstructor) {
        extraGlobals.TransformStreamDefaultController = TransformStreamDefaultController;
      }
    }

    const blockGlobalTimers = !this.globalTimers;
    const { Headers, FormData, File } = base();
    return {
      console,
      setTimeout: createTimer(setTimeout, blockGlobalTimers),
      setInterval: createTimer(setInterval, blockGlobalTimers),
      clearTimeout: assertsInRequest(clearTimeout, blockGlobalTimers),
      clearInterval: assertsInRequest(clearInterval, blockGlobalTimers),
      queueMicrotask,
      scheduler: new Scheduler(blockGlobalTimers),
      atob,
      btoa,
      Math,
      crypto: createCrypto(!this.globalRandom),
      CryptoKey,
      TextDecoder,
      TextEncoder,
      fetch: createCompatFetch({
        log: ctx.log,
        compat: ctx.compat,
        globalAsyncIO: this.globalAsyncIO,
        fetchMock: this.fetchMock,
      }),
      Headers,
      Request: CompatRequest,
      Response: CompatResponse,
      FormData,
      Blob,
      File,
      URL,
      URLSearchParams,
      URLPattern,
      ReadableStream: CompatReadableStream,
      WritableStream: CompatWritableStream,
      TransformStream: CompatTransformStream,
      ReadableStreamBYOBReader,
      ReadableStreamDefaultReader,
      WritableStreamDefaultWriter,
      ByteLengthQueuingStrategy,
      CountQueuingStrategy,
      IdentityTransformStream,
      FixedLengthStream,
      CompressionStream: CompressionStreamImpl,
      DecompressionStream: DecompressionStreamImpl,
      TextEncoderStream,
      TextDecoderStream,
      Event,
      EventTarget,
      AbortController,
      AbortSignal,
      FetchEvent,
      ScheduledEvent,
      DOMException,
      WorkerGlobalScope,
      structuredClone,
      Date: createDate(this.actualTime),
      ...extraGlobals,
      // Shared with the host realm, so typed arrays and wasm modules passed
      // in from outside (bindings, storage results) pass instanceof checks
      ArrayBuffer,
      Atomics,
      BigInt64Array,
      BigUint64Array,
      DataView,
      Float32Array,
      Float64Array,
      Int8Array,
      Int16Array,
      Int32Array,
      Map,
      Set,
      SharedArrayBuffer,
      Uint8Array,
      Uint8ClampedArray,
      Uint16Array,
      Uint32Array,
      WeakMap,
      WeakSet,
      WebAssembly: createWorkerWebAssembly(),
      MINIFLARE: true,
    };
  }

  // User rules come first; a rule without fallthrough finalises its type,
  // so later rules of that type (including the defaults) are ignored
  #processModuleRules(): void {
    const finalised = new Set<string>();
    for (const rule of [...(this.modulesRules ?? []), ...DEFAULT_MODULE_RULES]) {
      if (finalised.has(rule.type)) continue;
      this.processedModuleRules.push({
        type: rule.type,
        include: globsToMatcher(rule.include),
      });
      if (!rule.fallthrough) finalised.add(rule.type);
    }
  }

  async #additionalModules(): Promise<AdditionalModules | undefined> {
    // Loaded only when asked for: most workers don't use nodejs_compat
    if (!this.ctx.compat.isEnabled("nodejs_compat")) return;
    const { additionalNodeModules } = await import("./node/index.js");
    return additionalNodeModules(this.ctx.compat.isEnabled("experimental"));
  }

  async setup(): Promise<SetupResult> {
    const globals = this.#globals;
    const additionalModules = await this.#additionalModules();
    if (this.script !== undefined) {
      return {
        globals,
        additionalModules,
        script: { filePath: this.scriptPath ?? STRING_SCRIPT_PATH, code: this.script },
      };
    }

    const watch: string[] = [];
    let scriptPath = this.scriptPath;
    if (scriptPath === undefined) {
      let packagePath = this.packagePath === true ? "package.json" : this.packagePath;
      if (packagePath) {
        packagePath = path.resolve(this.ctx.rootPath, packagePath);
        try {
          const pkg = JSON.parse(await fs.readFile(packagePath, "utf8"));
          scriptPath = this.modules ? pkg.module : pkg.main;
          if (scriptPath) {
            scriptPath = path.resolve(path.dirname(packagePath), scriptPath);
          }
        } catch (e: any) {
          // A missing default package.json is fine, an explicit one isn't
          if (!(e.code === "ENOENT" && this.packagePath === true)) throw e;
        }
        watch.push(packagePath);
      }
    }

    if (scriptPath !== undefined) {
      scriptPath = path.resolve(this.ctx.rootPath, scriptPath);
      const code = await fs.readFile(scriptPath, "utf8");
      watch.push(scriptPath);
      return { globals, additionalModules, script: { filePath: scriptPath, code }, watch };
    }
    return { globals, additionalModules, watch };
  }
}
