/**
 * Module records: one per loaded module, holding its exports and, for ES
 * modules, the transformed code. Export resolution follows the spec's
 * Cyclic Module Record algorithms (GetExportedNames, ResolveExport), with
 * bindings identified by (record, local name) as the spec does.
 * https://tc39.es/ecma262/#sec-source-text-module-records
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import vm from "node:vm";
import { compileScript } from "./compile.js";
import type { Realm } from "./realm.js";
import { transformModule, type ModuleBinding, type TransformedModule } from "./transform.js";

type Getter = () => unknown;

/** Where an export comes from: a local binding, or a namespace if null */
interface Resolution {
  record: ModuleRecord;
  binding: string | null;
}
type ResolveSet = { record: ModuleRecord; name: string }[];

/** What source text records need from the linker */
export interface ModuleHost {
  /** Loads, links and evaluates `specifier` for a dynamic `import()` */
  import(specifier: string, referrer: ModuleRecord): Promise<object>;
}

const NO_BINDINGS: ReadonlyMap<string, ModuleBinding> = new Map();

export abstract class ModuleRecord {
  /** Namespace object, created when the module is linked */
  namespace?: object;
  /** Modules this one's static imports/re-exports resolve to, by specifier */
  readonly requested = new Map<string, ModuleRecord>();

  protected constructor(
    /** Absolute path, an additional module's name, or `<script>` */
    readonly id: string,
    protected readonly realm: Realm
  ) {}

  /** Export name → key of the local binding it reads */
  abstract get localExports(): ReadonlyMap<string, string>;
  get indirectExports(): ReadonlyMap<string, ModuleBinding> {
    return NO_BINDINGS;
  }
  get starExports(): readonly string[] {
    return [];
  }
  /** Specifiers this module imports statically, in source order */
  get requests(): readonly string[] {
    return [];
  }

  /** Getter for a local binding, valid once the module is instantiated */
  abstract getter(binding: string): Getter;
  /** Whether the module awaits at its top level (then see executeAsync()) */
  get hasTopLevelAwait(): boolean {
    return false;
  }
  /**
   * Runs the module's code, if any, synchronously: called once,
   * dependencies first (see ./evaluate.ts). Throws what the code throws.
   */
  abstract execute(): void;
  /** Runs the code of a module with top-level await */
  async executeAsync(): Promise<void> {
    this.execute();
  }

  get dependencies(): ModuleRecord[] {
    return [...new Set(this.requested.values())];
  }

  #requested(specifier: string): ModuleRecord {
    return this.requested.get(specifier)!;
  }

  // https://tc39.es/ecma262/#sec-getexportednames
  exportedNames(exportStarSet = new Set<ModuleRecord>()): string[] {
    if (exportStarSet.has(this)) return [];
    exportStarSet.add(this);
    const names = new Set([...this.localExports.keys(), ...this.indirectExports.keys()]);
    for (const specifier of this.starExports) {
      for (const name of this.#requested(specifier).exportedNames(exportStarSet)) {
        if (name !== "default") names.add(name);
      }
    }
    return [...names];
  }

  // https://tc39.es/ecma262/#sec-resolveexport
  resolveExport(name: string, resolveSet: ResolveSet = []): Resolution | null | "ambiguous" {
    for (const entry of resolveSet) {
      // A circular import request
      if (entry.record === this && entry.name === name) return null;
    }
    resolveSet.push({ record: this, name });
    const local = this.localExports.get(name);
    if (local !== undefined) return { record: this, binding: local };
    const indirect = this.indirectExports.get(name);
    if (indirect !== undefined) {
      const target = this.#requested(indirect.specifier);
      if (indirect.name === null) return { record: target, binding: null };
      return target.resolveExport(indirect.name, resolveSet);
    }
    // `export *` never re-exports a default
    if (name === "default") return null;
    let starResolution: Resolution | null = null;
    for (const specifier of this.starExports) {
      const resolution = this.#requested(specifier).resolveExport(name, resolveSet);
      if (resolution === "ambiguous") return "ambiguous";
      if (resolution === null) continue;
      if (starResolution === null) {
        starResolution = resolution;
      } else if (
        starResolution.record !== resolution.record ||
        starResolution.binding !== resolution.binding
      ) {
        return "ambiguous";
      }
    }
    return starResolution;
  }

  /** A getter for a resolved binding: namespaces must already exist */
  protected resolutionGetter({ record, binding }: Resolution): Getter {
    if (binding === null) return this.realm.helpers.constant(record.namespace);
    return record.getter(binding);
  }

  /**
   * Fills in this module's namespace: every export name that resolves
   * unambiguously, sorted. Names from conflicting `export *`s are left out.
   */
  defineNamespace(): void {
    const names: string[] = [];
    const getters: Getter[] = [];
    for (const name of this.exportedNames().sort()) {
      const resolution = this.resolveExport(name);
      if (resolution === null || resolution === "ambiguous") continue;
      names.push(name);
      getters.push(this.resolutionGetter(resolution));
    }
    const { helpers } = this.realm;
    this.namespace ??= helpers.namespace();
    helpers.defineExports(this.namespace, names, getters);
  }
}

/** V8's errors for unresolvable imports, pointing at the importing file */
function linkError(record: ModuleRecord, message: string): SyntaxError {
  const error = new SyntaxError(message);
  error.stack = `SyntaxError: ${message}\n    at ${record.id}`;
  return error;
}

/** An ES module, run through the transform in ./transform.ts */
export class SourceTextRecord extends ModuleRecord {
  readonly #host: ModuleHost;
  readonly #transformed: Omit<TransformedModule, "code">;
  readonly #script: vm.Script;
  readonly #getters = new Map<string, Getter>();
  #imports?: object;
  #start?: () => void;
  /** The body: a generator paused after init, or (top-level await) the running promise */
  #body?: Promise<unknown> | Generator<unknown, unknown, unknown>;

  constructor(id: string, code: string, realm: Realm, host: ModuleHost) {
    super(id, realm);
    this.#host = host;
    const { code: wrapped, ...transformed } = transformModule(code, id);
    this.#transformed = transformed;
    this.#script = compileScript(wrapped, {
      filename: id,
      // The wrapper's prefix takes a line of its own
      lineOffset: -1,
    });
  }

  override get localExports(): ReadonlyMap<string, string> {
    return this.#transformed.localExports;
  }
  override get indirectExports(): ReadonlyMap<string, ModuleBinding> {
    return this.#transformed.indirectExports;
  }
  override get starExports(): readonly string[] {
    return this.#transformed.starExports;
  }
  override get requests(): readonly string[] {
    return this.#transformed.requests;
  }
  override get hasTopLevelAwait(): boolean {
    return this.#transformed.hasTopLevelAwait;
  }

  override getter(binding: string): Getter {
    const getter = this.#getters.get(binding);
    if (getter !== undefined) return getter;
    if (!this.hasTopLevelAwait) throw new Error(`"${this.id}" is not instantiated`);
    // A module with top-level await registers its getters when it starts
    // running: until then its bindings read as uninitialised
    const { adoptError } = this.realm.helpers;
    return () => {
      const registered = this.#getters.get(binding);
      if (registered !== undefined) return registered();
      throw adoptError("ReferenceError", `Cannot access '${binding}' before initialization`, undefined, undefined);
    };
  }

  /**
   * Without top-level await, calls the module function (a generator) up to
   * its first `yield`: that hoists its function declarations and registers
   * its export getters, and `execute()` later runs the rest synchronously.
   * With top-level await, the module function (async) is only called by
   * `executeAsync()`, so its body starts at once, as a native one does, and
   * runs until its first await. No code of the module's own runs here.
   */
  instantiate(): void {
    const { context, helpers } = this.realm;
    const moduleFunction = this.#script.runInContext(context);
    const init = (getters: unknown[], defaultFunction?: AnyFunction) => {
      for (let i = 0; i < getters.length; i += 2) {
        this.#getters.set(getters[i] as string, getters[i + 1] as Getter);
      }
      // `export default function () {}` is named "default"
      if (defaultFunction) {
        Object.defineProperty(defaultFunction, "name", { value: "default" });
      }
    };
    const dynamicImport = (specifier: string) => this.#host.import(specifier, this);
    const url = path.isAbsolute(this.id) ? pathToFileURL(this.id).href : undefined;
    const runtime = helpers.runtime(init, dynamicImport, helpers.meta(url));
    const imports = (this.#imports = helpers.imports());
    if (this.hasTopLevelAwait) {
      this.#start = () => (this.#body = moduleFunction(imports, runtime) as Promise<unknown>);
    } else {
      const body = moduleFunction(imports, runtime) as Generator<unknown, unknown, unknown>;
      body.next();
      this.#body = body;
    }
    this.namespace = helpers.namespace();
  }

  /**
   * Points each imported name at the exporting module's getter (or a
   * namespace). Throws V8's SyntaxErrors for exports that don't exist.
   */
  linkImports(): void {
    const { constant, readonlySetter } = this.realm.helpers;
    for (const [local, { specifier, name }] of this.#transformed.imports) {
      const target = this.requested.get(specifier)!;
      const get =
        name === null
          ? constant(target.namespace)
          : this.resolutionGetter(this.#resolveImport(specifier, target, name));
      // Assigning to an import is a TypeError, as for a const
      Object.defineProperty(this.#imports, local, { get, set: readonlySetter, enumerable: true });
    }
    // Re-exports must resolve too, even if nothing imports them
    for (const [exported, { specifier, name }] of this.#transformed.indirectExports) {
      if (name !== null) this.#checkResolution(specifier, name, this.resolveExport(exported));
    }
  }

  #resolveImport(specifier: string, target: ModuleRecord, name: string): Resolution {
    return this.#checkResolution(specifier, name, target.resolveExport(name));
  }

  #checkResolution(
    specifier: string,
    name: string,
    resolution: Resolution | null | "ambiguous"
  ): Resolution {
    if (resolution === null) {
      throw linkError(
        this,
        `The requested module '${specifier}' does not provide an export named '${name}'`
      );
    }
    if (resolution === "ambiguous") {
      throw linkError(
        this,
        `The requested module '${specifier}' contains conflicting star exports for name '${name}'`
      );
    }
    return resolution;
  }

  override execute(): void {
    (this.#body as Generator<unknown, unknown, unknown>).next();
  }

  override async executeAsync(): Promise<void> {
    if (!this.hasTopLevelAwait) return this.execute();
    this.#start!();
    await this.#body;
  }
}

type AnyFunction = (...args: any[]) => any;

/** A CommonJS module: `default` export is `module.exports` */
export class CommonJsRecord extends ModuleRecord {
  static readonly #exports: ReadonlyMap<string, string> = new Map([["default", "default"]]);
  readonly #script: vm.Script;
  readonly #require: (specifier: string) => unknown;
  readonly module: { exports: unknown };
  readonly #getter: Getter;
  #evaluated = false;

  constructor(
    id: string,
    code: string,
    realm: Realm,
    require: (specifier: string) => unknown
  ) {
    super(id, realm);
    // A hashbang is fine at the start of a file, but not after our prefix
    if (code.startsWith("#!")) code = `//${code.substring(2)}`;
    this.#script = compileScript(
      `(function (exports, require, module) {\n${code}\n})`,
      { filename: id, lineOffset: -1 }
    );
    this.#require = require;
    this.module = realm.helpers.commonJsModule();
    this.#getter = realm.helpers.property(this.module, "exports");
    this.defineNamespace();
  }

  override get localExports(): ReadonlyMap<string, string> {
    return CommonJsRecord.#exports;
  }

  override getter(): Getter {
    return this.#getter;
  }

  /**
   * Runs the module the first time it's required or evaluated as an import.
   * It counts as evaluated from the start, so `require` cycles see partial
   * exports, as in Node.
   */
  override execute(): void {
    if (this.#evaluated) return;
    this.#evaluated = true;
    const { context, helpers } = this.realm;
    const moduleFunction = this.#script.runInContext(context);
    const module = this.module;
    moduleFunction(module.exports, helpers.require(this.#require), module);
  }
}

/**
 * A module with fixed exports: an additional module ("node:buffer",
 * "__STATIC_CONTENT_MANIFEST"), or a Text, Data or CompiledWasm file with a
 * single `default` export.
 */
export class SyntheticRecord extends ModuleRecord {
  readonly #exports: ReadonlyMap<string, string>;
  readonly #getters = new Map<string, Getter>();
  readonly values: Readonly<Record<string, unknown>>;

  constructor(id: string, realm: Realm, values: Record<string, unknown>) {
    super(id, realm);
    this.values = values;
    const names = Object.keys(values);
    this.#exports = new Map(names.map((name) => [name, name]));
    for (const name of names) {
      this.#getters.set(name, realm.helpers.constant(values[name]));
    }
    this.defineNamespace();
  }

  override get localExports(): ReadonlyMap<string, string> {
    return this.#exports;
  }

  override getter(binding: string): Getter {
    // `require()` reads "default", which additional modules may not have
    return this.#getters.get(binding) ?? this.realm.helpers.constant(undefined);
  }

  override execute(): void {}
}
