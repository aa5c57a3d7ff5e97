import vm from "node:vm";
import type { Compatibility } from "../shared/compat.js";
import type {
  AdditionalModules,
  Context,
  ProcessedModuleRule,
  ScriptBlueprint,
  ScriptRunner,
  ScriptRunnerResult,
} from "../shared/runner.js";
import { compileScript } from "./compile.js";
import { defineGlobalGuards } from "./guards.js";
import { defineHasInstances } from "./instanceof.js";
import { ModuleLinker } from "./linker.js";
import { createRealm } from "./realm.js";

/**
 * Runs worker scripts in a Node `vm` context: a classic script for
 * service-worker format, or an ES module graph when `modulesRules` is
 * given. Modules need no `--experimental-vm-modules`: see ./transform.ts.
 */
export class VMScriptRunner implements ScriptRunner {
  readonly #context?: vm.Context;

  /**
   * @param context an existing context to run in, its globals updated on
   * every run (as test environments need); by default, each run gets a new
   * context without string or wasm code generation, like Workers
   */
  constructor(context?: vm.Context) {
    this.#context = context;
  }

  async run(
    globalScope: Context,
    blueprint: ScriptBlueprint,
    modulesRules?: ProcessedModuleRule[],
    additionalModules?: AdditionalModules,
    compat?: Compatibility,
    additionalEntries?: string[]
  ): Promise<ScriptRunnerResult> {
    let context = this.#context;
    if (context === undefined) {
      // eval()/new Function() throw EvalError, WebAssembly.compile() and
      // new WebAssembly.Module() throw CompileError, as in Workers
      context = vm.createContext(globalScope, {
        codeGeneration: { strings: false, wasm: false },
      });
      defineGlobalGuards(context, globalScope);
    } else {
      Object.assign(context, globalScope);
    }
    defineHasInstances(context);

    let bundleSize = Buffer.byteLength(blueprint.code);
    if (modulesRules === undefined) {
      const script = compileScript(blueprint.code, { filename: blueprint.filePath });
      script.runInContext(context);
      return { exports: {}, bundleSize, watch: undefined };
    }

    const linker = new ModuleLinker(
      createRealm(context),
      modulesRules,
      additionalModules ?? {},
      compat
    );
    const exports = await linker.runEntry(blueprint);
    let additionalExports: Map<string, Context> | undefined;
    if (additionalEntries !== undefined && additionalEntries.length > 0) {
      additionalExports = new Map();
      for (const filePath of additionalEntries) {
        additionalExports.set(filePath, await linker.runFile(filePath));
      }
    }
    bundleSize += linker.referencedPathsTotalSize;
    return { exports, bundleSize, watch: [...linker.referencedPaths], additionalExports };
  }
}
