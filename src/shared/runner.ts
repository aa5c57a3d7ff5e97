import type { Compatibility } from "./compat.js";

/** File path used in stack traces for a `script` given as a string */
export const STRING_SCRIPT_PATH = "<script>";

export type Context = Record<string | symbol, any>;

export interface ScriptBlueprint {
  readonly filePath: string;
  readonly code: string;
}

export type ModuleRuleType =
  | "ESModule"
  | "CommonJS"
  | "Text"
  | "Data"
  | "CompiledWasm";

export interface ModuleRule {
  type: ModuleRuleType;
  include: string[];
  fallthrough?: boolean;
}

export interface Matcher {
  test(value: string): boolean;
  toString(): string;
}

export interface ProcessedModuleRule {
  type: ModuleRuleType;
  include: Matcher;
}

/** Synthetic modules importable by specifier, e.g. "node:buffer": namespace */
export type AdditionalModules = Record<string, Context>;

export interface ScriptRunnerResult {
  /** Module namespace of the entry module (modules mode only) */
  exports?: Context;
  /** Bytes of the entry plus every module it references, once each */
  bundleSize?: number;
  /** Absolute paths of every module file loaded from disk */
  watch?: string[];
  /** Module namespace of each additional entry, by its absolute path */
  additionalExports?: Map<string, Context>;
}

export interface ScriptRunner {
  run(
    globalScope: Context,
    blueprint: ScriptBlueprint,
    modulesRules?: ProcessedModuleRule[],
    additionalModules?: AdditionalModules,
    compat?: Compatibility,
    /** Module files to run after the entry (modules mode only) */
    additionalEntries?: string[]
  ): Promise<ScriptRunnerResult>;
}

/**
 * Key of a global scope's guarded globals: names whose read must throw
 * (such as bindings read as globals in modules mode), each with the getter
 * that throws. The scope defines these getters on itself too; runners also
 * install them inside their context, where Node's `vm` lets their errors
 * through (see runtime/guards.ts).
 */
export const kGlobalGuards = Symbol("kGlobalGuards");

export type GlobalGuards = ReadonlyMap<string, () => never>;
