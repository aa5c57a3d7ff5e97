/**
 * Scope analysis for the module transform: finds every reference to an
 * imported binding that isn't shadowed by a local declaration, plus every
 * `import.meta` and `import()`.
 *
 * Module code is always strict, which keeps this simple: there's no `with`,
 * no sloppy direct `eval` introducing bindings, and function declarations in
 * blocks are block-scoped (no Annex B hoisting). Imports live in the module
 * scope, where acorn already rejects any redeclaration, so a reference
 * resolves to an import exactly when no enclosing non-module scope declares
 * its name. Declarations are collected while walking and references resolved
 * afterwards, so hoisted `var`s and functions declared after their use count.
 */

/** Loose view of an acorn (ESTree) node: we only read a few fields per type */
export interface AnyNode {
  type: string;
  start: number;
  end: number;
  [key: string]: any;
}

/**
 * How a reference must be rewritten: "plain" `x` → `ns.x`; "callee" `x()` →
 * `(0, ns.x)()` so the callee's `this` stays undefined; "shorthand" `{ x }`
 * → `{ x: ns.x }`.
 */
export type ReferenceKind = "plain" | "callee" | "shorthand" | "typeof";

export interface ModuleSyntaxVisitor {
  importReference(node: AnyNode, kind: ReferenceKind): void;
  /**
   * `arguments` outside any non-arrow function: in a module it's a global
   * lookup (a ReferenceError unless the global object has one)
   */
  moduleArguments(node: AnyNode, kind: ReferenceKind): void;
  importMeta(node: AnyNode): void;
  dynamicImport(node: AnyNode): void;
  /** An `await` (or `for await`) outside any function: top-level await */
  topLevelAwait(): void;
}

class Scope {
  readonly names = new Set<string>();
  constructor(
    readonly parent: Scope | undefined,
    /** Whether `var` declarations hoist to this scope */
    readonly isVarScope: boolean
  ) {}

  get varScope(): Scope {
    let scope: Scope = this;
    while (!scope.isVarScope) scope = scope.parent!;
    return scope;
  }

  /** Whether `name` is declared by this or an enclosing non-module scope */
  shadows(name: string): boolean {
    for (let s: Scope | undefined = this; s?.parent; s = s.parent) {
      if (s.names.has(name)) return true;
    }
    return false;
  }
}

interface Reference {
  node: AnyNode;
  scope: Scope;
  kind: ReferenceKind;
}

const SKIPPED_KEYS = new Set(["type", "start", "end", "loc", "range"]);

function isNode(value: unknown): value is AnyNode {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as AnyNode).type === "string"
  );
}

class ReferenceWalker {
  readonly #importNames: ReadonlySet<string>;
  readonly #visitor: ModuleSyntaxVisitor;
  readonly #references: Reference[] = [];
  /** How many functions the walk is inside */
  #functionDepth = 0;

  constructor(importNames: ReadonlySet<string>, visitor: ModuleSyntaxVisitor) {
    this.#importNames = importNames;
    this.#visitor = visitor;
  }

  walkProgram(program: AnyNode): void {
    const moduleScope = new Scope(undefined, true);
    for (const statement of program.body) this.#visit(statement, moduleScope);
    for (const { node, scope, kind } of this.#references) {
      if (scope.shadows(node.name)) continue;
      if (node.name === "arguments") this.#visitor.moduleArguments(node, kind);
      else this.#visitor.importReference(node, kind);
    }
  }

  #reference(node: AnyNode, scope: Scope, kind: ReferenceKind): void {
    // Only imported names (and `arguments`) can need rewriting, so skip
    // everything else early
    if (this.#importNames.has(node.name) || node.name === "arguments") {
      this.#references.push({ node, scope, kind });
    }
  }

  #visitChildren(node: AnyNode, scope: Scope): void {
    for (const key in node) {
      if (SKIPPED_KEYS.has(key)) continue;
      const value = node[key];
      if (Array.isArray(value)) {
        for (const child of value) if (isNode(child)) this.#visit(child, scope);
      } else if (isNode(value)) {
        this.#visit(value, scope);
      }
    }
  }

  #visitAll(nodes: (AnyNode | null)[], scope: Scope): void {
    for (const node of nodes) if (node) this.#visit(node, scope);
  }

  #visit(node: AnyNode, scope: Scope): void {
    switch (node.type) {
      case "Identifier":
        return this.#reference(node, scope, "plain");
      // Declarations whose bindings the transform handles itself
      case "ImportDeclaration":
      case "ExportAllDeclaration":
        return;
      case "ExportNamedDeclaration":
        if (node.declaration) this.#visit(node.declaration, scope);
        return;
      case "ExportDefaultDeclaration":
        return this.#visit(node.declaration, scope);
      case "MetaProperty":
        if (node.meta.name === "import") this.#visitor.importMeta(node);
        return;
      case "ImportExpression":
        this.#visitor.dynamicImport(node);
        return this.#visitChildren(node, scope);
      // Non-reference identifiers
      case "MemberExpression":
        this.#visit(node.object, scope);
        if (node.computed) this.#visit(node.property, scope);
        return;
      case "Property":
        return this.#visitProperty(node, scope);
      case "LabeledStatement":
        return this.#visit(node.body, scope);
      case "BreakStatement":
      case "ContinueStatement":
        return;
      case "AwaitExpression":
        if (this.#functionDepth === 0) this.#visitor.topLevelAwait();
        return this.#visitChildren(node, scope);
      case "UnaryExpression":
        if (node.operator === "typeof" && node.argument.type === "Identifier") {
          return this.#reference(node.argument, scope, "typeof");
        }
        return this.#visit(node.argument, scope);
      // Calls: keep `this` undefined when calling an imported function
      case "CallExpression":
        if (node.callee.type === "Identifier") {
          this.#reference(node.callee, scope, "callee");
        } else {
          this.#visit(node.callee, scope);
        }
        return this.#visitAll(node.arguments, scope);
      case "TaggedTemplateExpression":
        if (node.tag.type === "Identifier") {
          this.#reference(node.tag, scope, "callee");
        } else {
          this.#visit(node.tag, scope);
        }
        return this.#visit(node.quasi, scope);
      // Declarations and scopes
      case "VariableDeclaration": {
        const target = node.kind === "var" ? scope.varScope : scope;
        for (const declarator of node.declarations) {
          this.#declare(declarator.id, target, scope);
          if (declarator.init) this.#visit(declarator.init, scope);
        }
        return;
      }
      case "FunctionDeclaration":
        // (anonymous only as `export default function () {}`)
        if (node.id) scope.names.add(node.id.name);
        return this.#visitFunction(node, scope);
      case "FunctionExpression":
      case "ArrowFunctionExpression":
        return this.#visitFunction(node, scope);
      case "ClassDeclaration":
        if (node.id) scope.names.add(node.id.name);
        return this.#visitClass(node, scope);
      case "ClassExpression":
        return this.#visitClass(node, scope);
      case "BlockStatement":
        return this.#visitAll(node.body, new Scope(scope, false));
      case "StaticBlock":
        return this.#visitAll(node.body, new Scope(scope, true));
      case "ForOfStatement":
        if (node.await && this.#functionDepth === 0) this.#visitor.topLevelAwait();
        return this.#visitChildren(node, new Scope(scope, false));
      case "ForStatement":
      case "ForInStatement":
        // The head's lexical declarations are scoped to the loop
        return this.#visitChildren(node, new Scope(scope, false));
      case "SwitchStatement":
        this.#visit(node.discriminant, scope);
        return this.#visitAll(node.cases, new Scope(scope, false));
      case "CatchClause": {
        const catchScope = new Scope(scope, false);
        if (node.param) this.#declare(node.param, catchScope, catchScope);
        return this.#visit(node.body, catchScope);
      }
      default:
        return this.#visitChildren(node, scope);
    }
  }

  #visitProperty(node: AnyNode, scope: Scope): void {
    if (node.computed) this.#visit(node.key, scope);
    const value = node.value;
    if (node.shorthand && value.type === "Identifier") {
      // `{ x }` in an object literal or a destructuring assignment
      this.#reference(value, scope, "shorthand");
    } else if (
      node.shorthand &&
      value.type === "AssignmentPattern" &&
      value.left.type === "Identifier"
    ) {
      // `({ x = 1 } = object)`
      this.#reference(value.left, scope, "shorthand");
      this.#visit(value.right, scope);
    } else {
      this.#visit(value, scope);
    }
  }

  /**
   * Declares the names bound by `pattern` in `target`, visiting default
   * values and computed keys as expressions evaluated in `scope`.
   */
  #declare(pattern: AnyNode, target: Scope, scope: Scope): void {
    switch (pattern.type) {
      case "Identifier":
        target.names.add(pattern.name);
        return;
      case "ObjectPattern":
        for (const property of pattern.properties) {
          if (property.type === "RestElement") {
            this.#declare(property.argument, target, scope);
          } else {
            if (property.computed) this.#visit(property.key, scope);
            this.#declare(property.value, target, scope);
          }
        }
        return;
      case "ArrayPattern":
        for (const element of pattern.elements) {
          if (element) this.#declare(element, target, scope);
        }
        return;
      case "RestElement":
        return this.#declare(pattern.argument, target, scope);
      case "AssignmentPattern":
        this.#declare(pattern.left, target, scope);
        return this.#visit(pattern.right, scope);
      default:
        // Only member expressions remain, which can't appear in declarations
        return this.#visit(pattern, scope);
    }
  }

  #visitFunction(node: AnyNode, scope: Scope): void {
    // Parameters (and a function expression's own name) get a scope of their
    // own: default values can't see declarations in the body
    const paramScope = new Scope(scope, true);
    if (node.type === "FunctionExpression" && node.id) {
      paramScope.names.add(node.id.name);
    }
    // Non-arrow functions bind their own `arguments`
    if (node.type !== "ArrowFunctionExpression") paramScope.names.add("arguments");
    this.#functionDepth++;
    for (const param of node.params) this.#declare(param, paramScope, paramScope);
    if (node.body.type === "BlockStatement") {
      this.#visitAll(node.body.body, new Scope(paramScope, true));
    } else {
      this.#visit(node.body, paramScope);
    }
    this.#functionDepth--;
  }

  #visitClass(node: AnyNode, scope: Scope): void {
    const classScope = new Scope(scope, false);
    if (node.id) classScope.names.add(node.id.name);
    if (node.superClass) this.#visit(node.superClass, classScope);
    for (const element of node.body.body) {
      if (element.type === "StaticBlock") {
        this.#visit(element, classScope);
        continue;
      }
      // MethodDefinition or PropertyDefinition: a non-computed key is a name
      if (element.computed) this.#visit(element.key, classScope);
      if (element.value) this.#visit(element.value, classScope);
    }
  }
}

/**
 * Walks a module's AST, reporting unshadowed references to `importNames`,
 * `import.meta` and `import()` to `visitor`.
 */
export function walkModule(
  program: AnyNode,
  importNames: ReadonlySet<string>,
  visitor: ModuleSyntaxVisitor
): void {
  new ReferenceWalker(importNames, visitor).walkProgram(program);
}
