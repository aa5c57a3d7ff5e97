/**
 * Rewrites an ES module into a function that a classic `vm.Script` can run,
 * so modules work without `--experimental-vm-modules` (`vm.SourceTextModule`
 * is missing without that flag).
 *
 * The module body becomes the body of
 *
 *   (async function (__mf_imports__, __mf_runtime__) {"use strict";
 *     await __mf_runtime__.init(["x", () => x, ...]);
 *     <original code, import/export syntax rewritten in place>
 *   })
 *
 * - Calling the function "instantiates" the module: function declarations
 *   are hoisted, and `init` hands the linker one getter per exported local
 *   binding before the body is paused at the `await`. The linker then builds
 *   namespace objects and resolves imports for the whole graph, and resumes
 *   bodies in evaluation order. Getters read the real bindings, so exports
 *   are live, and `let`/`const`/`class` ones throw in their TDZ, as in a
 *   real cycle. Being async, the body may use top-level await.
 * - References to imported bindings become property reads on the imports
 *   object (`x` → `__mf_imports__.x`), whose accessors are the exporting
 *   module's getters: live, and read-only (assigning throws a TypeError in
 *   strict code). A `with` statement would avoid the scope analysis, but
 *   makes every global lookup in the module dynamic, several times slower.
 * - `import()` and `import.meta` become calls/reads on `__mf_runtime__`,
 *   and so does `arguments` outside any non-arrow function (a global lookup
 *   in a module, where the wrapper's own would be wrong).
 * - The wrapper's names (`__mf_imports__`...) are numbered ones instead
 *   when the source mentions "__mf", so a module can't declare or reach them.
 * - Import declarations are blanked; `export` keywords are replaced by
 *   spaces. Line terminators are always kept, and the wrapper's prefix sits
 *   on a line of its own (compiled with `lineOffset: -1`), so stack traces
 *   show the original line numbers, and columns on unchanged lines.
 */
import { parse, tokTypes, tokenizer, type TokenType } from "acorn";
import { walkModule, type AnyNode, type ReferenceKind } from "./scope.js";

export const IMPORTS_ID = "__mf_imports__";
export const RUNTIME_ID = "__mf_runtime__";
const DEFAULT_ID = "__mf_default__";

/** The names of the wrapper's own bindings in one module */
interface InternalNames {
  imports: string;
  runtime: string;
  default: string;
}

/**
 * Names for the wrapper's bindings that appear nowhere in `source`, so the
 * module can neither declare them (a SyntaxError) nor reach them: the usual
 * ones, unless the source mentions "__mf", then numbered ones it doesn't
 */
function internalNames(source: string): InternalNames {
  if (!source.includes("__mf")) return { imports: IMPORTS_ID, runtime: RUNTIME_ID, default: DEFAULT_ID };
  let n = 1;
  while (source.includes(`__mf${n}_`)) n++;
  return { imports: `__mf${n}_imports__`, runtime: `__mf${n}_runtime__`, default: `__mf${n}_default__` };
}

/** A binding of another module: `name` null means its namespace object */
export interface ModuleBinding {
  specifier: string;
  name: string | null;
}

export interface TransformedModule {
  /** Wrapper function source: compile with `lineOffset: -1` */
  code: string;
  /** Specifiers of static imports and re-exports, in source order, once each */
  requests: string[];
  /** Imported bindings, by local name */
  imports: Map<string, ModuleBinding>;
  /** Export name → name of the local binding `init`'s getters are keyed by */
  localExports: Map<string, string>;
  /** Export name → binding of another module (`export { x } from`) */
  indirectExports: Map<string, ModuleBinding>;
  /** Specifiers of `export * from` */
  starExports: string[];
  /**
   * Whether the module awaits at its top level. Without, the wrapper is a
   * generator, so its body runs synchronously once resumed, as a native
   * module's does.
   */
  hasTopLevelAwait: boolean;
}

const LINE_TERMINATOR = /\r\n?|\n|\u2028|\u2029/;
const NOT_LINE_TERMINATOR = /[^\r\n\u2028\u2029]/g;

/** Text edits on the original source; never overlapping */
class Edits {
  readonly #source: string;
  readonly #edits: { start: number; end: number; text: string }[] = [];

  constructor(source: string) {
    this.#source = source;
  }

  replace(start: number, end: number, text: string): void {
    this.#edits.push({ start, end, text });
  }

  insert(position: number, text: string): void {
    this.replace(position, position, text);
  }

  /** Replaces with spaces, keeping line terminators so lines don't move */
  blank(start: number, end: number): void {
    const text = this.#source.slice(start, end).replace(NOT_LINE_TERMINATOR, " ");
    this.replace(start, end, text);
  }

  /**
   * Blanks a whole statement, leaving a `;` in its place: the statement may
   * have ended the one before it through ASI (`a = b\nimport "x"\n(c)`
   * must not become `a = b(c)`)
   */
  blankStatement(start: number, end: number): void {
    // (statements start with "import"/"export", never a line terminator)
    const rest = this.#source.slice(start + 1, end).replace(NOT_LINE_TERMINATOR, " ");
    this.replace(start, end, `;${rest}`);
  }

  apply(): string {
    // Array#sort is stable, so inserts at one position keep their order
    const edits = this.#edits.sort((a, b) => a.start - b.start);
    let result = "";
    let position = 0;
    for (const { start, end, text } of edits) {
      if (start < position) throw new Error("Overlapping module transform edits");
      result += this.#source.slice(position, start) + text;
      position = end;
    }
    return result + this.#source.slice(position);
  }
}

/**
 * Converts an acorn parse error into a SyntaxError naming the file and
 * position, like V8's own compile errors do in their stack.
 */
function toSyntaxError(error: any, source: string, filePath: string): Error {
  if (!(error instanceof SyntaxError) || !("loc" in error)) return error;
  const { line, column } = (error as any).loc as { line: number; column: number };
  const message = error.message.replace(/ \(\d+:\d+\)$/, "");
  const location = `${filePath}:${line}:${column + 1}`;
  const result = new SyntaxError(`${message} (${location})`);
  const sourceLine = source.split(LINE_TERMINATOR)[line - 1] ?? "";
  result.stack =
    `${filePath}:${line}\n${sourceLine}\n${" ".repeat(column)}^\n\n` +
    `SyntaxError: ${result.message}\n    at ${location}`;
  return result;
}

/** Absolute end of the first token of `type` in `source.slice(start, end)` */
function findToken(
  source: string,
  start: number,
  end: number,
  type: TokenType
): { start: number; end: number } {
  const options = { ecmaVersion: "latest", sourceType: "module" } as const;
  for (const token of tokenizer(source.slice(start, end), options)) {
    if (token.type === type) {
      return { start: start + token.start, end: start + token.end };
    }
  }
  throw new Error(`Expected ${type.label} in ${source.slice(start, end)}`);
}

/** `x` or `"x"` in import/export specifiers (ES2022 string export names) */
function moduleExportName(node: AnyNode): string {
  return node.type === "Identifier" ? node.name : String(node.value);
}

function patternNames(pattern: AnyNode, names: string[] = []): string[] {
  switch (pattern.type) {
    case "Identifier":
      names.push(pattern.name);
      break;
    case "ObjectPattern":
      for (const property of pattern.properties) {
        patternNames(property.type === "RestElement" ? property.argument : property.value, names);
      }
      break;
    case "ArrayPattern":
      for (const element of pattern.elements) if (element) patternNames(element, names);
      break;
    case "RestElement":
      patternNames(pattern.argument, names);
      break;
    case "AssignmentPattern":
      patternNames(pattern.left, names);
      break;
  }
  return names;
}

function declarationNames(declaration: AnyNode): string[] {
  if (declaration.type === "VariableDeclaration") {
    return declaration.declarations.flatMap((d: AnyNode) => patternNames(d.id));
  }
  return [declaration.id.name]; // function or class
}

/** Collects a module's imports and exports, and rewrites its source */
class ModuleTransformer {
  readonly #source: string;
  readonly #edits: Edits;
  readonly #requests = new Set<string>();
  readonly #imports = new Map<string, ModuleBinding>();
  readonly #localExports = new Map<string, string>();
  readonly #indirectExports = new Map<string, ModuleBinding>();
  readonly #starExports: string[] = [];
  // `export { x }` may precede the import of `x`, so these are resolved last
  readonly #exportedLocals: { exported: string; local: string }[] = [];
  // Whether `export default function () {}` needs renaming from its
  // internal name
  #renameDefault = false;
  readonly #names: InternalNames;
  #hasTopLevelAwait = false;

  constructor(source: string) {
    this.#source = source;
    this.#edits = new Edits(source);
    this.#names = internalNames(source);
  }

  transform(program: AnyNode): TransformedModule {
    // A hashbang is fine at the start of a file, but not after our prefix
    if (this.#source.startsWith("#!")) this.#edits.replace(0, 2, "//");
    for (const node of program.body as AnyNode[]) {
      if (node.type === "ImportDeclaration") this.#importDeclaration(node);
      else if (node.type === "ExportAllDeclaration") this.#exportAll(node);
      else if (node.type === "ExportNamedDeclaration") this.#exportNamed(node);
      else if (node.type === "ExportDefaultDeclaration") this.#exportDefault(node);
    }
    for (const { exported, local } of this.#exportedLocals) {
      const imported = this.#imports.get(local);
      if (imported !== undefined && imported.name !== null) {
        // Re-exporting an imported binding exports the original binding
        this.#indirectExports.set(exported, imported);
      } else {
        this.#localExports.set(exported, local);
      }
    }
    // Without imports, only import(), import.meta and a top-level
    // `arguments` need rewriting, and only a top-level await finding: skip
    // the walk (most of the transform's time) when there can't be any
    const source = this.#source;
    const mayNeedWalk = ["import", "arguments", "await"].some((word) => source.includes(word));
    if (this.#imports.size > 0 || mayNeedWalk) this.#rewriteReferences(program);
    return {
      code: this.#wrap(),
      hasTopLevelAwait: this.#hasTopLevelAwait,
      requests: [...this.#requests],
      imports: this.#imports,
      localExports: this.#localExports,
      indirectExports: this.#indirectExports,
      starExports: this.#starExports,
    };
  }

  #importDeclaration(node: AnyNode): void {
    const specifier = node.source.value as string;
    this.#requests.add(specifier);
    for (const spec of node.specifiers) {
      const name =
        spec.type === "ImportDefaultSpecifier"
          ? "default"
          : spec.type === "ImportNamespaceSpecifier"
            ? null
            : moduleExportName(spec.imported);
      this.#imports.set(spec.local.name, { specifier, name });
    }
    this.#edits.blankStatement(node.start, node.end);
  }

  #exportAll(node: AnyNode): void {
    const specifier = node.source.value as string;
    this.#requests.add(specifier);
    if (node.exported) {
      const exported = moduleExportName(node.exported);
      this.#indirectExports.set(exported, { specifier, name: null });
    } else {
      this.#starExports.push(specifier);
    }
    this.#edits.blankStatement(node.start, node.end);
  }

  #exportNamed(node: AnyNode): void {
    if (node.declaration) {
      // `export const x = 1` → `       const x = 1`
      this.#edits.blank(node.start, node.declaration.start);
      for (const name of declarationNames(node.declaration)) {
        this.#localExports.set(name, name);
      }
      return;
    }
    const specifier = node.source?.value as string | undefined;
    if (specifier !== undefined) this.#requests.add(specifier);
    for (const spec of node.specifiers) {
      const exported = moduleExportName(spec.exported);
      const local = moduleExportName(spec.local);
      if (specifier === undefined) {
        this.#exportedLocals.push({ exported, local });
      } else {
        this.#indirectExports.set(exported, { specifier, name: local });
      }
    }
    this.#edits.blankStatement(node.start, node.end);
  }

  #exportDefault(node: AnyNode): void {
    const source = this.#source;
    const edits = this.#edits;
    const declaration = node.declaration;
    const isFunction = declaration.type === "FunctionDeclaration";
    if ((isFunction || declaration.type === "ClassDeclaration") && declaration.id) {
      edits.blank(node.start, declaration.start);
      this.#localExports.set("default", declaration.id.name);
    } else if (isFunction) {
      // Still a hoisted declaration (usable through cycles), so give it a
      // name to export; `init` renames the function back to "default"
      edits.blank(node.start, declaration.start);
      const paren = findToken(source, declaration.start, declaration.body.start, tokTypes.parenL);
      edits.insert(paren.start, ` ${this.#names.default}`);
      this.#localExports.set("default", this.#names.default);
      this.#renameDefault = true;
    } else {
      // An expression or anonymous class, evaluated in place. Defining it as
      // the "default" property names anonymous functions and classes
      // "default", exactly as `export default` does. (The declaration may
      // start after a "(" here: acorn's nodes exclude parentheses.)
      const keyword = findToken(source, node.start, declaration.start, tokTypes._default);
      edits.replace(node.start, keyword.end, `const ${this.#names.default} = { default:`);
      if (source[node.end - 1] === ";") edits.insert(node.end - 1, "}.default");
      else edits.insert(node.end, "}.default;");
      this.#localExports.set("default", this.#names.default);
    }
  }

  #rewriteReferences(program: AnyNode): void {
    const edits = this.#edits;
    const { imports, runtime } = this.#names;
    const importReference = (name: string) => `${imports}.${name}`;
    // Rewrites a reference to `replacement`, an expression, per its kind
    const rewrite = (node: AnyNode, kind: ReferenceKind, replacement: string) => {
      const text =
        kind === "callee"
          ? `(0, ${replacement})`
          : kind === "shorthand"
            ? `${node.name}: ${replacement}`
            : replacement;
      edits.replace(node.start, node.end, text);
    };
    const onTopLevelAwait = () => (this.#hasTopLevelAwait = true);
    walkModule(program, new Set(this.#imports.keys()), {
      topLevelAwait: onTopLevelAwait,
      importReference(node: AnyNode, kind: ReferenceKind) {
        rewrite(node, kind, importReference(node.name as string));
      },
      moduleArguments(node: AnyNode, kind: ReferenceKind) {
        rewrite(node, kind, `${runtime}.globalArguments(${kind === "typeof"})`);
      },
      importMeta(node: AnyNode) {
        edits.replace(node.start, node.end, `${runtime}.meta`);
      },
      dynamicImport(node: AnyNode) {
        edits.replace(node.start, node.start + "import".length, `${runtime}.import`);
      },
    });
  }

  /** Wraps the rewritten body, see the comment at the top of this file */
  #wrap(): string {
    const { imports, runtime } = this.#names;
    const getters = [...new Set(this.#localExports.values())].map((local) => {
      // A re-exported namespace import is read through the imports object
      const value = this.#imports.has(local) ? `${imports}.${local}` : local;
      return `${JSON.stringify(local)}, () => ${value}`;
    });
    const defaultFunction = this.#renameDefault ? `, ${this.#names.default}` : "";
    const init = `${runtime}.init([${getters.join(", ")}]${defaultFunction});`;
    // (a module can't say "yield" at its top level: strict code reserves it)
    const prefix = this.#hasTopLevelAwait
      ? `(async function (${imports}, ${runtime}) {"use strict";${init}`
      : `(function* (${imports}, ${runtime}) {"use strict";yield ${init}`;
    return `${prefix}\n${this.#edits.apply()}\n})`;
  }
}

/** Transforms an ES module's source, throwing SyntaxErrors naming `filePath` */
export function transformModule(source: string, filePath: string): TransformedModule {
  let program: AnyNode;
  try {
    program = parse(source, { ecmaVersion: "latest", sourceType: "module" }) as AnyNode;
  } catch (e) {
    throw toSyntaxError(e, source, filePath);
  }
  return new ModuleTransformer(source).transform(program);
}
