/**
 * Loads, links and evaluates a worker's module graph (see ./transform.ts for
 * how an ES module runs without vm.SourceTextModule).
 *
 * A static graph is handled in three phases, as the spec's Link() and
 * Evaluate() do: every module is read, parsed and compiled first (so a
 * missing file, an unmatched rule or a syntax error fails before any code
 * runs); then every module is instantiated and its imports resolved; then
 * bodies run, dependencies before dependents, in import order, once each.
 * Dynamic `import()` does the same for the modules it adds to the graph.
 *
 * Resolution, rules and errors follow Miniflare 2: specifiers resolve
 * relative to the importing file, additional modules match by exact name
 * first, and each file's type is that of the first module rule matching its
 * absolute path.
 */
import fs from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import type { Compatibility } from "../shared/compat.js";
import { viewToBuffer } from "../shared/data.js";
import {
  STRING_SCRIPT_PATH,
  type AdditionalModules,
  type ModuleRuleType,
  type ProcessedModuleRule,
  type ScriptBlueprint,
} from "../shared/runner.js";
import { VMScriptRunnerError } from "./errors.js";
import { ModuleEvaluator } from "./evaluate.js";
import type { Realm } from "./realm.js";
import {
  CommonJsRecord,
  ModuleRecord,
  SourceTextRecord,
  SyntheticRecord,
  type ModuleHost,
} from "./records.js";

const SUGGEST_BUNDLE =
  "If you're trying to import an npm package, you'll need to bundle your Worker first.";
const SUGGEST_NODE =
  "If you're trying to import a Node.js built-in module, or an npm package that uses Node.js built-ins, you'll either need to:\n" +
  "- Bundle your Worker, configuring your bundler to polyfill Node.js built-ins\n" +
  "- Configure your bundler to load Workers-compatible builds by changing the main fields/conditions\n" +
  "- Find an alternative package that doesn't require Node.js built-ins";

/** The host's built-in error constructors */
const HOST_ERRORS = new Set<unknown>([Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]);

export class ModuleLinker implements ModuleHost {
  readonly #realm: Realm;
  readonly #evaluator = new ModuleEvaluator();
  readonly #rules: ProcessedModuleRule[];
  readonly #additionalModules: AdditionalModules;
  readonly #compat?: Compatibility;
  /** Every loaded module, by absolute path or additional module name */
  readonly #records = new Map<string, ModuleRecord>();
  /** Sizes of files read, by absolute path, in load order */
  readonly #referencedPathSizes = new Map<string, number>();
  /** `require()` results without export_commonjs_default, kept stable */
  readonly #commonJsNamespaces = new WeakMap<ModuleRecord, object>();

  constructor(
    realm: Realm,
    moduleRules: ProcessedModuleRule[],
    additionalModules: AdditionalModules,
    compat?: Compatibility
  ) {
    this.#realm = realm;
    this.#rules = moduleRules;
    this.#additionalModules = additionalModules;
    this.#compat = compat;
  }

  /** Absolute paths of the files imported or required (not the entry) */
  get referencedPaths(): IterableIterator<string> {
    return this.#referencedPathSizes.keys();
  }

  get referencedPathsTotalSize(): number {
    let total = 0;
    for (const size of this.#referencedPathSizes.values()) total += size;
    return total;
  }

  /** Runs `blueprint` as the entry module, returning its namespace */
  async runEntry({ filePath, code }: ScriptBlueprint): Promise<object> {
    // The entry is always an ES module, whatever the rules say
    const entry = new SourceTextRecord(filePath, code, this.#realm, this);
    if (filePath !== STRING_SCRIPT_PATH) this.#records.set(filePath, entry);
    const created: ModuleRecord[] = [entry];
    this.#loadRequests(entry, created);
    this.#link(created);
    await this.#evaluate(entry);
    return entry.namespace!;
  }

  /**
   * Runs the ES module file at absolute `filePath` (if not already loaded
   * by the entry's graph) and returns its namespace
   */
  async runFile(filePath: string): Promise<object> {
    const record =
      this.#records.get(filePath) ??
      this.#loadGraph((created) => {
        const code = this.#read(filePath).toString("utf8");
        const entry = new SourceTextRecord(filePath, code, this.#realm, this);
        this.#records.set(filePath, entry);
        created.push(entry);
        this.#loadRequests(entry, created);
        return entry;
      });
    await this.#evaluate(record);
    return record.namespace!;
  }

  /** `import()`: rejects (via the caller's async function) on any failure */
  async import(specifier: string, referrer: ModuleRecord): Promise<object> {
    // Loading is asynchronous, as in a host: a module importing one still
    // to run in the graph being evaluated gets it after that graph ran
    await undefined;
    let record: ModuleRecord;
    try {
      record = this.#loadGraph((created) => this.#load(specifier, referrer, created));
    } catch (e) {
      // Loading and linking fail with host errors: the worker gets its own
      // realm's (its `e instanceof SyntaxError`, `e.constructor` work).
      // Errors thrown while evaluating are the modules' own, and pass as is.
      throw this.#realmError(e);
    }
    await this.#evaluate(record);
    return record.namespace!;
  }

  /**
   * Loads (with `load`, which pushes the records it creates to `created`)
   * and links a part of the graph. On failure, forgets that part, so another
   * attempt retries it.
   */
  #loadGraph(load: (created: ModuleRecord[]) => ModuleRecord): ModuleRecord {
    const created: ModuleRecord[] = [];
    try {
      const record = load(created);
      this.#link(created);
      return record;
    } catch (e) {
      for (const failed of created) this.#records.delete(failed.id);
      throw e;
    }
  }

  /**
   * A host built-in error (SyntaxError, a file system Error...) as the
   * worker realm's. Miniflare's own errors (VMScriptRunnerError...) pass as
   * they are, as in Miniflare 2, keeping their class for the host
   */
  #realmError(error: unknown): unknown {
    if (!(error instanceof Error) || !HOST_ERRORS.has(error.constructor)) return error;
    const { code } = error as { code?: unknown };
    return this.#realm.helpers.adoptError(error.name, error.message, error.stack, code);
  }

  #errorBase(referrer: string, specifier: string): string {
    const relative = path.relative("", referrer);
    return `Unable to resolve "${relative}" dependency "${specifier}"`;
  }

  #ruleType(identifier: string, specifier: string, errorBase: string): ModuleRuleType {
    const rule = this.#rules.find((rule) => rule.include.test(identifier));
    if (rule === undefined) {
      // Bare built-in names ("buffer") get the Node hint, "node:buffer"
      // doesn't (builtinModules has no "node:" names), as in Miniflare 2
      const suggestion = builtinModules.includes(specifier) ? SUGGEST_NODE : SUGGEST_BUNDLE;
      throw new VMScriptRunnerError(
        "ERR_MODULE_RULE",
        `${errorBase}: no matching module rules.\n${suggestion}`
      );
    }
    return rule.type;
  }

  #read(identifier: string): Buffer {
    const data = fs.readFileSync(identifier);
    this.#referencedPathSizes.set(identifier, data.byteLength);
    return data;
  }

  /** Creates the record for a file of any type but ESModule */
  #createNonModuleRecord(
    identifier: string,
    type: ModuleRuleType,
    errorBase: string
  ): ModuleRecord {
    const realm = this.#realm;
    switch (type) {
      case "CommonJS": {
        const code = this.#read(identifier).toString("utf8");
        const require = (specifier: string) => this.#require(specifier, identifier);
        return new CommonJsRecord(identifier, code, realm, require);
      }
      case "Text": {
        const text = this.#read(identifier).toString("utf8");
        return new SyntheticRecord(identifier, realm, { default: text });
      }
      case "Data": {
        const buffer = viewToBuffer(this.#read(identifier));
        return new SyntheticRecord(identifier, realm, { default: buffer });
      }
      case "CompiledWasm": {
        // Compiled here, as the worker's context can't compile wasm itself
        const data = this.#read(identifier) as Uint8Array<ArrayBuffer>;
        const module = new WebAssembly.Module(data);
        return new SyntheticRecord(identifier, realm, { default: module });
      }
      default:
        throw new VMScriptRunnerError(
          "ERR_MODULE_UNSUPPORTED",
          `${errorBase}: ${type} modules are unsupported`
        );
    }
  }

  /**
   * Finds or loads the module `specifier` refers to from `referrer`, along
   * with its static dependencies, pushing records it creates to `created`.
   */
  #load(specifier: string, referrer: ModuleRecord, created: ModuleRecord[]): ModuleRecord {
    const errorBase = this.#errorBase(referrer.id, specifier);
    if (referrer.id === STRING_SCRIPT_PATH) {
      throw new VMScriptRunnerError(
        "ERR_MODULE_STRING_SCRIPT",
        `${errorBase}: imports unsupported with string script`
      );
    }
    const additional = Object.hasOwn(this.#additionalModules, specifier)
      ? this.#additionalModules[specifier]
      : undefined;
    const identifier = additional
      ? specifier
      : path.resolve(path.dirname(referrer.id), specifier);
    const cached = this.#records.get(identifier);
    if (cached !== undefined) return cached;

    let record: ModuleRecord;
    if (additional) {
      record = new SyntheticRecord(identifier, this.#realm, additional);
    } else {
      const type = this.#ruleType(identifier, specifier, errorBase);
      if (type === "ESModule") {
        const code = this.#read(identifier).toString("utf8");
        record = new SourceTextRecord(identifier, code, this.#realm, this);
      } else {
        record = this.#createNonModuleRecord(identifier, type, errorBase);
      }
    }
    this.#records.set(identifier, record);
    created.push(record);
    this.#loadRequests(record, created);
    return record;
  }

  #loadRequests(record: ModuleRecord, created: ModuleRecord[]): void {
    for (const specifier of record.requests) {
      record.requested.set(specifier, this.#load(specifier, record, created));
    }
  }

  /** Instantiates new ES modules, then builds namespaces, then imports */
  #link(created: ModuleRecord[]): void {
    const modules = created.filter(
      (record): record is SourceTextRecord => record instanceof SourceTextRecord
    );
    // Other records were complete as soon as they were constructed
    for (const module of modules) module.instantiate();
    for (const module of modules) module.defineNamespace();
    for (const module of modules) module.linkImports();
  }

  /** Evaluates `root`'s graph (see ./evaluate.ts) */
  #evaluate(root: ModuleRecord): Promise<void> {
    return this.#evaluator.evaluate(root);
  }

  /** `require()` from the CommonJS module at `referrer` */
  #require(specifier: string, referrer: string): unknown {
    const errorBase = this.#errorBase(referrer, specifier);
    const additional = Object.hasOwn(this.#additionalModules, specifier)
      ? this.#additionalModules[specifier]
      : undefined;
    const identifier = additional
      ? specifier
      : path.resolve(path.dirname(referrer), specifier);
    const unsupported = () =>
      new VMScriptRunnerError(
        "ERR_CJS_MODULE_UNSUPPORTED",
        `${errorBase}: CommonJS modules cannot require ES modules`
      );
    let record = this.#records.get(identifier);
    if (record === undefined) {
      if (additional) {
        record = new SyntheticRecord(identifier, this.#realm, additional);
      } else {
        const type = this.#ruleType(identifier, specifier, errorBase);
        if (type === "ESModule") throw unsupported();
        record = this.#createNonModuleRecord(identifier, type, errorBase);
      }
      this.#records.set(identifier, record);
    }
    if (record instanceof SourceTextRecord) throw unsupported();

    record.execute(); // runs a CommonJS module the first time only
    if (this.#compat === undefined || this.#compat.isEnabled("export_commonjs_default")) {
      return record.getter("default")();
    }
    let namespace = this.#commonJsNamespaces.get(record);
    if (namespace === undefined) {
      namespace = this.#realm.helpers.commonJsNamespace(record.getter("default"));
      this.#commonJsNamespaces.set(record, namespace);
    }
    return namespace;
  }
}
