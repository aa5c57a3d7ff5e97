import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { buildHelp, ParseError, parseArgv } from "../../src/cli/args.js";
import { argName, sectionTitle } from "../../src/cli/help.js";
import {
  type Context,
  MiniflareError,
  Option,
  OptionType,
  Plugin,
  type PluginContext,
} from "../../src/shared/index.js";

// Small fake plugins with one option of every OptionType, so these tests don't
// depend on the real plugins.
const kSymbol = Symbol("kSymbol");

class CorePlugin extends Plugin {
  @Option({ type: OptionType.NONE })
  script?: string;
  @Option({ type: OptionType.STRING_POSITIONAL, name: "script" })
  scriptPath?: string;
  @Option({ type: OptionType.STRING, name: "wrangler-config", alias: "c", description: "Path to wrangler.toml" })
  wranglerConfigPath?: string;
  @Option({ type: OptionType.BOOLEAN, alias: "m", description: "Enable modules" })
  modules?: boolean;
  @Option({ type: OptionType.OBJECT, typeFormat: "TYPE=GLOB", description: "Modules import rule" })
  modulesRules?: { type: string; include: string[] }[];
  @Option({ type: OptionType.ARRAY, name: "compat-flag", description: "Control specific backwards-incompatible changes" })
  compatibilityFlags?: string[];
  @Option({ type: OptionType.BOOLEAN, alias: "w", description: "Watch files for changes" })
  watch?: boolean;
  @Option({ type: OptionType.BOOLEAN, negatable: true, description: "Enable update checker (enabled by default)" })
  updateCheck?: boolean;
  @Option({ type: OptionType.STRING })
  [kSymbol]?: string;

  constructor(ctx: PluginContext, options?: Context) {
    super(ctx);
    this.assignOptions(options);
  }
}

class HTTPPlugin extends Plugin {
  @Option({ type: OptionType.STRING, alias: "H", description: "Host for HTTP(S) server to listen on" })
  host?: string;
  @Option({ type: OptionType.NUMBER, alias: "p", description: "Port for HTTP(S) server to listen on" })
  port?: number;
  @Option({ type: OptionType.BOOLEAN_STRING, alias: "O", description: "Automatically open browser to URL" })
  open?: boolean | string;
  @Option({ type: OptionType.BOOLEAN_STRING, negatable: true, description: "Path for cached Request cf object from Cloudflare" })
  cfFetch?: boolean | string;
  @Option({ type: OptionType.BOOLEAN_NUMBER, description: "Enable the inspector (on optional port)" })
  inspect?: boolean | number;

  constructor(ctx: PluginContext, options?: Context) {
    super(ctx);
    this.assignOptions(options);
  }
}

class KVPlugin extends Plugin {
  @Option({ type: OptionType.ARRAY, name: "kv", alias: "k", description: "KV namespace to bind" })
  kvNamespaces?: string[];
  @Option({ type: OptionType.BOOLEAN_STRING, description: "Persist KV data (to optional path)" })
  kvPersist?: boolean | string;

  constructor(ctx: PluginContext, options?: Context) {
    super(ctx);
    this.assignOptions(options);
  }
}

class DurableObjectsPlugin extends Plugin {
  @Option({
    type: OptionType.OBJECT,
    name: "do",
    alias: "o",
    typeFormat: "NAME=CLASS[@MOUNT]",
    description: "Durable Object to bind",
    fromEntries: (entries) =>
      Object.fromEntries(
        entries.map(([name, value]) => {
          const [className, scriptName] = value.split("@");
          return [name, { className, scriptName }];
        })
      ),
  })
  durableObjects?: Record<string, { className: string; scriptName?: string }>;
  @Option({ type: OptionType.BOOLEAN_STRING, name: "do-persist", description: "Persist Durable Object data (to optional path)" })
  durableObjectsPersist?: boolean | string;

  constructor(ctx: PluginContext, options?: Context) {
    super(ctx);
    this.assignOptions(options);
  }
}

class BindingsPlugin extends Plugin {
  @Option({ type: OptionType.OBJECT, alias: "b", description: "Binds variable/secret to environment" })
  bindings?: Record<string, string>;

  constructor(ctx: PluginContext, options?: Context) {
    super(ctx);
    this.assignOptions(options);
  }
}

// No options: no help section
class EmptyPlugin extends Plugin {
  constructor(ctx: PluginContext) {
    super(ctx);
  }
}

const plugins = { CorePlugin, HTTPPlugin, KVPlugin, DurableObjectsPlugin, EmptyPlugin, BindingsPlugin };
const parse = (...argv: string[]) => parseArgv(plugins, argv);

function assertParseError(argv: string[], code: string, message?: string): ParseError {
  let caught: unknown;
  try {
    parse(...argv);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ParseError, `expected ParseError for ${JSON.stringify(argv)}, got ${caught}`);
  assert.equal(caught.code, code);
  if (message !== undefined) assert.equal(caught.message, message);
  return caught;
}
const assertValueError = (argv: string[], message: string) =>
  assertParseError(argv, "ERR_VALUE", message);

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
const help = (width?: number, execName = "miniflare") =>
  stripAnsi(buildHelp(plugins, execName, width));

// parseArgv: general

test("parseArgv: no arguments gives an empty object", () => {
  assert.deepEqual(parse(), {});
});

test("parseArgv: only given options are set, never as undefined", () => {
  const options = parse("--port", "8787");
  assert.deepEqual(Object.keys(options), ["port"]);
  assert.ok(Object.values(options).every((value) => value !== undefined));
});

test("parseArgv: flag names derive from keys, names and aliases", () => {
  assert.equal(argName("kvPersist", { type: OptionType.BOOLEAN_STRING }), "kv-persist");
  assert.equal(argName("modulesRules", { type: OptionType.OBJECT }), "modules-rule");
  assert.equal(argName("crons", { type: OptionType.ARRAY }), "cron");
  assert.equal(argName("kvNamespaces", { type: OptionType.ARRAY, name: "kv" }), "kv");
  assert.equal(argName("bindings", { type: OptionType.OBJECT }), "binding");
  // Only lists lose a plural "s"
  assert.equal(argName("modules", { type: OptionType.BOOLEAN }), "modules");
  assert.deepEqual(parse("-c", "w.toml"), { wranglerConfigPath: "w.toml" });
  assert.deepEqual(parse("--wrangler-config", "w.toml"), { wranglerConfigPath: "w.toml" });
  assert.deepEqual(parse("--modules-rule", "Text=*.txt"), { modulesRules: { Text: "*.txt" } });
});

test("parseArgv: parses a full command line", () => {
  assert.deepEqual(
    parse(
      "worker.js", "-c", "wrangler.toml", "-mw", "--modules-rule", "Text=**/*.txt",
      "--compat-flag", "a", "--compat-flag", "b", "--no-update-check", "-H", "localhost",
      "-p", "8787", "-O", "--cf-fetch", "cf.json", "--inspect", "9229", "-k", "NS1",
      "--kv", "NS2", "--kv-persist", "-o", "OBJ=Object@api", "--do-persist=./do",
      "-b", "KEY=value", "--binding", "K2=v=2"
    ),
    {
      scriptPath: "worker.js",
      wranglerConfigPath: "wrangler.toml",
      modules: true,
      modulesRules: { Text: "**/*.txt" },
      compatibilityFlags: ["a", "b"],
      watch: true,
      updateCheck: false,
      host: "localhost",
      port: 8787,
      open: true,
      cfFetch: "cf.json",
      inspect: 9229,
      kvNamespaces: ["NS1", "NS2"],
      kvPersist: true,
      durableObjects: { OBJ: { className: "Object", scriptName: "api" } },
      durableObjectsPersist: "./do",
      bindings: { KEY: "value", K2: "v=2" },
    }
  );
});

test("parseArgv: reads the argv it is given, not process.argv", () => {
  const saved = process.argv;
  process.argv = [saved[0], "miniflare", "--port", "1"];
  try {
    assert.deepEqual(parse("--host", "h"), { host: "h" });
  } finally {
    process.argv = saved;
  }
});

// STRING_POSITIONAL

test("parseArgv: STRING_POSITIONAL: sets the script path", () => {
  assert.deepEqual(parse("worker.js"), { scriptPath: "worker.js" });
  assert.deepEqual(parse("--watch", "worker.js", "--port", "1"), {
    watch: true,
    scriptPath: "worker.js",
    port: 1,
  });
});

test("parseArgv: STRING_POSITIONAL: numeric-looking paths stay strings", () => {
  assert.deepEqual(parse("123"), { scriptPath: "123" });
});

test("parseArgv: STRING_POSITIONAL: accepts a dash-prefixed path after --", () => {
  assert.deepEqual(parse("--watch", "--", "-worker.js"), { watch: true, scriptPath: "-worker.js" });
  assert.deepEqual(parse("-"), { scriptPath: "-" });
});

test("parseArgv: STRING_POSITIONAL: more than one is an error", () => {
  assertValueError(
    ["a.js", "b.js"],
    'Unexpected value for script: ["a.js","b.js"] (expected string)'
  );
  assertValueError(
    ["a.js", "--", "b.js"],
    'Unexpected value for script: ["a.js","b.js"] (expected string)'
  );
});

test("parseArgv: STRING_POSITIONAL: positionals without a positional option are an error", () => {
  assert.throws(
    () => parseArgv({ HTTPPlugin }, ["worker.js"]),
    (e: any) => e instanceof ParseError && e.code === "ERR_OPTION" && e.message === "Unexpected argument: worker.js"
  );
});

test("parseArgv: STRING_POSITIONAL: at most one may be declared", () => {
  class OtherPlugin extends Plugin {
    @Option({ type: OptionType.STRING_POSITIONAL })
    other?: string;
    constructor(ctx: PluginContext) {
      super(ctx);
    }
  }
  assert.throws(() => parseArgv({ CorePlugin, OtherPlugin }, []), {
    name: "TypeError",
    message: "Multiple positional options: scriptPath, other",
  });
});

// BOOLEAN

test("parseArgv: BOOLEAN: bare flag, alias and short groups are true", () => {
  assert.deepEqual(parse("--watch"), { watch: true });
  assert.deepEqual(parse("-w"), { watch: true });
  assert.deepEqual(parse("-mw"), { modules: true, watch: true });
});

test("parseArgv: BOOLEAN: --no-flag and explicit values", () => {
  assert.deepEqual(parse("--no-watch"), { watch: false });
  assert.deepEqual(parse("--no-update-check"), { updateCheck: false });
  assert.deepEqual(parse("--watch=false"), { watch: false });
  assert.deepEqual(parse("--watch=true"), { watch: true });
  assert.deepEqual(parse("--watch", "false"), { watch: false });
});

test("parseArgv: BOOLEAN: never consumes the next token", () => {
  assert.deepEqual(parse("--watch", "yes"), { watch: true, scriptPath: "yes" });
  assert.deepEqual(parse("-w", "worker.js"), { watch: true, scriptPath: "worker.js" });
  assert.deepEqual(parse("--modules", "1"), { modules: true, scriptPath: "1" });
});

test("parseArgv: BOOLEAN: non-boolean values are an error", () => {
  assertValueError(["--watch=yes"], 'Unexpected value for --watch: "yes" (expected boolean)');
  assertValueError(["-w=1"], 'Unexpected value for --watch: "1" (expected boolean)');
});

test("parseArgv: BOOLEAN: when repeated, the last wins (so an appended --no-watch turns it off)", () => {
  assert.deepEqual(parse("--watch", "--no-watch"), { watch: false });
  assert.deepEqual(parse("--no-watch", "--watch"), { watch: true });
  assert.deepEqual(parse("--watch", "-w"), { watch: true });
});

test("parseArgv: BOOLEAN_STRING: a negation is the last word; two values are an error", () => {
  assert.deepEqual(parse("--cf-fetch", "--no-cf-fetch"), { cfFetch: false });
  assert.deepEqual(parse("--cf-fetch", "a.json", "--no-cf-fetch"), { cfFetch: false });
  assertValueError(["--cf-fetch", "a.json", "--cf-fetch", "b.json"], 'Unexpected value for --cf-fetch: ["a.json","b.json"] (expected boolean/string)');
});

// NUMBER

test("parseArgv: NUMBER: parses numbers", () => {
  assert.deepEqual(parse("--port", "8787"), { port: 8787 });
  assert.deepEqual(parse("-p", "0"), { port: 0 });
  assert.deepEqual(parse("--port=1.5"), { port: 1.5 });
  assert.deepEqual(parse("-p=80"), { port: 80 });
});

test("parseArgv: NUMBER: accepts attached and negative values, like yargs", () => {
  assert.deepEqual(parse("-p8787"), { port: 8787 });
  assert.deepEqual(parse("--port", "-1"), { port: -1 });
});

test("parseArgv: NUMBER: rejects non-numbers", () => {
  assertValueError(["--port", "abc"], 'Unexpected value for --port: "abc" (expected number)');
  assertValueError(["--port=Infinity"], 'Unexpected value for --port: "Infinity" (expected number)');
  // A bare flag reads as true, as in Miniflare 2's message
  assertValueError(["--port"], "Unexpected value for --port: true (expected number)");
  assertValueError(["--port="], "Unexpected value for --port: true (expected number)");
  assertValueError(["--port", "--watch"], "Unexpected value for --port: true (expected number)");
  assertValueError(["--no-port"], "Unexpected value for --port: false (expected number)");
});

test("parseArgv: NUMBER: repeating is an error", () => {
  assertValueError(["--port", "1", "-p", "2"], "Unexpected value for --port: [1,2] (expected number)");
});

// STRING

test("parseArgv: STRING: parses strings, keeping numbers as strings", () => {
  assert.deepEqual(parse("--host", "127.0.0.1"), { host: "127.0.0.1" });
  assert.deepEqual(parse("-H", "1"), { host: "1" });
  assert.deepEqual(parse("--host=a=b"), { host: "a=b" });
});

test("parseArgv: STRING: repeating or negating is an error", () => {
  assertValueError(["--host", "a", "-H", "b"], 'Unexpected value for --host: ["a","b"] (expected string)');
  assertValueError(["--no-host"], "Unexpected value for --host: false (expected string)");
});

// BOOLEAN_STRING

test("parseArgv: BOOLEAN_STRING: bare flag is true, value is a string", () => {
  assert.deepEqual(parse("--kv-persist"), { kvPersist: true });
  assert.deepEqual(parse("--kv-persist", "./data"), { kvPersist: "./data" });
  assert.deepEqual(parse("--kv-persist=./data"), { kvPersist: "./data" });
  assert.deepEqual(parse("-O", "http://localhost:8787/"), { open: "http://localhost:8787/" });
  assert.deepEqual(parse("-O=http://localhost/"), { open: "http://localhost/" });
  assert.deepEqual(parse("--no-cf-fetch"), { cfFetch: false });
});

test("parseArgv: BOOLEAN_STRING: numbers become strings", () => {
  assert.deepEqual(parse("--kv-persist", "1"), { kvPersist: "1" });
  assert.deepEqual(parse("--open=8080"), { open: "8080" });
});

test("parseArgv: BOOLEAN_STRING: doesn't consume a following flag", () => {
  assert.deepEqual(parse("--kv-persist", "--watch"), { watch: true, kvPersist: true });
  assert.deepEqual(parse("-wO", "-m"), { modules: true, watch: true, open: true });
  assert.deepEqual(parse("-wO", "url"), { watch: true, open: "url" });
  assert.deepEqual(parse("-mO=x", "worker.js"), { scriptPath: "worker.js", modules: true, open: "x" });
  assert.deepEqual(parse("-O8080"), { open: "8080" });
});

test("parseArgv: BOOLEAN_STRING: repeating is an error", () => {
  assertValueError(
    ["--kv-persist", "--kv-persist", "data"],
    'Unexpected value for --kv-persist: [true,"data"] (expected boolean/string)'
  );
});

// Miniflare 2 quirk (spec §32 item 7), fixed: a separate token that looks like
// a script file is not taken as a BOOLEAN_STRING/BOOLEAN_NUMBER flag's value

test("parseArgv: BOOLEAN_STRING: doesn't swallow a following script path", () => {
  assert.deepEqual(parse("--kv-persist", "worker.js"), { scriptPath: "worker.js", kvPersist: true });
  assert.deepEqual(parse("-O", "worker.mjs"), { scriptPath: "worker.mjs", open: true });
  assert.deepEqual(parse("--do-persist", "src/index.ts"), {
    scriptPath: "src/index.ts",
    durableObjectsPersist: true,
  });
  for (const script of ["w.cjs", "w.mts", "w.cts", "w.jsx", "w.tsx", "W.JS"]) {
    assert.deepEqual(parse("--cf-fetch", script), { scriptPath: script, cfFetch: true });
  }
});

test("parseArgv: BOOLEAN_STRING: a path before the script is still the value", () => {
  assert.deepEqual(parse("--kv-persist", "./data", "worker.js"), {
    scriptPath: "worker.js",
    kvPersist: "./data",
  });
  assert.deepEqual(parse("worker.js", "--kv-persist", "./data"), {
    scriptPath: "worker.js",
    kvPersist: "./data",
  });
  assert.deepEqual(parse("--cf-fetch", "cf.json", "worker.js"), {
    scriptPath: "worker.js",
    cfFetch: "cf.json",
  });
});

test("parseArgv: BOOLEAN_STRING: --flag=value always takes the value", () => {
  assert.deepEqual(parse("--kv-persist=worker.js"), { kvPersist: "worker.js" });
  assert.deepEqual(parse("-O=page.js", "worker.js"), { scriptPath: "worker.js", open: "page.js" });
});

// BOOLEAN_NUMBER

test("parseArgv: BOOLEAN_NUMBER: bare flag is true, numeric value is a number", () => {
  assert.deepEqual(parse("--inspect"), { inspect: true });
  assert.deepEqual(parse("--inspect", "9229"), { inspect: 9229 });
  assert.deepEqual(parse("--inspect=9230"), { inspect: 9230 });
  assert.deepEqual(parse("--no-inspect"), { inspect: false });
});

test("parseArgv: BOOLEAN_NUMBER: only takes a separate numeric token", () => {
  assert.deepEqual(parse("--inspect", "worker.js"), { scriptPath: "worker.js", inspect: true });
  assert.deepEqual(parse("--inspect", "abc"), { scriptPath: "abc", inspect: true });
  assert.deepEqual(parse("--inspect", "9229", "worker.js"), { scriptPath: "worker.js", inspect: 9229 });
});

test("parseArgv: BOOLEAN_NUMBER: non-numeric values are an error", () => {
  assertValueError(["--inspect=abc"], 'Unexpected value for --inspect: "abc" (expected boolean/number)');
  assertValueError(
    ["--inspect", "--inspect=1"],
    "Unexpected value for --inspect: [true,1] (expected boolean/number)"
  );
});

// ARRAY

test("parseArgv: ARRAY: a single value is a one-element array", () => {
  assert.deepEqual(parse("--kv", "NS"), { kvNamespaces: ["NS"] });
  assert.deepEqual(parse("--compat-flag=1"), { compatibilityFlags: ["1"] });
});

test("parseArgv: ARRAY: repeating accumulates, aliases included", () => {
  assert.deepEqual(parse("--kv", "A", "-k", "B", "--kv=C"), { kvNamespaces: ["A", "B", "C"] });
});

test("parseArgv: ARRAY: is not greedy", () => {
  assert.deepEqual(parse("--kv", "NS", "worker.js"), { kvNamespaces: ["NS"], scriptPath: "worker.js" });
  assertValueError(
    ["--kv", "A", "B", "worker.js"],
    'Unexpected value for script: ["B","worker.js"] (expected string)'
  );
});

test("parseArgv: ARRAY: negating is an error", () => {
  assertValueError(["--no-kv"], "Unexpected value for --kv: false (expected array)");
});

// OBJECT

test("parseArgv: OBJECT: splits at first =", () => {
  assert.deepEqual(parse("--binding", "A=1", "-b", "B=x=y", "--binding=C="), {
    bindings: { A: "1", B: "x=y", C: "" },
  });
});

test("parseArgv: OBJECT: uses fromEntries when declared", () => {
  assert.deepEqual(parse("--do", "A=ClassA", "-o", "B=ClassB@mount"), {
    durableObjects: {
      A: { className: "ClassA", scriptName: undefined },
      B: { className: "ClassB", scriptName: "mount" },
    },
  });
});

test("parseArgv: OBJECT: a missing = is an error quoting the type format", () => {
  assertValueError(["--binding", "KEY"], 'Unexpected value for --binding: "KEY" (expected KEY=VALUE)');
  assertValueError(
    ["--modules-rule", "Text=*.txt", "--modules-rule", "Data"],
    'Unexpected value for --modules-rule: "Data" (expected TYPE=GLOB)'
  );
  assertValueError(["-o", "OBJECT"], 'Unexpected value for --do: "OBJECT" (expected NAME=CLASS[@MOUNT])');
  assertValueError(["--no-binding"], "Unexpected value for --binding: false (expected KEY=VALUE)");
});

// NONE, symbols, unknown options

test("parseArgv: NONE and symbol-keyed options are not flags", () => {
  assertParseError(["--script", "x"], "ERR_OPTION", "Unexpected option: --script");
  assertParseError(["--k-symbol", "x"], "ERR_OPTION", "Unexpected option: --k-symbol");
});

test("parseArgv: unknown options are an error", () => {
  assertParseError(["--bogus"], "ERR_OPTION", "Unexpected option: --bogus");
  assertParseError(["worker.js", "--bogus=1"], "ERR_OPTION", "Unexpected option: --bogus");
  assertParseError(["--no-bogus"], "ERR_OPTION", "Unexpected option: --no-bogus");
  assertParseError(["-x"], "ERR_OPTION", "Unexpected option: -x");
  assertParseError(["-mx"], "ERR_OPTION", "Unexpected option: -x");
  assertParseError(["--Watch"], "ERR_OPTION", "Unexpected option: --Watch");
  assertParseError(["--kv-namespaces", "NS"], "ERR_OPTION", "Unexpected option: --kv-namespaces");
});

test("parseArgv: unknown options: edge cases", () => {
  // yargs alone would accept these ("kv" is known, "-k" takes a value)
  assertParseError(["--kv-bogus"], "ERR_OPTION", "Unexpected option: --kv-bogus");
  assertParseError(["-kNS"], "ERR_OPTION", "Unexpected option: -N");
  assertParseError(["--no-watch=true"], "ERR_OPTION", "Unexpected option: --no-watch");
  assertParseError(["---watch"], "ERR_OPTION", "Unexpected option: ---watch");
  // A stray negative number isn't a script path
  assertParseError(["-1"], "ERR_OPTION", "Unexpected option: -1");
  // ...but values may start with "-" when attached
  assert.deepEqual(parse("--host=-x"), { host: "-x" });
});

test("parseArgv: unknown options are reported before bad values", () => {
  assertParseError(["--port", "abc", "--bogus"], "ERR_OPTION", "Unexpected option: --bogus");
});

test("parseArgv: reports the first bad value in option order", () => {
  assertValueError(
    ["--kv-persist", "a", "--kv-persist", "b", "--port", "abc"],
    'Unexpected value for --port: "abc" (expected number)'
  );
});

// Built-in flags

test("parseArgv: --help and -h throw ERR_HELP", () => {
  for (const flag of ["--help", "-h"]) {
    const error = assertParseError(["worker.js", flag], "ERR_HELP");
    assert.equal(error.message, "");
  }
  // ...even with bad values, but not with unknown options
  assertParseError(["--port", "abc", "-h"], "ERR_HELP");
  assertParseError(["-h", "--bogus"], "ERR_OPTION");
});

test("parseArgv: --version and -v throw ERR_VERSION with the version", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
  for (const flag of ["--version", "-v"]) {
    assertParseError([flag], "ERR_VERSION", pkg.version);
  }
  assertParseError(["-h", "-v"], "ERR_HELP");
});

test("parseArgv: --debug/-d and --verbose/-V are returned as debug/verbose", () => {
  assert.deepEqual(parse("-d"), { debug: true });
  assert.deepEqual(parse("--verbose", "worker.js"), { verbose: true, scriptPath: "worker.js" });
  assert.deepEqual(parse("-dV"), { debug: true, verbose: true });
  // Also when a plugin declares them (CorePlugin does)
  class LogPlugin extends Plugin {
    @Option({ type: OptionType.BOOLEAN, alias: "d", description: "Enable debug logging" })
    debug?: boolean;
    constructor(ctx: PluginContext) {
      super(ctx);
    }
  }
  assert.deepEqual(parseArgv({ LogPlugin }, ["-d", "-V"]), { debug: true, verbose: true });
});

test("parseArgv: duplicate flags across plugins are a programming error", () => {
  class ClashPlugin extends Plugin {
    @Option({ type: OptionType.STRING, alias: "p" })
    path?: string;
    constructor(ctx: PluginContext) {
      super(ctx);
    }
  }
  assert.throws(() => parseArgv({ HTTPPlugin, ClashPlugin }, []), {
    name: "TypeError",
    message: "Duplicate command-line flag: p",
  });
});

test("parseArgv: ParseError is a MiniflareError named with its code", () => {
  const error = assertParseError(["--bogus"], "ERR_OPTION");
  assert.ok(error instanceof MiniflareError);
  assert.equal(error.name, "ParseError [ERR_OPTION]");
});

// buildHelp

test("buildHelp: section titles derive from plugin class names", () => {
  assert.equal(sectionTitle("CorePlugin"), "Core Options");
  assert.equal(sectionTitle("HTTPPlugin"), "HTTP Options");
  assert.equal(sectionTitle("KVPlugin"), "KV Options");
  assert.equal(sectionTitle("D1Plugin"), "D1 Options");
  assert.equal(sectionTitle("DurableObjectsPlugin"), "Durable Objects Options");
  assert.equal(sectionTitle("HTMLRewriterPlugin"), "HTML Rewriter Options");
});

test("buildHelp: lists every flag like Miniflare 2 (not on a terminal: nothing padded)", () => {
  assert.equal(
    help(),
    `Usage: miniflare [script] [options]

Core Options:
 -h, --help              Show help [boolean]
 -v, --version           Show version number [boolean]
 -d, --debug             Enable debug logging [boolean]
 -V, --verbose           Enable verbose logging [boolean]
 -c, --wrangler-config   Path to wrangler.toml [string]
 -m, --modules           Enable modules [boolean]
     --modules-rule      Modules import rule [array:TYPE=GLOB]
     --compat-flag       Control specific backwards-incompatible changes [array]
 -w, --watch             Watch files for changes [boolean]
     --(no-)update-check Enable update checker (enabled by default) [boolean]

HTTP Options:
 -H, --host              Host for HTTP(S) server to listen on [string]
 -p, --port              Port for HTTP(S) server to listen on [number]
 -O, --open              Automatically open browser to URL [boolean/string]
     --(no-)cf-fetch     Path for cached Request cf object from Cloudflare [boolean/string]
     --inspect           Enable the inspector (on optional port) [boolean/number]

KV Options:
 -k, --kv                KV namespace to bind [array]
     --kv-persist        Persist KV data (to optional path) [boolean/string]

Durable Objects Options:
 -o, --do                Durable Object to bind [array:NAME=CLASS[@MOUNT]]
     --do-persist        Persist Durable Object data (to optional path) [boolean/string]

Bindings Options:
 -b, --binding           Binds variable/secret to environment [array:KEY=VALUE]`
  );
});

test("buildHelp: wraps descriptions to the width", () => {
  const lines = help(60).split("\n");
  assert.ok(lines.every((line) => line.length <= 60), lines.join("\n"));
  // Types are right-aligned at the width
  const rows = lines.filter((line) => line.startsWith(" ") && line.endsWith("]"));
  assert.ok(rows.length > 0 && rows.every((line) => line.length === 60), lines.join("\n"));
  const index = lines.findIndex((line) => line.includes("--compat-flag"));
  assert.equal(lines[index], "     --compat-flag       Control specific            [array]");
  assert.equal(lines[index + 1], "                         backwards-incompatible");
  assert.equal(lines[index + 2], "                         changes");
  // Wider terminals don't add padding beyond what the longest row needs
  const wide = help(1000).split("\n");
  assert.ok(wide.some((line) => line.length > 0 && / {2,}\[/.test(line)), "types aligned");
  // A terminal that reports no width (0) is treated as no terminal
  assert.equal(help(0), help());
});

test("buildHelp: uses the executable name, defaulting to MINIFLARE_EXEC_NAME", () => {
  assert.match(help(undefined, "mf"), /^Usage: mf \[script\] \[options\]\n/);
  const saved = process.env.MINIFLARE_EXEC_NAME;
  try {
    process.env.MINIFLARE_EXEC_NAME = "npx miniflare";
    assert.match(stripAnsi(buildHelp(plugins)), /^Usage: npx miniflare \[script\] \[options\]\n/);
    delete process.env.MINIFLARE_EXEC_NAME;
    assert.match(stripAnsi(buildHelp(plugins)), /^Usage: miniflare \[script\] \[options\]\n/);
  } finally {
    if (saved === undefined) delete process.env.MINIFLARE_EXEC_NAME;
    else process.env.MINIFLARE_EXEC_NAME = saved;
  }
});

test("buildHelp: without a positional option, the usage has no [script]", () => {
  const text = stripAnsi(buildHelp({ KVPlugin }, "miniflare", 80));
  assert.match(text, /^Usage: miniflare \[options\]\n\nKV Options:\n -h, --help /);
});
