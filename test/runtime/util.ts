import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { VMScriptRunner } from "../../src/runtime/index.js";
import { Compatibility } from "../../src/shared/compat.js";
import { globsToMatcher } from "../../src/shared/data.js";
import type {
  AdditionalModules,
  Context,
  ModuleRule,
  ProcessedModuleRule,
  ScriptRunnerResult,
} from "../../src/shared/runner.js";

// Tests run from dist/test/runtime, fixtures stay in the source tree
const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.resolve(here, "../../../test/fixtures/runtime");

export function fixture(...parts: string[]): string {
  return path.join(FIXTURES, "modules", ...parts);
}

const DEFAULT_RULES: ModuleRule[] = [
  { type: "ESModule", include: ["**/*.mjs"] },
  { type: "CommonJS", include: ["**/*.js", "**/*.cjs"] },
];

/** Processes rules as the core plugin does: user rules, then defaults */
export function processRules(rules: ModuleRule[] = []): ProcessedModuleRule[] {
  const finalised = new Set<string>();
  const processed: ProcessedModuleRule[] = [];
  for (const rule of [...rules, ...DEFAULT_RULES]) {
    if (finalised.has(rule.type)) continue;
    processed.push({ type: rule.type, include: globsToMatcher(rule.include) });
    if (!rule.fallthrough) finalised.add(rule.type);
  }
  return processed;
}

export const ASSET_RULES: ModuleRule[] = [
  { type: "Text", include: ["**/*.txt"] },
  { type: "Data", include: ["**/*.bin"] },
  { type: "CompiledWasm", include: ["**/*.wasm"] },
];

export interface RunOptions {
  globals?: Context;
  rules?: ModuleRule[];
  additionalModules?: AdditionalModules;
  compat?: Compatibility;
}

/** Runs `code` as the entry module at `filePath` (default: in the fixtures) */
export function runModule(
  code: string,
  { globals = {}, rules, additionalModules, compat }: RunOptions = {},
  filePath = fixture("entry.mjs")
): Promise<ScriptRunnerResult> {
  return new VMScriptRunner().run(
    globals,
    { filePath, code },
    processRules(rules),
    additionalModules,
    compat
  );
}

/** Runs a fixture file as the entry module */
export function runFixture(
  name: string,
  options?: RunOptions
): Promise<ScriptRunnerResult> {
  const filePath = fixture(name);
  return runModule(fs.readFileSync(filePath, "utf8"), options, filePath);
}

export const compatDefault = new Compatibility("2022-10-31");
export const compatNamespace = new Compatibility("2022-10-30");
