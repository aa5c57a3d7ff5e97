import assert from "node:assert/strict";
import { test } from "node:test";
import { Compatibility } from "../../src/shared/compat.js";
import { LogLevel, NoOpLog } from "../../src/shared/log.js";
import {
  Option,
  OptionType,
  Plugin,
  logOptions,
  type OptionMetadata,
  type PluginContext,
  type PluginSignature,
} from "../../src/shared/plugin.js";
import { TestLog } from "../helpers/log.js";
import { HostRegistry } from "../../src/shared/registry.js";

function pluginContext(): PluginContext {
  return {
    log: new NoOpLog(),
    compat: new Compatibility(),
    rootPath: process.cwd(),
    registry: new HostRegistry(),
  };
}

interface ParentOptions {
  parentString?: string;
  parentFlag?: boolean;
}
class ParentPlugin extends Plugin<ParentOptions> implements ParentOptions {
  @Option({ type: OptionType.STRING, description: "A string", alias: "s" })
  parentString?: string;

  @Option({ type: OptionType.BOOLEAN, negatable: true })
  parentFlag?: boolean;

  // Not an option: never assigned from options
  notAnOption = "initial";

  constructor(ctx: PluginContext, options?: ParentOptions) {
    super(ctx);
    this.assignOptions(options);
  }
}

interface ChildOptions extends ParentOptions {
  childNumber?: number;
}
class ChildPlugin extends ParentPlugin implements ChildOptions {
  @Option({ type: OptionType.NUMBER, name: "child-num" })
  childNumber?: number;

  constructor(ctx: PluginContext, options?: ChildOptions) {
    super(ctx, options);
    // Field initialisers for this class ran after the parent's constructor
    this.assignOptions(options);
  }
}

interface SiblingOptions {
  siblingArray?: string[];
}
class SiblingPlugin extends ParentPlugin implements SiblingOptions {
  @Option({ type: OptionType.ARRAY })
  siblingArray?: string[];

  constructor(ctx: PluginContext, options?: SiblingOptions & ParentOptions) {
    super(ctx, options);
    this.assignOptions(options);
  }
}

class NoOptionsPlugin extends Plugin {
  constructor(ctx: PluginContext, options?: Record<string, unknown>) {
    super(ctx);
    this.assignOptions(options);
  }
}

test("Option: collects metadata on the class prototype", () => {
  const opts = ParentPlugin.prototype.opts!;
  assert.ok(opts instanceof Map);
  assert.deepEqual([...opts.keys()], ["parentString", "parentFlag"]);
  assert.deepEqual(opts.get("parentString"), {
    type: OptionType.STRING,
    description: "A string",
    alias: "s",
  });
  assert.deepEqual(opts.get("parentFlag"), {
    type: OptionType.BOOLEAN,
    negatable: true,
  });
});

test("Option: subclasses get their own map including inherited options", () => {
  const parent = ParentPlugin.prototype.opts!;
  const child = ChildPlugin.prototype.opts!;
  const sibling = SiblingPlugin.prototype.opts!;
  assert.notEqual(child, parent);
  assert.notEqual(sibling, parent);
  assert.notEqual(sibling, child);
  assert.deepEqual([...child.keys()], ["parentString", "parentFlag", "childNumber"]);
  assert.deepEqual([...sibling.keys()], ["parentString", "parentFlag", "siblingArray"]);
  // The parent's map doesn't get the subclasses' options
  assert.deepEqual([...parent.keys()], ["parentString", "parentFlag"]);
  // Inherited metadata is the same
  assert.equal(child.get("parentString"), parent.get("parentString"));
  assert.deepEqual(child.get("childNumber"), {
    type: OptionType.NUMBER,
    name: "child-num",
  });
});

test("Option: classes without options have no metadata", () => {
  assert.equal(NoOptionsPlugin.prototype.opts, undefined);
  const plugin = new NoOptionsPlugin(pluginContext(), { anything: 1 });
  assert.equal(plugin.opts, undefined);
  assert.equal((plugin as any).anything, undefined);
});

test("Plugin: opts: instances see their class's metadata", () => {
  const ctx = pluginContext();
  assert.equal(new ParentPlugin(ctx).opts, ParentPlugin.prototype.opts);
  assert.equal(new ChildPlugin(ctx).opts, ChildPlugin.prototype.opts);
});

test("Plugin: constructor: stores the context", () => {
  const ctx = pluginContext();
  assert.equal(new ParentPlugin(ctx).ctx, ctx);
});

test("Plugin: assignOptions: copies declared options onto the instance", () => {
  const plugin = new ChildPlugin(pluginContext(), {
    parentString: "value",
    parentFlag: false,
    childNumber: 42,
    // Undeclared options are ignored
    notAnOption: "changed",
    unknown: true,
  } as ChildOptions);
  assert.equal(plugin.parentString, "value");
  assert.equal(plugin.parentFlag, false);
  assert.equal(plugin.childNumber, 42);
  assert.equal(plugin.notAnOption, "initial");
  assert.equal("unknown" in plugin, false);
});

test("Plugin: assignOptions: missing options are undefined", () => {
  const partial = new ChildPlugin(pluginContext(), { childNumber: 1 });
  assert.equal(partial.parentString, undefined);
  assert.equal(partial.parentFlag, undefined);
  assert.equal(partial.childNumber, 1);

  const none = new ChildPlugin(pluginContext());
  assert.equal(none.parentString, undefined);
  assert.equal(none.childNumber, undefined);
  assert.equal(none.notAnOption, "initial");
});

test("Plugin: assignOptions: a subclass only assigns through its own metadata", () => {
  // The parent's options are declared on the sibling too, so they're set;
  // the child's are not declared on the sibling
  const plugin = new SiblingPlugin(pluginContext(), {
    parentString: "parent",
    siblingArray: ["a"],
    childNumber: 3,
  } as SiblingOptions & ChildOptions);
  assert.equal(plugin.parentString, "parent");
  assert.deepEqual(plugin.siblingArray, ["a"]);
  assert.equal("childNumber" in plugin, false);
});

// One option of every type, for logOptions
interface EveryOptions {
  none?: string;
  boolean?: boolean;
  number?: number;
  string?: string;
  stringPositional?: string;
  booleanString?: boolean | string;
  booleanNumber?: boolean | number;
  array?: string[];
  object?: Record<string, string>;
  renamed?: string;
  custom?: string;
  hidden?: string;
  durableObjectsPersist?: boolean;
}
class EveryPlugin extends Plugin<EveryOptions> implements EveryOptions {
  @Option({ type: OptionType.NONE })
  none?: string;
  @Option({ type: OptionType.BOOLEAN })
  boolean?: boolean;
  @Option({ type: OptionType.NUMBER })
  number?: number;
  @Option({ type: OptionType.STRING })
  string?: string;
  @Option({ type: OptionType.STRING_POSITIONAL })
  stringPositional?: string;
  @Option({ type: OptionType.BOOLEAN_STRING })
  booleanString?: boolean | string;
  @Option({ type: OptionType.BOOLEAN_NUMBER })
  booleanNumber?: boolean | number;
  @Option({ type: OptionType.ARRAY })
  array?: string[];
  @Option({ type: OptionType.OBJECT })
  object?: Record<string, string>;
  @Option({ type: OptionType.STRING, logName: "Custom Name" })
  renamed?: string;
  @Option({
    type: OptionType.STRING,
    logValue: (value: string) => value.replace(/./g, "*"),
  })
  custom?: string;
  @Option({ type: OptionType.STRING, logValue: () => undefined })
  hidden?: string;
  @Option({ type: OptionType.BOOLEAN })
  durableObjectsPersist?: boolean;

  constructor(ctx: PluginContext, options?: EveryOptions) {
    super(ctx);
    this.assignOptions(options);
  }
}

class OtherPlugin extends Plugin<{ otherOption?: string }> {
  @Option({ type: OptionType.STRING })
  otherOption?: string;
  constructor(ctx: PluginContext, options?: { otherOption?: string }) {
    super(ctx);
    this.assignOptions(options);
  }
}

function debugLogs(
  plugins: [string, PluginSignature][],
  options: Record<string, Record<string, unknown>>
): string[] {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(plugins, log, options);
  return log.logsAtLevel(LogLevel.DEBUG);
}

test("logOptions: formats every option type", () => {
  const logs = debugLogs([["EveryPlugin", EveryPlugin]], {
    EveryPlugin: {
      none: "never logged",
      boolean: true,
      number: 42,
      string: "text",
      stringPositional: "positional",
      booleanString: "also text",
      booleanNumber: 8787,
      array: ["a", "b", "c"],
      object: { KEY1: "value1", KEY2: "value2" },
      renamed: "renamed value",
      custom: "secret",
      hidden: "hidden value",
      durableObjectsPersist: false,
    },
  });
  assert.deepEqual(logs, [
    "Options:",
    "- Boolean: true",
    "- Number: 42",
    "- String: text",
    "- String Positional: positional",
    "- Boolean String: also text",
    "- Boolean Number: 8787",
    "- Array: a, b, c",
    "- Object: KEY1, KEY2",
    "- Custom Name: renamed value",
    "- Custom: ******",
    "- Durable Objects Persist: false",
  ]);
});

test("logOptions: skips undefined options", () => {
  const logs = debugLogs([["EveryPlugin", EveryPlugin]], {
    EveryPlugin: { number: 0, booleanString: true, string: "" },
  });
  assert.deepEqual(logs, [
    "Options:",
    "- Number: 0",
    "- String: ",
    "- Boolean String: true",
  ]);
  assert.deepEqual(debugLogs([["EveryPlugin", EveryPlugin]], { EveryPlugin: {} }), [
    "Options:",
  ]);
});

test("logOptions: formats empty arrays and objects", () => {
  const logs = debugLogs([["EveryPlugin", EveryPlugin]], {
    EveryPlugin: { array: [], object: {} },
  });
  assert.deepEqual(logs, ["Options:", "- Array: ", "- Object: "]);
});

test("logOptions: logs each plugin's options in plugin order", () => {
  const logs = debugLogs(
    [
      ["OtherPlugin", OtherPlugin],
      ["EveryPlugin", EveryPlugin],
      ["ChildPlugin", ChildPlugin],
    ],
    {
      EveryPlugin: { number: 1 },
      OtherPlugin: { otherOption: "other" },
      ChildPlugin: { childNumber: 2, parentString: "parent" },
    }
  );
  assert.deepEqual(logs, [
    "Options:",
    "- Other Option: other",
    "- Number: 1",
    "- Parent String: parent",
    "- Child Number: 2",
  ]);
});

test("logOptions: logs at debug level only", () => {
  const info = new TestLog(LogLevel.INFO);
  logOptions([["OtherPlugin", OtherPlugin]], info, {
    OtherPlugin: { otherOption: "other" },
  });
  assert.deepEqual(info.logs, []);

  const debug = new TestLog(LogLevel.DEBUG);
  logOptions([["OtherPlugin", OtherPlugin]], debug, {
    OtherPlugin: { otherOption: "other" },
  });
  assert.deepEqual(debug.logs, [
    [LogLevel.DEBUG, "Options:"],
    [LogLevel.DEBUG, "- Other Option: other"],
  ]);
});

test("logOptions: calls logValue with the option's value", () => {
  const seen: unknown[] = [];
  const metadata: OptionMetadata = {
    type: OptionType.OBJECT,
    logValue: (value) => {
      seen.push(value);
      return "custom";
    },
  };
  class ObjectPlugin extends Plugin<{ bindings?: Record<string, unknown> }> {
    @Option(metadata)
    bindings?: Record<string, unknown>;
    constructor(ctx: PluginContext) {
      super(ctx);
    }
  }
  const bindings = { A: 1 };
  const logs = debugLogs([["ObjectPlugin", ObjectPlugin]], {
    ObjectPlugin: { bindings },
  });
  assert.deepEqual(logs, ["Options:", "- Bindings: custom"]);
  assert.deepEqual(seen, [bindings]);
  assert.equal(seen[0], bindings);
});
